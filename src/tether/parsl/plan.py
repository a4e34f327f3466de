"""One Parsl app call as tether sees it: which files go in and out, under which names.

Parsl hands an executor the app function and its arguments, with File
objects among them. plan_call finds those files and gives each a name in the
task's sandbox (the working directory of the app on the worker):

- temp files (temp://NAME, or taskvinetemp://NAME as the seed writes them)
  appear under NAME; an input names a temp the task reads, an output one it
  makes;
- `file` files are sent to the worker (inputs) and brought back (outputs)
  under their relative path, or their base name for an absolute path,
  unless the file system is shared, in which case they keep their path;
- files of other schemes that another staging provider placed on this side
  (an input whose local path exists here, as zip staging leaves it) or
  expects back here (an output with a local path) move the same way; any
  other file is left to its provider (in-task HTTP staging, for example);
- stdout and stderr (a path, a (path, mode) tuple or a File) are written in
  the sandbox and copied to their path on this side when the task ends.

The File objects the app receives are copies whose local path is the
sandbox name, so `str(file)` in the app gives the name to open.
"""
from __future__ import annotations

import copy
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from parsl.app.errors import BadStdStreamFile
from parsl.data_provider.files import File
from parsl.executors.errors import InvalidResourceSpecification
from parsl.utils import get_std_fname_mode

from ..task import check_sandbox_name

TEMP_SCHEMES = ("temp", "taskvinetemp")
RESOURCE_KEYS = ("cores", "memory", "disk", "priority")
_STREAM_MODES = ("w", "a", "w+", "a+")


def is_temp(f: File) -> bool:
    return f.scheme in TEMP_SCHEMES


def temp_name(f: File) -> str:
    """The temp's name, the same for every scheme alias: temp://x and taskvinetemp://x are one file."""
    name = (f.netloc + f.path).lstrip("/")
    try:
        return check_sandbox_name(name, "temp file")
    except ValueError as e:
        raise ValueError(f"{f.url} does not name a temp file: {e}") from None


@dataclass
class Stream:
    """stdout or stderr of a task: where the app writes it, where it goes here, and how."""

    sandbox: str
    path: str     # absolute, on the submitting side
    append: bool


@dataclass
class CallPlan:
    args: tuple
    kwargs: dict[str, Any]
    temp_inputs: dict[str, str] = field(default_factory=dict)    # sandbox name -> temp name
    temp_outputs: dict[str, str] = field(default_factory=dict)
    file_inputs: dict[str, str] = field(default_factory=dict)    # sandbox name -> absolute path here
    file_outputs: dict[str, str] = field(default_factory=dict)
    streams: list[Stream] = field(default_factory=list)

    @property
    def directories(self) -> list[str]:
        """Sandbox sub-directories the app writes into, to be made before it runs."""
        names = list(self.temp_outputs) + list(self.file_outputs) + [s.sandbox for s in self.streams]
        return sorted({posixpath.dirname(n) for n in names if "/" in n})


class _Names:
    """Hands out sandbox names, one per distinct file, never two files on one name."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], str] = {}
        self.taken: set[str] = set()

    def get(self, key: tuple[str, str], wanted: str) -> str:
        if key in self.by_key:
            return self.by_key[key]
        name, n = wanted, 1
        while name in self.taken or any(t.startswith(name + "/") or name.startswith(t + "/") for t in self.taken):
            n += 1
            name = f"_{n}/{posixpath.basename(wanted)}"
        self.by_key[key] = name
        self.taken.add(name)
        return name


def plan_call(args: tuple, kwargs: dict[str, Any], shared_fs: bool, cwd: str | None = None) -> CallPlan:
    """Rewrite the call's File arguments for the sandbox and list what must move.

    cwd: what relative paths are relative to (default: the working directory,
    asked for only when a relative path is met, since a call of temp files
    and absolute paths needs none).
    """
    plan = CallPlan(args=(), kwargs={})
    names = _Names()
    here = _Here(cwd or None)

    def local_name(path: str) -> str:
        rel = posixpath.normpath(path)
        if os.path.isabs(path) or rel == ".." or rel.startswith("../"):
            return posixpath.basename(rel)
        return rel

    def rewrite(value: Any, role: str) -> Any:
        if not isinstance(value, File):
            return value
        if is_temp(value):
            name = names.get(("temp", temp_name(value)), temp_name(value))
            table = plan.temp_outputs if role == "output" else plan.temp_inputs
            table[name] = temp_name(value)
            return _located(value, name)
        if value.scheme == "file":
            given = value.path
        elif value.local_path is not None and (role == "output" or os.path.exists(here.join(value.local_path))):
            given = value.local_path  # placed here, or wanted back here, by another staging provider
        else:
            return value  # another staging provider looks after it
        path = os.path.normpath(here.join(given))
        if shared_fs:
            return _located(value, path)
        name = names.get(("file", path), local_name(given))
        (plan.file_outputs if role == "output" else plan.file_inputs)[name] = path
        return _located(value, name)

    plan.args = tuple(rewrite(a, "input") for a in args)
    new_kwargs: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "inputs" and isinstance(value, (list, tuple)):
            new_kwargs[key] = [rewrite(v, "input") for v in value]
        elif key == "outputs" and isinstance(value, (list, tuple)):
            new_kwargs[key] = [rewrite(v, "output") for v in value]
        elif key in ("stdout", "stderr"):
            new_kwargs[key] = _stream(key, value, plan, names, shared_fs, here)
        else:
            new_kwargs[key] = rewrite(value, "input")
    plan.kwargs = new_kwargs
    both = (set(plan.file_inputs) & set(plan.file_outputs)) | (set(plan.temp_inputs) & set(plan.temp_outputs))
    if both:
        raise ValueError(f"{', '.join(sorted(both))} is both an input and an output of one app call; "
                         "tether needs a new file for what the app writes")
    return plan


class _Here:
    """Joins paths to the working directory, which is looked up once, and only if a path is relative."""

    __slots__ = ("cwd",)

    def __init__(self, cwd: str | None):
        self.cwd = cwd

    def join(self, path: str) -> str:
        if os.path.isabs(path):
            return path
        if self.cwd is None:
            self.cwd = os.getcwd()
        return os.path.join(self.cwd, path)


def _located(f: File, local_path: str) -> File:
    """A copy of f that resolves to local_path, leaving Parsl's own object untouched.

    A shallow copy, not File.cleancopy(): that parses the URL again, checks
    its types and writes a debug record to Parsl's log, for every file of
    every call, on the thread that launches Parsl's tasks.
    """
    located = copy.copy(f)
    located.local_path = local_path
    return located


def _stream(fdname: str, spec: Any, plan: CallPlan, names: _Names, shared_fs: bool, here: _Here) -> Any:
    if spec is None:
        return None
    if isinstance(spec, File):
        if spec.scheme == "file":
            path = spec.path
        elif spec.local_path is not None:
            path = spec.local_path   # where its staging provider picks it up
        else:
            raise ValueError(f"{fdname}={spec.url}: no staging provider gave this File a local path")
        mode = "w"
    else:  # Parsl's own reading of a path or (path, mode), with Parsl's own errors
        path, mode = get_std_fname_mode(fdname, spec)
    if mode not in _STREAM_MODES:
        raise BadStdStreamFile(f"{path} (mode {mode!r}: {fdname} takes one of {', '.join(_STREAM_MODES)})")
    absolute = os.path.normpath(here.join(path))
    if shared_fs:
        return (absolute, mode)
    same = next((s for s in plan.streams if s.path == absolute), None)
    if same is None:  # stdout and stderr sent to one path share one file, as they would there
        same = Stream(names.get(("stream", absolute), f".tether-{fdname}"), absolute, mode.startswith("a"))
        plan.streams.append(same)
    return (same.sandbox, mode)


def check_resources(spec: dict[str, Any] | None, limits: dict[str, int | None]) -> dict[str, Any]:
    """parsl_resource_specification -> tether task options; anything else is refused.

    cores (>= 1), memory and disk (MB, >= 0) and priority (a number: higher
    runs first). limits: what one worker offers, where known.
    """
    spec = spec or {}
    if not isinstance(spec, dict):
        raise InvalidResourceSpecification(set(), f"the resource specification must be a dict, got {spec!r}")
    unknown = set(spec) - set(RESOURCE_KEYS)
    if unknown:
        raise InvalidResourceSpecification(unknown, "tether accepts only these resource keys: "
                                           + ", ".join(RESOURCE_KEYS))
    options: dict[str, Any] = {}
    for key in ("cores", "memory", "disk"):
        if key not in spec:
            continue
        value = spec[key]
        least = 1 if key == "cores" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidResourceSpecification({key}, f"{key} must be an integer >= {least}, got {value!r}")
        limit = limits.get(key)
        if limit is not None and value > limit:
            raise InvalidResourceSpecification({key}, f"{key}={value} is more than a worker offers ({limit})")
        options[key] = value
    if "priority" in spec:
        value = spec["priority"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidResourceSpecification({"priority"}, f"priority must be a number, got {value!r}")
        options["priority"] = value
    return options
