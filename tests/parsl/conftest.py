"""A Parsl DataFlowKernel with a TetherExecutor and a real local worker, for the Parsl tests."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import parsl
import psutil
from parsl.config import Config
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider

from tether.parsl import TetherExecutor


class RecordingExecutor(TetherExecutor):
    """A TetherExecutor that notes when Parsl hands it each app (by function name)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handed: list[tuple[str, float]] = []
        self._handed_lock = threading.Lock()

    def submit(self, func, resource_specification, *args, **kwargs):
        with self._handed_lock:
            self.handed.append((getattr(func, "__name__", repr(func)), time.monotonic()))
        return super().submit(func, resource_specification, *args, **kwargs)

    def handed_at(self, name: str) -> list[float]:
        with self._handed_lock:
            return [t for n, t in self.handed if n == name]


@contextmanager
def parsl_on_tether(run_dir: Path, workers: int = 2, cores: int = 1, **config):
    """Load Parsl with local tether workers of `cores` cores each; yields the executor (see parsl_with)."""
    ex = RecordingExecutor(provider=LocalProvider(init_blocks=workers, min_blocks=0, max_blocks=workers,
                                                  launcher=SimpleLauncher()), cores_per_node=cores)
    with parsl_with(ex, run_dir, workers, **config) as executor:
        yield executor


@contextmanager
def parsl_with(ex: TetherExecutor, run_dir: Path, workers: int, **config):
    """Load Parsl with this executor and wait for its workers; yields it; cleans up, checking no worker is left."""
    dfk = parsl.load(Config(executors=[ex], run_dir=str(run_dir), strategy="none", **config))
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while ex.connected_workers() < workers:
            assert time.monotonic() < deadline, "the tether workers did not connect"
            time.sleep(0.02)
        pids = {link.pid for link in ex.manager.engine.links.values()}
        yield ex
    finally:
        dfk.cleanup()
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"tether workers still running after cleanup: {left}"
    for caches in run_dir.rglob("tether-workers"):
        left_files = [p for p in caches.rglob("*") if p.is_file()]
        assert not left_files, f"a worker left files in its cache: {left_files[:3]}"
