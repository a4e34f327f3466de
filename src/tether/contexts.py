"""Function context: what a setup made once in a warm interpreter, kept there for later calls.

Loading a model or a large table can take longer than the calls that use
it. A task that names a Context (`PythonTask(fn, context=...)`, or every
call of `Executor(setup=...)`) has its setup run the first time a call that
asks for it runs in a worker's interpreter; the value it returns stays in
that interpreter, and every later call there that asks for the same context
reads it with `tether.context()` instead of making it again.

A context is known by its setup function and arguments: the manager
pickles them together, as it pickles a task's function, into a
content-named buffer that each worker receives once, and the buffer's name
is the context's identity. The worker side is worker/contexts.py.
"""
from __future__ import annotations

from typing import Any, Callable

_NONE = object()
_current: Any = _NONE   # the running call's context value (set by worker/contexts.py around each call)


class ContextError(RuntimeError):
    """A context's setup raised (or could not be loaded): the call that needed it fails with this,
    its remote traceback showing the setup's frames. Nothing is kept of the failure: the next call
    that asks for the context runs its setup again."""


class Context:
    """`Context(setup, *args, **kwargs)`: `setup(*args, **kwargs)` run once per worker interpreter.

    Two Contexts with the same setup and arguments are the same context, in
    the same interpreter: set up once, their value shared. The arguments are
    pickled with the setup, to each worker once, so large ones cost a
    single transfer however many calls ask for the context.
    """

    __slots__ = ("setup", "args", "kwargs", "__weakref__")

    def __init__(self, setup: Callable[..., Any], /, *args: Any, **kwargs: Any):
        if not callable(setup):
            raise ValueError(f"a context's setup must be callable, got {type(setup).__name__}")
        self.setup = setup
        self.args = args
        self.kwargs = kwargs

    def _key(self) -> tuple:
        # with the types: 1 and True are equal, but a setup may tell them apart
        return (self.setup, tuple((type(a), a) for a in self.args),
                tuple((k, type(v), v) for k, v in sorted(self.kwargs.items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Context):
            return NotImplemented
        try:
            return self._key() == other._key()
        except Exception:   # arguments that cannot be compared: the same context only if the same object
            return self is other

    def __hash__(self) -> int:
        return hash(self._key())   # TypeError for unhashable arguments, as a tuple of them would raise

    def __repr__(self) -> str:
        name = getattr(self.setup, "__qualname__", None) or type(self.setup).__name__
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        text = ", ".join(parts)
        return f"Context({name}{', ' + text if text else ''})"[:200]


def as_context(value: Any, option: str = "context") -> Context | None:
    """What a task or Executor was given as its context: None, a Context, or a setup function alone."""
    if value is None or isinstance(value, Context):
        return value
    if callable(value):
        return Context(value)
    raise ValueError(f"{option} must be a tether.Context or a setup function, got {type(value).__name__}")


def context() -> Any:
    """The value of the running call's context: what its setup returned in this interpreter.

    Called inside a Python task run with a context; anywhere else it raises LookupError.
    """
    value = _current
    if value is _NONE:
        raise LookupError("tether.context() was called outside a call that has a context: give the task one "
                          "with PythonTask(fn, context=...) or Executor(setup=...)")
    return value


__all__ = ["Context", "ContextError", "context"]
