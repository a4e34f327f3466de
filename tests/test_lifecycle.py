"""Start-up, authentication and shutdown: nobody gets in without the secret, nothing is left behind."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from tether import Manager, PythonTask, Task
from tether.wire import AuthError, frame
from tether.wire.framing import pack
from tether.wire.handshake import Gate, connect
from tether.wire.tls import TlsConfig

from .conftest import alive, descendants_of, start_worker, stop, wait_until


def family_of(pids, at_least):
    """The processes and all their descendants, once there are at least that many."""
    found = descendants_of(pids)
    return found if len(found) >= at_least else None


def test_shutdown_leaves_no_processes_and_no_files(tmp_path):
    m = Manager(workers=2, run_dir=tmp_path)
    m.wait_for_workers()
    # keep a shell task and a warm interpreter busy at the moment of closing
    m.submit(Task("sleep 60"))
    m.submit(PythonTask(__import__("time").sleep, args=(60,)))
    worker_pids = [w.proc.pid for w in m._local]
    pids = wait_until(lambda: family_of(worker_pids, at_least=5))
    run_dir = m.run_dir
    m.close(wait=False)
    assert alive(pids) == set()
    # the run's record stays (logs, transactions); the secret and the caches do not
    assert os.listdir(tmp_path) == [run_dir.name]
    assert sorted(os.listdir(run_dir)) == ["manager.log", "transactions", "worker-1.log", "worker-2.log"]


def test_close_fails_unfinished_futures_with_a_clear_error():
    from tether import TaskFailed
    with Manager(workers=1) as m:
        f = m.submit(Task("sleep 30"))
        m.close(wait=False)   # not waiting for it, as leaving the block would
    with pytest.raises(TaskFailed, match="manager was closed"):
        f.result(10)


def test_killed_worker_leaves_no_orphans_after_close(tmp_path):
    with Manager(workers=1, restart_local_workers=False) as m:
        m.wait_for_workers()
        f = m.submit(Task("sleep 60"))
        w = m._local[0]
        pids = wait_until(lambda: family_of([w.proc.pid], at_least=2))
        w.proc.kill()   # SIGKILL: the worker cannot clean up after its task
        w.proc.wait()
    assert alive(pids) == set()


def test_wrong_secret_is_refused(tmp_path):
    bad = tmp_path / "bad-secret"
    bad.write_text("not-the-secret-of-this-manager")
    with Manager(workers=0) as m:
        p = start_worker(m, "intruder", tmp_path, secret_file=bad)
        try:
            assert p.wait(30) == 3
            assert b"secret" in p.stderr.read()
            assert m.stats()["workers"] == 0
        finally:
            stop(p)


def test_a_connection_that_skips_the_handshake_is_closed(shared_manager):
    host, port = shared_manager.address.rsplit(":", 1)
    with socket.create_connection(("127.0.0.1", int(port)), timeout=15) as s:
        s.recv(4096)                                   # the server's challenge
        s.sendall(frame(pack(["auth", "control", b"\0" * 32, b"forged-proof-of-32-bytes-long..."])))
        assert s.recv(4096) == b""                      # closed without an answer
    assert shared_manager.stats()["workers"] == 2


def test_the_secret_never_crosses_the_wire(tmp_path):
    """Record everything a worker and the manager say during a handshake."""
    secret = b"a-very-secret-value-0123456789"
    seen = bytearray()

    async def run():
        async def relay(reader, writer, other):
            while data := await reader.read(65536):
                seen.extend(data)
                other.write(data)
            other.close()

        gate = Gate(secret, TlsConfig(secret))

        async def server(reader, writer):
            try:
                await gate.accept(reader, writer)
            finally:
                writer.close()

        srv = await asyncio.start_server(server, "127.0.0.1", 0)
        sport = srv.sockets[0].getsockname()[1]

        async def proxy(reader, writer):
            r2, w2 = await asyncio.open_connection("127.0.0.1", sport)
            await asyncio.gather(relay(reader, w2, w2), relay(r2, writer, writer))

        prx = await asyncio.start_server(proxy, "127.0.0.1", 0)
        pport = prx.sockets[0].getsockname()[1]
        r, w = await connect("127.0.0.1", pport, secret, "control", TlsConfig(secret))
        w.close()
        with pytest.raises(AuthError):
            await connect("127.0.0.1", pport, b"wrong-secret-0123456789", "control",
                          TlsConfig(b"wrong-secret-0123456789"))
        srv.close()
        prx.close()

    asyncio.run(run())
    assert len(seen) > 100
    assert secret not in bytes(seen)


def test_worker_with_unreachable_manager_says_so(tmp_path):
    secret = tmp_path / "s"
    secret.write_text("x" * 32)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}", "--secret-file",
                        str(secret), "--connect-timeout", "0.5", "--cache-dir", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "cannot reach the manager" in p.stderr


def test_worker_rejects_a_bad_address(tmp_path):
    secret = tmp_path / "s"
    secret.write_text("x" * 32)
    p = subprocess.run([sys.executable, "-m", "tether", "worker", "nohostport", "--secret-file", str(secret)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "HOST:PORT" in p.stderr


def test_close_ends_every_connection_while_workers_are_still_connected(tmp_path):
    """Nothing of the manager is left pending when its loop goes: no clean-up runs later, at random."""
    import asyncio

    with Manager(workers=0, host="127.0.0.1") as m:
        proc = start_worker(m, "w", tmp_path)
        try:
            m.wait_for_workers(1)
            assert m.submit(PythonTask(len, args=("abc",))).result(30) == 3   # opens a fetch connection
            errors = []
            m._loop.loop.set_exception_handler(lambda loop, context: errors.append(context))
            m.close()   # the worker is still connected, on its control and fetch connections
            left = [t for t in asyncio.all_tasks(m._loop.loop) if not t.done()]
            assert left == []
            assert errors == []
        finally:
            stop(proc)


def test_submit_returns_the_future_even_when_the_task_ends_before_submit_returns():
    """The submitting thread may lose the CPU right after the hand-over, until the task has ended."""

    class Preempted(Manager):
        def _enqueue(self, record, event):
            future = record.future
            super()._enqueue(record, event)
            future.result(30)   # the task ends while submit has not returned yet

    with Preempted(workers=1) as m:
        f = m.submit(PythonTask(len, args=("ab",)))
        assert f is not None and f.result(0) == 2
