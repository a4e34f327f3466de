"""Shared fixtures: managers with real local workers, and remote-style workers started by hand."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tether import Manager

from .parallel import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401  (hooks)
from .parallel import configure as configure_parallel_run


_MADE_RUN_DIR: list[str] = []


def pytest_configure(config):
    """Runs' directories (logs, transaction logs) go to a temporary directory, not the checkout;
    workers started without --cache-dir keep their cache in one too, not in the home directory."""
    import tempfile
    if "TETHER_RUN_DIR" not in os.environ:
        os.environ["TETHER_RUN_DIR"] = tempfile.mkdtemp(prefix="tether-test-runs-")
        _MADE_RUN_DIR.append(os.environ["TETHER_RUN_DIR"])
    os.environ["TETHER_CACHE_DIR"] = tempfile.mkdtemp(prefix="tether-test-cache-")
    _MADE_RUN_DIR.append(os.environ["TETHER_CACHE_DIR"])
    configure_parallel_run(config, _MADE_RUN_DIR)


@pytest.fixture(autouse=True)
def _own_node_cache(monkeypatch, tmp_path_factory):
    """Each test's workers without --cache-dir start from an empty node cache of their own, as
    they did when each made a fresh directory: what one test sent is not found by the next."""
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path_factory.mktemp("node-cache")))


def pytest_unconfigure(config):
    """... and that directory goes when the tests end."""
    import shutil
    for path in _MADE_RUN_DIR:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_manager():
    """Two local workers, shared by the tests of a module that do not disturb them."""
    with Manager(workers=2, cores_per_worker=1) as m:
        m.wait_for_workers()
        yield m


def start_worker(m: Manager, name: str, tmp_path: Path, *extra: str, secret_file: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """A worker started the way a cluster job would start one: `tether worker ADDRESS ...`."""
    cache = tmp_path / f"cache-{name}"
    host, port = m.address.rsplit(":", 1)
    cmd = [sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}", "--cache-dir", str(cache),
           "--secret-file", str(secret_file or m.secret_file), "--name", name, "--clean", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def descendants_of(pids: list[int]) -> set[int]:
    found = set()
    for pid in pids:
        try:
            p = psutil.Process(pid)
            found.add(pid)
            found.update(c.pid for c in p.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return found


def alive(pids) -> set[int]:
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def cache_files(m: Manager) -> dict[str, list[str]]:
    """What each local worker's cache holds now."""
    out = {}
    for w in m._local:
        d = w.work_dir / "cache"
        out[w.name] = sorted(os.listdir(d)) if d.exists() else []
    return out
