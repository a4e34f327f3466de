"""A control link after its handshake: typed messages out and in, in frames.

`MessageStream.send` encodes a message and queues its frame in the link's
Outbox; everything queued in one turn of the event loop goes out in one
write. `batches` yields the messages that one read from the socket held,
decoded and checked (a malformed one raises ProtocolError, which ends the
link).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, AsyncIterator, Callable

from . import codec
from .framing import FRAME_LIMIT, LENGTH, FrameBuffer

BIG_PIECE = 1 << 16     # bytes from which a queued piece is written on its own, not joined
HIGH_WATER = 1 << 20    # bytes a transport may buffer before the rest waits in its Outbox


class Outbox:
    """Pieces for one transport: what is added in one loop turn goes out together, and only
    while the transport buffers less than HIGH_WATER.

    asyncio's socket transport (3.11) copies what it cannot send at once and
    moves its whole buffer after every send, so a backlog of hundreds of
    megabytes (tasks with large arguments, assigned at once) would cost time
    quadratic in its size. Here the backlog waits as the pieces themselves.
    Runs of small pieces are joined into one write; big ones go as they are,
    with no extra copy. When the transport is full, on_full is called (if
    given); the owner calls resume() once the transport has drained (the
    limits are set here, so that its protocol is told).
    """

    def __init__(self, transport: asyncio.WriteTransport, on_full: Callable[[], None] | None = None):
        self.transport = transport
        self.on_full = on_full
        self.backlog: deque[bytes] = deque()
        self._scheduled = False
        transport.set_write_buffer_limits(high=HIGH_WATER, low=HIGH_WATER // 4)

    def add(self, *pieces: bytes) -> None:
        self.backlog.extend(pieces)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.resume)

    def add_frame(self, body: bytes) -> None:
        """Queue one frame: its length, then its body (kept as it is, not copied)."""
        self.add(LENGTH.pack(len(body)), body)

    def resume(self) -> None:
        """Hand pieces over until the backlog is empty or the transport is full."""
        self._scheduled = False
        t, backlog = self.transport, self.backlog
        while backlog:
            if t.is_closing():
                backlog.clear()
                return
            if t.get_write_buffer_size() > HIGH_WATER:
                if self.on_full is not None:
                    self.on_full()
                return
            piece = backlog.popleft()
            if len(piece) < BIG_PIECE:
                run = [piece]
                size = len(piece)
                while backlog and len(backlog[0]) < BIG_PIECE and size < BIG_PIECE:
                    size += len(backlog[0])
                    run.append(backlog.popleft())
                if len(run) > 1:
                    piece = b"".join(run)
            t.write(piece)

    @property
    def waiting(self) -> bool:
        return bool(self.backlog)


class MessageStream:
    """Typed messages over an authenticated connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self._frames = FrameBuffer(FRAME_LIMIT)
        self._sender = Outbox(writer.transport, on_full=self._start_pump)
        self._pump: asyncio.Task | None = None
        self.closed = False

    async def batches(self) -> AsyncIterator[list[Any]]:
        """Yields lists of messages, as many as one read from the socket held."""
        frames, decode = self._frames, codec.decode
        while True:
            data = await self.reader.read(1 << 20)
            if not data:
                return
            bodies = frames.feed(data)
            if bodies:
                yield [decode(body) for body in bodies]

    def send(self, msg: Any) -> None:
        """Queue a message; everything queued in one loop turn goes out in one write."""
        if not self.closed:
            self._sender.add_frame(codec.encode(msg))

    def flush(self) -> None:
        if not self.closed:
            self._sender.resume()

    def _start_pump(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._pump_backlog())

    async def _pump_backlog(self) -> None:
        """Feed the backlog to the transport as its buffer drains."""
        try:
            while self._sender.waiting and not self.writer.is_closing():
                await self.writer.drain()
                self._sender.resume()
        except (ConnectionError, OSError):
            self._sender.backlog.clear()
        finally:
            self._pump = None

    async def drain(self) -> None:
        self.flush()
        while self._sender.waiting and not self.writer.is_closing():
            await self.writer.drain()
            self._sender.resume()
        if not self.writer.is_closing():
            await self.writer.drain()

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            self.writer.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent data and all (the other side is given up on)."""
        self.closed = True
        self._sender.backlog.clear()
        self.writer.transport.abort()
