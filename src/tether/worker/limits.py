"""Memory and disk limits: a task that declares them is watched, and ended when over.

Only tasks with memory > 0 or disk > 0 (MB) are watched, INTERVAL seconds
apart, and checked once more at their end (final), against the peak their
runner measured and what their sandbox holds then: a task that went over
between two looks, or just before it ended, fails all the same.

Memory is the summed RSS of the task's processes (the process it runs in,
its descendants, and orphans the worker adopted that carry its tag, see
reaper.py) less a baseline: 0 for a shell command; for a Python call, the
RSS of its warm interpreter when the call began. The interpreter is shared
by the tasks before and after it and holds what they imported, so it is
not charged to each call, only what the call adds. Disk is what the
sandbox holds (as usage.sandbox_bytes counts it).

Over a limit, on_over(reason, message) is called once, reason "memory" or
"disk" and a message naming the limit and what was used, and the watch
stops: the caller ends the task's tree. These are the task's own failures,
retried as its `retries=` says.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Callable

import psutil

from .reaper import children, tag_of, tree
from .usage import sandbox_bytes

INTERVAL = 0.2
MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """What a task declared: memory and disk in MB (0: no limit), and the inputs its sandbox links in."""

    memory: int = 0
    disk: int = 0
    inputs: tuple[tuple[str, str], ...] | list = ()

    @classmethod
    def of(cls, memory: int, disk: int, inputs=()) -> "Limits | None":
        """The limits to watch, or None when none was declared (nothing is watched then)."""
        return cls(memory, disk, inputs) if memory or disk else None


def tree_rss(root: int | None, tag: str | None = None) -> int:
    """Summed RSS of root's tree and of the worker's adopted orphans tagged `tag`, with theirs."""
    pids = tree(root) if root is not None else []
    if tag:
        for pid in children(os.getpid()):
            if pid != root and tag_of(pid) == tag:
                pids.extend(tree(pid))
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


class Watch:
    """Polls one running task against its limits.

    Memory is looked at from begin(root, baseline) on: the pid the task runs
    in, and the RSS not to charge to it.
    """

    def __init__(self, limits: Limits, tag: str | None, sandbox: str | None, logs: tuple[str, ...],
                 on_over: Callable[[str, str], None], root: int | None = None):
        self.memory = limits.memory
        self.disk = limits.disk if sandbox is not None else 0   # nothing of its own to measure
        self.peak = 0   # the highest memory seen (bytes, less the baseline)
        self._root = root
        self._baseline = 0
        self._tag = tag
        self._sandbox = sandbox
        self._inputs = limits.inputs
        self._logs = logs
        self._on_over = on_over
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(INTERVAL, self._check)

    def begin(self, root: int, baseline: int) -> None:
        self._root, self._baseline = root, baseline

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        over = self.over()
        if over is not None:
            self._on_over(*over)
            return
        self._timer = self._loop.call_later(INTERVAL, self._check)

    def over(self) -> tuple[str, str] | None:
        """(reason, message) when the task is over a limit now, else None."""
        if self.memory and self._root is not None:
            used = tree_rss(self._root, self._tag) - self._baseline
            self.peak = max(self.peak, used)
            if used > self.memory * MB:
                return "memory", f"it used {used / MB:.1f} MB of memory, {self._of('memory')}"
        return self._disk_over()

    def final(self, peak: int | None) -> tuple[str, str] | None:
        """The task ended: was it over a limit? peak: the highest its runner measured (as for the baseline)."""
        self.stop()
        if peak:
            self.peak = max(self.peak, peak)
        if self.memory and self.peak > self.memory * MB:
            return "memory", f"it used {self.peak / MB:.1f} MB of memory at its peak, {self._of('memory')}"
        return self._disk_over()

    def _disk_over(self) -> tuple[str, str] | None:
        if self.disk:
            used = sandbox_bytes(self._sandbox, self._inputs, self._logs)
            if used > self.disk * MB:
                return "disk", f"its sandbox held {used / MB:.1f} MB, {self._of('disk')}"
        return None

    def _of(self, what: str) -> str:
        return f"over its {what} limit of {getattr(self, what)} MB"
