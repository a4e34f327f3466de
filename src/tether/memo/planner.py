"""The submitting side of memoization: which tasks are memoized, their fingerprints, and hits.

Runs in the submitting thread, as Manager.submit does: a task's fingerprint
needs those of the tasks making its inputs, which were submitted before it
(a task submitted before the producer of one of its inputs is not
memoized). A hit is decided here, before the task reaches the scheduler
core: its outputs that go home are written home now, from the record; its
other outputs are served from the record to whichever task reads them, and
the core sees a task completed at submission.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..wire.messages import Report
from .fingerprint import CONTENT_PREFIXES, function_identity, output_fingerprint, task_fingerprint
from .recorder import Pending, Recorder
from .store import MemoStore, Record, Unusable

log = logging.getLogger("tether.memo")


@dataclass
class Hit:
    report: Report                    # what the task's Future gives, as if it had run
    sizes: dict[str, int]             # cache name -> size of each output
    served: dict[str, Path]           # cache name -> where the submitting side serves it from


@dataclass
class Decision:
    fingerprint: str
    hit: Hit | None = None            # the record answers it: it does not run
    pending: Pending | None = None    # it runs, and its result is recorded if it succeeds


class Planner:
    """every: memoize every task that does not opt out (memo=False); else only those asking (memo=True)."""

    def __init__(self, store: MemoStore, every: bool, recorder: Recorder):
        self.store = store
        self.every = every
        self.recorder = recorder   # keeps the count of hits beside that of records
        self._lock = threading.Lock()
        self._fps: dict[str, str] = {}   # cache name of a file a task makes -> its fingerprint
        self._identities: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def wanted(self, asked: bool | None) -> bool:
        return self.every if asked is None else asked

    def identity(self, fn: Callable, pickled_name: str) -> str:
        """The function's identity; pickled_name is the content name of its pickled bytes."""
        try:
            known = self._identities.get(fn)
        except TypeError:
            known = None
        if known is not None and known[0] == pickled_name:
            return known[1]
        ident = function_identity(fn, pickled_name.encode())
        try:
            self._identities[fn] = (pickled_name, ident)
        except TypeError:
            pass
        return ident

    def fingerprint_of(self, name: str) -> str | None:
        """What a task reading this file puts in its fingerprint; None when it is not known."""
        if name.startswith(CONTENT_PREFIXES):
            return name
        return self._fps.get(name)

    def forget(self, name: str) -> None:
        """A made file the program can no longer name: no task submitted later can read it."""
        self._fps.pop(name, None)

    def decide(self, kind: str, parts: dict[str, Any], inputs: list[tuple[str | None, str]],
               outputs: list[tuple[str, str, Path | None]], label: str) -> Decision | None:
        """inputs: (sandbox name or None, cache name); outputs: (sandbox name, or "" for an Executor call's
        result; cache name; the path it goes home to, or None). None: the task cannot be memoized (an input
        whose fingerprint is not known)."""
        named = []
        for sandbox, name in inputs:
            fp = self.fingerprint_of(name)
            if fp is None:
                return None
            named.append((sandbox or "", fp))
        fingerprint = task_fingerprint(kind, parts, named, [s for s, _, _ in outputs])
        for sandbox, name, _ in outputs:
            self._fps[name] = output_fingerprint(fingerprint, sandbox)
        record = self.store.lookup(fingerprint)
        if record is not None and record.kind == kind and set(record.outputs) == {s for s, _, _ in outputs}:
            hit = self._replay(record, outputs)
            if hit is not None:
                with self._lock:
                    self.recorder.hits += 1
                return Decision(fingerprint, hit=hit)
        names = {name: sandbox for sandbox, name, _ in outputs}
        return Decision(fingerprint, pending=Pending(fingerprint, kind, label, names))

    def _replay(self, record: Record, outputs: list[tuple[str, str, Path | None]]) -> Hit | None:
        """What the task gives from its record: outputs going home are written there now."""
        path = self.store.record_path(record.fingerprint)
        sizes, served = {}, {}
        try:
            value = self.store.read_blob(record.value) if record.value is not None else None
            for sandbox, name, home in outputs:
                blob = record.outputs[sandbox]
                sizes[name] = blob[1]
                if home is not None:
                    self.store.copy_out(blob, home)
                    served[name] = home
                else:
                    served[name] = self.store.blob_path(blob[0])
        except Unusable as e:
            self.store.unusable(path, str(e))
            return None
        except FileNotFoundError as e:
            self.store.unusable(path, f"a blob it names is gone ({e})")
            return None
        except OSError as e:   # an output's home cannot be written: the task runs, and its Future says why
            log.warning("memo record %s not replayed: %s", path, e)
            return None
        now = time.time()
        report = Report(started=now, finished=now, exit=record.exit, stdout=record.stdout, stderr=record.stderr,
                        value=value, outputs=tuple(sizes.items()))
        return Hit(report, sizes, served)
