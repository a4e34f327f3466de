"""The worker's pool of warm Python interpreters (see interpreter.py for the child).

One interpreter runs one task at a time; the worker's own accounting of
cores decides how many run at once, so the pool only starts interpreters
when none is idle. An interpreter that dies (the task called os._exit,
crashed, or was killed for its timeout) fails its task and is replaced on
next use.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
from typing import Any

import msgpack

_LEN = struct.Struct("!I")


class InterpreterDied(RuntimeError):
    pass


class Interpreter:
    def __init__(self, proc: subprocess.Popen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.proc = proc
        self.reader = reader
        self.writer = writer

    @classmethod
    async def start(cls, env: dict[str, str] | None = None) -> "Interpreter":
        parent, child = socket.socketpair()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "tether.worker.interpreter", str(child.fileno())],
                                    pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, env=env)
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 20)
        return cls(proc, reader, writer)

    async def call(self, request: dict[str, Any]) -> list[Any]:
        body = msgpack.packb(request, use_bin_type=True)
        self.writer.write(_LEN.pack(len(body)) + body)
        try:
            head = await self.reader.readexactly(4)
            return msgpack.unpackb(await self.reader.readexactly(_LEN.unpack(head)[0]), raw=False)
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await asyncio.get_running_loop().run_in_executor(None, self.proc.wait)
            raise InterpreterDied(f"the Python interpreter running the task died (exit code {code})") from None

    def kill(self) -> None:
        try:
            self.proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.writer.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()


class InterpreterPool:
    def __init__(self, env: dict[str, str] | None = None):
        self.env = env
        self.idle: list[Interpreter] = []
        self.busy: dict[int, Interpreter] = {}   # task id -> interpreter

    async def run(self, task_id: int, request: dict[str, Any], timeout: float | None = None) -> list[Any]:
        interp = self.idle.pop() if self.idle else await Interpreter.start(self.env)
        self.busy[task_id] = interp
        try:
            if timeout:
                try:
                    reply = await asyncio.wait_for(interp.call(request), timeout)
                except asyncio.TimeoutError:
                    interp.kill()
                    interp.close()
                    raise
            else:
                reply = await interp.call(request)
        except BaseException:
            self.busy.pop(task_id, None)
            if interp.proc.poll() is None:
                interp.kill()
            interp.close()
            raise
        self.busy.pop(task_id, None)
        self.idle.append(interp)
        return reply

    def kill(self, task_id: int) -> None:
        interp = self.busy.get(task_id)
        if interp is not None:
            interp.kill()

    def close(self) -> None:
        for interp in self.busy.values():
            interp.kill()
        for interp in self.idle + list(self.busy.values()):
            interp.close()
        self.idle.clear()
        self.busy.clear()


def interpreter_env(extra_path: list[str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(extra_path + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
