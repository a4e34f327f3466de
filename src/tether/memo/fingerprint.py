"""A task's fingerprint: what decides its result, as one hash.

Two tasks with the same fingerprint are taken to make the same result, so
the fingerprint holds everything that can change it and nothing that
cannot (see the README's "Memoization" for the rules):

- the kind of task, and its command, or its function's identity and its
  arguments as pickle writes them (without pickle's memo: arguments_digest);
- its environment variables;
- the sandbox names of its outputs, and each input's sandbox name with the
  fingerprint of its contents: a content-named input (`file-...`, `buf-...`)
  by that name, a file made by a task by the fingerprint of that task and
  the output's name (so chains are fingerprinted without hashing temps).

Resources, retries, priority, timeouts are left out: they change how a
task runs, not what it makes.
"""
from __future__ import annotations

import functools
import hashlib
import json
import pickle
import types
from typing import Any, Callable, Iterable

import cloudpickle

VERSION = 1   # bumped when the rules change: older records then simply no longer match
CONTENT_PREFIXES = ("file-", "buf-")


def digest(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=20)
    for p in parts:
        data = p.encode() if isinstance(p, str) else p
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def function_identity(fn: Callable, pickled: bytes) -> str:
    """Its module and qualified name, the hash of its pickled bytes, and of its code.

    A function importable on the workers is pickled by reference (its name
    alone), so the hash of its code object (bytecode, constants, names; not
    line numbers) is added: editing its body changes the identity. One
    pickled by value (the program's `__main__`, a closure) carries its code,
    its source lines and the globals it reads in its pickle.
    """
    parts = [getattr(fn, "__module__", None) or "", getattr(fn, "__qualname__", None) or type(fn).__qualname__,
             digest(pickled)]
    for code in _codes(fn):
        parts.append(code_digest(code))
    return digest(*parts)


def _codes(fn: Any, depth: int = 0) -> Iterable[types.CodeType]:
    """The code objects behind a callable: a function's, a method's, a partial's function and arguments."""
    if depth > 4:
        return
    if isinstance(fn, functools.partial):
        yield from _codes(fn.func, depth + 1)
        for a in (*fn.args, *fn.keywords.values()):
            if callable(a):
                yield from _codes(a, depth + 1)
        return
    fn = getattr(fn, "__func__", fn)   # a bound method
    code = getattr(fn, "__code__", None)
    if isinstance(code, types.CodeType):
        yield code
    wrapped = getattr(fn, "__wrapped__", None)   # functools.wraps: the function inside counts too
    if wrapped is not None and wrapped is not fn:
        yield from _codes(wrapped, depth + 1)


def code_digest(code: types.CodeType) -> str:
    """What a code object does, without where it sits in its file (moving a function keeps it)."""
    h = hashlib.blake2b(digest_size=20)
    _feed_code(h, code)
    return h.hexdigest()


def _feed_code(h, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_name, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                   code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const)
        else:
            h.update(_stable_repr(const).encode())


def _stable_repr(value: Any) -> str:
    """repr, with sets in a fixed order (a set of strings is ordered by a hash that differs per process)."""
    if isinstance(value, (frozenset, set)):
        return f"{type(value).__name__}({sorted(_stable_repr(v) for v in value)})"
    if isinstance(value, tuple):
        return f"({', '.join(_stable_repr(v) for v in value)},)"
    return f"{type(value).__name__}:{value!r}"


def arguments_digest(value: Any) -> str:
    """A hash of a call's arguments as pickle writes them, but without pickle's memo.

    The bytes sent to the worker depend on which equal objects happen to be
    one object (pickle writes a second use of an object as a reference to
    the first), which differs from run to run; written without the memo,
    equal arguments give equal bytes. Large buffers (arrays, bytes) are
    hashed where they lie, not copied. Arguments that refer to themselves
    cannot be written so: their ordinary pickle is hashed instead.
    """
    h = hashlib.blake2b(digest_size=20)

    class Sink:
        write = h.update

    def buffer(b: pickle.PickleBuffer) -> None:
        h.update(b.raw())

    try:
        pickler = cloudpickle.Pickler(Sink(), protocol=5, buffer_callback=buffer)
        pickler.fast = True
        pickler.dump(value)
    except Exception:   # (a cycle: "fast mode" refuses it)
        return digest(b"memo", cloudpickle.dumps(value, protocol=5))
    return h.hexdigest()


def output_fingerprint(task: str, sandbox: str) -> str:
    """The fingerprint of one output of a task: what its readers' fingerprints name it by."""
    return digest(task, "output", sandbox)


def task_fingerprint(kind: str, parts: dict[str, Any], inputs: list[tuple[str, str]], outputs: list[str]) -> str:
    """kind: "sh", "py" or "call"; parts: what else decides the result (JSON-able); inputs: (sandbox
    name or "", content fingerprint) of each; outputs: the sandbox names made (an Executor call's result
    is the output "")."""
    body = {"version": VERSION, "kind": kind, "parts": parts, "inputs": sorted(inputs),
            "outputs": sorted(outputs)}
    return digest(json.dumps(body, sort_keys=True, separators=(",", ":")))
