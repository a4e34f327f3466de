"""tether through Parsl: TetherExecutor (with its TetherStaging), intermediates as taskvinetemp files.

The program is the Parsl one a user of the seed writes: bash_apps whose
intermediate Files use the taskvinetemp scheme, so that Parsl hands each
consumer over before its producer has run and tether groups the chain.
Inputs and final outputs are `file` paths staged by the executor. The
tether-parsl-slurm row runs the same program with its workers in jobs of
the stand-in Slurm (tether_bench.batch), as a cluster user's would.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..report import make_row, tether_figures
from ..workflow import Workflow
from .parsl_apps import import_parsl, run_dir, run_workflow, wait_until, warm_up


def executor_class():
    import_parsl()
    try:
        from tether.parsl import TetherExecutor
    except ImportError as e:   # Parsl is here, so the front end must be: a broken one fails its rows
        raise RuntimeError(f"tether.parsl does not import, though parsl does: {e}") from e
    return TetherExecutor


@contextlib.contextmanager
def loaded(workers: int, work_dir: Path, parsl_logging: bool = True, batch: str | None = None):
    """A DataFlowKernel with a TetherExecutor whose `workers` one-core workers are connected: local ones,
    or with batch="slurm" one per job of the stand-in Slurm (in network namespaces as root)."""
    TetherExecutor = executor_class()
    parsl = import_parsl()
    from parsl.config import Config
    from parsl.launchers import SimpleLauncher, SrunLauncher
    from parsl.providers import LocalProvider, SlurmProvider

    blocks = {"init_blocks": workers, "min_blocks": workers, "max_blocks": workers}
    with contextlib.ExitStack() as stack:
        if batch is None:
            ex = TetherExecutor(label="tether", cores_per_node=1,
                                provider=LocalProvider(launcher=SimpleLauncher(), **blocks))
        elif batch == "slurm":
            from ..batch.cluster import BatchCluster
            cluster = stack.enter_context(BatchCluster(work_dir / "batch", nodes=workers))
            ex = TetherExecutor(label="tether", cores_per_node=1, address=cluster.address,
                                provider=SlurmProvider(launcher=SrunLauncher(), walltime="01:00:00", **blocks))
        else:
            raise ValueError(f"batch must be None or 'slurm', not {batch!r}")
        config = Config(executors=[ex], run_dir=run_dir(work_dir), strategy="none", usage_tracking=0,
                        initialize_logging=parsl_logging)
        dfk = parsl.load(config)
        try:
            wait_until(lambda: connected(ex) >= workers, 120, "tether workers started by Parsl")
            warm_up(workers)
            yield dfk, ex
        finally:
            dfk.cleanup()


def connected(ex) -> int:
    manager = getattr(ex, "manager", None)
    return len(manager.engine.links) if manager is not None else 0


def stats(ex) -> dict:
    manager = getattr(ex, "manager", None)
    return tether_figures(manager.stats()) if manager is not None else {}


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "tether-parsl",
        parsl_logging: bool = True, batch: str | None = None) -> dict:
    executor_class()   # first: without Parsl the row is skipped, with a broken front end it fails
    from parsl.data_provider.files import File

    home = work_dir / "home"
    workflow.write_inputs(home)

    def file_for(n: str):
        return File(f"taskvinetemp://{n}") if n in workflow.temps else File(str(home / n))

    with loaded(workers, work_dir, parsl_logging, batch) as (dfk, ex):
        makespan, _, failures = run_workflow(dfk, workflow, file_for, lambda s: s.command, progress)
        figures = stats(ex)
    problems = [str(e) for e in failures[:3]] or workflow.problems(home)
    return make_row(name, makespan_s=makespan, tasks=len(workflow), correct=not problems, problems=problems,
                    **figures)
