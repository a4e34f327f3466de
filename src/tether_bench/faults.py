"""`tether bench faults`: a workload run fault-free, then with each fault injected for real, side by side.

One row per workload and fault; every fault is real (a signal, a link
taken down, a disk filled), none is simulated:

    none         the fault-free run the other rows of its workload are compared with
    sigkill      a busy local worker is killed outright; the manager starts another
    sigterm      a busy local worker is asked to stop: it stops its tasks and leaves
    sigstop      a busy local worker is stopped: silent, it is declared lost after the
                 heartbeat, then killed and replaced
    interpreter  a Python task kills the interpreter it runs in (SIGKILL), once
    link-down    (root) every worker in a network namespace of its own; the veth of a busy
                 one goes down; once it is declared lost the link comes back and a new
                 worker is started in that namespace
    disk-full    (root) one worker's cache is a small tmpfs, which another process fills
                 while it works, and keeps full to the end: whatever the worker frees,
                 the filler takes

Faults are injected one after another, the k-th of n once k/(n+1) of the
tasks have ended, each into a worker then running a task where there is
one. Time to notice runs from the injection (the signal sent, the link
down, the disk full, the interpreter's own last moment) until the manager
declared the worker lost or counted the lost attempt, polled every
millisecond from the manager's state. Every row waits for every Future
and checks every output; a Future not ended within the bound is reported
with the tasks still pending, by state.
"""
from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.manager.local import LocalWorker, python_path, stop_workers
from tether.manager.manager import Manager
from tether.task import SystemFailure

from .fault_workloads import TRIGGER, Chains, FanIn, deaths
from .report import Report, make_row, tether_figures
from .runner import Options, RowPlan

FAULTS = ["none", "sigkill", "sigterm", "sigstop", "interpreter", "link-down", "disk-full"]
COLUMNS = ("makespan_s", "vs_fault_free", "faults_injected", "time_to_notice_s", "attempts_beyond_first",
           "system_failures", "reruns", "blocklisted")   # what the summary table shows
POLL = 0.001            # seconds between looks at the manager's state while a fault is being noticed
TMPFS_SIZE = "32m"      # the cache of the worker whose disk fills


def workloads(quick: bool) -> dict[str, Chains | FanIn]:
    if quick:
        return {"chains": Chains(4, 15), "fanin": FanIn(leaves=16, group=4, pad=10_000, sleep=0.05)}
    return {"chains": Chains(20, 30), "fanin": FanIn()}


# ------------------------------------------------------------------ what a row keeps while it runs


@dataclass
class Injection:
    fault: str
    at: float                      # time.time() of the injection
    worker: str | None = None      # the worker hit (its id at the manager)
    pid: int | None = None
    progress: float = 0.0          # share of the tasks ended when it was injected
    before: int = 0                # the core's system failure count just before
    noticed: float | None = None   # time.time() when the manager had noticed
    exit_code: int | None = None   # the hit worker's, once it ended

    @property
    def notice_s(self) -> float | None:
        return None if self.noticed is None else max(0.0, self.noticed - self.at)


@dataclass
class Setting:
    """The manager, its workers and what a fault needs to reach them, for one row."""

    m: Manager
    heartbeat: float
    work_dir: Path
    arm: Path
    rng: random.Random
    cluster: Any = None                                   # EmulatedCluster (link-down)
    cluster_pids: dict[int, int] = field(default_factory=dict)   # worker pid -> namespace index
    extra: list[LocalWorker] = field(default_factory=list)       # workers started here, not by the manager
    disk: Path | None = None                              # the tmpfs that fills (disk-full)
    helpers: list[threading.Thread] = field(default_factory=list)   # threads a fault left running
    ended: threading.Event = field(default_factory=threading.Event)
    done: list = field(default_factory=list)
    total: int = 0
    restarts: int = 0

    def progress(self) -> float:
        return len(self.done) / self.total if self.total else 1.0

    def links(self) -> dict[str, int]:
        """Worker id -> pid of every connected worker."""
        for _ in range(10):
            try:
                return {wid: link.pid for wid, link in list(self.m.engine.links.items())}
            except RuntimeError:   # changed while read from this thread: read again
                time.sleep(POLL)
        return {}

    def busy_first(self, candidates: dict[str, int], patience: float = 0.5,
                   queued: int = 0) -> tuple[str, int] | None:
        """A worker among candidates running a task now (with at least `queued` more assigned to it),
        if one is within `patience` seconds, else any of them."""
        if not candidates:
            return None
        workers = self.m.core.workers
        deadline = time.monotonic() + patience

        def is_busy(w) -> bool:
            return w is not None and w.used_cores > 0 and len(w.tasks) > queued

        while True:
            busy = [wid for wid in candidates if is_busy(workers.get(wid))]
            if busy or time.monotonic() > deadline or self.ended.is_set():
                break
            time.sleep(POLL)
        wid = self.rng.choice(sorted(busy or candidates))
        return wid, candidates[wid]


def in_loop(m: Manager, fn):
    """Call fn in the manager's loop thread (where the core may be read safely) and return its value."""
    async def call():
        return fn()
    return m._loop.run(call(), 30)


# ------------------------------------------------------------------ the faults


class Fault:
    name = "none"
    needs_root = False
    by_heartbeat = False          # noticed through the heartbeat, not at once

    def unavailable(self, workers: int) -> str | None:
        if self.needs_root and os.geteuid() != 0:
            return f"{self.name} needs root ({self.why_root})"
        return None

    why_root = ""

    def open(self, stack: contextlib.ExitStack, s: dict) -> Setting:
        m = stack.enter_context(Manager(workers=s["workers"], cores_per_worker=1, heartbeat=s["heartbeat"],
                                        run_dir=s["work_dir"]))
        m.wait_for_workers()
        return Setting(m, s["heartbeat"], s["work_dir"], s["arm"], random.Random(s["seed"]))

    def inject(self, st: Setting) -> Injection | None:
        return None

    def noticed(self, st: Setting, inj: Injection) -> bool:
        """Has the manager noticed? (Called from the injecting thread, every millisecond.)"""
        return inj.worker not in st.m.engine.links

    def after(self, st: Setting, inj: Injection) -> None:
        """Once noticed: put right what the fault broke, where the manager does not."""


class Signal(Fault):
    """A signal to a busy local worker; the manager replaces local workers that end."""

    def __init__(self, name: str, signum: int, by_heartbeat: bool = False):
        self.name = name
        self.signum = signum
        self.by_heartbeat = by_heartbeat

    def inject(self, st: Setting) -> Injection | None:
        local = {w.proc.pid for w in st.m._local if w.proc.poll() is None}
        hit = st.busy_first({wid: pid for wid, pid in st.links().items() if pid in local})
        if hit is None:
            return None
        before = st.m.core.counters.system_failures
        at = time.time()
        os.kill(hit[1], self.signum)
        return Injection(self.name, at, hit[0], hit[1], before=before)

    def after(self, st: Setting, inj: Injection) -> None:
        for w in st.m._local:
            if w.proc.pid == inj.pid:
                try:
                    inj.exit_code = w.proc.wait(st.heartbeat + 10)
                except subprocess.TimeoutExpired:
                    pass


class InterpreterDeath(Fault):
    """The next Python task to start kills its own interpreter (see fault_workloads.maybe_die)."""

    name = "interpreter"

    def inject(self, st: Setting) -> Injection | None:
        before = st.m.core.counters.system_failures
        dead = len(deaths(st.arm))
        (st.arm / TRIGGER).write_text("")
        while not st.ended.is_set():    # injected when a task claims the trigger and dies
            found = deaths(st.arm)
            if len(found) > dead:
                return Injection(self.name, found[-1], before=before)
            time.sleep(POLL)
        with contextlib.suppress(FileNotFoundError):
            (st.arm / TRIGGER).unlink()   # no Python task was left to run
        return None

    def noticed(self, st: Setting, inj: Injection) -> bool:
        return st.m.core.counters.system_failures > inj.before


class LinkDown(Fault):
    name = "link-down"
    needs_root = True
    by_heartbeat = True
    why_root = "it puts each worker in a network namespace and takes a veth link down"

    def unavailable(self, workers: int) -> str | None:
        from .cluster import unavailable_reason
        return unavailable_reason()

    def open(self, stack: contextlib.ExitStack, s: dict) -> Setting:
        from .cluster import EmulatedCluster

        cluster = stack.enter_context(EmulatedCluster(s["workers"], rate="10gbit", work_dir=s["work_dir"]))
        m = stack.enter_context(Manager(workers=0, host=cluster.manager_host, heartbeat=s["heartbeat"],
                                        run_dir=s["work_dir"]))
        st = Setting(m, s["heartbeat"], s["work_dir"], s["arm"], random.Random(s["seed"]), cluster=cluster)
        for i in range(s["workers"]):
            self._start(st, i, f"ns{i}")
        stack.callback(self._stop, st)     # the workers go before the manager closes
        m.wait_for_workers(s["workers"])
        return st

    def _start(self, st: Setting, index: int, name: str) -> None:
        w = st.cluster.start_worker(index, st.m.address, st.m.secret_file, cores=1, name=name,
                                    extra_args=("--heartbeat", f"{st.heartbeat:g}"))
        st.cluster_pids[w.proc.pid] = index

    @staticmethod
    def _stop(st: Setting) -> None:
        st.cluster.stop_workers()

    def inject(self, st: Setting) -> Injection | None:
        hit = st.busy_first({wid: pid for wid, pid in st.links().items() if pid in st.cluster_pids})
        if hit is None:
            return None
        link = st.cluster.links[st.cluster_pids[hit[1]]]
        before = st.m.core.counters.system_failures
        subprocess.run(["ip", "link", "set", link.root_dev, "down"], check=True, capture_output=True)
        return Injection(self.name, time.time(), hit[0], hit[1], before=before)

    def after(self, st: Setting, inj: Injection) -> None:
        index = st.cluster_pids[inj.pid]
        subprocess.run(["ip", "link", "set", st.cluster.links[index].root_dev, "up"], check=True,
                       capture_output=True)
        old = next(w for w in st.cluster.workers if w.proc.pid == inj.pid)
        try:   # it left by itself: it lost the manager (exit status 4)
            inj.exit_code = old.proc.wait(2 * st.heartbeat + 10)
        except subprocess.TimeoutExpired:
            old.proc.kill()
            old.proc.wait()
        if not st.ended.is_set():
            st.restarts += 1
            self._start(st, index, f"ns{index}-{st.restarts}")


class DiskFull(Fault):
    name = "disk-full"
    needs_root = True
    why_root = "it mounts a small tmpfs as one worker's cache"

    def unavailable(self, workers: int) -> str | None:
        if workers < 2:
            return "disk-full needs at least 2 workers (one whose disk fills, one with room)"
        return super().unavailable(workers)

    def open(self, stack: contextlib.ExitStack, s: dict) -> Setting:
        disk = s["work_dir"] / "small-disk"
        disk.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(disk)], check=True,
                       capture_output=True)
        stack.callback(subprocess.run, ["umount", "-l", str(disk)], check=False, capture_output=True)
        m = stack.enter_context(Manager(workers=s["workers"] - 1, cores_per_worker=1, heartbeat=s["heartbeat"],
                                        run_dir=s["work_dir"]))
        st = Setting(m, s["heartbeat"], s["work_dir"], s["arm"], random.Random(s["seed"]), disk=disk)
        st.extra.append(start_worker(m, "small-disk", disk / "cache", s["heartbeat"], s["work_dir"]))
        stack.callback(stop_workers, st.extra)
        m.wait_for_workers(s["workers"])
        return st

    def inject(self, st: Setting) -> Injection | None:
        pid = st.extra[0].proc.pid
        # a full disk shows only when a task there writes: fill it while one runs there
        hit = st.busy_first({w: p for w, p in st.links().items() if p == pid}, patience=2.0)
        if hit is None:
            return None
        wid = hit[0]
        before = st.m.core.counters.system_failures
        full = fill(st.disk / "filler")
        # like a log that keeps growing: whatever the worker frees, the filler takes
        keeper = threading.Thread(target=keep_full, args=(st.disk / "filler", st.ended), name="disk-filler",
                                  daemon=True)
        keeper.start()
        st.helpers.append(keeper)
        return Injection(self.name, full, wid, pid, before=before)

    def noticed(self, st: Setting, inj: Injection) -> bool:
        return st.m.core.counters.system_failures > inj.before


def keep_full(path: Path, stop: threading.Event) -> None:
    """Go on writing to path, taking every block the file system frees, until stop is set."""
    chunk = bytes(1 << 12)
    with open(path, "ab", buffering=0) as f:
        while not stop.is_set():
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                time.sleep(0.0005)


def fill(path: Path) -> float:
    """Write zeros to path until its file system has no room left; returns when it first had none."""
    full = None
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            chunk = bytes(size)
            while True:
                try:
                    if f.write(chunk) == 0:
                        break
                except OSError as e:
                    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    full = full or time.time()
                    break
    return full or time.time()


def start_worker(m: Manager, name: str, cache: Path, heartbeat: float, log_dir: Path) -> LocalWorker:
    """`tether worker` for m, started here (not by the manager), with its cache where given."""
    port = m.address.rsplit(":", 1)[1]
    log_path = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}", "--cores", "1", "--cache-dir",
           str(cache), "--secret-file", str(m.secret_file), "--name", name, "--clean", "--heartbeat",
           f"{heartbeat:g}", "--connect-timeout", "30"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(python_path()))
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=True)
    return LocalWorker(0, proc, cache, log_path)


FAULT_TYPES: dict[str, Fault] = {
    "none": Fault(),
    "sigkill": Signal("sigkill", signal.SIGKILL),
    "sigterm": Signal("sigterm", signal.SIGTERM),
    "sigstop": Signal("sigstop", signal.SIGSTOP, by_heartbeat=True),
    "interpreter": InterpreterDeath(),
    "link-down": LinkDown(),
    "disk-full": DiskFull(),
}


# ------------------------------------------------------------------ one row


def inject_all(fault: Fault, st: Setting, count: int, injections: list[Injection], errors: list[str]) -> None:
    """The k-th of count faults once k/(count+1) of the tasks ended; each noticed before the next."""
    try:
        for k in range(1, count + 1):
            while st.progress() < k / (count + 1) and not st.ended.is_set():
                st.ended.wait(POLL * 5)
            inj = None
            while inj is None and not st.ended.is_set():
                progress = st.progress()
                inj = fault.inject(st)
                if inj is None:
                    time.sleep(POLL * 5)   # no worker to hit just now (one is being replaced)
            if inj is None:
                return
            inj.progress = progress
            injections.append(inj)
            limit = time.monotonic() + 3 * st.heartbeat + 30
            while not fault.noticed(st, inj) and time.monotonic() < limit:
                if st.ended.is_set():   # the run is over: whatever would notice it now is not part of it
                    limit = min(limit, time.monotonic() + 1.0)
                time.sleep(POLL)
            if fault.noticed(st, inj):
                inj.noticed = time.time()
            fault.after(st, inj)
    except Exception as e:   # the row reports it; the run goes on
        errors.append(f"injecting {fault.name}: {type(e).__name__}: {e}")


def run_row(workload, fault: Fault, settings: dict, work_dir: Path, advance) -> dict[str, Any]:
    from .systems import Unavailable

    name = f"{workload.name}/{fault.name}"
    reason = fault.unavailable(settings["workers"])
    if reason is not None:
        raise Unavailable(reason)
    arm = work_dir / "arm"
    arm.mkdir()
    home = work_dir / "home"
    s = dict(settings, work_dir=work_dir, arm=arm)
    injections: list[Injection] = []
    errors: list[str] = []
    pending: dict[str, int] | None = None
    with contextlib.ExitStack() as stack:
        st = fault.open(stack, s)
        m = st.m
        started = time.perf_counter()
        sub = workload.submit(m, home, str(arm))
        st.total = len(sub.futures)

        def one_done(f) -> None:   # runs in the manager's loop thread: no display work here
            st.done.append(f)
            if len(st.done) >= st.total:
                st.ended.set()

        for f in sub.futures:
            f.add_done_callback(one_done)
        injector = threading.Thread(target=inject_all, args=(fault, st, settings["count"], injections, errors),
                                    name="fault-injector", daemon=True)
        if settings["count"] > 0 and fault.name != "none":
            injector.start()
        bound = settings["bound"]
        moved, seen = time.monotonic(), 0
        while True:   # a bound on the time without any Future ending
            ended = st.ended.wait(0.05)
            if len(st.done) > seen:
                advance(len(st.done) - seen)
                moved, seen = time.monotonic(), len(st.done)
            if ended:
                break
            if time.monotonic() - moved > bound:
                pending = in_loop(m, m.core.counts_by_state)
                break
        makespan = time.perf_counter() - started
        st.ended.set()
        if injector.ident is not None:
            injector.join(4 * st.heartbeat + 60)
        for helper in st.helpers:
            helper.join(10)
        stats = m.stats()
    futures = sub.futures
    ended = sum(f.done() for f in futures)
    failures: dict[str, int] = {}
    for f in futures:
        if f.done() and f.exception() is not None:
            e = f.exception()
            key = f"SystemFailure({e.reason})" if isinstance(e, SystemFailure) else type(e).__name__
            failures[key] = failures.get(key, 0) + 1
    problems = list(errors)
    if pending is not None:
        problems.append(f"{len(futures) - ended} Future(s) not ended within {bound:g} s without progress; "
                        f"tasks by state: { {k: v for k, v in pending.items() if v} }")
    if failures:
        first = next(f.exception() for f in futures if f.done() and f.exception() is not None)
        problems.append(f"failed Futures: {failures}; the first: {first}")
    if not problems:
        problems = sub.check()
    if fault.name != "none" and settings["count"] > 0 and not injections:
        problems.append("no fault could be injected before the run ended")
    attempts = sum(f.info.attempts - 1 for f in futures if f.done() and f.exception() is None
                   and f.info is not None)
    notices = [i.notice_s for i in injections if i.notice_s is not None]
    return make_row(
        name, makespan_s=makespan, workload=workload.name, fault=fault.name, tasks=len(futures),
        futures_ended=ended, correct=not problems, problems=problems[:5],
        faults_injected=len(injections), faults_noticed=len(notices),
        time_to_notice_s=statistics.median(notices) if notices else None,
        time_to_notice_all_s=notices, attempts_beyond_first=attempts,
        attempts_failed=stats["attempts_failed"], reruns=stats["reruns"], moves=stats["moves"],
        system_failures=stats["system_failures"], blocklisted=stats["blocklisted"],
        failures_by_reason=failures, pending_by_state=pending,
        injections=[{"worker": i.worker, "progress": round(i.progress, 3), "notice_s": i.notice_s,
                     "exit_code": i.exit_code} for i in injections],
        **tether_figures(stats))


# ------------------------------------------------------------------ the benchmark


def plans(options: Options, count: int | None = None, heartbeat: float | None = None,
          seed: int = 1) -> tuple[dict[str, Any], list[RowPlan]]:
    loads = workloads(options.quick)
    heartbeat = heartbeat if heartbeat is not None else (2.0 if options.quick else 5.0)
    count = count if count is not None else 1
    names = options.wanted([f"{w}/{f}" for w in loads for f in FAULTS])
    settings = {"workers": options.workers, "heartbeat": heartbeat, "count": count, "seed": seed,
                "bound": max(60.0, 6 * heartbeat)}

    def plan(name: str) -> RowPlan:
        w, f = name.split("/")
        workload, fault = loads[w], FAULT_TYPES[f]
        return RowPlan(name, workload.tasks, lambda work_dir, advance: run_row(workload, fault, settings,
                                                                               work_dir, advance))

    parameters = {"workers": options.workers, "cores_per_worker": 1, "heartbeat_s": heartbeat,
                  "faults_per_row": count, "quick": options.quick,
                  "workloads": {w: loads[w].describe() for w in loads}, "root": os.geteuid() == 0}
    return parameters, [plan(n) for n in names]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's makespan over its workload's fault-free row."""
    base = {r.get("workload"): r.get("makespan_s") for r in rows if r.get("fault") == "none"}
    for r in rows:
        ref = base.get(r.get("workload"))
        r["vs_fault_free"] = r["makespan_s"] / ref if r.get("makespan_s") and ref else None


def check_targets(report: Report) -> list[dict[str, Any]]:
    """Every row: outputs right and every Future ended. Each fault noticed within its bound:
    at once (a second) for a process or disk that fails, the heartbeat (and a second) for a
    worker that falls silent."""
    add_ratios(report.rows)
    heartbeat = report.parameters.get("heartbeat_s", 5.0)
    out = []
    ran = [r for r in report.rows if not r.get("skipped")]
    bad = [r["name"] for r in ran if r.get("error") or r.get("correct") is not True]
    out.append({"target": "every row: every Future ended, every output right", "met": not bad if ran else None,
                "value": f"{len(ran) - len(bad)} of {len(ran)} rows" + (f" (not: {', '.join(bad)})" if bad else "")})
    for f in FAULTS[1:]:
        rows = [r for r in ran if r.get("fault") == f and r.get("time_to_notice_all_s")]
        if not rows:
            continue
        worst = max(max(r["time_to_notice_all_s"]) for r in rows)
        limit = heartbeat + 1.0 if FAULT_TYPES[f].by_heartbeat else 1.0
        out.append({"target": f"{f}: noticed within {limit:g} s", "met": worst <= limit, "measured": worst,
                    "limit": limit, "value": f"{worst:.3f} s at most"})
    return out
