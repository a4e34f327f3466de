"""Settings carried over from other Parsl executors: notices for those tether cannot honour, and typos.

A program ported from TaskVine or HTEX keeps its settings. Those tether has
no use for are accepted with a warning (IgnoredOptionWarning, once per
process for each setting) rather than refused, so the program runs; a name
that is no setting at all is still a TypeError, which names the setting it
was probably meant to be.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import sys
import warnings
from typing import Any, Iterable

__all__ = ["IgnoredOptionWarning", "unused", "partly_used", "unknown_keyword", "reject_unknown", "setting_names",
           "check_keywords"]


class IgnoredOptionWarning(UserWarning):
    """A setting accepted so that a ported program runs, though tether does nothing (or only part) with it."""


_warned: set[tuple[str, str]] = set()   # (owner, setting) already warned about in this process


def unused(owner: str, name: str, why: str) -> None:
    """Say once that owner's setting `name` has no effect in tether, and why."""
    _once(owner, name, f"{owner}: {name} has no effect in tether: {why}")


def partly_used(owner: str, name: str, what: str) -> None:
    """Say once that tether honours only part of owner's setting `name`."""
    _once(owner, name, f"{owner}: {name} is only partly used in tether: {what}")


def _once(owner: str, name: str, message: str) -> None:
    if (owner, name) in _warned:
        return
    _warned.add((owner, name))
    warnings.warn(message, IgnoredOptionWarning, stacklevel=_outside_level())


def _outside_level() -> int:
    """The stacklevel of the first caller outside tether.parsl: the user's line that gave the setting."""
    level, frame = 1, sys._getframe(1)   # stacklevel 1 is _once, the caller of this function
    while frame is not None and frame.f_globals.get("__name__", "").startswith("tether.parsl"):
        frame, level = frame.f_back, level + 1
    return level


def unknown_keyword(owner: str, name: str, known: Iterable[str]) -> TypeError:
    """The error for a keyword that is no setting of owner, naming the closest one."""
    close = difflib.get_close_matches(name, [k for k in known if not k.startswith("_")], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return TypeError(f"{owner}() got an unexpected keyword argument {name!r}{hint}")


def reject_unknown(owner: str, given: dict[str, Any], known: Iterable[str]) -> None:
    """Raise unknown_keyword's TypeError for the first of `given`, if any."""
    for name in given:
        raise unknown_keyword(owner, name, known)


def setting_names(cls: type) -> list[str]:
    """The keyword arguments cls() takes."""
    return [name for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def check_keywords(cls: type) -> type:
    """A dataclass whose constructor names the field a mistyped keyword probably meant."""
    init = cls.__init__
    known = [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        reject_unknown(cls.__name__, {k: v for k, v in kwargs.items() if k not in known}, known)
        init(self, *args, **kwargs)

    cls.__init__ = __init__   # type: ignore[misc]
    return cls
