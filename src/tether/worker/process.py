"""The worker process: a thin asyncio shell around WorkerState.

It keeps one control connection to the manager, a fetch server for peers
and the manager, the cache, the sandboxes, the shell commands and the warm
interpreters. Frames become events for WorkerState; its instructions become
fetches, process starts and reports. When a task ends, the next task made
ready by its outputs is started before the report goes to the manager.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
from functools import partial
from pathlib import Path
from typing import Any

from ..protocol import AuthError, MessageStream, accept, connect
from ..transfer import TransferClient, serve_fetches
from .cache import Cache
from ..core.model import RunningMean
from .interpreters import InterpreterPool
from .janitor import Janitor
from .limits import Limits
from .reaper import REAPER
from .runner import ShellProcess
from .sandbox import Sandboxes, tail
from .usage import MARKS, sandbox_bytes
from .state import Fetch, Reject, Remove, Start, WorkerState, WorkTask

log = logging.getLogger("tether.worker")

MANAGER_SOURCE = "@manager"


class Worker:
    def __init__(self, host: str, port: int, secret: bytes, *, cores: int, memory: int, disk: int,
                 work_dir: Path, name: str | None = None, clean: bool = False,
                 connect_timeout: float = 60.0, listen_host: str | None = None):
        self.manager_addr = (host, port)
        self.secret = secret
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.work_dir = work_dir
        self.clean = clean
        self.connect_timeout = connect_timeout
        self.listen_host = listen_host
        self.janitor = Janitor()
        self.cache = Cache(work_dir / "cache", self.janitor)
        self.sandboxes = Sandboxes(work_dir / "sandbox", self.janitor)
        self.state = WorkerState(cores, memory, disk)
        self.client = TransferClient(secret)
        self.scratch = work_dir / "scratch"
        self.pool = InterpreterPool(cores, self._python_replied, self._python_died, self._results_lost,
                                    cwd=self.scratch)
        self.python: dict[int, tuple[WorkTask, str]] = {}   # handed to an interpreter
        self.python_time = RunningMean()
        self.shells: dict[int, ShellProcess] = {}
        self.jobs: set[asyncio.Task] = set()
        self.stream: MessageStream | None = None
        self.stopping = asyncio.Event()

    # ------------------------------------------------------------ life cycle

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.scratch.mkdir(parents=True, exist_ok=True)
        cached = self.cache.scan()
        self.state.present.update(cached)
        reader, writer = await self._connect()
        self.stream = MessageStream(reader, writer)
        local_host = writer.get_extra_info("sockname")[0]
        server = await asyncio.start_server(self._on_connection, host=self.listen_host or local_host, port=0)
        port = server.sockets[0].getsockname()[1]
        self.stream.send(["hello", {
            "name": self.name, "cores": self.state.cores, "memory": self.state.memory,
            "disk": self.state.disk, "host": local_host, "port": port, "pid": os.getpid(),
            "cached": [[n, s] for n, s in cached.items()]}])
        receiving = asyncio.ensure_future(self._receive())
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait([receiving, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            receiving.cancel()
            stopping.cancel()
            server.close()
            await self._shutdown()

    async def _connect(self):
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        delay = 0.05
        while True:
            try:
                return await connect(*self.manager_addr, self.secret, "control")
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
                for msg in batch:
                    self._on_message(msg)
        except (ConnectionError, OSError) as e:
            log.warning("lost the manager: %s", e)

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

    # ------------------------------------------------------------ manager messages

    def _on_message(self, msg: list[Any]) -> None:
        kind = msg[0]
        if kind == "assign":
            self._do(self.state.assign([self._work_task(spec) for spec in msg[1]]))
        elif kind == "delete":
            self._do(self.state.delete(msg[1]))
        elif kind == "retract":
            returned, started = self.state.retract(msg[1])
            self.stream.send(["retracted", returned, started])
        elif kind == "shutdown":
            self.stopping.set()
        else:
            log.error("unknown message from the manager: %r", kind)

    @staticmethod
    def _work_task(spec: dict[str, Any]) -> WorkTask:
        inputs, sources = [], {}
        for sandbox_name, cache_name, source in spec["in"]:
            if sandbox_name is not None:
                inputs.append((sandbox_name, cache_name))
            sources[cache_name] = source
        cores, memory, disk = spec.get("cores", 1), spec.get("memory", 0), spec.get("disk", 0)
        light = spec["kind"] == "py" and cores == 1 and not memory and not disk and not spec.get("timeout")
        return WorkTask(spec["id"], spec, inputs, [tuple(o) for o in spec["out"]], sources,
                        cores, memory, disk, light=light, result=spec.get("result") if light else None)

    # ------------------------------------------------------------ instructions

    def _do(self, instructions) -> None:
        for i in instructions:
            if isinstance(i, Start):
                self._start(i.task, i.after)
            elif isinstance(i, Fetch):
                self._spawn(self._fetch(i.name, i.source))
            elif isinstance(i, Reject):
                self.stream.send(["failed", i.task, {"reason": i.reason, "message": i.message, "file": i.file,
                                                     "source": _peer_id(i.source)}])
            elif isinstance(i, Remove):
                self.pool.drop(i.name)
                self.cache.remove(i.name)

    def _spawn(self, coro) -> None:
        job = asyncio.ensure_future(coro)
        self.jobs.add(job)
        job.add_done_callback(self.jobs.discard)

    async def _fetch(self, name: str, source: Any) -> None:
        if source == MANAGER_SOURCE:
            (host, port), peer = self.manager_addr, None
        else:
            peer, host, port = source
        try:
            size = await self.client.fetch(host, port, name, self.cache.path(name))
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            where = f"worker {peer}" if peer else "the manager"
            self._do(self.state.fetch_failed(name, f"could not fetch {name} from {where}: {e}"))
            return
        self.cache.adopt(name)
        self.stream.send(["have", [[name, size, peer]]])
        self._do(self.state.file_present(name, size))

    def _start(self, t: WorkTask, after: int | None = None) -> None:
        spec = t.spec
        sandbox = None
        limits = Limits.of(t.memory, t.disk, t.inputs)
        if not spec.get("scratch") or t.inputs or t.outputs or t.disk:
            # an Executor call (which names no files) runs in its interpreter's scratch directory,
            # as a call to a process pool runs in the pool's working directory; with a disk limit,
            # in a sandbox of its own, where what it writes can be measured
            try:
                sandbox = self.sandboxes.acquire(t.inputs, self.cache)
                MARKS.mark(sandbox, t.inputs)
            except OSError as e:
                self._ended(t, None, {"reason": "error", "message": f"could not prepare the sandbox: {e}"})
                return
        if spec["kind"] == "sh":
            out, err = self.sandboxes.log_paths(sandbox)
            try:
                self.shells[t.id] = ShellProcess(spec["cmd"], sandbox, out, err, spec.get("env") or None,
                                                 partial(self._shell_exited, t, sandbox), spec.get("timeout"),
                                                 task=t.id, limits=limits)
            except OSError as e:
                self._ended(t, None, {"reason": "error", "message": f"could not start /bin/sh: {e}"}, sandbox)
        else:
            self.python[t.id] = (t, sandbox)
            request = {"id": t.id, "fn": self.cache.str_path(spec["fn"]), "args": spec["args"],
                       "cwd": sandbox, "env": spec.get("env") or None}
            if limits is not None:
                request["limits"] = limits
            if "result" in spec:
                request.update(result=spec["result"], path=self.cache.str_path(spec["result"]),
                               spill=spec.get("spill", 1 << 62), inline=spec.get("inline", False))
                if "summary" in spec:
                    request["summary"] = spec["summary"]
            refs = spec.get("refs")
            if after is not None:   # behind the call making its input, in the same interpreter
                request["refs"] = {n: self.cache.str_path(n) for n in refs}
                self.pool.submit(t.id, request, None, self.pool.running(after), pin=True)
            elif not refs:
                self.pool.submit(t.id, request, spec.get("timeout"))
            else:
                self._submit_with_refs(t, request, refs)

    def _submit_with_refs(self, t: WorkTask, request: dict, refs: list[str]) -> None:
        """Run where the biggest result it reads is held; others come from spill files."""
        holders = {name: self.pool.holder(name) for name in refs}
        held = [n for n in refs if holders[n] is not None]
        prefer = holders[max(held, key=lambda n: self.state.present.get(n, 0))] if held else None
        paths = {n: (None if holders[n] is prefer and prefer is not None else self.cache.str_path(n))
                 for n in refs}
        request["refs"] = paths
        exports = [self.pool.export(n, self.cache.str_path(n)) for n in refs
                   if holders[n] is not None and holders[n] is not prefer and n not in self.cache.sizes]
        if not exports:
            self.pool.submit(t.id, request, t.spec.get("timeout"), prefer)
            return

        async def after_exports() -> None:
            try:
                for n, size in zip([n for n in refs if holders[n] is not None and holders[n] is not prefer
                                    and n not in self.cache.sizes], await asyncio.gather(*exports)):
                    self.cache.adopt(n)
            except (KeyError, OSError) as e:
                self._finish(t, self.python.pop(t.id)[1], {"reason": "error",
                                                           "message": f"a result it reads was lost: {e}"})
                return
            self.pool.submit(t.id, request, t.spec.get("timeout"), prefer)

        self._spawn(after_exports())

    def _shell_exited(self, t: WorkTask, sandbox: str, code: int, started: float, finished: float) -> None:
        proc = self.shells.pop(t.id)
        usage = None if proc.cpu_time is None else [   # None: the worker is stopping
            proc.peak_memory, proc.cpu_time, sandbox_bytes(sandbox, t.inputs, self.sandboxes.log_paths(sandbox))]
        report = {"exit": code, "started": started, "finished": finished, "logs": True, "usage": usage}
        if proc.ended_by is not None:   # its timeout, or a limit
            report.update(reason=proc.ended_by[0], message=proc.ended_by[1])
        elif code != 0:
            report.update(reason="exit", message=f"exit code {code}")
        self._finish(t, sandbox, report)

    def _python_replied(self, task_id: int, reply: list) -> None:
        t, sandbox = self.python.pop(task_id)
        _, ok, payload, text, started, finished, size, spilled, used = reply
        if ok is None:   # it did not run: an input it reads is not here (its producer failed)
            self._finish(t, sandbox, {"reason": "input", "message": text, "file": payload})
            return
        self.python_time.add(finished - started)
        self.state.python_depth = python_depth(self.python_time.value)
        report: dict[str, Any] = {"started": started, "finished": finished, "exit": 0 if ok else 1, "usage":
                                  None if used is None else [used[0], used[1], sandbox_bytes(sandbox, t.inputs)]}
        if ok:
            if payload is not None:
                report["value"] = payload
            name = t.spec.get("result")
            if name is not None:
                report["result"] = [name, size]
                if spilled:
                    self.cache.adopt(name)
        else:
            last = text.strip().splitlines()[-1] if text.strip() else "exception"
            report.update(reason="exit", message=last, error=payload, stderr=text)
        self._finish(t, sandbox, report)

    def _python_died(self, task_id: int, message: str, reason: str | None) -> None:
        """reason: "timeout", "memory" or "disk" when the pool killed it for that, else None."""
        t, sandbox = self.python.pop(task_id)
        self._finish(t, sandbox, {"reason": reason or "error", "message": message})

    def _finish(self, t: WorkTask, sandbox: str | None, report: dict[str, Any]) -> None:
        """Move outputs into the cache, start what they made ready, then tell the manager."""
        made: dict[str, int] = {}
        if "reason" not in report:
            if t.outputs:
                made, missing = self.sandboxes.collect(sandbox, t.outputs, self.cache)
                if missing:
                    report.update(reason="output", exit=report.get("exit", 0),
                                  message=f"the task did not make its declared output(s): {', '.join(missing)}")
            result = report.pop("result", None)
            if result is not None and "reason" not in report:
                made[result[0]] = result[1]
        self._ended(t, made, report, sandbox)

    def _ended(self, t: WorkTask, made: dict[str, int] | None, report: dict[str, Any],
               sandbox: str | None = None) -> None:
        self._do(self.state.task_ended(t.id, made or None))  # the next member starts here
        if report.pop("logs", False):
            out, err = self.sandboxes.log_paths(sandbox)
            report["stdout"], report["stderr"] = tail(out), tail(err)
        if sandbox is not None:
            self.sandboxes.release(sandbox, t.inputs)
        report["cache"] = [self.cache.bytes, self.cache.peak]
        if "reason" in report:
            self.stream.send(["failed", t.id, report])
        else:
            report["outs"] = [[n, s] for n, s in made.items()]
            self.stream.send(["done", t.id, report])

    # ------------------------------------------------------------ fetch server

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            role = await accept(reader, writer, self.secret)
            if role != "fetch":
                writer.close()
                return
            await serve_fetches(reader, writer, self._lookup)
        except AuthError:
            writer.close()
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
            self.state.present.pop(name, None)
        self.stream.send(["lost", names])


def _peer_id(source: Any) -> str | None:
    if isinstance(source, (list, tuple)):
        return source[0]
    return None


def python_depth(mean_seconds: float) -> int:
    """Light Python tasks queued per interpreter: deep for very short calls, 1 from 2 ms up."""
    if mean_seconds <= 0:
        return 1
    return max(1, min(128, int(0.002 / mean_seconds)))
