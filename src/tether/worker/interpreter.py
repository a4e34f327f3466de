"""A warm Python interpreter: the child process that runs Python tasks.

The worker keeps one per core and talks to each over a socket pair with
length-prefixed msgpack frames. Requests may arrive several at a time; they
run one after another, in order. Functions arrive as cache files (content
named, so each is unpickled once per interpreter); arguments arrive inline.
A request runs with the task's sandbox as working directory.

    request  {"id", "fn": cache path, "args": pickled (args, kwargs), "cwd", "env"}
    reply    [id, ok, payload, traceback text, started, finished]

payload is the pickled return value, or the pickled exception when ok is
false (or None when the exception cannot be pickled: the traceback text
then says what happened).

Replies are written together when more requests are already waiting, so a
stream of short tasks costs one write per batch, not per task; a reply is
never held back for longer than HOLD seconds.

Run as `python -m tether.worker.interpreter FD`.
"""
from __future__ import annotations

import os
import pickle
import select
import socket
import struct
import sys
import time
import traceback

import cloudpickle
import msgpack

_LEN = struct.Struct("!I")
HOLD = 0.001


def dumps(value) -> bytes:
    """Pickle with protocol 5; fall back to cloudpickle for lambdas, local classes and the like."""
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        return cloudpickle.dumps(value, protocol=5)


class Channel:
    """Frames in and out over the socket pair, buffered both ways."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbox = bytearray()
        self.outbox: list[bytes] = []
        self.held_since = 0.0

    def _frame(self):
        if len(self.inbox) < 4:
            return None
        (size,) = _LEN.unpack_from(self.inbox)
        if len(self.inbox) < 4 + size:
            return None
        body = bytes(self.inbox[4:4 + size])
        del self.inbox[:4 + size]
        return msgpack.unpackb(body, raw=False)

    def waiting(self) -> bool:
        """Is a whole request here already, or on the socket now?"""
        if self._frame_ready():
            return True
        if select.select([self.sock], [], [], 0)[0]:
            return self._fill()
        return False

    def _frame_ready(self) -> bool:
        return len(self.inbox) >= 4 and len(self.inbox) >= 4 + _LEN.unpack_from(self.inbox)[0]

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.inbox += data
        return self._frame_ready()

    def receive(self):
        while True:
            msg = self._frame()
            if msg is not None:
                return msg
            self.flush()
            self._fill()

    def reply(self, msg) -> None:
        body = msgpack.packb(msg, use_bin_type=True)
        if not self.outbox:
            self.held_since = time.monotonic()
        self.outbox.append(_LEN.pack(len(body)) + body)

    def flush(self) -> None:
        if self.outbox:
            self.sock.sendall(b"".join(self.outbox))
            self.outbox.clear()

    def maybe_flush(self) -> None:
        if time.monotonic() - self.held_since > HOLD or not self.waiting():
            self.flush()


def run(req, functions: dict, home: str, base_env: dict) -> list:
    tid = req["id"]
    started = time.time()
    try:
        fn = functions.get(req["fn"])
        if fn is None:
            with open(req["fn"], "rb") as f:
                fn = functions[req["fn"]] = cloudpickle.load(f)
        args, kwargs = pickle.loads(req["args"])
        if req.get("env"):
            os.environ.update(req["env"])
        os.chdir(req["cwd"])
        started = time.time()
        value = fn(*args, **kwargs)
        finished = time.time()
        return [tid, True, dumps(value), "", started, finished]
    except BaseException as e:  # the task's failure, reported, never the interpreter's
        finished = time.time()
        text = traceback.format_exc()
        try:
            payload = dumps(e)
            pickle.loads(payload)
        except Exception:
            payload = None
        if isinstance(e, KeyboardInterrupt):
            raise
        return [tid, False, payload, text, started, finished]
    finally:
        os.chdir(home)
        if req.get("env"):
            os.environ.clear()
            os.environ.update(base_env)


def serve(sock: socket.socket) -> None:
    functions: dict[str, object] = {}
    home = os.getcwd()
    base_env = dict(os.environ)
    channel = Channel(sock)
    try:
        while True:
            channel.reply(run(channel.receive(), functions, home, base_env))
            channel.maybe_flush()
    except EOFError:
        return


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
