"""What happened in a run, built from transaction-log events one at a time.

The model is the only code that knows the log's vocabulary (see
tether.manager.txlog); the renderers (HTML, PNG, metrics) read the model and
nothing else. It takes events as they come, so a live page keeps one model
and feeds it while the run goes on, and a report of a finished run is the
same model fed a whole file.

A log is read while a manager is still writing it, and later versions may
add fields, so the model never fails on a line: an event of a kind it does
not know, or whose numbers do not parse, is counted in `skipped` and left
out. Events may come as `txlog.Event`s (strings, as read from a file) or as
the tuples the manager logs (numbers and None as they were): both are
`(time, kind, subject, event, fields)`.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

# The three directions of a transfer, named as the benchmarks name their byte counts.
TRANSFER_KINDS = ("manager_to_worker", "worker_to_manager", "worker_to_worker")
MANAGER = "manager"

# Task states, in the order a task goes through them.
WAITING, ASSIGNED, DONE, FAILED, CANCELLED = "waiting", "assigned", "done", "failed", "cancelled"
TASK_STATES = (WAITING, ASSIGNED, DONE, FAILED, CANCELLED)


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value)
    return None if text in ("-", "") else text


def _float(value) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    return None if value in ("-", "") else float(value)


def _int(value) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if value in ("-", ""):
        return None
    try:
        return int(value)
    except ValueError:
        return int(float(value))


def _at(fields, i):
    return fields[i] if i < len(fields) else None


@dataclass
class Attempt:
    """One try of a task on one worker: from its assignment to its end."""
    task: str
    number: int
    worker: str
    group: str | None
    assigned: float
    started: float | None = None
    finished: float | None = None
    peak_memory: int | None = None      # bytes
    cpu: float | None = None            # seconds
    disk: int | None = None             # bytes
    exit_code: int | None = None
    outcome: str = "open"               # open (assigned, not ended), ran, failed
    reason: str | None = None
    message: str | None = None
    failed_at: float | None = None      # when the manager learnt of the failure


@dataclass
class Task:
    id: str
    kind: str | None = None             # sh or py
    what: str | None = None             # the command or the function
    cores: int | None = None
    memory: int | None = None           # MB asked for
    disk: int | None = None             # MB asked for
    submitted: float | None = None
    state: str = WAITING
    attempts: list[Attempt] = field(default_factory=list)
    attempt_count: int | None = None    # as the manager counted them at the end
    hop_latency: float | None = None
    ended: float | None = None          # when it was done, failed or cancelled
    reason: str | None = None           # why it failed for good
    message: str | None = None

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def worker(self) -> str | None:
        return self.attempts[-1].worker if self.attempts else None

    @property
    def group(self) -> str | None:
        return self.attempts[-1].group if self.attempts else None

    @property
    def tries(self) -> int:
        return max(self.attempt_count or 0, len(self.attempts))

    @property
    def ran(self) -> Attempt | None:
        """The last attempt that has times: the one whose resources and times the task reports."""
        for a in reversed(self.attempts):
            if a.started is not None:
                return a
        return None


@dataclass
class Worker:
    id: str
    host: str | None = None
    cores: int | None = None
    memory: int | None = None           # MB
    disk: int | None = None             # MB
    joined: float | None = None
    left: float | None = None
    left_reason: str | None = None
    blocklisted: list[tuple[float, float | None]] = field(default_factory=list)   # (from, until)
    retiring: float | None = None       # when it was asked to leave (scaled in, idle)
    retired: tuple[int, int] | None = None   # temps copied off it, temps that could not be


@dataclass
class Group:
    id: str
    worker: str | None
    members: tuple[str, ...]
    formed: float


@dataclass
class Transfer:
    time: float
    file: str
    source: str                         # "manager" or a worker
    dest: str
    bytes: int

    @property
    def kind(self) -> str:
        if self.source == MANAGER:
            return "manager_to_worker"
        return "worker_to_manager" if self.dest == MANAGER else "worker_to_worker"


@dataclass
class Failure:
    """An attempt that failed (final=False) or a task given up on (final=True)."""
    time: float
    task: str
    worker: str | None
    reason: str
    message: str | None
    final: bool
    attempt: int | None = None          # which try failed (for a final failure: how many there were)


@dataclass
class CacheUse:
    """A worker's cache as the manager saw it: the files, their sizes and the total over time."""
    worker: str
    files: dict[str, int] = field(default_factory=dict)
    total: int = 0
    peak: int = 0
    points: list[tuple[float, int]] = field(default_factory=list)   # (time, total bytes) after each change

    def _set(self, time: float, total: int) -> None:
        self.total = total
        self.peak = max(self.peak, total)
        self.points.append((time, total))


@dataclass
class Summary:
    run: str | None
    start: float | None
    end: float | None
    makespan: float
    tasks: int
    states: dict[str, int]
    attempts: int
    failed_attempts: int
    retried_tasks: int
    bytes_moved: dict[str, int]
    transfers: dict[str, int]
    workers: int
    workers_connected: int
    cores: int
    peak_cache: dict[str, int]
    hop_count: int
    hop_median: float | None
    hop_p90: float | None
    failures_by_reason: dict[str, int]


class Model:
    """Everything a report shows, kept up to date one event at a time (`add`, `extend`)."""

    def __init__(self, run: str | None = None):
        self.run = run
        self.tasks: dict[str, Task] = {}
        self.workers: dict[str, Worker] = {}
        self.groups: dict[str, Group] = {}
        self.transfers: list[Transfer] = []
        self.cache: dict[str, CacheUse] = {}
        self.failures: list[Failure] = []
        self.manager_events: list[tuple[float, str, str, tuple]] = []
        self.bytes_moved = dict.fromkeys(TRANSFER_KINDS, 0)
        self.transfer_counts = dict.fromkeys(TRANSFER_KINDS, 0)
        self.first: float | None = None     # earliest time seen, events and attempts alike
        self.last: float | None = None
        self.version = 0                    # events taken so far: a live page redraws when it changes
        self.skipped = 0                    # events not understood

    @classmethod
    def from_events(cls, events: Iterable, run: str | None = None) -> Model:
        model = cls(run)
        model.extend(events)
        return model

    # ------------------------------------------------------------------ events in

    def extend(self, events: Iterable) -> None:
        for event in events:
            self.add(event)

    def add(self, event) -> None:
        self.version += 1
        try:
            time, kind, subject, name, fields = event
            time = float(time)
            subject = str(subject)
            handler = _HANDLERS.get((kind, name)) or _HANDLERS.get((kind, None))
            if handler is None:
                self.skipped += 1
                return
            handler(self, time, subject, str(name), tuple(fields))
        except (TypeError, ValueError, IndexError):
            self.skipped += 1
            return
        self._seen(time)

    def _seen(self, time: float | None) -> None:
        if time is None:
            return
        if self.first is None or time < self.first:
            self.first = time
        if self.last is None or time > self.last:
            self.last = time

    def _task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:                # a log joined late, or a line lost: the task still shows
            task = self.tasks[task_id] = Task(task_id)
        return task

    def _worker(self, worker_id: str) -> Worker:
        worker = self.workers.get(worker_id)
        if worker is None:
            worker = self.workers[worker_id] = Worker(worker_id)
        return worker

    def _cache(self, worker_id: str) -> CacheUse:
        use = self.cache.get(worker_id)
        if use is None:
            use = self.cache[worker_id] = CacheUse(worker_id)
        return use

    def _task_submitted(self, t, task_id, _, f):
        task = self._task(task_id)
        task.kind, task.submitted = _text(_at(f, 0)), t
        task.cores, task.memory, task.disk = _int(_at(f, 1)), _int(_at(f, 2)), _int(_at(f, 3))
        task.what = _text(_at(f, 4))

    def _task_assigned(self, t, task_id, _, f):
        task = self._task(task_id)
        worker, number, group = str(f[0]), _int(_at(f, 1)) or len(task.attempts) + 1, _text(_at(f, 2))
        self._worker(worker)
        last = task.last
        if last is not None and last.outcome == "open" and last.started is None:
            # planned again before it started (a group member moved, a worker lost): the same try
            last.worker, last.number, last.group, last.assigned = worker, number, group, t
        else:
            task.attempts.append(Attempt(task_id, number, worker, group, t))
        if task.state == WAITING:
            task.state = ASSIGNED

    def _attempt_for(self, task: Task, worker: str, t: float, *, failing: bool) -> Attempt:
        """The attempt an end report is about: the last on that worker not yet ended (for a failure,
        also one that ran and then failed, as when its output vanished), else a new one."""
        for a in reversed(task.attempts):
            if a.worker == worker and (a.outcome == "open" or (failing and a.outcome == "ran")):
                return a
        a = Attempt(task.id, len(task.attempts) + 1, worker, None, t)
        task.attempts.append(a)
        self._worker(worker)
        return a

    def _task_ran(self, t, task_id, _, f):
        task = self._task(task_id)
        worker, started, finished = str(f[0]), _float(_at(f, 1)), _float(_at(f, 2))
        a = self._attempt_for(task, worker, t, failing=False)
        a.started, a.finished = started, finished
        a.peak_memory, a.cpu, a.disk = _int(_at(f, 3)), _float(_at(f, 4)), _int(_at(f, 5))
        a.exit_code = _int(_at(f, 6))
        if a.outcome == "open":
            a.outcome = "ran"
        self._seen(started)
        self._seen(finished)

    def _task_attempt_failed(self, t, task_id, _, f):
        task = self._task(task_id)
        worker, reason = str(f[0]), _text(_at(f, 1)) or "unknown"
        started, finished, message = _float(_at(f, 2)), _float(_at(f, 3)), _text(_at(f, 4))
        a = self._attempt_for(task, worker, t, failing=True)
        if started is not None:
            a.started = started
        if finished is not None:
            a.finished = finished
        a.outcome, a.reason, a.message, a.failed_at = "failed", reason, message, t
        self.failures.append(Failure(t, task_id, worker, reason, message, final=False, attempt=a.number))
        self._seen(started)
        self._seen(finished)

    def _task_done(self, t, task_id, _, f):
        task = self._task(task_id)
        task.state, task.ended = DONE, t
        task.attempt_count, task.hop_latency = _int(_at(f, 0)), _float(_at(f, 1))

    def _task_failed(self, t, task_id, _, f):
        task = self._task(task_id)
        task.state, task.ended = FAILED, t
        task.reason, task.attempt_count, task.message = _text(_at(f, 0)) or "unknown", _int(_at(f, 1)), _text(_at(f, 2))
        self.failures.append(Failure(t, task_id, task.worker, task.reason, task.message, final=True,
                                     attempt=task.tries))

    def _task_cancelled(self, t, task_id, _, f):
        task = self._task(task_id)
        task.state, task.ended = CANCELLED, t

    def _group_formed(self, t, group_id, _, f):
        worker = _text(_at(f, 0))
        members = _at(f, 1)
        if isinstance(members, str):
            members = tuple(m for m in members.split(",") if m)
        self.groups[group_id] = Group(group_id, worker, tuple(members or ()), t)
        if worker is not None:
            self._worker(worker)

    def _transfer(self, t, file, source, f):
        dest, size = str(f[0]), _int(_at(f, 1)) or 0
        transfer = Transfer(t, file, source, dest, size)
        self.transfers.append(transfer)
        self.bytes_moved[transfer.kind] += size
        self.transfer_counts[transfer.kind] += 1

    def _cache_insert(self, t, worker, _, f):
        use = self._cache(worker)
        file, size = str(f[0]), _int(_at(f, 1)) or 0
        use._set(t, use.total - use.files.get(file, 0) + size)
        use.files[file] = size

    def _cache_evict(self, t, worker, _, f):
        use = self._cache(worker)
        size = use.files.pop(str(f[0]), None)
        if size is not None:
            use._set(t, use.total - size)

    def _worker_joined(self, t, worker_id, _, f):
        w = self._worker(worker_id)
        w.host = _text(_at(f, 0))
        w.cores, w.memory, w.disk = _int(_at(f, 1)), _int(_at(f, 2)), _int(_at(f, 3))
        if w.joined is None:
            w.joined = t
        w.left = w.left_reason = None

    def _worker_left(self, t, worker_id, _, f):
        w = self._worker(worker_id)
        w.left, w.left_reason = t, _text(_at(f, 0)) or "unknown"
        use = self.cache.get(worker_id)
        if use is not None and use.files:   # what it held is gone, as far as the run is concerned
            use.files.clear()
            use._set(t, 0)

    def _worker_blocklisted(self, t, worker_id, _, f):
        self._worker(worker_id).blocklisted.append((t, _float(_at(f, 0))))

    def _worker_retiring(self, t, worker_id, _, f):
        self._worker(worker_id).retiring = t

    def _worker_retired(self, t, worker_id, _, f):
        copied, lost = _int(_at(f, 0)), _int(_at(f, 1))
        self._worker(worker_id).retired = (copied or 0, lost or 0)

    def _manager(self, t, subject, name, f):
        self.manager_events.append((t, subject, name, f))

    # ------------------------------------------------------------------ figures out

    def hop_latencies(self) -> list[float]:
        return [t.hop_latency for t in self.tasks.values() if t.hop_latency is not None]

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TASK_STATES, 0)
        for task in self.tasks.values():
            counts[task.state] += 1
        return counts

    def span(self) -> tuple[float | None, float | None]:
        """From the first submission to the last task's end (the last event while tasks are unfinished)."""
        submitted = [t.submitted for t in self.tasks.values() if t.submitted is not None]
        start = min(submitted) if submitted else self.first
        end = None
        for task in self.tasks.values():
            if task.ended is None:
                return start, self.last
            ran = task.ran
            end = max(end or task.ended, task.ended, ran.finished if ran and ran.finished is not None else task.ended)
        return start, (end if end is not None else self.last)

    def summary(self) -> Summary:
        start, end = self.span()
        hops = sorted(self.hop_latencies())
        attempts = sum(len(t.attempts) for t in self.tasks.values())
        failed_attempts = sum(1 for f in self.failures if not f.final)
        by_reason: dict[str, int] = {}
        for f in self.failures:
            if not f.final:
                by_reason[f.reason] = by_reason.get(f.reason, 0) + 1
        connected = [w for w in self.workers.values() if w.joined is not None and w.left is None]
        return Summary(
            run=self.run, start=start, end=end,
            makespan=(end - start) if start is not None and end is not None else 0.0,
            tasks=len(self.tasks), states=self.state_counts(),
            attempts=attempts, failed_attempts=failed_attempts,
            retried_tasks=sum(1 for t in self.tasks.values() if t.tries > 1),
            bytes_moved=dict(self.bytes_moved), transfers=dict(self.transfer_counts),
            workers=len(self.workers), workers_connected=len(connected),
            cores=sum(w.cores or 0 for w in connected),
            peak_cache={w: use.peak for w, use in self.cache.items()},
            hop_count=len(hops),
            hop_median=statistics.median(hops) if hops else None,
            hop_p90=quantile(hops, 0.9),
            failures_by_reason=by_reason,
        )


def quantile(ordered: list[float], q: float) -> float | None:
    """The q-quantile of sorted values, by linear interpolation; None for none."""
    if not ordered:
        return None
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# What each line means, as data: (kind, event) -> handler; (kind, None) takes any event of that kind
# (a transfer's event field is its source, a manager line's is free text).
_HANDLERS = {
    ("TASK", "SUBMITTED"): Model._task_submitted,
    ("TASK", "ASSIGNED"): Model._task_assigned,
    ("TASK", "RAN"): Model._task_ran,
    ("TASK", "ATTEMPT-FAILED"): Model._task_attempt_failed,
    ("TASK", "DONE"): Model._task_done,
    ("TASK", "FAILED"): Model._task_failed,
    ("TASK", "CANCELLED"): Model._task_cancelled,
    ("GROUP", "FORMED"): Model._group_formed,
    ("GROUP", "MOVED"): Model._group_formed,   # taken back from a slow worker: its members now go elsewhere
    ("TRANSFER", None): Model._transfer,
    ("CACHE", "INSERT"): Model._cache_insert,
    ("CACHE", "EVICT"): Model._cache_evict,
    ("WORKER", "JOINED"): Model._worker_joined,
    ("WORKER", "LEFT"): Model._worker_left,
    ("WORKER", "BLOCKLISTED"): Model._worker_blocklisted,
    ("WORKER", "RETIRING"): Model._worker_retiring,
    ("WORKER", "RETIRED"): Model._worker_retired,
    ("MANAGER", None): Model._manager,
}
