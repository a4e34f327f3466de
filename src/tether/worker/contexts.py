"""The contexts one warm interpreter keeps (tether/contexts.py says what a context is).

A context arrives as a content-named cache file holding its setup and
arguments, pickled as a task's function is (so a traceback from the setup
names its file and shows its lines); the file's path is its key here. The
first call that asks for it runs the setup, in the interpreter's own
directory with the call's environment, and its value stays in this
interpreter's memory for as long as the interpreter lives: one that dies
(a task killed it) or ends takes its contexts with it, and its successor
sets each up again when a call asks.

A setup that raises is not remembered: its call fails with ContextError
(the setup's exception as its cause), and the next call that asks runs the
setup again, so that a cause since removed (a file not yet there, a
service not yet up) costs one call, not the interpreter's life.
"""
from __future__ import annotations

from typing import Any

import cloudpickle

from .. import contexts
from ..contexts import ContextError

_ABSENT = object()


class Contexts:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}   # cache path of a context -> its setup's value

    def enter(self, path: str) -> None:
        """Make path's context the running call's (tether.context()), setting it up if it is new here."""
        value = self.values.get(path, _ABSENT)
        if value is _ABSENT:
            value = self.values[path] = _set_up(path)
        contexts._current = value

    @staticmethod
    def leave() -> None:
        contexts._current = contexts._NONE


def _set_up(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            setup, args, kwargs = cloudpickle.load(f)
    except Exception as e:
        raise ContextError(f"the context's setup could not be loaded here: {type(e).__name__}: {e}") from e
    try:
        return setup(*args, **kwargs)
    except Exception as e:
        name = getattr(setup, "__qualname__", None) or type(setup).__name__
        raise ContextError(f"the context's setup {name}() failed (the next call that asks for it runs it "
                           f"again): {type(e).__name__}: {e}") from e
