"""Moving group members off a worker slower than an idle one.

Committing a long sequence to one worker is a bet that the worker is as
fast as the rest. When a worker sits idle with nothing ready to give it, the
rebalancer looks at each group committed elsewhere: the members after the
one running there have not started (each waits for the one before it), so
they can be taken back and moved, with one peer transfer of the temps they
need. It moves them when, by the task times observed so far, they are
expected to finish sooner on the idle worker.

Estimates, per group on worker W and idle worker V, for the n members not
yet started:
  stay  = n * d_W                 d_W: this group's member time on W, or, if the
                                  member running now (counted from when it became
                                  ready there) has run far longer than that (by
                                  more than `stall` seconds), that time
  move  = bytes / bandwidth + n * d_W * speed(V) / speed(W)
                                  bytes: of the temps they read from W; one still
                                  being made counts as what its maker reads (or
                                  a mean output, if larger)
A move is made when move < stay * (1 - margin) and stay - move > min_gain.
All times come from events (task start and end times, Tick.now): no clock
is read here, so tests drive it with a fake one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .lifecycle import FINISHED, TaskState
from .model import Group, TaskNode, WorkerNode

if TYPE_CHECKING:
    from .scheduler import Scheduler


class Rebalancer:
    def __init__(self, margin: float = 0.3, min_gain: float = 0.2, every: float = 0.5, stall: float = 0.5):
        self.margin = margin
        self.min_gain = min_gain      # seconds a move must save to be worth it
        self.stall = stall            # seconds a member must run beyond the usual before that counts
        self.every = every            # seconds between looks
        self._last = float("-inf")

    def __call__(self, s: "Scheduler", now: float) -> None:
        if now - self._last < self.every:
            return
        self._last = now
        targets = {w for w in s.moves.values()}
        # every worker with a free core that may take work is in s._idle (an invariant): look there first,
        # so that a busy cluster of a thousand workers costs a tick nothing; then keep the workers' order
        idle_set = {w for w in s._idle if w.staying and w.blocked_until is None and w.used_cores < w.cores
                    and w not in targets and not _ready_fits(s, w)}
        if not idle_set:
            return
        idle = [w for w in s.workers.values() if w in idle_set]
        proposals = []
        for w in s.workers.values():
            if not w.alive or w in idle_set:
                continue
            for g in _groups_on(w):
                suffix = _not_started(g, w, s)
                if not suffix:
                    continue
                stay = self._stay(s, g, suffix, w, now)
                if stay is None:
                    continue
                for v in idle:
                    gain = self._gain(s, suffix, stay, v)
                    if gain is not None:
                        proposals.append((gain, g.id, g, suffix, w, v))
        proposals.sort(key=lambda p: (-p[0], p[1]))
        taken_groups, taken_workers = set(), set()
        for gain, _, g, suffix, w, v in proposals:
            if g.id in taken_groups or v in taken_workers:
                continue
            taken_groups.add(g.id)
            taken_workers.add(v)
            s.move(suffix, w, v)

    def _stay(self, s: "Scheduler", g: Group, suffix: list[TaskNode], w: WorkerNode,
              now: float) -> tuple[float, float, int] | None:
        """(d, speed of w, bytes a move sends) as the estimates above take them; None when d is unknown.
        Worked out once per group, not once per idle worker."""
        done = [m for m in g.members if m.state in (TaskState.DONE, TaskState.HOMING)]   # they ran on w
        d = sum(m.finished - m.started for m in done) / len(done) if done else w.durations.value
        current = next((m for m in g.members if m.state not in FINISHED), None)
        # how long the current member has been ready says how slow w is only if it cannot
        # have been waiting in w's queue, behind other work
        if (current is not None and current.state is TaskState.RUNNING and current.active_since
                and w.used_cores <= w.cores):
            since = current.active_since
            if done:
                since = max(since, max(m.finished for m in done))
            if now - since > max(3 * d, self.stall):
                d = now - since   # the member running now has already taken this long
                done = True
        if d <= 0 or not done:
            # no member of this group has ended here nor stalled: w's mean is of other work, which says
            # nothing of how long these members take (with affinity, one worker may run the long tasks)
            return None
        # a file still being made counts as large as what its maker reads, or as a mean output
        moved_bytes = sum(f.size if f.made else max(f.size, s.output_size.value,
                                                    sum(i.size for i in f.producer.inputs))
                          for m in suffix for f in m.inputs
                          if not f.source and f.producer is not None and f.producer not in suffix)
        return d, max(w.durations.value or s.mean_duration.value or d, d), moved_bytes

    def _gain(self, s: "Scheduler", suffix: list[TaskNode], stay: tuple[float, float, int],
              v: WorkerNode) -> float | None:
        if not all(v.fits(m) for m in suffix):
            return None
        d, speed_w, moved_bytes = stay
        speed_v = v.durations.value or s.mean_duration.value or d
        stay_s = len(suffix) * d
        move = moved_bytes / s.bandwidth + len(suffix) * d * speed_v / speed_w
        if move < stay_s * (1 - self.margin) and stay_s - move > self.min_gain:
            return stay_s - move
        return None


def _ready_fits(s: "Scheduler", w: WorkerNode) -> bool:
    """Is some ready task waiting that this worker could take? Then it needs no move."""
    return any(shape[0] <= w.cores for shape in s._ready)


def _groups_on(w: WorkerNode) -> list[Group]:
    seen: dict[int, Group] = {}
    for t in w.tasks:
        g = t.group
        if g is not None and g.worker is w:
            seen[g.id] = g
    return [seen[k] for k in sorted(seen)]


def _not_started(g: Group, w: WorkerNode, s: "Scheduler") -> list[TaskNode]:
    """Members after the first unfinished one: each waits for the one before it."""
    unfinished = [m for m in g.members if m.state not in FINISHED]
    suffix = unfinished[1:]
    if not suffix or any(m.worker is not w or m.id in s.moves for m in suffix):
        return []
    return suffix
