"""Transaction logs written with the real TxLog, as a manager would write them, and what they hold.

`write_run` plays a small run in real time (a few tenths of a second):
three workers (w1 with two cores, w2 and w3 with one), groups g1 (t1, t2,
t3 on w1) and g2 (t4, t5 on w2), t6 beside g1 on w1's second core, t7 lost
with w3 and run again on w2, t8 failing twice on w2 and given up on;
transfers in all three directions, cache inserts and evictions, a
blocklisting. `write_big` writes a large run with synthetic times.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tether.manager.txlog import TxLog


@dataclass
class Expected:
    workers: dict[str, int]                         # worker -> cores
    tasks: dict[str, str]                           # task -> final state
    groups: dict[str, tuple[str, ...]]              # group -> members
    group_worker: dict[str, str]
    task_worker: dict[str, str]                     # where each task ran last
    attempts: dict[str, int]
    bytes_moved: dict[str, int]
    cache_final: dict[str, int]
    cache_peak: dict[str, int]
    hops: list[float]
    failed_attempts: int
    sublanes: dict[str, int] = field(default_factory=dict)


def _tick(seconds: float = 0.02) -> float:
    time.sleep(seconds)
    return time.time()


def write_run(path: Path) -> Expected:
    tx = TxLog(path, run="run-test")
    try:
        tx.add("MANAGER", "STARTED", "workers=3")
        tx.add("WORKER", "w1", "JOINED", "host-a", 2, 8000, 50000)
        tx.add("WORKER", "w2", "JOINED", "host-b", 1, 4000, 20000)
        tx.add("WORKER", "w3", "JOINED", "host-c", 1, 4000, 20000)
        whats = {"t1": "sort in.txt > a", "t2": "uniq a > b", "t3": "wc -l b > out1", "t4": "cut -f1 in.txt > c",
                 "t5": "sort c > out2", "t6": 'echo "</script><b>bold</b>" > note', "t7": "gzip -c in.txt > z",
                 "t8": "false"}
        for task, what in whats.items():
            tx.add("TASK", task, "SUBMITTED", "sh", 1, 100, 10, what)
        tx.add("GROUP", "g1", "FORMED", "w1", "t1,t2,t3")
        tx.add("GROUP", "g2", "FORMED", "w2", "t4,t5")
        for task in ("t1", "t2", "t3"):
            tx.add("TASK", task, "ASSIGNED", "w1", 1, "g1")
        for task in ("t4", "t5"):
            tx.add("TASK", task, "ASSIGNED", "w2", 1, "g2")
        tx.add("TASK", "t6", "ASSIGNED", "w1", 1, None)
        tx.add("TASK", "t7", "ASSIGNED", "w3", 1, None)
        for worker in ("w1", "w2", "w3"):
            tx.add("TRANSFER", "in.txt", "manager", worker, 1000)
            tx.add("CACHE", worker, "INSERT", "in.txt", 1000)
        a = _tick()                                     # t1, t6, t4, t7 start
        b = _tick()
        tx.add("TASK", "t6", "RAN", "w1", a + 0.002, b, 5_000_000, 0.01, 10, 0)
        tx.add("CACHE", "w1", "INSERT", "note", 10)
        tx.add("TRANSFER", "note", "w1", "manager", 10)
        tx.add("TASK", "t6", "DONE", 1, None)
        c = _tick()
        tx.add("TASK", "t1", "RAN", "w1", a, c, 7_000_000, 0.03, 2000, 0)
        tx.add("CACHE", "w1", "INSERT", "a", 2000)
        tx.add("TASK", "t1", "DONE", 1, None)
        tx.add("TASK", "t4", "RAN", "w2", a, c, 6_000_000, 0.02, 1500, 0)
        tx.add("CACHE", "w2", "INSERT", "c", 1500)
        tx.add("TASK", "t4", "DONE", 1, None)
        tx.add("TASK", "t7", "ATTEMPT-FAILED", "w3", "worker-lost", a, None, "w3 closed its connection")
        tx.add("WORKER", "w3", "LEFT", "connection closed")
        tx.add("TASK", "t7", "ASSIGNED", "w2", 2, None)
        tx.add("TASK", "t8", "ASSIGNED", "w2", 1, None)
        tx.add("TRANSFER", "a", "w1", "w2", 2000)       # t7's second attempt reads t1's output from w1
        tx.add("CACHE", "w2", "INSERT", "a", 2000)
        d = _tick()
        tx.add("TASK", "t2", "RAN", "w1", c + 0.001, d, 7_000_000, 0.03, 3000, 0)
        tx.add("CACHE", "w1", "INSERT", "b", 3000)
        tx.add("CACHE", "w1", "EVICT", "a")
        tx.add("TASK", "t2", "DONE", 1, 0.001)
        tx.add("TASK", "t5", "RAN", "w2", c + 0.0009, d, 6_000_000, 0.02, 100, 0)
        tx.add("CACHE", "w2", "INSERT", "out2", 100)
        tx.add("CACHE", "w2", "EVICT", "c")
        tx.add("TRANSFER", "out2", "w2", "manager", 100)
        tx.add("TASK", "t5", "DONE", 1, 0.0009)
        e = _tick()
        tx.add("TASK", "t3", "RAN", "w1", d + 0.0012, e, 7_000_000, 0.03, 50, 0)
        tx.add("CACHE", "w1", "INSERT", "out1", 50)
        tx.add("CACHE", "w1", "EVICT", "b")
        tx.add("TRANSFER", "out1", "w1", "manager", 50)
        tx.add("TASK", "t3", "DONE", 1, 0.0012)
        tx.add("TASK", "t7", "RAN", "w2", d, e, 4_000_000, 0.02, 800, 0)
        tx.add("CACHE", "w2", "INSERT", "z", 800)
        tx.add("TRANSFER", "z", "w2", "manager", 800)
        tx.add("TASK", "t7", "DONE", 2, None)
        f = _tick()
        tx.add("TASK", "t8", "RAN", "w2", e, f, 1_000_000, 0.001, 0, 1)
        tx.add("TASK", "t8", "ATTEMPT-FAILED", "w2", "exit", e, f, "exit code 1")
        tx.add("TASK", "t8", "ASSIGNED", "w2", 2, None)
        tx.add("WORKER", "w2", "BLOCKLISTED", f + 0.05)
        g = _tick()
        tx.add("TASK", "t8", "RAN", "w2", f + 0.001, g, 1_000_000, 0.001, 0, 1)
        tx.add("TASK", "t8", "ATTEMPT-FAILED", "w2", "exit", f + 0.001, g, "exit code 1")
        tx.add("TASK", "t8", "FAILED", "exit", 2, "exit code 1 (stderr: nothing)")
        tx.add("MANAGER", "CLOSED", "normally")
    finally:
        tx.close()
    return Expected(
        workers={"w1": 2, "w2": 1, "w3": 1},
        tasks={"t1": "done", "t2": "done", "t3": "done", "t4": "done", "t5": "done", "t6": "done",
               "t7": "done", "t8": "failed"},
        groups={"g1": ("t1", "t2", "t3"), "g2": ("t4", "t5")},
        group_worker={"g1": "w1", "g2": "w2"},
        task_worker={"t1": "w1", "t2": "w1", "t3": "w1", "t4": "w2", "t5": "w2", "t6": "w1", "t7": "w2",
                     "t8": "w2"},
        attempts={"t1": 1, "t2": 1, "t3": 1, "t4": 1, "t5": 1, "t6": 1, "t7": 2, "t8": 2},
        bytes_moved={"manager_to_worker": 3000, "worker_to_manager": 960, "worker_to_worker": 2000},
        cache_final={"w1": 1060, "w2": 3900, "w3": 0},
        cache_peak={"w1": 6010, "w2": 4600, "w3": 1000},
        hops=[0.001, 0.0009, 0.0012],
        failed_attempts=3,
        sublanes={"w1": 2, "w2": 1, "w3": 1},
    )


def write_big(path: Path, tasks: int = 10_000, workers: int = 8, cores: int = 4, chain: int = 10) -> dict:
    """A large run: chains of `chain` tasks as groups, spread over the workers' cores, times made up."""
    tx = TxLog(path, run="run-big")
    base = time.time()
    try:
        for w in range(workers):
            tx.add("WORKER", f"w{w}", "JOINED", f"host{w}", cores, 16000, 100000)
        slots = [[0.0] * cores for _ in range(workers)]
        for start in range(0, tasks, chain):
            members = [f"t{i}" for i in range(start, min(start + chain, tasks))]
            group = f"g{start // chain}"
            w = (start // chain) % workers
            core = min(range(cores), key=lambda c: slots[w][c])
            tx.add("GROUP", group, "FORMED", f"w{w}", ",".join(members))
            t = slots[w][core]
            for k, task in enumerate(members):
                tx.add("TASK", task, "SUBMITTED", "sh", 1, 0, 0, f"step {k} of {group}")
                tx.add("TASK", task, "ASSIGNED", f"w{w}", 1, group)
                run = 0.05 + 0.01 * ((start + k) % 7)
                tx.add("TASK", task, "RAN", f"w{w}", base + t, base + t + run, 1_000_000, run, 100, 0)
                tx.add("CACHE", f"w{w}", "INSERT", f"f-{task}", 1000)
                if k:
                    tx.add("CACHE", f"w{w}", "EVICT", f"f-{members[k - 1]}")
                tx.add("TASK", task, "DONE", 1, 0.0005 if k else None)
                t += run + 0.0005
            tx.add("TRANSFER", f"f-{members[-1]}", f"w{w}", "manager", 1000)
            slots[w][core] = t
    finally:
        tx.close()
    return {"tasks": tasks, "workers": workers, "groups": (tasks + chain - 1) // chain}
