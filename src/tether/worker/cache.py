"""The worker's file cache: one directory, one file per cache name.

Content-named files (user inputs, buffers, functions) survive the run and
are offered to the next manager; files named by a run (temps, outputs) are
removed when the worker leaves. Cache files are made read-only, because
tasks see them through hard links.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

CONTENT_PREFIXES = ("file-", "buf-")
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class Cache:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.sizes: dict[str, int] = {}
        self.bytes = 0
        self.peak = 0

    def path(self, name: str) -> Path:
        return self.root / name

    def scan(self) -> dict[str, int]:
        """Adopt content-named files left by earlier runs; delete anything else."""
        for entry in os.scandir(self.root):
            if entry.is_file() and entry.name.startswith(CONTENT_PREFIXES) and ".part" not in entry.name:
                self._account(entry.name, entry.stat().st_size)
            else:
                _remove(Path(entry.path))
        return dict(self.sizes)

    def adopt(self, name: str) -> int:
        """A file was just renamed or received into the cache under name; returns its size."""
        p = self.path(name)
        os.chmod(p, READ_ONLY)
        size = os.stat(p).st_size
        self._account(name, size)
        return size

    def remove(self, name: str) -> None:
        size = self.sizes.pop(name, None)
        if size is not None:
            self.bytes -= size
        self.path(name).unlink(missing_ok=True)

    def remove_run_files(self) -> None:
        for name in list(self.sizes):
            if not name.startswith(CONTENT_PREFIXES):
                self.remove(name)

    def _account(self, name: str, size: int) -> None:
        old = self.sizes.get(name)
        if old is not None:
            self.bytes -= old
        self.sizes[name] = size
        self.bytes += size
        self.peak = max(self.peak, self.bytes)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        import shutil
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
