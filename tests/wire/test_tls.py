"""A safe wire: a relay on the path can neither read nor change the traffic, nor inject into it.

With TLS (always, here even on loopback; by default on every link that
leaves the host) a relay that flips, drops or adds bytes after the
handshake gets the connection closed, and nothing it sent is run. A worker
on another host (a network namespace) is encrypted by default: no command
text can be seen in a capture of its link, while the same capture does
see it when TLS is turned off.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from tether import Manager, Task
from tether.wire import AuthError
from tether.wire.handshake import connect
from tether.wire.tls import TlsConfig

from ..conftest import stop, wait_until


class Relay:
    """A TCP relay on the path between a worker and the manager; it can be told to tamper."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.mode = "pass"          # pass, flip, inject or drop, for bytes from the manager to the worker
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.tampered = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer, tamper=False),
                             self._pipe(up_reader, writer, tamper=True), return_exceptions=True)

    async def _pipe(self, reader, writer, tamper: bool) -> None:
        try:
            while data := await reader.read(65536):
                if tamper and self.mode != "pass":
                    self.tampered += 1
                    if self.mode == "flip":
                        data = data[:-1] + bytes([data[-1] ^ 0x01])
                    elif self.mode == "inject":
                        data = data + os.urandom(64)
                    elif self.mode == "drop":
                        continue
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.mark.parametrize("mode", ["flip", "inject", "drop"])
def test_a_relay_that_tampers_after_the_handshake_gets_the_link_closed_and_nothing_run(tmp_path, mode):
    marker = tmp_path / "ran"
    with Manager(workers=0, host="127.0.0.1", tls="always", heartbeat=3) as m:
        relay = Relay(int(m.address.rsplit(":", 1)[1]))
        proc = subprocess.Popen([sys.executable, "-m", "tether", "worker", f"127.0.0.1:{relay.port}",
                                 "--secret-file", str(m.secret_file), "--cache-dir", str(tmp_path / "c"),
                                 "--name", "w", "--clean", "--tls", "always", "--heartbeat", "3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            m.wait_for_workers(1)
            assert m.engine.links["w"].stream.writer.get_extra_info("ssl_object") is not None
            relay.mode = mode
            m.submit(Task(f"touch {marker}"))
            wait_until(lambda: m.stats()["workers"] == 0, timeout=20)   # the link was given up on
            assert proc.wait(20) == 4                                     # and the worker knows it
            assert relay.tampered >= 1
            time.sleep(0.5)
            assert not marker.exists()
        finally:
            stop(proc)
            relay.close()


def test_a_client_without_the_secret_cannot_complete_tls(tmp_path):
    with Manager(workers=0, host="127.0.0.1", tls="always") as m:
        port = int(m.address.rsplit(":", 1)[1])
        wrong = b"not-the-secret-of-this-manager-000"
        with pytest.raises(AuthError, match="certificate"):
            asyncio.run(connect("127.0.0.1", port, wrong, "control", TlsConfig(wrong, "always")))
        assert m.stats()["workers"] == 0


def test_a_plain_connection_is_refused_where_tls_is_required(tmp_path):
    with Manager(workers=0, host="127.0.0.1", tls="always") as m:
        port = int(m.address.rsplit(":", 1)[1])
        with pytest.raises((AuthError, ConnectionError)):
            asyncio.run(connect("127.0.0.1", port, m._secret, "control", TlsConfig(m._secret, "never")))


def _capture(interface: str, stop_event: threading.Event, seen: bytearray) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    s.bind((interface, 0))
    s.settimeout(0.2)
    try:
        while not stop_event.is_set():
            try:
                seen.extend(s.recv(65536))
            except socket.timeout:
                continue
    except OSError:   # the link went away with its cluster
        pass
    finally:
        s.close()


def _run_captured(tls: str, text: str) -> bytes:
    from tether_bench.cluster import EmulatedCluster
    seen = bytearray()
    done = threading.Event()
    with EmulatedCluster(1) as cluster, Manager(workers=0, host=cluster.manager_host, tls=tls) as m:
        capture = threading.Thread(target=_capture, args=(cluster.links[0].root_dev, done, seen), daemon=True)
        capture.start()
        try:
            cluster.start_worker(0, m.address, m.secret_file, extra_args=("--tls", tls))
            m.wait_for_workers(1)
            r = m.submit(Task(f"echo {text}")).result(60)
            assert r.stdout.strip() == text
        finally:
            cluster.stop_workers()
        done.set()
        capture.join(5)
    return bytes(seen)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and packet capture need root")
def test_traffic_to_a_worker_on_another_host_is_encrypted_by_default():
    from tether_bench.cluster import unavailable_reason
    if unavailable_reason() is not None:
        pytest.skip(unavailable_reason())
    text = "COMMAND-TEXT-SEEN-ON-THE-WIRE-4711"
    plain = _run_captured("never", text)
    assert text.encode() in plain   # the capture sees a plain link's commands...
    encrypted = _run_captured("auto", text)
    assert len(encrypted) > 2000
    assert text.encode() not in encrypted   # ... and none of an encrypted one's
