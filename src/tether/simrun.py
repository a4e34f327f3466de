"""`tether simulate`: a workflow trace on a simulated cluster, and what it would cost.

The trace's tasks are submitted to the real Scheduler, driven by the
simulated cluster of tether.simulate (a real WorkerState per worker, on a
virtual clock), as a user of the Manager would submit them: every input no
task makes starts at the manager, every output no task reads goes home, the
rest are temps. A task runs for its traced run time times `time_scale`
(plus `overhead`, what starting and reporting a task costs a real worker),
and writes each output at its traced size times `size_scale`.

Larger workflows are `copies` independent copies of the trace, each with
files of its own: WfCommons' recipes grow too slowly to make a million
tasks in one instance.

What it reports (`Result`): the makespan (virtual seconds until the last
task settled), the bytes moved each way, each worker's peak cache use, and
the wall time spent inside Scheduler.handle, the manager's own cost.
"""
from __future__ import annotations

import gc
import inspect
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

from .core import Complete, Fail, FileSpec, Scheduler, TaskSubmitted
from .simulate import Cluster
from .traces import Trace, TraceError

PLACEMENTS = ("graph", "groups", "none")
GENERATE_LIMIT = 10_000   # tasks of the largest instance made from a recipe: beyond, copies of one
DEFAULT_TASKS = 1_000     # tasks made from a recipe when --tasks is not given
UNSET = "default"        # an option not given: the Scheduler's own default
ORDERS = ("critical", "depth", "breadth")
GC_THRESHOLD = 100_000   # allocations between the cycle collector's looks at the youngest objects (700 by default)
SUBMIT_BATCH = 1_000     # tasks handed to the core at once, as the manager's loop batches submissions
WORKER_MEMORY = 1 << 20  # MB a simulated worker offers: the traces ask for none
UNITS = {"": 1, "b": 1, "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
         "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bandwidth(text: str) -> float:
    """Bytes per second from "1gbit", "10Gbit/s", "125MB/s", "1e8" (bytes/s)."""
    s = str(text).strip().lower().replace(" ", "")
    if s.endswith("/s"):
        s = s[:-2]
    elif s.endswith("bps"):   # 1gbps: bits
        s = s[:-3] + "bit"
    number = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    try:
        value = float(number) * UNITS[s[len(number):]]
    except (KeyError, ValueError):
        raise ValueError(f"expected a bandwidth such as 1gbit, 10Gbit/s or 125MB/s, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"a bandwidth must be a positive number, got {text!r}")
    return value


@dataclass(slots=True)
class Setup:
    """The simulated cluster and the scheduler's options."""

    workers: int = 4
    cores: int = 1
    bandwidth: float = 125e6     # bytes/s of every link, the manager's included
    latency: float = 0.001       # seconds a message takes each way
    overhead: float = 0.0        # seconds a real worker adds to each task's run (start, report)
    time_scale: float = 1.0
    size_scale: float = 1.0
    placement: str | None = None   # None: the Scheduler's default (each option below too)
    order: str = UNSET
    prune: object = UNSET          # a depth, None (no pruning), or UNSET: not given
    batch: float = 0.0           # the manager handles what arrived within this many seconds at once
    tick: float = 0.25

    def check(self) -> None:
        if self.workers < 1 or self.cores < 1:
            raise ValueError("--workers and --cores must be at least 1")
        if self.placement is not None and self.placement not in PLACEMENTS:
            raise ValueError(f"--placement must be one of {', '.join(PLACEMENTS)}, not {self.placement!r}")
        if self.order is not UNSET and self.order not in ORDERS:
            raise ValueError(f"--order must be one of {', '.join(ORDERS)}, not {self.order!r}")
        for name in ("latency", "overhead", "time_scale", "size_scale", "batch"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative")
        if self.prune is not UNSET and self.prune is not None and (type(self.prune) is not int or self.prune < 0):
            raise ValueError("--prune must be a depth of 0 or more, or none")


def scheduler_options(setup: Setup, scheduler: type = Scheduler) -> tuple[dict, list[str]]:
    """The keyword arguments for Scheduler that it accepts, and the options given that it does not take (yet).

    Only what was given is passed (None: the Scheduler's default). placement
    "none" and "groups" are `group_tasks` False and True; every option is
    passed by its own name too once Scheduler takes it.
    """
    accepted = inspect.signature(scheduler.__init__).parameters
    kwargs: dict = {"bandwidth": setup.bandwidth} if "bandwidth" in accepted else {}
    ignored = []
    if setup.placement is not None:
        if "group_tasks" in accepted:
            kwargs["group_tasks"] = setup.placement != "none"
        if "placement" in accepted:
            kwargs["placement"] = setup.placement
        elif setup.placement == "graph" or "group_tasks" not in accepted:
            ignored.append(f"placement={setup.placement}" + (" (ran as groups)" if "group_tasks" in accepted else ""))
    for name in ("order", "prune"):
        value = getattr(setup, name)
        if value is UNSET:
            continue
        if name in accepted:
            kwargs[name] = value
        else:
            ignored.append(f"{name}={value}")
    return kwargs, ignored


@dataclass(slots=True)
class Result:
    workflow: str
    tasks: int
    copies: int
    completed: int
    failed: int
    makespan_s: float                     # virtual seconds until the last task settled
    bytes_manager_to_worker: int
    bytes_worker_to_worker: int
    bytes_worker_to_manager: int
    peak_disk_max: int                    # bytes, the worker whose cache held the most at a time
    peak_disk_median: int
    scheduling_s: float                   # wall seconds inside Scheduler.handle
    scheduling_s_per_task: float
    scheduling_cpu_s: float               # CPU seconds inside Scheduler.handle (others' load does not count)
    wall_s: float                         # wall seconds of the whole simulation
    cpu_s: float                          # CPU seconds of this process meanwhile (a busy machine inflates wall_s)
    peak_rss_bytes: int                   # the most memory this process has held, simulation included
    handles: int                          # calls into the core
    setup: dict = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)   # options this Scheduler does not take yet

    def as_dict(self) -> dict:
        return asdict(self)


class TimedCluster(Cluster):
    """The simulated cluster, timing each call into the core, and saying how far it got every `every` tasks."""

    def __init__(self, core: Scheduler, progress=None, every: int = 0, **kw):
        super().__init__(core, **kw)
        self.core_seconds = 0.0
        self.core_cpu_seconds = 0.0
        self.progress = progress
        self.every = every

    def handle(self, events):
        t0, c0 = time.perf_counter(), time.thread_time()
        out = self.core.handle(*events)
        self.core_cpu_seconds += time.thread_time() - c0
        self.core_seconds += time.perf_counter() - t0
        return out

    def _settle(self, c) -> None:
        super()._settle(c)
        settled = self.settled[Complete] + self.settled[Fail]
        if self.progress is not None and settled % self.every == 0:
            self.progress(settled, self.now)


def workload(trace: Trace, copies: int, setup: Setup, limit: int | None = None
             ) -> Iterator[tuple[TaskSubmitted, float, dict[str, int]]]:
    """(submission, run seconds, output sizes) of each task, copy after copy, producers first,
    `limit` tasks at most (the last copy cut short: what its missing tasks would read is made and dropped).

    Files are named as the Manager names them: inputs by content (file-),
    outputs that go home (out-) and temps (temp-), each copy with its own.
    """
    made, read = trace.made(), trace.read()
    sizes = {f: int(s * setup.size_scale) for f, s in trace.sizes.items()}
    kinds = {f: ("temp" if f in read else "out") for f in made}
    kinds.update({f: "file" for f in read - made})
    index = {f: i for i, f in enumerate(sorted(kinds))}
    durations = [t.runtime * setup.time_scale + setup.overhead for t in trace.tasks]
    tid = 0
    for copy in range(copies):
        names = {f: f"{k}-{copy}-{index[f]}" for f, k in kinds.items()}
        specs = {f: FileSpec(names[f], size=sizes.get(f, 0), source=True) if k == "file" else
                 FileSpec(names[f], home=k == "out") for f, k in kinds.items()}
        for t, seconds in zip(trace.tasks, durations):
            if tid == limit:
                return
            tid += 1
            yield (TaskSubmitted(tid, tuple(specs[f] for f in t.inputs), tuple(specs[f] for f in t.outputs)),
                   seconds, {names[f]: sizes.get(f, 0) for f in t.outputs})


def simulate(trace: Trace, setup: Setup, copies: int = 1, limit: int | None = None, progress=None) -> Result:
    """Run `copies` copies of the trace (`limit` tasks at most) on the simulated cluster to the end;
    progress(tasks settled, virtual time) is called at each tenth of the tasks."""
    setup.check()
    if copies < 1:
        raise ValueError("--copies must be at least 1")
    kwargs, ignored = scheduler_options(setup)
    threshold = gc.get_threshold()
    # the core and the cluster cut their own cycles (a forgotten task leaves none): the cycle collector need
    # rarely look, and each look at a million live records would cost as much as many events
    gc.set_threshold(GC_THRESHOLD, 50, 1000)
    try:
        return _simulate(trace, setup, copies, limit, progress, kwargs, ignored)
    finally:
        gc.set_threshold(*threshold)


def _simulate(trace: Trace, setup: Setup, copies: int, limit: int | None, progress, kwargs: dict,
              ignored: list[str]) -> Result:
    wall0 = time.perf_counter()
    total = limit or copies * len(trace.tasks)
    sim = TimedCluster(Scheduler(**kwargs), progress, max(1, total // 10), latency=setup.latency,
                       bandwidth=setup.bandwidth, tick=setup.tick, batch=setup.batch, shared_links=True,
                       history=False)
    cpu0 = time.process_time()
    n = 0
    held: list[str] = []
    for event, seconds, sizes in workload(trace, copies, setup, limit):
        sim.submit(event, seconds, sizes)
        held.extend(f.name for f in event.outputs)
        held.extend(f.name for f in event.inputs if f.source)
        n += 1
        if n % SUBMIT_BATCH == 0:
            _let_go(sim, held)
    _let_go(sim, held)
    for _ in range(setup.workers):
        sim.add_worker(setup.cores, memory=WORKER_MEMORY)
    sim.run(limit=1 << 62)
    completed, failed = sim.settled[Complete], sim.settled[Fail]
    if completed + failed != n:
        raise RuntimeError(f"the simulation ended with {n - completed - failed} of {n} tasks unsettled")
    peaks = sorted(w.peak_disk for w in sim.workers.values())
    c = sim.counters
    return Result(trace.name, n, copies, completed, failed, sim.last_settled,
                  c["bytes_manager_to_worker"], c["bytes_worker_to_worker"], c["bytes_worker_to_manager"],
                  peaks[-1], int(statistics.median(peaks)), sim.core_seconds, sim.core_seconds / n,
                  sim.core_cpu_seconds,
                  time.perf_counter() - wall0, time.process_time() - cpu0,
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, c["handles"], asdict(setup), ignored)


def _let_go(sim: Cluster, names: list[str]) -> None:
    """Submit what was queued, then let go of the handles to its files, as a user holding no File does:
    what nothing needs any more can then be forgotten (the core keeps a million tasks in bounded memory)."""
    sim.flush()
    for name in names:
        sim.release(name)
    names.clear()
    sim.flush()


def prepare(spec: str, tasks: int | None = None, copies: int | None = None, seed: int = 1
            ) -> tuple[Trace, int, int | None]:
    """(trace, copies, task limit) for TRACE: a WfFormat file, or a WfCommons recipe name.

    --tasks M: a recipe makes an instance of about M tasks (the recipe
    decides), up to GENERATE_LIMIT; beyond, one of GENERATE_LIMIT is copied
    until there are exactly M (the last copy cut short); a file is copied
    likewise. --copies K: K whole copies.
    """
    from pathlib import Path

    from . import traces

    if tasks is not None and copies is not None:
        raise ValueError("give --tasks or --copies, not both")
    if tasks is not None and tasks < 1 or copies is not None and copies < 1:
        raise ValueError("--tasks and --copies must be at least 1")
    path = Path(spec)
    if path.exists() or spec.endswith(".json"):
        trace = traces.load(path)
    elif spec.lower() in traces.RECIPES:
        trace = traces.generate(spec, min(tasks or DEFAULT_TASKS, GENERATE_LIMIT), seed)
    else:
        raise TraceError(f"{spec!r} is neither a WfFormat file nor a WfCommons recipe "
                         f"({', '.join(sorted(traces.RECIPES))})")
    if tasks is None or (tasks <= GENERATE_LIMIT and not path.exists()):
        return trace, copies or 1, None   # (a recipe's instance has about the tasks asked for)
    return trace, -(-tasks // len(trace.tasks)), tasks
