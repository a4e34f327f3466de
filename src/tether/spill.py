"""Python values as bytes and files: pickle protocol 5 with out-of-band buffers.

Large buffers (numpy arrays, bytes, memoryviews) are not copied into the
pickle stream: they travel beside it, and a value read back from a file is
built on a memory map of that file, so a consumer on the same machine reads
the producer's array without a copy.

Layout: b"TSP1", u32 buffer count, u64 header length, u64 each buffer's
length, the pickle header, then the buffers, each starting on an 8-byte
boundary so that arrays built on the map are aligned.
"""
from __future__ import annotations

import mmap
import pickle
import struct

import cloudpickle

MAGIC = b"TSP1"
_HEAD = struct.Struct("<4sIQ")
ALIGN = 8


class Parts:
    """A value pickled with its large buffers kept apart."""

    __slots__ = ("header", "buffers", "size")

    def __init__(self, header: bytes, buffers: list[memoryview]):
        self.header = header
        self.buffers = buffers
        self.size = _layout_size(len(header), [b.nbytes for b in buffers])


def dump(value) -> Parts:
    buffers: list[pickle.PickleBuffer] = []
    try:
        header = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception:
        buffers.clear()
        header = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return Parts(header, [b.raw() for b in buffers])


def measure(value) -> tuple[int, Parts | None]:
    """The size a value takes as bytes, without a copy where it is one buffer.

    Bytes-like values and arrays know their size; anything else is pickled
    to learn it, and the pickled parts are returned for reuse.
    """
    if isinstance(value, (bytes, bytearray)):
        return len(value) + 64, None
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and hasattr(value, "__array_interface__"):
        return nbytes + 256, None
    if isinstance(value, memoryview):
        return value.nbytes + 64, None
    parts = dump(value)
    return parts.size, parts


def _padding(n: int) -> int:
    return -n % ALIGN


def _layout_size(header_len: int, lengths: list[int]) -> int:
    size = _HEAD.size + 8 * len(lengths) + header_len
    for n in lengths:
        size += _padding(size) + n
    return size


def _chunks(parts: Parts):
    lengths = [b.nbytes for b in parts.buffers]
    yield _HEAD.pack(MAGIC, len(lengths), len(parts.header))
    yield struct.pack(f"<{len(lengths)}Q", *lengths)
    yield parts.header
    written = _HEAD.size + 8 * len(lengths) + len(parts.header)
    for b in parts.buffers:
        pad = _padding(written)
        if pad:
            yield b"\0" * pad
        yield b
        written += pad + b.nbytes


def write(path: str, parts: Parts) -> int:
    with open(path, "wb") as f:
        for chunk in _chunks(parts):
            f.write(chunk)
    return parts.size


def to_bytes(parts: Parts) -> bytes:
    return b"".join(bytes(c) if isinstance(c, memoryview) else c for c in _chunks(parts))


def loads(data) -> object:
    """A value from bytes or a memory map in the layout above (buffers are views, not copies)."""
    view = memoryview(data)
    magic, count, header_len = _HEAD.unpack_from(view)
    if magic != MAGIC:
        raise ValueError("not a tether value")
    lengths = struct.unpack_from(f"<{count}Q", view, _HEAD.size)
    pos = _HEAD.size + 8 * count
    header = view[pos:pos + header_len]
    pos += header_len
    buffers = []
    for n in lengths:
        pos += _padding(pos)
        buffers.append(view[pos:pos + n])
        pos += n
    return pickle.loads(header, buffers=buffers)


def read(path: str) -> object:
    with open(path, "rb") as f:
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # writable, private pages
        except ValueError:  # an empty file cannot be mapped
            return loads(f.read())
    return loads(mapped)
