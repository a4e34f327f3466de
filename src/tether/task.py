"""Task specifications (shell command or Python function), results and errors.

Specs are checked when they are built, so a bad spec fails in the user's
code with a ValueError that names what is wrong, before anything is sent.
"""
from __future__ import annotations

import itertools
import math
import posixpath
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .contexts import Context, as_context
from .files import File

_RESOURCE_OPTIONS = ("cores", "memory", "disk", "gpus", "retries", "priority", "timeout", "env", "category", "tag",
                     "memo")
_RESOURCES = ("cores", "memory", "disk", "gpus")   # a task that states any of them is limited to its share


class TaskFailed(Exception):
    """A task ended without success; raised from its Future.

    exit_code is the process exit code (None when the task did not run to an
    exit, for example when an input was lost for good or a dependency failed).
    """

    def __init__(self, message: str, *, exit_code: int | None = None, stderr: str = "",
                 task_id: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr
        self.task_id = task_id

    def __reduce__(self):
        return (_rebuild_failure, (type(self), str(self), self.exit_code, self.stderr, self.task_id))


def _rebuild_failure(cls, message, exit_code, stderr, task_id):
    return cls(message, exit_code=exit_code, stderr=stderr, task_id=task_id)


class DependencyFailed(TaskFailed):
    """A task that did not run because a task making one of its inputs failed for good."""


class SystemFailure(TaskFailed):
    """A task whose attempts were lost to the system running it, more often than allowed.

    Workers that died, hung or were cut off while running it, interpreters
    that died under it, full disks, failed transfers: each such attempt is
    retried on another worker (Manager's system_retries, 3 by default, as
    Dask's allowed-failures and Ray's max_retries); past that, its Future
    raises this, with every lost attempt named in the message. `reason` is
    the last attempt's.
    """

    def __init__(self, message: str, *, reason: str = "", task_id: int | None = None):
        super().__init__(message, task_id=task_id)
        self.reason = reason

    def __reduce__(self):
        return (_rebuild_system_failure, (str(self), self.reason, self.task_id))


def _rebuild_system_failure(message, reason, task_id):
    return SystemFailure(message, reason=reason, task_id=task_id)


class InternalError(RuntimeError):
    """tether itself failed (a bug): raised by every unfinished Future, and by the manager from then on."""


class RemoteError(Exception):
    """Stands in for a Python task's exception that could not be rebuilt here."""


class SerializationError(TypeError):
    """A Python task's function, argument or return value cannot be pickled to cross to or from its worker.

    Raised by submit for a function or argument (the pickling error as its
    __cause__), and by the Future of a call whose return value cannot go
    back. `what` is "the function", "argument 1", "keyword argument 'x'" or
    "the return value"; `type_name` the type of the part that failed. A
    TypeError, as pickle's own error for such a value is.
    """

    def __init__(self, message: str, *, task_id: int | None = None, function: str = "", what: str = "",
                 type_name: str = ""):
        super().__init__(message)
        self.task_id = task_id
        self.function = function
        self.what = what
        self.type_name = type_name

    def __reduce__(self):
        return (_rebuild_serialization_error, (str(self), self.task_id, self.function, self.what, self.type_name))


def _rebuild_serialization_error(message, task_id, function, what, type_name):
    return SerializationError(message, task_id=task_id, function=function, what=what, type_name=type_name)


class LargeArgumentWarning(UserWarning):
    """A call's pickled arguments are large: they are pickled here for every call (see Manager.declare_buffer)."""


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a finished task reports. Times are seconds since the epoch.

    What it used, as its worker measured it (None when it sent no figures):
    peak_memory, bytes: for a shell command, its largest process (with
    memory= set, the highest sum over its processes seen); for a Python
    task, how far its call raised the RSS of the warm interpreter it ran in
    (shared with other tasks, so not charged to each), plus, with memory=
    set, its child processes. cpu_time, seconds of user plus system time of
    the task and the children it waited for. disk, bytes: its outputs and
    whatever else it left in its sandbox (and a command's stdout and
    stderr). A task's memory= and disk= limits apply to the same figures.

    What it held on its worker (README "Proportional shares"): cores;
    memory_limit and disk_limit, MB, its limits there (0: not watched);
    gpus, the device ids it was given (its CUDA_VISIBLE_DEVICES).
    """

    task_id: int
    exit_code: int
    stdout: str
    stderr: str
    worker: str
    started: float
    finished: float
    hop_latency: float | None
    attempts: int = 1
    peak_memory: int | None = None
    cpu_time: float | None = None
    disk: int | None = None
    cores: int = 1
    memory_limit: int = 0
    disk_limit: int = 0
    gpus: tuple[int, ...] = ()
    memoized: bool = False   # it did not run: a memo record of an earlier run gave its result

    @property
    def duration(self) -> float:
        return self.finished - self.started


def check_text(value: Any, what: str) -> str:
    """A string that can cross to a worker and reach exec: no NUL, and valid UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} contains a NUL byte: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} is not valid text (a lone surrogate at position {e.start}): "
                         f"{value!r}") from None
    return value


def check_env(env: Any) -> dict[str, str]:
    """Environment variables for a task: names without '=' or NUL, values without NUL."""
    if not isinstance(env, Mapping):
        raise ValueError(f"env must be a dict of str -> str, got {type(env).__name__}")
    checked = {}
    for name, value in env.items():
        check_text(name, "env name")
        if not name or "=" in name:
            raise ValueError(f"env name {name!r} is empty or contains '='")
        checked[name] = check_text(value, f"env value of {name}")
    return checked


def check_sandbox_name(name: Any, role: str) -> str:
    """A name inside the task's sandbox: relative, normalised, no '..'."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{role} name must be a non-empty string, got {name!r}")
    check_text(name, f"{role} name")
    if name.startswith("/"):
        raise ValueError(f"{role} name {name!r} is absolute; sandbox names must be relative")
    parts = name.split("/")
    if ".." in parts:
        raise ValueError(f"{role} name {name!r} contains '..'; it must stay inside the sandbox")
    if "\0" in name:
        raise ValueError(f"{role} name {name!r} contains a NUL byte")
    normal = posixpath.normpath(name)
    if normal == ".":
        raise ValueError(f"{role} name {name!r} names the sandbox itself, not a file in it")
    if normal != name:
        raise ValueError(f"{role} name {name!r} is not a plain relative path (did you mean {normal!r}?)")
    return normal


def _check_files(files: Any, role: str) -> dict[str, File]:
    if not isinstance(files, Mapping):
        raise ValueError(f"{role}s must be a dict of sandbox name -> File, got {type(files).__name__}")
    checked: dict[str, File] = {}
    for name, f in files.items():
        normal = check_sandbox_name(name, role)
        if not isinstance(f, File):
            raise ValueError(f"{role} {name!r} must be a File from a Manager's declare_*(), got {type(f).__name__}")
        if normal in checked:
            raise ValueError(f"{role} name {name!r} given twice")
        checked[normal] = f
    return checked


def _check_number(value: Any, name: str, *, minimum: float, integer: bool = True) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not integer and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    if integer and value >= 1 << 62:
        raise ValueError(f"{name} is too large: {value!r}")
    return value


class _Spec:
    """What shell and Python tasks share: files and resources."""

    _ids = itertools.count(1)
    __slots__ = ("id", "inputs", "outputs", "cores", "memory", "disk", "gpus", "retries", "priority",
                 "timeout", "env", "category", "tag", "stated", "memo", "__weakref__")

    # (option, default, check arguments); only options given are checked
    _NUMBERS = (("cores", 1, "cores", 1, True), ("memory", 0, "memory (MB)", 0, True),
                ("disk", 0, "disk (MB)", 0, True), ("gpus", 0, "gpus", 0, True), ("retries", 0, "retries", 0, True),
                ("priority", 0, "priority", float("-inf"), False))

    def _init_common(self, kind: str, inputs, outputs, options: dict[str, Any]) -> None:
        self.id = next(_Spec._ids)
        self.inputs = _check_files(inputs, "input") if inputs else {}
        self.outputs = _check_files(outputs, "output") if outputs else {}
        if self.outputs:
            self._check_outputs()
        for f in self.inputs.values():
            if f.kind == "local" and not f.produced:
                f.name  # hashes it; raises FileNotFoundError naming the path
        self.timeout = None
        self.env = {}
        self.category = self.tag = None
        self.stated: frozenset[str] = frozenset()   # the resources it names (the others: in proportion)
        self.memo = None   # None: as the Manager's memo= says; True/False: this task asks, or opts out
        for key, default, label, minimum, integer in self._NUMBERS:
            setattr(self, key, default)
        if options:
            self._set_options(kind, options)

    def _check_outputs(self) -> None:
        clash = set(self.inputs) & set(self.outputs)
        if clash:
            raise ValueError(f"name(s) used as both input and output: {', '.join(sorted(clash))}")
        made = list(self.outputs.values())
        if len({id(f) for f in made}) != len(made):
            raise ValueError("the same File is given as two outputs of one task")
        for name, f in self.inputs.items():
            if any(f is o for o in made):
                raise ValueError(f"File {f.describe()} is both an input ({name!r}) and an output of one task")
        for name, f in self.outputs.items():
            f.mark_output(name)

    def _set_options(self, kind: str, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(_RESOURCE_OPTIONS))
        if unknown:
            raise ValueError(f"unknown {kind} option(s): {', '.join(unknown)}; "
                             f"known: inputs, outputs, {', '.join(_RESOURCE_OPTIONS)}")
        for key, default, label, minimum, integer in self._NUMBERS:
            if key in options:
                setattr(self, key, _check_number(options[key], label, minimum=minimum, integer=integer))
        timeout = options.get("timeout")
        if timeout is not None:
            self.timeout = _check_number(timeout, "timeout", minimum=0, integer=False)
            if self.timeout <= 0:
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.env = check_env(options.get("env") or {})
        self.stated = frozenset(key for key in _RESOURCES if key in options)
        for key in ("category", "tag"):
            value = options.get(key)
            if value is not None:
                if not isinstance(value, str) or not value:
                    raise ValueError(f"{key} must be a non-empty string, got {value!r}")
                setattr(self, key, check_text(value, key))
        memo = options.get("memo")
        if memo is not None and not isinstance(memo, bool):
            raise ValueError(f"memo must be True, False or None, got {memo!r}")
        self.memo = memo


class Task(_Spec):
    """A shell command, run with /bin/sh -c inside the task's sandbox.

    Task(command, inputs={name: File}, outputs={name: File}, cores=1,
         memory=0 (MB), disk=0 (MB), gpus=0, retries=0, priority=0, timeout=None, env={},
         category=None, tag=None, memo=None (True: memoized; False: never; None: as the Manager says))
    Resources not given are given in proportion (README "Proportional shares").
    """

    __slots__ = ("command",)

    def __init__(self, command: str, inputs: Mapping[str, File] | None = None,
                 outputs: Mapping[str, File] | None = None, **options: Any):
        if not isinstance(command, str) or not command.strip():
            raise ValueError(f"command must be a non-empty string, got {command!r}")
        self.command = check_text(command, "command")
        self._init_common("Task", inputs, outputs, options)

    def __repr__(self) -> str:
        return f"Task({self.id}, {self.command[:40]!r})"


class PythonTask(_Spec):
    """A Python function run in one of the worker's warm interpreters.

    Its working directory is the task's sandbox, so inputs and outputs are
    opened by their sandbox names. The Future gives fn's return value, or
    raises fn's exception with the remote traceback attached. `context`, a
    tether.Context or a setup function, is set up once per interpreter and
    read inside fn with tether.context() (see tether/contexts.py).
    """

    __slots__ = ("fn", "args", "kwargs", "context")

    def __init__(self, fn: Callable[..., Any], args: tuple = (), kwargs: Mapping[str, Any] | None = None,
                 inputs: Mapping[str, File] | None = None, outputs: Mapping[str, File] | None = None,
                 context: Context | Callable[[], Any] | None = None, **options: Any):
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {type(fn).__name__}")
        if not isinstance(args, (tuple, list)):
            raise ValueError(f"args must be a tuple, got {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ValueError(f"kwargs must be a dict, got {type(kwargs).__name__}")
        self.fn = fn
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.context = as_context(context)
        self._init_common("PythonTask", inputs, outputs, options)

    def __repr__(self) -> str:
        return f"PythonTask({self.id}, {getattr(self.fn, '__name__', self.fn)!r})"
