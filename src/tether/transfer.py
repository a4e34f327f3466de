"""Moving file bytes: a fetch server any side can run, and a pooled client.

A fetch connection (role "fetch" in the handshake) carries Get(cache name)
requests, each answered by Found(size) and then exactly size raw bytes
(sent with sendfile where the file is on disk and the link is not
encrypted), or by Absent(name). The receiver pulls; file bytes never go
through pickle or msgpack, and never through the manager unless it is an
end. Over TLS (see wire/tls.py) the same bytes travel encrypted.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Callable

from .wire import codec
from .wire import messages as m
from .wire.errors import ProtocolError
from .wire.framing import frame, read_frame
from .wire.handshake import connect
from .wire.tls import TlsConfig

HEADER_LIMIT = 64 * 1024
CHUNK = 1 << 20

# lookup(name) -> a Path to send, bytes to send, None when absent, or a coroutine giving one of those
Lookup = Callable[[str], Any]


class FileMissing(FileNotFoundError):
    """The server does not hold the requested file."""


class DestinationError(Exception):
    """The bytes arrived but could not be written where they were to go.

    `error` is the OSError from this side's file system (a directory at the
    path, a missing parent, a full disk): a fault of the destination, not of
    the server or the network.
    """

    def __init__(self, dest: Path, error: OSError):
        super().__init__(f"could not write {dest}: {error}")
        self.dest = dest
        self.error = error


async def serve_fetches(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lookup: Lookup,
                        on_sent: Callable[[str, int], None] | None = None) -> None:
    """Answer get requests on one authenticated connection until it closes."""
    loop = asyncio.get_running_loop()
    plain = writer.get_extra_info("ssl_object") is None   # sendfile only where nothing is encrypted
    try:
        while True:
            try:
                req = codec.decode(await read_frame(reader, HEADER_LIMIT))
            except (asyncio.IncompleteReadError, ProtocolError):
                return
            if type(req) is not m.Get:
                return
            name = req.name
            found = lookup(name)
            if asyncio.iscoroutine(found):  # made ready on request (a result held in memory)
                found = await found
            if isinstance(found, (bytes, bytearray, memoryview)):
                writer.write(frame(codec.encode(m.Found(len(found)))))
                writer.write(found)
                await writer.drain()
                sent = len(found)
            elif found is not None:
                try:
                    f = open(found, "rb")
                except FileNotFoundError:
                    writer.write(frame(codec.encode(m.Absent(name))))
                    await writer.drain()
                    continue
                with f:
                    sent = os.fstat(f.fileno()).st_size
                    writer.write(frame(codec.encode(m.Found(sent))))
                    await writer.drain()
                    if sent and plain:
                        await loop.sendfile(writer.transport, f, 0, sent)
                    elif sent:
                        await _copy(f, writer, sent)
            else:
                writer.write(frame(codec.encode(m.Absent(name))))
                await writer.drain()
                continue
            if on_sent is not None:
                on_sent(name, sent)
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def _copy(f, writer: asyncio.StreamWriter, size: int) -> None:
    """A file's bytes through an encrypted transport, a chunk at a time."""
    left = size
    while left:
        chunk = f.read(min(left, CHUNK))
        if not chunk:
            raise ConnectionError("the file shrank while it was sent")
        writer.write(chunk)
        await writer.drain()
        left -= len(chunk)


PER_SERVER = 8   # fetches from one server at once, each on a connection of its own


class TransferClient:
    """Fetches files from fetch servers, keeping the idle connections for the next fetch.

    At most PER_SERVER fetches run against one server at once, the others
    wait their turn: a burst (the manager bringing a thousand results home
    at once) reuses a few connections instead of opening one per file, which
    would also overrun the server's limit of connections in their handshake.
    """

    def __init__(self, secret: bytes, tls: TlsConfig | None = None):
        self.secret = secret
        self.tls = tls if tls is not None else TlsConfig(secret)
        self._idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self._turns: dict[tuple[str, int], asyncio.Semaphore] = {}

    async def _connection(self, host: str, port: int):
        pool = self._idle.get((host, port))
        while pool:
            reader, writer = pool.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
        return await connect(host, port, self.secret, "fetch", self.tls, limit=4 * CHUNK)

    async def fetch(self, host: str, port: int, name: str, dest: Path | None = None) -> int | bytes:
        """Copy name from host:port into dest (returns its size), or into memory (returns bytes).

        dest is written under a temporary name and renamed when complete, so a
        half-received file never appears under its real name.
        """
        turn = self._turns.get((host, port))
        if turn is None:
            turn = self._turns[(host, port)] = asyncio.Semaphore(PER_SERVER)
        async with turn:
            return await self._fetch(host, port, name, dest)

    async def _fetch(self, host: str, port: int, name: str, dest: Path | None) -> int | bytes:
        reader, writer = await self._connection(host, port)
        try:
            writer.write(frame(codec.encode(m.Get(name))))
            await writer.drain()
            head = codec.decode(await read_frame(reader, HEADER_LIMIT))
            if type(head) is m.Absent:
                self._idle.setdefault((host, port), []).append((reader, writer))
                raise FileMissing(f"{host}:{port} does not hold {name}")
            if type(head) is not m.Found:
                raise ProtocolError(f"{host}:{port} answered a request with {type(head).__name__}")
            size = head.size
            if dest is None:
                result: int | bytes = await reader.readexactly(size)
            else:
                part = dest.with_name(dest.name + f".part{os.getpid()}")
                try:
                    try:
                        f = open(part, "wb")
                    except OSError as e:
                        raise DestinationError(dest, e) from None
                    with f:
                        remaining = size
                        while remaining:
                            chunk = await reader.read(min(remaining, CHUNK))
                            if not chunk:
                                raise ConnectionError(f"{host}:{port} closed during {name}")
                            try:
                                f.write(chunk)
                            except OSError as e:
                                raise DestinationError(dest, e) from None
                            remaining -= len(chunk)
                    try:
                        os.replace(part, dest)
                    except OSError as e:
                        raise DestinationError(dest, e) from None
                except BaseException:
                    try:
                        part.unlink(missing_ok=True)
                    except OSError:
                        pass
                    raise
                result = size
        except FileMissing:
            raise
        except BaseException:
            writer.close()
            raise
        self._idle.setdefault((host, port), []).append((reader, writer))
        return result

    def close(self) -> None:
        for pool in self._idle.values():
            for _, writer in pool:
                writer.close()
        self._idle.clear()
