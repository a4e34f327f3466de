#!/usr/bin/env python3
"""Workers churning under a workflow: every Future must end, run after run.

Each run starts a manager and `--workers` workers (`tether worker`, one core
each, started here and not by the manager, so that they can be restarted
faster than the manager's own limit for local workers), submits a mixed
workload of `--tasks` tasks (independent Python tasks, the seed's chains of
shell tasks passing temps with a Python step in each, and a fan-in of
leaves read by Python reducers), and meanwhile SIGKILLs a random connected
worker, with every process of its session, every `--kill-every` seconds;
a worker that ended is replaced at once by a new one. Every Future must
end, with its right value, or with SystemFailure naming its cause (or
DependencyFailed, for a task whose input's producer failed so: a
DependencyFailed naming a producer whose own Future succeeded, which failed
when it ran again to remake a lost temp, names no cause and counts as
wrong); a run in which no Future ended for `--bound` seconds is a hang: what was pending is
printed (the core's tasks by state, the pending tasks, a py-spy dump of
this process when py-spy is installed) and the run counts as failed.

    PYTHONPATH=src python benchmarks/churn.py --runs 50 [--json churn.json]

Per run: makespan, workers killed and started, attempts beyond the first
(of tasks that succeeded), attempts lost to the system, producers run
again, Futures failed by reason, and whether it hung. Exit status 1 if any
run hung or ended a Future wrongly.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tether import DependencyFailed, Manager, SystemFailure
from tether.manager.local import kill_sessions, python_path
from tether.workloads import expected_tail
from tether_bench.fault_workloads import Chains, FanIn, Mixed

SYSTEM_REASONS = {"input", "disk-full", "interpreter", "worker", "worker-lost", "output-lost", "no-workers"}


class Pool:
    """`tether worker` processes for one manager, kept at `size`: each that ends is replaced."""

    def __init__(self, m: Manager, size: int, work_dir: Path, heartbeat: float):
        self.m = m
        self.size = size
        self.work_dir = work_dir
        self.heartbeat = heartbeat
        self.procs: dict[int, subprocess.Popen] = {}
        self.started = 0
        self.ended_codes: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(python_path()))
        self.port = m.address.rsplit(":", 1)[1]

    def start_one(self) -> None:
        self.started += 1
        name = f"w{self.started}"
        cmd = [sys.executable, "-m", "tether", "worker", f"127.0.0.1:{self.port}", "--cores", "1",
               "--cache-dir", str(self.work_dir / name), "--secret-file", str(self.m.secret_file),
               "--name", name, "--clean", "--heartbeat", f"{self.heartbeat:g}", "--connect-timeout", "30",
               "--owner-pid", str(os.getpid())]   # it leaves at once if this process ends
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=self.env, start_new_session=True)
        with self.lock:
            self.procs[proc.pid] = proc

    def keep_up(self) -> None:
        """Replace every worker that ended, until stopped."""
        while not self.stopping.wait(0.02):
            with self.lock:
                ended = [p for p in self.procs.values() if p.poll() is not None]
                for p in ended:
                    del self.procs[p.pid]
                    self.ended_codes[p.returncode] += 1
            for _ in ended:
                if not self.stopping.is_set():
                    self.start_one()

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL a random connected worker and every process of its session."""
        connected = set(link.pid for link in list(self.m.engine.links.values()))
        with self.lock:
            live = sorted(pid for pid, p in self.procs.items() if p.poll() is None and pid in connected)
        if not live:
            return False
        pid = rng.choice(live)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def stop_all(self) -> None:
        self.stopping.set()
        with self.lock:
            procs = list(self.procs.values())
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        kill_sessions([p.pid for p in procs])
        for p in procs:
            p.wait()


def in_loop(m: Manager, fn):
    async def call():
        return fn()
    return m._loop.run(call(), 30)


def pending_report(m: Manager, futures: list, labels: list[str]) -> str:
    """What a hung run left: the core's tasks by state, the pending tasks and a stack dump of this process."""
    lines = [f"tasks by state: { {k: v for k, v in in_loop(m, m.core.counts_by_state).items() if v} }"]

    def pending_tasks():
        out = []
        for f, label in zip(futures, labels):
            if not f.done():
                t = m.core.tasks.get(f.task_id)
                if t is None:
                    out.append(f"  {label} (task {f.task_id}): not in the core")
                    continue
                out.append(f"  {label} (task {t.id}): {t.state.name}, worker "
                           f"{t.worker.id if t.worker is not None else None}, missing {t.missing}, attempts "
                           f"{t.attempts}, system failures {t.system_failures}, avoid {sorted(t.avoid or ())}")
        return out

    pending = in_loop(m, pending_tasks)
    lines.append(f"{len(pending)} pending Future(s):")
    lines += pending[:40]
    workers = in_loop(m, lambda: {w.id: (w.alive, w.used_cores, w.blocked_until) for w in m.core.workers.values()
                                  if w.alive})
    lines.append(f"live workers in the core (alive, used cores, blocked until): {workers}")
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if os.path.exists(spy):
        dump = subprocess.run([spy, "dump", "--pid", str(os.getpid())], capture_output=True, text=True,
                              timeout=60, check=False)
        lines.append("py-spy dump of this process (the manager):\n" + (dump.stdout or dump.stderr))
    return "\n".join(lines)


def submit(m: Manager, workload: Mixed, home: Path, arm: str) -> tuple[list, list[str], list]:
    """Every Future, a label for each, and (future, check) pairs for the outputs that come home."""
    sub = workload.submit(m, home, arm)
    n_ind = workload.independent
    ch = workload.chains
    labels = [f"independent {i}" for i in range(n_ind)]
    labels += [f"chain {c} step {s}" for c in range(ch.chains) for s in range(ch.length)]
    labels += [f"fan-in leaf {i}" for i in range(workload.fanin.leaves)]
    labels += [f"fan-in reducer {j}" for j in range(workload.fanin.leaves // workload.fanin.group)]
    labels += ["fan-in join"]
    checks = []
    for i, f in enumerate(sub.futures[:n_ind]):
        checks.append((f, lambda f=f, i=i: f.result() == i * i))
    for c in range(ch.chains):
        last = sub.futures[n_ind + (c + 1) * ch.length - 1]
        path = home / f"chain-{c}.txt"
        checks.append((last, lambda path=path, c=c: path.read_bytes() == expected_tail(c, ch.length)))
    fan = workload.fanin
    result = home / "fanin.bin"
    checks.append((sub.futures[-1], lambda: result.read_bytes() == b"".join(fan.leaf_bytes(i)
                                                                           for i in range(fan.leaves))))
    return sub.futures, labels, checks


def one_run(index: int, args, rng: random.Random) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tether-churn-"))
    fan_tasks = args.fanin_leaves + args.fanin_leaves // 16 + 1
    chains = Chains(args.chains, args.length)
    independent = args.tasks - chains.tasks - fan_tasks
    if independent < 0:
        raise SystemExit(f"--tasks {args.tasks} is fewer than the chains and the fan-in need")
    workload = Mixed(independent, chains, FanIn(leaves=args.fanin_leaves, group=16, pad=10_000, sleep=0.0))
    row: dict = {"run": index}
    try:
        with Manager(workers=0, host="127.0.0.1", heartbeat=args.heartbeat, run_dir=work) as m:
            pool = Pool(m, args.workers, work / "workers", args.heartbeat)
            for _ in range(args.workers):
                pool.start_one()
            keeper = threading.Thread(target=pool.keep_up, daemon=True)
            keeper.start()
            try:
                m.wait_for_workers(args.workers, timeout=300)
                arm = work / "arm"
                arm.mkdir()
                kills = 0
                done = threading.Event()
                finished: list = []

                def killer():
                    nonlocal kills
                    while not done.wait(args.kill_every):
                        kills += pool.kill_one(rng)

                started = time.perf_counter()
                futures, labels, checks = submit(m, workload, work / "home", str(arm))
                for f in futures:
                    f.add_done_callback(finished.append)
                killing = threading.Thread(target=killer, daemon=True)
                killing.start()
                seen, moved, hang = 0, time.monotonic(), None
                while len(finished) < len(futures):
                    time.sleep(0.05)
                    if len(finished) > seen:
                        seen, moved = len(finished), time.monotonic()
                    elif time.monotonic() - moved > args.bound:
                        hang = pending_report(m, futures, labels)
                        break
                makespan = time.perf_counter() - started
                done.set()
                killing.join()
                counters = m.stats()
                row.update(workers_connected_at_end=len(m.engine.links))
            finally:
                pool.stop_all()
            keeper.join()
        reasons: collections.Counter = collections.Counter()
        wrong = []
        attempts = 0
        by_id = {f.task_id: f for f in futures}
        for f, label in zip(futures, labels):
            if not f.done():
                continue
            e = f.exception()
            if e is None:
                info = getattr(f, "info", None)
                attempts += (info.attempts - 1) if info is not None else 0
            elif isinstance(e, SystemFailure):
                reasons[e.reason or "?"] += 1
                if e.reason not in SYSTEM_REASONS or "attempts" not in str(e) and e.reason != "no-workers":
                    wrong.append(f"{label}: SystemFailure without its cause: {e}")
            elif isinstance(e, DependencyFailed):
                # its cause is named if the producer it names failed itself; a producer whose own
                # Future succeeded failed when it ran again (to make a lost temp), and nothing says why
                found = re.search(r"task (\d+) did not succeed", str(e))
                producer = by_id.get(int(found.group(1))) if found else None
                if producer is not None and producer.done() and producer.exception() is None:
                    reasons["dependency on a producer that had succeeded"] += 1
                    wrong.append(f"{label}: DependencyFailed names no cause (task {producer.task_id}'s Future "
                                 f"succeeded; it failed when it ran again): {e}")
                else:
                    reasons["dependency"] += 1
            else:
                wrong.append(f"{label}: {type(e).__name__}: {str(e)[:300]}")
        for f, check in checks:
            if f.done() and f.exception() is None and not check():
                wrong.append(f"wrong value or output for task {f.task_id}")
        row.update(makespan_s=round(makespan, 3), tasks=len(futures), ended=sum(f.done() for f in futures),
                   succeeded=sum(f.done() and f.exception() is None for f in futures), kills=kills,
                   workers_started=pool.started, worker_exits=dict(pool.ended_codes),
                   attempts_beyond_first=attempts, attempts_lost=counters["system_failures"],
                   reruns=counters["reruns"], blocklisted=counters["blocklisted"],
                   failures_by_reason=dict(reasons), hang=hang is not None, wrong=wrong[:10])
        if hang is not None:
            row["pending"] = hang
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--workers", type=int, default=30)
    p.add_argument("--tasks", type=int, default=2000, help="tasks per run, in all")
    p.add_argument("--chains", type=int, default=20)
    p.add_argument("--length", type=int, default=30)
    p.add_argument("--fanin-leaves", type=int, default=192, help="leaves of the fan-in (a multiple of 16)")
    p.add_argument("--kill-every", type=float, default=0.25, help="seconds between two kills")
    p.add_argument("--heartbeat", type=float, default=10.0)
    p.add_argument("--bound", type=float, default=120.0, help="seconds without any Future ending: a hang")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    p.add_argument("--log", type=Path, default=None,
                   help="the manager's log, warnings included [errors only, on stderr]")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))   # stop the workers too
    if args.log is not None:
        logging.basicConfig(filename=args.log, level=logging.WARNING,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    else:
        logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    rng = random.Random(args.seed)
    rows = []
    print(f"{'run':>4} {'makespan':>9} {'kills':>6} {'started':>8} {'ended':>11} {'attempts+':>10} "
          f"{'lost':>5} {'reruns':>7} {'hang':>5}  failures by reason", flush=True)
    for i in range(1, args.runs + 1):
        r = one_run(i, args, rng)
        rows.append(r)
        print(f"{i:>4} {r['makespan_s']:>8.2f}s {r['kills']:>6} {r['workers_started']:>8} "
              f"{r['ended']:>5}/{r['tasks']:<5} {r['attempts_beyond_first']:>10} {r['attempts_lost']:>5} "
              f"{r['reruns']:>7} {'HANG' if r['hang'] else 'no':>5}  {r['failures_by_reason'] or '-'}", flush=True)
        for w in r["wrong"]:
            print(f"     WRONG: {w}", flush=True)
        if r["hang"]:
            print(r["pending"], flush=True)
        if args.json is not None:
            parameters = {k: v for k, v in vars(args).items() if k not in ("json", "log")}
            args.json.write_text(json.dumps({"parameters": parameters, "runs": rows}, indent=2) + "\n")
    bad = [r["run"] for r in rows if r["hang"] or r["wrong"]]
    spans = sorted(r["makespan_s"] for r in rows)
    print(f"{len(rows)} runs: makespan median {spans[len(spans) // 2]:.2f} s (min {spans[0]:.2f}, max "
          f"{spans[-1]:.2f}); {sum(r['kills'] for r in rows)} kills; "
          f"{sum(r['ended'] for r in rows)}/{sum(r['tasks'] for r in rows)} Futures ended, "
          f"{sum(r['succeeded'] for r in rows)} succeeded; runs that hung or ended a Future wrongly: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
