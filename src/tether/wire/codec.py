"""Messages to frame bodies and back: the one place the wire's shapes are known.

A message travels as a msgpack array: its op (a short string) and its fields
in order, nested messages as arrays of their own fields. `decode` checks
every field against a schema (types, lengths, text without NUL or invalid
UTF-8 where it names files or reaches exec) and raises ProtocolError for
anything else; it never raises anything but ProtocolError, whatever the
bytes.

Assignments and reports are made for every task, so their checks are
written out by hand; the rest go through small composable checks.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from . import messages as m
from .errors import ProtocolError
from .framing import pack, unpack

MAX_NAME = 4096          # characters in a cache or sandbox name, a host, a role
MAX_ITEMS = 1 << 20      # entries in one list
MAX_INT = 1 << 62

Check = Callable[[Any], Any]


class _Bad(Exception):
    """A field that does not fit its schema (turned into ProtocolError with the path to it)."""


# ---------------------------------------------------------------- field checks


def _int(v):
    if type(v) is not int or not -MAX_INT <= v <= MAX_INT:
        raise _Bad(f"expected an integer, got {_show(v)}")
    return v


def _count(v):
    if type(v) is not int or not 0 <= v <= MAX_INT:
        raise _Bad(f"expected a non-negative integer, got {_show(v)}")
    return v


def _number(v):
    if type(v) is int:
        v = float(v)
    if type(v) is not float or not math.isfinite(v):
        raise _Bad(f"expected a finite number, got {_show(v)}")
    return v


def _bool(v):
    if type(v) is not bool:
        raise _Bad(f"expected true or false, got {_show(v)}")
    return v


def _bytes(v):
    if type(v) is not bytes:
        raise _Bad(f"expected bytes, got {_show(v)}")
    return v


def _text(v):
    """Free text (a message, a log tail): any string."""
    if type(v) is not str:
        raise _Bad(f"expected a string, got {_show(v)}")
    return v


def _clean(v):
    """Text that reaches the file system or exec: no NUL (UTF-8 validity is msgpack's to check)."""
    if type(v) is not str:
        raise _Bad(f"expected a string, got {_show(v)}")
    if "\0" in v:
        raise _Bad("a NUL byte in a string that reaches the file system or exec")
    return v


def _name(v):
    v = _clean(v)
    if not v or len(v) > MAX_NAME:
        raise _Bad(f"expected a name of 1 to {MAX_NAME} characters, got {len(v)}")
    return v


def _cache_name(v):
    v = _name(v)
    if "/" in v or v in (".", ".."):
        raise _Bad(f"a cache name must not be a path: {v!r}")
    return v


def _sandbox_name(v):
    v = _name(v)
    parts = v.split("/")
    if v.startswith("/") or ".." in parts or "" in parts or "." in parts:
        raise _Bad(f"a sandbox name must be a plain relative path: {v!r}")
    return v


def _optional(check: Check) -> Check:
    def optional(v):
        return None if v is None else check(v)
    return optional


def _list(check: Check) -> Check:
    def items(v):
        if type(v) is not list:
            raise _Bad(f"expected a list, got {_show(v)}")
        if len(v) > MAX_ITEMS:
            raise _Bad(f"a list of {len(v)} entries")
        return tuple(check(x) for x in v)
    return items


def _pair(a: Check, b: Check) -> Check:
    def pair(v):
        if type(v) is not list or len(v) != 2:
            raise _Bad(f"expected a pair, got {_show(v)}")
        return a(v[0]), b(v[1])
    return pair


def _triple(a: Check, b: Check, c: Check) -> Check:
    def triple(v):
        if type(v) is not list or len(v) != 3:
            raise _Bad(f"expected three values, got {_show(v)}")
        return a(v[0]), b(v[1]), c(v[2])
    return triple


def _env(v):
    if type(v) is not dict or len(v) > 4096:
        raise _Bad(f"expected a map of environment variables, got {_show(v)}")
    for k, x in v.items():
        _clean(k)
        _clean(x)
        if not k or "=" in k:
            raise _Bad(f"an environment variable name {k!r}")
    return v


def _refs(v):
    if type(v) is not dict or len(v) > MAX_ITEMS:
        raise _Bad(f"expected a map of results, got {_show(v)}")
    for k, x in v.items():
        _cache_name(k)
        if x is not None:
            _name(x)
    return v


def _module(v):
    v = _name(v)
    if not all(part.isidentifier() for part in v.split(".")):
        raise _Bad(f"not a module name: {v!r}")
    return v


def _one_of(*allowed: str) -> Check:
    def one_of(v):
        if v not in allowed:
            raise _Bad(f"expected one of {', '.join(allowed)}, got {_show(v)}")
        return v
    return one_of


def _source(v):
    if v is None:
        return None
    if v == m.MANAGER:
        return m.MANAGER
    if type(v) is list and len(v) == 5:
        return _recipe(v)
    return _make(m.Peer, _triple(_name, _name, _count)(v))


MAKE_KINDS = ("url", "untar", "task")
URL_SCHEMES = ("http://", "https://", "file://")


def _recipe(v):
    """How a worker makes an input itself (a Make): a URL, an archive to unpack, or a mini-task."""
    kind, url, task, inputs, keep = v
    _one_of(*MAKE_KINDS)(kind)
    if type(inputs) is not list or len(inputs) > MAX_ITEMS:
        raise _Bad("a recipe's inputs must be a list")
    inputs = tuple((None if a is None else _sandbox_name(a), _cache_name(b)) for a, b in map(_pair2, inputs))
    _bool(keep)
    if kind == "url":
        url = _name(url)
        if not url.startswith(URL_SCHEMES) or inputs or task is not None:
            raise _Bad(f"a URL recipe names an http, https or file URL and nothing else: {_show(url)}")
    elif kind == "untar":
        if url is not None or task is not None or len(inputs) != 1:
            raise _Bad("an archive recipe names one archive and nothing else")
    else:
        if url is not None or task is None:
            raise _Bad("a mini-task recipe names a task")
        task = _spec(task)
        if len(task.outputs) != 1:
            raise _Bad("a mini-task makes exactly one output")
    return _make(m.Make, (kind, url, task, inputs, keep))


def _any(v):
    if v is not None and type(v) not in (bytes, str):
        raise _Bad(f"expected bytes, a string or nothing, got {_show(v)}")
    return v


def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- schemas

def _make(cls, values):
    return tuple.__new__(cls, values)


def _message(cls, *checks: Check, rest: int = 0):
    """cls's fields in order; the last `rest` may be left out (their defaults apply)."""
    return cls, checks, len(checks) - rest


def _nested(cls, *checks: Check, rest: int = 0) -> Check:
    """A nested message, sent as the list of its fields."""
    need = len(checks) - rest
    defaults = tuple(cls._field_defaults[f] for f in cls._fields[need:])

    def nested(v):
        if type(v) is not list or not need <= len(v) <= len(checks):
            raise _Bad(f"expected {cls.__name__} ({need} to {len(checks)} fields), got {_show(v)}")
        values = [c(x) for c, x in zip(checks, v)]
        if len(values) < len(checks):
            values.extend(defaults[len(values) - need:])
        return _make(cls, values)
    return nested


def _spec(v):
    """A task's spec, checked field by field (every task's assignment comes this way)."""
    if type(v) is not list or len(v) != 20:
        raise _Bad(f"expected a task spec of 20 fields, got {_show(v)}")
    (tid, kind, cores, memory, disk, outputs, command, env, timeout, fn, args, result, spill, summary, refs,
     scratch, inline, context, priority, record) = v
    _count(tid), _count(cores), _count(memory), _count(disk)
    if kind != "sh" and kind != "py":
        raise _Bad(f"a task kind must be sh or py, got {_show(kind)}")
    if type(outputs) is not list:
        raise _Bad("outputs must be a list")
    outputs = tuple((_sandbox_name(a), _cache_name(b)) for a, b in map(_pair2, outputs))
    if command is not None:
        _clean(command)
    if env is not None:
        _env(env)
    if timeout is not None:
        timeout = _number(timeout)
    if fn is not None:
        _cache_name(fn)
    if args is not None:
        _bytes(args)
    if result is not None:
        _cache_name(result)
    if spill is not None:
        _count(spill)
    if summary is not None:
        _bytes(summary)
    refs = _names(refs)
    _bool(scratch)
    _count(inline), _count(record)
    if context is not None:
        _cache_name(context)
    priority = _number(priority)
    return _make(m.TaskSpec, (tid, kind, cores, memory, disk, outputs, command, env, timeout, fn, args, result,
                              spill, summary, refs, scratch, inline, context, priority, record))


def _pair2(v):
    if type(v) is not list or len(v) != 2:
        raise _Bad(f"expected a pair, got {_show(v)}")
    return v


def _names(v):
    if type(v) is not list or len(v) > MAX_ITEMS:
        raise _Bad(f"expected a list of names, got {_show(v)}")
    return tuple(_cache_name(x) for x in v)


def _inputs(v):
    if type(v) is not list or len(v) > MAX_ITEMS:
        raise _Bad(f"expected a list of inputs, got {_show(v)}")
    out = []
    for i in v:
        if type(i) is not list or len(i) != 3:
            raise _Bad(f"expected an input, got {_show(i)}")
        sandbox, name, source = i
        out.append(_make(m.Input, (None if sandbox is None else _sandbox_name(sandbox), _cache_name(name),
                                   _source(source))))
    return tuple(out)


def _report(v):
    """How an attempt ended (every task's report comes this way)."""
    if type(v) is not list or len(v) != 16:
        raise _Bad(f"expected a report of 16 fields, got {_show(v)}")
    (started, finished, code, reason, message, stdout, stderr, file, source, value, error, outputs, cache,
     usage, gpus, contents) = v
    started, finished = _number(started), _number(finished)
    if code is not None:
        _int(code)
    if reason is not None:
        _name(reason)
    _text(message), _text(stdout), _text(stderr)
    if file is not None:
        _cache_name(file)
    if source is not None:
        _name(source)
    if value is not None:
        _bytes(value)
    if error is not None:
        _bytes(error)
    if type(outputs) is not list:
        raise _Bad("outputs must be a list")
    outputs = tuple((_cache_name(a), _count(b)) for a, b in map(_pair2, outputs))
    cache = _pair(_count, _count)(cache)
    if usage is not None:
        usage = _triple(_count, _number, _count)(usage)
    gpus = _list(_count)(gpus)
    if type(contents) is not list:
        raise _Bad("contents must be a list")
    contents = tuple((_cache_name(a), _bytes(b)) for a, b in map(_pair2, contents))
    return _make(m.Report, (started, finished, code, reason, message, stdout, stderr, file, source, value, error,
                            outputs, cache, usage, gpus, contents))


def _held(v):
    if v is None:
        return None
    if type(v) is not list or len(v) != 4:
        raise _Bad(f"expected what a task holds (4 counts), got {_show(v)}")
    held = _make(m.Held, [_count(x) for x in v])
    if held.cores < 1:
        raise _Bad("a task holds at least one core")
    return held


def _assigned(v):
    """One assignment; one that does not fit becomes a BadTask, so that only that task fails."""
    if type(v) is not list or not 2 <= len(v) <= 3:
        raise _Bad(f"expected an assignment, got {_show(v)}")
    try:
        return _make(m.AssignedTask, (_spec(v[0]), _inputs(v[1]), _held(v[2]) if len(v) == 3 else None))
    except (_Bad, ValueError, TypeError) as e:   # unpacking a wrong-sized field is a ValueError
        raw = v[0]
        tid = raw[0] if type(raw) is list and raw and type(raw[0]) is int and 0 <= raw[0] <= MAX_INT else None
        if tid is None:
            raise _Bad(f"an assignment that names no task: {e}") from None
        return _make(m.BadTask, (tid, str(e)))


SCHEMAS: dict[str, tuple] = {
    # control link
    "hello": _message(m.Hello, _name, _count, _count, _count, _name, _count, _count, _number,
                      _list(_pair(_cache_name, _count)), _count, _text, rest=3),
    "joined": _message(m.Joined, _name, _number, _list(_module), rest=1),
    "assign": _message(m.Assign, _list(_assigned)),
    "delete": _message(m.Delete, _names),
    "retract": _message(m.Retract, _list(_count)),
    "pull": _message(m.Pull, _list(_pair(_cache_name, _source))),
    "shutdown": _message(m.Shutdown),
    "stop": _message(m.Stop, _list(_count)),
    "host_blocked": _message(m.HostBlocked, _text),
    "host_unblocked": _message(m.HostUnblocked),
    "done": _message(m.Done, _count, _report),
    "failed": _message(m.Failed, _count, _report),
    "have": _message(m.Have, _list(_triple(_cache_name, _count, _optional(_name)))),
    "retracted": _message(m.Retracted, _list(_count), _list(_count)),
    "lost": _message(m.Lost, _names),
    "leave": _message(m.Leave, _text),
    "ping": _message(m.Ping),
    "probe": _message(m.Probe, _count),
    "pong": _message(m.Pong, _count),
    # fetch link
    "get": _message(m.Get, _cache_name),
    "found": _message(m.Found, _count),
    "absent": _message(m.Absent, _cache_name),
    # status link
    "status_request": _message(m.StatusRequest),
    "status": _message(m.Status, _text, _number, _number,
                       _list(_nested(m.WorkerStatus, _name, _name, _count, _count, _count, _count, _count, _count,
                                     _count, _number)),
                       _list(_pair(_name, _count)), _count, _count, _count, _count, _count, _count,
                       _optional(_text), rest=1),
    # handshake
    "challenge": _message(m.Challenge, _count, _bytes, _bool, rest=1),
    "starttls": _message(m.StartTls),
    "auth": _message(m.Auth, _name, _bytes, _bytes),
    "welcome": _message(m.Welcome, _bytes),
    # interpreter link
    "call": _message(m.Call, _count, _name, _bytes, _optional(_name), _optional(_env), _optional(_refs),
                     _optional(_cache_name), _optional(_name), _count, _count, _optional(_bytes), _optional(_name),
                     _bool, _optional(_name), rest=11),
    "started": _message(m.Started, _count, _count),
    "export": _message(m.Export, _cache_name, _name),
    "drop": _message(m.Drop, _names),
    "reply": _message(m.CallReply, _count, _optional(_bool), _any, _text, _number, _number, _count, _bool,
                      _optional(_pair(_count, _number)), rest=3),
    "exported": _message(m.Exported, _cache_name, _count),
}
OPS: dict[type, str] = {cls: op for op, (cls, _, _) in SCHEMAS.items()}
_DEFAULTS: dict[type, tuple] = {cls: tuple(cls._field_defaults[f] for f in cls._fields[need:])
                                for cls, _, need in SCHEMAS.values()}


# ---------------------------------------------------------------- decoding


def decode(body: bytes | memoryview):
    """A frame body -> a message. Raises ProtocolError for anything that is not one."""
    return decode_obj(unpack(body))


def decode_obj(obj):
    if type(obj) is not list or not obj or type(obj[0]) is not str:
        raise ProtocolError(f"not a message: {_show(obj)}")
    schema = SCHEMAS.get(obj[0])
    if schema is None:
        raise ProtocolError(f"unknown message {_show(obj[0])}")
    cls, checks, need = schema
    given = len(obj) - 1
    if not need <= given <= len(checks):
        raise ProtocolError(f"{obj[0]}: {given} fields, expected {need} to {len(checks)}")
    try:
        values = [check(v) for check, v in zip(checks, obj[1:])]
    except _Bad as e:
        raise ProtocolError(f"{obj[0]}: {e}") from None
    except (ValueError, TypeError, RecursionError) as e:
        raise ProtocolError(f"{obj[0]}: malformed ({type(e).__name__})") from None
    if given < len(checks):
        values.extend(_DEFAULTS[cls][given - need:])
    return _make(cls, values)


# ---------------------------------------------------------------- encoding


def encode(msg) -> bytes:
    """A message -> a frame body (msgpack; nested messages are tuples, packed as arrays)."""
    op = OPS.get(type(msg))
    if op is None:
        raise TypeError(f"{type(msg).__name__} is not a message")
    return pack((op, *msg))
