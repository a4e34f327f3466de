"""Every message tether's processes send each other, as small immutable classes.

Nothing else in tether builds or reads the lists and dicts that travel:
code makes these objects, and `codec` turns them into frame bodies and
back, checking every type, size and shape on the way in. They are named
tuples, frozen like dataclasses but built in a fraction of the time (a
task's assignment and its report are made for every task), and packed by
msgpack as arrays with no conversion. Compare them by type, never with ==
across types (two empty messages are equal tuples).

Links and what crosses them:

    control (worker <-> manager)   Hello, Joined, Assign, Delete, Retract, Stop, Pull, Shutdown,
                                   HostBlocked, HostUnblocked, Done, Failed, Have, Retracted, Lost,
                                   Leave, Ping, Probe, Pong
    fetch (anyone -> a file server) Get, then Found (and the raw bytes) or Absent
    status (anyone -> the manager)  StatusRequest, then one Status (holding WorkerStatus)
    handshake (every connection)    Challenge, StartTls, Auth, Welcome
    interpreter (worker <-> child)  Call, Export, Drop; Started, CallReply, Exported
"""
from __future__ import annotations

from typing import Any, NamedTuple

MANAGER = "@manager"   # an input's source: the submitting side


class Peer(NamedTuple):
    """A worker's file server, as a source of an input."""

    id: str
    host: str
    port: int


class Make(NamedTuple):
    """A file the worker makes for itself, as a source of an input: once per worker, kept in its cache.

    kind "url": fetch `url` (kept after the run when `keep`, and then
    revalidated when a later run asks for it); "untar": unpack the archive
    named by the one entry of `inputs`; "task": run `task`, whose one output
    is the file. `inputs` are (sandbox name or None, cache name) of what it
    reads, which the worker holds, or fetches, first.
    """

    kind: str
    url: str | None = None
    task: "TaskSpec | None" = None
    inputs: tuple[tuple[str | None, str], ...] = ()
    keep: bool = False

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.inputs)


Source = None | str | Peer | Make     # None: already here (or made here); MANAGER; a Peer; or made here


# ---------------------------------------------------------------- tasks


class TaskSpec(NamedTuple):
    """What never changes about a task, made once when it is submitted.

    kind "sh": `command` run by /bin/sh; kind "py": the function in the cache
    file `fn`, called with the pickled `args`. `result` names a result kept
    on the worker (an Executor call), spilled to the cache past `spill`
    bytes; `summary` is a pickled function applied to it there; `refs` are
    results it reads; `scratch`: it runs in its interpreter's directory;
    `context` names the buffer holding its context's setup.
    `record`: its outputs of at most this many bytes go back with its
    completion (a memoized task's, for the memo record).
    """

    id: int
    kind: str
    cores: int = 1
    memory: int = 0
    disk: int = 0
    outputs: tuple[tuple[str, str], ...] = ()          # (sandbox name, cache name)
    command: str | None = None
    env: dict[str, str] | None = None
    timeout: float | None = None
    fn: str | None = None
    args: bytes | None = None
    result: str | None = None
    spill: int | None = None
    summary: bytes | None = None
    refs: tuple[str, ...] = ()
    scratch: bool = False
    inline: int = 0       # a kept result whose pickle is at most this many bytes comes back too
    context: str | None = None   # cache file of its context (tether/contexts.py), an input of the task
    priority: float = 0   # among tasks ready on the worker, a higher one starts first
    record: int = 0       # outputs of at most this many bytes come back too (Report.contents)


class Input(NamedTuple):
    sandbox: str | None   # its name in the sandbox (None: read by name, not linked in)
    name: str             # cache name
    source: Source


class Held(NamedTuple):
    """What a task holds on its worker (the manager's share of it): memory and disk in MB are its
    limits there (0: not watched); gpus is how many devices it is given."""

    cores: int = 1
    memory: int = 0
    disk: int = 0
    gpus: int = 0


class AssignedTask(NamedTuple):
    spec: TaskSpec
    inputs: tuple[Input, ...]
    held: Held | None = None   # None: one core, nothing watched


class BadTask(NamedTuple):
    """An assignment the worker could not read: it fails that task alone."""

    id: int
    problem: str


class Report(NamedTuple):
    """How an attempt ended on a worker (Done or Failed carry it)."""

    started: float = 0.0
    finished: float = 0.0
    exit: int | None = None
    reason: str | None = None          # why it failed (core.events TASK_REASONS / SYSTEM_REASONS)
    message: str = ""
    stdout: str = ""
    stderr: str = ""
    file: str | None = None            # the input that could not be had
    source: str | None = None          # ... and the peer it was to come from
    value: bytes | None = None         # a Python task's pickled return, or its summary
    error: bytes | None = None         # a Python task's pickled exception
    outputs: tuple[tuple[str, int], ...] = ()   # (cache name, size) of what it made
    cache: tuple[int, int] = (0, 0)    # the worker's cache: bytes now, peak
    usage: tuple[int, float, int] | None = None   # peak memory (bytes), CPU seconds, disk (bytes)
    gpus: tuple[int, ...] = ()         # the GPU devices it was given (CUDA_VISIBLE_DEVICES)
    contents: tuple[tuple[str, bytes], ...] = ()  # (cache name, bytes) of small outputs (TaskSpec.record)


# ---------------------------------------------------------------- control link


class Hello(NamedTuple):
    name: str
    cores: int
    memory: int
    disk: int
    host: str
    port: int
    pid: int
    heartbeat: float
    cached: tuple[tuple[str, int], ...] = ()
    gpus: int = 0
    hostname: str = ""


class Joined(NamedTuple):
    id: str
    heartbeat: float
    preload: tuple[str, ...] = ()   # modules every warm interpreter imports as it starts


class Assign(NamedTuple):
    tasks: tuple[AssignedTask | BadTask, ...]


class Delete(NamedTuple):
    names: tuple[str, ...]


class Retract(NamedTuple):
    tasks: tuple[int, ...]


class Pull(NamedTuple):
    """Copy these files into the cache from the peers named (another worker is retiring)."""

    files: tuple[tuple[str, Peer], ...]


class Shutdown(NamedTuple):
    """The manager sends the worker away."""


class Stop(NamedTuple):
    """These tasks were cancelled: forget them, and end those already started."""

    tasks: tuple[int, ...]


class HostBlocked(NamedTuple):
    """The manager gives this worker's host no new work (said at once, or when it joins); it stays."""

    reason: str


class HostUnblocked(NamedTuple):
    """Its host takes work again."""


class Done(NamedTuple):
    task: int
    report: Report


class Failed(NamedTuple):
    task: int
    report: Report


class Have(NamedTuple):
    files: tuple[tuple[str, int, str | None], ...]   # (cache name, size, peer it came from or None)


class Retracted(NamedTuple):
    returned: tuple[int, ...]
    started: tuple[int, ...]


class Lost(NamedTuple):
    names: tuple[str, ...]


class Leave(NamedTuple):
    """The worker asks to be retired (it was idle past its --idle-timeout); the manager answers
    with Shutdown once the temps only it holds are safe elsewhere."""

    reason: str


class Ping(NamedTuple):
    """Nothing to say, but still here (see the heartbeats in worker/process.py)."""


class Probe(NamedTuple):
    n: int


class Pong(NamedTuple):
    n: int


# ---------------------------------------------------------------- fetch link


class Get(NamedTuple):
    name: str


class Found(NamedTuple):
    size: int


class Absent(NamedTuple):
    name: str


# ---------------------------------------------------------------- status link


class StatusRequest(NamedTuple):
    """A client holding the secret asks the manager how its run stands (`tether status`)."""


class WorkerStatus(NamedTuple):
    """One connected worker, as the manager sees it."""

    id: str
    host: str
    cores: int
    cores_used: int       # cores its running tasks hold (at most cores)
    running: int          # tasks running there: the first to get there that fill its cores
    queued: int           # tasks next in line there, every input made, behind those running
    assigned: int         # tasks sent there that wait for an input (group members), holding no cores
    cache: int            # bytes of this run's files and results it holds
    cache_peak: int       # the most its cache held, as it last reported
    joined: float         # when it joined (the manager's clock, seconds since the epoch)


class Status(NamedTuple):
    """A snapshot of the manager's run (see manager/status.py)."""

    run: str
    started: float        # when the manager started (its clock, seconds since the epoch)
    now: float            # when the snapshot was taken (same clock)
    workers: tuple[WorkerStatus, ...]
    tasks: tuple[tuple[str, int], ...]    # (state, tasks in it) for every task state
    groups: int           # groups of two or more tasks committed to one worker
    grouped: int          # tasks in those groups
    bytes_manager_to_worker: int
    bytes_worker_to_manager: int
    bytes_worker_to_worker: int
    bytes_arguments: int  # Python calls' pickled arguments, sent inside their tasks
    broken: str | None = None             # why the manager runs nothing more, when its core failed


# ---------------------------------------------------------------- handshake


class Challenge(NamedTuple):
    version: int
    nonce: bytes
    tls: bool = False     # the server can switch to TLS on this port


class StartTls(NamedTuple):
    """The client asks to continue the connection inside TLS."""


class Auth(NamedTuple):
    role: str
    nonce: bytes
    proof: bytes


class Welcome(NamedTuple):
    proof: bytes


# ---------------------------------------------------------------- interpreter link


class Call(NamedTuple):
    """Run a function in a warm interpreter (see worker/interpreter.py)."""

    id: int
    fn: str                                  # path of the pickled function
    args: bytes
    cwd: str | None = None
    env: dict[str, str] | None = None
    refs: dict[str, str | None] | None = None   # result name -> spill path, or None: held in memory
    result: str | None = None
    path: str | None = None                  # where the result spills
    spill: int = 1 << 62
    inline: int = 0                          # a kept result up to this size is also the payload
    summary: bytes | None = None
    tag: str | None = None                   # TETHER_TASK for whatever the call starts (worker/reaper.py)
    watch: bool = False                      # its limits are watched: say when it starts (Started)
    context: str | None = None               # path of its context's setup (worker/contexts.py)


class Started(NamedTuple):
    """A watched call began, in an interpreter whose RSS was then `rss` bytes."""

    id: int
    rss: int


class Export(NamedTuple):
    name: str
    path: str


class Drop(NamedTuple):
    names: tuple[str, ...]


class CallReply(NamedTuple):
    """ok None: not run, an input it reads is absent (payload names it)."""

    id: int
    ok: bool | None
    payload: Any                  # pickled value, summary or exception (bytes), a name, or None
    text: str
    started: float
    finished: float
    size: int = 0
    spilled: bool = False
    usage: tuple[int, float] | None = None   # peak memory (bytes), CPU seconds; None: not metered


class Exported(NamedTuple):
    name: str
    size: int
