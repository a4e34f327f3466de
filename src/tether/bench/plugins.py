"""The parts of the benchmark harness that live in modules of their own, loaded only when asked for.

`scale` (the core alone with simulated workers) and `cluster` (workers in
network namespaces behind rate-limited links) may be missing from a build;
asking for them then gives a clear message, not a traceback.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path


class PluginMissing(Exception):
    """A benchmark part that this build does not have, or cannot use here."""


def load(module: str, what: str):
    try:
        return importlib.import_module(f"tether.bench.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"tether.bench.{module}":
            raise
        raise PluginMissing(f"{what} is not part of this build (no module tether.bench.{module})") from None


@contextlib.contextmanager
def emulated_cluster(workers: int, rate: str):
    """Yields a (group_tasks, run_dir) -> Manager factory whose workers sit in network namespaces."""
    if os.geteuid() != 0:
        raise PluginMissing("--emulate-cluster needs root (it creates network namespaces and veth pairs); "
                            "run without it, or as root")
    cluster_module = load("cluster", "cluster emulation (--emulate-cluster)")
    with cluster_module.EmulatedCluster(workers=workers, cores_per_worker=1, rate=rate) as cluster:
        def factory(group_tasks: bool, run_dir: Path):
            return cluster.manager(group_tasks=group_tasks, run_dir=run_dir)
        yield factory
