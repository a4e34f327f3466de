"""Running shell commands: /bin/sh -c in the sandbox, noticed the instant they end.

Each command gets its own process group and the tag of its attempt in its
environment (see reaper.py), so that at its end, its timeout, a limit or
the worker's shutdown, everything it started goes with it, also what left
the group. It writes stdout and stderr to files beside its sandbox; the
worker reads their tails afterwards. The end of a process is seen through a
pidfd registered with the event loop, so no thread waits and no pipe has to
be drained; os.wait4 then gives its exit status and what it used.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from typing import Callable

from .limits import Limits, Watch
from .reaper import REAPER, TAG, kill_group, kill_tree
from .usage import from_rusage


class ShellProcess:
    """One running command. on_exit(returncode, started, finished) is called from the loop.

    When it is called, peak_memory (bytes) and cpu_time (seconds) say what
    the command used (None if unknown), and ended_by is (reason, message)
    when the worker ended it: "timeout", "memory" or "disk".
    """

    def __init__(self, command: str, cwd: str, stdout: str, stderr: str, env: dict[str, str] | None,
                 on_exit: Callable[[int, float, float], None], timeout: float | None = None, *,
                 task: int = 0, limits: Limits | None = None):
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        REAPER.enable()
        self.tag = REAPER.tag(task)
        self.ended_by: tuple[str, str] | None = None
        self.peak_memory: int | None = None
        self.cpu_time: float | None = None
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            self.started = time.time()
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", command], cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env={**os.environ, **(env or {}), TAG: self.tag}, process_group=0, close_fds=True)
        REAPER.own.add(self.proc.pid)
        REAPER.live.add(self.tag)
        self._fd = os.pidfd_open(self.proc.pid)
        self._loop.add_reader(self._fd, self._exited)
        self._timer = self._loop.call_later(timeout, self._timeout, timeout) if timeout else None
        self._watch = (Watch(limits, self.tag, cwd, (stdout, stderr), self.end, root=self.proc.pid)
                       if limits is not None else None)

    @property
    def timed_out(self) -> bool:
        return self.ended_by is not None and self.ended_by[0] == "timeout"

    def _exited(self) -> None:
        finished = time.time()
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        if self._timer is not None:
            self._timer.cancel()
        if self._watch is not None:
            self._watch.stop()
        pid = self.proc.pid
        kill_group(pid)  # whatever the command left running in its group goes with it
        try:
            _, status, rusage = os.wait4(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            self.peak_memory, self.cpu_time = from_rusage(rusage)
        except ChildProcessError:   # already waited for (the worker is stopping)
            code = -9
        self.proc.returncode = code
        if self._watch is not None:
            over = self._watch.final(self.peak_memory)
            if over is not None and self.ended_by is None:
                self.ended_by = over
            if self.peak_memory is not None:
                self.peak_memory = max(self.peak_memory, self._watch.peak)
        REAPER.own.discard(pid)
        REAPER.end(self.tag)   # and what left its group
        self._on_exit(code, self.started, finished)

    def _timeout(self, timeout: float) -> None:
        self.end("timeout", f"killed after its timeout of {timeout} s")

    def end(self, reason: str, message: str) -> None:
        """End the command for a reason (its timeout, a limit); the first reason given is kept."""
        if self.ended_by is None:
            self.ended_by = (reason, message)
        self.kill()

    def kill(self) -> None:
        """Kill the command's tree, its group, and the orphans it left with the worker."""
        if self.proc.returncode is None:
            kill_tree(self.proc.pid)
            kill_group(self.proc.pid)
        REAPER.end(self.tag)
