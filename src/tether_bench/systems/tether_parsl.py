"""tether through Parsl: TetherExecutor (with its TetherStaging), intermediates as taskvinetemp files.

The program is the Parsl one a user of the seed writes: bash_apps whose
intermediate Files use the taskvinetemp scheme, so that Parsl hands each
consumer over before its producer has run and tether groups the chain.
Inputs and final outputs are `file` paths staged by the executor.
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
def loaded(workers: int, work_dir: Path, parsl_logging: bool = True):
    """A DataFlowKernel with a TetherExecutor whose `workers` one-core local workers are connected."""
    TetherExecutor = executor_class()
    parsl = import_parsl()
    from parsl.config import Config
    from parsl.launchers import SimpleLauncher
    from parsl.providers import LocalProvider

    ex = TetherExecutor(label="tether", cores_per_node=1,
                        provider=LocalProvider(init_blocks=workers, min_blocks=workers, max_blocks=workers,
                                               launcher=SimpleLauncher()))
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
        parsl_logging: bool = True) -> dict:
    from parsl.data_provider.files import File

    home = work_dir / "home"
    workflow.write_inputs(home)

    def file_for(n: str):
        return File(f"taskvinetemp://{n}") if n in workflow.temps else File(str(home / n))

    with loaded(workers, work_dir, parsl_logging) as (dfk, ex):
        makespan, _, failures = run_workflow(dfk, workflow, file_for, lambda s: s.command, progress)
        figures = stats(ex)
    problems = [str(e) for e in failures[:3]] or workflow.problems(home)
    return make_row(name, makespan_s=makespan, tasks=len(workflow), correct=not problems, problems=problems,
                    **figures)
