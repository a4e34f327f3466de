"""The manager's side of recording: a memoized task's result, gathered as it arrives, then written.

Runs in the manager's loop thread; hashing, copying and writing go to
threads. A task's record is written once it has succeeded and each of its
outputs is here as a blob: outputs that go home are copied from home as
they arrive; the others (temps, an Executor call's result) are brought from
their worker when made (the core's `record` files), without holding up the
task's Future. A task that fails, or an output that cannot be brought, is
not recorded: a record holds successes only.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable

from ..wire.messages import Report
from .store import MemoStore, Record

log = logging.getLogger("tether.memo")


class Pending:
    """A memoized task that runs: what its record needs, and what has come so far."""

    __slots__ = ("fingerprint", "kind", "label", "names", "stored", "report", "value", "closed")

    def __init__(self, fingerprint: str, kind: str, label: str, names: dict[str, str]):
        self.fingerprint = fingerprint
        self.kind = kind
        self.label = label
        self.names = names                                 # cache name -> sandbox name ("" for a result)
        self.stored: dict[str, tuple[str, int] | bytes] = {}   # sandbox name -> blob, or bytes to write as one
        self.report: Report | None = None                      # once it succeeded
        self.value: bytes | None = None                        # its value, to write as a blob
        self.closed = False                                    # written, or given up


class Recorder:
    def __init__(self, store: MemoStore, spawn: Callable, served: dict):
        self.store = store
        self._spawn = spawn
        self.served = served                     # what the submitting side serves (the engine's)
        self.awaiting: dict[str, Pending] = {}   # an output not stored yet -> its task's record
        self.brought: set[str] = set()           # outputs the core brings here only for the record
        self.arrived: dict[str, bytes] = {}      # ... of those, the bytes that came with their task's completion
        self.recorded = 0                        # records written
        self.hits = 0                            # tasks a record answered (counted where they are submitted)
        self._busy = 0

    def expect(self, p: Pending, homes: dict) -> None:
        for name in p.names:
            self.awaiting[name] = p
            if name not in homes:
                self.brought.add(name)

    def busy(self) -> bool:
        """Is anything still being brought, stored or written?"""
        return self._busy > 0

    def start(self, coro) -> None:
        """Run a job of recording's (counted until it ends)."""
        self._busy += 1

        async def run():
            try:
                await coro
            finally:
                self._busy -= 1

        self._spawn(run())

    def keep_bytes(self, name: str, data: bytes) -> None:
        """A small output's bytes, here: the submitting side serves them from memory until the record,
        and they as a blob in it, are written (in one go, with the task's other small parts)."""
        self.served[name] = data
        p = self.awaiting.pop(name, None)
        if p is not None and not p.closed:
            p.stored[p.names[name]] = data
            self._maybe_write(p)

    async def keep(self, name: str, path: Path, move: bool) -> Path:
        """Store a large output as a blob (a file moved in from the store's tmp/, or copied from its home);
        returns where the blob is. Raises OSError when it cannot be stored."""
        try:
            blob = await asyncio.get_running_loop().run_in_executor(None, self.store.put_file, path, move)
        except OSError:
            self.lost(name)
            raise
        p = self.awaiting.pop(name, None)
        if p is not None and not p.closed:
            p.stored[p.names[name]] = blob
            self._maybe_write(p)
        return self.store.blob_path(blob[0])

    def lost(self, name: str) -> None:
        """An output will not reach the record: its task is not recorded."""
        p = self.awaiting.pop(name, None)
        if p is not None:
            self.drop(p)

    def drop(self, p: Pending) -> None:
        p.closed = True
        for name in p.names:
            if self.awaiting.get(name) is p:
                del self.awaiting[name]

    def completed(self, p: Pending, report: Report) -> None:
        """The task succeeded with this report."""
        if p.closed:
            return
        p.report = report
        p.value = report.value
        self._maybe_write(p)

    def _maybe_write(self, p: Pending) -> None:
        if p.closed or p.report is None or len(p.stored) < len(p.names):
            return
        p.closed = True
        self.start(self._write(p))

    async def _write(self, p: Pending) -> None:
        """The task's small parts as blobs, then its record: one job of a thread."""
        try:
            blobs = await asyncio.get_running_loop().run_in_executor(None, self._write_record, p)
        except OSError as e:
            log.warning("the memo record of %s could not be written: %s", p.label, e)
            return
        self.recorded += 1
        for name, sandbox in p.names.items():   # served from the blob from now on, not from memory
            if self.served.get(name) is p.stored[sandbox]:
                self.served[name] = self.store.blob_path(blobs[sandbox][0])

    def _write_record(self, p: Pending) -> dict[str, tuple[str, int]]:
        """(in a thread) Returns the blob of each output."""
        put = self.store.put_bytes
        blobs = {k: put(v) if isinstance(v, bytes) else v for k, v in p.stored.items()}
        r = p.report
        self.store.write(Record(p.fingerprint, p.kind, p.label, r.exit or 0, r.stdout, r.stderr,
                                put(p.value) if p.value is not None else None, blobs, time.time()))
        return blobs
