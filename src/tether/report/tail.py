"""Reading a transaction log while a manager is still writing it.

Each call to `Tail.read` returns the events of the lines completed since the
last call: a line the writer has not finished (no newline yet) waits for the
next call. Lines are parsed as `txlog.read` parses them, so a tailed log and
a log read whole make the same model.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..manager.txlog import VERSION, Event, parse_line
from .load import ReportError


class Tail:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.run: str | None = None
        self._offset = 0
        self._partial = b""
        self._header = False

    def read(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []                   # not written yet: the manager may not have started its log
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        events = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not self._header:
                self._check_header(line)
                continue
            event = parse_line(line)
            if event is not None:
                events.append(event)
        return events

    def _check_header(self, line: str) -> None:
        words = line.split()
        if len(words) < 2 or words[0] != "#tether-transactions" or not words[1].isdigit():
            raise ReportError(f"{self.path} is not a tether transaction log")
        if int(words[1]) > VERSION:
            raise ReportError(f"{self.path} is of version {words[1]}; this tether reads version {VERSION}")
        self.run = words[2] if len(words) > 2 else None
        self._header = True
