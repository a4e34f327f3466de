"""Parsl's HighThroughputExecutor on this machine, files in a shared directory.

This is what a Parsl user on a cluster with a shared filesystem runs: one
block from the LocalProvider with `workers` worker processes of one core,
bash_apps reading and writing `file` paths, which need no staging.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..workflow import Workflow
from .parsl_apps import import_parsl, run_in_shared_directory, running, wait_until


def loaded(workers: int, work_dir: Path, parsl_logging: bool = True):
    """A DataFlowKernel with one HTEX block whose `workers` workers are all connected."""
    import_parsl()
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    # HTEX starts no more workers than cores / cores_per_worker: more workers than cores need less than one each
    per_worker = min(1.0, (os.cpu_count() or 1) / workers)
    htex = HighThroughputExecutor(label="htex", address="127.0.0.1", max_workers_per_node=workers,
                                  cores_per_worker=per_worker, worker_logdir_root=str(work_dir / "workers"),
                                  provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1))

    def connected() -> None:
        wait_until(lambda: sum(m.get("worker_count", 0) for m in htex.connected_managers()) >= workers,
                   120, "HTEX workers")

    return running(htex, workers, work_dir, parsl_logging, ready=connected)


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "parsl-htex",
        parsl_logging: bool = True) -> dict:
    # HTEX's workers are started by the LocalProvider in the background, outside this process tree
    return run_in_shared_directory(loaded(workers, work_dir, parsl_logging), workflow, work_dir, progress, name,
                                   cpu_seen=False)
