"""The worker's file cache: one directory, one file per cache name.

Content-named files (user inputs, buffers, functions) survive the run and
are offered to the next manager; files named by a run (temps, outputs) are
removed when the worker leaves. Cache files are made read-only, because
tasks see them through hard links.

Files the worker makes for itself: an unpacked archive is a read-only
directory, removed with the run's files. A URL's copy goes too, unless it
was declared kept: then it stays, with its validators (ETag, Last-Modified)
in a `.url` file beside it, and is not offered to the next manager (the
copy may be stale) but revalidated when a task of a later run reads it.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .janitor import Janitor

from .makers import remove_tree

CONTENT_PREFIXES = ("file-", "buf-")
URL_PREFIX = "url-"
VALIDATORS = ".url"   # beside a kept URL's copy: its validators, as JSON
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class Cache:
    """Deleting a file with data can be slow (see sandbox.py): a removed file is
    renamed into a trash directory at once, so its name is free again, and
    unlinked by the janitor thread."""

    def __init__(self, root: Path, janitor: "Janitor | None" = None):
        self.root = root
        self._root = str(root)
        self._trash = f"{root}.trash"
        self._trashed = itertools.count()
        self._janitor = janitor
        root.mkdir(parents=True, exist_ok=True)
        os.makedirs(self._trash, exist_ok=True)
        self.sizes: dict[str, int] = {}
        self.bytes = 0
        self.peak = 0
        self.stale: dict[str, dict[str, str]] = {}   # kept URL copies of earlier runs -> their validators
        self.kept: set[str] = set()                  # URL copies of this run that stay after it

    def path(self, name: str) -> Path:
        return self.root / name

    def str_path(self, name: str) -> str:
        return f"{self._root}/{name}"

    def scan(self) -> dict[str, int]:
        """Adopt content-named files left by earlier runs, least recently used first (by the
        times keep_order gave them); delete anything else."""
        shutil.rmtree(self._trash, ignore_errors=True)
        os.makedirs(self._trash, exist_ok=True)
        kept = []
        entries = list(os.scandir(self.root))
        names = {entry.name for entry in entries}
        for entry in entries:
            if entry.is_file() and entry.name.startswith(CONTENT_PREFIXES) and ".part" not in entry.name:
                st = entry.stat()
                kept.append((st.st_mtime_ns, entry.name, st.st_size))
            elif entry.name.startswith(URL_PREFIX) and (
                    entry.name + VALIDATORS in names or entry.name.endswith(VALIDATORS)) and self._stale(entry):
                continue
            else:
                _remove(Path(entry.path))
        for _, name, size in sorted(kept):
            self._account(name, size)
        return dict(self.sizes)

    def _stale(self, entry: os.DirEntry) -> bool:
        """A kept URL copy of an earlier run, or its validators: keep the pair (True) when both are sound."""
        if entry.name.endswith(VALIDATORS):
            return os.path.isfile(entry.path[:-len(VALIDATORS)])
        try:
            with open(entry.path + VALIDATORS) as f:
                validators = json.load(f)
        except (OSError, ValueError):
            return False
        if not entry.is_file(follow_symlinks=False) or not isinstance(validators, dict):
            return False
        self.stale[entry.name] = {str(k): str(v) for k, v in validators.items()}
        return True

    def keep_url(self, name: str, validators: dict[str, str]) -> None:
        """A URL's copy stays after the run, with its validators for the next run's conditional fetch."""
        self.kept.add(name)
        self.stale.pop(name, None)
        path = self.str_path(name) + VALIDATORS
        with open(path + ".part", "w") as f:
            json.dump(validators, f)
        os.replace(path + ".part", path)

    def keep_order(self, names: Iterable[str]) -> None:
        """Leave the order of use (least recent first) in the files' modification times, a second
        apart, for the next run's scan: its eviction then starts with what was used longest ago.
        A file that arrived after the last clean exit (the worker was killed) keeps the time it
        was written, later than any of these."""
        names = [n for n in names if n in self.sizes]
        start = time.time_ns() - len(names) * 1_000_000_000
        for i, name in enumerate(names):
            t = start + i * 1_000_000_000
            try:
                os.utime(self.str_path(name), ns=(t, t))
            except OSError:
                pass   # gone, or not this user's to touch: its own time stands

    def adopt(self, name: str) -> int:
        """A file was just renamed or received into the cache under name; returns its size."""
        p = self.str_path(name)
        os.chmod(p, READ_ONLY)
        size = os.stat(p).st_size
        self._account(name, size)
        return size

    def adopt_tree(self, name: str, size: int) -> None:
        """A read-only directory of `size` bytes was just renamed into the cache under name."""
        self._account(name, size)

    def remove(self, name: str) -> None:
        size = self.sizes.pop(name, None)
        if size is not None:
            self.bytes -= size
        if self._janitor is None:
            _unlink(self.str_path(name))
            return
        trashed = f"{self._trash}/{next(self._trashed)}"
        try:
            os.rename(self.str_path(name), trashed)
        except FileNotFoundError:
            return
        self._janitor.submit(_unlink, trashed)

    def remove_run_files(self) -> None:
        for name in list(self.sizes):
            if not name.startswith(CONTENT_PREFIXES) and name not in self.kept:
                self.sizes.pop(name)
                _unlink(self.str_path(name))
                if name.startswith(URL_PREFIX):
                    _unlink(self.str_path(name) + VALIDATORS)
        shutil.rmtree(self._trash, ignore_errors=True)

    def _account(self, name: str, size: int) -> None:
        old = self.sizes.get(name)
        if old is not None:
            self.bytes -= old
        self.sizes[name] = size
        self.bytes += size
        self.peak = max(self.peak, self.bytes)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (IsADirectoryError, PermissionError):
        if os.path.isdir(path) and not os.path.islink(path):   # an unpacked archive
            remove_tree(path)
        else:
            raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        remove_tree(str(p))
    else:
        p.unlink(missing_ok=True)
