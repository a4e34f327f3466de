"""Ending a task's whole process tree, wherever its processes went.

Killing a command's process group is not enough: a process that calls
setsid() leaves the group, and one whose parent exits is handed to init,
out of sight. So the worker (and each warm interpreter) makes itself a
child subreaper (Linux): orphans among its descendants become its own
children instead of init's. Every process of a task carries an environment
variable, TAG, naming the task attempt. When a task ends, is killed for its
timeout or a limit, or the worker stops, its tree is killed, and so is
every adopted orphan whose tag names a task no longer running, with its
descendants; adopted orphans are waited for, so none stays a zombie.

Everything here reads /proc directly (children from
/proc/PID/task/TID/children, the tag from /proc/PID/environ): a few small
reads, no scan of every process on the machine. Elsewhere, or where /proc
says nothing, it kills what it can name and no more. A process that clears
its environment and leaves its session escapes the tag; it still ends when
the worker stops, with everything else below the worker.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import signal
import threading
import time

TAG = "TETHER_TASK"
_TAG_ENTRY = TAG.encode() + b"="
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt the orphans of this process's descendants (Linux); False where that is not possible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> list[int]:
    """The children of a process, from every one of its threads."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(map(int, f.read().split()))
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """A process and its descendants, parents before their children."""
    out = [pid]
    i = 0
    while i < len(out):
        out.extend(children(out[i]))
        i += 1
    return out


def tag_of(pid: int) -> str | None:
    """The task a process belongs to: its TAG; "" when it has none (or is exiting); None if it is gone."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    if env.startswith(_TAG_ENTRY):
        start = len(_TAG_ENTRY)
    else:
        start = env.find(b"\0" + _TAG_ENTRY)
        if start < 0:
            return ""
        start += 1 + len(_TAG_ENTRY)
    end = env.find(b"\0", start)
    return env[start:end if end >= 0 else len(env)].decode("utf-8", "replace")


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and all its descendants; returns the pids signalled.

    The tree is read before anything is killed, so children do not first
    scatter to the subreaper; one forked between the reading and the
    killing is orphaned and adopted, and found by the next sweep.
    """
    pids = tree(pid)
    for p in pids:
        _kill(p)
    return pids


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Children:
    """Does this process have children? Asked after every Python call that may have started one.

    One waitid() that reaps nothing (WNOWAIT, WNOHANG): it fails with ECHILD
    only when no thread of this process has a child, running or exited,
    started or adopted. Where waitid cannot tell, the main thread's list is
    read through a descriptor kept open, and every thread's list while Python
    knows of other threads (a read per thread: with the thread that importing
    Parsl starts, that cost 40-170 us after every call).
    """

    _FLAGS = os.WEXITED | os.WNOHANG | os.WNOWAIT if hasattr(os, "waitid") else 0

    def __init__(self) -> None:
        pid = os.getpid()
        self._waitid = hasattr(os, "waitid")
        try:
            self._fd: int | None = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = None

    def any(self) -> bool:
        if self._waitid:
            try:
                os.waitid(os.P_ALL, 0, self._FLAGS)
                return True
            except ChildProcessError:
                return False
            except OSError:
                self._waitid = False
        if self._fd is None:
            return False
        if os.pread(self._fd, 32, 0):
            return True
        return threading.active_count() > 1 and bool(children(os.getpid()))


def end_children(deadline: float = 1.0) -> int:
    """Kill every child of this process and their trees, and wait for them (the interpreter's clean-up).

    Orphans of the killed trees are adopted by this process (a subreaper) as
    they die, so it goes on until no child is left or `deadline` seconds
    have passed. Returns how many children it waited for.
    """
    me = os.getpid()
    waited = 0
    give_up = time.monotonic() + deadline
    while True:
        kids = children(me)
        if not kids:
            return waited
        for pid in kids:
            kill_tree(pid)
        for pid in kids:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done:
                waited += 1
        if time.monotonic() > give_up:
            return waited
        time.sleep(0.001)


class Reaper:
    """The worker's side: tags task attempts and ends what they leave behind.

    live: tags of shell commands still running (their adopted orphans are
    left alone until they end). own: the worker's own children (commands'
    shells, interpreters), which it waits for itself; a sweep never waits
    for them. One per process: the subreaper setting and the children it
    adopts belong to the whole process.
    """

    FIRST_DELAY = 0.02
    MAX_DELAY = 1.0

    def __init__(self) -> None:
        self.enabled: bool | None = None
        self.live: set[str] = set()
        self.own: set[int] = set()
        self._runs = itertools.count(1)
        self._prefix = f"{os.getpid()}-"
        self._dying: set[int] = set()    # adopted children killed, not yet waited for
        self._timer = None
        self._delay = self.FIRST_DELAY

    def enable(self) -> None:
        """Become a subreaper, once, before the first task starts."""
        if self.enabled is None:
            self.enabled = become_subreaper()
            self._prefix = f"{os.getpid()}-"

    def tag(self, task_id: int) -> str:
        """A new value of TAG for one attempt of a task: worker pid, task id, run number."""
        return f"{self._prefix}{task_id}-{next(self._runs)}"

    def end(self, tag: str | None = None) -> None:
        """A task ended (tag no longer live): end its adopted orphans, and reap what has died.

        One more sweep follows shortly: what was killed with the task's group
        may come to the worker only as it dies.
        """
        if tag is not None:
            self.live.discard(tag)
        self.sweep()
        self._again()

    def sweep(self) -> None:
        """Wait for adopted children that died; kill those tagged by tasks no longer running.

        While it kills or waits for something, it runs again, later and later
        (up to MAX_DELAY apart): what it killed may still be exiting, and the
        orphans of what died come to the worker. Adopted children that end
        on their own are waited for at the next sweep (each command's end
        makes one).
        """
        again = False
        for pid in children(os.getpid()):
            if pid in self.own:
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                self._dying.discard(pid)
                continue
            if done:
                self._dying.discard(pid)
                again = True
            elif pid in self._dying:
                again = True
            else:
                tag = tag_of(pid)
                if tag and tag not in self.live:
                    kill_tree(pid)
                    self._dying.add(pid)
                    again = True
        if again:
            self._again()
        else:
            self._delay = self.FIRST_DELAY

    def _again(self) -> None:
        if self._timer is not None:
            return
        try:
            import asyncio   # here, not above: the interpreters import this module and need no event loop
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self._delay, self._swept_later)
        self._delay = min(self._delay * 2, self.MAX_DELAY)

    def _swept_later(self) -> None:
        self._timer = None
        self.sweep()

    def end_all(self, deadline: float = 2.0) -> None:
        """The worker is stopping: kill everything below it, tagged or not, and wait for it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.live.clear()
        end_children(deadline)
        self.own.clear()
        self._dying.clear()


REAPER = Reaper()
