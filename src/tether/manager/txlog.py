"""The transaction log: one line for each thing that happened in a run, appended as it goes.

A run's `transactions` file (in its run directory) is text, one event a
line, fields separated by tabs, the first field the time in seconds since
the epoch. It starts with a header line naming the format's version:

    #tether-transactions 1 <run> <pid>

and continues with lines of these kinds (FIELDS after the time):

    TASK <id> SUBMITTED <kind: sh|py> <cores> <memory MB> <disk MB> <what: the command or function>
    TASK <id> ASSIGNED <worker> <attempt> <group or ->
    TASK <id> RAN <worker> <started> <finished> <peak memory B or -> <cpu s or -> <disk B or -> <exit>
    TASK <id> ATTEMPT-FAILED <worker> <reason> <started> <finished> <message>
    TASK <id> DONE <attempts> <hop latency s or ->
    TASK <id> FAILED <reason> <attempts> <message>
    TASK <id> CANCELLED
    GROUP <id> FORMED <worker> <member,member,...>
    GROUP <id> MOVED <worker> <member,member,...>     (members taken from a slow worker to another)
    TRANSFER <file> <from: manager|worker> <to: manager|worker> <bytes>
    CACHE <worker> INSERT <file> <bytes>
    CACHE <worker> EVICT <file>
    WORKER <id> JOINED <host> <cores> <memory MB> <disk MB>
    WORKER <id> LEFT <reason>
    WORKER <id> BLOCKLISTED <until: seconds since the epoch>
    WORKER <id> RETIRING <reason>                     (asked to leave: scaled in, or idle)
    WORKER <id> RETIRED <temps copied off> <temps that could not be> <temps kept by the manager>
    MANAGER <event: STARTED|CLOSED> <details>

A group's id is the id of its first task. A TRANSFER line is written when
the file has arrived (a worker reports it cached, or the manager has
written it home); a file a worker made for itself (a URL it fetched, an
archive it unpacked, a mini-task's output) has a CACHE INSERT only. Times of RAN and ATTEMPT-FAILED are the worker's clock.
A task is retried when an ATTEMPT-FAILED is followed by another ASSIGNED
with a higher attempt. Message fields are cut to 500 characters, commands
to 200.

Lines are only ever added, and a field never holds a tab or a newline
(they are replaced by spaces). Fields may be added at the end of a kind in
a later version; readers must ignore fields they do not know. `read`
below is the reference reader.

Writing costs the manager's loop an append of a tuple: a thread of the
log's own packs them in batches for a process of its own that writes the
lines (see txwriter.py), so that the manager's GIL is not spent on text.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator, NamedTuple

import msgpack

from . import txwriter
from .txwriter import ERRORS, format_lines

log = logging.getLogger("tether.manager")

VERSION = 1
FLUSH_EVERY = 0.2   # seconds


class Event(NamedTuple):
    time: float
    kind: str        # TASK, GROUP, TRANSFER, CACHE, WORKER, MANAGER
    subject: str     # the task id, group id, file, worker ...
    event: str       # SUBMITTED, RAN, ...
    fields: tuple[str, ...]


class TxLog:
    """Appends events to `path`; `add` may be called from the manager's loop only.

    A thread of the log's own takes what was added every FLUSH_EVERY seconds
    and hands it, packed, to the writer process (txwriter.py), or, with
    separate_process=False or where that process cannot run, formats and
    writes it itself.
    """

    def __init__(self, path: Path, run: str, separate_process: bool = True):
        self.path = path
        self._pending: deque[tuple] = deque()   # append and popleft are atomic: no lock on the loop's side
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"#tether-transactions {VERSION} {run} {os.getpid()}\n")
        self._file = None
        self._writer: subprocess.Popen | None = None
        if separate_process:
            try:
                # a session of its own: a Ctrl-C meant for the program must not cut the log short
                self._writer = subprocess.Popen([sys.executable, txwriter.__file__, str(path)], stdin=subprocess.PIPE,
                                                stdout=subprocess.DEVNULL, start_new_session=True)
                self._packer = msgpack.Packer(default=str, unicode_errors="surrogatepass")
            except OSError as e:
                log.warning("the transaction log's writer process could not start (%s); writing it here", e)
        if self._writer is None:
            self._file = open(path, "a", encoding="utf-8", errors=ERRORS, buffering=1 << 16)
        self._thread = threading.Thread(target=self._run, name="tether-txlog", daemon=True)
        self._thread.start()

    def add(self, kind: str, subject, event: str, *fields) -> None:
        self._pending.append((time.time(), kind, subject, event) + fields)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_EVERY)
            self._wake.clear()
            try:
                self.flush()
            except Exception:   # a bug here must not stop the log for the rest of the run
                log.exception("could not write to the transaction log %s", self.path)

    def flush(self) -> None:
        """Hand on what was added (to the writer process, which writes it a moment later)."""
        with self._lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if not batch:
                return
            if self._writer is not None:
                try:
                    self._writer.stdin.write(self._packer.pack(batch))
                    self._writer.stdin.flush()
                    return
                except (OSError, ValueError) as e:
                    log.warning("the transaction log's writer process failed (%s); writing it here", e)
                    self._end_writer()
                    self._file = open(self.path, "a", encoding="utf-8", errors=ERRORS, buffering=1 << 16)
            if self._file is not None and not self._file.closed:
                self._file.write(format_lines(batch))
                self._file.flush()

    def _end_writer(self) -> None:
        writer, self._writer = self._writer, None
        try:
            writer.stdin.close()
        except OSError:
            pass
        try:
            writer.wait(30)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()

    def close(self) -> None:
        """Write everything added, and wait until it is in the file."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(5)
        self.flush()
        with self._lock:
            if self._writer is not None:
                self._end_writer()
            if self._file is not None:
                self._file.close()


def read(path: str | os.PathLike) -> Iterator[Event]:
    """The events of a transaction log, in order; the header is checked, unknown lines skipped."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().split()
        if len(header) < 2 or header[0] != "#tether-transactions":
            raise ValueError(f"{path} is not a tether transaction log")
        if int(header[1]) > VERSION:
            raise ValueError(f"{path} is of version {header[1]}; this reader knows version {VERSION}")
        for line in f:
            event = parse_line(line.rstrip("\n"))
            if event is not None:
                yield event


def parse_line(line: str) -> Event | None:
    """The event on one line (without its newline); None for a comment or a line it cannot read."""
    parts = line.split("\t")
    if len(parts) < 4 or line.startswith("#"):
        return None
    try:
        t = float(parts[0])
    except ValueError:
        return None
    return Event(t, parts[1], parts[2], parts[3], tuple(parts[4:]))
