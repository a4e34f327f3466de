"""Events the scheduler core consumes and commands it returns.

Events are facts reported by the shell (a task was submitted, a worker
joined, a task finished); commands are what the core asks the shell to do
(send these tasks to that worker, delete those files). Both are small
immutable records, so a run can be logged and replayed and the core tested
directly. The ones made for every task are named tuples, the cheapest
immutable record Python has.
Files are named by their cache names; tasks by integer ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# A source for one input of an assigned task: where the worker gets it.
LOCAL = None          # already in the worker's cache, or made there by an earlier group member
MANAGER = "@manager"  # a user file or buffer, fetched from the manager
MAKE = "@make"        # a file the worker makes for itself (FileSpec.recipe): how, the shell knows
# any other string: the id of a peer worker that holds a replica


class FileSpec(NamedTuple):
    """A file as a task names it: cache name, size if known, how it comes to be."""

    name: str
    size: int | None = None
    source: bool = False   # the manager holds it (local input or buffer)
    home: bool = False     # a local output: bring it back to the submitting side
    keep: bool = False     # never collected while the run lasts
    recipe: bool = False   # each worker that reads it makes its own (a URL, an unpacked archive, a mini-task)
    record: bool = False   # once made, a copy goes to the submitting side (a memo record), served from there


# ---------------------------------------------------------------- events


class TaskSubmitted(NamedTuple):
    """cores 0: not stated (given in proportion to what it states, at least one; see shares.py)."""

    task: int
    inputs: tuple[FileSpec, ...]
    outputs: tuple[FileSpec, ...]
    cores: int = 0
    memory: int = 0
    disk: int = 0
    retries: int = 0
    priority: float = 0
    gpus: int = 0
    category: str | None = None   # its resources are those of its category (CategorySet) where it names none
    tag: str | None = None        # TagCancelled cancels every unfinished task carrying it
    memo: bool = False     # completed at submission: a memo record holds its outputs, the submitting side serves them


@dataclass(frozen=True, slots=True)
class TaskCancelled:
    task: int


@dataclass(frozen=True, slots=True)
class WorkerJoined:
    worker: str
    cores: int
    memory: int = 0
    disk: int = 0
    cached: tuple[tuple[str, int], ...] = ()  # content-named files already in its cache
    gpus: int = 0
    host: str = ""                            # the address its host goes by (HostBlocked names it)


@dataclass(frozen=True, slots=True)
class WorkerRetiring:
    """The worker is to leave (scaled in, or idle past its timeout): it takes no new work, its
    tasks not started yet go elsewhere, and what only it holds that may still be needed is copied
    to a worker that stays before it is sent away (Retired)."""

    worker: str
    reason: str = "it was asked to leave"


@dataclass(frozen=True, slots=True)
class WorkerLost:
    worker: str
    reason: str = "its connection closed"


class TaskSucceeded(NamedTuple):
    worker: str
    task: int
    outputs: tuple[tuple[str, int], ...]  # (cache name, size) of each output
    started: float
    finished: float
    usage: tuple[int, int] | None = None   # (peak memory, disk) in bytes, as its worker measured them


# Why an attempt failed. The task's own failures are retried as its `retries`
# say; system failures (the worker, its interpreter, its disk or a transfer let
# the task down) are retried on another worker, up to the core's system_retries.
TASK_REASONS = frozenset({
    "exit",         # non-zero exit code, or the Python function raised
    "output",       # a declared output was not made
    "timeout",      # ran past its timeout
    "memory",       # used more memory than it asked for
    "disk",         # wrote more to its sandbox than it asked for
    "error",        # the task cannot be started as given (a bad command or environment)
})
SYSTEM_REASONS = frozenset({
    "input",        # an input could not be fetched (`file` from `source`)
    "disk-full",    # the worker's disk was full
    "interpreter",  # the Python interpreter running it died
    "worker",       # the worker could not prepare or start it (an OSError there)
    "worker-lost",  # the worker died, hung or was cut off while it ran the task
    "output-lost",  # an output vanished from its worker before it reached home
})


@dataclass(frozen=True, slots=True)
class TaskFailedOn:
    """A task ended without success on a worker; reason is one of TASK_REASONS or SYSTEM_REASONS."""

    worker: str
    task: int
    reason: str
    message: str = ""
    file: str | None = None
    source: str | None = None
    started: float = 0.0
    finished: float = 0.0


@dataclass(frozen=True, slots=True)
class FilesCached:
    """Files that arrived in a worker's cache by transfer."""

    worker: str
    files: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class FileLostOn:
    """A worker turned out not to hold a file the core thought it held."""

    worker: str
    name: str


@dataclass(frozen=True, slots=True)
class FileHome:
    """A local output has been written back to its path on the submitting side."""

    name: str


@dataclass(frozen=True, slots=True)
class FileHomeFailed:
    """A local output could not be written to its path: its producer fails with this message."""

    name: str
    message: str


@dataclass(frozen=True, slots=True)
class NoWorkers:
    """No worker will ever come (every local worker died and none can be started): fail what is pending."""

    message: str


@dataclass(frozen=True, slots=True)
class FileWanted:
    """The user asked for a file's bytes; it must not be collected from now on."""

    name: str


@dataclass(frozen=True, slots=True)
class FileReleased:
    """The user no longer needs a file kept; collect it once no consumer needs it."""

    name: str


@dataclass(frozen=True, slots=True)
class Retracted:
    """A worker's answer to Retract: which tasks it gave back, which had started."""

    worker: str
    returned: tuple[int, ...]
    started: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CategorySet:
    """Resources for the tasks of a category that name none themselves (0: not stated).

    mode "fixed": they get these. mode "max": these (or, where none is stated, a whole worker) are
    the most one may use; the first run with them, and later ones with the peak seen so far plus
    headroom (see shares.py)."""

    name: str
    cores: int = 0
    memory: int = 0
    disk: int = 0
    gpus: int = 0
    mode: str = "max"


@dataclass(frozen=True, slots=True)
class TagCancelled:
    """Cancel every unfinished task carrying this tag; those running are stopped (Stop)."""

    tag: str


@dataclass(frozen=True, slots=True)
class HostBlocked:
    """Workers on this host (now and later) take no new work; what runs there finishes."""

    host: str


@dataclass(frozen=True, slots=True)
class HostUnblocked:
    host: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes: lets the core look for work stuck behind a slow worker."""

    now: float


# ---------------------------------------------------------------- commands


class Resources(NamedTuple):
    """What a task holds on its worker: cores, MB of memory and disk (0: not limited), GPUs."""

    cores: int = 1
    memory: int = 0
    disk: int = 0
    gpus: int = 0


class Assignment(NamedTuple):
    task: int
    sources: tuple[tuple[str, str | None], ...]  # (input cache name, LOCAL / MANAGER / peer id)
    resources: Resources | None = None           # None: one core, nothing limited


@dataclass(frozen=True, slots=True)
class Assign:
    worker: str
    tasks: tuple[Assignment, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    worker: str
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Retract:
    worker: str
    tasks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop these tasks on the worker, started or not (they were cancelled); their reports are ignored."""

    worker: str
    tasks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Fetch:
    """Bring a file back from a worker to the submitting side."""

    name: str
    worker: str


class Running(NamedTuple):
    """The task has all its inputs on its worker and holds a core there (or is next in line)."""

    task: int


class Complete(NamedTuple):
    task: int
    hop_latency: float | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Fail:
    """A task failed for good. cause is the failing task's id when it is a dependency.

    reason is the last attempt's (TASK_REASONS, SYSTEM_REASONS), "dependency",
    "cancelled", "invalid", "home" (its output could not be written home) or
    "no-workers".
    """

    task: int
    reason: str
    message: str
    attempts: int
    cause: int | None = None


@dataclass(frozen=True, slots=True)
class FileFailed:
    """A wanted file can never be made (its producer failed for good)."""

    name: str
    message: str


@dataclass(frozen=True, slots=True)
class Blocked:
    """A worker is given no new work until `until` (the core's clock): too many system failures
    in a row there. Only for the record: the core itself keeps it from new work."""

    worker: str
    until: float


@dataclass(frozen=True, slots=True)
class Replicate:
    """Copy files into a worker's cache from the peers named (the temps of a worker that retires)."""

    worker: str
    files: tuple[tuple[str, str], ...]   # (cache name, id of the peer to copy from)


@dataclass(frozen=True, slots=True)
class Retired:
    """A retiring worker runs nothing and holds nothing needed that is not also elsewhere: the shell
    may send it away. copied: files copied off it; lost: files that may still be needed and could
    not be copied (no worker stays, or the copy failed): their producers run again if they are."""

    worker: str
    copied: int = 0
    lost: int = 0
    parked: int = 0   # files brought to the submitting side instead (no worker stayed to take them)


@dataclass(frozen=True, slots=True)
class Park:
    """Bring a file from a worker that is leaving to the submitting side, and serve it from there
    (FileHome once it is): the last worker is going, and a task or the program may still read it."""

    name: str
    worker: str


@dataclass(frozen=True, slots=True)
class Forget:
    """The core has let go of these finished tasks (nothing can need them again), and of the
    groups of one they were: the shell may let go of what it keeps for them too."""

    tasks: tuple[int, ...]
    groups: tuple[int, ...] = ()


Event = (TaskSubmitted | TaskCancelled | WorkerJoined | WorkerRetiring | WorkerLost | TaskSucceeded | TaskFailedOn
         | FilesCached | FileLostOn | FileHome | FileHomeFailed | FileWanted | FileReleased | Retracted | Tick
         | NoWorkers | CategorySet | TagCancelled | HostBlocked | HostUnblocked)
Command = (Assign | Delete | Retract | Stop | Replicate | Retired | Park | Fetch | Running | Complete | Fail | FileFailed
           | Blocked | Forget)


@dataclass(slots=True)
class Counters:
    """Totals the core keeps for stats()."""

    tasks_submitted: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    attempts_failed: int = 0
    reruns: int = 0         # producers run again to remake lost temp files
    system_failures: int = 0   # attempts lost to workers, interpreters, disks or transfers
    blocklisted: int = 0    # times a worker was kept from new work after repeated system failures
    moves: int = 0          # tasks taken back from a slow worker and placed again
    cancelled: int = 0      # tasks cancelled (by the user, one by one or by tag)
    resized: int = 0        # tasks run again with their category's whole allowance after outgrowing what was learnt
    hops: list[float] = field(default_factory=list)   # a sample: every hop_stride-th hop latency
    hop_count: int = 0
    hop_stride: int = 1

    def add_hop(self, hop: float, keep: int = 1 << 16) -> None:
        """Keep a bounded, evenly spread sample of the hop latencies: past `keep` of them,
        every other one goes and only every other later one is taken (deterministic, so a
        history replays the same)."""
        self.hop_count += 1
        if self.hop_count % self.hop_stride:
            return
        self.hops.append(hop)
        if len(self.hops) > keep:
            del self.hops[1::2]
            self.hop_stride *= 2
