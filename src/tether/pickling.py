"""Pickling what crosses between the program and its workers, with errors a person can act on.

Functions go by value with cloudpickle when they cannot be imported on the
worker (those of the program's `__main__`, of a notebook). cloudpickle
names their code "<dynamic-code>", so a remote traceback would show neither
the file nor the line that raised: `dumps_function` keeps each code
object's file name and ships the source lines its code spans, which the
interpreter puts in its `linecache` as it unpickles the function.

When something cannot be pickled, `find_unpicklable` walks into the value
(containers, attributes, a function's closure and globals) to the part
that fails, so the error can say where it is.
"""
from __future__ import annotations

import io
import itertools
import linecache
import types
from collections import ChainMap
from typing import Any, Callable, Iterator

import cloudpickle

_CLOUDPICKLE_CODE = cloudpickle.Pickler.dispatch_table[types.CodeType]
PARTS_TRIED = 1000   # parts of one container pickled one by one to find the one that fails
_MARK = "<dynamic-code>"   # what cloudpickle calls a code object's file; ours is put back on load


class _FunctionPickler(cloudpickle.Pickler):
    """cloudpickle, but code pickled by value keeps its file name, and the lines it spans are noted."""

    def __init__(self, file, protocol=5):
        self.spans: dict[str, set[int]] = {}
        self.dispatch_table = ChainMap({types.CodeType: self._reduce_code}, cloudpickle.Pickler.dispatch_table)
        super().__init__(file, protocol=protocol)

    def _reduce_code(self, code: types.CodeType):
        filename = code.co_filename
        if filename == _MARK:
            return _CLOUDPICKLE_CODE(code)
        lines = [line for _, _, line in code.co_lines() if line is not None]
        first = code.co_firstlineno
        self.spans.setdefault(filename, set()).update(range(first, max(lines, default=first) + 1))
        return _named_code, (code.replace(co_filename=_MARK), filename)


def _named_code(code: types.CodeType, filename: str) -> types.CodeType:
    """Unpickling: the code as cloudpickle rebuilt it, under its own file name again."""
    return code.replace(co_filename=filename)


class _Sources:
    """The source lines of the code pickled so far: reduced after the function, so it knows them all."""

    def __init__(self, pickler: _FunctionPickler):
        self.pickler = pickler

    def __reduce__(self):
        sources = {}
        for filename, numbers in self.pickler.spans.items():
            lines = linecache.getlines(filename)
            picked = {n: lines[n - 1] for n in sorted(numbers) if n <= len(lines)}
            if picked:
                sources[filename] = picked
        return dict, (sources,)


class _Shipped:
    """What dumps_function pickles: the function, then its lines (last, once the pickler has seen its code)."""

    def __init__(self, fn, pickler):
        self.fn, self.pickler = fn, pickler

    def __reduce__(self):
        return _with_sources, (self.fn, _Sources(self.pickler))


def dumps_function(fn: Callable) -> bytes:
    """fn pickled so that, unpickled anywhere, its tracebacks name its file and show its lines."""
    out = io.BytesIO()
    pickler = _FunctionPickler(out)
    pickler.dump(_Shipped(fn, pickler))
    return out.getvalue()


_shipped_lines: dict[str, dict[int, str]] = {}


def _with_sources(fn, sources: dict[str, dict[int, str]]):
    """Unpickling: the lines arrive beside the function and go into linecache, where tracebacks look."""
    for filename, lines in sources.items():
        known = _shipped_lines.setdefault(filename, {})
        known.update(lines)
        text = [known.get(n, "\n") for n in range(1, max(known) + 1)]
        # mtime None: linecache.checkcache leaves the entry alone (the file need not exist here)
        linecache.cache[filename] = (sum(map(len, text)), None, text, filename)
    return fn


# ---------------------------------------------------------------- what cannot be pickled


def type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _parts(value: Any) -> Iterator[tuple[str, Any]]:
    """(how to name it, part) for each part a pickle of value holds."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield f"[{i}]", item
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"[{key!r}]", key
            yield f"[{key!r}]", item
    elif isinstance(value, (set, frozenset)):
        for item in value:
            yield " → an item", item
    elif isinstance(value, types.FunctionType):
        code = value.__code__
        for name, cell in zip(code.co_freevars, value.__closure__ or ()):
            try:
                yield f" → variable {name!r}", cell.cell_contents
            except ValueError:   # an empty cell
                pass
        names = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names.update(const.co_names)
        for name in sorted(names):
            if name in value.__globals__:
                yield f" → global {name!r}", value.__globals__[name]
    elif isinstance(value, types.MethodType):
        yield ".__self__", value.__self__
    elif not isinstance(value, (type, types.ModuleType)):
        try:
            state = vars(value)
        except TypeError:
            return
        for name, item in list(state.items()):
            yield f".{name}", item


def _fails(dumps: Callable[[Any], Any], value: Any) -> bool:
    try:
        dumps(value)
    except Exception:
        return True
    return False


def find_unpicklable(value: Any, dumps: Callable[[Any], Any] = cloudpickle.dumps,
                     depth: int = 8) -> tuple[str, Any]:
    """(path, part): the innermost part of value that dumps fails on, and where it is ("" for value).

    Only called once pickling value has failed: each step pickles the parts
    of the failing value until one fails (of the first PARTS_TRIED: an error
    must not take minutes to say where it is), and goes into that one.
    """
    path = ""
    seen = {id(value)}
    for _ in range(depth):
        for where, part in itertools.islice(_parts(value), PARTS_TRIED):
            if id(part) not in seen and _fails(dumps, part):
                path += where
                value = part
                seen.add(id(part))
                break
        else:
            break
    return path, value
