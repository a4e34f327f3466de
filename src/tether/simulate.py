"""One simulated cluster: the real Scheduler and a real WorkerState per worker, on a virtual clock.

Why it exists: the core and the worker's own decisions are each tested
alone, but the hangs came from where they meet: a message overtaken by
another, a retraction racing a start, a worker lost with messages in flight.
Here the two real state machines meet the way the manager's engine and the
worker process join them, with every piece of I/O (sockets, processes,
files) replaced by an event on a discrete-event clock. There are no threads,
no sleeps and no randomness of its own: the same calls give the same
history, so a failing history found by hypothesis replays exactly.

Its users: tests/core/test_stateful.py (random histories with faults),
`tether bench scale` (the core's cost per task at scale), and later a
`tether simulate` command.

What it plays, and where the real thing lives:

  manager side   manager/engine.py: core commands become messages to workers
                 (an Assign becomes task specs naming each input's source);
                 worker messages become core events, each batch handled
                 behind a Tick; outputs are brought home; each Complete or
                 Fail settles the task's Future (recorded in `outcomes`)
  worker side    worker/process.py: messages become WorkerState events; its
                 instructions become fetches, runs and reports
  the wire       one ordered queue each way per worker, with a delay; a lost
                 worker's messages in flight are dropped
  time           a fetch takes latency + bytes / bandwidth; a run takes its
                 task's duration divided by the worker's speed

Faults to inject: a run ending now, with success or a failure reason
(`end_run`, or `Job.failures` for attempts planned ahead); a worker lost,
noticed by the manager now or later (`lose_worker`); a stalled worker, its
messages and transfers held up (`stall`); a file vanishing from a worker's
cache (`lose_file`); an output that cannot be written home
(`refuse_home`); the user wanting a file's bytes (`want`) or cancelling a
task (`cancel`). Retractions come from the core's own rebalancer, and race
with starts wherever messages take time.
"""
from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable

from .core import (MANAGER, Assign, Command, Complete, Delete, Event, Fail, Fetch, FileFailed, FileHome, Forget,
                   FileHomeFailed, FileLostOn, FileReleased, FilesCached, FileWanted, Park, Replicate, Retired, Retract,
                   Retracted, Scheduler, TaskCancelled, TaskFailedOn, TaskSubmitted, TaskSucceeded, Tick, WorkerJoined,
                   WorkerLost, WorkerRetiring)
from .worker import state as ws
from .wire import messages as m
from .worker.state import WorkerState, WorkTask, from_assignment

HOST = "sim"          # the address of every simulated fetch server: peers are found by their id
QUIET_TICKS = 4       # ticks with nothing in flight after which the cluster is quiescent
DEFAULT_SIZE = 1_000  # bytes of an output whose size the job does not give


class Job:
    """What the simulation knows of a task beyond what the core sees: how it runs.

    sizes: bytes of each output it makes (the cluster's `size` for the others);
    failures: the reasons its next attempts end with, in order.
    """

    __slots__ = ("event", "duration", "sizes", "failures", "_spec")

    def __init__(self, event: TaskSubmitted, duration: float, sizes: dict[str, int] | None,
                 failures: list[str] | None):
        self.event = event
        self.duration = duration   # seconds on a worker of speed 1
        self.sizes = sizes
        self.failures = failures
        self._spec: m.TaskSpec | None = None

    def spec(self) -> m.TaskSpec:
        """What the manager keeps to send (TaskRecord.spec): everything but where the inputs are."""
        if self._spec is None:
            e = self.event
            self._spec = m.TaskSpec(e.task, "sh", max(1, e.cores), e.memory, e.disk,
                                    tuple((f"out{i}", f.name) for i, f in enumerate(e.outputs)), "true")
        return self._spec


class SimWorker:
    """One worker process: its real WorkerState, its link to the manager, its runs."""

    __slots__ = ("id", "speed", "state", "alive", "connected", "stalled_until", "last_in", "last_out", "runs",
                 "peak_disk", "up_free", "down_free")

    def __init__(self, id: str, state: WorkerState, speed: float):
        self.id = id
        self.speed = speed
        self.state: WorkerState | None = state   # None once the worker is lost: its state is gone
        self.alive = True          # the process runs
        self.connected = True      # the manager has not yet handled its WorkerLost
        self.stalled_until = 0.0   # its messages and transfers wait until then
        self.last_in = 0.0         # arrival of the last message to it (the queue keeps order)
        self.last_out = 0.0        # arrival of the last message from it
        self.runs: dict[int, tuple[object, float]] = {}   # task -> (this run's token, start)
        self.peak_disk = 0         # the most bytes its cache held at once
        self.up_free = 0.0         # with shared links: when its link is free to send, and to receive
        self.down_free = 0.0

    def __repr__(self) -> str:
        return f"<sim worker {self.id}{'' if self.alive else ' lost'}>"


class Cluster:
    """latency: seconds a message takes each way; bandwidth: bytes/s of a transfer;
    tick: seconds between the manager's periodic Ticks (as engine.TICK_SECONDS).

    shared_links: each party (the manager, each worker) sends one transfer at
    a time and receives one at a time, in the order they were asked for, so
    that a thousand workers fetching from the manager wait for its link;
    without it every transfer has the whole bandwidth to itself.
    batch: the manager hands the core everything that arrived within this
    many seconds in one call, as its loop does while busy (0: every instant
    on its own).
    history: keep what settled each task, when, and each run (the tests look);
    without it only counts are kept, and a task the core lets go of (Forget)
    is let go of here too, so that a million tasks fit in memory."""

    def __init__(self, core: Scheduler | None = None, *, latency: float = 0.001, bandwidth: float = 125e6,
                 tick: float = 0.25, size: Callable[[str], int] | None = None, shared_links: bool = False,
                 batch: float = 0.0, history: bool = True):
        self.core = core if core is not None else Scheduler()
        self.size = size or (lambda name: DEFAULT_SIZE)   # bytes of an output, by its cache name
        self.latency = latency
        self.bandwidth = bandwidth
        self.tick = tick
        self.shared_links = shared_links
        self.batch = batch
        self.history = history
        self.settled = {Complete: 0, Fail: 0}   # tasks settled each way
        self.last_settled = 0.0                 # when the last task was settled
        self.manager_up_free = 0.0     # with shared links: when the manager's link is free to send
        self.manager_down_free = 0.0   # ... and to receive
        self.now = 0.0
        self.workers: dict[str, SimWorker] = {}
        self.jobs: dict[int, Job] = {}
        self.served: dict[str, int] = {}        # what the manager's fetch server offers: name -> size
        self.paths: set[str] = set()            # outputs that go home (engine.homes: name -> path)
        self.homes: set[str] = set()            # outputs written home by now
        self.unwritable: set[str] = set()       # home outputs whose path cannot be written
        self.wants: dict[str, str | None] = {}  # wanted file -> None while waited for, then "ok" or why not
        self.outcomes: dict[int, list[Complete | Fail]] = {}   # what settled each task's Future
        self.settled_at: dict[int, float] = {}
        self.successes: dict[int, list[tuple[str, float, float]]] = {}   # task -> (worker, start, end) runs
        self.made_at: dict[str, float] = {}     # file -> when a run first made it
        self.counters = dict.fromkeys(("messages", "handles", "runs", "fetches", "fetches_failed", "rejected",
                                       "given_back", "retracted_too_late", "bytes_manager_to_worker",
                                       "bytes_worker_to_worker", "bytes_worker_to_manager", "retired"), 0)
        self.retired: dict[str, Retired] = {}   # worker -> how its retirement ended
        self.parking: set[str] = set()          # files a last worker left, kept by the manager
        self._queue: list[tuple[float, int, Callable, tuple]] = []
        self._seq = itertools.count()
        self._names = itertools.count(1)
        self._inbox: list[Event] = []
        self._next_tick = tick

    # ------------------------------------------------------------ what the user does

    def submit(self, event: TaskSubmitted, duration: float = 1.0, sizes: dict[str, int] | None = None,
               failures: list[str] | None = None) -> None:
        """Submit a task (handed to the core at the next flush, as the manager batches submissions)."""
        self.jobs[event.task] = Job(event, duration, sizes, list(failures) if failures else None)
        for f in event.inputs:
            if f.source:
                self.served[f.name] = f.size or 0
        for f in event.outputs:
            if f.home:
                self.paths.add(f.name)
        self._inbox.append(event)

    def cancel(self, task: int) -> None:
        self._inbox.append(TaskCancelled(task))

    def want(self, name: str) -> None:
        """The user asks for a file's bytes (engine.want): settled in `wants` as "ok" or the reason it failed."""
        f = self.core.files.get(name)
        if name in self.homes or (name in self.parking and f is not None and f.source):
            self.wants[name] = "ok"   # written home (or kept there when its last worker left): read from there
            return
        self.wants[name] = None
        self._inbox.append(FileWanted(name))

    def release(self, name: str) -> None:
        """The user lets go of a file's handle (its File or Future is gone): it can name it no more."""
        self._inbox.append(FileReleased(name))

    def refuse_home(self, name: str) -> None:
        """From now on, writing this output home fails (a directory at its path, a full disk)."""
        self.unwritable.add(name)

    # ------------------------------------------------------------ workers and their faults

    def add_worker(self, cores: int = 1, speed: float = 1.0, memory: int = 0, disk: int = 0,
                   cached: dict[str, int] | None = None) -> str:
        """Start a worker; it says hello over its link, naming the files already in its cache."""
        wid = f"w{next(self._names)}"
        state = WorkerState(cores, memory, disk)
        state.adopt_cached(cached or {})
        w = self.workers[wid] = SimWorker(wid, state, speed)
        w.peak_disk = state.present_bytes
        self._to_manager(w, WorkerJoined(wid, cores, memory, disk, tuple((cached or {}).items())))
        return wid

    def lose_worker(self, wid: str, noticed_after: float = 0.0, reason: str = "its connection closed") -> None:
        """The worker dies now: its runs, state and messages in flight are gone; the manager notices later."""
        w = self.workers[wid]
        if not w.alive:
            return
        w.alive = False
        w.state = None
        w.runs.clear()
        self._at(self.now + noticed_after, self._disconnect, w, reason)

    def retire(self, wid: str, reason: str = "scaled in") -> None:
        """The worker is asked to leave (engine.retire); once the core says Retired it is sent away."""
        self._inbox.append(WorkerRetiring(wid, reason))

    def stall(self, wid: str, seconds: float) -> None:
        """The worker's link is held up: what it sends or is sent, and what it serves, waits until then."""
        w = self.workers[wid]
        w.stalled_until = max(w.stalled_until, self.now + seconds)

    def lose_file(self, wid: str, name: str) -> bool:
        """A file vanishes from a worker's cache; the worker tells the manager (process.py, _results_lost)."""
        w = self.workers[wid]
        if not w.alive or name not in w.state.present:
            return False
        w.state.gone(name)
        self._to_manager(w, FileLostOn(wid, name))
        return True

    def end_run(self, task: int, reason: str | None = None, message: str = "") -> bool:
        """End the task's run now: succeeded (reason None) or failed with reason. False if it was not running."""
        ended = False
        for w in self.workers.values():
            if w.alive and task in w.runs:
                self._end(w, w.state.tasks[task], reason, message or f"simulated {reason} failure")
                ended = True
        return ended

    def running(self) -> list[tuple[str, int]]:
        """(worker, task) of every run under way."""
        return [(w.id, tid) for w in self.workers.values() if w.alive for tid in w.runs]

    def alive(self) -> list[str]:
        return [w.id for w in self.workers.values() if w.alive]

    # ------------------------------------------------------------ time

    def flush(self) -> None:
        """Hand what the manager has received to the core now, behind a Tick (engine.handle)."""
        if self._inbox:
            self._handle()

    def run(self, until: float | None = None, limit: int = 1_000_000) -> None:
        """Let time pass: deliver, fetch, run and tick, until `until` or, without it, until nothing more happens.

        Nothing more happens when nothing is in flight (no message, transfer or
        run) and a few Ticks change nothing; a blocklisted worker is waited for.
        Raises RuntimeError after `limit` steps (a history that never settles).
        """
        self.flush()
        quiet = 0
        for _ in range(limit):
            if self._queue:
                when = self._queue[0][0]
                if until is not None and min(when, self._next_tick) > until:
                    break
                if self._next_tick <= when:
                    self._tick()
                    continue
                queue, end, next_tick = self._queue, when + self.batch, self._next_tick
                if until is not None:
                    end = min(end, until)
                while queue and queue[0][0] <= end and queue[0][0] < next_tick:
                    self.now, _, action, args = heapq.heappop(queue)
                    action(*args)
                self.flush()
                quiet = 0
                continue
            blocked = [w.blocked_until for w in self.core.workers.values()
                       if w.alive and w.blocked_until is not None]
            if blocked and self.core.pending_count():
                self._next_tick = max(self._next_tick, min(blocked))   # nothing else happens meanwhile
            elif quiet >= QUIET_TICKS:
                break
            if until is not None and self._next_tick > until:
                break
            self._tick()
            quiet += 1
        else:
            raise RuntimeError(f"the simulation did not settle within {limit} steps (virtual time {self.now:.2f} s)")
        if until is not None:
            self.now = max(self.now, until)
            self._next_tick = max(self._next_tick, self.now)

    def quiet(self) -> bool:
        """Is nothing in flight: no message, transfer or run, and nothing unhandled?"""
        return not self._queue and not self._inbox

    def validate(self) -> None:
        """The core's invariants and those of every live worker's state."""
        self.core.validate()
        for w in self.workers.values():
            if w.alive:
                w.state.validate()

    # ------------------------------------------------------------ the manager's side (engine.py)

    def handle(self, events: list[Event]) -> list[Command]:
        """The one call into the core (the scale benchmark keeps what it is handed, to time a replay)."""
        return self.core.handle(*events)

    def _handle(self) -> None:
        events, self._inbox = self._inbox, []
        self.counters["handles"] += 1
        for c in self.handle([Tick(self.now), *events]):
            kind = type(c)
            if kind is Assign:
                self._assign(c)
            elif kind is Complete or kind is Fail:
                self._settle(c)
            elif kind is Delete or kind is Retract:
                w = self.workers[c.worker]
                if w.connected:
                    self._to_worker(w, ("delete", c.names) if kind is Delete else ("retract", c.tasks))
            elif kind is Replicate:
                w = self.workers[c.worker]
                if w.connected:
                    self._to_worker(w, ("pull", tuple((name, self._wire_source(peer)) for name, peer in c.files)))
            elif kind is Retired:
                self.counters["retired"] += 1
                self.retired[c.worker] = c
                w = self.workers[c.worker]
                if w.connected:
                    self._to_worker(w, ("shutdown", None))
            elif kind is Park:   # the manager keeps it and serves it from then on
                self.parking.add(c.name)
                self._bring_home(c.name, c.worker)
            elif kind is Fetch:
                self._bring_home(c.name, c.worker)
            elif kind is FileFailed:
                self._wanted(c.name, c.message)
            elif kind is Forget and not self.history:   # nothing can run it again
                for tid in c.tasks:
                    del self.jobs[tid]

    def _tick(self) -> None:
        self.now = self._next_tick
        self._next_tick += self.tick
        self._handle()

    def _settle(self, c: Complete | Fail) -> None:
        self.settled[type(c)] += 1
        self.last_settled = self.now
        if self.history:
            self.outcomes.setdefault(c.task, []).append(c)
            self.settled_at.setdefault(c.task, self.now)

    def _assign(self, c: Assign) -> None:
        """engine._send_assign: one message of specs, each input with the source the core named."""
        w = self.workers[c.worker]
        if not w.connected:
            raise AssertionError(f"the core assigned tasks to worker {w.id} after it was lost")
        if self.core.workers[w.id].retiring:
            raise AssertionError(f"the core assigned tasks to worker {w.id}, which is retiring")
        tasks = []
        for a in c.tasks:
            job = self.jobs[a.task]
            sources = dict(a.sources)
            inputs = tuple(m.Input(f"in{i}", f.name, self._wire_source(sources.get(f.name)))
                           for i, f in enumerate(job.event.inputs))
            held = a.resources
            tasks.append(m.AssignedTask(job.spec(), inputs, None if held is None else m.Held(*held)))
        self._to_worker(w, ("assign", tasks))

    def _wire_source(self, source: str | None) -> Any:
        if source is None or source == MANAGER:
            return source
        peer = self.workers.get(source)
        if peer is None or not peer.connected:
            raise AssertionError(f"the core named worker {source} as a source after it was lost")
        return m.Peer(peer.id, HOST, 0)

    def _bring_home(self, name: str, wid: str) -> None:
        """engine._bring_home: fetch an output (or a wanted file) from the worker's fetch server."""
        w = self.workers[wid]
        if not w.connected:
            return
        size = w.state.present.get(name, 0) if w.alive else 0
        self._at(self._transfer(w, None, max(self.now, w.stalled_until), size), self._brought_home, name, w)

    def _brought_home(self, name: str, w: SimWorker) -> None:
        if not w.connected:
            return   # the core has planned the file again already
        if not w.alive or name not in w.state.present:
            self._inbox.append(FileLostOn(w.id, name))
            return
        size = w.state.present[name]
        self.counters["bytes_worker_to_manager"] += size
        if name in self.parking and name not in self.paths:
            self.served[name] = size
            self._inbox.append(FileHome(name))
        elif name in self.paths:
            if name in self.unwritable:
                self._inbox.append(FileHomeFailed(name, f"could not write {name} home"))
                self._wanted(name, f"could not write {name} home")
                return
            self.homes.add(name)
            self.served[name] = size
            self._inbox.append(FileHome(name))
        self._wanted(name, None)

    def _wanted(self, name: str, error: str | None) -> None:
        if name in self.wants and self.wants[name] is None:
            self.wants[name] = error or "ok"

    def _disconnect(self, w: SimWorker, reason: str) -> None:
        w.connected = False
        self._inbox.append(WorkerLost(w.id, reason))

    # ------------------------------------------------------------ the wire

    def _at(self, when: float, action: Callable, *args) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), action, args))

    def _to_worker(self, w: SimWorker, message: tuple) -> None:
        self.counters["messages"] += 1
        w.last_in = max(max(self.now, w.stalled_until) + self.latency, w.last_in)
        self._at(w.last_in, self._at_worker, w, message)

    def _to_manager(self, w: SimWorker, event: Event) -> None:
        """What the worker sends; engine._worker_message turns each message into this event one to one."""
        self.counters["messages"] += 1
        w.last_out = max(max(self.now, w.stalled_until) + self.latency, w.last_out)
        self._at(w.last_out, self._at_manager, w, event)

    def _at_manager(self, w: SimWorker, event: Event) -> None:
        if w.alive and w.connected:
            self._inbox.append(event)

    # ------------------------------------------------------------ the worker's side (process.py)

    def _at_worker(self, w: SimWorker, message: tuple) -> None:
        if not w.alive:
            return
        kind, body = message
        if kind == "assign":
            self._do(w, w.state.assign([from_assignment(a) for a in body]))
        elif kind == "delete":
            self._do(w, w.state.delete(list(body)))
        elif kind == "pull":
            self._do(w, w.state.pull(list(body)))
        elif kind == "shutdown":   # it leaves at once: its runs end, its link closes
            self.lose_worker(w.id, reason="the manager sent it away")
        elif kind == "retract":
            returned, started = w.state.retract(list(body))
            self.counters["given_back"] += len(returned)
            self.counters["retracted_too_late"] += len(started)
            self._to_manager(w, Retracted(w.id, tuple(returned), tuple(started)))

    def _do(self, w: SimWorker, instructions: list) -> None:
        for i in instructions:
            kind = type(i)
            if kind is ws.Start:
                self._start(w, i.task)
            elif kind is ws.Fetch:
                self._fetch(w, i.name, i.source)
            elif kind is ws.Unfetched:
                self._to_manager(w, FileLostOn(w.id, i.name))
            elif kind is ws.Reject:
                self.counters["rejected"] += 1
                peer = i.source.id if type(i.source) is m.Peer else None
                self._to_manager(w, TaskFailedOn(w.id, i.task, i.reason, i.message, i.file, peer))
            # ws.Remove: the cache file goes; WorkerState has forgotten it already

    def _fetch(self, w: SimWorker, name: str, source: Any) -> None:
        """A transfer from the manager or a peer; the peer must hold the file and live until it ends."""
        if source == MANAGER:
            origin, size = None, self.served.get(name)
        else:
            origin = self.workers.get(source.id)
            size = origin.state.present.get(name) if origin is not None and origin.alive else None
        start = max(self.now, origin.stalled_until) if origin is not None else self.now
        self.counters["fetches"] += 1
        self._at(self._transfer(origin, w, start, size or 0), self._fetched, w, name, origin, size)

    def _transfer(self, sender: SimWorker | None, receiver: SimWorker | None, start: float, size: int) -> float:
        """When a transfer asked for at `start` arrives (None: the manager). With shared links it waits
        for the sender's link to be free to send and the receiver's to receive, and holds both."""
        seconds = size / self.bandwidth
        if self.shared_links:
            up = sender.up_free if sender is not None else self.manager_up_free
            down = receiver.down_free if receiver is not None else self.manager_down_free
            start = max(start, up, down)
            free = start + seconds
            if sender is None:
                self.manager_up_free = free
            else:
                sender.up_free = free
            if receiver is None:
                self.manager_down_free = free
            else:
                receiver.down_free = free
        return start + self.latency + seconds

    def _fetched(self, w: SimWorker, name: str, origin: SimWorker | None, size: int | None) -> None:
        if not w.alive:
            return
        if size is None or (origin is not None and not origin.alive):
            self.counters["fetches_failed"] += 1
            where = "the manager" if origin is None else f"worker {origin.id}"
            self._do(w, w.state.fetch_failed(name, f"could not fetch {name} from {where}"))
            return
        self.counters["bytes_manager_to_worker" if origin is None else "bytes_worker_to_worker"] += size
        self._to_manager(w, FilesCached(w.id, ((name, size),)))
        self._do(w, w.state.file_present(name, size))
        if w.state.present_bytes > w.peak_disk:
            w.peak_disk = w.state.present_bytes

    def _start(self, w: SimWorker, t: WorkTask) -> None:
        """Start a run; without an input in the cache the sandbox cannot be made (the reason is "worker")."""
        token = object()
        w.runs[t.id] = (token, self.now)
        self.counters["runs"] += 1
        missing = [name for _, name in t.inputs if name not in w.state.present]
        if missing:
            self._end(w, t, "worker", f"could not prepare the sandbox: {missing[0]} is not in the cache")
            return
        job = self.jobs[t.id]
        reason = job.failures.pop(0) if job.failures else None
        self._at(self.now + job.duration / w.speed, self._run_ended, w, t, token, reason)

    def _run_ended(self, w: SimWorker, t: WorkTask, token: object, reason: str | None) -> None:
        run = w.runs.get(t.id)
        if w.alive and run is not None and run[0] is token:
            self._end(w, t, reason, f"simulated {reason} failure")

    def _end(self, w: SimWorker, t: WorkTask, reason: str | None, message: str) -> None:
        """process._finish and _ended: outputs into the cache, the next member started, then the report."""
        _, started = w.runs.pop(t.id)
        if reason is not None:
            self._do(w, w.state.task_ended(t.id))
            self._to_manager(w, TaskFailedOn(w.id, t.id, reason, message, started=started, finished=self.now))
            return
        job = self.jobs[t.id]
        sizes = job.sizes or {}
        made = {name: sizes[name] if name in sizes else self.size(name) for _, name in t.outputs}
        if self.history:
            for name in made:
                self.made_at.setdefault(name, self.now)
            self.successes.setdefault(t.id, []).append((w.id, started, self.now))
        self._do(w, w.state.task_ended(t.id, made or None))
        if w.state.present_bytes > w.peak_disk:
            w.peak_disk = w.state.present_bytes
        self._to_manager(w, TaskSucceeded(w.id, t.id, tuple(made.items()), started, self.now))
