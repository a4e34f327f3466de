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
  lifecycles  every task and file state change goes through _to / move_file,
              checked against the tables in lifecycle.py
  failures    a task's own failure is retried as its retries say, by itself;
              a system failure (worker lost, interpreter died, full disk, a
              failed transfer) is retried on another worker up to
              system_retries times; a worker that keeps failing tasks for
              system reasons is blocklisted for a while
  recovery    a lost worker's tasks are planned again and lost temp files
              are made again by running their producers again
              (recursively, and nothing else)
  moves       members stuck behind a slow worker are taken back and placed
              again (rebalance.py)
  memo        a task a memo record answers completes at submission; its
              outputs are served by the submitting side, and a memoized
              task's outputs are copied there once made (record)
  retirement  a worker asked to leave takes no new work, gives back what it
              has not started, and has the files only it holds that may
              still be needed copied to workers that stay (or, when none
              stays and the shell can keep them, brought to the submitting
              side: Park); then the shell may send it away, and nothing is
              made again
"""
from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from typing import Callable

from . import graph, placement
from .events import (LOCAL, MAKE, MANAGER, SYSTEM_REASONS, TASK_REASONS, Assign, Assignment, Blocked,
                     CategorySet, Command, Complete, Counters, Delete, Event, Fail, Fetch, FileFailed, FileHome,
                     FileHomeFailed, FileLostOn, FileReleased, Forget, FilesCached, FileSpec, FileWanted, HostBlocked,
                     HostUnblocked, NoWorkers, Park, Replicate, Retired, Retract, Retracted, Running, Stop,
                     TagCancelled, TaskCancelled, TaskFailedOn, TaskSubmitted, TaskSucceeded, Tick, WorkerJoined,
                     WorkerLost, WorkerRetiring)
from .groups import Grouper
from .lifecycle import (FINISHED, ON_WORKER, TERMINAL, UNSTARTED, FileState, TaskState, move_file, move_task)
from .model import FileNode, Group, Retirement, RunningMean, TaskNode, WorkerNode
from .rebalance import Rebalancer
from .shares import Category, allocation

T = TaskState
F = FileState
MAX_BLOCK_SECONDS = 600.0
CONTENT_PREFIXES = ("file-", "buf-")   # files named by their content: any run may use them again


class Scheduler:
    """system_retries: attempts a task may lose to system failures beyond the first
    (Dask's allowed-failures and Ray's max_retries are 3 too). blocklist_after:
    system failures in a row after which a worker takes no new work for
    blocklist_seconds (doubled each time it happens again, up to ten minutes)."""

    def __init__(self, *, group_tasks: bool = True, bandwidth: float = 125e6,
                 queue_time: float = 0.02, system_retries: int = 3, blocklist_after: int = 3,
                 blocklist_seconds: float = 30.0, rebalance: Rebalancer | None | bool = True,
                 park: bool = False, placement: str | None = None, order: str = "depth",
                 prune: int | None = 0) -> None:
        placement = graph.check_options(placement, order, prune, group_tasks)
        group_tasks = placement != "none"
        self.group_tasks = group_tasks
        self.placement = placement            # graph: groups and affinity; groups: groups alone; none
        self.order = order                    # which ready task goes first (graph.rank)
        self.prune = prune                    # levels below its readers a temp waits for (None: kept)
        self._heights = order == "critical"   # only this order ranks by heights: others need no walk up
        self._stale_ranks = False             # a ready task's height changed: the ready queues need sorting
        self.bandwidth = bandwidth            # bytes/s assumed for a transfer between workers
        self.queue_time = queue_time          # seconds of work a worker may hold queued
        self.system_retries = system_retries
        self.blocklist_after = blocklist_after
        self.blocklist_seconds = blocklist_seconds
        self.park = park                      # the shell can keep files a last worker leaves (Park)
        self.tasks: dict[int, TaskNode] = {}
        self.by_state: dict[TaskState, int] = dict.fromkeys(TaskState, 0)   # tasks in each state, kept by _to
        self.forgotten: dict[TaskState, int] = dict.fromkeys(TaskState, 0)  # ... and those let go of
        self._settled: list[TaskNode] = []   # reported tasks that nothing may need again: looked at after a batch
        self.files: dict[str, FileNode] = {}
        self.workers: dict[str, WorkerNode] = {}
        self.counters = Counters()
        self.mean_duration = RunningMean()
        self.output_size = RunningMean()      # bytes of an output, for affinity before a file is made
        self.grouper = Grouper()
        self._ready: dict[tuple[int, int, int], list[tuple[float, int]]] = {}
        self._idle: set[WorkerNode] = set()           # available workers with a free core
        self._not_full: set[WorkerNode] = set()       # available workers with a free core or queue place
        self._blocked: set[WorkerNode] = set()        # alive workers taking no new work for a while
        self._queue_per_core = 1                      # the queue places per core _not_full reflects
        self._allowances: dict[WorkerNode, int] = {}  # queue allowance per worker, per scheduling pass
        self._unknown_cached: dict[str, set[WorkerNode]] = {}
        self._revived: list[TaskNode] = []
        self._out: list[Command] = []
        self._assign: dict[WorkerNode, list[Assignment]] = defaultdict(list)
        self._delete: dict[WorkerNode, list[str]] = defaultdict(list)
        self._retract: dict[WorkerNode, list[int]] = defaultdict(list)
        self._stop: dict[WorkerNode, list[int]] = defaultdict(list)
        self.categories: dict[str, Category] = {}
        self._blocked_hosts: set[str] = set()
        self._ranked = False                          # some task has a priority other than 0
        self._making_way: int | None = None           # the task taken back to make way for a higher priority
        self._activations = itertools.count(1)
        self.moves: dict[int, WorkerNode | None] = {}  # task being taken back -> where it goes (None: anywhere)
        self._bringing: dict[str, WorkerNode] = {}     # file asked for at the submitting side -> from where
        self._retiring: dict[WorkerNode, Retirement] = {}   # workers to send away once their files are safe
        self.now = 0.0                                # time of the last Tick
        if rebalance is True:
            rebalance = Rebalancer() if group_tasks else None
        self.rebalancer: Callable[[Scheduler, float], None] | None = rebalance or None
        self._handlers = {
            TaskSubmitted: self._on_submitted, TaskCancelled: self._on_cancelled,
            WorkerJoined: self._on_worker_joined, WorkerRetiring: self._on_retiring, WorkerLost: self._on_worker_lost,
            TaskSucceeded: self._on_succeeded, TaskFailedOn: self._on_failed,
            FilesCached: self._on_files_cached, FileLostOn: self._on_file_lost,
            FileHome: self._on_file_home, FileHomeFailed: self._on_home_failed,
            FileWanted: self._on_wanted, FileReleased: self._on_released,
            Retracted: self._on_retracted, Tick: self._on_tick, NoWorkers: self._on_no_workers,
            CategorySet: self._on_category, TagCancelled: self._on_tag_cancelled,
            HostBlocked: self._on_host_blocked, HostUnblocked: self._on_host_unblocked,
        }

    # ------------------------------------------------------------ entry point

    def handle(self, *events: Event) -> list[Command]:
        for event in events:
            self._handlers[type(event)](event)
        if self._revived:
            self._replan(self._revived)
            self._revived = []
        self._schedule()
        if self._ranked and self._ready:
            self._make_way()
        if self._retiring:
            self._retire()
        if self._settled:
            self._forget_settled()
        return self._flush()

    def _forget_settled(self) -> None:
        """Let go of settled tasks that nothing can need again, so that a run of a million of them
        holds only what is pending and the lineage that may still remake a lost file.

        A task may go once its Future is settled and each of its outputs is held by nothing: the
        user can no longer name it (released: its handle or Future is gone), every task reading it
        has gone, and no copy of it is left. Letting a task go lets go of its hold on each of its
        inputs, so a finished chain goes from its end back to its start."""
        tasks, files, by_state, forgotten = self.tasks, self.files, self.by_state, self.forgotten
        gone: list[int] = []
        groups: list[int] = []
        stack, self._settled = self._settled, []
        while stack:
            t = stack.pop()
            if not t.reported or t.state not in TERMINAL or tasks.get(t.id) is not t:
                continue
            if not all(self._dropped(f) for f in t.outputs):
                continue
            del tasks[t.id]
            by_state[t.state] -= 1
            forgotten[t.state] += 1
            gone.append(t.id)
            g = t.group
            if g is not None and g.members[0] is t:
                groups.append(g.id)
            for f in t.inputs:
                f.holds -= 1
                if f.holds == 0 and f.producer is not None:
                    stack.append(f.producer)
            # the links between a task, its outputs and its group are cycles: cut here, the records go
            # at once instead of waiting for the cycle collector (a long run would grow meanwhile)
            for f in t.outputs:
                if files.get(f.name) is f:
                    del files[f.name]
                f.producer = None
            t.group = t.partners = None
            t.inputs = t.outputs = ()
        if gone:
            self._out.append(Forget(tuple(gone), tuple(groups)))

    def _dropped(self, f: FileNode) -> bool:
        """Nothing can ask for f again and no copy of it is left anywhere."""
        return (f.holds == 0 and not f.keep and not f.wanted and not f.consumers and not f.replicas
                and not f.pending and f.state is not F.MADE and f.name not in self._bringing)

    def _may_go(self, f: FileNode) -> None:
        """f may have just become droppable: look at its producer after this batch."""
        p = f.producer
        if f.holds == 0 and p is not None and p.reported:
            self._settled.append(p)

    def validate(self) -> None:
        """Check every invariant of the graph; raises AssertionError naming the first broken one."""
        from .invariants import check_scheduler
        check_scheduler(self)

    # ------------------------------------------------------------ task lifecycle

    def _to(self, t: TaskNode, new: TaskState, worker: WorkerNode | None = None) -> None:
        """The one place a task's state changes, with what the change means for its worker."""
        old = move_task(t, new)
        by_state = self.by_state
        by_state[old] -= 1
        by_state[new] += 1
        if old is T.RUNNING:
            self._release(t)
        if old in ON_WORKER and new not in ON_WORKER:
            t.worker.tasks.discard(t)
            t.worker = None
            _unsize(t)
            if self.moves:
                self.moves.pop(t.id, None)   # ended or taken back: no longer being moved
        elif new in ON_WORKER and old not in ON_WORKER:
            t.worker = worker
            worker.tasks.add(t)
        if new is T.RUNNING:
            self._hold(t)
        elif new is T.READY:
            heapq.heappush(self._ready.setdefault((t.cores, t.memory, t.disk, t.gpus), []),
                           (-t.priority, graph.rank(t, self.order), t.id))

    def _hold(self, t: TaskNode) -> None:
        """t holds its cores on its worker from now on, and its Future can no longer be cancelled."""
        t.active_since = self.now
        t.active_seq = next(self._activations)
        self._out.append(Running(t.id))
        w = t.worker
        w.used_cores += t.cores
        w.used_memory += t.memory
        w.used_disk += t.disk
        w.used_gpus += t.gpus
        if w.used_cores >= w.cores:
            self._idle.discard(w)
        self._note_fullness(w)

    def _release(self, t: TaskNode) -> None:
        w = t.worker
        w.used_cores -= t.cores
        w.used_memory -= t.memory
        w.used_disk -= t.disk
        w.used_gpus -= t.gpus
        if self._available(w) and w.used_cores < w.cores:
            self._idle.add(w)
        self._note_fullness(w)

    def _report_done(self, t: TaskNode, ran: bool = True) -> None:
        """The task's Future succeeds, once (a task run again to remake a lost temp is not reported)."""
        if t.reported:
            return
        t.reported = True
        self.counters.tasks_done += 1
        made_by = [f.producer.finished for f in t.inputs if not f.source and f.producer is not None] if ran else ()
        hop = max(0.0, t.started - max(made_by)) if made_by else None
        if hop is not None:
            self.counters.add_hop(hop)
        self._out.append(Complete(t.id, hop, t.attempts))
        self._settled.append(t)

    def _report_failed(self, t: TaskNode, fail: Fail) -> None:
        if t.reported:
            return
        t.reported = True
        self.counters.tasks_failed += 1
        self._out.append(fail)
        for f in t.outputs:   # what a failed run left on a worker never goes home: it may go now
            self._maybe_collect(f)
        if self.prune:   # a task below a kept temp's readers ended for good: the temp may go now
            for f in graph.above(t, self.prune):
                self._maybe_collect(f)
        self._settled.append(t)

    # ------------------------------------------------------------ events

    def _on_submitted(self, e: TaskSubmitted) -> None:
        if e.task in self.tasks:
            raise ValueError(f"task {e.task} was submitted twice")
        inputs = tuple(self._file(s) for s in _unique(e.inputs))
        outputs = tuple(self._file(s) for s in _unique(e.outputs))
        t = TaskNode(e.task, inputs, outputs, e.cores, e.memory, e.disk, e.priority, e.retries, e.gpus)
        if e.category is not None:
            t.category = self.categories.get(e.category) or self._category(CategorySet(e.category, mode="fixed"))
        t.tag = e.tag
        if e.priority:
            self._ranked = True
        self.tasks[t.id] = t
        self.by_state[t.state] += 1
        self.counters.tasks_submitted += 1
        if outputs:
            problem = self._invalid(t)
            if problem:
                t.inputs = t.outputs = ()   # it reads and makes nothing
                self._to(t, T.FAILED)
                self._report_failed(t, Fail(t.id, "invalid", problem, 0))
                return
            for f in outputs:
                f.producer = t
        missing = 0
        for f in inputs:
            f.holds += 1   # until the core lets go of t
            if self.prune:
                if f.readers is None:
                    f.readers = []
                f.readers.append(t)
        if graph.link(t, self._heights):
            self._stale_ranks = True
        if e.memo:
            self._memoized(t)
            return
        for f in inputs:
            f.consumers.add(t)
            graph.consumers_changed(f)
            f.had_consumers = True
            f.read = True
            if not f.made:
                missing += 1
                p = f.producer
                if f.state is F.DOOMED or (p is not None and p.state in (T.FAILED, T.CANCELLED)):
                    pid = p.id if p is not None else None
                    self._fail(t, "dependency", f"input {f.name} will not be made: task {pid} did not "
                               "succeed", pid)
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
        if missing == 0 and t.state is T.WAITING:
            self._to(t, T.READY)

    def _memoized(self, t: TaskNode) -> None:
        """t's result is in a memo record: it completes now without running, and the submitting side
        serves its outputs from the record. It needs none of its inputs: a temp read only by such
        tasks may go, and one not made yet is made only if a task that runs reads it."""
        for f in t.inputs:
            f.read = True
            f.had_consumers = True
            self._maybe_collect(f)
        for f in t.outputs:
            move_file(f, F.HOME)
            self._now_available(f)
        self._to(t, T.DONE)
        self._report_done(t, ran=False)

    def _on_cancelled(self, e: TaskCancelled) -> None:
        t = self.tasks.get(e.task)
        if t is None or t.state in FINISHED or t.reported:
            return   # settled already: a task running again remakes a lost file for others
        self._fail(t, "cancelled", f"task {t.id} was cancelled", None, state=T.CANCELLED)

    def _on_worker_joined(self, e: WorkerJoined) -> None:
        if e.worker in self.workers and self.workers[e.worker].alive:
            raise ValueError(f"worker {e.worker} joined twice")
        w = WorkerNode(e.worker, max(1, e.cores), e.memory, e.disk, e.gpus, e.host)
        w.barred = e.host in self._blocked_hosts
        self.workers[w.id] = w
        if not w.barred:
            self._idle.add(w)
        self._note_fullness(w)
        for name, size in e.cached:
            f = self.files.get(name)
            if f is not None:
                if f.state in (F.SOURCE, F.HOME):
                    _resize(f, f.size or size)
                    self._add_replica(f, w)
            else:
                self._unknown_cached.setdefault(name, set()).add(w)

    def _on_retiring(self, e: WorkerRetiring) -> None:
        """w takes no new work; its tasks not started yet are taken back and placed elsewhere."""
        w = self.workers.get(e.worker)
        if w is None or not w.alive or w.retiring:
            return
        w.retiring = True
        self._idle.discard(w)
        self._not_full.discard(w)
        for tid, target in self.moves.items():
            if target is w:
                self.moves[tid] = None   # moving here: anywhere instead
        self.move(sorted((t for t in w.tasks if t.id not in self.moves), key=_by_id), w, None)
        self._retiring[w] = Retirement(e.reason)

    def _retire(self) -> None:
        """Copy off each retiring worker the files only it holds that may still be needed; once it runs
        nothing and no copy from it is under way, it may go (Retired)."""
        stays = sorted((v for v in self.workers.values() if v.staying), key=lambda v: v.id)
        for w, r in list(self._retiring.items()):
            if not w.alive:
                del self._retiring[w]
                continue
            for f, dest in list(r.copying.items()):
                if dest in f.replicas:
                    r.copied += 1
                elif dest in f.pending and dest.alive:
                    continue   # still on its way
                del r.copying[f]
            for f in list(r.parking):
                if self._bringing.get(f.name) is w:
                    continue   # still on its way
                r.parking.discard(f)
                r.parked += f.state is F.HOME
            self._copy_off(w, r, stays)
            if w.tasks or r.copying or any(v is w for v in self._bringing.values()) or any(
                    f.pending for f in w.files if w in f.replicas and f.state is F.MADE):
                continue   # it runs a task, or a copy of one of its files is on its way somewhere
            del self._retiring[w]
            lost = sum(1 for f in w.files if self._only_here(f, w) and self._may_need(f))
            self._out.append(Retired(w.id, r.copied, lost, r.parked))

    def _copy_off(self, w: WorkerNode, r: Retirement, stays: list[WorkerNode]) -> None:
        if not stays:
            if self.park:   # no worker stays: what may still be read goes to the submitting side
                for f in sorted(w.files, key=lambda f: f.name):
                    if f not in r.tried and self._only_here(f, w) and self._may_need(f) and \
                            f.name not in self._bringing:
                        r.tried.add(f)
                        r.parking.add(f)
                        self._out.append(Park(f.name, w.id))
                        self._bringing[f.name] = w
            return
        load = {v: sum(f.size for f in v.files) for v in stays}
        batches: dict[WorkerNode, list[tuple[str, str]]] = {}
        for f in sorted(w.files, key=lambda f: f.name):
            if f in r.tried or not self._only_here(f, w) or not self._may_need(f) or f.name in self._bringing:
                continue
            r.tried.add(f)
            dest = self._keeper(f, stays, load)
            load[dest] += f.size
            f.pending.add(dest)
            dest.files.add(f)
            r.copying[f] = dest
            batches.setdefault(dest, []).append((f.name, w.id))
        for dest, files in batches.items():
            self._out.append(Replicate(dest.id, tuple(files)))

    @staticmethod
    def _only_here(f: FileNode, w: WorkerNode) -> bool:
        """w holds the only copy of f made by a task (nothing else holds or awaits one)."""
        return f.state is F.MADE and f.replicas == {w} and not f.pending

    @staticmethod
    def _may_need(f: FileNode) -> bool:
        """May f still be read: by a task to run, by the user (a handle, a fetch), or kept?"""
        return bool(f.consumers) or f.wanted or f.keep or not f.released

    @staticmethod
    def _keeper(f: FileNode, stays: list[WorkerNode], load: dict[WorkerNode, int]) -> WorkerNode:
        """Where f goes: where a task reading it is placed, else the worker holding the fewest bytes."""
        for c in sorted(f.consumers, key=_by_id):
            for v in (c.worker, c.group.worker if c.group is not None else None):
                if v is not None and v in load:
                    return v
        return min(stays, key=lambda v: (load[v], v.id))

    def _on_worker_lost(self, e: WorkerLost) -> None:
        w = self.workers.get(e.worker)
        if w is None or not w.alive:
            return
        w.alive = False
        self._idle.discard(w)
        self._not_full.discard(w)
        self._blocked.discard(w)
        for tid in [tid for tid, target in self.moves.items() if target is w]:
            del self.moves[tid]     # returned later, they are planned like any other task
        replan = sorted(w.tasks, key=_by_id)
        # the tasks that were running there, not those queued behind them, are charged with the loss
        suspects = sorted((t for t in replan if t.state is T.RUNNING), key=lambda t: t.active_seq)[:w.cores]
        for t in replan:
            self.moves.pop(t.id, None)
            self._to(t, T.WAITING)
        for f in sorted(w.files, key=lambda f: f.name):
            self._drop_replica(f, w)
        for names in self._unknown_cached.values():
            names.discard(w)
        self._assign.pop(w, None)
        self._delete.pop(w, None)
        self._retract.pop(w, None)
        self._stop.pop(w, None)
        for t in suspects:
            if t.state is T.WAITING:
                self._system_failure(t, w, "worker-lost", f"worker {w.id} was lost ({e.reason}) while it ran the task")
        for t in replan:
            if t.state is T.WAITING:
                self._recount(t)
                self._revived.append(t)

    def _on_succeeded(self, e: TaskSucceeded) -> None:
        t = self.tasks.get(e.task)
        w = self.workers.get(e.worker)
        if t is None or w is None or t.state not in ON_WORKER or t.worker is not w:
            self._discard_outputs(w, e.outputs)
            return
        w.failure_streak = 0
        t.started, t.finished = e.started, e.finished
        duration = max(0.0, e.finished - e.started)
        w.durations.add(duration)
        self.mean_duration.add(duration)
        if t.category is not None and e.usage is not None:
            t.category.learn(*e.usage)
        made = []
        for name, size in e.outputs:
            f = self.files.get(name)
            if f is not None and f.producer is t:
                _resize(f, size)
                self.output_size.add(size)
                made.append(f)
        homing = [f for f in made if f.home and f.state is not F.HOME]
        self._to(t, T.HOMING if homing else T.DONE)
        for f in t.inputs:
            f.consumers.discard(t)
            graph.consumers_changed(f)
            self._maybe_collect(f)
        if self.prune:
            for f in graph.above(t, self.prune):
                self._maybe_collect(f)
        for f in made:
            self._add_replica(f, w)
        for f in made:   # home, or to the memo record: the task's Future does not wait for the latter
            if (f.home or f.record) and f.state is F.MADE and f.name not in self._bringing:
                self._bring(f, w)
        for f in made:
            self._maybe_collect(f)   # remade for another output's sake: nobody needs it again
        if t.state is T.DONE:
            self._report_done(t)

    def _on_failed(self, e: TaskFailedOn) -> None:
        t = self.tasks.get(e.task)
        w = self.workers.get(e.worker)
        if t is None or w is None or t.state not in ON_WORKER or t.worker is not w:
            return
        self.counters.attempts_failed += 1
        sized = t.sized   # (leaving its worker, it holds nothing any more)
        self._to(t, T.WAITING)
        if e.reason == "input" and e.file in self.files:
            f = self.files[e.file]
            f.pending.discard(w)
            w.files.discard(f)
            peer = self.workers.get(e.source) if e.source else None
            if peer is not None and peer.alive and peer in f.replicas:
                # the peer could not serve it: do not ask it again, and have it delete what it may
                # hold (the report can be older than a copy it made since: none is kept uncounted)
                self._drop_replica(f, peer)
                self._delete[peer].append(f.name)
            elif w in f.replicas:
                self._drop_replica(f, w)     # told it was in its own cache, the worker did not find it
        if e.reason in SYSTEM_REASONS:
            if not self._system_failure(t, w, e.reason, e.message):
                self._requeue(t)
            return
        if e.reason in ("memory", "disk") and sized and not t.full:
            t.full = True   # it outgrew what its category learnt: once more, with the whole allowance
            self.counters.resized += 1
            self._requeue(t)
            return
        if e.reason in TASK_REASONS and t.retries_left > 0:
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
                if name.startswith(CONTENT_PREFIXES):
                    self._unknown_cached.setdefault(name, set()).add(w)
                else:   # a copy that arrived after the file was collected and let go of: it goes too
                    self._delete[w].append(name)
                continue
            if f.state in (F.GONE, F.DOOMED) or (
                    f.state in (F.ABSENT, F.HOME) and w not in f.pending and w not in f.replicas):
                # collected or given up while it travelled: the deletion may have reached the worker
                # before the file did, so it is asked again, and the copy is not counted
                self._delete[w].append(name)
                continue
            _resize(f, f.size or size)
            self._add_replica(f, w)

    def _on_file_lost(self, e: FileLostOn) -> None:
        f = self.files.get(e.name)
        w = self.workers.get(e.worker)
        if f is None and w is not None and e.name in self._unknown_cached:
            self._unknown_cached[e.name].discard(w)   # cached before any task named it: forget it there
        if f is not None and w is not None and (w in f.replicas or w in f.pending):
            self._drop_replica(f, w)

    def _on_file_home(self, e: FileHome) -> None:
        f = self.files.get(e.name)
        if f is None or f.state is not F.MADE:
            return   # lost before the news arrived: its producer runs again and brings it again
        self._bringing.pop(f.name, None)
        move_file(f, F.HOME)
        p = f.producer
        if p is not None and p.state is T.HOMING and all(o.state is F.HOME for o in p.outputs if o.home):
            self._to(p, T.DONE)
            self._report_done(p)
        self._maybe_collect(f)

    def _on_home_failed(self, e: FileHomeFailed) -> None:
        f = self.files.get(e.name)
        p = f.producer if f is not None else None
        self._bringing.pop(e.name, None)
        if f is not None and f.record and not f.home:   # no record of it then: it is a temp like any other
            f.record = False
            self._maybe_collect(f)
        if p is not None and p.state is T.HOMING:
            self._fail(p, "home", e.message)

    def _on_wanted(self, e: FileWanted) -> None:
        f = self.files.get(e.name)
        if f is None:
            raise ValueError(f"unknown file {e.name}")
        f.wanted = True
        if f.source or f.state is F.RECIPE:   # (the manager refuses to fetch a file workers make)
            return
        if f.made:
            self._bring(f, _any(f.replicas))
        elif f.state is F.DOOMED or (f.producer is not None and f.producer.state in (T.FAILED, T.CANCELLED)):
            pid = f.producer.id if f.producer is not None else None
            self._out.append(FileFailed(f.name, f"task {pid} that makes it did not succeed"))
        else:
            self._need(f)

    def _on_released(self, e: FileReleased) -> None:
        f = self.files.get(e.name)
        if f is None:
            return
        f.keep = False
        f.wanted = False
        f.had_consumers = True  # from now on it goes once nothing needs it
        if not f.released:
            f.released = True
            f.holds -= 1
        self._bringing.pop(f.name, None)
        self._maybe_collect(f)
        self._may_go(f)

    def _on_retracted(self, e: Retracted) -> None:
        """The worker's answer to a move: what it gave back goes to the move's target."""
        w = self.workers.get(e.worker)
        for tid in e.started:
            self.moves.pop(tid, None)
        back: dict[WorkerNode, list[TaskNode]] = {}
        for tid in e.returned:
            target = self.moves.pop(tid, None)
            t = self.tasks.get(tid)
            if t is None or t.state not in ON_WORKER or t.worker is not w:
                continue
            self._to(t, T.WAITING)
            if target is None or not target.staying:
                self._recount(t)
                self._revived.append(t)   # planned again like any other task
            else:
                back.setdefault(target, []).append(t)
        for target, tasks in back.items():
            self._regroup_moved(tasks, target)

    def move(self, suffix: list[TaskNode], source: WorkerNode, target: WorkerNode | None) -> None:
        """Take back members not yet started from source, to place them on target (None: anywhere)."""
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
            if m.state is T.WAITING and m.missing == 0:
                self._to(m, T.READY)

    def _on_tick(self, e: Tick) -> None:
        self.now = e.now
        if self._blocked:
            for w in [w for w in self._blocked if w.blocked_until <= e.now]:
                self._blocked.discard(w)
                w.blocked_until = None
                if w.staying and w.used_cores < w.cores:
                    self._idle.add(w)
                self._note_fullness(w)
        if self.rebalancer is not None:
            self.rebalancer(self, e.now)

    def _on_category(self, e: CategorySet) -> None:
        self._category(e)

    def _category(self, e: CategorySet) -> Category:
        """Set (or change) a category; what its runs taught it so far is kept."""
        for what, value in (("cores", e.cores), ("memory", e.memory), ("disk", e.disk), ("gpus", e.gpus)):
            if value < 0:
                raise ValueError(f"category {e.name!r}: {what} must not be negative, got {value}")
        new = Category(e.name, e.mode, e.cores, e.memory, e.disk, e.gpus)
        old = self.categories.get(e.name)
        if old is not None:
            new.peak_memory, new.peak_disk, new.samples = old.peak_memory, old.peak_disk, old.samples
            for t in self.tasks.values():
                if t.category is old:
                    t.category = new
        self.categories[e.name] = new
        return new

    def _on_tag_cancelled(self, e: TagCancelled) -> None:
        """Every unfinished task carrying the tag is cancelled; those on a worker are stopped there."""
        for t in sorted((t for t in self.tasks.values() if t.tag == e.tag), key=_by_id):
            if t.state not in FINISHED and not t.reported:
                self._fail(t, "cancelled", f"task {t.id} was cancelled (tag {e.tag!r})", None, state=T.CANCELLED)

    def _on_host_blocked(self, e: HostBlocked) -> None:
        """The workers on the host take no new work: what they have not started goes elsewhere, what runs
        there finishes, and the files they hold stay readable from them."""
        if e.host in self._blocked_hosts:
            return
        self._blocked_hosts.add(e.host)
        for w in sorted(self.workers.values(), key=_node_id):
            if w.alive and w.host == e.host and not w.barred:
                w.barred = True
                self._idle.discard(w)
                self._not_full.discard(w)
                if not w.retiring:
                    self.move(sorted((t for t in w.tasks if t.id not in self.moves), key=_by_id), w, None)

    def _on_host_unblocked(self, e: HostUnblocked) -> None:
        self._blocked_hosts.discard(e.host)
        for w in self.workers.values():
            if w.alive and w.host == e.host and w.barred:
                w.barred = False
                if self._available(w) and w.used_cores < w.cores:
                    self._idle.add(w)
                self._note_fullness(w)

    def _make_way(self) -> None:
        """A ready task that found no room waits behind no task of lower priority queued on a worker.

        The queue a worker holds beyond its cores was filled before the task
        came: the lowest-priority task queued there (not started, in no
        group) is taken back, and once it is back the ready task, placed
        first by its priority, takes its place. Only tasks of one core or
        more: their room is what a queued task holds.
        """
        if self._making_way is not None and self._making_way in self.moves:
            return   # one at a time: the last one taken back has not come back yet
        self._making_way = None
        top = None
        for heap in self._ready.values():   # the head of each queue (a stale head is skipped: it is rare)
            head = heap[0]
            t = self.tasks.get(head[-1])
            if t is not None and t.state is T.READY and (top is None or head < top[0]):
                top = (head, t)
        if top is None:
            return
        t = top[1]
        victim = None
        for w in self.workers.values():
            if not self._available(w) or not w.fits(t) or w.used_cores <= w.cores or t.cores > w.cores:
                continue
            started = sorted((x for x in w.tasks if x.state is T.RUNNING), key=lambda x: x.active_seq)
            seen = 0
            for x in started:
                seen += x.cores
                if seen <= w.cores:
                    continue   # likely running: it holds one of the worker's cores
                if (x.priority < t.priority and x.id not in self.moves and x.cores >= t.cores
                        and x.gpus >= t.gpus and (x.group is None or len(x.group.members) == 1)
                        and (victim is None or (x.priority, -x.id) < (victim.priority, -victim.id))):
                    victim = x
        if victim is not None:
            self._making_way = victim.id
            self.move([victim], victim.worker, None)

    def _on_no_workers(self, e: NoWorkers) -> None:
        for t in sorted(self.tasks.values(), key=_by_id):
            if t.state not in TERMINAL:
                self._fail(t, "no-workers", e.message)

    # ------------------------------------------------------------ failures

    def _system_failure(self, t: TaskNode, w: WorkerNode, reason: str, message: str) -> bool:
        """An attempt of t was lost to the system on w. Returns True when t has failed for good.

        The task avoids w from now on (where another worker can run it); a
        group member leaves its group, and the members after it that wait on
        w are taken back, so the group continues wherever the member runs.
        """
        self.counters.system_failures += 1
        t.system_failures += 1
        if t.failures is None:
            t.failures = []
        t.failures.append(f"{message} (worker {w.id})")
        if t.avoid is None:
            t.avoid = set()
        t.avoid.add(w.id)
        if reason != "input":   # an input that could not be had is its holder's failure, not this worker's
            self._worker_failed(w)
        if t.system_failures > self.system_retries:
            attempts = "; ".join(t.failures[-(self.system_retries + 1):])
            self._fail(t, reason, f"lost {t.system_failures} attempts to system failures, on "
                       f"{len(t.avoid)} worker(s): {attempts}")
            return True
        g = t.group
        if g is not None:
            if w.alive:
                after = g.members[g.members.index(t) + 1:]
                suffix = [m for m in after if m.worker is w and m.state in ON_WORKER and m.id not in self.moves]
                if suffix:
                    self.move(suffix, w, None)
            g.members.remove(t)
            t.group = None
        return False

    def _worker_failed(self, w: WorkerNode) -> None:
        """Count a system failure against w; blocklist it after several in a row."""
        if not w.alive:
            return
        w.failure_streak += 1
        if w.failure_streak < self.blocklist_after or w in self._blocked:
            return
        w.failure_streak = 0
        w.blocks += 1
        w.blocked_until = self.now + min(MAX_BLOCK_SECONDS, self.blocklist_seconds * 2 ** (w.blocks - 1))
        self.counters.blocklisted += 1
        self._out.append(Blocked(w.id, w.blocked_until))
        self._blocked.add(w)
        self._idle.discard(w)
        self._not_full.discard(w)

    def _available(self, w: WorkerNode) -> bool:
        """May w be given new work?"""
        return w.staying and w.blocked_until is None

    def _fail(self, t: TaskNode, reason: str, message: str, cause: int | None = None,
              state: TaskState = T.FAILED) -> None:
        """t fails for good, and so does everything that needs what it makes.

        Each task that fails because of t is told what t's failure was (t's
        own Future may have succeeded long before, when t ran again to remake
        a temp that was lost and failed then).
        """
        why = message if len(message) <= 600 else message[:597] + "..."
        stack = [(t, reason, message, cause, state)]
        while stack:
            x, reason, message, cause, state = stack.pop()
            if x.state in TERMINAL:
                continue
            if x.state in ON_WORKER:  # on a worker: it must forget the task (and stop it if cancelled)
                (self._stop if state is T.CANCELLED else self._retract)[x.worker].append(x.id)
            self._to(x, state)
            if state is T.CANCELLED:
                self.counters.cancelled += 1
            self._report_failed(x, Fail(x.id, reason, message, x.attempts, cause))
            for f in x.inputs:
                f.consumers.discard(x)
                graph.consumers_changed(f)
                self._maybe_collect(f)
            for f in x.outputs:
                if f.made:
                    continue
                self._mark_doomed(f, x)
                if x is t:
                    told = f"input {f.name} will not be made: task {t.id} failed: {why}"
                else:
                    told = (f"input {f.name} will not be made: task {x.id} did not run, because task {t.id} "
                            f"failed: {why}")
                for c in sorted(f.consumers, key=_by_id):
                    stack.append((c, "dependency", told, cause if cause is not None else x.id, T.FAILED))

    def _invalid(self, t: TaskNode) -> str | None:
        for f in t.outputs:
            if f.state is F.SOURCE:
                return f"output {f.name} is an input from the submitting side, not a file a task makes"
            if f.state is F.RECIPE:
                return f"output {f.name} is made by each worker that reads it, not by a task"
            if f.producer is not None:
                return f"output {f.name} is already made by task {f.producer.id}"
        return None

    # ------------------------------------------------------------ files

    def _file(self, spec: FileSpec) -> FileNode:
        f = self.files.get(spec.name)
        if f is None:
            f = FileNode(spec.name, spec.size, spec.source, spec.home, spec.keep, spec.recipe)
            self.files[spec.name] = f
            for w in self._unknown_cached.pop(spec.name, ()):
                if w.alive and (f.source or spec.name.startswith(CONTENT_PREFIXES)):
                    self._add_replica(f, w)
        else:
            f.keep = f.keep or spec.keep
            f.home = f.home or spec.home
            if spec.size is not None and not f.size:
                _resize(f, spec.size)
        if spec.record:
            f.record = True
        return f

    def _add_replica(self, f: FileNode, w: WorkerNode) -> None:
        f.pending.discard(w)
        if w in f.replicas:
            return
        f.replicas.add(w)
        w.files.add(f)
        w.held += f.size
        if w.held > w.peak:
            w.peak = w.held
        if f.producer is not None:
            w.held_made += f.size
            if w.held_made > w.peak_made:
                w.peak_made = w.held_made
        if f.state is F.GONE:
            move_file(f, F.ABSENT)   # made again (its producer ran again for another output)
        if f.state is not F.ABSENT:
            return
        move_file(f, F.MADE)
        self._now_available(f)
        if f.wanted:
            self._bring(f, w)

    def _now_available(self, f: FileNode) -> None:
        """f can be read from now on: the tasks that waited for it may be ready."""
        for c in _by_ids(f.consumers):
            c.missing -= 1
            if c.missing == 0:
                if c.state is T.WAITING:
                    self._to(c, T.READY)
                elif c.state is T.ASSIGNED:
                    self._to(c, T.RUNNING)

    def _bring(self, f: FileNode, w: WorkerNode) -> None:
        """Ask the shell to bring f from w to the submitting side (home, or to whoever wants its bytes)."""
        self._out.append(Fetch(f.name, w.id))
        self._bringing[f.name] = w

    def _drop_replica(self, f: FileNode, w: WorkerNode) -> None:
        """w no longer holds f (lost, or could not serve it)."""
        if w in f.replicas:
            f.replicas.remove(w)
            w.held -= f.size
            if f.producer is not None:
                w.held_made -= f.size
        f.pending.discard(w)
        w.files.discard(f)
        if self._bringing.get(f.name) is w:
            # the copy on its way to the submitting side is gone: bring another (none left: made again)
            del self._bringing[f.name]
            if f.state is F.MADE and f.replicas:
                self._bring(f, _any(f.replicas))
        if f.state is not F.MADE or f.replicas:
            return
        move_file(f, F.ABSENT)
        for c in _by_ids(f.consumers):
            c.missing += 1
            if c.state is T.READY:
                self._to(c, T.WAITING)
            elif c.state is T.RUNNING:
                self._to(c, T.ASSIGNED)
        p = f.producer
        if p is not None and p.state is T.HOMING:
            # its attempt had not ended: an output vanished before everything reached home
            if self._system_failure(p, w, "output-lost", f"its output {f.name} was lost before it "
                                    "reached home"):
                return
        if f.consumers or f.wanted or f.home:
            self._need(f)

    def _need(self, f: FileNode) -> None:
        """f must exist again: run its producer again if it had finished (recursively)."""
        stack = [f]
        while stack:
            f = stack.pop()
            if f.made:
                continue
            if f.state is F.GONE:
                move_file(f, F.ABSENT)
            p = f.producer
            if f.state is F.DOOMED or (p is not None and p.state in (T.FAILED, T.CANCELLED)):
                self._doom(f, p)   # its copies are gone and its producer will not run again
                continue
            if p is None or p.state not in (T.DONE, T.HOMING):
                continue
            self._to(p, T.WAITING)
            self.counters.reruns += 1
            p.missing = 0
            for g in p.inputs:
                g.consumers.add(p)
                graph.consumers_changed(g)
                if not g.made:
                    p.missing += 1
                    stack.append(g)
            self._revived.append(p)

    def _doom(self, f: FileNode, p: TaskNode | None) -> None:
        """f will never be made again: its producer failed for good. What needs it fails too."""
        self._mark_doomed(f, p)
        pid = p.id if p is not None else None
        for c in sorted(f.consumers, key=_by_id):
            self._fail(c, "dependency", f"input {f.name} will not be made: task {pid} did not succeed", pid)

    def _mark_doomed(self, f: FileNode, p: TaskNode | None) -> None:
        """f (not available) will never be made: no copy is on its way anywhere; whoever wants it is told."""
        if f.state is F.DOOMED:
            return
        if f.state is F.GONE:
            move_file(f, F.ABSENT)
        move_file(f, F.DOOMED)
        for w in f.pending:
            w.files.discard(f)   # a copy still arriving is deleted when it does
        f.pending.clear()
        if f.wanted:
            self._out.append(FileFailed(f.name, f"task {p.id if p is not None else None} that makes it did not "
                                        "succeed"))

    def _maybe_collect(self, f: FileNode) -> None:
        """Delete f from worker caches once nothing needs it there.

        User inputs stay cached (they are content-named and often reused);
        an output written back home is served from home from then on.
        """
        if f.keep or f.wanted or f.consumers:
            return
        state = f.state
        if state is F.ABSENT and f.pending and f.released:
            # lost while copies of it travelled, and nothing can ask for it: they are given up
            for w in _by_ids(f.pending):
                self._delete[w].append(f.name)
                w.files.discard(f)
            f.pending.clear()
            self._may_go(f)
            return
        p = f.producer
        # an output on its way home (or to a memo record) waits for it, unless its producer failed: then
        # it never goes there
        homing = (f.home or f.record) and not (p is not None and p.state in (T.FAILED, T.CANCELLED))
        if state is not F.HOME and (state is not F.MADE or homing or not f.had_consumers):
            return
        if state is F.MADE and self.prune != 0 and not f.released and (
                self.prune is None or not graph.settled_below(f, self.prune)):
            return   # kept for the tasks below its readers (depth-k pruning), or until released
        for w in _by_ids(f.replicas | f.pending):
            self._delete[w].append(f.name)
            w.files.discard(f)
        for w in f.replicas:
            w.held -= f.size
            if f.producer is not None:
                w.held_made -= f.size
        f.replicas.clear()
        f.pending.clear()
        self._bringing.pop(f.name, None)
        if state is F.MADE:
            move_file(f, F.GONE)
        self._may_go(f)

    def _discard_outputs(self, w: WorkerNode | None, outputs) -> None:
        """Outputs of a run the core no longer counts (a task already moved or done)."""
        if w is None or not w.alive:
            return
        for name, _ in outputs:
            f = self.files.get(name)
            if f is None or w not in f.replicas:
                self._delete[w].append(name)

    # ------------------------------------------------------------ task states

    def _recount(self, t: TaskNode) -> None:
        """Count t's missing inputs again, and ask for the lost ones to be made again."""
        t.missing = sum(1 for f in t.inputs if not f.made)
        for f in t.inputs:
            if not f.made:
                self._need(f)
        if t.missing and t.state is T.READY:
            self._to(t, T.WAITING)

    def _requeue(self, t: TaskNode) -> None:
        """Back into the pool (a retry or a lost input); a committed group takes it back."""
        self._recount(t)
        if t.missing == 0 and t.state is T.WAITING:
            self._to(t, T.READY)

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
        live = [t for t in tasks if t.state in UNSTARTED]
        if self.group_tasks:
            self.grouper.regroup(live)
        for t in live:
            if t.state is T.WAITING and t.missing == 0:
                self._to(t, T.READY)

    def _schedule(self) -> None:
        if not self._ready:
            return
        if self._stale_ranks:
            self._sort_ready()
        if self.placement == "graph" and self._idle:
            self._pull()
            if not self._ready:
                return
        blocked: set[tuple[int, int, int]] = set()
        self._allowances = {}
        while True:
            shape = self._best_shape(blocked)
            if shape is None:
                return
            heap = self._ready[shape]
            tid = heapq.heappop(heap)[-1]
            if not heap:
                del self._ready[shape]
            t = self.tasks.get(tid)
            if t is None or t.state is not T.READY:
                continue
            w = self._place(t)
            if w is None:
                heapq.heappush(self._ready.setdefault(shape, []), (-t.priority, graph.rank(t, self.order), t.id))
                blocked.add(shape)
                continue
            self._commit(t, w)

    def _sort_ready(self) -> None:
        """Rebuild the ready queues with each task's current rank (heights grow as consumers arrive)."""
        self._stale_ranks = False
        order = self.order
        for shape in list(self._ready):
            seen: set[int] = set()
            fresh = []
            for entry in self._ready[shape]:
                t = self.tasks.get(entry[-1])
                if t is not None and t.state is T.READY and t.id not in seen:
                    seen.add(t.id)
                    fresh.append((-t.priority, graph.rank(t, order), t.id))
            if fresh:
                heapq.heapify(fresh)
                self._ready[shape] = fresh
            else:
                del self._ready[shape]

    def _pull(self) -> None:
        """Each worker with a free core takes, among the first ready tasks, the one with most affinity to it
        (graph.affinity): the tasks whose files meet later go to one worker, with no worker left idle."""
        guess = self.output_size.value or 1.0
        for w in sorted(self._idle, key=lambda w: w.id):
            while w in self._idle and self._ready:
                t = self._pick(w, guess)
                if t is None:
                    break
                self._commit(t, self._closer(t, w, guess))

    def _closer(self, t: TaskNode, w: WorkerNode, guess: float) -> WorkerNode:
        """Another free worker t has more affinity to than w (a few free workers are looked at), else w."""
        if len(self._idle) < 2 or len(self._idle) > graph.CANDIDATES or t.group is not None:
            return w
        best, most = w, graph.affinity(t, w, guess)
        for v in sorted(self._idle, key=lambda v: v.id):
            if v is not w and placement.has_room(v, t, 0) and not (t.avoid and v.id in t.avoid):
                a = graph.affinity(t, v, guess)
                if a > most:
                    best, most = v, a
        return best

    def _pick(self, w: WorkerNode, guess: float) -> TaskNode | None:
        """The candidate first by (priority, rank), then by most affinity to w, then by id.

        Affinity is worked out only between candidates tied on the first two:
        one ahead of them needs none, one behind them is not looked at."""
        best, top, score = None, None, None   # the best so far, its (priority, rank), its affinity once asked
        scored: dict = {}   # graph.affinity's sums for w, shared by candidates with the same partners
        for heap in self._ready.values():
            for entry in heap[:graph.CANDIDATES]:
                head = (entry[0], entry[1])
                if best is not None and head > top:
                    continue   # behind the best whatever its affinity
                t = self.tasks.get(entry[-1])
                if t is None or t.state is not T.READY or not placement.has_room(w, t, 0):
                    continue
                g = t.group
                if g is not None and (g.worker is not None or g.target is not None
                                      or not all(w.fits(m) for m in g.members if m.state not in FINISHED)):
                    continue   # placed by _place: committed, moved, or split where it fits
                if t.avoid and w.id in t.avoid and self._avoiding(t) is not None:
                    continue
                if self._leave_for_holder(t, w):
                    continue   # a worker holding its large input will start it sooner
                if best is None or head < top:
                    best, top, score = t, head, None
                    continue
                if score is None:
                    score = graph.affinity(best, w, guess, scored)
                a = graph.affinity(t, w, guess, scored)
                if a > score or (a == score and t.id < best.id):
                    best, score = t, a
        return best

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
                if g.worker.staying:
                    return g.worker
                g.worker = None
            if g.target is not None:
                target, g.target = g.target, None
                if target.staying and all(target.fits(m) for m in g.members if m.state not in FINISHED):
                    return target   # (a member that joined since the move may not fit there)
        per_core = placement.queue_per_core(self.mean_duration.value, self.queue_time)
        if per_core != self._queue_per_core:
            self._queue_per_core = per_core
            for w in self.workers.values():
                self._note_fullness(w)
        if t.cores >= 1 and not self._not_full:
            return None  # every worker is full, queue included (the common case on a busy cluster)
        members = [m for m in g.members if m.state not in FINISHED] if g is not None else None
        w = self._choose(t, members)
        if w is None and members is not None and not any(
                v.staying and all(v.fits(m) for m in members) for v in self.workers.values()):
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
        avoid = self._avoiding(t)
        nearby = {w for f in t.inputs if not f.source for w in (f.replicas | f.pending)}
        candidates = [w for w in (nearby | self._idle if nearby else self._idle)
                      if self._room(w, t, queue) and (members is None or all(w.fits(m) for m in members))
                      and (avoid is None or w.id not in avoid)]
        if not candidates:
            if not queue:
                return None
            # only workers not full can take a task of one core or more: no scan of every worker
            pool = self._not_full if t.cores >= 1 else self.workers.values()
            candidates = [w for w in pool
                          if w.staying and self._room(w, t) and (members is None or all(w.fits(m) for m in members))
                          and (avoid is None or w.id not in avoid)]
            if not candidates:
                return None
        w = candidates[0] if len(candidates) == 1 else \
            placement.choose(t, candidates, self.mean_duration.value, self.bandwidth)
        if w is not None and self._leave_for_holder(t, w):
            return None   # a worker holding its input will start it sooner than the bytes could move
        return w

    def _leave_for_holder(self, t: TaskNode, w: WorkerNode) -> bool:
        """Should w leave t to a worker that holds its largest input (placement.leave_for_holder)?"""
        largest = max(t.inputs, key=lambda f: f.size, default=None)
        if largest is None or w in largest.replicas or w in largest.pending or \
                largest.size <= self.bandwidth * (self.mean_duration.value or placement.UNMEASURED_DURATION):
            return False   # (a copy shorter than a task's run is not worth a wait: placement.leave_for_holder)
        avoid = self._avoiding(t)
        holders = [v for v in (largest.replicas | largest.pending)
                   if v is not w and v.alive and self._available(v) and v.fits(t)
                   and (avoid is None or v.id not in avoid)]
        return bool(holders) and placement.leave_for_holder(t, w, sorted(holders, key=lambda v: v.id),
                                                            self.mean_duration.value, self.bandwidth, self.now)

    def _avoiding(self, t: TaskNode) -> set[str] | None:
        """The workers t should not go to: those it lost attempts on, while another could run it."""
        avoid = t.avoid
        if not avoid:
            return None
        if any(self._available(w) and w.id not in avoid and w.fits(t) for w in self.workers.values()):
            return avoid
        return None   # only workers it failed on can run it: they may try again

    def _note_fullness(self, w: WorkerNode) -> None:
        """Keep _not_full up to date after w's use of cores changed."""
        if self._available(w) and w.used_cores < w.cores * (1 + self._queue_per_core):
            self._not_full.add(w)
        else:
            self._not_full.discard(w)

    def _split_off_misfits(self, g: Group, w: WorkerNode) -> None:
        cut = next(i for i, m in enumerate(g.members) if m.state not in FINISHED and not w.fits(m))
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
        """Send the unfinished, unassigned members of g to w, in order: each that has its inputs, or has
        them made there by a member before it.

        A member that waits for another group's file (a group committed long
        ago whose finished head runs again to remake a lost temp) stays here
        until the file exists, and is placed then; sent now, it would wait on
        w for a file that may be made elsewhere, and nobody would tell w where
        to fetch it. The members that wait for it stay with it.
        """
        coming: set[FileNode] | None = None   # files members before it make on w
        for m in g.members:
            if m.state in UNSTARTED:
                if m.missing and any(not f.made and (coming is None or f not in coming) for f in m.inputs):
                    continue
                self._assign_to(m, w)
            elif m.state not in ON_WORKER or m.worker is not w:
                continue
            if coming is None:
                coming = set()
            coming.update(m.outputs)

    def _assign_to(self, t: TaskNode, w: WorkerNode) -> None:
        t.attempts += 1
        t.partners = None   # asked for only while it waits to be placed: not held while it runs
        sources = []
        held = None
        if t.need is None and t.category is None:   # one core and its share, not watched
            t.memory, t.disk = w.memory // w.cores, w.disk // w.cores
        else:
            held = allocation(w, t)
            t.cores, t.memory, t.disk, t.gpus = held
            c = t.category
            t.sized = c is not None and c.learnt and not t.full
        for f in t.inputs:
            if w in f.replicas or w in f.pending:
                src = LOCAL
            elif f.source:
                src = MANAGER
                f.pending.add(w)
                w.files.add(f)
            elif f.state is F.RECIPE:
                src = MAKE   # made there, once: its copy is counted when the worker says it has it
                f.pending.add(w)
                w.files.add(f)
            elif f.made:
                src = self._peer_for(f).id
                f.pending.add(w)
                w.files.add(f)
            else:
                src = LOCAL  # made on w by an earlier member of its group
            sources.append((f.name, src))
        self._assign[w].append(Assignment(t.id, tuple(sources), held))
        self._to(t, T.RUNNING if t.missing == 0 else T.ASSIGNED, w)

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
        if self._stop:
            for w, tids in self._stop.items():
                if w.alive and tids:
                    out.append(Stop(w.id, tuple(tids)))
            self._stop.clear()
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
        by_state = self.by_state
        return sum(by_state[state] for state in TaskState if state not in TERMINAL)

    def counts_by_state(self) -> dict[str, int]:
        """Every task submitted, by state, those let go of included."""
        return {s.name.lower(): n + self.forgotten[s] for s, n in self.by_state.items()}


def _resize(f: FileNode, size: int) -> None:
    """f's size is known (or made again): the workers holding it count it at that size."""
    for w in f.replicas:
        w.held += size - f.size
        if f.producer is not None:
            w.held_made += size - f.size
            w.peak_made = max(w.peak_made, w.held_made)
        w.peak = max(w.peak, w.held)
    f.size = size


def _by_id(t: TaskNode) -> int:
    return t.id


def _unsize(t: TaskNode) -> None:
    """t left its worker: it holds nothing any more, and asks again for what it states."""
    need = t.need
    if need is None:
        t.cores, t.memory, t.disk, t.gpus = 1, 0, 0, 0
    else:
        t.cores, t.memory, t.disk, t.gpus = max(1, need[0]), need[1], need[2], need[3]
    t.sized = False


def _by_ids(nodes: set) -> set | list:
    """Tasks or workers in the order of their ids: a set's order follows memory addresses, and the
    same events must give the same commands (a history replays exactly)."""
    return nodes if len(nodes) < 2 else sorted(nodes, key=_node_id)


def _node_id(node) -> int | str:
    return node.id


def _any(items):
    return min(items, key=lambda w: w.id)


def _unique(specs: tuple[FileSpec, ...]) -> tuple[FileSpec, ...] | list[FileSpec]:
    if len(specs) < 2:
        return specs
    seen: dict[str, FileSpec] = {}
    for s in specs:
        seen.setdefault(s.name, s)
    return list(seen.values())
