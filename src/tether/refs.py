"""References to results that stay on workers, as they travel inside arguments.

On the submitting side, every Future of an Executor found in a call's
arguments (at any depth of lists, tuples, sets and dicts) becomes a
ResultRef naming the result; in the interpreter each ResultRef is replaced
by the value itself. Both sides walk the same containers.
"""
from __future__ import annotations

from typing import Any, Callable


class ResultRef:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __reduce__(self):
        return (ResultRef, (self.name,))

    def __repr__(self) -> str:
        return f"ResultRef({self.name})"


def replace(value: Any, swap: Callable[[Any], Any | None]) -> Any:
    """A copy of value in which each item swap() maps to non-None is replaced.

    Containers are rebuilt only where something inside them changed, so a call
    with no references costs one walk and no copies.
    """
    new = swap(value)
    if new is not None:
        return new
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        items = [replace(v, swap) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return kind(items)
    if kind is dict:
        items = {k: replace(v, swap) for k, v in value.items()}
        if all(items[k] is v for k, v in value.items()):
            return value
        return items
    return value
