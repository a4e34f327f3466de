"""Outbox: a backlog far larger than the transport's buffer arrives whole and in order, over a real socket."""
from __future__ import annotations

import asyncio
import hashlib
import os
import socket

from tether.wire.stream import HIGH_WATER, Outbox


class Sink(asyncio.Protocol):
    """Reads everything slowly-ish and keeps a running hash."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.done = asyncio.get_running_loop().create_future()
        self.expected = 0

    def data_received(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        if self.size >= self.expected and not self.done.done():
            self.done.set_result(None)


class Source(asyncio.Protocol):
    def __init__(self) -> None:
        self.sender: Outbox | None = None

    def connection_made(self, transport) -> None:
        self.sender = Outbox(transport)

    def resume_writing(self) -> None:
        self.sender.resume()


def test_backlog_of_large_and_small_pieces_arrives_in_order_with_a_bounded_buffer():
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        sink = Sink()
        await loop.connect_accepted_socket(lambda: sink, b)
        transport, source = await loop.connect_accepted_socket(Source, a)
        pieces = []
        for i in range(40):   # 40 MB of 1 MB pieces, each between small ones
            pieces += [b"h%d" % i, os.urandom(1 << 20), b"t" * (i % 7)]
        expected = hashlib.sha256(b"".join(pieces)).hexdigest()
        sink.expected = sum(map(len, pieces))
        source.sender.add(*pieces[:60])
        source.sender.resume()                     # hand over what the transport may hold now
        source.sender.add(*pieces[60:])            # more while a backlog waits: appended after it
        assert source.sender.waiting               # far more than the transport may hold
        peak = 0
        while not sink.done.done():
            peak = max(peak, transport.get_write_buffer_size())
            await asyncio.sleep(0)
        assert sink.hash.hexdigest() == expected and sink.size == sink.expected
        assert not source.sender.waiting
        assert peak <= HIGH_WATER + (1 << 20) + 64      # at most one piece over the mark
        transport.close()
    asyncio.run(main())
