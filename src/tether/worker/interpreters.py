"""The worker's pool of warm Python interpreters (see interpreter.py for the child).

Each interpreter runs its requests one after another, so at most one task a
interpreter uses a core; the pool starts one per core as needed. Requests
go to the interpreter with the shortest queue. Several requests may wait in
one interpreter's queue (WorkerState decides how many: only short tasks are
queued deeply), and requests and replies travel in batches, one write per
event-loop turn.

Results an Executor keeps on the worker live in the memory of the
interpreter that made them (held); a task that needs one goes preferably
to that interpreter, and elsewhere it is first exported to a spill file.

When an interpreter dies (the task called os._exit, crashed, or was killed
for its timeout or a limit), the task it was running fails, the ones queued
behind it are sent to another interpreter, and the results it held are
reported lost. Once Python tasks run here, the pool keeps a spare
interpreter started (with the preloaded modules imported) that takes the
dead one's place at once: starting one and importing what the tasks need
can take seconds, during which a one-core worker would run nothing. Killing an interpreter kills its whole tree; each request
carries the tag of its attempt, which the interpreter puts in its
environment for whatever the call starts (see reaper.py). A call that
declares memory or disk limits is watched (see limits.py) from the moment
its interpreter says it began, with the interpreter's RSS then.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections import deque
from typing import Any, Callable

from ..wire import codec
from ..wire import messages as m
from ..wire.framing import FrameBuffer
from ..wire.stream import Outbox
from .limits import Limits, Watch
from .reaper import REAPER, kill_tree

OnReply = Callable[[int, m.CallReply], None]   # (task id, reply)
OnDied = Callable[[int, str, str | None], None]   # (task id, message, reason: timeout, memory, disk or None)
OnLost = Callable[[list[str]], None]         # results held by an interpreter that died


class Interpreter(asyncio.Protocol):
    def __init__(self, pool: "InterpreterPool", proc: subprocess.Popen):
        self.pool = pool
        self.proc = proc
        self.queue: deque[tuple[Any, m.Call | m.Export]] = deque()   # sent, not answered, in order
        self.held: set[str] = set()                      # results kept in its memory
        self.transport: asyncio.Transport | None = None
        self._frames = FrameBuffer()
        self.ended_by: tuple[int, str, str] | None = None   # (task id, reason, message) it was killed for

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        self._sender = Outbox(transport)

    def data_received(self, data: bytes) -> None:
        for body in self._frames.feed(data):
            reply = codec.decode(body)
            kind = type(reply)
            if kind is m.Started:   # a watched call began
                self.pool.started(self, reply.id, reply.rss)
                continue
            key, request = self.queue.popleft()
            if kind is m.Exported:
                self.pool.exported(reply.name, reply.size)
                continue
            name = request.result
            if name is not None and reply.ok and not reply.spilled:
                self.held.add(name)
            self.pool.answered(self, key, reply, name)

    def connection_lost(self, exc) -> None:
        self.pool.died(self)

    # -- sending
    def send(self, key: Any, request) -> None:
        """Queue a request; key None means no reply is expected (a Drop)."""
        if key is not None:
            self.queue.append((key, request))
        self._sender.add_frame(codec.encode(request))

    def resume_writing(self) -> None:
        self._sender.resume()

    def kill(self) -> None:
        """Kill the interpreter and everything below it."""
        if self.proc.returncode is None:
            kill_tree(self.proc.pid)

    def runs(self, task_id: int) -> bool:
        """Is this task the one running now (the head of the queue)?"""
        return bool(self.queue) and self.queue[0][0] == task_id


class InterpreterPool:
    def __init__(self, size: int, on_reply: OnReply, on_died: OnDied, on_lost: OnLost | None = None,
                 env: dict[str, str] | None = None, cwd=None, spares: int = 1):
        self.size = size
        self.spares = spares               # 0 or 1: an idle interpreter kept ready to replace one that dies
        self.spare: Interpreter | None = None
        self.cwd = cwd
        self.on_reply = on_reply
        self.on_died = on_died
        self.on_lost = on_lost
        self.env = env
        self._exports: dict[str, asyncio.Future] = {}
        self.interpreters: list[Interpreter] = []
        self._starting = 0
        self._waiting: deque[tuple[int, m.Call, float | None]] = deque()  # until an interpreter exists
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._limits: dict[int, Limits] = {}   # of calls that declared some, until they end
        self._watches: dict[int, Watch] = {}
        self._closed = False
        self.preload: tuple[str, ...] = ()   # modules each interpreter imports as it starts

    def holder(self, name: str) -> Interpreter | None:
        for interp in self.interpreters:
            if name in interp.held:
                return interp
        return None

    def export(self, name: str, path: str) -> asyncio.Future:
        """Have the holder of a result write it to path; the future gives its size."""
        pending = self._exports.get(name)
        if pending is not None:
            return pending
        fut = asyncio.get_running_loop().create_future()
        interp = self.holder(name)
        if interp is None:
            fut.set_exception(KeyError(name))
            return fut
        self._exports[name] = fut
        interp.send(("export", name), m.Export(name, path))
        return fut

    def exported(self, name: str, size: int) -> None:
        fut = self._exports.pop(name, None)
        if fut is not None and not fut.done():
            fut.set_result(size)

    def drop(self, name: str) -> None:
        interp = self.holder(name)
        if interp is not None:
            interp.held.discard(name)
            interp.send(None, m.Drop((name,)))

    def running(self, task_id: int) -> Interpreter | None:
        """The interpreter a task was sent to, while it has not answered."""
        for interp in self.interpreters:
            if any(key == task_id for key, _ in interp.queue):
                return interp
        return None

    def submit(self, task_id: int, request: m.Call, timeout: float | None = None,
               prefer: Interpreter | None = None, pin: bool = False, limits: Limits | None = None) -> None:
        """Run a call; limits (a limits.Limits) are watched here, not sent."""
        if self._closed:
            return
        if limits is not None:
            self._limits[task_id] = limits
        target = min(self.interpreters, key=lambda i: len(i.queue), default=None)
        if prefer is not None and prefer in self.interpreters and (
                pin or target is None or len(prefer.queue) <= len(target.queue) + 1):
            self._send(prefer, task_id, request, timeout)
            return
        if self.spare is not None and (target is None or target.queue) and len(self.interpreters) < self.size:
            target, self.spare = self.spare, None   # one more is needed: the spare, warm, and another spare
            self.interpreters.append(target)
            self._keep_spare()
        elif target is None or (target.queue and len(self.interpreters) + self._starting < self.size):
            self._waiting.append((task_id, request, timeout))
            if len(self.interpreters) + self._starting < self.size:
                self._starting += 1
                asyncio.ensure_future(self._start())
            return
        self._send(target, task_id, request, timeout)

    def _send(self, interp: Interpreter, task_id: int, request: m.Call, timeout: float | None) -> None:
        tag = REAPER.tag(task_id)
        if timeout:
            self._timers[task_id] = asyncio.get_running_loop().call_later(
                timeout, self._timeout, interp, task_id, timeout)
        limits = self._limits.get(task_id)
        if limits is not None:
            self._watches[task_id] = Watch(limits, tag, request.cwd, (),
                                           lambda reason, message: self._end(interp, task_id, reason, message))
        interp.send(task_id, request._replace(tag=tag, watch=limits is not None))

    def started(self, interp: Interpreter, task_id: int, rss: int) -> None:
        """A watched call began: its memory is what it adds to the interpreter's RSS now, and its children's."""
        watch = self._watches.get(task_id)
        if watch is not None:
            watch.begin(interp.proc.pid, rss)

    def stop(self, task_id: int) -> None:
        """End a call that was cancelled: its interpreter is killed if it runs it (the calls queued
        behind it there are lost with it, and retried elsewhere)."""
        interp = self.running(task_id)
        if interp is not None and interp.runs(task_id):
            self._end(interp, task_id, "cancelled", "stopped: it was cancelled")

    def _end(self, interp: Interpreter, task_id: int, reason: str, message: str) -> None:
        """Kill the interpreter running task_id, for a reason its failure will give."""
        if interp.ended_by is None:
            interp.ended_by = (task_id, reason, message)
        interp.kill()

    async def _start(self) -> None:
        REAPER.enable()
        try:
            parent, child = socket.socketpair()
            try:
                proc = subprocess.Popen([sys.executable, "-m", "tether.worker.interpreter", str(child.fileno()),
                                         ",".join(self.preload)],
                                        pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, env=self.env,
                                        cwd=self.cwd)
            finally:
                child.close()
            REAPER.own.add(proc.pid)
            loop = asyncio.get_running_loop()
            _, interp = await loop.create_unix_connection(lambda: Interpreter(self, proc), sock=parent)
        except OSError as e:
            self._starting -= 1
            if not self.interpreters and not self._starting:
                while self._waiting:
                    self.on_died(self._waiting.popleft()[0], f"could not start a Python interpreter: {e}", None)
            return
        self._starting -= 1
        if self._closed:
            interp.kill()
            interp.transport.close()
            return
        if not self._waiting and self.interpreters and self.spare is None and self.spares:
            self.spare = interp   # kept idle, for the next one that dies or the next that is needed
            return
        if not self._waiting and len(self.interpreters) >= self.size:
            interp.kill()
            interp.transport.close()
            return
        self._enlist(interp)

    def _enlist(self, interp: Interpreter) -> None:
        """Put an interpreter to work, give it what waits, and see that a spare is on its way."""
        self.interpreters.append(interp)
        while self._waiting:
            task_id, request, timeout = self._waiting.popleft()
            self.submit(task_id, request, timeout)
        self._keep_spare()

    def _keep_spare(self) -> None:
        if self.spares and self.spare is None and not self._starting and not self._closed:
            self._starting += 1
            asyncio.ensure_future(self._start())

    def answered(self, interp: Interpreter, task_id: int, reply: m.CallReply, result: str | None = None) -> None:
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        if self._limits:
            reply = self._at_end(task_id, reply)
            if reply is None:
                if result is not None and result in interp.held:
                    self.drop(result)   # made by a call that failed: not kept
                return
        self.on_reply(task_id, reply)

    def _at_end(self, task_id: int, reply: m.CallReply) -> m.CallReply | None:
        """A watched call answered: None if it was over a limit all the same (it fails for that);
        else the reply, its peak memory raised to what the watch saw."""
        self._limits.pop(task_id, None)
        watch = self._watches.pop(task_id, None)
        if watch is None or reply.ok is None or reply.usage is None:
            return reply
        peak, cpu = reply.usage
        over = watch.final(peak)
        if over is not None:
            self.on_died(task_id, over[1], over[0])
            return None
        return reply._replace(usage=(max(peak or 0, watch.peak), cpu))

    def _forget_limits(self, task_id: int) -> None:
        self._limits.pop(task_id, None)
        watch = self._watches.pop(task_id, None)
        if watch is not None:
            watch.stop()

    def _timeout(self, interp: Interpreter, task_id: int, timeout: float) -> None:
        self._timers.pop(task_id, None)
        if interp.runs(task_id):
            self._end(interp, task_id, "timeout", f"killed after its timeout of {timeout} s")
        elif any(tid == task_id for tid, _ in interp.queue):   # still queued: its time has not begun
            self._timers[task_id] = asyncio.get_running_loop().call_later(
                timeout, self._timeout, interp, task_id, timeout)

    def died(self, interp: Interpreter) -> None:
        if interp is self.spare:   # it had nothing to do: another is started in its place
            self.spare = None
            kill_tree(interp.proc.pid)
            interp.proc.wait()
            REAPER.own.discard(interp.proc.pid)
            if not self._closed:
                self._keep_spare()
            return
        if interp in self.interpreters:
            self.interpreters.remove(interp)
        if self.spare is not None and not self._closed:   # the spare takes its place now
            spare, self.spare = self.spare, None
            self.interpreters.append(spare)
        kill_tree(interp.proc.pid)   # what the call it ran left behind, not yet adopted by the worker
        code = interp.proc.wait()
        REAPER.own.discard(interp.proc.pid)
        REAPER.end()                 # ... and what was
        if self._closed:
            return
        if interp.held and self.on_lost is not None:
            self.on_lost(sorted(interp.held))
        queued = [(k, r) for k, r in interp.queue if type(k) is not tuple]
        for k, _ in interp.queue:
            if type(k) is tuple:
                fut = self._exports.pop(k[1], None)
                if fut is not None and not fut.done():
                    fut.set_exception(KeyError(k[1]))
        interp.queue.clear()
        if queued:
            running_id = queued[0][0]
            timer = self._timers.pop(running_id, None)
            if timer is not None:
                timer.cancel()
            self._forget_limits(running_id)
            if interp.ended_by is not None and interp.ended_by[0] == running_id:
                _, reason, message = interp.ended_by
            else:
                reason, message = None, f"the Python interpreter running the task died (exit code {code})"
            self.on_died(running_id, message, reason)
            for task_id, request in queued[1:]:   # innocent bystanders: run them elsewhere
                timer = self._timers.pop(task_id, None)
                if timer is not None:
                    timer.cancel()
                watch = self._watches.pop(task_id, None)
                if watch is not None:
                    watch.stop()
                self.submit(task_id, request, None)
        if len(self.interpreters) + self._starting < self.size:
            # a successor now, not when the next call comes: its start (and its preloads) are off
            # the path of the work that follows
            self._starting += 1
            asyncio.ensure_future(self._start())
        else:
            self._keep_spare()

    def close(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        for watch in self._watches.values():
            watch.stop()
        everyone = self.interpreters + ([self.spare] if self.spare is not None else [])
        for interp in everyone:
            interp.kill()
            if interp.transport is not None:
                interp.transport.close()
        for interp in everyone:
            try:
                interp.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.interpreters.clear()
        self.spare = None
