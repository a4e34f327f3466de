"""Invariants of the scheduler core, checked by Scheduler.validate() in tests.

Each check states one fact that must hold between two calls of
Scheduler.handle(); the first that fails raises AssertionError naming the
task, file or worker. Too slow for a run (it walks the whole graph), made
to be called after every step of a test.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import graph
from .lifecycle import ON_WORKER, PENDING, TERMINAL, FileState, TaskState

if TYPE_CHECKING:
    from .scheduler import Scheduler

T = TaskState
F = FileState


def check_scheduler(s: "Scheduler") -> None:
    counted = dict.fromkeys(s.by_state, 0)
    for t in s.tasks.values():
        _check_task(s, t)
        counted[t.state] += 1
    assert counted == s.by_state, f"tasks by state are counted as {s.by_state}, but are {counted}"
    readers: dict[int, int] = {}
    for t in s.tasks.values():
        for f in (*t.inputs, *t.outputs):
            _require(s.files.get(f.name) is f, f"task {t.id} names file {f.name}, which the core has let go of")
        for f in t.inputs:
            readers[id(f)] = readers.get(id(f), 0) + 1
    for f in s.files.values():
        _check_file(f)
        held = (0 if f.released else 1) + readers.get(id(f), 0)
        _require(f.holds == held, f"file {f.name} counts {f.holds} holds, but the user's handle and the "
                 f"tasks reading it make {held}")
        p = f.producer
        _require(p is None or s.tasks.get(p.id) is p, f"file {f.name} is kept, but its producer {p and p.id} "
                 "was let go of")
    for w in s.workers.values():
        _check_worker(s, w)
    ready = {entry[-1] for heap in s._ready.values() for entry in heap}
    for t in s.tasks.values():
        if t.state is T.READY:
            _require(t.id in ready, f"task {t.id} is READY but in no ready queue")
    for name, w in s._bringing.items():
        f = s.files[name]
        _require(f.state is F.MADE and w in f.replicas, f"file {name} ({f.state.name}) is being brought from "
                 f"worker {w.id}, which does not hold it")
    for tid in s.moves:
        t = s.tasks[tid]
        _require(t.state in ON_WORKER, f"task {tid} is being moved but is {t.state.name}, not on a worker")


def _check_task(s: "Scheduler", t) -> None:
    name = f"task {t.id} ({t.state.name})"
    if t.state in ON_WORKER:
        _require(t.worker is not None and t in t.worker.tasks, f"{name} has no worker that lists it")
        _require(t.worker.alive, f"{name} is on worker {t.worker.id}, which is lost")
    else:
        _require(t.worker is None, f"{name} still names worker {t.worker and t.worker.id}")
    if t.state in PENDING:
        missing = sum(1 for f in t.inputs if not f.made)
        _require(t.missing == missing, f"{name} counts {t.missing} missing inputs, but {missing} are missing")
        for f in t.inputs:
            _require(t in f.consumers, f"{name} will run but is not a consumer of its input {f.name}")
            _require(f.state is not F.DOOMED, f"{name} waits for {f.name}, which will never be made")
    else:
        for f in t.inputs:
            _require(t not in f.consumers, f"{name} is still listed as a consumer of {f.name}")
    if t.state is T.READY or t.state is T.RUNNING:
        _require(t.missing == 0, f"{name} has {t.missing} missing inputs")
    if t.state is T.ASSIGNED or t.state is T.WAITING:
        _require(t.missing > 0, f"{name} has every input but is still {t.state.name}")
    if t.state is T.HOMING:
        _require(any(f.home and f.state is not F.HOME for f in t.outputs),
                 f"{name} is HOMING but every output is home")
        _require(all(f.made for f in t.outputs), f"{name} is HOMING with an output lost")
    if t.state in TERMINAL and t.state is not T.DONE:
        _require(t.reported, f"{name} ended but its Future was never settled")
    if t.state is T.DONE:
        _require(t.reported, f"{name} is DONE but its Future was never settled")
    if t.group is not None:
        _require(t in t.group.members, f"{name} names group {t.group.id}, which does not list it")
    for f in t.outputs:
        _require(f.producer is t, f"{name} makes {f.name}, whose producer is another task")
    if t.partners is not None:
        _require(t.partners == tuple(graph.find_partners(t)), f"{name} keeps partners that its outputs' "
                 "readers no longer give")


def _check_file(f) -> None:
    name = f"file {f.name} ({f.state.name})"
    for w in f.replicas | f.pending:
        _require(w.alive, f"{name} is on lost worker {w.id}")
        _require(f in w.files, f"{name} is on worker {w.id}, which does not list it")
    _require(not (f.replicas & f.pending), f"{name} is both held by and on its way to a worker")
    if f.state is F.MADE:
        _require(bool(f.replicas), f"{name} is MADE but no worker holds it")
    if f.state in (F.ABSENT, F.GONE, F.DOOMED):
        _require(not f.replicas, f"{name} is not available but workers hold it")
    if f.state in (F.GONE, F.DOOMED):
        _require(not f.pending, f"{name} is on its way to a worker")
    if f.state is F.RECIPE:
        _require(f.producer is None, f"{name} is made by each worker, but names producer {f.producer and f.producer.id}")
    if f.state is F.DOOMED:
        p = f.producer
        _require(p is None or p.state in (T.FAILED, T.CANCELLED), f"{name} is DOOMED but its producer is "
                 f"{p.state.name if p else None}")
    if f.state is F.ABSENT and f.producer is not None and f.producer.state in (T.FAILED, T.CANCELLED):
        _require(not f.consumers and not f.wanted, f"{name} is needed, but its producer {f.producer.id} "
                 f"is {f.producer.state.name}: it is never made again")
    if f.state is F.ABSENT and f.producer is not None:
        _require(f.producer.state not in (T.DONE, T.HOMING) or not (f.consumers or f.home or f.wanted),
                 f"{name} is needed, but its producer {f.producer.id} is {f.producer.state.name} and will "
                 "not make it again")
    for c in f.consumers:
        _require(c.state in PENDING, f"{name} lists consumer {c.id}, which is {c.state.name}")


def _check_worker(s: "Scheduler", w) -> None:
    name = f"worker {w.id}"
    if not w.alive:
        _require(not w.tasks and not w.files and not w.held, f"lost {name} still holds tasks or files")
        _require(w not in s._idle and w not in s._not_full, f"lost {name} is offered work")
        return
    held = sum(f.size for f in w.files if w in f.replicas)
    _require(w.held == held, f"{name} counts {w.held} bytes held, its replicas {held}")
    _require(w.peak >= w.held, f"{name} held {w.held} bytes, more than its peak {w.peak}")
    made = sum(f.size for f in w.files if w in f.replicas and f.producer is not None)
    _require(w.held_made == made, f"{name} counts {w.held_made} bytes of made files, its replicas {made}")
    _require(w.peak_made >= w.held_made, f"{name} held {w.held_made} bytes of made files, past its peak")
    running = [t for t in w.tasks if t.state is T.RUNNING]
    _require(w.used_cores == sum(t.cores for t in running),
             f"{name} counts {w.used_cores} cores used, its running tasks {sum(t.cores for t in running)}")
    _require(w.used_memory == sum(t.memory for t in running), f"{name} miscounts memory")
    _require(w.used_disk == sum(t.disk for t in running), f"{name} miscounts disk")
    _require(w.used_gpus == sum(t.gpus for t in running), f"{name} miscounts GPUs")
    for t in w.tasks:
        _require(t.worker is w and t.state in ON_WORKER, f"{name} lists task {t.id} ({t.state.name})")
        _require(w.fits(t), f"task {t.id} is on {name}, which could never run it (too few cores, memory or disk)")
    for f in w.files:
        _require(w in f.replicas or w in f.pending, f"{name} lists file {f.name}, which it neither holds "
                 "nor awaits")
    if w.retiring or w.barred:
        _require(w not in s._idle and w not in s._not_full, f"retiring or blocked {name} is offered work")
    _require(w.barred == (w.host in s._blocked_hosts), f"{name} on host {w.host!r} is barred={w.barred}, "
             "which its host's blocking does not say")
    if w in s._retiring:
        _require(w.retiring, f"{name} is being retired but takes new work")
        for f, dest in s._retiring[w].copying.items():
            _require(f in dest.files or not (dest.alive and dest in f.pending),
                     f"{f.name} is on its way from retiring {name} to {dest.id}, which does not list it")
    if w.blocked_until is not None:
        _require(w in s._blocked and w not in s._idle and w not in s._not_full,
                 f"blocklisted {name} is offered work")
    elif w.used_cores < w.cores and not w.retiring and not w.barred:
        _require(w in s._idle, f"{name} has a free core but is not in the idle set")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)

