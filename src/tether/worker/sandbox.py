"""Per-task sandbox directories: inputs linked in from the cache, outputs renamed out.

Nothing is copied on one worker: an input is a hard link to the cache file
(a symbolic link where the two are on different file systems), and an
output is renamed into the cache.

Directories are slots, reused: a task gets an empty slot, and when it ends
the slot is emptied by the janitor thread and goes back to the pool. On
file systems where freeing blocks is slow (online discard, network file
systems), removing a directory or a file with data can take far longer than
a short task; none of that happens on the path from one task's end to the
next one's start. Each slot has its own stdout and stderr files beside it,
truncated by the janitor too.
"""
from __future__ import annotations

import os
import shutil
import stat
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .janitor import Janitor

from .cache import Cache
from .makers import seal

TAIL_BYTES = 4096


class Sandboxes:
    def __init__(self, root: Path, janitor: "Janitor"):
        self.root = root
        self._root = str(root)
        self._janitor = janitor
        self._free: deque[str] = deque()
        self._count = 0
        shutil.rmtree(root, ignore_errors=True)   # slots left by a worker that was killed: their names are reused
        root.mkdir(parents=True, exist_ok=True)

    def acquire(self, inputs: list[tuple[str, str]], cache: Cache) -> str:
        """An empty sandbox with the inputs linked in."""
        try:
            d = self._free.popleft()
        except IndexError:
            self._count += 1
            d = f"{self._root}/s{self._count}"
            os.mkdir(d)
            for log in (f"{d}.out", f"{d}.err"):
                open(log, "wb").close()
        for name, cache_name in inputs:
            target = f"{d}/{name}"
            if "/" in name:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            src = cache.str_path(cache_name)
            try:
                os.link(src, target)
            except OSError:
                os.symlink(src, target)
        return d

    def collect(self, sandbox: str, outputs: list[tuple[str, str]], cache: Cache, trees: bool = False
                ) -> tuple[dict[str, int], list[str]]:
        """Move the outputs into the cache. Returns ({cache name: size}, [problems]).

        An output must be a regular file the task made: a symbolic link (which
        could point at any file the worker can read) or anything else is
        refused, and never followed. trees: a directory is taken too (a
        mini-task's output, shared read-only by the tasks that read it).
        """
        made: dict[str, int] = {}
        problems: list[str] = []
        for name, cache_name in outputs:
            p = f"{sandbox}/{name}"
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                problems.append(f"{name} (not made)")
                continue
            if stat.S_ISLNK(st.st_mode):
                problems.append(f"{name} (a symbolic link; an output must be a regular file)")
                continue
            if trees and stat.S_ISDIR(st.st_mode):
                size = seal(p)
                os.rename(p, cache.str_path(cache_name))
                cache.adopt_tree(cache_name, size)
                made[cache_name] = size
                continue
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"{name} (not a regular file)")
                continue
            os.replace(p, cache.str_path(cache_name))
            made[cache_name] = cache.adopt(cache_name)
        if problems:  # the task failed: nothing it made goes into the cache
            for cache_name in made:
                cache.remove(cache_name)
            made = {}
        return made, problems

    @staticmethod
    def log_paths(sandbox: str) -> tuple[str, str]:
        return f"{sandbox}.out", f"{sandbox}.err"

    def release(self, sandbox: str, inputs: list[tuple[str, str]], empty: bool = False,
                logs: bool = True) -> None:
        """Empty the sandbox and put it back in the pool.

        When it holds only what was put there (links to the cache at the top,
        empty logs), that takes a few cheap calls and is done now; anything
        the task left behind is removed by the janitor. empty: the caller has
        just seen it empty (SandboxMarks), so it is not read again; logs:
        False for a Python call, which never writes the slot's log files.
        """
        if empty and not inputs and not logs:   # the short Python call's path: no system call
            self._free.append(sandbox)
            return
        linked = {name for name, _ in inputs if "/" not in name}
        try:
            if not (empty and not inputs):
                with os.scandir(sandbox) as entries:
                    for e in entries:
                        if e.name not in linked or e.is_dir(follow_symlinks=False):
                            raise _Leftovers
                        os.unlink(e.path)   # a link: the cache keeps the file, no blocks are freed
            if logs and (os.stat(f"{sandbox}.out").st_size or os.stat(f"{sandbox}.err").st_size):
                raise _Leftovers
        except (_Leftovers, OSError):
            self._janitor.submit(self._empty, sandbox)
            return
        self._free.append(sandbox)

    def _empty(self, d: str) -> None:
        try:
            with os.scandir(d) as entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        shutil.rmtree(e.path, ignore_errors=True)
                    else:
                        os.unlink(e.path)
            for log in (f"{d}.out", f"{d}.err"):
                if os.stat(log).st_size:
                    os.truncate(log, 0)
        except OSError:
            shutil.rmtree(d, ignore_errors=True)  # a task left something odd: drop the slot
            return
        self._free.append(d)

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _Leftovers(Exception):
    """The sandbox holds more than its input links and empty logs."""


def tail(path: str, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a file, as text."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not size:
                return ""
            if size > limit:
                f.seek(size - limit)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
