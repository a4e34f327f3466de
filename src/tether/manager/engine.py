"""The manager's asyncio shell around the scheduler core.

Runs in the manager's loop thread. It accepts connections (workers in the
"control" role, fetches in the "fetch" role, `tether status` in the "status"
role, answered by manager/status.py), turns worker messages into core
events, and carries out the core's commands: assignments and deletions go
out as messages, fetches bring files home, completions and failures resolve
the user's Futures.
"""
from __future__ import annotations

import asyncio
import logging
import statistics
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core import (MAKE, MANAGER, Assign, Blocked, Complete, Delete, Fail, Fetch, FileFailed, FileHome, FileHomeFailed,
                    FileState, FileLostOn, Forget, FilesCached, FileWanted, HostBlocked, HostUnblocked, Park, Replicate,
                    Retired, Retract, Retracted, Running, Scheduler, Stop, TagCancelled, TaskCancelled, TaskFailedOn,
                    TaskSucceeded, Tick, WorkerJoined, WorkerLost, WorkerRetiring)
from ..memo.recorder import Pending, Recorder
from ..task import InternalError
from ..transfer import DestinationError, FileMissing, TransferClient, serve_fetches
from ..wire import messages as m
from ..wire.errors import ProtocolError
from ..wire.handshake import Gate
from ..wire.stream import MessageStream
from ..wire.tls import TlsConfig
from . import results
from .txlog import TxLog
from .status import serve_status

log = logging.getLogger("tether.manager")

TICK_SECONDS = 0.25
DEFAULT_HEARTBEAT = 30.0   # seconds of silence after which a worker is declared lost
RETIRE_SECONDS = 60.0      # a worker that asked to leave is sent away by then, its temps copied or not
RECORD_IN_MEMORY = 1 << 20   # an output for the memo record up to this size is brought into memory, not a file
HANDLE_CHUNK = 5_000         # events given to the core at once; the loop answers heartbeats between chunks


class TaskRecord:
    """What the shell keeps of a submitted task (the core keeps the graph).

    Once the task's Future is settled the record lets go of it, so that a
    Future the user drops can be collected (an Executor's results live as
    long as their Futures). deliver, when set, settles the Future instead of
    the engine (the Executor does it from a thread of its own).
    """

    __slots__ = ("id", "future", "is_python", "spec", "inputs", "worker", "report", "deliver", "label", "held", "memo",
                 "__weakref__")

    def __init__(self, id: int, future: Future | None, is_python: bool, spec: m.TaskSpec,
                 inputs: list[tuple[str | None, str]], deliver: Callable | None = None, label: str | None = None):
        self.id = id
        self.future = future
        self.is_python = is_python
        self.spec = spec                # what never changes about the task, sent with each assignment
        self.inputs = inputs            # (sandbox name or None, cache name)
        self.worker: str | None = None
        self.report: m.Report | None = None   # the last attempt's, once it has ended
        self.deliver = deliver
        self.label = label              # what the transaction log calls it: a function's name
        self.held = None                # what its last attempt held on its worker (core.Resources)
        self.memo: Pending | None = None   # memoized, and run: its result is recorded if it succeeds


@dataclass
class Retirement:
    """A worker asked to leave, as the caller of Engine.retire sees it end."""

    worker: str
    reason: str
    copied: int = 0          # temps copied to workers that stay
    lost: int = 0            # temps that may be needed and could not be copied (made again if they are)
    kept_here: int = 0       # temps brought to this side instead (no worker stayed), served from here
    forced: bool = False     # sent away at the deadline, before its temps were safe
    left: asyncio.Future | None = None   # done once its link has closed


@dataclass
class WorkerLink:
    id: str
    stream: MessageStream
    host: str
    port: int
    pid: int
    cores: int
    heartbeat: float                 # the worker's own: it leaves after this long without word from here
    last_heard: float                # loop time of the last message from the worker
    hostname: str = ""               # what its host calls itself
    cache_peak: int = 0
    joined: float = field(default_factory=time.time)
    lost_reason: str | None = None   # why this side gave up on it, when it did
    retired: bool = False            # sent away once retired: its leaving is no loss


class Engine:
    """heartbeat: seconds without a message from a worker after which it is
    declared lost (its work and its only copies of temps are recovered
    elsewhere). Both sides send a ping a quarter of the shorter heartbeat
    apart, so a healthy link is never silent that long."""

    def __init__(self, scheduler: Scheduler, secret: bytes,
                 on_worker_lost: Callable[[str, int, bool], None] | None = None,
                 heartbeat: float = DEFAULT_HEARTBEAT, tls: TlsConfig | None = None):
        self.core = scheduler
        self.secret = secret
        self.tls = tls if tls is not None else TlsConfig(secret)
        self.gate = Gate(secret, self.tls, "the manager")
        self.on_worker_lost = on_worker_lost
        self.heartbeat = heartbeat
        self.preload: tuple[str, ...] = ()   # modules every worker's interpreters import as they start
        self.txlog: TxLog | None = None      # the run's transaction log, when it keeps one
        self._groups_seen: dict[int, str] = {}   # group -> the worker it was last logged on
        self.broken: InternalError | None = None   # set when the core failed: nothing runs any more
        self._home_errors: dict[int, BaseException] = {}   # task -> why its output could not be written home
        self._last_tick = 0.0
        self.records: dict[int, TaskRecord] = {}
        self.served: dict[str, Path | bytes] = {}       # what this side's fetch server offers
        self.recipes: dict[str, m.Make] = {}            # how workers make the files each makes for itself
        self.homes: dict[str, Path] = {}                 # output cache name -> path to write
        self.links: dict[str, WorkerLink] = {}
        self.cache_peaks: dict[str, int] = {}
        self.waiters: dict[str, list[asyncio.Future]] = {}
        self.client = TransferClient(secret, self.tls)
        self.bytes_manager_to_worker = 0   # files and buffers
        self.bytes_arguments_to_worker = 0  # Python calls' pickled arguments, sent inside their tasks
        self.bytes_worker_to_manager = 0
        self.bytes_worker_to_worker = 0
        self.worker_count_changed = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._jobs: set[asyncio.Task] = set()
        self._connections: set[asyncio.Task] = set()   # one task per accepted connection
        self._ticker: asyncio.Task | None = None
        self.closing = False
        self.retiring: dict[str, Retirement] = {}   # workers asked to leave, until their links close
        self.park_dir: Path | None = None   # where files a last worker leaves are kept (the core's park=True)
        self.parked: set[str] = set()       # ... the names kept there now
        self.retired = {"workers": 0, "temps_copied": 0, "temps_lost": 0, "temps_parked": 0, "forced": 0}
        self.blocked: dict[str, str] = {}   # host as the program named it -> why it takes no new work
        self.run = ""                      # the run's id, as the Manager names it (for `tether status`)
        self.memo: Recorder | None = None  # records what memoized tasks give, when the manager memoizes
        self.started = time.time()

    # ------------------------------------------------------------ start and stop

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._on_connection, host=host, port=port,
                                                  limit=1 << 20, backlog=1024)
        self._ticker = asyncio.ensure_future(self._tick())
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self, why: str = "the manager was closed") -> None:
        """Send the workers away and end every connection; unfinished tasks fail, saying why."""
        self.closing = True
        if self._ticker is not None:
            self._ticker.cancel()
        for link in list(self.links.values()):
            if self.txlog is not None:
                self.txlog.add("WORKER", link.id, "LEFT", "the manager closed and sent it away")
            link.stream.send(m.Shutdown())
            await link.stream.drain()
            link.stream.close()
        for job in list(self._jobs):
            job.cancel()
        if self._server is not None:
            self._server.close()
        self.client.close()
        for rec in self.records.values():
            if rec.future is not None and not rec.future.done():
                exc = results.TaskFailed(f"task {rec.id} did not finish: {why}", task_id=rec.id)
                _fail_future(rec.future, exc)
                rec.future = None
        for waiting in self.waiters.values():
            for w in waiting:
                if not w.done():
                    w.set_exception(RuntimeError("the manager was closed"))
        for r in self.retiring.values():
            if not r.left.done():
                r.left.set_result(r)
        # let every connection and job end while the loop still runs: a task left
        # pending is destroyed with the loop, and its clean-up runs at some garbage
        # collection later, in whatever code happens to be running then
        ending = [t for t in (*self._connections, *self._jobs) if not t.done()]
        for t in ending:
            t.cancel()
        if ending:
            await asyncio.wait(ending, timeout=5)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_tick = loop.time()
        last_ping = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            if now - self._last_tick > max(1.0, self.heartbeat / 4):
                # this loop itself was held up (a huge batch, a paused process): the workers'
                # silence meanwhile says nothing about them, so they get a fresh start
                log.warning("the manager's loop was held up for %.1f s; not counting it against workers",
                            now - self._last_tick)
                for link in self.links.values():
                    link.last_heard = max(link.last_heard, now)
            self._last_tick = now
            self._check_links(now)
            if now - last_ping >= self._ping_interval():
                last_ping = now
                for link in self.links.values():
                    link.stream.send(m.Ping())
            self.handle()

    def _ping_interval(self) -> float:
        beats = [self.heartbeat, *(link.heartbeat for link in self.links.values())]
        return max(0.05, min(beats) / 4)

    def _check_links(self, now: float) -> None:
        """Declare lost every worker silent for longer than the heartbeat."""
        for link in list(self.links.values()):
            silent = now - link.last_heard
            if silent > self.heartbeat and link.lost_reason is None:
                link.lost_reason = f"it sent nothing for {silent:.1f} s (heartbeat {self.heartbeat:g} s)"
                log.warning("worker %s is lost: %s", link.id, link.lost_reason)
                link.stream.abort()

    # ------------------------------------------------------------ core

    def handle(self, *events) -> None:
        """Feed events to the core, each batch behind a Tick so that the core's clock is current.

        An exception in the core is a bug in tether, never a fault of a worker:
        it is logged, every Future fails with InternalError naming it, and the
        manager runs nothing more (see _break).
        """
        if self.broken is not None:
            return
        try:
            commands = self.core.handle(Tick(time.time()), *events)
        except Exception as e:
            self._break(e, events)
            return
        for c in commands:
            kind = type(c)
            if kind is Assign:
                self._send_assign(c)
            elif kind is Running:
                self._running(c.task)
            elif kind is Complete:
                self._complete(c)
            elif kind is Fail:
                self._fail(c)
            elif kind is Forget:   # nothing will send these again, nor ask about them
                records, seen = self.records, self._groups_seen
                for tid in c.tasks:
                    rec = records.pop(tid, None)
                    if self.memo is not None and rec is not None:
                        self._forget_memo(rec)
                for gid in c.groups:
                    seen.pop(gid, None)
                if self.parked:
                    self._unpark()
            elif kind is Delete:
                link = self.links.get(c.worker)
                if link is not None:
                    link.stream.send(m.Delete(c.names))
                    if self.txlog is not None:
                        for name in c.names:
                            self.txlog.add("CACHE", c.worker, "EVICT", name)
            elif kind is Retract:
                link = self.links.get(c.worker)
                if link is not None:
                    link.stream.send(m.Retract(c.tasks))
            elif kind is Stop:
                link = self.links.get(c.worker)
                if link is not None:
                    link.stream.send(m.Stop(c.tasks))
            elif kind is Replicate:
                link = self.links.get(c.worker)
                if link is not None:
                    link.stream.send(m.Pull(tuple((name, self._source(peer)) for name, peer in c.files)))
            elif kind is Retired:
                self._send_away(c)
            elif kind is Park:
                self._spawn(self._park(c.name, c.worker))
            elif kind is Fetch:
                if self.memo is not None and c.name in self.memo.brought:
                    self.memo.start(self._bring_to_record(c.name, c.worker))
                else:
                    self._spawn(self._bring_home(c.name, c.worker))
            elif kind is FileFailed:
                self._resolve_waiters(c.name, error=RuntimeError(f"{c.name} cannot be fetched: {c.message}"))
            elif kind is Blocked:
                log.warning("worker %s is given no new work for %.0f s: too many system failures in a row there",
                            c.worker, c.until - time.time())
                if self.txlog is not None:
                    self.txlog.add("WORKER", c.worker, "BLOCKLISTED", c.until)

    # ------------------------------------------------------------ cancelling, blocking hosts

    def cancel_tag(self, tag: str) -> int:
        """Cancel every unfinished task carrying the tag; returns how many were."""
        before = self.core.counters.cancelled
        self.handle(TagCancelled(tag))
        return self.core.counters.cancelled - before

    def block_host(self, host: str, reason: str) -> list[str]:
        """Give no new work to the workers on a host (see on_host), now and when they join; returns
        the connected ones."""
        self.blocked[host] = reason
        return self._tell(host, True, reason)

    def unblock_host(self, host: str) -> list[str]:
        if self.blocked.pop(host, None) is None:
            return []
        return self._tell(host, False)

    def _tell(self, host: str, blocked: bool, reason: str = "") -> list[str]:
        """The core, and each connected worker on the host, learn that it is (un)blocked."""
        on = sorted((link for link in self.links.values() if on_host(link, host)), key=lambda link: link.id)
        keys = sorted({host_key(link) for link in on})
        if blocked:
            self.handle(*(HostBlocked(k) for k in keys))
        else:   # still blocked under another of its names: stays so
            self.handle(*(HostUnblocked(k) for k in keys if not any(
                on_host(link, other) for other in self.blocked for link in on if host_key(link) == k)))
        for link in on:
            link.stream.send(m.HostBlocked(reason) if blocked else m.HostUnblocked())
            if self.txlog is not None:
                self.txlog.add("WORKER", link.id, "BLOCKED" if blocked else "UNBLOCKED", reason)
        return [link.id for link in on]

    def _blocked_reason(self, link: WorkerLink) -> str | None:
        """Why a worker joining is given no work, if its host is blocked; the core learns it first."""
        for host, reason in self.blocked.items():
            if on_host(link, host):
                self.handle(HostBlocked(host_key(link)))
                return reason
        return None

    # ------------------------------------------------------------ retirement

    def retire(self, workers: list[str], reason: str, timeout: float) -> list[Retirement]:
        """Ask the core to retire these workers (connected ones; others are left out): each is sent
        away once the temps only it holds are copied to workers that stay, or at the deadline."""
        events = [e for e in (self._begin_retiring(wid, reason, timeout) for wid in workers) if e is not None]
        if events:
            self.handle(*events)
        return [self.retiring[wid] for wid in workers if wid in self.retiring]

    def _begin_retiring(self, wid: str, reason: str, timeout: float) -> WorkerRetiring | None:
        if wid not in self.links or wid in self.retiring:
            return None
        loop = asyncio.get_running_loop()
        self.retiring[wid] = Retirement(wid, reason, left=loop.create_future())
        log.info("retiring worker %s: %s", wid, reason)
        if self.txlog is not None:
            self.txlog.add("WORKER", wid, "RETIRING", reason)
        loop.call_later(timeout, self._deadline, wid, timeout)
        return WorkerRetiring(wid, reason)

    def _deadline(self, wid: str, timeout: float) -> None:
        r = self.retiring.get(wid)
        link = self.links.get(wid)
        if r is None or link is None or r.left.done() or link.retired:
            return
        r.forced = True
        log.warning("worker %s did not finish retiring within %g s: sent away now; the temps only it holds "
                    "are made again if they are needed", wid, timeout)
        self._send_away(Retired(wid))

    def _send_away(self, c: Retired) -> None:
        link = self.links.get(c.worker)
        r = self.retiring.get(c.worker)
        if r is not None and not r.forced:
            r.copied, r.lost, r.kept_here = c.copied, c.lost, c.parked
        if link is None or link.retired:
            return
        link.retired = True
        self.retired["workers"] += 1
        self.retired["temps_copied"] += c.copied
        self.retired["temps_lost"] += c.lost
        self.retired["temps_parked"] += c.parked
        self.retired["forced"] += bool(r is not None and r.forced)
        log.info("worker %s retired: %d temps copied to other workers, %d kept here, %d not", c.worker, c.copied,
                 c.parked, c.lost)
        if self.txlog is not None:
            self.txlog.add("WORKER", c.worker, "RETIRED", c.copied, c.lost, c.parked)
        link.stream.send(m.Shutdown())

    def _break(self, error: Exception, events: tuple) -> None:
        kinds = sorted({type(e).__name__ for e in events})
        log.critical("tether's scheduler core failed while handling %s; this is a bug in tether, and the "
                     "manager stops here: every unfinished task fails", ", ".join(kinds) or "a tick",
                     exc_info=error)
        self.broken = InternalError(f"tether's scheduler core failed ({type(error).__name__}: {error}) while "
                                    f"handling {', '.join(kinds) or 'a tick'}; this is a bug in tether")
        self.broken.__cause__ = error
        for rec in self.records.values():
            if rec.future is None or rec.future.done():
                continue
            if rec.deliver is not None:
                rec.deliver(rec, Fail(rec.id, "internal", str(self.broken), 0))
            else:
                _fail_future(rec.future, self.broken)
            rec.future = None
        for waiting in self.waiters.values():
            for w in waiting:
                if not w.done():
                    w.set_exception(self.broken)
        self.waiters.clear()

    def add_tasks(self, records: list[TaskRecord], events: list) -> None:
        for r in records:
            self.records[r.id] = r
            if r.memo is not None:
                self.memo.expect(r.memo, self.homes)
        if self.txlog is not None:
            self._log_submitted(records)
        if self.broken is not None:
            for r in records:
                if r.future is not None:
                    _fail_future(r.future, self.broken)
            return
        if len(events) <= HANDLE_CHUNK:
            self.handle(*events)
            return
        # a huge batch goes in parts, so that heartbeats and worker messages are served between them
        self.handle(*events[:HANDLE_CHUNK])
        asyncio.get_running_loop().call_soon(self._add_rest, events[HANDLE_CHUNK:])

    def _add_rest(self, events: list) -> None:
        self.handle(*events[:HANDLE_CHUNK])
        if len(events) > HANDLE_CHUNK:
            asyncio.get_running_loop().call_soon(self._add_rest, events[HANDLE_CHUNK:])

    def _send_assign(self, c: Assign) -> None:
        link = self.links[c.worker]
        tasks = []
        source = self._source
        for a in c.tasks:
            rec = self.records[a.task]
            rec.worker = c.worker
            rec.report = None
            rec.held = held = a.resources
            sources = dict(a.sources)
            inputs = tuple(m.Input(sandbox, name, source(sources.get(name), name)) for sandbox, name in rec.inputs)
            args = rec.spec.args
            if args is not None:
                self.bytes_arguments_to_worker += len(args)
            tasks.append(m.AssignedTask(rec.spec, inputs, None if held is None else m.Held(*held)))
        link.stream.send(m.Assign(tuple(tasks)))
        if self.txlog is not None:
            self._log_assigned(c.worker, c.tasks)

    def _log_submitted(self, records: list[TaskRecord]) -> None:
        add = self.txlog.add
        for r in records:
            s = r.spec
            what = r.label if r.label is not None else (s.command or "")[:200]
            add("TASK", r.id, "SUBMITTED", s.kind, s.cores, s.memory, s.disk, what)

    def _log_assigned(self, worker: str, tasks: tuple) -> None:
        add = self.txlog.add
        nodes = self.core.tasks
        for a in tasks:
            node = nodes.get(a.task)
            g = node.group if node is not None else None
            if g is not None and self._groups_seen.get(g.id) != worker:
                moved = g.id in self._groups_seen
                self._groups_seen[g.id] = worker
                add("GROUP", g.id, "MOVED" if moved else "FORMED", worker, ",".join(str(t.id) for t in g.members))
            add("TASK", a.task, "ASSIGNED", worker, node.attempts if node is not None else None,
                g.id if g is not None else None)

    def _source(self, source: str | None, name: str | None = None) -> m.Source:
        if source is None or source == MANAGER:
            return source
        if source == MAKE:
            return self.recipes[name]
        peer = self.links[source]
        return m.Peer(peer.id, peer.host, peer.port)

    def _running(self, task_id: int) -> None:
        """From now on the task's Future can no longer be cancelled."""
        rec = self.records.get(task_id)
        future = rec.future if rec is not None else None
        if future is None or future.done() or future.running():
            return
        if not future.set_running_or_notify_cancel():   # the user cancelled it just before
            asyncio.get_running_loop().call_soon(self.handle, TaskCancelled(task_id))

    def _settling(self, outcome: Complete | Fail) -> tuple[TaskRecord, Future] | None:
        """The record and Future the outcome settles, once; a record with deliver settles itself."""
        rec = self.records.get(outcome.task)
        if rec is None or rec.future is None:
            return None
        if rec.deliver is not None:
            rec.deliver(rec, outcome)
            rec.future = None
            return None
        future, rec.future = rec.future, None
        return None if future.done() else (rec, future)

    def _complete(self, c: Complete) -> None:
        if self.txlog is not None:
            self.txlog.add("TASK", c.task, "DONE", c.attempts, c.hop_latency)
        rec = self.records.get(c.task)
        if rec is not None and rec.memo is not None:
            self.memo.completed(rec.memo, rec.report or m.Report())
            rec.memo = None
        settling = self._settling(c)
        if settling is None:
            return
        rec, future = settling
        report = rec.report or m.Report()
        if rec.is_python:
            future._info = (rec.id, report, rec.worker or "", c.hop_latency, c.attempts, rec.held)
            try:
                value = results.python_value(report)
            except Exception as e:  # the value could not be unpickled here
                future.set_exception(e)
                return
            future.set_result(value)
        else:
            future._info = info = results.task_result(rec.id, report, rec.worker or "", c.hop_latency,
                                                      c.attempts, rec.held)
            future.set_result(info)

    def _fail(self, c: Fail) -> None:
        if self.txlog is not None:
            if c.reason == "cancelled":
                self.txlog.add("TASK", c.task, "CANCELLED")
            else:
                self.txlog.add("TASK", c.task, "FAILED", c.reason, c.attempts, c.message[:500])
        home_error = self._home_errors.pop(c.task, None)
        rec = self.records.get(c.task)
        if rec is not None and rec.memo is not None:   # a failure is never recorded
            self.memo.drop(rec.memo)
            rec.memo = None
        settling = self._settling(c)
        if settling is not None:
            rec, future = settling
            if home_error is not None:
                _fail_future(future, home_error)
                return
            if c.reason == "cancelled" and not future.running() and Future.cancel(future):
                future.set_running_or_notify_cancel()   # cancelled before it ran (by tag): as Future.cancel does
                return
            _fail_future(future, results.failure(rec.id, rec.is_python, c.reason, c.message, rec.report,
                                                 rec.worker, c.cause))

    # ------------------------------------------------------------ connections

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        self._connections.add(me)
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            writer.close()
            if not self.closing:
                raise
            # stop() ends the connection: it ends normally, the server has nothing to report
        finally:
            self._connections.discard(me)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        role = await self.gate.accept(reader, writer)
        if role is None:
            return
        if role == "fetch":
            await serve_fetches(reader, writer, self.served.get, self._sent)
        elif role == "control":
            await self._serve_worker(MessageStream(reader, writer))
        elif role == "status":
            await serve_status(reader, writer, self)
        else:
            writer.close()

    def _sent(self, name: str, size: int) -> None:
        self.bytes_manager_to_worker += size

    async def _serve_worker(self, stream: MessageStream) -> None:
        link: WorkerLink | None = None
        loop = asyncio.get_running_loop()
        reason = "its connection closed"
        try:
            async for batch in stream.batches():
                events = []
                for msg in batch:
                    if link is None:
                        if type(msg) is not m.Hello:
                            raise ProtocolError(f"expected Hello, got {type(msg).__name__}")
                        link = self._hello(stream, msg)
                        if self.txlog is not None:
                            self.txlog.add("WORKER", link.id, "JOINED", link.host, link.cores, msg.memory, msg.disk)
                        why = self._blocked_reason(link) if self.blocked else None
                        if why is not None:
                            link.stream.send(m.HostBlocked(why))
                        events.append(WorkerJoined(link.id, link.cores, msg.memory, msg.disk, msg.cached, msg.gpus,
                                                   host_key(link)))
                    else:
                        ev = self._worker_message(link, msg)
                        if type(ev) is list:
                            events.extend(ev)
                        elif ev is not None:
                            events.append(ev)
                if link is not None:
                    link.last_heard = loop.time()
                if events and not self.closing:
                    self.handle(*events)
        except (ConnectionError, OSError, ProtocolError) as e:
            reason = f"its connection failed: {e}"
            if not self.closing and (link is None or link.lost_reason is None):
                log.warning("worker %s: connection failed: %s", link.id if link else "(before hello)", e)
        finally:
            stream.close()
            if link is not None:
                self.links.pop(link.id, None)
                self.worker_count_changed.set()
                if not self.closing:
                    reason = link.lost_reason or ("it was retired" if link.retired else reason)
                    log.info("worker %s left: %s", link.id, reason)
                    if self.txlog is not None:
                        self.txlog.add("WORKER", link.id, "LEFT", reason)
                    self.handle(WorkerLost(link.id, reason))
                    if self.on_worker_lost is not None and not link.retired:
                        self.on_worker_lost(link.id, link.pid, link.lost_reason is not None)
                r = self.retiring.pop(link.id, None)
                if r is not None and not r.left.done():
                    r.left.set_result(r)

    def _hello(self, stream: MessageStream, hello: m.Hello) -> WorkerLink:
        wid = base = hello.name
        n = 1
        while wid in self.links or wid in self.core.workers:
            n += 1
            wid = f"{base}#{n}"
        beat = max(0.2, hello.heartbeat)
        link = WorkerLink(wid, stream, hello.host, hello.port, hello.pid, max(1, hello.cores), beat,
                          asyncio.get_running_loop().time(), hello.hostname)
        self.links[wid] = link
        stream.send(m.Joined(wid, self.heartbeat, self.preload))
        self.worker_count_changed.set()
        log.info("worker %s joined: %s cores at %s:%s", wid, link.cores, link.host, link.port)
        return link

    def _worker_message(self, link: WorkerLink, msg):
        kind = type(msg)
        if kind is m.Done or kind is m.Failed:
            tid, report = msg.task, msg.report
            rec = self.records.get(tid)
            if rec is not None and rec.worker == link.id:
                rec.report = report
            peak = report.cache[1]
            if peak > link.cache_peak:
                link.cache_peak = peak
                self.cache_peaks[link.id] = peak
            if report.value is not None:
                self.bytes_worker_to_manager += len(report.value)
            if self.txlog is not None:
                self._log_ended(link.id, tid, kind is m.Done, report)
            if kind is m.Done:
                if rec is not None and rec.memo is not None and rec.worker == link.id:
                    self._came_for_record(rec, report)
                used = report.usage
                return TaskSucceeded(link.id, tid, report.outputs, report.started, report.finished,
                                     None if used is None else (used[0], used[2]))
            return TaskFailedOn(link.id, tid, report.reason or "exit", report.message, report.file, report.source,
                                report.started, report.finished)
        if kind is m.Have:
            for name, size, peer in msg.files:
                if peer is not None:
                    self.bytes_worker_to_worker += size
                if self.txlog is not None:
                    if name not in self.recipes:   # (one the worker made itself came from nowhere)
                        self.txlog.add("TRANSFER", name, peer or "manager", link.id, size)
                    self.txlog.add("CACHE", link.id, "INSERT", name, size)
            return FilesCached(link.id, tuple((n, s) for n, s, _ in msg.files))
        if kind is m.Retracted:
            return Retracted(link.id, msg.returned, msg.started)
        if kind is m.Lost:   # results that died with an interpreter, inputs evicted from a full cache
            if self.txlog is not None:
                for name in msg.names:
                    self.txlog.add("CACHE", link.id, "EVICT", name)
            return [FileLostOn(link.id, name) for name in msg.names]
        if kind is m.Ping:
            return None
        if kind is m.Leave:   # idle past its timeout: retired like a worker scaled in
            return self._begin_retiring(link.id, f"it asked to leave: {msg.reason}", RETIRE_SECONDS)
        if kind is m.Probe:   # the worker doubts the link (it was stopped, or heard nothing): answer
            link.stream.send(m.Pong(msg.n))
            return None
        raise ProtocolError(f"worker {link.id} sent {kind.__name__}, which a worker does not send")

    def _log_ended(self, worker: str, task: int, done: bool, report: m.Report) -> None:
        add = self.txlog.add
        if done:
            peak, cpu, disk = report.usage or (None, None, None)
            add("TASK", task, "RAN", worker, report.started, report.finished, peak, cpu, disk, report.exit)
            for name, size in report.outputs:
                add("CACHE", worker, "INSERT", name, size)
        else:
            add("TASK", task, "ATTEMPT-FAILED", worker, report.reason or "exit", report.started, report.finished,
                report.message[:500])

    # ------------------------------------------------------------ files home

    def _spawn(self, coro) -> None:
        job = asyncio.ensure_future(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _fetch_here(self, link: WorkerLink, name: str, dest: Path | None = None) -> int | bytes:
        """A file from a worker's file server, into dest (its size) or memory (its bytes), counted and logged."""
        got = await self.client.fetch(link.host, link.port, name, dest)
        size = got if dest is not None else len(got)
        self.bytes_worker_to_manager += size
        if self.txlog is not None:
            self.txlog.add("TRANSFER", name, link.id, "manager", size)
        return got

    async def _bring_home(self, name: str, worker: str) -> None:
        link = self.links.get(worker)
        if link is None:
            return  # the worker is gone: the core plans the file again
        home = self.homes.get(name)
        try:
            if home is not None:
                await self._fetch_here(link, name, home)
                if self.memo is not None and name in self.memo.awaiting:
                    try:   # before the task's Future settles: the record holds what its program sees
                        await self.memo.keep(name, home, move=False)
                    except OSError as e:
                        log.warning("output %s could not be kept in the memo record: %s", home, e)
                self.served[name] = home
                self.handle(FileHome(name))
                if name in self.waiters:
                    self._resolve_waiters(name, data=home.read_bytes())
            elif name in self.waiters:
                self._resolve_waiters(name, data=await self._fetch_here(link, name))
        except FileMissing:
            self.handle(FileLostOn(worker, name))
        except DestinationError as e:
            # this side cannot write it (a directory at its path, its parent gone, a full disk):
            # running the producer again would not help; its Future fails with the OSError
            log.warning("could not write output %s home: %s", name, e)
            f = self.core.files.get(name)
            if f is not None and f.producer is not None:
                error = e.error
                error.add_note(f"task {f.producer.id}: its output could not be written to {e.dest}")
                self._home_errors[f.producer.id] = error
            self.handle(FileHomeFailed(name, str(e)))
            self._resolve_waiters(name, error=e.error)
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("could not bring %s from worker %s: %s", name, worker, e)
            if worker in self.links:
                self.handle(FileLostOn(worker, name))

    async def _bring_to_record(self, name: str, worker: str) -> None:
        """Bring a memoized task's output (not one going home) into the memo record, and serve it from there."""
        link = self.links.get(worker)
        if link is None:
            self.memo.lost(name)
            return   # gone already: the core counts the file lost with it
        data = self.memo.arrived.pop(name, None)   # with the task's completion
        f = self.core.files.get(name)
        small = data is not None or (f is not None and f.size <= RECORD_IN_MEMORY)   # (no file opened here)
        tmp = None if small else self.memo.store.tmp_path()
        try:
            if data is None:
                data = await self._fetch_here(link, name, tmp)
            if small:
                self.memo.keep_bytes(name, data)
            else:
                self.served[name] = await self.memo.keep(name, tmp, move=True)
        except FileMissing:
            self.memo.lost(name)
            self.handle(FileLostOn(worker, name))
            return
        except (DestinationError, OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("could not bring %s from worker %s into the memo record: %s", name, worker, e)
            self.memo.lost(name)
            self.handle(FileHomeFailed(name, str(e)))   # the core collects it as the temp it is
            return
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        self.handle(FileHome(name))
        if name in self.waiters:
            kept = self.served[name]
            self._resolve_waiters(name, data=kept if isinstance(kept, bytes) else kept.read_bytes())

    def _came_for_record(self, rec: TaskRecord, report: m.Report) -> None:
        """What a memoized task's completion brought of its outputs: they need not be fetched for the record
        (small files, and an Executor call's small value, which is its result as the worker would send it)."""
        arrived = self.memo.arrived
        for name, data in report.contents:
            self.bytes_worker_to_manager += len(data)
            if name in self.memo.brought:
                arrived[name] = data
        spec = rec.spec
        if spec.result is not None and spec.summary is None and report.value is not None:
            arrived[spec.result] = report.value

    def _forget_memo(self, rec: TaskRecord) -> None:
        """A forgotten task's outputs kept in the memo record are served no more."""
        spec = rec.spec
        names = [name for _, name in spec.outputs]
        if spec.result is not None:
            names.append(spec.result)
        root = self.memo.store.root
        for name in names:
            kept = self.served.get(name)
            if name in self.memo.brought or (isinstance(kept, Path) and kept.is_relative_to(root)):
                self.served.pop(name, None)   # served from the record, or from memory until written there
            self.memo.brought.discard(name)
            self.memo.arrived.pop(name, None)

    async def _park(self, name: str, worker: str) -> None:
        """Keep a file the last worker leaves, in the run's work directory, and serve it from there."""
        link = self.links.get(worker)
        if link is None or self.park_dir is None:
            return   # gone already: the core counts the file lost with it
        path = self.park_dir / name
        try:
            self.park_dir.mkdir(parents=True, exist_ok=True)
            await self._fetch_here(link, name, path)
        except (FileMissing, DestinationError, OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("could not keep %s from retiring worker %s: %s", name, worker, e)
            if worker in self.links:
                self.handle(FileLostOn(worker, name))
            return
        self.served[name] = path
        self.parked.add(name)
        self.handle(FileHome(name))

    def _unpark(self) -> None:
        """Remove the kept files the core has let go of (nothing can read them any more)."""
        for name in [n for n in self.parked if n not in self.core.files]:
            self.parked.discard(name)
            path = self.served.pop(name, None)
            if isinstance(path, Path):
                path.unlink(missing_ok=True)

    async def want(self, name: str, label: str | None = None) -> bytes:
        """The bytes of a file that tasks make; waits until it is made. label: how the user knows it.

        A temp already deleted because nothing needed it any more is refused, not made again: its
        producer would run again unasked, at its full cost, and might make other bytes than those
        its readers saw. A temp lost with a worker is being made again anyway: that one is waited for.
        """
        if self.broken is not None:
            raise self.broken
        f = self.core.files.get(name)
        what = label or name
        if f is None or f.producer is None:
            raise ValueError(f"no submitted task makes {what}: submit its producer before fetching it")
        if f.state is FileState.GONE:
            how = "let go of with remove()" if f.released else "not kept, and the last task reading it has ended"
            raise RuntimeError(f"{what} was deleted from the workers ({how}); fetching it now would run task "
                               f"{f.producer.id}, which made it, again. Declare it with declare_temp(keep=True) "
                               "(remove() lets it go), or fetch it before the last task reading it ends")
        if f.state is FileState.HOME:   # written home, or kept here when its last worker left (Park)
            kept = self.homes.get(name) or self.served.get(name)
            if isinstance(kept, Path):
                return kept.read_bytes()
            if isinstance(kept, bytes):   # an output for the memo record, until written there
                return kept
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(name, []).append(waiter)
        self.handle(FileWanted(name))
        return await waiter

    def _resolve_waiters(self, name: str, data: bytes | None = None, error: BaseException | None = None) -> None:
        for w in self.waiters.pop(name, ()):
            if w.done():
                continue
            if error is not None:
                w.set_exception(error)
            else:
                w.set_result(data)

    # ------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        c = self.core.counters
        hops = sorted(c.hops)   # a bounded sample (Counters.add_hop)
        return {
            "tasks_submitted": c.tasks_submitted,
            "tasks_done": c.tasks_done,
            "tasks_failed": c.tasks_failed,
            "attempts_failed": c.attempts_failed,
            "reruns": c.reruns,
            "moves": c.moves,
            "system_failures": c.system_failures,
            "blocklisted": c.blocklisted,
            "tasks_cancelled": c.cancelled,
            "tasks_resized": c.resized,
            "workers": len(self.links),
            "bytes_manager_to_worker": self.bytes_manager_to_worker,
            "bytes_arguments_to_worker": self.bytes_arguments_to_worker,
            "bytes_worker_to_manager": self.bytes_worker_to_manager,
            "bytes_worker_to_worker": self.bytes_worker_to_worker,
            "hops": c.hop_count,
            "hop_latency_median_s": statistics.median(hops) if hops else None,
            "hop_latency_p95_s": hops[min(len(hops) - 1, int(0.95 * len(hops)))] if hops else None,
            "cache_bytes_peak": dict(self.cache_peaks),
            "peak_bytes_per_worker": {w.id: w.peak for w in self.core.workers.values()},
            "peak_made_bytes_per_worker": {w.id: w.peak_made for w in self.core.workers.values()},
            "workers_retired": self.retired["workers"],
            "retired_temps_copied": self.retired["temps_copied"],
            "retired_temps_lost": self.retired["temps_lost"],
            "retired_temps_kept_here": self.retired["temps_parked"],
            "retired_forced": self.retired["forced"],
            "memo_hits": self.memo.hits if self.memo is not None else 0,
            "memo_recorded": self.memo.recorded if self.memo is not None else 0,
        }


def host_key(link: WorkerLink) -> str:
    """What the core calls a worker's host: the name it gives itself, else its address."""
    return link.hostname or link.host


def on_host(link: WorkerLink, host: str) -> bool:
    """Is the worker on `host`: the name its host gives itself (or the first part of it, or host's
    first part), or the address it reaches this side from? No name is looked up: a host has many
    addresses, and several hosts may share a name in DNS that each knows by another."""
    name = link.hostname
    if host == link.host or host == name:
        return True
    return bool(name) and (host.split(".", 1)[0] == name or name.split(".", 1)[0] == host)


def _fail_future(future: Future, exc: BaseException) -> None:
    """Fail a Future that may be pending or running; a cancelled one stays cancelled."""
    if future.done():
        return
    if not future.running() and not future.set_running_or_notify_cancel():
        return
    future.set_exception(exc)
