"""Fuzzing a live manager, worker and file server: they drop the offender and keep serving.

Before the handshake anything goes; after it (the fuzzer knows the secret,
as a compromised or buggy peer would) frames of random msgpack and
well-formed messages with hostile values. After every run a real task still
runs on the real worker. Short in CI; HYPOTHESIS_PROFILE=fuzz runs each
target for as long as it is given (see conftest.py).
"""
from __future__ import annotations

import asyncio
import os
import socket

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether import Manager, Task
from tether.wire import codec, frame
from tether.wire import messages as m
from tether.wire.handshake import connect
from tether.wire.tls import TlsConfig

from ..conftest import start_worker, stop

# a few examples a target in CI; under the "fuzz" profile, as many as the time given allows
FEW = settings(max_examples=40 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else 10_000_000,
               deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    with Manager(workers=0, host="127.0.0.1") as mgr:
        proc = start_worker(mgr, "w", tmp)
        try:
            mgr.wait_for_workers(1)
            yield mgr
        finally:
            stop(proc)


def still_serving(mgr: Manager) -> None:
    assert mgr.submit(Task("echo alive")).result(30).stdout.strip() == "alive"
    assert mgr.engine.broken is None and mgr.stats()["workers"] >= 1


def manager_port(mgr: Manager) -> int:
    return int(mgr.address.rsplit(":", 1)[1])


def worker_server(mgr: Manager) -> tuple[str, int]:
    link = next(iter(mgr.engine.links.values()))
    return link.host, link.port


def _scalars():
    return (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=12)
            | st.binary(max_size=24))


def _values():
    return st.recursive(_scalars(), lambda inner: st.lists(inner, max_size=5)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=20)


def _frames():
    random_msgpack = st.builds(lambda op, fields: msgpack.packb([op, *fields], use_bin_type=True),
                               st.sampled_from(sorted(codec.SCHEMAS)) | st.text(max_size=8),
                               st.lists(_values(), max_size=10))
    return st.lists(random_msgpack | st.binary(max_size=64), min_size=1, max_size=6)


def _hostile_messages():
    """Well-formed worker messages about tasks and files that are not the sender's."""
    ids = st.integers(0, 2**40)
    names = st.sampled_from(["temp-x-1", "file-abc", "res-y-2", "out-z-3"]) | st.text(
        alphabet="abcdef-0123456789", min_size=1, max_size=12)
    report = st.builds(m.Report, st.floats(0, 1e9), st.floats(0, 1e9), st.none() | st.integers(-9, 9),
                       st.sampled_from([None, "exit", "input", "disk-full", "interpreter", "bogus"]),
                       st.text(max_size=10), st.just(""), st.just(""), st.none() | names, st.none() | names,
                       st.none() | st.binary(max_size=8), st.none(),
                       st.lists(st.tuples(names, st.integers(0, 2**40)), max_size=3).map(tuple),
                       st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
                       st.none() | st.tuples(st.integers(0, 2**40), st.floats(0, 1e6), st.integers(0, 2**40)),
                       st.lists(st.integers(0, 64), max_size=2).map(tuple))
    return st.lists(st.one_of(
        st.builds(m.Done, ids, report), st.builds(m.Failed, ids, report),
        st.builds(m.Have, st.lists(st.tuples(names, st.integers(0, 2**40), st.none() | names), max_size=3)
                  .map(tuple)),
        st.builds(m.Retracted, st.lists(ids, max_size=3).map(tuple), st.lists(ids, max_size=3).map(tuple)),
        st.builds(m.Lost, st.lists(names, max_size=3).map(tuple)),
        st.builds(m.Probe, ids), st.just(m.Ping())), min_size=1, max_size=8)


def _exchange(host: str, port: int, data: bytes) -> None:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        while s.recv(65536):
            pass


def test_bytes_before_the_handshake(live):
    @FEW
    @given(st.binary(max_size=512))
    def fuzz(data):
        _exchange("127.0.0.1", manager_port(live), data)
    fuzz()
    still_serving(live)


async def _after_handshake(host: str, port: int, secret: bytes, role: str, frames: list[bytes]) -> None:
    reader, writer = await connect(host, port, secret, role, TlsConfig(secret))
    try:
        for body in frames:
            writer.write(frame(body))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()   # done: the other side ends the link once it has read everything
        while await asyncio.wait_for(reader.read(65536), 10):
            pass
    except (ConnectionError, OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


def test_frames_after_the_handshake_on_a_control_link(live):
    @FEW
    @given(_frames())
    def fuzz(frames):
        asyncio.run(_after_handshake("127.0.0.1", manager_port(live), live._secret, "control", frames))
    fuzz()
    still_serving(live)


def test_well_formed_hostile_messages_from_a_worker(live):
    hello = codec.encode(m.Hello("fuzzer", 1, 100, 100, "127.0.0.1", 9, 0, 30.0))

    @FEW
    @given(_hostile_messages())
    def fuzz(msgs):
        asyncio.run(_after_handshake("127.0.0.1", manager_port(live), live._secret, "control",
                                     [hello, *[codec.encode(x) for x in msgs]]))
    fuzz()
    still_serving(live)


def test_frames_to_the_managers_file_server(live):
    @FEW
    @given(_frames())
    def fuzz(frames):
        asyncio.run(_after_handshake("127.0.0.1", manager_port(live), live._secret, "fetch", frames))
    fuzz()
    still_serving(live)


def test_frames_on_a_status_link(live):
    @FEW
    @given(_frames())
    def fuzz(frames):
        asyncio.run(_after_handshake("127.0.0.1", manager_port(live), live._secret, "status", frames))
    fuzz()
    still_serving(live)


def test_frames_and_bytes_to_a_workers_file_server(live):
    host, port = worker_server(live)

    @FEW
    @given(_frames())
    def fuzz_frames(frames):
        asyncio.run(_after_handshake(host, port, live._secret, "fetch", frames))

    @FEW
    @given(st.binary(max_size=512))
    def fuzz_bytes(data):
        _exchange(host, port, data)
    fuzz_frames()
    fuzz_bytes()
    still_serving(live)
