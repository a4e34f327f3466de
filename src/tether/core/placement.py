"""Where a ready task (or the head of a group) should run.

A worker is a candidate when the task fits its total resources and it has
room now: running tasks plus a short queue. The queue lets a worker start
its next task without waiting for a round trip to the manager; it holds
about `queue_time` seconds of work, so short tasks queue deeply and long
ones hardly at all.

Among candidates the task goes where it is expected to *start* soonest:
the wait for a free core there, plus the time to move the input bytes the
worker lacks. So data stays put unless a much shorter queue elsewhere
wins, and then the data moves.

A worker with room may still leave a task alone: when a worker already
holding its largest input is expected to start it before the bytes could
reach this one (leave_for_holder). The task waits for that worker; a new
copy is made once the queue for the holders grows longer than the copy.
"""
from __future__ import annotations

import math
from typing import Iterable

from .lifecycle import TaskState
from .model import TaskNode, WorkerNode
from .shares import allocation

MAX_QUEUE_PER_CORE = 256


def queue_per_core(mean_duration: float, queue_time: float) -> int:
    """How many tasks may wait behind each core, beyond those running."""
    if mean_duration <= 0:
        return 1  # nothing measured yet: one waiting task a core hides the round trip
    return min(MAX_QUEUE_PER_CORE, int(queue_time / mean_duration))


def queue_allowance(worker: WorkerNode, mean_duration: float, queue_time: float) -> int:
    """How many cores' worth of tasks may wait on the worker beyond those running."""
    return worker.cores * queue_per_core(mean_duration, queue_time)


def has_room(worker: WorkerNode, task: TaskNode, allowance: int) -> bool:
    """Can the worker take the task now, its share (shares.py) included? The queue beyond its cores
    (allowance cores' worth) holds memory, disk and GPUs in the same proportion: the worker starts
    each task only once what it holds is free there."""
    if not worker.staying or worker.blocked_until is not None:
        return False
    total = worker.cores
    if task.need is None and task.category is None:   # one core and its share: the common case
        if worker.used_cores + 1 > total + allowance:
            return False
        return not worker.memory or (worker.used_memory + worker.memory // total) * total <= \
            worker.memory * (total + allowance)
    if not worker.fits(task):
        return False
    cores, memory, disk, gpus = allocation(worker, task)
    if worker.used_cores + cores > total + allowance:
        return False
    room = total + allowance   # the totals below scaled by room / total
    if memory and (worker.used_memory + memory) * total > worker.memory * room:
        return False
    if disk and (worker.used_disk + disk) * total > worker.disk * room:
        return False
    if gpus and (worker.used_gpus + gpus) * total > worker.gpus * room:
        return False
    return True


def local_bytes(worker: WorkerNode, task: TaskNode) -> int:
    return sum(f.size for f in task.inputs if worker in f.replicas or worker in f.pending)


def missing_bytes(worker: WorkerNode, task: TaskNode) -> int:
    return sum(f.size for f in task.inputs if worker not in f.replicas and worker not in f.pending)


UNMEASURED_DURATION = 0.01  # seconds a task is assumed to take before any has been measured


def expected_start(worker: WorkerNode, task: TaskNode, mean_duration: float, bandwidth: float) -> float:
    """Seconds until the task could start on the worker: queue wait plus data to move."""
    over = worker.used_cores + task.cores - worker.cores
    wait = (over / worker.cores) * (mean_duration or UNMEASURED_DURATION) if over > 0 else 0.0
    return wait + missing_bytes(worker, task) / bandwidth


def choose(task: TaskNode, candidates: Iterable[WorkerNode], mean_duration: float,
           bandwidth: float) -> WorkerNode | None:
    """The candidate where the task is expected to start first.

    Ties go to the worker holding more of the input bytes, then to the one
    with more free cores, then to the first by id (candidates come from sets,
    whose order follows memory addresses: the same events must give the same
    placements).
    """
    best: WorkerNode | None = None
    best_key: tuple[float, int, float, str] | None = None
    for w in candidates:
        key = (expected_start(w, task, mean_duration, bandwidth), -local_bytes(w, task),
               w.used_cores / w.cores, w.id)
        if best_key is None or key < best_key:
            best, best_key = w, key
    return best


LONG_RUN, LONG_RUN_FACTOR = 1.0, 4   # a task running past both (seconds; times the mean) is long
BACKLOG_SCAN = 256   # consumers of a file looked at to count the ready tasks queuing for its holders


def remaining_work(worker: WorkerNode, mean_duration: float, now: float) -> float:
    """Seconds of work the worker has in hand, each task counted as the mean; a task running far
    past the mean (LONG_RUN) is expected to take as long again as it has so far, so a worker
    stuck on one long task soon looks busy for long. (A task counts as running from when it was
    sent with its inputs on their way, by the last tick: so not before it is clearly long.)"""
    d = mean_duration or UNMEASURED_DURATION
    long_run = max(LONG_RUN_FACTOR * d, LONG_RUN)
    # (fsum: the same total whatever order the set gives, so one history gives one decision)
    return math.fsum(ran if ran > long_run else d
                     for ran in (now - x.active_since if x.state is TaskState.RUNNING else 0.0
                                 for x in worker.tasks))


def leave_for_holder(task: TaskNode, worker: WorkerNode, holders: Iterable[WorkerNode], mean_duration: float,
                     bandwidth: float, now: float) -> bool:
    """Should a free worker leave the task to one that holds its largest input already?

    Yes when moving the bytes it lacks is expected to take longer than the
    holder's wait: the work the holder has in hand and its share of the
    ready tasks reading that input. Copies of it already under way count
    against a new one: they share the links it would cross. So a fan-out
    over a large input keeps to the workers holding it while they keep up,
    and a new copy is made once the queue for them is longer than the copy
    takes (the first ones find no holder and fetch)."""
    missing, largest = 0, None
    for f in task.inputs:
        if worker not in f.replicas and worker not in f.pending:
            missing += f.size
            if largest is None or f.size > largest.size:
                largest = f
    if largest is None:
        return False
    d = mean_duration or UNMEASURED_DURATION
    move = (missing + largest.size * len(largest.pending)) / bandwidth   # copies under way share the links
    if move <= d:
        return False   # cheaper than a task's run: not worth a wait
    holders = [v for v in holders if v is not worker]
    if not holders:
        return False
    queued = 0
    for n, c in enumerate(largest.consumers):
        if n >= BACKLOG_SCAN:
            break
        if c.state is TaskState.READY:
            queued += 1
    share = queued * d / len(holders)
    return any((remaining_work(v, d, now) + share) / v.cores + missing_bytes(v, task) / bandwidth < move
               for v in holders)
