"""How much of a worker a task gets: what it states, the rest in proportion, or its category's.

Proportional shares. A task's share of a worker is the largest fraction of
it that any resource the task states takes (cores, memory, disk, GPUs);
each resource it does not state is given in that proportion. So a task of
1 of 4 cores gets a quarter of the memory and of the disk, and a task that
asks for half the memory gets half the cores (rounded up) and half the
disk. A task that states nothing takes one core and its share. GPUs are
given only to tasks that ask for them. A worker that offers none of a
resource (0) gives none of it in proportion.

The share is worked out for the worker the task is placed on (workers
differ in size), and held there while the task runs. Memory and disk are
also the task's limits on its worker when it stated something (or belongs
to a category); a task that stated nothing is placed by its share but not
watched, so a plain command is never killed over an amount it never named.

Categories. Tasks of a category that leave a resource unstated take the
category's. In mode "fixed" that is what the category states. In mode
"max" the category's statement (or, where it states nothing, a whole
worker) is the most a task may use: the first tasks run with it, the peak
memory and disk their runs measured is learnt, and later tasks are placed
with the largest peak seen plus headroom (a quarter more, and at least
HEADROOM_MB), and limited to it, so that more of them share a worker. One
that outgrows what was learnt and is killed for it runs again, once, with
the whole allowance (the attempt is not counted against its retries).
"""
from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from .events import Resources

if TYPE_CHECKING:
    from .model import TaskNode, WorkerNode

MB = 1 << 20
HEADROOM_MB = 10
MODES = ("max", "fixed")
NOTHING = (0, 0, 0, 0)


class Category:
    """A named kind of task: what it may use, and (mode "max") the peaks its runs showed."""

    __slots__ = ("name", "mode", "limit", "peak_memory", "peak_disk", "samples")

    def __init__(self, name: str, mode: str, cores: int = 0, memory: int = 0, disk: int = 0, gpus: int = 0):
        if mode not in MODES:
            raise ValueError(f"category {name!r}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.name = name
        self.mode = mode
        self.limit = (cores, memory, disk, gpus)
        self.peak_memory = 0   # bytes, the highest any run of the category measured
        self.peak_disk = 0
        self.samples = 0

    @property
    def learnt(self) -> bool:
        return self.mode == "max" and self.samples > 0

    def request(self, full: bool) -> tuple[int, int, int, int] | None:
        """What a task of this category asks for where it states nothing; None: a whole worker."""
        cores, memory, disk, gpus = self.limit
        if self.mode == "fixed":
            return self.limit
        if full or not self.samples:
            return self.limit if any(self.limit) else None
        return (cores, _with_headroom(self.peak_memory, memory), _with_headroom(self.peak_disk, disk), gpus)

    def learn(self, memory: int, disk: int) -> None:
        """A run of the category ended; it used at most these bytes."""
        if self.mode != "max":
            return
        self.samples += 1
        self.peak_memory = max(self.peak_memory, memory)
        self.peak_disk = max(self.peak_disk, disk)

    def __repr__(self) -> str:
        return f"<category {self.name} {self.mode}>"


def _with_headroom(peak: int, limit: int) -> int:
    """MB to allow for a peak of `peak` bytes: a quarter more, at least HEADROOM_MB more, at most limit.
    A peak of 0 (nothing measured) states nothing: the share follows the other resources."""
    if not peak:
        return 0
    mb = -(-peak // MB)
    want = max(-(-mb * 5 // 4), mb + HEADROOM_MB)
    return min(want, limit) if limit else want


def request(t: "TaskNode") -> tuple[int, int, int, int] | None:
    """What t asks for, cores 0 meaning "in proportion"; None: a whole worker."""
    need = t.need
    c = t.category
    if c is None:
        return need if need is not None else NOTHING
    base = c.request(t.full)
    if need is None:
        return base
    if base is None:   # a whole worker, except what the task itself states
        return tuple(n or -1 for n in need)
    return tuple(n or b for n, b in zip(need, base))


def allocation(w: "WorkerNode", t: "TaskNode") -> Resources:
    """What t holds on w: what it states, the rest in proportion (see the module's docstring)."""
    want = request(t)
    if want is None:
        return Resources(w.cores, w.memory, w.disk, 0)
    cores, memory, disk, gpus = want
    if not (memory or disk or gpus):   # the common case: cores alone, or nothing
        c = cores or 1
        held = min(c, w.cores)
        return Resources(c, w.memory * held // w.cores, w.disk * held // w.cores, 0)
    share = Fraction(0)
    for stated, total in ((cores, w.cores), (memory, w.memory), (disk, w.disk), (gpus, w.gpus)):
        if stated == -1:
            share = Fraction(1)
        elif stated and total:
            share = max(share, Fraction(stated, total))
    if not share:
        share = Fraction(1, w.cores)
    share = min(share, Fraction(1))
    return Resources(cores if cores > 0 else max(1, _ceil(share * w.cores)),
                     memory if memory > 0 else int(share * w.memory),
                     disk if disk > 0 else int(share * w.disk),
                     gpus if gpus > 0 else 0)


def _ceil(x: Fraction) -> int:
    return -(-x.numerator // x.denominator)
