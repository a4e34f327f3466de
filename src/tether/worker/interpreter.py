"""A warm Python interpreter: the child process that runs Python tasks.

The worker keeps one per core and talks to each over a socket pair with
the wire's messages in frames (wire/messages.py). Requests may arrive
several at a time; they run one after another, in order, and each but Drop
gets one reply:

    Call    -> CallReply (ok None: not run, an input it reads is not here; payload
               names it), and first, for a watched call (it has limits), at once
               as it begins: Started(id, RSS in bytes)
    Export  -> Exported(name, size)        (spill a held result to a file)
    Drop                                    (forget held results)

A call runs with its sandbox as working directory ("cwd"), or, for an
Executor call (cwd None), in the interpreter's own, a scratch directory of
the worker's. A call that names a context (a cache file: see contexts.py)
has it set up first if this interpreter has not, and reads its value with
tether.context(); the setup's time is the call's.

Functions arrive as cache files (content named, so each is unpickled once
per interpreter); arguments arrive inline, with ResultRefs where a result
that stays on the workers is meant. A ref is replaced by the value held in
this interpreter's memory, or read from its spill file (refs maps it to a
path). A call that names a result keeps its value here, or spills it to the
cache when it is larger than "spill" bytes, and replies only its size
(and, when the request carries a "summary" function, that function's
return for the value as the payload: a small part of a result that stays
here); a kept result of at most "inline" bytes, with no summary asked
for, is the payload too, so that its Future needs no fetch; a call that
names no result (Manager tasks, Executor.map) has its value as the payload. payload is the pickled exception when ok is false
(None when it cannot be pickled: the traceback text says what happened). That text shows the user's
frames only (user_traceback): tether's, and pickle's, are no help to whoever reads it. A value that
cannot be pickled to go back fails its call with a SerializationError naming the part that failed.

Each call runs with the tag of its attempt in the environment (reaper.TAG),
which its child processes inherit. The interpreter is a child subreaper:
orphans of the processes a call started come to it, and when the call
returns, every child it has (the call's leftovers) is killed with its tree
and waited for, before the reply; a metered call that never blocked nor
forked cannot have started one, and is not looked after. What a task's
call used is measured around it (usage.CallMeter), for three system
calls; an Executor call (no sandbox: cwd None) makes no TaskResult and is
not metered.

Each reply is written as its call ends, before the next call starts: a
reply held back for a batch would wait for however long the next call runs
(a short call's value behind a long call, and lost with the interpreter if
that call kills it). Requests are still read in batches.

Run as `python -m tether.worker.interpreter FD`.
"""
from __future__ import annotations

import copyreg
import os
import pickle
import socket
import sys
import time
import traceback

import cloudpickle

from .. import spill
from ..refs import ResultRef, replace
from ..wire import codec
from ..wire import messages as m
from ..wire.framing import LENGTH, FrameBuffer
from .contexts import Contexts
from .reaper import TAG, Children, become_subreaper, end_children
from .usage import CallMeter


def dumps(value) -> bytes:
    """Pickle with protocol 5; fall back to cloudpickle for lambdas, local classes and the like."""
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:   # cloudpickle's try below, out of this handler: its error alone is reported
        pass
    return cloudpickle.dumps(value, protocol=5)


class Channel:
    """Messages in and out over the socket pair, in frames, buffered both ways."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.frames = FrameBuffer()
        self.inbox: list[bytes] = []
        self.outbox: list[bytes] = []

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.inbox.extend(self.frames.feed(data))

    def receive(self):
        while not self.inbox:
            self.flush()
            self._fill()
        return codec.decode(self.inbox.pop(0))

    def reply(self, msg) -> None:
        body = codec.encode(msg)
        self.outbox.append(LENGTH.pack(len(body)) + body)

    def flush(self) -> None:
        if self.outbox:
            self.sock.sendall(b"".join(self.outbox))
            self.outbox.clear()

    def send_now(self, msg) -> None:
        self.reply(msg)
        self.flush()


class Interpreter:
    def __init__(self, notify=None) -> None:
        self.notify = notify   # sends a frame at once (the start of a watched call)
        self.functions: dict[str, object] = {}
        self.held: dict[str, object] = {}   # results kept in memory
        self.contexts = Contexts()
        self.home = os.getcwd()
        self.base_env = dict(os.environ)
        self.meter = CallMeter()
        self.children = Children()

    def handle(self, req):
        kind = type(req)
        if kind is m.Call:
            return self.run(req)
        if kind is m.Export:
            return m.Exported(req.name, spill.write(req.path, spill.dump(self.held[req.name])))
        if kind is m.Drop:
            for name in req.names:
                self.held.pop(name, None)
            return None
        raise ValueError(f"the worker sent {kind.__name__}, which it does not send here")

    def _summary_function(self, pickled: bytes):
        fn = self.functions.get(pickled)
        if fn is None:
            fn = self.functions[pickled] = cloudpickle.loads(pickled)
        return fn

    def _absent(self, refs: dict) -> str | None:
        for name, path in refs.items():
            if name not in self.held and not (path and os.path.exists(path)):
                return name
        return None

    def _value_of(self, ref: ResultRef, paths: dict):
        if ref.name in self.held:
            return self.held[ref.name]
        return spill.read(paths[ref.name])

    def run(self, req: m.Call) -> m.CallReply:
        """Run one call; what it left running ends with it; what it used goes with the reply."""
        if req.tag:
            os.environ[TAG] = req.tag
        if req.cwd is None:   # an Executor call: no TaskResult is made of it, nothing to meter
            reply = self._call(req)
            if self.children.any():
                end_children()
            return m.CallReply(*reply)
        meter = self.meter
        meter.start()
        if req.watch:
            self.notify(m.Started(req.id, meter.start_rss))
        reply = self._call(req)
        spawned = meter.ended()
        if spawned and self.children.any():
            end_children()
        figures = meter.figures(spawned)
        return m.CallReply(*reply, None if figures is None else tuple(figures))

    def _call(self, req: m.Call) -> tuple:
        """(id, ok, payload, text, started, finished, size, spilled): a CallReply but its usage."""
        tid = req.id
        started = time.time()
        try:
            fn = self.functions.get(req.fn)
            if fn is None:
                with open(req.fn, "rb") as f:
                    fn = self.functions[req.fn] = cloudpickle.load(f)
            args, kwargs = pickle.loads(req.args)
            refs = req.refs
            if refs:
                absent = self._absent(refs)
                if absent is not None:   # not run: what it reads was not made (its producer failed)
                    return tid, None, absent, f"its input {absent} is not here", started, started, 0, False
                swap = lambda v: self._value_of(v, refs) if type(v) is ResultRef else None  # noqa: E731
                args, kwargs = replace(args, swap), replace(kwargs, swap)
            if req.env:
                os.environ.update(req.env)
            started = time.time()
            if req.context is not None:   # set up here, out of the sandbox: its value outlives the call
                self.contexts.enter(req.context)
            if req.cwd:
                os.chdir(req.cwd)
            value = fn(*args, **kwargs)
            finished = time.time()
            name = req.result
            if name is None:
                return tid, True, _pickled_result(req, fn, value, dumps), "", started, finished, 0, False
            summary = req.summary
            payload = None if summary is None else dumps(self._summary_function(summary)(value))
            size, parts = _pickled_result(req, fn, value, spill.measure)
            if size > req.spill:
                size = spill.write(req.path, parts or spill.dump(value))
                return tid, True, payload, "", started, finished, size, True
            self.held[name] = value
            if payload is None and size <= req.inline:   # small: the manager gets it with the reply
                payload = spill.to_bytes(parts or spill.dump(value))
            return tid, True, payload, "", started, finished, size, False
        except BaseException as e:  # the task's failure, reported, never the interpreter's
            finished = time.time()
            text = user_traceback(e)
            try:
                payload = dumps(e)
                pickle.loads(payload)
            except Exception:
                payload = None
            if isinstance(e, KeyboardInterrupt):
                raise
            return tid, False, payload, text, started, finished, 0, False
        finally:
            if req.context is not None:
                self.contexts.leave()
            if req.cwd:
                os.chdir(self.home)
            if req.env:
                os.environ.clear()
                os.environ.update(self.base_env)


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep   # tether's own files
_PICKLING = tuple(os.path.abspath(m.__file__) for m in (pickle, copyreg, cloudpickle.cloudpickle))


def _internal(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or os.path.abspath(filename) in _PICKLING


def _user_frames(tb) -> bool:
    while tb is not None:
        if not _internal(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False


def user_traceback(e: BaseException) -> str:
    """The traceback of a call's failure as the user's code sees it: tether's frames, and pickle's
    (a return value that cannot be pickled), are left out, and a header with no frame left under it."""
    parts = []
    for part in traceback.TracebackException.from_exception(e).format():
        if part.startswith("  File ") and _internal(part[8:].split('"', 1)[0]):
            continue   # the frame's line, with its source lines (one part)
        parts.append(part)
    header = "Traceback (most recent call last):\n"
    return "".join(p for i, p in enumerate(parts)
                   if p != header or (i + 1 < len(parts) and parts[i + 1].startswith("  ")))


def _pickled_result(req: m.Call, fn, value, pickle_it):
    """pickle_it(value); a value that cannot be pickled raises SerializationError naming the task,
    its function, and the part of the value that failed."""
    try:
        return pickle_it(value)
    except Exception as e:
        from ..pickling import find_unpicklable, type_name
        from ..task import SerializationError

        path, part = find_unpicklable(value)
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        why = str(e) if isinstance(e, TypeError) else f"{type(e).__name__}: {e}"
        raise SerializationError(
            f"task {req.id} ({name}): its return value, a {type_name(value)}, cannot be pickled to send it "
            f"back: result{path} is a {type_name(part)}: {why}", task_id=req.id, function=name,
            what="the return value", type_name=type_name(part)) from (e if _user_frames(e.__traceback__) else None)


def serve(sock: socket.socket) -> None:
    channel = Channel(sock)
    interpreter = Interpreter(notify=channel.send_now)
    try:
        while True:
            reply = interpreter.handle(channel.receive())
            if reply is not None:
                channel.send_now(reply)
    except EOFError:
        return


def preload(modules: list[str]) -> None:
    """Import what the worker was told every interpreter needs, before the first call arrives."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:   # the calls that need it will say so themselves
            print(f"tether interpreter: could not preload {name}: {type(e).__name__}: {e}", file=sys.stderr)


def main() -> None:
    become_subreaper()
    sock = socket.socket(fileno=int(sys.argv[1]))
    preload([m for m in sys.argv[2:3] and sys.argv[2].split(",") if m])
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
