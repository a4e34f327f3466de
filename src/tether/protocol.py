"""Frames, the authentication handshake, and the control message stream.

Every connection opens with a handshake in length-prefixed msgpack frames:

    server -> client   ["tether", VERSION, server_nonce]
    client -> server   ["auth", role, client_nonce, HMAC(secret, "client" | server_nonce | client_nonce | role)]
    server -> client   ["welcome", HMAC(secret, "server" | client_nonce | server_nonce)]

Both sides prove they know the secret; the secret itself never crosses the
wire. A client that fails is disconnected without a word. Before the
handshake completes, frames are limited to a few kilobytes and the whole
exchange to a few seconds.

After it, a "control" connection carries a plain msgpack stream (no length
prefix, read with msgpack's streaming Unpacker); a "fetch" connection
carries length-prefixed request frames, each answered by a header frame and
then the file's raw bytes (see transfer.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import struct
from collections import deque
from typing import Any, AsyncIterator, Callable

import msgpack

VERSION = 1
NONCE_BYTES = 32
HANDSHAKE_LIMIT = 4096        # bytes in any frame before authentication
HANDSHAKE_TIMEOUT = 10.0      # seconds for the whole handshake
FRAME_LIMIT = 1 << 30         # largest frame after authentication
_LEN = struct.Struct("!I")


class AuthError(ConnectionError):
    """The other side could not prove it knows the secret."""


class ProtocolError(ConnectionError):
    """The other side sent something this protocol does not allow."""


def new_secret() -> bytes:
    """A random secret, as text so that it can live in a file and be typed."""
    return os.urandom(32).hex().encode()


def read_secret_file(path: str | os.PathLike) -> bytes:
    data = open(path, "rb").read().strip()
    if len(data) < 16:
        raise ValueError(f"secret file {path} holds {len(data)} bytes; at least 16 are needed")
    return data


def pack(msg: Any) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


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


def frame(msg: Any) -> bytes:
    body = pack(msg)
    return _LEN.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader, limit: int = FRAME_LIMIT) -> Any:
    head = await reader.readexactly(4)
    (size,) = _LEN.unpack(head)
    if size > limit:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {limit}")
    return msgpack.unpackb(await reader.readexactly(size), raw=False)


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"|".join(parts), hashlib.sha256).digest()


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes) -> str:
    """Server side of the handshake. Returns the client's role; raises AuthError."""
    async def run() -> str:
        server_nonce = os.urandom(NONCE_BYTES)
        writer.write(frame(["tether", VERSION, server_nonce]))
        await writer.drain()
        msg = await read_frame(reader, HANDSHAKE_LIMIT)
        if not (isinstance(msg, list) and len(msg) == 4 and msg[0] == "auth"
                and isinstance(msg[1], str) and isinstance(msg[2], bytes) and isinstance(msg[3], bytes)):
            raise AuthError("malformed handshake")
        _, role, client_nonce, proof = msg
        expected = _mac(secret, b"client", server_nonce, client_nonce, role.encode())
        if len(client_nonce) != NONCE_BYTES or not hmac.compare_digest(proof, expected):
            raise AuthError("client did not prove it knows the secret")
        writer.write(frame(["welcome", _mac(secret, b"server", client_nonce, server_nonce)]))
        await writer.drain()
        return role

    try:
        return await asyncio.wait_for(run(), HANDSHAKE_TIMEOUT)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ProtocolError, ValueError,
            msgpack.UnpackException) as e:
        raise AuthError(f"handshake failed: {type(e).__name__}") from None


async def connect(host: str, port: int, secret: bytes, role: str, *,
                  limit: int = 1 << 20) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open an authenticated connection in the given role ("control" or "fetch")."""
    reader, writer = await asyncio.open_connection(host, port, limit=limit)
    try:
        async def run() -> None:
            hello = await read_frame(reader, HANDSHAKE_LIMIT)
            if not (isinstance(hello, list) and len(hello) == 3 and hello[0] == "tether"):
                raise ProtocolError(f"{host}:{port} does not speak the tether protocol")
            if hello[1] != VERSION:
                raise ProtocolError(f"{host}:{port} speaks protocol version {hello[1]}, this is {VERSION}")
            server_nonce = hello[2]
            client_nonce = os.urandom(NONCE_BYTES)
            writer.write(frame(["auth", role, client_nonce,
                                _mac(secret, b"client", server_nonce, client_nonce, role.encode())]))
            await writer.drain()
            try:
                answer = await read_frame(reader, HANDSHAKE_LIMIT)
            except asyncio.IncompleteReadError:
                raise AuthError(f"{host}:{port} refused the secret") from None
            if not (isinstance(answer, list) and answer[0] == "welcome" and hmac.compare_digest(
                    answer[1], _mac(secret, b"server", client_nonce, server_nonce))):
                raise AuthError(f"{host}:{port} could not prove it knows the secret")

        await asyncio.wait_for(run(), HANDSHAKE_TIMEOUT)
    except BaseException:
        writer.close()
        raise
    return reader, writer


class MessageStream:
    """Control messages after the handshake: a msgpack stream, read in bulk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=FRAME_LIMIT)
        self._sender = Outbox(writer.transport, on_full=self._start_pump)
        self._pump: asyncio.Task | None = None
        self.closed = False

    async def batches(self) -> AsyncIterator[list[Any]]:
        """Yields lists of messages, as many as one read from the socket held."""
        while True:
            data = await self.reader.read(1 << 20)
            if not data:
                return
            self._unpacker.feed(data)
            batch = list(self._unpacker)
            if batch:
                yield batch

    def send(self, msg: Any) -> None:
        """Queue a message; everything queued in one loop turn goes out in one write."""
        if not self.closed:
            self._sender.add(pack(msg))

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
