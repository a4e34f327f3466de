"""What a task used: peak memory (bytes), CPU time (seconds), disk (bytes).

A shell command's figures come from the rusage os.wait4 gives for it: CPU
of the command and the descendants it waited for; ru_maxrss is the largest
of those processes (KiB on Linux), not their sum, so when a memory limit
has the tree watched the highest sum seen counts too. A Python call's are
measured by its interpreter around the call (CallMeter): how far the call
raised the interpreter's RSS above what it was when the call began (the
warm interpreter, shared with other tasks, is not charged to each), and
the CPU of the interpreter and of the children it waited for. Disk is what the task left
in its sandbox at its end (outputs included, the links to its inputs not),
plus what a command wrote to stdout and stderr.

A no-op Python call takes a few microseconds, so measuring it must cost
less: the interpreter makes three system calls a call (getrusage twice,
one read of /proc/self/statm), and the worker looks at a sandbox nothing
was added to with two stat calls instead of reading it (SandboxMarks).
"""
from __future__ import annotations

import os
import resource
from collections.abc import Iterable

_SELF = resource.RUSAGE_SELF
_CHILDREN = resource.RUSAGE_CHILDREN
_getrusage = resource.getrusage
_pread = os.pread


def from_rusage(ru) -> tuple[int, float]:
    """(peak bytes, CPU seconds) of what os.wait4 reported."""
    return ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime


class SandboxMarks:
    """Whether anything was added to or removed from a sandbox since it was marked, for one or two stat calls.

    Every entry added, removed or renamed changes a directory's mtime. With
    fine-grained timestamps for changes that follow a look at the old one
    (Linux's multigrain timestamps), an mtime equal to the one seen at the
    mark means no change. Where timestamps are coarse, a change within the
    same clock tick would keep the mtime, so nothing is marked and every
    sandbox is read; which it is, is tried once, on the first sandbox.
    Inputs in subdirectories defeat the look from the top: such a sandbox
    is always read.

    A mark says: when the sandbox's mtime was this, it held its task's
    inputs and nothing else. A sandbox found empty and unchanged at its
    task's end stays so when it goes back to the pool (releasing it changes
    nothing), so the next task without inputs keeps its mark, and one stat
    call a task is enough for the short calls of a Python workload.
    """

    def __init__(self) -> None:
        self.fine: bool | None = None
        self._seen: dict[str, int] = {}   # sandbox -> its mtime at the mark (slots are reused, names not)
        self._empty: set[str] = set()     # found empty and unchanged at the last look

    def mark(self, sandbox: str, inputs: Iterable[tuple[str, str]] = ()) -> None:
        """The task starts; its inputs are linked in."""
        if self.fine is None:
            self.fine = _fine_timestamps(sandbox)
        if not self.fine or (not inputs and sandbox in self._empty):
            return
        self._empty.discard(sandbox)
        try:
            self._seen[sandbox] = os.stat(sandbox).st_mtime_ns
        except OSError:
            self._seen.pop(sandbox, None)

    def untouched(self, sandbox: str, inputs: Iterable[tuple[str, str]]) -> bool:
        seen = self._seen.get(sandbox)
        if seen is None or (inputs and any("/" in name for name, _ in inputs)):
            return False
        try:
            same = os.stat(sandbox).st_mtime_ns == seen
        except OSError:
            same = False
        if same and not inputs:
            self._empty.add(sandbox)
        else:
            self._empty.discard(sandbox)
        return same


def _fine_timestamps(directory: str) -> bool:
    """Does every change to this directory right after a stat give it a new mtime?"""
    probe = os.path.join(directory, ".tether-timestamps")
    try:
        for _ in range(8):
            before = os.stat(directory).st_mtime_ns
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            made = os.stat(directory).st_mtime_ns
            os.unlink(probe)
            if before == made or made == os.stat(directory).st_mtime_ns:
                return False
        return True
    except OSError:
        try:
            os.unlink(probe)
        except OSError:
            pass
        return False


MARKS = SandboxMarks()


def sandbox_bytes(sandbox: str | None, inputs: list[tuple[str, str]] = (), logs: tuple[str, ...] = ()) -> int:
    """Bytes in the sandbox's files (not the inputs linked in from the cache) and in the given logs."""
    total = 0
    for path in logs:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    if sandbox is None or MARKS.untouched(sandbox, inputs):
        return total
    linked = {name for name, _ in inputs}
    stack = [(sandbox, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for e in entries:
                    name = prefix + e.name
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append((e.path, name + "/"))
                        elif name not in linked:
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue   # removed while we looked
        except OSError:
            continue
    return total


class CallMeter:
    """Peak memory and CPU time of one call in this process (the warm interpreter), cheaply.

    Peak: how far RSS rose above start_rss, its value when the call began
    (one read of /proc/self/statm). The kernel keeps a high-water mark of
    RSS (VmHWM in /proc/self/status), reset to the current RSS by writing
    "5" to /proc/self/clear_refs. A call that took no page fault cannot
    have raised RSS: its peak is 0. Only after a call that faulted is VmHWM
    read; the mark is reset before a call only when it may lie above the
    RSS then (a fault, or a changed RSS, since the last reset). Where the
    mark cannot be reset, the RSS at the call's end stands in for its peak
    (a lower bound). ru_maxrss cannot serve: it never falls below the size
    of the process that started this one.

    CPU: user plus system time of this process (getrusage before and after)
    and of the children it waited for. Those are read only when the call
    may have had children: it blocked at least once (starting a process
    with vfork or posix_spawn, or waiting for one, does) or called os.fork.
    """

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._clear = _open("/proc/self/clear_refs", os.O_WRONLY)
        self._statm = _open("/proc/self/statm", os.O_RDONLY)
        self._status = _open("/proc/self/status", os.O_RDONLY)
        self._reset_rss = self._reset_faults = -1   # when the high-water mark was last reset
        self._rss = self._cpu = self._faults = self._switches = 0
        self._end = None
        self._forked = False
        ru = resource.getrusage(_CHILDREN)
        self._children_cpu = ru.ru_utime + ru.ru_stime
        os.register_at_fork(after_in_parent=self._fork_seen)

    @property
    def start_rss(self) -> int:
        return self._rss

    def _fork_seen(self) -> None:
        self._forked = True

    def start(self) -> None:
        ru = _getrusage(_SELF)
        self._faults = faults = ru.ru_minflt + ru.ru_majflt
        self._rss = rss = self._current_rss()
        if (rss != self._reset_rss or faults != self._reset_faults) and self._clear is not None:
            try:
                os.write(self._clear, b"5")
                self._reset_rss, self._reset_faults = rss, faults
            except OSError:
                self._clear = None
        self._cpu = ru.ru_utime + ru.ru_stime
        self._switches = ru.ru_nvcsw
        self._forked = False

    def ended(self) -> bool:
        """The call returned. May it have started processes (so its children are worth a look)?"""
        self._end = ru = _getrusage(_SELF)
        return ru.ru_nvcsw != self._switches or self._forked

    def figures(self, had_children: bool) -> list:
        """[peak bytes above start_rss, CPU seconds] of the call."""
        ru = self._end
        cpu = ru.ru_utime + ru.ru_stime - self._cpu
        if had_children:
            rc = _getrusage(_CHILDREN)
            children_cpu = rc.ru_utime + rc.ru_stime
            cpu += children_cpu - self._children_cpu
            self._children_cpu = children_cpu
        if ru.ru_minflt + ru.ru_majflt == self._faults:
            peak = 0
        else:
            high = self._high_water() if self._clear is not None else None
            peak = max(0, (self._current_rss() if high is None else high) - self._rss)
        return [peak, cpu]

    def _current_rss(self) -> int:
        if self._statm is None:
            return 0
        return int(_pread(self._statm, 128, 0).split()[1]) * self._page

    def _high_water(self) -> int | None:
        if self._status is None:
            return None
        text = os.pread(self._status, 4096, 0)
        at = text.find(b"VmHWM:")
        if at < 0:
            return None
        return int(text[at + 6:text.index(b"kB", at)]) * 1024


def _open(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return None
