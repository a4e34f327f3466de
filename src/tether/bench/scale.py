"""The scheduler core alone at scale: does its cost per task stay flat?

No processes or sockets: tether.core.Scheduler is driven with events, as
the manager's engine drives it, by a discrete-event simulation of many
workers on a virtual clock. The workflow is shaped like real ones: half
the tasks form chains that pass temp files (so groups are formed and
committed), the other half are independent tasks that read a shared input
and write an output brought home. Each size is run twice:

  timed     submit every task, let the workers join, run the simulation
            until every task has completed; the time spent inside
            Scheduler.handle is the core's cost (submit + schedule + complete),
            counted in CPU time so that other work on a shared machine
            does not inflate it (the wall time is in the row too)
  memory    submit every task again under tracemalloc, with no worker yet,
            so every task is pending; the bytes the core then holds,
            divided by the tasks, is the manager's memory per pending task

Rows: {"name", "tasks", "seconds_per_task", "bytes_per_task", "makespan_s", ...}
where makespan_s is the wall time of the size's timed run.
"""
from __future__ import annotations

import gc
import heapq
import random
import time
import tracemalloc
from collections import deque
from typing import Iterator

import psutil

from ..core import (LOCAL, Assign, Complete, Delete, Fail, Fetch, FileFailed, FileHome, FilesCached, FileSpec,
                    Retract, Retracted, Scheduler, TaskSubmitted, TaskSucceeded, Tick, WorkerJoined)

SIZES = (10_000, 30_000, 100_000)
QUICK_SIZES = (1_000, 3_000)
WORKERS = 100
CORES = 4
CHAIN_LENGTH = 10
SOURCES = 100              # distinct user input files the tasks share
SUBMIT_BATCH = 100         # tasks a handle() call receives, as the manager's loop batches them
PHASES = {TaskSubmitted: "submit", WorkerJoined: "join", Tick: "tick"}   # the rest: completions
TICK = 0.25                # virtual seconds between Tick events, as the manager sends them
SOURCE_BYTES = 1_000_000
TEMP_BYTES = 1_000_000
OUTPUT_BYTES = 1_000


def workflow(n: int, seed: int = 1) -> Iterator[tuple[TaskSubmitted, float]]:
    """n task submissions with their (virtual) run times, in the order a user would submit them.

    Chains of CHAIN_LENGTH tasks (each reads the temp its predecessor made;
    the first reads a shared input, the last writes an output) alternate
    with as many independent tasks (a shared input in, an output out).
    """
    rng = random.Random(seed)
    run = f"{rng.getrandbits(32):08x}"
    sources = [FileSpec(f"file-{rng.getrandbits(160):040x}", size=SOURCE_BYTES, source=True)
               for _ in range(SOURCES)]
    tid = 0
    serial = 0

    def new(kind: str, home: bool = False) -> FileSpec:
        nonlocal serial
        serial += 1
        return FileSpec(f"{kind}-{run}-{serial}", home=home)

    while tid < n:
        length = min(CHAIN_LENGTH, n - tid)
        previous = rng.choice(sources)
        for i in range(length):
            last = i == length - 1
            made = new("out", home=True) if last else new("temp")
            tid += 1
            yield TaskSubmitted(tid, (previous,), (made,)), rng.uniform(0.5, 1.5)
            previous = made
        for _ in range(min(CHAIN_LENGTH, n - tid)):
            tid += 1
            yield TaskSubmitted(tid, (rng.choice(sources),), (new("out", home=True),)), rng.uniform(0.5, 1.5)


class SimulatedWorker:
    """A worker's side, as WorkerState plays it: a queue, a cache, cores."""

    __slots__ = ("id", "cores", "running", "queue", "have")

    def __init__(self, id: str, cores: int):
        self.id = id
        self.cores = cores
        self.running = 0
        self.queue: deque[tuple[int, tuple[str, ...]]] = deque()  # (task, inputs it waits for here)
        self.have: set[str] = set()


class Simulation:
    """Workers on a virtual clock, answering the core's commands with the events real workers send."""

    def __init__(self, core: Scheduler, durations: dict[int, float], outputs: dict[int, tuple[tuple[str, int], ...]],
                 workers: int, cores: int):
        self.core = core
        self.durations = durations
        self.outputs = outputs
        self.workers = {f"w{i}": SimulatedWorker(f"w{i}", cores) for i in range(workers)}
        self.now = 0.0
        self.running: list[tuple[float, int, str, float]] = []   # heap of (end, task, worker, start)
        self.started: set[int] = set()
        self.reports: list = []                                   # events for the next handle()
        self.completed = 0
        self.failed = 0
        self.core_seconds = 0.0      # CPU time inside Scheduler.handle
        self.core_wall = 0.0         # wall time inside Scheduler.handle
        self.by_event: dict[str, float] = {}   # CPU time by the kind of event handled

    def handle(self, *events) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        commands = self.core.handle(*events)
        cpu = time.process_time() - c0
        self.core_seconds += cpu
        self.core_wall += time.perf_counter() - t0
        kind = PHASES.get(type(events[0]), "complete")
        self.by_event[kind] = self.by_event.get(kind, 0.0) + cpu
        touched = set()
        for c in commands:
            kind = type(c)
            if kind is Assign:
                w = self.workers[c.worker]
                cached = []
                for a in c.tasks:
                    waits = []
                    for name, source in a.sources:
                        if source is LOCAL:
                            waits.append(name)
                        elif name not in w.have:   # fetched at once: transfers cost no time here
                            w.have.add(name)
                            cached.append((name, SOURCE_BYTES if name.startswith("file-") else TEMP_BYTES))
                    w.queue.append((a.task, tuple(waits)))
                if cached:
                    self.reports.append(FilesCached(w.id, tuple(cached)))
                touched.add(w)
            elif kind is Complete:
                self.completed += 1
            elif kind is Fail or kind is FileFailed:
                self.failed += 1
            elif kind is Fetch:
                self.reports.append(FileHome(c.name))
            elif kind is Delete:
                self.workers[c.worker].have.difference_update(c.names)
            elif kind is Retract:
                self._retract(c)
        for w in touched:
            self._start(w)

    def _retract(self, c: Retract) -> None:
        w = self.workers[c.worker]
        wanted = set(c.tasks)
        returned = tuple(tid for tid, _ in w.queue if tid in wanted)
        w.queue = deque(item for item in w.queue if item[0] not in wanted)
        started = tuple(tid for tid in c.tasks if tid in self.started)
        self.reports.append(Retracted(w.id, returned, started))

    def _start(self, w: SimulatedWorker) -> None:
        if w.running >= w.cores or not w.queue:
            return
        kept = deque()
        while w.queue:
            tid, waits = w.queue.popleft()
            if w.running < w.cores and all(name in w.have for name in waits):
                w.running += 1
                self.started.add(tid)
                heapq.heappush(self.running, (self.now + self.durations[tid], tid, w.id, self.now))
            else:
                kept.append((tid, waits))
        w.queue = kept

    def run(self) -> None:
        next_tick = TICK
        while self.running or self.reports:
            if self.reports:   # what workers answer at once goes before the next completion
                reports, self.reports = self.reports, []
                self.handle(*reports)
                continue
            if next_tick <= self.running[0][0]:
                self.now = next_tick
                next_tick += TICK
                self.handle(Tick(self.now))
                continue
            end, tid, wid, start = heapq.heappop(self.running)
            self.now = end
            w = self.workers[wid]
            w.running -= 1
            outs = self.outputs[tid]
            w.have.update(name for name, _ in outs)
            self.handle(TaskSucceeded(wid, tid, outs, start, end))
            self._start(w)


def submit_all(core: Scheduler, tasks: Iterator[TaskSubmitted], timer: Simulation | None = None) -> None:
    batch = []
    for event in tasks:
        batch.append(event)
        if len(batch) == SUBMIT_BATCH:
            timer.handle(*batch) if timer is not None else core.handle(*batch)
            batch = []
    if batch:
        timer.handle(*batch) if timer is not None else core.handle(*batch)


def timed_run(n: int, workers: int = WORKERS, cores: int = CORES) -> dict:
    """Submit n tasks, then let the workers join and run them all; the core's time and the wall time."""
    durations: dict[int, float] = {}
    outputs: dict[int, tuple[tuple[str, int], ...]] = {}

    def tasks() -> Iterator[TaskSubmitted]:
        for event, duration in workflow(n):
            durations[event.task] = duration
            outputs[event.task] = tuple((f.name, OUTPUT_BYTES if f.home else TEMP_BYTES) for f in event.outputs)
            yield event

    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    wall0 = time.perf_counter()
    core = Scheduler()
    sim = Simulation(core, durations, outputs, workers, cores)
    submit_all(core, tasks(), sim)
    pending = core.pending_count()
    rss_pending = psutil.Process().memory_info().rss - rss0
    sim.handle(*(WorkerJoined(w.id, w.cores, memory=64_000, disk=1_000_000) for w in sim.workers.values()))
    sim.run()
    wall = time.perf_counter() - wall0
    return {"tasks": n, "pending": pending, "completed": sim.completed, "failed": sim.failed,
            "core_s": sim.core_seconds, "core_wall_s": sim.core_wall, "makespan_s": wall,
            **{f"{kind}_s": sim.by_event.get(kind, 0.0) for kind in ("submit", "join", "tick", "complete")}, "simulated_s": sim.now,
            "rss_bytes_per_task": rss_pending / n}


def pending_bytes(n: int) -> int:
    """Bytes the core holds with n tasks submitted and none run (traced allocations)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        core = Scheduler()
        submit_all(core, (event for event, _ in workflow(n)))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        assert core.pending_count() == n
        return held
    finally:
        tracemalloc.stop()


def run(quick: bool) -> list[dict]:
    """One row a size: core CPU seconds per task, bytes per pending task, wall time of the run."""
    rows = []
    workers = 10 if quick else WORKERS
    timed_run(QUICK_SIZES[0], workers=workers)   # warm up: imports, allocator arenas
    for n in (QUICK_SIZES if quick else SIZES):
        timed = timed_run(n, workers=workers)
        held = pending_bytes(n)
        rows.append({
            "name": f"{n // 1000}k" if n % 1000 == 0 else str(n),
            "tasks": n,
            "seconds_per_task": timed["core_s"] / n,
            "bytes_per_task": held / n,
            "makespan_s": timed["makespan_s"],
            "completed": timed["completed"],
            "failed": timed["failed"],
            "wall_seconds_per_task": timed["core_wall_s"] / n,
            "workers": workers,
            "core_s": timed["core_s"],
            # where the core's CPU time went: submissions, workers joining (the first placements),
            # Tick events (the rebalancer's looks), completions and the answers to them
            "submit_s": timed["submit_s"],
            "join_s": timed["join_s"],
            "tick_s": timed["tick_s"],
            "complete_s": timed["complete_s"],
            "simulated_s": timed["simulated_s"],
            "rss_bytes_per_task": timed["rss_bytes_per_task"],
        })
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        phases = "  ".join(f"{k} {row[k + '_s'] / row['tasks'] * 1e6:.1f}" for k in ("submit", "join", "tick", "complete"))
        print(f"{row['name']:>5}  {row['seconds_per_task'] * 1e6:8.1f} us/task ({phases})  "
              f"{row['bytes_per_task']:8.0f} B/pending task  {row['makespan_s']:7.2f} s wall  "
              f"{row['completed']} completed, {row['failed']} failed", flush=True)
