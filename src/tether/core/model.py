"""The records the core keeps: tasks, files, workers and groups.

Plain slotted objects: the manager may hold hundreds of thousands of
pending tasks, so each record is kept small (no per-object dict).
"""
from __future__ import annotations

from .lifecycle import AVAILABLE, FINISHED, SERVED_HOME, FileState, TaskState
from .shares import allocation

State = TaskState   # the name the core's users knew first


class TaskNode:
    __slots__ = ("id", "inputs", "outputs", "cores", "memory", "disk", "gpus", "need", "category", "full",
                 "sized", "tag", "priority", "retries_left",
                 "state", "missing", "worker", "active_since", "active_seq", "group", "attempts",
                 "system_failures", "failures", "avoid", "started", "finished", "reported", "level", "height",
                 "partners")

    def __init__(self, id: int, inputs: tuple["FileNode", ...], outputs: tuple["FileNode", ...],
                 cores: int, memory: int, disk: int, priority: float, retries: int, gpus: int = 0):
        self.id = id
        self.inputs = inputs
        self.outputs = outputs
        # what it holds on its worker while there (shares.allocation), else what it states (cores >= 1)
        self.cores = max(1, cores)
        self.memory = memory
        self.disk = disk
        self.gpus = gpus
        # what it states (cores 0: in proportion); None: nothing, one core and its share
        self.need = (cores, memory, disk, gpus) if cores or memory or disk or gpus else None
        self.category = None             # a shares.Category
        self.full = False                # run with its category's whole allowance (it outgrew what was learnt)
        self.sized = False               # its attempt on a worker holds what its category learnt
        self.tag: str | None = None
        self.priority = priority
        self.retries_left = retries
        self.state = TaskState.WAITING   # changed only by lifecycle.move_task
        self.missing = 0                 # inputs not available now
        self.worker: WorkerNode | None = None   # set exactly while ASSIGNED or RUNNING
        self.active_since = 0.0          # time of the last Tick before it became RUNNING
        self.active_seq = 0              # order in which tasks became RUNNING
        self.group: Group | None = None
        self.attempts = 0
        self.system_failures = 0         # attempts lost to the system, not to the task itself
        self.failures: list[str] | None = None   # what each system failure was, for the final error
        self.avoid: set[str] | None = None        # workers where it failed for system reasons
        self.started = 0.0
        self.finished = 0.0
        self.reported = False            # Complete or Fail has been sent for the user's Future
        self.level = 0                   # tasks on the longest known path from a source to it
        self.height = 0                  # tasks on the longest known path from it to a sink (bounded;
                                         # kept under order "critical" only: graph.link)
        self.partners: tuple[FileNode, ...] | None = None   # graph.partners, until its outputs' readers change

    def __repr__(self) -> str:
        return f"<task {self.id} {self.state.name}>"


class FileNode:
    __slots__ = ("name", "size", "home", "keep", "wanted", "producer", "consumers",
                 "replicas", "pending", "state", "had_consumers", "read", "holds", "released", "readers",
                 "record")

    def __init__(self, name: str, size: int | None, source: bool, home: bool, keep: bool, recipe: bool = False):
        self.name = name
        self.size = size or 0
        self.home = home                 # bring back to the submitting side when made
        self.keep = keep
        self.wanted = False              # the user asked for its bytes
        self.producer: TaskNode | None = None
        self.consumers: set[TaskNode] = set()   # consumers that will run (again)
        self.replicas: set[WorkerNode] = set()  # workers holding it
        self.pending: set[WorkerNode] = set()   # workers it is on its way to
        self.state = (FileState.SOURCE if source else FileState.RECIPE if recipe
                      else FileState.ABSENT)   # changed by lifecycle.move_file
        self.had_consumers = False
        self.read = False                # a task has named it as an input
        # what may still ask for it: the user's handle (until released) and each task reading it
        # that the core has not let go of; at 0 (and with no copy left) its producer may go too
        self.holds = 1
        self.released = False            # the user can no longer name it (FileReleased)
        self.readers: list[TaskNode] | None = None   # every task reading it, kept only for depth-k pruning
        self.record = False              # a copy goes to the submitting side once made (a memo record)

    @property
    def made(self) -> bool:
        """Can a task read it now (from a worker or from the submitting side)?"""
        return self.state in AVAILABLE

    @property
    def source(self) -> bool:
        """Does the submitting side serve it (a user input, or an output written home)?"""
        return self.state in SERVED_HOME

    def __repr__(self) -> str:
        return f"<file {self.name} {self.state.name}>"


class WorkerNode:
    __slots__ = ("id", "cores", "memory", "disk", "gpus", "used_cores", "used_memory", "used_disk", "used_gpus",
                 "tasks", "files", "alive", "durations", "failure_streak", "blocked_until", "blocks",
                 "retiring", "host", "barred", "held", "peak", "held_made", "peak_made")

    def __init__(self, id: str, cores: int, memory: int, disk: int, gpus: int = 0, host: str = ""):
        self.id = id
        self.cores = cores
        self.memory = memory
        self.disk = disk
        self.gpus = gpus
        self.used_cores = 0
        self.used_memory = 0
        self.used_disk = 0
        self.used_gpus = 0
        self.host = host
        self.barred = False                 # its host is blocked: no new work, what runs there finishes
        self.tasks: set[TaskNode] = set()   # assigned and not finished
        self.files: set[FileNode] = set()   # replicas and pending replicas here
        self.alive = True
        self.durations = RunningMean()      # observed task run times here
        self.failure_streak = 0             # system failures here since the last success
        self.blocked_until: float | None = None   # takes no new work until then
        self.blocks = 0                     # times it was blocklisted (each block lasts longer)
        self.retiring = False               # to leave: no new work, its needed files copied off first
        self.held = 0                       # bytes of the files it holds (replicas, not those on their way)
        self.peak = 0                       # the most it held at once
        self.held_made = 0                  # of those, bytes of files a task made (temps, outputs not yet home)
        self.peak_made = 0

    @property
    def staying(self) -> bool:
        """Alive, not about to leave, not on a blocked host: new work and copies of files may go to it."""
        return self.alive and not self.retiring and not self.barred

    def fits(self, task: TaskNode) -> bool:
        """Could this worker ever run the task, given its total resources (and its share of them)?"""
        if task.need is None and task.category is None:
            return True   # one core and its share
        cores, memory, disk, gpus = allocation(self, task)
        return cores <= self.cores and memory <= self.memory and disk <= self.disk and gpus <= self.gpus

    def __repr__(self) -> str:
        return f"<worker {self.id}>"


class Retirement:
    """A retiring worker's progress: the copies of its files under way (file -> the worker it goes
    to) and the files already tried, each copied at most once."""

    __slots__ = ("reason", "copying", "tried", "copied", "parking", "parked")

    def __init__(self, reason: str):
        self.reason = reason
        self.copying: dict[FileNode, WorkerNode] = {}
        self.tried: set[FileNode] = set()
        self.copied = 0
        self.parking: set[FileNode] = set()   # being brought to the submitting side
        self.parked = 0


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
        """Members still to run: not ended, and not past their run (HOMING)."""
        return [m for m in self.members if m.state not in FINISHED]

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
