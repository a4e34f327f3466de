"""`tether worker` without --cache-dir: a cache per user and node that the next run finds, shared
safely by the workers running on the node at once (slot directories, each locked by one worker)."""
from __future__ import annotations

import fcntl
import itertools
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tether import Manager, Task
from tether.manager.local import kill_sessions

from .conftest import stop, wait_until

MB = 1 << 20


@pytest.fixture
def node(tmp_path, monkeypatch):
    """A home and an XDG cache directory of the test's own; no TETHER_CACHE_DIR."""
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    monkeypatch.delenv("TETHER_CACHE_DIR")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    return xdg / "tether" / socket.gethostname()


def node_worker(m: Manager, *extra: str) -> subprocess.Popen:
    """`tether worker` as a cluster job would start it, with no --cache-dir; its log beside the run's."""
    port = m.address.rsplit(":", 1)[1]
    with open(m.run_dir / f"node-worker-{next(_started)}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}", "--secret-file",
                                 str(m.secret_file), "--cores", "1", *extra],
                                stdout=log, stderr=log, start_new_session=True)


_started = itertools.count()


def log_of(m: Manager) -> str:
    return "".join(p.read_text() for p in sorted(m.run_dir.glob("node-worker-*.log")))


def cached(slot: Path) -> set[str]:
    return {p.name for p in (slot / "cache").iterdir() if p.name.startswith("file-")}


def holder(root: Path, i: int) -> int:
    return int((root / f"worker-{i}.lock").read_text())


def run(m: Manager, f, **kw):
    return m.submit(Task("od -An -tu1 -N1 in", inputs={"in": f}, **kw)).result(60)


def test_a_second_run_on_the_node_does_not_send_an_input_again(tmp_path, node):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x07" * 100_000)
    for n in range(2):
        with Manager(workers=0, run_dir=tmp_path / "runs") as m:
            w = node_worker(m)
            try:
                m.wait_for_workers(1)
                f = m.declare_file(data)
                assert run(m, f).stdout.split() == ["7"]
                assert m.stats()["bytes_manager_to_worker"] == (100_000 if n == 0 else 0)
            except BaseException:
                stop(w)
                raise
        assert w.wait(30) == 0, log_of(m)   # sent away: its slot is free before the next run
        assert cached(node / "worker-0") == {f.name}
    assert not (node / "worker-1").exists()
    for d in (node.parent, node, node / "worker-0"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE((node / "worker-0.lock").stat().st_mode) == 0o600


def test_workers_on_one_node_at_once_take_slots_of_their_own_and_all_work(tmp_path, node):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x05" * 50_000)
    with Manager(workers=0, run_dir=tmp_path / "runs") as m, \
            Manager(workers=0, run_dir=tmp_path / "runs") as other:
        workers = [node_worker(m, "--memory", "100") for _ in range(3)] + [node_worker(other)]   # at once
        try:
            m.wait_for_workers(3)
            other.wait_for_workers(1)
            # each holds its own slot, locked
            assert {holder(node, i) for i in range(4)} == {w.pid for w in workers}
            for i in range(4):
                with open(node / f"worker-{i}.lock") as lock, pytest.raises(BlockingIOError):
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # every worker runs a task at the same time, each its input in its own slot: a task needs
            # all of a worker's memory, and none ends before all have started
            f, g = m.declare_file(data), other.declare_file(data)
            gate = tmp_path / "gate"
            futures = [m.submit(Task(f"od -An -tu1 -N1 in; touch {tmp_path}/started-{i}; "
                                     f"while [ ! -e {gate} ]; do sleep 0.05; done",
                                     inputs={"in": f}, memory=100)) for i in range(3)]
            wait_until(lambda: all((tmp_path / f"started-{i}").exists() for i in range(3)), timeout=60)
            gate.touch()
            results = [fu.result(60) for fu in futures]
            assert [r.stdout.split() for r in results] == [["5"]] * 3 and len({r.worker for r in results}) == 3
            assert run(other, g).stdout.split() == ["5"]
            assert other.stats()["bytes_manager_to_worker"] == 50_000   # the other manager's slot had none
            for i in range(4):
                assert cached(node / f"worker-{i}") == {f.name}
        finally:
            for w in workers:
                stop(w)
    assert sorted(p.name for p in node.iterdir() if p.is_dir()) == [f"worker-{i}" for i in range(4)]


def test_a_killed_workers_slot_goes_to_the_next_worker_with_what_it_held(tmp_path, node):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x03" * 100_000)
    started = tmp_path / "started"
    with Manager(workers=0, run_dir=tmp_path / "runs") as m:
        w = node_worker(m)
        try:
            m.wait_for_workers(1)
            f = m.declare_file(data)
            m.submit(Task(f"touch {started}; sleep 600", inputs={"in": f}))
            wait_until(started.exists, timeout=60)
            assert holder(node, 0) == w.pid
            w.send_signal(signal.SIGKILL)   # it cannot clean up: its sandbox and its lock are left
            w.wait()
            kill_sessions([w.pid])          # and the task it ran
        finally:
            stop(w)
    assert any((node / "worker-0" / "sandbox").iterdir())
    with Manager(workers=0, run_dir=tmp_path / "runs") as m:
        w = node_worker(m)
        try:
            m.wait_for_workers(1)
            assert holder(node, 0) == w.pid and not (node / "worker-1").exists()
            f = m.declare_file(data)
            assert run(m, f).stdout.split() == ["3"]   # in a sandbox where the killed worker's was
            assert m.stats()["bytes_manager_to_worker"] == 0 and m.stats()["attempts_failed"] == 0
        finally:
            stop(w)


def test_leftovers_over_the_budget_go_least_recently_used_first(tmp_path, node):
    paths = {}
    for n, byte in (("a", 1), ("b", 2), ("c", 3), ("d", 4)):
        paths[n] = tmp_path / f"{n}.bin"
        paths[n].write_bytes(bytes([byte]) * MB)
    slot = node / "worker-0"
    with Manager(workers=0, run_dir=tmp_path / "runs") as m:
        w = node_worker(m)
        try:
            m.wait_for_workers(1)
            files = {n: m.declare_file(p) for n, p in paths.items()}
            for n in "abca":   # used last: a; used longest ago: b
                run(m, files[n])
        except BaseException:
            stop(w)
            raise
    assert w.wait(30) == 0, log_of(m)
    name = {n: f.name for n, f in files.items()}
    assert cached(slot) == {name["a"], name["b"], name["c"]}

    with Manager(workers=0, run_dir=tmp_path / "runs") as m:
        w = node_worker(m, "--cache-budget", "2")
        try:
            m.wait_for_workers(1)
            # 3 MB left over, 2 allowed: the one used longest ago went before the worker joined
            assert cached(slot) == {name["a"], name["c"]}
            files = {n: m.declare_file(p) for n, p in paths.items()}
            assert run(m, files["d"]).stdout.split() == ["4"]
            assert m.stats()["bytes_manager_to_worker"] == MB
            # the leftovers not used in this run go before what this run brought
            assert cached(slot) == {name["a"], name["d"]}
            assert run(m, files["a"]).stdout.split() == ["1"]
            assert m.stats()["bytes_manager_to_worker"] == MB
            assert run(m, files["b"]).stdout.split() == ["2"]
            assert m.stats()["bytes_manager_to_worker"] == 2 * MB
        finally:
            stop(w)


def test_clean_removes_only_this_workers_slot(tmp_path, node):
    with Manager(workers=0, run_dir=tmp_path / "runs") as m:
        keeper = node_worker(m)
        try:
            m.wait_for_workers(1)
            cleaner = node_worker(m, "--clean")
            m.wait_for_workers(2)
            assert holder(node, 1) == cleaner.pid
            stop(cleaner)
            assert not (node / "worker-1").exists() and (node / "worker-0" / "cache").is_dir()
        finally:
            stop(keeper)
    assert (node / "worker-1.lock").exists()   # lock files stay: see tether.worker.slots


def refused(secret: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """A worker that gets as far as its cache directory and no further (no manager listens)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return subprocess.run([sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}", "--secret-file",
                           str(secret), "--connect-timeout", "0.2", *extra],
                          env=env, capture_output=True, text=True, timeout=60)


def test_where_the_node_cache_is(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s" * 32)
    host = socket.gethostname()
    base = {k: v for k, v in os.environ.items() if k not in ("TETHER_CACHE_DIR", "XDG_CACHE_HOME")}
    home = tmp_path / "home"
    home.mkdir()
    cases = [({"HOME": str(home)}, home / ".cache" / "tether" / host),
             ({"HOME": str(home), "XDG_CACHE_HOME": "relative/path"}, home / ".cache" / "tether" / host),
             ({"HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "x")}, tmp_path / "x" / "tether" / host),
             ({"HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "x"), "TETHER_CACHE_DIR": str(tmp_path / "t")},
              tmp_path / "t")]
    for env, root in cases:
        p = refused(secret, {**base, **env})
        assert p.returncode == 2, p.stderr   # the manager could not be reached: the slot was taken first
        assert (root / "worker-0.lock").exists() and (root / "worker-0").is_dir(), (env, root)
    assert not (tmp_path / "relative").exists()


def test_a_cache_directory_that_cannot_be_used_is_named_with_what_to_do(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s" * 32)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    base = {k: v for k, v in os.environ.items() if k != "TETHER_CACHE_DIR"}

    p = refused(secret, {**base, "XDG_CACHE_HOME": str(blocker / "cache")})
    assert p.returncode == 5
    assert f"cannot use {blocker / 'cache' / 'tether' / socket.gethostname()}" in p.stderr
    assert "--cache-dir" in p.stderr and "Traceback" not in p.stderr

    p = refused(secret, {**base, "TETHER_CACHE_DIR": str(blocker)})
    assert p.returncode == 5 and f"cannot use {blocker}" in p.stderr and "--cache-dir" in p.stderr

    p = refused(secret, base, "--cache-dir", str(blocker / "c"))
    assert p.returncode == 5 and f"cannot use {blocker / 'c'}" in p.stderr and "Traceback" not in p.stderr

    if os.geteuid() != 0:   # root may write anywhere
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        p = refused(secret, {**base, "TETHER_CACHE_DIR": str(locked)})
        assert p.returncode == 5 and f"cannot use {locked}" in p.stderr and "not writable" in p.stderr


def test_leftovers_count_against_the_budget_from_the_start():
    """WorkerState alone: what an earlier run left is held first, so it is the first to go."""
    from tether.worker.state import Evict, WorkerState

    ws = WorkerState(cores=1, cache_budget=25)
    out = ws.adopt_cached({"file-old": 10, "file-mid": 10, "file-new": 10})
    assert out == [Evict("file-old")] and ws.present_bytes == 20 and list(ws.unused) == ["file-mid", "file-new"]
    ws.validate()
    assert WorkerState(cores=1, cache_budget=0).adopt_cached({"file-x": 10 ** 12}) == []   # 0: no budget
