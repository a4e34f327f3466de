"""Per-task sandbox directories: inputs linked in from the cache, outputs renamed out.

Nothing is copied on one worker: an input is a hard link to the cache file
(a symbolic link where the two are on different file systems), and an
output is renamed into the cache.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .cache import Cache

TAIL_BYTES = 4096


class Sandboxes:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def prepare(self, task_id: int, inputs: list[tuple[str, str]], cache: Cache) -> Path:
        d = self.root / f"t{task_id}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        for name, cache_name in inputs:
            target = d / name
            if "/" in name:
                target.parent.mkdir(parents=True, exist_ok=True)
            src = cache.path(cache_name)
            try:
                os.link(src, target)
            except OSError:
                os.symlink(src, target)
        return d

    def collect(self, sandbox: Path, outputs: list[tuple[str, str]], cache: Cache
                ) -> tuple[dict[str, int], list[str]]:
        """Move the outputs into the cache. Returns ({cache name: size}, [missing sandbox names])."""
        made: dict[str, int] = {}
        missing: list[str] = []
        for name, cache_name in outputs:
            p = sandbox / name
            if not p.is_file():
                missing.append(name)
                continue
            os.replace(p, cache.path(cache_name))
            made[cache_name] = cache.adopt(cache_name)
        if missing:  # the task failed: nothing it made goes into the cache
            for cache_name in made:
                cache.remove(cache_name)
            made = {}
        return made, missing

    def log_paths(self, task_id: int) -> tuple[Path, Path]:
        return self.root / f"t{task_id}.out", self.root / f"t{task_id}.err"

    def remove(self, task_id: int) -> None:
        shutil.rmtree(self.root / f"t{task_id}", ignore_errors=True)
        for p in self.log_paths(task_id):
            p.unlink(missing_ok=True)

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a file, as text."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
