"""Workloads for the fault benchmarks: submitted to a Manager, each Future checked afterwards.

Every workload has a few Python steps among its shell steps, so that an
interpreter can die under a task: each Python step first looks for a
trigger file in its `arm` directory and, if it can claim it (an atomic
rename, so that exactly one task does), writes the time and SIGKILLs its
own interpreter. Without the trigger a Python step does the same work as
a shell step would.

    chains   the seed's shape: chains of tasks passing temps, each chain's
             middle step a Python function, the last file home
    fanin    independent leaves (a short sleep, a padded file each) read by
             Python reducers in groups, whose outputs one shell task joins
             into the file that comes home
    mixed    (for the churn script) independent Python tasks, chains and a
             fan-in in one submission
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tether.manager.manager import Manager
from tether.task import PythonTask, Task
from tether.workloads import expected_tail, first_command, step_command

TRIGGER = "trigger"
DIED = "died-"


# ------------------------------------------------------------------ what runs on the workers


def maybe_die(arm: str) -> None:
    """Kill this interpreter if the trigger is set and this task is the first to claim it."""
    trigger = os.path.join(arm, TRIGGER)
    if not os.path.exists(trigger):
        return
    claimed = os.path.join(arm, f"{DIED}{os.getpid()}-{time.time_ns()}")
    try:
        os.rename(trigger, claimed)
    except FileNotFoundError:   # another task claimed it first
        return
    with open(claimed + ".time", "w") as f:
        f.write(repr(time.time()))
    os.kill(os.getpid(), signal.SIGKILL)


def python_step(step: int, arm: str) -> int:
    """A chain's step as a Python function: the predecessor's file plus a line."""
    maybe_die(arm)
    with open("in", "rb") as f:
        data = f.read()
    with open("out", "wb") as f:
        f.write(data + f"step {step}\n".encode())
    return len(data)


def join_files(names: list[str], arm: str) -> int:
    """A reducer: its inputs one after another."""
    maybe_die(arm)
    size = 0
    with open("out", "wb") as out:
        for name in names:
            with open(name, "rb") as f:
                data = f.read()
            out.write(data)
            size += len(data)
    return size


def square(x: int) -> int:
    return x * x


def deaths(arm: Path) -> list[float]:
    """When each interpreter killed by a trigger died (the time its task wrote)."""
    out = []
    for p in sorted(arm.glob(f"{DIED}*.time")):
        text = p.read_text().strip()
        if text:
            out.append(float(text))
    return out


# ------------------------------------------------------------------ workloads


@dataclass
class Submitted:
    futures: list
    check: Callable[[], list[str]]        # problems in the outputs, once every Future succeeded
    kinds: dict[str, int] = field(default_factory=dict)   # tasks of each kind, for the record


@dataclass(frozen=True)
class Chains:
    chains: int = 20
    length: int = 30
    name: str = "chains"

    @property
    def tasks(self) -> int:
        return self.chains * self.length

    def describe(self) -> str:
        return (f"{self.chains} chains of {self.length} tasks passing temps, step {self.length // 2} of each "
                "a Python function")

    def submit(self, m: Manager, home: Path, arm: str) -> Submitted:
        home.mkdir(parents=True, exist_ok=True)
        futures, results = [], []
        python_at = self.length // 2
        for c in range(self.chains):
            prev = None
            for s in range(self.length):
                if s == self.length - 1:
                    path = home / f"chain-{c}.txt"
                    made = m.declare_file(path)
                    results.append((c, path))
                else:
                    made = m.declare_temp()
                ins = {"in": prev} if prev is not None else {}
                if s == python_at and s > 0:
                    task = PythonTask(python_step, args=(s, arm), inputs=ins, outputs={"out": made})
                else:
                    task = Task(first_command(c, None) if s == 0 else step_command(s, None), inputs=ins,
                                outputs={"out": made})
                futures.append(m.submit(task))
                prev = made

        def check() -> list[str]:
            problems = []
            for c, path in results:
                if not path.is_file():
                    problems.append(f"{path.name} missing")
                elif path.read_bytes() != expected_tail(c, self.length):
                    problems.append(f"{path.name}: wrong content")
            return problems

        return Submitted(futures, check, {"shell": self.tasks - self.chains, "python": self.chains})


@dataclass(frozen=True)
class FanIn:
    leaves: int = 64
    group: int = 8              # leaves per reducer
    pad: int = 100_000          # bytes of each leaf's file before its line
    sleep: float = 0.05         # seconds each leaf sleeps first
    name: str = "fanin"

    @property
    def tasks(self) -> int:
        return self.leaves + self.leaves // self.group + 1

    def describe(self) -> str:
        return (f"{self.leaves} leaves ({self.pad:,} B each, {self.sleep:g} s), read {self.group} at a time by "
                f"{self.leaves // self.group} Python reducers, joined by one shell task")

    def leaf_bytes(self, i: int) -> bytes:
        return bytes(self.pad) + f"leaf {i}\n".encode()

    def submit(self, m: Manager, home: Path, arm: str, prefix: str = "") -> Submitted:
        if self.leaves % self.group:
            raise ValueError("leaves must be a multiple of group")
        home.mkdir(parents=True, exist_ok=True)
        futures = []
        leaves = []
        for i in range(self.leaves):
            out = m.declare_temp()
            cmd = f"sleep {self.sleep:g}; head -c {self.pad} /dev/zero > out && echo 'leaf {i}' >> out"
            futures.append(m.submit(Task(cmd, outputs={"out": out})))
            leaves.append(out)
        parts = []
        for j in range(self.leaves // self.group):
            names = [f"leaf{i}" for i in range(j * self.group, (j + 1) * self.group)]
            out = m.declare_temp()
            ins = {n: leaves[int(n[4:])] for n in names}
            futures.append(m.submit(PythonTask(join_files, args=(names, arm), inputs=ins, outputs={"out": out})))
            parts.append(out)
        result = home / f"{prefix}fanin.bin"
        names = [f"part{j}" for j in range(len(parts))]
        futures.append(m.submit(Task(f"cat {' '.join(names)} > result", inputs=dict(zip(names, parts)),
                                     outputs={"result": m.declare_file(result)})))

        def check() -> list[str]:
            if not result.is_file():
                return [f"{result.name} missing"]
            expected = b"".join(self.leaf_bytes(i) for i in range(self.leaves))
            return [] if result.read_bytes() == expected else [f"{result.name}: wrong content"]

        return Submitted(futures, check, {"shell": self.leaves + 1, "python": self.leaves // self.group})


@dataclass(frozen=True)
class Mixed:
    """Independent Python tasks, chains passing temps and a fan-in, in one submission (the churn's workload)."""

    independent: int = 1000
    chains: Chains = Chains(20, 30)
    fanin: FanIn = FanIn(leaves=192, group=16, pad=10_000, sleep=0.0)
    name: str = "mixed"

    @property
    def tasks(self) -> int:
        return self.independent + self.chains.tasks + self.fanin.tasks

    def describe(self) -> str:
        return (f"{self.independent} independent Python tasks, {self.chains.describe()}, "
                f"and a fan-in of {self.fanin.describe()}")

    def submit(self, m: Manager, home: Path, arm: str) -> Submitted:
        independent = [m.submit(PythonTask(square, args=(i,))) for i in range(self.independent)]
        chains = self.chains.submit(m, home, arm)
        fanin = self.fanin.submit(m, home, arm)

        def check() -> list[str]:
            wrong = [i for i, f in enumerate(independent) if f.result() != i * i]
            problems = [f"{len(wrong)} independent task(s) gave a wrong value"] if wrong else []
            return problems + chains.check() + fanin.check()

        kinds = {"python": self.independent + chains.kinds["python"] + fanin.kinds["python"],
                 "shell": chains.kinds["shell"] + fanin.kinds["shell"]}
        return Submitted(independent + chains.futures + fanin.futures, check, kinds)
