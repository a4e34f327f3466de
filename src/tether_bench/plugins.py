"""The parts of the benchmark harness that live in modules of their own, loaded only when asked for.

`scale` (the core alone with simulated workers) and `cluster` (workers in
network namespaces behind rate-limited links) may be missing from a build;
asking for them then gives a clear message, not a traceback.
"""
from __future__ import annotations

import contextlib
import importlib
from pathlib import Path


class PluginMissing(Exception):
    """A benchmark part that this build does not have, or cannot use here."""


def load(module: str, what: str):
    try:
        return importlib.import_module(f"tether_bench.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"tether_bench.{module}":
            raise
        raise PluginMissing(f"{what} is not part of this build (no module tether_bench.{module})") from None


@contextlib.contextmanager
def emulated_cluster(workers: int, rate: str):
    """Yields a (group_tasks, run_dir) -> Manager factory whose workers sit in network namespaces.

    Each Manager listens where the namespaces reach it and gets one worker
    of one core in each namespace, connected before it is handed over and
    stopped before it closes.
    """
    cluster_module = load("cluster", "cluster emulation (--emulate-cluster)")
    reason = cluster_module.unavailable_reason()
    if reason is not None:
        raise PluginMissing(reason)
    from tether.manager.manager import Manager

    with cluster_module.EmulatedCluster(workers, rate=rate) as cluster:
        @contextlib.contextmanager
        def manager(group_tasks: bool, run_dir: Path):
            with Manager(workers=0, host=cluster.manager_host, group_tasks=group_tasks, run_dir=run_dir) as m, \
                    cluster.workers_for(m, cores=1):
                yield m

        yield manager
