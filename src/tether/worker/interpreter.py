"""A warm Python interpreter: the child process that runs Python tasks.

The worker keeps one per core and talks to each over a socket pair with
length-prefixed msgpack frames. Functions arrive as cache files (content
named, so each is unpickled once per interpreter); arguments arrive inline.
A request runs with the task's sandbox as working directory.

    request  {"id", "fn": cache path, "args": pickled (args, kwargs), "cwd", "env"}
    reply    [id, ok, payload, traceback text, started, finished]

payload is the pickled return value, or the pickled exception when ok is
false (or None when the exception cannot be pickled: the traceback text
then says what happened).

Run as `python -m tether.worker.interpreter FD`.
"""
from __future__ import annotations

import os
import pickle
import socket
import struct
import sys
import time
import traceback

import cloudpickle
import msgpack

_LEN = struct.Struct("!I")


def _recv_exact(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            return None
        got += k
    return buf


def dumps(value) -> bytes:
    """Pickle with protocol 5; fall back to cloudpickle for lambdas, local classes and the like."""
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:
        return cloudpickle.dumps(value, protocol=5)


def serve(sock: socket.socket) -> None:
    functions: dict[str, object] = {}
    home = os.getcwd()
    base_env = dict(os.environ)
    while True:
        head = _recv_exact(sock, 4)
        if head is None:
            return
        req = msgpack.unpackb(_recv_exact(sock, _LEN.unpack(head)[0]), raw=False)
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
            reply = [tid, True, dumps(value), "", started, finished]
        except BaseException as e:  # the task's failure, reported, never the interpreter's
            finished = time.time()
            text = traceback.format_exc()
            try:
                payload = dumps(e)
                pickle.loads(payload)
            except Exception:
                payload = None
            reply = [tid, False, payload, text, started, finished]
            if isinstance(e, KeyboardInterrupt):
                raise
        finally:
            os.chdir(home)
            if req.get("env"):
                os.environ.clear()
                os.environ.update(base_env)
        body = msgpack.packb(reply, use_bin_type=True)
        sock.sendall(_LEN.pack(len(body)) + body)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
