"""Length-prefixed frames: the one way bytes are cut into messages, on every link.

A frame is a 4-byte big-endian length and that many bytes of msgpack. The
manager's and the workers' control links, the fetch links' requests and
headers, the handshake and the interpreter link all use these helpers:
`frame` to make one, `FrameBuffer` to cut a byte stream into frames
(no I/O, so the interpreter's blocking socket and asyncio's protocols share
it), and `read_frame` for an asyncio StreamReader.
"""
from __future__ import annotations

import asyncio
import struct

import msgpack

from .errors import ProtocolError

LENGTH = struct.Struct("!I")
FRAME_LIMIT = 1 << 30           # largest frame after authentication
HANDSHAKE_LIMIT = 4096          # largest frame before it

# what msgpack may build from one frame: far beyond any real message, far below a memory bomb
_UNPACK_LIMITS = dict(max_str_len=64 << 20, max_bin_len=FRAME_LIMIT, max_array_len=4 << 20,
                      max_map_len=1 << 16, max_ext_len=0)


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


SMALL = 1 << 16   # msgpack's own limits follow a body's length: a small body cannot build much


def unpack(body: bytes | memoryview):
    """One msgpack object from a frame's body; anything malformed is the protocol's error."""
    try:
        if len(body) <= SMALL:
            return msgpack.unpackb(body, raw=False)
        return msgpack.unpackb(body, raw=False, **_UNPACK_LIMITS)
    except (ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException, RecursionError) as e:
        raise ProtocolError(f"a frame is not well-formed msgpack: {type(e).__name__}: {e}") from None


def frame(body: bytes) -> bytes:
    """A frame around an already packed body."""
    return LENGTH.pack(len(body)) + body


def frame_obj(obj) -> bytes:
    return frame(pack(obj))


class FrameBuffer:
    """Bytes in, frame bodies out; no I/O."""

    __slots__ = ("_data", "limit")

    def __init__(self, limit: int = FRAME_LIMIT):
        self._data = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the bodies of the frames now complete, in order."""
        buf = self._data
        buf += data
        bodies = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (size,) = LENGTH.unpack_from(buf, pos)
            if size > self.limit:
                raise ProtocolError(f"a frame of {size} bytes exceeds the limit of {self.limit}")
            if end - pos - 4 < size:
                break
            bodies.append(bytes(buf[pos + 4:pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return bodies

    def has_frame(self) -> bool:
        buf = self._data
        return len(buf) >= 4 and len(buf) >= 4 + LENGTH.unpack_from(buf)[0]

    @property
    def pending(self) -> int:
        return len(self._data)


async def read_frame(reader: asyncio.StreamReader, limit: int = FRAME_LIMIT) -> bytes:
    """The body of the next frame on a stream."""
    head = await reader.readexactly(4)
    (size,) = LENGTH.unpack(head)
    if size > limit:
        raise ProtocolError(f"a frame of {size} bytes exceeds the limit of {limit}")
    return await reader.readexactly(size)
