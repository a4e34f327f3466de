"""The scheduler core alone at scale: does its cost per task stay flat?

No processes or sockets: tether.core.Scheduler is driven with events, as
the manager's engine drives it, by the simulated cluster of tether.simulate
(a real WorkerState per worker, on a virtual clock). The workflow is shaped
like real ones: half the tasks form chains that pass temp files (so groups
are formed and committed), the other half are independent tasks that read a
shared input and write an output brought home. Each size is run twice:

  timed     submit every task, let the workers join, run the simulation
            until every task has completed, keeping each batch of events
            the core was handed; then hand the same batches to a fresh core
            (it is deterministic: it does the same work) and time each call.
            The time spent inside Scheduler.handle is the core's cost
            (submit + schedule + complete), counted in CPU time, and on the
            replay, so that neither other work on a shared machine nor the
            simulation's own work between the calls inflates it (the wall
            time is in the row too)
  memory    submit every task again under tracemalloc, with no worker yet,
            so every task is pending; the bytes the core then holds,
            divided by the tasks, is the manager's memory per pending task

Rows: {"name", "tasks", "seconds_per_task", "bytes_per_task", "makespan_s", ...}
where makespan_s is the wall time of the size's timed run (simulation and replay).
"""
from __future__ import annotations

import gc
import random
import time
import tracemalloc
from typing import Iterator

import psutil

from tether.core import Complete, FileSpec, Scheduler, TaskSubmitted, Tick, WorkerJoined
from tether.simulate import Cluster

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


class RecordingCluster(Cluster):
    """The simulated cluster (tether.simulate), keeping every batch of events it hands the core.

    Messages and transfers take no time here (latency 0, unbounded
    bandwidth), and outputs reach home at once: the virtual clock moves only
    with the tasks' run times.
    """

    def __init__(self, core: Scheduler):
        super().__init__(core, latency=0.0, bandwidth=float("inf"), tick=TICK,
                         size=lambda name: OUTPUT_BYTES if name.startswith("out-") else TEMP_BYTES)
        self.batches: list[list] = []

    def handle(self, events):
        self.batches.append(events)
        return self.core.handle(*events)


def replay(batches: list[list]) -> tuple[float, float, dict[str, float]]:
    """Hand the same batches to a fresh core, timed: (CPU seconds, wall seconds, CPU seconds by kind of event).

    The core is deterministic, so it does exactly the work it did in the
    simulation; timed alone, the simulation's own work between the calls
    (a real WorkerState per worker) does not count against it.
    """
    core = Scheduler()
    cpu_total = wall_total = 0.0
    by_event: dict[str, float] = {}
    for events in batches:
        t0, c0 = time.perf_counter(), time.process_time()
        core.handle(*events)
        cpu = time.process_time() - c0
        wall_total += time.perf_counter() - t0
        cpu_total += cpu
        kind = PHASES.get(type(events[1]), "complete") if len(events) > 1 else "tick"   # each behind a Tick
        by_event[kind] = by_event.get(kind, 0.0) + cpu
    return cpu_total, wall_total, by_event


def submit_all(core: Scheduler, tasks: Iterator[TaskSubmitted]) -> None:
    batch = []
    for event in tasks:
        batch.append(event)
        if len(batch) == SUBMIT_BATCH:
            core.handle(*batch)
            batch = []
    if batch:
        core.handle(*batch)


def timed_run(n: int, workers: int = WORKERS, cores: int = CORES) -> dict:
    """Submit n tasks, let the workers join and run them all, then time the core on the same events."""
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    wall0 = time.perf_counter()
    sim = RecordingCluster(Scheduler())
    for i, (event, duration) in enumerate(workflow(n), 1):
        sim.submit(event, duration)
        if i % SUBMIT_BATCH == 0:
            sim.flush()     # as the manager's loop hands submissions over, in batches
    sim.flush()
    pending = sim.core.pending_count()
    rss_pending = psutil.Process().memory_info().rss - rss0
    for _ in range(workers):
        sim.add_worker(cores, memory=64_000, disk=1_000_000)
    sim.run()
    outcomes = [type(o[0]) for o in sim.outcomes.values()]
    batches, simulated = sim.batches, sim.now
    del sim
    gc.collect()
    core_s, core_wall, by_event = replay(batches)
    wall = time.perf_counter() - wall0
    return {"tasks": n, "pending": pending, "completed": outcomes.count(Complete),
            "failed": len(outcomes) - outcomes.count(Complete),
            "core_s": core_s, "core_wall_s": core_wall, "makespan_s": wall,
            **{f"{kind}_s": by_event.get(kind, 0.0) for kind in ("submit", "join", "tick", "complete")},
            "simulated_s": simulated, "rss_bytes_per_task": rss_pending / n}


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
