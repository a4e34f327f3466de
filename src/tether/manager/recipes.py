"""Files each worker makes for itself: URLs, unpacked archives, mini-tasks' outputs.

The manager neither fetches, unpacks nor runs anything for them. It gives
each such File a cache name and a Recipe: the wire Make that tells a
worker how to make it, and what it is made from (`extras`: the archive, the
mini-task's inputs and function, and what those are made from in turn).
Every task that reads the File reads its extras too, unlinked, so the core
has them on that worker first, from wherever they come (the manager, a
peer, the worker itself); the worker makes the File once and every task
there shares it.

To the core such a file is RECIPE (core/lifecycle.py): it has no producer
task, is never collected during the run, and a copy lost with its worker is
not recovered: the next worker that needs it makes its own.
"""
from __future__ import annotations

import urllib.parse
from typing import NamedTuple

from ..core import FileSpec
from ..files import MADE_ON_WORKERS, File, hash_bytes
from ..task import check_text
from ..wire import messages as m

SCHEMES = ("http", "https", "file")
MAX_URL = 4096


class Recipe(NamedTuple):
    make: m.Make
    extras: tuple[tuple[str, FileSpec], ...]   # (cache name, spec) of what it is made from, recursively


def url_name(url: str) -> str:
    """The cache name of a URL's copy: the same URL is the same file, in every run."""
    parts = urllib.parse.urlsplit(check_text(url, "URL"))
    if parts.scheme not in SCHEMES:
        raise ValueError(f"declare_url takes an http, https or file URL, got {url!r}")
    if parts.scheme != "file" and not parts.hostname:
        raise ValueError(f"URL {url!r} names no host")
    if parts.scheme == "file" and not parts.path.startswith("/"):
        raise ValueError(f"file URL {url!r} must name an absolute path (file:///path)")
    if len(url) > MAX_URL:
        raise ValueError(f"URL of {len(url)} characters: at most {MAX_URL}")
    return f"url-{hash_bytes(url.encode())}"


def as_input(f: File, served: dict, recipes: dict[str, Recipe]) -> list[tuple[str, FileSpec]]:
    """f read by a task, as (cache name, spec) pairs: f itself, then what it is made from.
    A file the manager serves is registered in served."""
    name = f.name
    if f.kind == "buffer":
        served[name] = f.data
        return [(name, FileSpec(name, len(f.data), source=True))]
    if f.kind == "local" and not f.produced:
        served[name] = f.path
        return [(name, FileSpec(name, f.size, source=True))]
    if f.kind in MADE_ON_WORKERS:
        return [(name, FileSpec(name, recipe=True)), *recipes[name].extras]
    return [(name, FileSpec(name, keep=f.keep))]


def untar(archive: File, served: dict, recipes: dict[str, Recipe]) -> tuple[str, Recipe]:
    """The name and recipe of an archive's unpacked directory."""
    if archive.kind == "untar":
        raise ValueError(f"{archive.describe()} is already an unpacked directory, not an archive")
    name = f"untar-{archive.name}"
    if len(name) > 4096:
        raise ValueError(f"archive name too long: {archive.describe()}")
    return name, Recipe(m.Make("untar", inputs=((None, archive.name),)),
                        _flat(as_input(archive, served, recipes)))


def _flat(pairs) -> tuple[tuple[str, FileSpec], ...]:
    """Each name once, first mention kept."""
    seen: dict[str, FileSpec] = {}
    for name, spec in pairs:
        seen.setdefault(name, spec)
    return tuple(seen.items())


def mini(spec: m.TaskSpec, inputs: list[tuple[str | None, str]], specs: list[FileSpec],
         recipes: dict[str, Recipe]) -> Recipe:
    """The recipe of a mini-task's output: the task (its one output renamed to the file's cache
    name) and everything it reads, with what that is made from."""
    return Recipe(m.Make("task", task=spec, inputs=tuple(inputs)), _flat((s.name, s) for s in specs))
