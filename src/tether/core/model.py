"""The records the core keeps: tasks, files, workers and groups.

Plain slotted objects: the manager may hold hundreds of thousands of
pending tasks, so each record is kept small (no per-object dict).
"""
from __future__ import annotations

from enum import IntEnum


class State(IntEnum):
    WAITING = 0    # some input is not made yet
    READY = 1      # every input exists somewhere; waiting for a worker
    ASSIGNED = 2   # sent to a worker (running, queued there, or waiting on a group member)
    DONE = 3
    FAILED = 4
    CANCELLED = 5


TERMINAL = (State.DONE, State.FAILED, State.CANCELLED)


class TaskNode:
    __slots__ = ("id", "inputs", "outputs", "cores", "memory", "disk", "priority", "retries_left",
                 "state", "missing", "worker", "active", "active_since", "group", "attempts",
                 "input_failures", "started", "finished", "home_pending", "completed")

    def __init__(self, id: int, inputs: tuple["FileNode", ...], outputs: tuple["FileNode", ...],
                 cores: int, memory: int, disk: int, priority: float, retries: int):
        self.id = id
        self.inputs = inputs
        self.outputs = outputs
        self.cores = cores
        self.memory = memory
        self.disk = disk
        self.priority = priority
        self.retries_left = retries
        self.state = State.WAITING
        self.missing = 0
        self.worker: WorkerNode | None = None
        self.active = False          # counted in its worker's used resources
        self.active_since = 0.0      # time of the last Tick before it became active
        self.group: Group | None = None
        self.attempts = 0
        self.input_failures = 0
        self.started = 0.0
        self.finished = 0.0
        self.home_pending = 0        # local outputs not yet written back
        self.completed = False       # the user's Future has been resolved

    def __repr__(self) -> str:
        return f"<task {self.id} {self.state.name}>"


class FileNode:
    __slots__ = ("name", "size", "source", "home", "keep", "wanted", "producer", "consumers",
                 "replicas", "pending", "made", "at_home", "had_consumers")

    def __init__(self, name: str, size: int | None, source: bool, home: bool, keep: bool):
        self.name = name
        self.size = size or 0
        self.source = source             # the manager holds it: always available
        self.home = home                 # bring back to the submitting side when made
        self.keep = keep
        self.wanted = False              # the user asked for its bytes
        self.producer: TaskNode | None = None
        self.consumers: set[TaskNode] = set()   # consumers not yet done
        self.replicas: set[WorkerNode] = set()  # workers holding it
        self.pending: set[WorkerNode] = set()   # workers it is on its way to
        self.made = source
        self.at_home = False
        self.had_consumers = False

    def __repr__(self) -> str:
        return f"<file {self.name}>"


class WorkerNode:
    __slots__ = ("id", "cores", "memory", "disk", "used_cores", "used_memory", "used_disk",
                 "tasks", "files", "alive", "durations")

    def __init__(self, id: str, cores: int, memory: int, disk: int):
        self.id = id
        self.cores = cores
        self.memory = memory
        self.disk = disk
        self.used_cores = 0
        self.used_memory = 0
        self.used_disk = 0
        self.tasks: set[TaskNode] = set()   # assigned and not finished
        self.files: set[FileNode] = set()   # replicas and pending replicas here
        self.alive = True
        self.durations = RunningMean()      # observed task run times here

    def fits(self, task: TaskNode) -> bool:
        """Could this worker ever run the task, given its total resources?"""
        return (task.cores <= self.cores and (not task.memory or task.memory <= self.memory)
                and (not task.disk or task.disk <= self.disk))

    def __repr__(self) -> str:
        return f"<worker {self.id}>"


class Group:
    """Tasks committed together to one worker; each consumes the one before it."""

    __slots__ = ("id", "members", "worker", "target")

    def __init__(self, id: int, first: TaskNode):
        self.id = id
        self.members: list[TaskNode] = [first]
        self.worker: WorkerNode | None = None   # set when committed
        self.target: WorkerNode | None = None   # where a moved group goes once its head is ready

    @property
    def tail(self) -> TaskNode:
        return self.members[-1]

    def unfinished(self) -> list[TaskNode]:
        return [m for m in self.members if m.state not in TERMINAL]

    def __repr__(self) -> str:
        return f"<group {self.id} {[m.id for m in self.members]}>"


class RunningMean:
    """Exponentially weighted mean of recent samples (the last ~20 count most)."""

    __slots__ = ("value", "count")
    WEIGHT = 0.1

    def __init__(self) -> None:
        self.value = 0.0
        self.count = 0

    def add(self, sample: float) -> None:
        self.count += 1
        if self.count == 1:
            self.value = sample
        else:
            w = max(self.WEIGHT, 1.0 / self.count)
            self.value += w * (sample - self.value)
