"""What a worker decides, with no I/O: which inputs to fetch, which task to start.

The worker process feeds it events (tasks assigned, a file arrived or was
made, a task ended, a fetch failed) and carries out the instructions it
returns. A task starts the moment its last input is in the cache and a core
is free, so a group member made ready by its predecessor's output starts
without asking the manager. Tasks waiting for inputs hold no cores.

An input whose source is a Make is made here, once, by a task of the
worker's own (a *maker*, never reported to the manager): it waits for what
it reads like any task, then fetches a URL or unpacks an archive (holding
no core), or runs a mini-task (holding its cores). Its readers wait for the
file it makes; when it cannot be made, they are rejected naming why.
"""
from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..wire.messages import MANAGER, Make


class WorkState(enum.Enum):
    """A task's life on one worker."""

    WAITING = "waiting"    # some input is not in the cache yet
    READY = "ready"        # every input is here; waiting for a core
    RUNNING = "running"    # started (or handed to an interpreter's queue): holds a core or a queue place
    GONE = "gone"          # ended, given back, or rejected: no longer this worker's


W = WorkState
WORK_TRANSITIONS = {
    W.WAITING: frozenset({W.READY, W.RUNNING, W.GONE}),   # RUNNING: a call queued behind its producer
    W.READY: frozenset({W.RUNNING, W.GONE}),
    W.RUNNING: frozenset({W.GONE}),
    W.GONE: frozenset(),
}


class IllegalWorkTransition(RuntimeError):
    """WorkerState tried a transition WORK_TRANSITIONS does not allow: a bug in tether."""


def move(t: "WorkTask", new: WorkState) -> None:
    """The one place a task's state on the worker changes."""
    if new not in WORK_TRANSITIONS[t.state]:
        raise IllegalWorkTransition(f"task {t.id}: {t.state.name} -> {new.name} on the worker")
    t.state = new


@dataclass(slots=True, eq=False)
class WorkTask:
    id: int
    spec: Any                                  # the TaskSpec the manager sent (wire.messages)
    inputs: list[tuple[str, str]]              # (sandbox name, cache name)
    outputs: list[tuple[str, str]]
    sources: dict[str, Any]                    # cache name -> source (None: local)
    cores: int = 1
    memory: int = 0                            # MB: its limit here (0: not watched)
    disk: int = 0
    gpus: int = 0
    priority: float = 0
    devices: tuple[int, ...] = ()              # the GPUs it was given when it started
    missing: set[str] = field(default_factory=set)
    state: WorkState = WorkState.WAITING      # changed only by move()
    light: bool = False                        # a one-core Python call that may queue in an interpreter
    result: str | None = None                  # the result a light call keeps in its interpreter
    makes: str | None = None                   # a maker: the cache name of the file it makes here
    make: Any = None                           # ... and how (a wire.messages.Make)


def from_assignment(a) -> WorkTask:
    """A task as this worker keeps it, from its assignment (a wire.messages.AssignedTask)."""
    spec = a.spec
    inputs, sources = [], {}
    for i in a.inputs:
        if i.sandbox is not None:
            inputs.append((i.sandbox, i.name))
        sources[i.name] = i.source
    cores, memory, disk, gpus = a.held if a.held is not None else (max(1, spec.cores), spec.memory, spec.disk, 0)
    light = spec.kind == "py" and cores == 1 and not memory and not disk and not gpus and not spec.timeout
    return WorkTask(spec.id, spec, inputs, list(spec.outputs), sources, cores, memory, disk, gpus, spec.priority,
                    light=light, result=spec.result if light else None)


@dataclass(frozen=True, slots=True)
class Fetch:
    name: str
    source: Any


@dataclass(frozen=True, slots=True)
class Start:
    task: WorkTask
    after: int | None = None   # run it in the interpreter of this task, right after it


@dataclass(frozen=True, slots=True)
class Reject:
    """Tell the manager a task could not run here (an input could not be had)."""

    task: int
    reason: str
    message: str
    file: str | None = None
    source: Any = None


@dataclass(frozen=True, slots=True)
class Remove:
    name: str


@dataclass(frozen=True, slots=True)
class Evict:
    """The cache is over its budget: drop this content-named file and tell the manager it is gone
    from here (the manager holds it, and sends it again when a task here needs it)."""

    name: str


@dataclass(frozen=True, slots=True)
class Unfetched:
    """A file the manager counts on here could not be had (a copy it asked for with Pull, a file
    this worker was to make): tell it the file is not here."""

    name: str
    message: str


# content-named files (user inputs, buffers, functions): the manager can always send them again
CONTENT_PREFIXES = ("file-", "buf-")
MAKER_IDS = 1 << 61   # makers' ids start here, far above the manager's task ids


Instruction = Fetch | Start | Reject | Remove | Evict | Unfetched


class WorkerState:
    """python_depth: how many light Python tasks may be handed to each
    interpreter at once (1: one at a time). The worker raises it while
    Python tasks are short, so that interpreters never wait for the next
    request; each interpreter still runs one task at a time, so the cores in
    use stay within the worker's cores."""

    def __init__(self, cores: int, memory: int = 0, disk: int = 0, cache_budget: int = 0, gpus: int = 0):
        self.cores = cores
        self.gpus = gpus
        self.free_gpus: list[int] = list(range(gpus))   # device ids no running task holds
        self.ranked = False         # a task with a priority other than 0 came: the ready queue is kept in order
        self.cache_budget = cache_budget    # bytes the cache may hold before content-named files go (0: no limit)
        self.present_bytes = 0
        self.unused: dict[str, None] = {}   # content-named files here, least recently used first
        self.memory = memory
        self.disk = disk
        self.python_depth = 1
        self.queued_light = 0       # light tasks handed over beyond the cores
        self.making: dict[str, WorkTask] = {}   # result -> the started light call making it
        self.used_cores = 0
        self.used_memory = 0
        self.used_disk = 0
        self.tasks: dict[int, WorkTask] = {}
        self.present: dict[str, int] = {}          # cache name -> size
        self.fetching: dict[str, Any] = {}         # cache name -> source
        self.pulled: set[str] = set()               # being fetched because the manager asked (Pull)
        self.waiters: dict[str, list[WorkTask]] = {}
        self.ready: deque[WorkTask] = deque()
        self._maker_ids = itertools.count(MAKER_IDS)

    # ------------------------------------------------------------ events

    def assign(self, tasks: list[WorkTask]) -> list[Instruction]:
        out: list[Instruction] = []
        added: list[WorkTask] = []
        for t in tasks:
            if t.id in self.tasks:
                continue  # already here (a duplicate send): keep the first
            self._admit(t, added, out)
        out.extend(self._reject_unmade(added))
        for t in added:
            if t.state is not W.WAITING:
                continue   # rejected
            if not t.missing:
                out.extend(self._now_ready(t))
            else:
                out.extend(self._start_early(t))
        out.extend(self._start_ready())
        return out

    def _admit(self, t: WorkTask, added: list[WorkTask], out: list[Instruction]) -> None:
        """Take t on: wait for each input not here, fetching it or having a maker make it."""
        self.tasks[t.id] = t
        added.append(t)
        for name, source in t.sources.items():
            if name in self.present:
                if name in self.unused:   # used again: the last to go
                    del self.unused[name]
                    self.unused[name] = None
                continue
            t.missing.add(name)
            self.waiters.setdefault(name, []).append(t)
            if source is not None and name not in self.fetching:
                self.fetching[name] = source
                if type(source) is Make:
                    self._admit(self._maker(name, source, t), added, out)
                else:
                    out.append(Fetch(name, source))

    def _maker(self, name: str, make: Make, reader: WorkTask) -> WorkTask:
        """The task of this worker's own that makes name; what it reads comes as the reader's does."""
        sources = {n: reader.sources.get(n) for n in make.needs}
        spec = make.task
        if spec is None:   # a URL or an archive: the worker's own I/O, holding no core
            return WorkTask(next(self._maker_ids), None, [], [], sources, cores=0, makes=name, make=make)
        inputs = [(sandbox, n) for sandbox, n in make.inputs if sandbox is not None]
        return WorkTask(next(self._maker_ids), spec, inputs, list(spec.outputs), sources, spec.cores, spec.memory,
                        spec.disk, makes=name, make=make)

    def _now_ready(self, t: WorkTask, front: bool = False) -> list[Instruction]:
        """t has every input: queue it for a core, or start a maker that needs none at once."""
        if t.make is not None and t.spec is None:
            move(t, W.RUNNING)
            return [Start(t)]
        move(t, W.READY)
        self._queue(t, first=front)
        return []

    def make_failed(self, task_id: int, message: str, reason: str = "input") -> list[Instruction]:
        """A maker ended without making its file: the tasks reading it are rejected with message."""
        t = self.tasks.get(task_id)
        out = self.task_ended(task_id)
        if t is not None and t.makes is not None:
            out.extend(self.fetch_failed(t.makes, message, reason))
            out.append(Unfetched(t.makes, message))   # (also when no reader waits for it any more)
        return out

    def _refuse(self, t: WorkTask, reason: str, message: str, file: str | None, source: Any) -> list[Instruction]:
        """t (forgotten already) cannot run here: tell the manager, or, for a maker, its readers."""
        if t.makes is None:
            return [Reject(t.id, reason, message, file, source)]
        return self.fetch_failed(t.makes, message, reason)

    def pull(self, files: list[tuple[str, Any]]) -> list[Instruction]:
        """The manager asks for copies of files (a retiring worker's temps): fetch those not here."""
        out: list[Instruction] = []
        for name, source in files:
            if name in self.present or name in self.fetching:
                continue
            self.pulled.add(name)
            self.fetching[name] = source
            out.append(Fetch(name, source))
        return out

    def file_present(self, name: str, size: int, made_here: bool = False) -> list[Instruction]:
        """name is in the cache now: fetched, or made by a task here.

        A task made ready by a file made here is the next member of a group:
        it goes to the front of the queue, so a sequence runs through without
        interleaving with other work and each hop is as short as it can be.
        """
        self._hold(name, size)
        self.fetching.pop(name, None)
        self.pulled.discard(name)
        out: list[Instruction] = []
        for t in self.waiters.pop(name, ()):
            t.missing.discard(name)
            if not t.missing and t.state is W.WAITING and t.id in self.tasks:
                out.extend(self._now_ready(t, front=made_here))
        out.extend(self._start_ready())
        if self.cache_budget and self.present_bytes > self.cache_budget and self.unused:
            out.extend(self._evict())   # only inputs can go: temps alone over budget cost no scan
        return out

    def adopt_cached(self, files: dict[str, int]) -> list[Instruction]:
        """Content-named files left in the cache by earlier runs, least recently used first: they are
        the first to go. Past the budget, the least recently used go at once (the Evicts returned)."""
        for name, size in files.items():
            self._hold(name, size)
        if self.cache_budget and self.present_bytes > self.cache_budget:
            return self._evict()
        return []

    def _hold(self, name: str, size: int) -> None:
        """name is in the cache, size bytes; a content-named file becomes the most recently used."""
        self.present_bytes += size - self.present.get(name, 0)
        self.present[name] = size
        if name.startswith(CONTENT_PREFIXES):
            self.unused.pop(name, None)
            self.unused[name] = None

    def gone(self, name: str) -> None:
        """A file is no longer here (a result that died with its interpreter)."""
        size = self.present.pop(name, None)
        if size is not None:
            self.present_bytes -= size
            self.unused.pop(name, None)

    def _evict(self) -> list[Instruction]:
        """Least recently used content-named files go until the cache fits its budget; never one
        that a task here reads. Temps and results are the manager's to collect."""
        needed = {name for t in self.tasks.values() for name in t.sources}
        out: list[Instruction] = []
        for name in list(self.unused):
            if self.present_bytes <= self.cache_budget:
                break
            if name in needed:
                continue
            self.gone(name)
            out.append(Evict(name))
        return out

    def fetch_failed(self, name: str, message: str, reason: str = "input") -> list[Instruction]:
        """An input could not be had: from its source ("input"), or kept here ("disk-full", "worker")."""
        source = self.fetching.pop(name, None)
        out: list[Instruction] = []
        if name in self.pulled:
            self.pulled.discard(name)
            out.append(Unfetched(name, message))
        for t in self.waiters.pop(name, ()):
            if self.tasks.get(t.id) is t and t.state is W.WAITING:
                self._forget(t)
                out.extend(self._refuse(t, reason, message, name, source))
        return out

    def task_ended(self, task_id: int, outputs: dict[str, int] | None = None) -> list[Instruction]:
        """A running task ended; outputs (cache name -> size) are in the cache if it succeeded."""
        t = self.tasks.pop(task_id, None)
        if t is not None and t.result is not None and self.making.get(t.result) is t:
            del self.making[t.result]
        if t is not None and t.state is W.RUNNING:
            if t.light and self.queued_light:
                self.queued_light -= 1   # a queued light task takes over the core
            else:
                self.used_cores -= t.cores
                self.used_memory -= t.memory
                self.used_disk -= t.disk
                if t.devices:
                    self.free_gpus.extend(t.devices)
                    self.free_gpus.sort()
            move(t, W.GONE)
        out: list[Instruction] = []
        hop = t is None or t.makes is None   # a group's next member goes first; a maker's readers in turn
        for name, size in (outputs or {}).items():
            out.extend(self.file_present(name, size, made_here=hop))
        out.extend(self._start_ready())
        return out

    def retract(self, task_ids: list[int]) -> tuple[list[int], list[int]]:
        """Give back tasks not yet started. Returns (returned, started or unknown)."""
        returned, started = [], []
        for tid in task_ids:
            t = self.tasks.get(tid)
            if t is None or t.state is W.RUNNING:
                started.append(tid)
            else:
                self._forget(t)
                returned.append(tid)
        return returned, started

    def delete(self, names: list[str]) -> list[Instruction]:
        out: list[Instruction] = []
        for name in names:
            if name in self.present:
                self.gone(name)
                out.append(Remove(name))
        return out

    # ------------------------------------------------------------ internals

    def _forget(self, t: WorkTask) -> None:
        del self.tasks[t.id]
        for name in t.missing:
            waiting = self.waiters.get(name)
            if waiting and t in waiting:
                waiting.remove(t)
        if t.state is W.READY:
            self.ready.remove(t)
        move(t, W.GONE)

    def _reject_unmade(self, tasks: list[WorkTask]) -> list[Instruction]:
        """Reject tasks told an input is here (source None) when it is not, nor on its way, nor made by a task here.

        The manager names this worker as the source when it believes the file
        is in the cache, or that a task before it here makes it. Its belief can
        be stale (the file vanished and the news is on its way); waiting would
        wait for ever, so the task goes back at once, naming the file.
        """
        out: list[Instruction] = []
        made = None
        for t in tasks:
            for name in t.missing:
                if t.sources[name] is not None or name in self.fetching:
                    continue
                if name.startswith(CONTENT_PREFIXES):   # evicted meanwhile: the manager sends it again
                    t.sources[name] = MANAGER
                    self.fetching[name] = MANAGER
                    out.append(Fetch(name, MANAGER))
                    continue
                if made is None:
                    made = {o for task in self.tasks.values() for _, o in task.outputs}
                    made.update(task.spec.result for task in self.tasks.values()
                                if task.spec is not None and task.spec.result is not None)
                if name not in made:
                    self._forget(t)
                    out.extend(self._refuse(t, "input", f"{name} is not in this worker's cache", name, None))
                    break
        return out

    def _queue(self, t: WorkTask, first: bool = False) -> None:
        """t is ready: behind the ready tasks of its priority or higher (first: ahead of those of its
        own priority, as a group's next member is)."""
        if t.priority:
            self.ranked = True
        ready = self.ready
        if not self.ranked or not ready:
            if first:
                ready.appendleft(t)
            else:
                ready.append(t)
            return
        p = t.priority
        for i, other in enumerate(ready):
            if other.priority < p or (first and other.priority == p):
                ready.insert(i, t)
                return
        ready.append(t)

    def _fits(self, t: WorkTask) -> bool:
        return (self.used_cores + t.cores <= self.cores
                and (not t.memory or self.used_memory + t.memory <= self.memory)
                and (not t.disk or self.used_disk + t.disk <= self.disk)
                and len(self.free_gpus) >= t.gpus)

    def _can_queue(self, t: WorkTask) -> bool:
        return t.light and self.queued_light < self.cores * (self.python_depth - 1)

    def _start_ready(self) -> list[Instruction]:
        out: list[Instruction] = []
        if not self.ready or (self.used_cores >= self.cores and self.python_depth == 1):
            return out
        kept: deque[WorkTask] = deque()
        while self.ready:
            t = self.ready.popleft()
            if self._fits(t):
                self.used_cores += t.cores
                self.used_memory += t.memory
                self.used_disk += t.disk
                if t.gpus:
                    t.devices = tuple(self.free_gpus[:t.gpus])
                    del self.free_gpus[:t.gpus]
            elif self._can_queue(t):
                self.queued_light += 1
            else:
                kept.append(t)
                if self.used_cores >= self.cores and self.queued_light >= self.cores * (self.python_depth - 1):
                    break
                continue
            move(t, W.RUNNING)
            out.append(Start(t))
            if t.light and t.result is not None:
                self.making[t.result] = t
                for waiting in list(self.waiters.get(t.result, ())):
                    out.extend(self._start_early(waiting))
        kept.extend(self.ready)
        self.ready = kept
        return out

    def _start_early(self, t: WorkTask) -> list[Instruction]:
        """Hand a light call to the interpreter making the one result it still waits for.

        The interpreter runs its requests in order, so the call runs right after
        its producer, with the value already in memory: the hop costs no round
        trip to this process. It holds no core meanwhile (it cannot run before
        its producer), and takes the producer's core when the producer ends.
        """
        if not t.light or t.state is not W.WAITING or not t.missing:
            return []
        producers = {self.making.get(name) for name in t.missing}
        if len(producers) != 1:
            return []
        producer = producers.pop()
        if producer is None or producer.state is not W.RUNNING:
            return []
        for name in t.missing:
            waiting = self.waiters.get(name)
            if waiting and t in waiting:
                waiting.remove(t)
        t.missing.clear()
        move(t, W.RUNNING)
        self.queued_light += 1
        return [Start(t, after=producer.id)]

    # ------------------------------------------------------------ checks

    def validate(self) -> None:
        """Check the invariants between two events; raises AssertionError naming the first broken one."""
        running = [t for t in self.tasks.values() if t.state is W.RUNNING]
        for tid, t in self.tasks.items():
            assert t.id == tid and t.state is not W.GONE, f"task {tid} is listed but {t.state.name}"
            if t.state is W.WAITING:
                assert t.missing, f"task {tid} is WAITING with every input here"
                for name in t.missing:
                    assert name not in self.present, f"task {tid} waits for {name}, which is here"
                    assert t in self.waiters.get(name, ()), f"task {tid} waits for {name} unheard"
            if t.state is W.READY:
                assert not t.missing and t in self.ready, f"task {tid} is READY but not queued"
        for t in self.ready:
            assert t.state is W.READY and self.tasks.get(t.id) is t, f"task {t.id} queued but {t.state.name}"
        assert len(set(map(id, self.ready))) == len(self.ready), "a task is queued twice"
        assert self.used_cores + self.queued_light == sum(t.cores for t in running), (
            f"cores: {self.used_cores} used + {self.queued_light} queued light calls, but running tasks "
            f"hold {sum(t.cores for t in running)}")
        assert 0 <= self.used_cores <= self.cores, f"{self.used_cores} of {self.cores} cores used"
        assert self.used_memory == sum(t.memory for t in running if not t.light), "memory miscounted"
        assert self.used_disk == sum(t.disk for t in running if not t.light), "disk miscounted"
        held = [d for t in running for d in t.devices]
        assert len(held) == len(set(held)) == sum(t.gpus for t in running), "a GPU is given twice, or miscounted"
        assert sorted(held + self.free_gpus) == list(range(self.gpus)), "GPUs lost or made up"
        for name in self.fetching:
            assert name not in self.present, f"{name} is both here and being fetched"
        for name in self.pulled:
            assert name in self.fetching, f"{name} was asked for but is not being fetched"
        assert self.present_bytes == sum(self.present.values()), "cache bytes miscounted"
        for name in self.unused:
            assert name in self.present, f"{name} is listed for eviction but not here"
        for name, t in self.making.items():
            assert t.state is W.RUNNING and t.result == name, f"{name} is made by task {t.id} ({t.state.name})"
        for t in self.tasks.values():
            if t.makes is not None:
                assert t.makes in self.fetching and t.makes not in self.present, (
                    f"maker {t.id} of {t.makes} is listed, but the file is here or no longer awaited")
