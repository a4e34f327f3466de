"""The scheduler core: the whole task graph, and every decision about it.

Scheduler.handle(*events) -> [commands]. No sockets, threads, processes or
clock reads: the shell turns frames into events and commands into frames,
and tests (or a simulation of a thousand workers) drive it directly.

What it decides:
  readiness   a task is ready once each input exists somewhere
  placement   ready tasks go where they can start soonest (placement.py)
  groups      a sequence of dependent tasks is committed to one worker at
              once, so each member starts when the one before it ends,
              with no round trip (groups.py)
  transfers   each input of an assigned task gets a source: the worker's
              own cache, the manager, or a peer that holds a replica
  collection  a temp file is deleted everywhere once all its consumers
              have succeeded, unless kept or wanted by the user
  recovery    a failed task is retried by itself; a lost worker's tasks are
              planned again and lost temp files are made again by running
              their producers again (recursively, and nothing else)
  moves       members stuck behind a slow worker are taken back and placed
              again (rebalance.py)
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Callable

from . import placement
from .events import (LOCAL, MANAGER, Assign, Assignment, Command, Complete, Counters, Delete, Event,
                     Fail, Fetch, FileFailed, FileHome, FileLostOn, FileReleased, FilesCached, FileSpec, FileWanted,
                     Retract, Retracted, Running, TaskCancelled, TaskFailedOn, TaskSubmitted, TaskSucceeded, Tick,
                     WorkerJoined, WorkerLost)
from .groups import Grouper
from .model import TERMINAL, FileNode, Group, RunningMean, State, TaskNode, WorkerNode
from .rebalance import Rebalancer


class Scheduler:
    def __init__(self, *, group_tasks: bool = True, bandwidth: float = 125e6,
                 queue_time: float = 0.02, max_input_failures: int = 3,
                 rebalance: Rebalancer | None | bool = True) -> None:
        self.group_tasks = group_tasks
        self.bandwidth = bandwidth            # bytes/s assumed for a transfer between workers
        self.queue_time = queue_time          # seconds of work a worker may hold queued
        self.max_input_failures = max_input_failures
        self.tasks: dict[int, TaskNode] = {}
        self.files: dict[str, FileNode] = {}
        self.workers: dict[str, WorkerNode] = {}
        self.counters = Counters()
        self.mean_duration = RunningMean()
        self.grouper = Grouper()
        self._ready: dict[tuple[int, int, int], list[tuple[float, int]]] = {}
        self._idle: set[WorkerNode] = set()           # alive workers with a free core
        self._not_full: set[WorkerNode] = set()       # alive workers with a free core or queue place
        self._queue_per_core = 1                      # the queue places per core _not_full reflects
        self._allowances: dict[WorkerNode, int] = {}  # queue allowance per worker, per scheduling pass
        self._unknown_cached: dict[str, set[WorkerNode]] = {}
        self._revived: list[TaskNode] = []
        self._out: list[Command] = []
        self._assign: dict[WorkerNode, list[Assignment]] = defaultdict(list)
        self._delete: dict[WorkerNode, list[str]] = defaultdict(list)
        self._retract: dict[WorkerNode, list[int]] = defaultdict(list)
        self.moves: dict[int, WorkerNode] = {}        # task being taken back -> where it goes
        self.now = 0.0                                # time of the last Tick
        if rebalance is True:
            rebalance = Rebalancer() if group_tasks else None
        self.rebalancer: Callable[[Scheduler, float], None] | None = rebalance or None
        self._handlers = {
            TaskSubmitted: self._on_submitted, TaskCancelled: self._on_cancelled,
            WorkerJoined: self._on_worker_joined, WorkerLost: self._on_worker_lost,
            TaskSucceeded: self._on_succeeded, TaskFailedOn: self._on_failed,
            FilesCached: self._on_files_cached, FileLostOn: self._on_file_lost,
            FileHome: self._on_file_home,
            FileWanted: self._on_wanted, FileReleased: self._on_released,
            Retracted: self._on_retracted, Tick: self._on_tick,
        }

    # ------------------------------------------------------------ entry point

    def handle(self, *events: Event) -> list[Command]:
        for event in events:
            self._handlers[type(event)](event)
        if self._revived:
            self._replan(self._revived)
            self._revived = []
        self._schedule()
        return self._flush()

    # ------------------------------------------------------------ events

    def _on_submitted(self, e: TaskSubmitted) -> None:
        if e.task in self.tasks:
            raise ValueError(f"task {e.task} was submitted twice")
        inputs = tuple(self._file(s) for s in _unique(e.inputs))
        outputs = tuple(self._file(s) for s in _unique(e.outputs))
        t = TaskNode(e.task, inputs, outputs, e.cores, e.memory, e.disk, e.priority, e.retries)
        self.tasks[t.id] = t
        self.counters.tasks_submitted += 1
        if outputs:
            problem = self._invalid(t)
            if problem:
                t.state = State.FAILED
                self.counters.tasks_failed += 1
                self._out.append(Fail(t.id, "invalid", problem, 0))
                return
            for f in outputs:
                f.producer = t
        missing = 0
        for f in inputs:
            f.consumers.add(t)
            f.had_consumers = True
            if not f.made:
                missing += 1
                p = f.producer
                if p is not None and p.state in (State.FAILED, State.CANCELLED):
                    self._fail(t, "dependency", f"input {f.name} will not be made: task {p.id} did not "
                               "succeed", p.id)
                    return
        t.missing = missing
        if missing:
            for f in inputs:
                if not f.made:
                    self._need(f)
            if self.group_tasks:
                self._attach(t)
        if self.group_tasks:
            for f in outputs:
                if f.consumers:
                    for c in sorted(f.consumers, key=_by_id):
                        self._attach(c)
        if missing == 0 and t.state == State.WAITING:
            self._make_ready(t)

    def _on_cancelled(self, e: TaskCancelled) -> None:
        t = self.tasks.get(e.task)
        if t is None or t.state in TERMINAL:
            return
        self._fail(t, "cancelled", f"task {t.id} was cancelled", None, state=State.CANCELLED)

    def _on_worker_joined(self, e: WorkerJoined) -> None:
        if e.worker in self.workers and self.workers[e.worker].alive:
            raise ValueError(f"worker {e.worker} joined twice")
        w = WorkerNode(e.worker, max(1, e.cores), e.memory, e.disk)
        self.workers[w.id] = w
        self._idle.add(w)
        self._note_fullness(w)
        for name, size in e.cached:
            f = self.files.get(name)
            if f is not None:
                f.size = f.size or size
                self._add_replica(f, w)
            else:
                self._unknown_cached.setdefault(name, set()).add(w)

    def _on_worker_lost(self, e: WorkerLost) -> None:
        w = self.workers.get(e.worker)
        if w is None or not w.alive:
            return
        w.alive = False
        self._idle.discard(w)
        self._not_full.discard(w)
        for tid in [tid for tid, target in self.moves.items() if target is w]:
            del self.moves[tid]     # returned later, they are planned like any other task
        replan = sorted(w.tasks, key=_by_id)
        for t in replan:
            self.moves.pop(t.id, None)
        for t in replan:
            self._unassign(t)
            t.state = State.WAITING
        for f in sorted(w.files, key=lambda f: f.name):
            self._drop_replica(f, w)
        for names in self._unknown_cached.values():
            names.discard(w)
        self._assign.pop(w, None)
        self._delete.pop(w, None)
        self._retract.pop(w, None)
        for t in replan:
            self._recount(t)
        self._revived.extend(replan)

    def _on_succeeded(self, e: TaskSucceeded) -> None:
        t = self.tasks.get(e.task)
        w = self.workers.get(e.worker)
        if t is None or w is None or t.state != State.ASSIGNED or t.worker is not w:
            self._discard_outputs(w, e.outputs)
            return
        self._unassign(t)
        t.state = State.DONE
        t.started, t.finished = e.started, e.finished
        duration = max(0.0, e.finished - e.started)
        w.durations.add(duration)
        self.mean_duration.add(duration)
        for name, size in e.outputs:
            f = self.files[name]
            f.size = size
            self._add_replica(f, w)
            if f.home and not f.at_home:
                self._out.append(Fetch(name, w.id))
                if not t.completed:
                    t.home_pending += 1
        for f in t.inputs:
            f.consumers.discard(t)
            self._maybe_collect(f)
        if t.home_pending == 0:
            self._complete(t)

    def _on_failed(self, e: TaskFailedOn) -> None:
        t = self.tasks.get(e.task)
        w = self.workers.get(e.worker)
        if t is None or w is None or t.state != State.ASSIGNED or t.worker is not w:
            return
        self._unassign(t)
        self.counters.attempts_failed += 1
        if e.reason == "input" and e.file in self.files:
            f = self.files[e.file]
            f.pending.discard(w)
            w.files.discard(f)
            peer = self.workers.get(e.source) if e.source else None
            if peer is not None and peer.alive and peer in f.replicas:
                self._drop_replica(f, peer)  # the peer could not serve it: do not ask it again
            t.input_failures += 1
            if t.input_failures <= self.max_input_failures:
                self._requeue(t)
                return
            self._fail(t, "input", e.message or f"input {e.file} could not be fetched")
            return
        if t.retries_left > 0:
            t.retries_left -= 1
            self._requeue(t)
            return
        self._fail(t, e.reason, e.message)

    def _on_files_cached(self, e: FilesCached) -> None:
        w = self.workers.get(e.worker)
        if w is None or not w.alive:
            return
        for name, size in e.files:
            f = self.files.get(name)
            if f is None:
                self._unknown_cached.setdefault(name, set()).add(w)
                continue
            if w not in f.pending and w not in f.replicas and not f.made and not f.source:
                self._delete[w].append(name)  # collected while it travelled
                continue
            f.size = f.size or size
            self._add_replica(f, w)

    def _on_file_lost(self, e: FileLostOn) -> None:
        f = self.files.get(e.name)
        w = self.workers.get(e.worker)
        if f is not None and w is not None and (w in f.replicas or w in f.pending):
            self._drop_replica(f, w)

    def _on_file_home(self, e: FileHome) -> None:
        f = self.files.get(e.name)
        if f is None or f.at_home:
            return
        f.at_home = True
        f.source = True  # the manager can serve it from its path from now on
        p = f.producer
        if p is not None and not p.completed:
            p.home_pending -= 1
            if p.home_pending <= 0 and p.state == State.DONE:
                self._complete(p)
        self._maybe_collect(f)

    def _on_wanted(self, e: FileWanted) -> None:
        f = self.files.get(e.name)
        if f is None:
            raise ValueError(f"unknown file {e.name}")
        f.wanted = True
        if f.source:
            return
        if f.made:
            self._out.append(Fetch(f.name, _any(f.replicas).id))
        elif f.producer is not None and f.producer.state in (State.FAILED, State.CANCELLED):
            self._out.append(FileFailed(f.name, f"task {f.producer.id} that makes it did not succeed"))
        else:
            self._need(f)

    def _on_released(self, e: FileReleased) -> None:
        f = self.files.get(e.name)
        if f is None:
            return
        f.keep = False
        f.wanted = False
        f.had_consumers = True  # from now on it goes once nothing needs it
        self._maybe_collect(f)

    def _on_retracted(self, e: Retracted) -> None:
        """The worker's answer to a move: what it gave back goes to the move's target."""
        w = self.workers.get(e.worker)
        for tid in e.started:
            self.moves.pop(tid, None)
        back: dict[WorkerNode, list[TaskNode]] = {}
        for tid in e.returned:
            target = self.moves.pop(tid, None)
            t = self.tasks.get(tid)
            if t is None or t.state != State.ASSIGNED or t.worker is not w:
                continue
            self._unassign(t)
            if target is None or not target.alive:
                self._recount(t)
                self._revived.append(t)   # its target is gone: planned again like any other
            else:
                back.setdefault(target, []).append(t)
        for target, tasks in back.items():
            self._regroup_moved(tasks, target)

    def move(self, suffix: list[TaskNode], source: WorkerNode, target: WorkerNode) -> None:
        """Take back members not yet started from source, to place them on target."""
        for m in suffix:
            self.moves[m.id] = target
        self._retract[source].extend(m.id for m in suffix)

    def _regroup_moved(self, tasks: list[TaskNode], target: WorkerNode) -> None:
        old = tasks[0].group
        order = {m: i for i, m in enumerate(old.members)} if old is not None else {}
        tasks.sort(key=lambda m: (order.get(m, 0), m.id))
        if old is not None:
            leaving = set(tasks)
            old.members = [m for m in old.members if m not in leaving]
        g = Group(tasks[0].id, tasks[0])
        g.members = tasks
        g.target = target
        for m in tasks:
            m.group = g
            self.counters.moves += 1
            self._recount(m)
            m.state = State.WAITING
            if m.missing == 0:
                self._make_ready(m)

    def _on_tick(self, e: Tick) -> None:
        self.now = e.now
        if self.rebalancer is not None:
            self.rebalancer(self, e.now)

    # ------------------------------------------------------------ files

    def _file(self, spec: FileSpec) -> FileNode:
        f = self.files.get(spec.name)
        if f is None:
            f = FileNode(spec.name, spec.size, spec.source, spec.home, spec.keep)
            self.files[spec.name] = f
            for w in self._unknown_cached.pop(spec.name, ()):
                if w.alive and (f.source or spec.name.startswith(("file-", "buf-"))):
                    self._add_replica(f, w)
        else:
            f.keep = f.keep or spec.keep
            f.home = f.home or spec.home
            if spec.size is not None and not f.size:
                f.size = spec.size
        return f

    def _add_replica(self, f: FileNode, w: WorkerNode) -> None:
        f.pending.discard(w)
        if w in f.replicas:
            return
        f.replicas.add(w)
        w.files.add(f)
        if f.made:
            return
        f.made = True
        for c in f.consumers:
            c.missing -= 1
            if c.missing == 0:
                if c.state == State.WAITING:
                    self._make_ready(c)
                elif c.state == State.ASSIGNED:
                    self._activate(c)
        if f.wanted:
            self._out.append(Fetch(f.name, w.id))

    def _drop_replica(self, f: FileNode, w: WorkerNode) -> None:
        """w no longer holds f (lost, or could not serve it)."""
        f.replicas.discard(w)
        f.pending.discard(w)
        w.files.discard(f)
        if f.replicas or f.source or not f.made:
            return
        f.made = False
        for c in f.consumers:
            c.missing += 1
            if c.state == State.READY:
                c.state = State.WAITING
        if f.consumers or f.wanted or (f.home and not f.at_home):
            self._need(f)

    def _need(self, f: FileNode) -> None:
        """f must exist again: run its producer again if it had finished (recursively)."""
        stack = [f]
        while stack:
            f = stack.pop()
            p = f.producer
            if f.made or p is None or p.state != State.DONE:
                continue
            p.state = State.WAITING
            self.counters.reruns += 1
            p.missing = 0
            for g in p.inputs:
                g.consumers.add(p)
                if not g.made:
                    p.missing += 1
                    stack.append(g)
            self._revived.append(p)

    def _maybe_collect(self, f: FileNode) -> None:
        """Delete f from worker caches once nothing needs it there.

        User inputs stay cached (they are content-named and often reused);
        an output written back home is served from home from then on.
        """
        if f.keep or f.wanted or f.consumers:
            return
        if f.source and not f.at_home:
            return
        if not f.source and (not f.had_consumers or f.home):
            return
        for w in f.replicas | f.pending:
            self._delete[w].append(f.name)
            w.files.discard(f)
        f.replicas.clear()
        f.pending.clear()
        f.made = f.source

    def _discard_outputs(self, w: WorkerNode | None, outputs) -> None:
        """Outputs of a run the core no longer counts (a task already moved or done)."""
        if w is None or not w.alive:
            return
        for name, _ in outputs:
            f = self.files.get(name)
            if f is None or w not in f.replicas:
                self._delete[w].append(name)

    # ------------------------------------------------------------ task states

    def _make_ready(self, t: TaskNode) -> None:
        t.state = State.READY
        heap = self._ready.setdefault((t.cores, t.memory, t.disk), [])
        heapq.heappush(heap, (-t.priority, t.id))

    def _recount(self, t: TaskNode) -> None:
        t.missing = sum(1 for f in t.inputs if not f.made)
        for f in t.inputs:
            if not f.made:
                self._need(f)

    def _requeue(self, t: TaskNode) -> None:
        """Back into the pool (a retry or a lost input); a committed group takes it back."""
        self._recount(t)
        t.state = State.WAITING
        if t.missing == 0:
            self._make_ready(t)

    def _activate(self, t: TaskNode) -> None:
        if t.active or t.worker is None:
            return
        t.active = True
        t.active_since = self.now
        self._out.append(Running(t.id))
        w = t.worker
        w.used_cores += t.cores
        w.used_memory += t.memory
        w.used_disk += t.disk
        if w.used_cores >= w.cores:
            self._idle.discard(w)
        self._note_fullness(w)

    def _unassign(self, t: TaskNode) -> None:
        w = t.worker
        if w is None:
            return
        if t.active:
            t.active = False
            w.used_cores -= t.cores
            w.used_memory -= t.memory
            w.used_disk -= t.disk
            if w.alive and w.used_cores < w.cores:
                self._idle.add(w)
            self._note_fullness(w)
        w.tasks.discard(t)
        t.worker = None

    def _complete(self, t: TaskNode) -> None:
        if t.completed:
            return
        t.completed = True
        self.counters.tasks_done += 1
        made_by = [f.producer.finished for f in t.inputs if not f.source and f.producer is not None]
        hop = max(0.0, t.started - max(made_by)) if made_by else None
        if hop is not None:
            self.counters.hops.append(hop)
        self._out.append(Complete(t.id, hop, t.attempts))

    def _fail(self, t: TaskNode, reason: str, message: str, cause: int | None = None,
              state: State = State.FAILED) -> None:
        """t fails for good, and so does everything that needs what it makes."""
        stack = [(t, reason, message, cause, state)]
        while stack:
            x, reason, message, cause, state = stack.pop()
            if x.state in TERMINAL:
                continue
            if x.worker is not None:  # waiting on a worker: it must forget the task
                self._retract[x.worker].append(x.id)
                self._unassign(x)
            x.state = state
            self.counters.tasks_failed += 1
            self._out.append(Fail(x.id, reason, message, x.attempts, cause))
            for f in x.inputs:
                f.consumers.discard(x)
                self._maybe_collect(f)
            for f in x.outputs:
                if f.made:
                    continue
                if f.wanted:
                    self._out.append(FileFailed(f.name, f"task {x.id} that makes it did not succeed"))
                for c in sorted(f.consumers, key=_by_id):
                    stack.append((c, "dependency", f"input {f.name} will not be made: task {x.id} "
                                  f"did not succeed", cause if cause is not None else x.id, State.FAILED))

    def _invalid(self, t: TaskNode) -> str | None:
        for f in t.outputs:
            if f.source:
                return f"output {f.name} is an input from the submitting side, not a file a task makes"
            if f.producer is not None:
                return f"output {f.name} is already made by task {f.producer.id}"
        return None

    # ------------------------------------------------------------ groups and placement

    def _attach(self, t: TaskNode) -> None:
        if self.moves and any(f.producer is not None and f.producer.id in self.moves for f in t.inputs):
            # its producer is being taken back from its group's worker: joining that group now
            # would send t where the input will not be made; t is placed when the input exists
            return
        g = self.grouper.try_attach(t)
        if g is not None and g.worker is not None:
            self._commit_members(g, g.worker)

    def _replan(self, tasks: list[TaskNode]) -> None:
        """Tasks coming back into the pool after a loss or a move: group them afresh."""
        live = [t for t in tasks if t.state not in TERMINAL and t.worker is None]
        if self.group_tasks:
            self.grouper.regroup(live)
        for t in live:
            if t.state == State.READY:
                continue
            t.state = State.WAITING
            if t.missing == 0:
                self._make_ready(t)

    def _schedule(self) -> None:
        if not self._ready:
            return
        blocked: set[tuple[int, int, int]] = set()
        self._allowances = {}
        while True:
            shape = self._best_shape(blocked)
            if shape is None:
                return
            heap = self._ready[shape]
            _, tid = heapq.heappop(heap)
            if not heap:
                del self._ready[shape]
            t = self.tasks[tid]
            if t.state != State.READY:
                continue
            w = self._place(t)
            if w is None:
                heapq.heappush(self._ready.setdefault(shape, []), (-t.priority, t.id))
                blocked.add(shape)
                continue
            self._commit(t, w)

    def _best_shape(self, blocked: set) -> tuple[int, int, int] | None:
        if len(self._ready) == 1:
            shape = next(iter(self._ready))
            return None if shape in blocked else shape
        best, best_top = None, None
        for shape, heap in self._ready.items():
            if shape in blocked:
                continue
            if best_top is None or heap[0] < best_top:
                best, best_top = shape, heap[0]
        return best

    def _room(self, w: WorkerNode, t: TaskNode, queue: bool = True) -> bool:
        """Can w take t now: on a free core, or (queue) in its short queue?"""
        if not queue:
            return placement.has_room(w, t, 0)
        allowance = self._allowances.get(w)
        if allowance is None:
            allowance = self._allowances[w] = placement.queue_allowance(w, self.mean_duration.value,
                                                                        self.queue_time)
        return placement.has_room(w, t, allowance)

    def _place(self, t: TaskNode) -> WorkerNode | None:
        g = t.group
        if g is not None:
            if g.worker is not None:
                if g.worker.alive:
                    return g.worker
                g.worker = None
            if g.target is not None:
                target, g.target = g.target, None
                if target.alive:
                    return target
        per_core = placement.queue_per_core(self.mean_duration.value, self.queue_time)
        if per_core != self._queue_per_core:
            self._queue_per_core = per_core
            for w in self.workers.values():
                self._note_fullness(w)
        if t.cores >= 1 and not self._not_full:
            return None  # every worker is full, queue included (the common case on a busy cluster)
        members = [m for m in g.members if m.state not in TERMINAL] if g is not None else None
        w = self._choose(t, members)
        if w is None and members is not None and not any(
                v.alive and all(v.fits(m) for m in members) for v in self.workers.values()):
            # no worker can run every member: the head goes where it fits, with the members
            # that fit there too; the others form a group of their own
            w = self._choose(t, None)
            if w is not None:
                self._split_off_misfits(g, w)
        return w

    def _choose(self, t: TaskNode, members: list[TaskNode] | None) -> WorkerNode | None:
        # a group of several members keeps its worker busy for all of them: its head waits for a
        # free core rather than queue behind other work, so groups spread as workers free up
        queue = members is None or len(members) < 2
        nearby = {w for f in t.inputs if not f.source for w in (f.replicas | f.pending)}
        candidates = [w for w in (nearby | self._idle if nearby else self._idle)
                      if self._room(w, t, queue) and (members is None or all(w.fits(m) for m in members))]
        if not candidates:
            if not queue:
                return None
            # only workers not full can take a task of one core or more: no scan of every worker
            pool = self._not_full if t.cores >= 1 else self.workers.values()
            candidates = [w for w in pool
                          if w.alive and self._room(w, t) and (members is None or all(w.fits(m) for m in members))]
            if not candidates:
                return None
        if len(candidates) == 1:
            return candidates[0]
        return placement.choose(t, candidates, self.mean_duration.value, self.bandwidth)

    def _note_fullness(self, w: WorkerNode) -> None:
        """Keep _not_full up to date after w's use of cores changed."""
        if w.alive and w.used_cores < w.cores * (1 + self._queue_per_core):
            self._not_full.add(w)
        else:
            self._not_full.discard(w)

    def _split_off_misfits(self, g: Group, w: WorkerNode) -> None:
        cut = next(i for i, m in enumerate(g.members) if m.state not in TERMINAL and not w.fits(m))
        rest = g.members[cut:]
        g.members = g.members[:cut]
        for m in rest:
            m.group = None
        if len(rest) > 1:
            head = rest[0]
            head.group = Group(head.id, head)
            head.group.members = rest
            for m in rest:
                m.group = head.group

    def _commit(self, t: TaskNode, w: WorkerNode) -> None:
        g = t.group
        if g is None:
            if not self.group_tasks or not t.outputs or all(f.home for f in t.outputs):
                self._assign_to(t, w)
                return
            g = self.grouper.group_of(t)  # a consumer submitted later may still continue it here
        g.worker = w
        self._commit_members(g, w)

    def _commit_members(self, g, w: WorkerNode) -> None:
        """Send every unfinished, unassigned member of g to w, in order."""
        for m in g.members:
            if m.state in (State.WAITING, State.READY) and m.worker is None:
                self._assign_to(m, w)

    def _assign_to(self, t: TaskNode, w: WorkerNode) -> None:
        t.state = State.ASSIGNED
        t.worker = w
        t.attempts += 1
        w.tasks.add(t)
        sources = []
        for f in t.inputs:
            if w in f.replicas or w in f.pending:
                src = LOCAL
            elif f.source:
                src = MANAGER
                f.pending.add(w)
                w.files.add(f)
            elif f.made:
                src = self._peer_for(f).id
                f.pending.add(w)
                w.files.add(f)
            else:
                src = LOCAL  # made on w by an earlier member of its group
            sources.append((f.name, src))
        self._assign[w].append(Assignment(t.id, tuple(sources)))
        if t.missing == 0:
            self._activate(t)

    def _peer_for(self, f: FileNode) -> WorkerNode:
        """The replica to copy from: the holder with the fewest tasks on it."""
        return min(f.replicas, key=lambda w: (len(w.tasks), w.id))

    # ------------------------------------------------------------ output

    def _flush(self) -> list[Command]:
        out = self._out
        for w, names in self._delete.items():
            if w.alive and names:
                out.append(Delete(w.id, tuple(names)))
        for w, tids in self._retract.items():
            if w.alive and tids:
                out.append(Retract(w.id, tuple(tids)))
        for w, tasks in self._assign.items():
            if tasks:
                out.append(Assign(w.id, tuple(tasks)))
        self._out = []
        self._assign.clear()
        self._delete.clear()
        self._retract.clear()
        return out

    # ------------------------------------------------------------ queries

    def pending_count(self) -> int:
        return sum(1 for t in self.tasks.values() if t.state not in TERMINAL)


def _by_id(t: TaskNode) -> int:
    return t.id


def _any(items):
    return min(items, key=lambda w: w.id)


def _unique(specs: tuple[FileSpec, ...]) -> tuple[FileSpec, ...] | list[FileSpec]:
    if len(specs) < 2:
        return specs
    seen: dict[str, FileSpec] = {}
    for s in specs:
        seen.setdefault(s.name, s)
    return list(seen.values())
