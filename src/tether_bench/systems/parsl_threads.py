"""Parsl's own ThreadPoolExecutor, one thread per worker: the floor of the Parsl rows.

The same Parsl program as the parsl-htex row (bash_apps on `file` paths in
a shared directory), run by threads of the submitting process, so that no
executor stands between the DataFlowKernel and the commands. What this row
costs above the machine's floor is what Parsl itself costs per app
(dependencies, staging, its log), which no executor under Parsl can save.
"""
from __future__ import annotations

from pathlib import Path

from ..workflow import Workflow
from .parsl_apps import import_parsl, run_in_shared_directory, running


def loaded(workers: int, work_dir: Path, parsl_logging: bool = True):
    """A DataFlowKernel with a ThreadPoolExecutor of `workers` threads."""
    import_parsl()
    from parsl.executors import ThreadPoolExecutor

    return running(ThreadPoolExecutor(label="threads", max_threads=workers), workers, work_dir, parsl_logging)


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "parsl-threads",
        parsl_logging: bool = True) -> dict:
    # the threads are this process's: their CPU, and that of the commands they start, is seen
    return run_in_shared_directory(loaded(workers, work_dir, parsl_logging), workflow, work_dir, progress, name,
                                   cpu_seen=True)
