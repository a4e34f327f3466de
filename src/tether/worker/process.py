"""The worker process: a thin asyncio shell around WorkerState.

It keeps one control connection to the manager, a fetch server for peers
and the manager, the cache, the sandboxes, the shell commands and the warm
interpreters. Frames become events for WorkerState; its instructions become
fetches, process starts and reports. When a task ends, the next task made
ready by its outputs is started before the report goes to the manager.

Liveness: both sides ping a quarter of the shorter heartbeat apart. A
worker that hears nothing from its manager for half its heartbeat, or whose
own loop was held up that long (SIGSTOP, a swapped-out host), may already
have been declared lost and its work given to others: it starts nothing
more until the manager answers a probe. After a whole heartbeat of silence
it stops its tasks and leaves. A task that cannot be started fails alone;
the worker keeps serving.
"""
from __future__ import annotations

import asyncio
import enum
import errno
import itertools
import logging
import os
import shutil
import signal
import socket
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from ..transfer import DestinationError, TransferClient, serve_fetches
from ..wire import messages as m
from ..wire.errors import AuthError
from ..wire.handshake import Gate, connect
from ..wire.stream import MessageStream
from ..wire.tls import TlsConfig
from .cache import Cache
from ..core.model import RunningMean
from .interpreters import InterpreterPool
from .janitor import Janitor
from .limits import Limits
from . import makers
from .reaper import REAPER
from .runner import ShellProcess
from .sandbox import Sandboxes, tail
from .usage import MARKS, sandbox_bytes
from .state import Evict, Fetch, Reject, Remove, Start, Unfetched, WorkerState, WorkTask, from_assignment

log = logging.getLogger("tether.worker")

DEFAULT_HEARTBEAT = 30.0
EXIT_MANAGER_LOST = 4       # exit status when the worker gave up on its manager
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


class Link(enum.Enum):
    """What the worker believes of its link to the manager."""

    LIVE = "live"            # heard from lately: start tasks
    DOUBTFUL = "doubtful"    # silent, or this worker stalled: start nothing until a probe is answered
    LOST = "lost"            # given up: stop everything and leave


def failure_reason(error: BaseException) -> str:
    """The reason to report for an error that kept a task from starting or finishing here."""
    if isinstance(error, DestinationError):
        error = error.error
    if isinstance(error, OSError):
        return "disk-full" if error.errno in DISK_FULL else "worker"
    return "error"   # the task as given cannot run (a NUL in its command, a bad environment)

OWNER_GRACE = 1.0   # seconds a local worker that lost its link waits to see its manager's process end

class Worker:
    def __init__(self, host: str, port: int, secret: bytes, *, cores: int, memory: int, disk: int,
                 work_dir: Path, name: str | None = None, clean: bool = False,
                 connect_timeout: float = 60.0, listen_host: str | None = None,
                 heartbeat: float = DEFAULT_HEARTBEAT, owner_pid: int | None = None,
                 owner_dir: Path | None = None, tls: TlsConfig | None = None, spare_interpreters: int = 1,
                 cache_budget: int | None = None, idle_timeout: float | None = None, gpus: int = 0):
        self.manager_addr = (host, port)
        self.tls = tls if tls is not None else TlsConfig(secret)
        self.heartbeat = heartbeat
        self.manager_heartbeat = heartbeat      # told by the manager when it accepts this worker
        self.owner_pid = owner_pid              # a local worker's manager process
        self.owner_dir = owner_dir              # ... whose run directory goes if that process dies
        self._owner_dead = False
        self.link = Link.LIVE
        self.exit_reason: str | None = None     # why the worker left, when not asked to
        self.last_heard = time.monotonic()
        self.last_tick = time.monotonic()
        self._probes = itertools.count(1)
        self._probe: int | None = None          # the probe awaiting its answer
        self._deferred: list[Start] = []        # starts held while the link is doubtful
        self.secret = secret
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.work_dir = work_dir
        self.clean = clean
        self.connect_timeout = connect_timeout
        self.listen_host = listen_host
        self.janitor = Janitor()
        self.cache = Cache(work_dir / "cache", self.janitor)
        self.sandboxes = Sandboxes(work_dir / "sandbox", self.janitor)
        # the cache may hold this many MB before content-named files go (default: the disk it offers)
        self.state = WorkerState(cores, memory, disk, cache_budget=(cache_budget or disk) << 20, gpus=gpus)
        self.client = TransferClient(secret, self.tls)
        self.gate = Gate(secret, self.tls, "the worker's file server")
        self.scratch = work_dir / "scratch"
        self.pool = InterpreterPool(cores, self._python_replied, self._python_died, self._results_lost,
                                    cwd=self.scratch, spares=spare_interpreters)
        self.python: dict[int, tuple[WorkTask, str]] = {}   # handed to an interpreter
        self.python_time = RunningMean()
        self.shells: dict[int, ShellProcess] = {}
        self.jobs: set[asyncio.Task] = set()
        self.stream: MessageStream | None = None
        self.stopping = asyncio.Event()
        self.idle_timeout = idle_timeout        # ask to be retired after this long with nothing to do
        self.last_busy = time.monotonic()
        self.leave_asked = False

    # ------------------------------------------------------------ life cycle

    async def run(self) -> int:
        """Serve the manager until it says stop (returns 0) or is lost (returns EXIT_MANAGER_LOST)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        owner = self._watch_owner()
        shutil.rmtree(self.scratch, ignore_errors=True)   # left by a worker that was killed
        self.scratch.mkdir(parents=True, exist_ok=True)
        cached = self.cache.scan()
        for i in self.state.adopt_cached(cached):   # over the budget already: these go before the manager hears
            self.cache.remove(i.name)
            del cached[i.name]
        server = None
        beating = None
        try:
            connecting = asyncio.ensure_future(self._connect())
            stopping = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not connecting.done():   # told to stop (or the manager's process ended) while connecting
                connecting.cancel()
                return EXIT_MANAGER_LOST if self.exit_reason is not None else 0
            reader, writer = connecting.result()
            self.stream = MessageStream(reader, writer)
            local_host = writer.get_extra_info("sockname")[0]
            server = await asyncio.start_server(self._on_connection, host=self.listen_host or local_host,
                                                port=0)
            port = server.sockets[0].getsockname()[1]
            self.stream.send(m.Hello(self.name, self.state.cores, self.state.memory, self.state.disk, local_host,
                                     port, os.getpid(), self.heartbeat, tuple(cached.items()), self.state.gpus,
                                     socket.gethostname()))
            self.last_heard = self.last_tick = time.monotonic()
            log.info("connected to the manager at %s:%s as %s: %s cores, %s MB memory, %s MB disk, %s GPUs, "
                     "cache %s (%d files), serving peers on %s:%s", self.manager_addr[0], self.manager_addr[1],
                     self.name, self.state.cores, self.state.memory, self.state.disk, self.state.gpus,
                     self.cache.root, len(cached), local_host, port)
            beating = asyncio.ensure_future(self._beat())
            receiving = asyncio.ensure_future(self._receive())
            stopping = asyncio.ensure_future(self.stopping.wait())
            try:
                await asyncio.wait([receiving, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                receiving.cancel()
                stopping.cancel()
        finally:
            if beating is not None:
                beating.cancel()
            if server is not None:
                server.close()
            if owner is not None:
                loop.remove_reader(owner)
                os.close(owner)
            await self._shutdown()
        if self.exit_reason is not None:
            log.error("leaving: %s", self.exit_reason)
            return EXIT_MANAGER_LOST
        log.info("stopped")
        return 0

    def _watch_owner(self) -> int | None:
        """A local worker leaves the moment its manager's process ends (it cannot clean up then)."""
        if self.owner_pid is None:
            return None
        try:
            fd = os.pidfd_open(self.owner_pid)
        except ProcessLookupError:
            self._leave("the manager's process had already ended")
            return None
        except OSError:
            return None   # no pidfd here: the closed connection tells the same, a little later
        asyncio.get_running_loop().add_reader(fd, self._owner_ended)
        return fd

    def _owner_ended(self) -> None:
        self._owner_dead = True
        self._leave("the manager's process ended")

    def _owner_gone(self) -> bool:
        if self.owner_pid is None:
            return False
        if self._owner_dead:
            return True
        try:
            os.kill(self.owner_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return _exited(self.owner_pid)

    async def _owner_ends(self, grace: float) -> bool:
        """Has the manager's process ended, or does it end within `grace` seconds? A killed process
        closes its connections before it has ended: the closed link may be heard first."""
        if self.owner_pid is None:
            return False
        deadline = time.monotonic() + grace
        while not self._owner_gone():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def _leave(self, reason: str) -> None:
        """Give up on the manager: stop every task and leave."""
        if self.exit_reason is None:
            self.exit_reason = reason
        self.link = Link.LOST
        self.stopping.set()

    # ------------------------------------------------------------ heartbeats

    def _interval(self) -> float:
        beat = min(self.heartbeat, self.manager_heartbeat, self.idle_timeout or self.heartbeat)
        return max(0.05, beat / 4)

    async def _beat(self) -> None:
        """Ping the manager; notice silence, and this worker's own stalls."""
        last_ping = 0.0
        while True:
            await asyncio.sleep(self._interval())
            now = time.monotonic()
            stalled = now - self.last_tick
            self.last_tick = now
            if stalled > self.heartbeat / 2:
                self._doubt(f"this worker was held up for {stalled:.1f} s")
            silent = now - self.last_heard
            if silent > self.heartbeat:
                self._leave(f"heard nothing from the manager for {silent:.1f} s (heartbeat {self.heartbeat:g} s)")
                return
            if silent > self.heartbeat / 2:
                self._doubt(f"heard nothing from the manager for {silent:.1f} s")
            if now - last_ping >= self._interval():
                last_ping = now
                self.stream.send(m.Ping())
            if self.idle_timeout is not None:
                self._check_idle(now)

    def _check_idle(self, now: float) -> None:
        """Idle past --idle-timeout: ask the manager to retire this worker (it answers with Shutdown)."""
        if self.state.tasks or self.state.fetching or self.python or self.shells:
            self.last_busy = now
            return
        idle = now - self.last_busy
        if idle >= self.idle_timeout and not self.leave_asked:
            self.leave_asked = True
            log.info("idle for %.1f s: asking the manager to retire this worker", idle)
            self.stream.send(m.Leave(f"it was idle for {idle:.0f} s (--idle-timeout {self.idle_timeout:g})"))

    def _doubt(self, why: str) -> None:
        """The manager may have given up on this worker: start nothing until it answers a probe."""
        if self.link is not Link.LIVE:
            return
        self.link = Link.DOUBTFUL
        self._probe = next(self._probes)
        log.warning("%s: holding new tasks until the manager answers", why)
        self.stream.send(m.Probe(self._probe))

    def _answered(self, probe: int) -> None:
        if self.link is Link.DOUBTFUL and probe == self._probe:
            self.link = Link.LIVE
            self._probe = None
            log.info("the manager answered: starting tasks again")
            held, self._deferred = self._deferred, []
            self._do(held)

    def _may_start(self) -> bool:
        """Start tasks only on a link known to be alive; a stall seen here puts it in doubt."""
        if self.link is Link.LIVE:
            now = time.monotonic()
            if now - self.last_tick > self.heartbeat / 2:
                self._doubt(f"this worker was held up for {now - self.last_tick:.1f} s")
            elif now - self.last_heard > self.heartbeat / 2:
                self._doubt(f"heard nothing from the manager for {now - self.last_heard:.1f} s")
        return self.link is Link.LIVE

    async def _connect(self):
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        delay = 0.05
        while True:
            try:
                return await connect(*self.manager_addr, self.secret, "control", self.tls)
            except AuthError:
                raise
            except OSError:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _receive(self) -> None:
        try:
            async for batch in self.stream.batches():
                self.last_heard = time.monotonic()
                for msg in batch:
                    self._on_message(msg)
        except (ConnectionError, OSError) as e:
            self._leave(f"lost the connection to the manager: {e}")
            return
        if not self.stopping.is_set():
            self._leave("the manager closed the connection")

    async def _shutdown(self) -> None:
        for proc in self.shells.values():
            proc.kill()
        self.pool.close()
        REAPER.end_all()   # whatever tasks left behind, tagged or not
        for job in self.jobs:
            job.cancel()
        self.client.close()
        if self.stream is not None:
            self.stream.close()
        self.janitor.shutdown()
        self.sandboxes.remove_all()
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self.clean:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        else:
            self.cache.remove_run_files()
            self.cache.keep_order(self.state.unused)
        if self.owner_dir is not None and self.exit_reason is not None and await self._owner_ends(OWNER_GRACE):
            # the manager died without closing: remove what its close() would have removed
            shutil.rmtree(self.owner_dir, ignore_errors=True)

    # ------------------------------------------------------------ manager messages

    def _on_message(self, msg) -> None:
        kind = type(msg)
        if kind is m.Assign:
            tasks = []
            for a in msg.tasks:
                if type(a) is m.BadTask:   # it could not be read: it fails alone
                    log.error("refused task %s: %s", a.id, a.problem)
                    self.stream.send(m.Failed(a.id, m.Report(reason="error",
                                                             message=f"a malformed assignment: {a.problem}")))
                else:
                    tasks.append(from_assignment(a))
            self._do(self.state.assign(tasks))
        elif kind is m.Ping:
            pass
        elif kind is m.Pong:
            self._answered(msg.n)
        elif kind is m.Joined:
            self.manager_heartbeat = msg.heartbeat
            self.name = msg.id
            self.pool.preload = msg.preload
            os.environ["TETHER_WORKER"] = self.name   # tasks (and interpreters) started from now on see it
            log.info("joined as %s (manager heartbeat %g s)", msg.id, msg.heartbeat)
        elif kind is m.Delete:
            self._do(self.state.delete(msg.names))
        elif kind is m.Pull:
            self._do(self.state.pull(list(msg.files)))
        elif kind is m.Retract:
            returned, started = self.state.retract(msg.tasks)
            self.stream.send(m.Retracted(tuple(returned), tuple(started)))
        elif kind is m.Stop:
            _, started = self.state.retract(msg.tasks)
            for tid in started:
                self._stop(tid)
        elif kind is m.HostBlocked:
            log.warning("the manager gives this host no new work: %s", msg.reason)
        elif kind is m.HostUnblocked:
            log.warning("the manager gives this host work again")
        elif kind is m.Shutdown:
            log.info("the manager sent it away: stopping")
            self.stopping.set()
        else:
            log.error("the manager sent %s, which a manager does not send", kind.__name__)

    # ------------------------------------------------------------ instructions

    def _do(self, instructions) -> None:
        for i in instructions:
            if isinstance(i, Start):
                if self._deferred or not self._may_start():
                    if self.link is not Link.LOST:
                        self._deferred.append(i)
                    continue
                self._start(i.task, i.after)
            elif isinstance(i, Fetch):
                self._spawn(self._fetch(i.name, i.source))
            elif isinstance(i, Reject):
                peer = i.source.id if type(i.source) is m.Peer else None
                self.stream.send(m.Failed(i.task, m.Report(reason=i.reason, message=i.message, file=i.file,
                                                           source=peer)))
            elif isinstance(i, Remove):
                self.pool.drop(i.name)
                self.cache.remove(i.name)
            elif isinstance(i, Unfetched):   # a copy asked for, or a file to make: tell it the file is not here
                log.warning("could not have %s: %s", i.name, i.message)
                self.stream.send(m.Lost((i.name,)))
            elif isinstance(i, Evict):   # the manager no longer counts on it here
                self.cache.remove(i.name)
                self.stream.send(m.Lost((i.name,)))

    def _stop(self, task_id: int) -> None:
        """End a started task that was cancelled (its report is ignored by the manager)."""
        proc = self.shells.get(task_id)
        if proc is not None:
            proc.end("cancelled", "stopped: it was cancelled")
        elif task_id in self.python:
            self.pool.stop(task_id)
        for i, start in enumerate(self._deferred):
            if start.task.id == task_id:   # held while the link was in doubt: it never starts
                del self._deferred[i]
                self._ended(start.task, None, {"reason": "cancelled", "message": "it was cancelled"})
                break

    def _spawn(self, coro) -> None:
        job = asyncio.ensure_future(coro)
        self.jobs.add(job)
        job.add_done_callback(self.jobs.discard)

    async def _fetch(self, name: str, source: Any) -> None:
        if type(source) is m.Peer:
            peer, host, port = source
        else:
            (host, port), peer = self.manager_addr, None
        try:
            size = await self.client.fetch(host, port, name, self.cache.path(name))
        except DestinationError as e:
            self._do(self.state.fetch_failed(name, f"could not store {name} in the cache: {e.error}",
                                             failure_reason(e)))
            return
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            where = f"worker {peer}" if peer else "the manager"
            self._do(self.state.fetch_failed(name, f"could not fetch {name} from {where}: {e}"))
            return
        self.cache.adopt(name)
        self.stream.send(m.Have(((name, size, peer),)))
        self._do(self.state.file_present(name, size))

    def _start(self, t: WorkTask, after: int | None = None) -> None:
        """Start a task; one that cannot be started fails alone, with the reason named."""
        if t.spec is None:   # a maker that fetches a URL or unpacks an archive
            self._spawn(self._make_file(t))
            return
        spec = t.spec
        sandbox = None
        try:
            if not spec.scratch or t.inputs or t.outputs or t.disk:
                # an Executor call (which names no files) runs in its interpreter's scratch directory,
                # as a call to a process pool runs in the pool's working directory; with a disk limit,
                # in a sandbox of its own, where what it writes can be measured
                sandbox = self.sandboxes.acquire(t.inputs, self.cache)
                MARKS.mark(sandbox, t.inputs)
            self._launch(t, spec, sandbox, after)
        except Exception as e:
            self.shells.pop(t.id, None)
            self.python.pop(t.id, None)
            what = "prepare the sandbox" if sandbox is None and spec.kind == "sh" else "start the task"
            log.warning("task %s: could not %s: %r", t.id, what, e)
            self._ended(t, None, {"reason": failure_reason(e),
                                  "message": f"could not {what}: {type(e).__name__}: {e}"}, sandbox)

    def _launch(self, t: WorkTask, spec: m.TaskSpec, sandbox: str | None, after: int | None) -> None:
        limits = Limits.of(t.memory, t.disk, t.inputs)
        env = spec.env
        if self.state.gpus:   # each task sees the GPUs it was given, and no others
            env = {**(env or {}), "CUDA_VISIBLE_DEVICES": ",".join(map(str, t.devices))}
        if spec.kind == "sh":
            out, err = self.sandboxes.log_paths(sandbox)
            self.shells[t.id] = ShellProcess(spec.command, sandbox, out, err, env,
                                             partial(self._shell_exited, t, sandbox), spec.timeout,
                                             task=t.id, limits=limits)
        else:
            self.python[t.id] = (t, sandbox)
            result = spec.result
            request = m.Call(t.id, self.cache.str_path(spec.fn), spec.args, sandbox, env, None, result,
                             None if result is None else self.cache.str_path(result),
                             spec.spill if spec.spill is not None else 1 << 62, spec.inline, spec.summary,
                             context=None if spec.context is None else self.cache.str_path(spec.context))
            refs = spec.refs
            if after is not None:   # behind the call making its input, in the same interpreter
                request = request._replace(refs={n: self.cache.str_path(n) for n in refs})
                self.pool.submit(t.id, request, None, self.pool.running(after), pin=True, limits=limits)
            elif not refs:
                self.pool.submit(t.id, request, spec.timeout, limits=limits)
            else:
                self._submit_with_refs(t, request, refs, limits)

    def _submit_with_refs(self, t: WorkTask, request: m.Call, refs: tuple[str, ...], limits) -> None:
        """Run where the biggest result it reads is held; others come from spill files."""
        holders = {name: self.pool.holder(name) for name in refs}
        held = [n for n in refs if holders[n] is not None]
        prefer = holders[max(held, key=lambda n: self.state.present.get(n, 0))] if held else None
        paths = {n: (None if holders[n] is prefer and prefer is not None else self.cache.str_path(n))
                 for n in refs}
        request = request._replace(refs=paths)
        exports = [self.pool.export(n, self.cache.str_path(n)) for n in refs
                   if holders[n] is not None and holders[n] is not prefer and n not in self.cache.sizes]
        if not exports:
            self.pool.submit(t.id, request, t.spec.timeout, prefer, limits=limits)
            return

        async def after_exports() -> None:
            try:
                for n, size in zip([n for n in refs if holders[n] is not None and holders[n] is not prefer
                                    and n not in self.cache.sizes], await asyncio.gather(*exports)):
                    self.cache.adopt(n)
            except (KeyError, OSError) as e:
                self._finish(t, self.python.pop(t.id)[1], {"reason": "input",
                                                           "message": f"a result it reads was lost: {e}"})
                return
            self.pool.submit(t.id, request, t.spec.timeout, prefer, limits=limits)

        self._spawn(after_exports())

    def _shell_exited(self, t: WorkTask, sandbox: str, code: int, started: float, finished: float) -> None:
        proc = self.shells.pop(t.id)
        usage = None if proc.cpu_time is None else (   # None: the worker is stopping
            proc.peak_memory, proc.cpu_time, sandbox_bytes(sandbox, t.inputs, self.sandboxes.log_paths(sandbox)))
        report = {"exit": code, "started": started, "finished": finished, "logs": True, "usage": usage}
        if proc.ended_by is not None:   # its timeout, or a limit
            report.update(reason=proc.ended_by[0], message=proc.ended_by[1])
        elif code != 0:
            _, err = self.sandboxes.log_paths(sandbox)
            if self._disk_full(tail(err)):
                report.update(reason="disk-full", message=f"exit code {code} with the worker's disk full")
            else:
                report.update(reason="exit", message=f"exit code {code}")
        self._finish(t, sandbox, report)

    def _disk_full(self, text: str) -> bool:
        """Did a task fail because this worker's disk is full (not because of what it was asked to do)?"""
        if any(phrase in text for phrase in DISK_FULL_TEXT):
            return True
        try:
            st = os.statvfs(self.work_dir)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < (1 << 20)

    def _python_replied(self, task_id: int, reply: m.CallReply) -> None:
        t, sandbox = self.python.pop(task_id)
        _, ok, payload, text, started, finished, size, spilled, used = reply
        if ok is None:   # it did not run: an input it reads is not here (its producer failed)
            self._finish(t, sandbox, {"reason": "input", "message": text, "file": payload})
            return
        self.python_time.add(finished - started)
        self.state.python_depth = python_depth(self.python_time.value)
        # a sandbox without inputs that nothing was added to is empty: neither measured nor read again
        empty = sandbox is not None and not t.inputs and MARKS.untouched(sandbox, ())
        report: dict[str, Any] = {"started": started, "finished": finished, "exit": 0 if ok else 1, "usage":
                                  None if used is None else
                                  (used[0], used[1], 0 if empty else sandbox_bytes(sandbox, t.inputs))}
        if ok:
            if payload is not None:
                report["value"] = payload
            name = t.spec.result
            if name is not None:
                report["result"] = [name, size]
                if spilled:
                    self.cache.adopt(name)
        else:
            last = text.strip().splitlines()[-1] if text.strip() else "exception"
            reason = "disk-full" if any(phrase in last for phrase in DISK_FULL_TEXT) else "exit"
            report.update(reason=reason, message=last, error=payload, stderr=text)
        self._finish(t, sandbox, report, empty)

    def _python_died(self, task_id: int, message: str, reason: str | None) -> None:
        """reason: "timeout", "memory" or "disk" when the pool killed it for that, else None."""
        t, sandbox = self.python.pop(task_id)
        self._finish(t, sandbox, {"reason": reason or "interpreter", "message": message})

    def _finish(self, t: WorkTask, sandbox: str | None, report: dict[str, Any], empty: bool = False) -> None:
        """Move outputs into the cache, start what they made ready, then tell the manager."""
        made: dict[str, int] = {}
        if "reason" not in report:
            if t.outputs:
                try:
                    made, missing = self.sandboxes.collect(sandbox, t.outputs, self.cache, trees=t.makes is not None)
                except OSError as e:
                    made, missing = {}, []
                    report.update(reason=failure_reason(e), message=f"could not keep its outputs: {e}")
                if missing:
                    report.update(reason="output", exit=report.get("exit", 0),
                                  message=f"its declared output(s) could not be kept: {', '.join(missing)}")
            result = report.pop("result", None)
            if result is not None and "reason" not in report:
                made[result[0]] = result[1]
        self._ended(t, made, report, sandbox, empty)

    def _ended(self, t: WorkTask, made: dict[str, int] | None, report: dict[str, Any],
               sandbox: str | None = None, empty: bool = False) -> None:
        if t.makes is not None:
            self._mini_task_ended(t, made, report, sandbox, empty)
            return
        self._do(self.state.task_ended(t.id, made or None))  # the next member starts here
        if report.pop("logs", False):
            out, err = self.sandboxes.log_paths(sandbox)
            report["stdout"], report["stderr"] = tail(out), tail(err)
        if sandbox is not None:
            self.sandboxes.release(sandbox, t.inputs, empty, logs=t.spec.kind == "sh")
        g = report.get
        contents = self._small_outputs(t, made) if made and t.spec.record and "reason" not in report else ()
        end = m.Report(g("started", 0.0), g("finished", 0.0), g("exit"), g("reason"), g("message", ""),
                       g("stdout", ""), g("stderr", ""), g("file"), g("source"), g("value"), g("error"),
                       tuple(made.items()) if made else (), (self.cache.bytes, self.cache.peak), g("usage"), t.devices,
                       contents)
        self.stream.send(m.Failed(t.id, end) if end.reason is not None else m.Done(t.id, end))

    # ------------------------------------------------------------ files made here

    async def _make_file(self, t: WorkTask) -> None:
        """Fetch a URL or unpack an archive into the cache, in a thread; then its readers may start."""
        make, name = t.make, t.makes
        part = self.cache.str_path(name) + ".part"
        try:
            if make.kind == "url":
                stale = self.cache.stale.get(name) if make.keep else None
                got = await _in_thread(makers.fetch_url, make.url, part, stale)
                if got.size is not None:
                    os.replace(part, self.cache.str_path(name))
                size = self.cache.adopt(name)
                if make.keep and got.validators:
                    self.cache.keep_url(name, got.validators)
                log.info("%s: %s (%d bytes)", make.url, "fetched" if got.size is not None else "not modified", size)
            else:
                archive = make.needs[0]
                size = await _in_thread(makers.unpack, self.cache.str_path(archive), part, f"archive {archive}")
                os.rename(part, self.cache.str_path(name))
                self.cache.adopt_tree(name, size)
        except makers.MakeError as e:
            self._make_failed(t, str(e), "input", part)
            return
        except OSError as e:
            self._make_failed(t, f"could not make {name}: {e}", failure_reason(e), part)
            return
        self._do(self.state.task_ended(t.id, {name: size}))
        self.stream.send(m.Have(((name, size, None),)))

    def _make_failed(self, t: WorkTask, message: str, reason: str, part: str) -> None:
        log.warning("%s", message)
        if os.path.isdir(part):
            makers.remove_tree(part)
        elif os.path.lexists(part):
            os.unlink(part)
        self._do(self.state.make_failed(t.id, message, reason))

    def _mini_task_ended(self, t: WorkTask, made: dict[str, int] | None, report: dict[str, Any],
                         sandbox: str | None, empty: bool) -> None:
        """A mini-task's end is its readers' news, never the manager's: its file, or why it is not made."""
        stderr = ""
        if report.get("logs"):
            stderr = tail(self.sandboxes.log_paths(sandbox)[1]).strip()
        if sandbox is not None:
            self.sandboxes.release(sandbox, t.inputs, empty, logs=t.spec.kind == "sh")
        if report.get("reason") is not None or not made:
            said = report.get("message") or "it failed"
            lines = stderr.splitlines()   # a shell command's (a Python call's message is its exception)
            if lines:
                said += f": {lines[-1][:300]}"
            self._do(self.state.make_failed(t.id, f"mini-task {t.spec.id} making {t.makes} failed: {said}",
                                            "input"))
            return
        self._do(self.state.task_ended(t.id, made))
        self.stream.send(m.Have(((t.makes, made[t.makes], None),)))

    def _small_outputs(self, t: WorkTask, made: dict[str, int]) -> tuple[tuple[str, bytes], ...]:
        """The bytes of a memoized task's small outputs in the cache, which the manager keeps in its memo
        record: sent with the completion instead of fetched one by one."""
        out = []
        for name, size in made.items():
            if size <= t.spec.record and name != t.spec.result:
                try:
                    with open(self.cache.str_path(name), "rb") as f:
                        out.append((name, f.read(t.spec.record + 1)))
                except OSError:
                    continue   # the manager fetches it
        return tuple(out)

    # ------------------------------------------------------------ fetch server

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            role = await self.gate.accept(reader, writer)
            if role != "fetch":
                writer.close()
                return
            await serve_fetches(reader, writer, self._lookup)
        except asyncio.CancelledError:   # the worker is stopping: end the connection quietly
            writer.close()

    def _lookup(self, name: str):
        """A cached file's path; a result held by an interpreter is spilled first."""
        if name in self.cache.sizes:
            return self.cache.path(name)
        if self.pool.holder(name) is None:
            return None
        path = self.cache.str_path(name)

        async def spilled():
            try:
                await self.pool.export(name, path)
            except KeyError:
                return None
            self.cache.adopt(name)
            return self.cache.path(name)

        return spilled()

    def _results_lost(self, names: list[str]) -> None:
        """An interpreter died with results in its memory: the manager makes them again."""
        for name in names:
            self.state.gone(name)
        self.stream.send(m.Lost(tuple(names)))


async def _in_thread(fn, *args):
    """fn(*args) in a daemon thread of its own: a slow download must not hold up the worker's exit
    (the event loop's own executor is waited for when the loop closes)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle(value, error) -> None:
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(value)

    def run() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as e:   # (handed to the waiting coroutine)
            value, error = None, e
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:   # the loop has closed: the worker is leaving
            pass

    threading.Thread(target=run, name=f"tether-{fn.__name__}", daemon=True).start()
    return await done


def _exited(pid: int) -> bool:
    """A process that has exited but that its parent has not reaped yet (a zombie) has ended too."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def python_depth(mean_seconds: float) -> int:
    """Light Python tasks queued per interpreter: deep for very short calls, 1 from 2 ms up."""
    if mean_seconds <= 0:
        return 1
    return max(1, min(128, int(0.002 / mean_seconds)))
