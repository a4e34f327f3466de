"""File declarations: what a task reads and writes, and the cache name of each.

A File is a handle the user gets from a Manager. Its *cache name* is the key
every worker cache, every message and the scheduler core use for it:

- local input files and buffers are named by a hash of their content, so the
  same bytes are sent at most once to a worker and reused across runs;
- temp files and task outputs are named by the run and a counter: they are
  made by a task, so their content is unknown when they are declared;
- files each worker makes for itself are named by what they are made from:
  a URL by a hash of it (`url-`), an archive's unpacked directory by the
  archive's name (`untar-`), a mini-task's output by the run and a counter
  (`mini-`).
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

HASH_BYTES = 20  # blake2b digest size: 160 bits
MADE_ON_WORKERS = ("url", "untar", "mini")   # kinds of File each worker that reads one makes for itself


def hash_bytes(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=HASH_BYTES).hexdigest()


def hash_path(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=HASH_BYTES)).hexdigest()


@dataclass(eq=False)
class File:
    """A file a task uses. Made by Manager.declare_*; do not build directly.

    kind is "local" (a path on the submitting side, read as an input or
    written as an output), "buffer" (bytes from memory), "temp" (made by a
    task, lives only in worker caches), or one each worker makes for itself
    (MADE_ON_WORKERS): "url", "untar" (an archive's unpacked directory) or
    "mini" (a mini-task's output).
    """

    kind: str
    run: str  # token of the declaring manager's run
    serial: int  # order of declaration within the run
    path: Path | None = None
    data: bytes | None = None
    keep: bool = False
    produced: bool = False  # made by a task (always true of temps)
    what: str | None = None  # how messages name a file each worker makes (its URL, its archive...)
    _name: str | None = field(default=None, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.kind == "temp":
            self.produced = True
            self._name = f"temp-{self.run}-{self.serial}"
        elif self.kind == "buffer":
            self._name = f"buf-{hash_bytes(self.data or b'')}"

    def describe(self) -> str:
        """How to name this file in an error message."""
        if self.what is not None:
            return self.what
        if self.path is not None:
            return str(self.path)
        if self.kind == "buffer":
            return f"buffer of {len(self.data or b'')} bytes"
        return f"temp file #{self.serial}"

    def mark_output(self, sandbox_name: str) -> None:
        """Record that a task makes this file; only temps and local paths can be made."""
        if self.kind == "buffer":
            raise ValueError(f"output {sandbox_name!r} is a buffer; outputs must be temp or local files")
        if self.kind in MADE_ON_WORKERS:
            raise ValueError(f"output {sandbox_name!r} is {self.describe()}, which each worker makes for itself; "
                             "outputs must be temp or local files")
        if self.kind == "local" and not self.produced:
            with self._lock:
                if self._name is not None:
                    raise ValueError(f"{self.path} was already used as an input read from disk; "
                                     "declare a new File for the output")
                self.produced = True
                self._name = f"out-{self.run}-{self.serial}"

    @property
    def name(self) -> str:
        """Cache name. For a local input, hashes the file (again if it changed).

        Raises FileNotFoundError naming the path if a local input is missing.
        """
        if self.kind != "local" or self.produced:
            return self._name  # type: ignore[return-value]
        with self._lock:
            try:
                st = os.stat(self.path)  # type: ignore[arg-type]
            except FileNotFoundError:
                raise FileNotFoundError(f"input file not found: {self.path}") from None
            if not os.path.isfile(self.path):  # type: ignore[arg-type]
                raise IsADirectoryError(f"input is not a regular file: {self.path}")
            stamp = (st.st_size, st.st_mtime_ns)
            if self._stamp != stamp or self._name is None:
                self._name = f"file-{hash_path(self.path)}"  # type: ignore[arg-type]
                self._stamp = stamp
            return self._name

    @property
    def size(self) -> int | None:
        """Size in bytes where known before any task runs."""
        if self.kind == "buffer":
            return len(self.data or b"")
        if self.kind == "local" and not self.produced and self._stamp is not None:
            return self._stamp[0]
        return None
