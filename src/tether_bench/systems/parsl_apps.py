"""Running a Workflow through Parsl: one bash_app per step, dependencies through Files.

Shared by the HighThroughputExecutor row, the ThreadPoolExecutor row and
the tether-through-Parsl row; they differ in the executor, in how files are
named (paths in a shared directory, or temp files the executor keeps on its
workers) and in where the command runs.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Callable

from ..display import wait_with_progress
from ..report import make_row, tree_cpu_seconds
from ..workflow import Step, Workflow
from . import Unavailable


def import_parsl():
    """parsl, with this interpreter's scripts directory on PATH: Parsl starts its
    interchange and worker pools by their script names, found there in a virtual environment."""
    try:
        import parsl
    except ImportError as e:
        raise Unavailable(f"parsl is not installed ({e}); pip install 'tether[bench]'") from None
    scripts = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, path]) if path else scripts
    return parsl


def shell_app():
    """A bash_app that runs the command it is given; Parsl orders it by its input Files."""
    from parsl import bash_app

    def step(command, inputs=(), outputs=()):
        return command

    step.__name__ = "step"
    return bash_app(step)


def python_apps():
    """The no-op app and the chained app (takes the previous result, returns its own times)."""
    from parsl import python_app

    def noop():
        return None

    def link(previous):
        import time as _time
        started = _time.time()
        value = (previous[0] + 1) if previous is not None else 0
        return value, started, _time.time()

    return python_app(noop), python_app(link)


def warm_up(workers: int) -> None:
    """A few trivial bash_apps per worker before timing: each system starts (and imports) what it runs tasks with."""
    from concurrent.futures import wait

    app = shell_app()
    wait([app("true") for _ in range(2 * workers)])


@contextlib.contextmanager
def running(executor, workers: int, work_dir: Path, parsl_logging: bool, ready: Callable[[], None] | None = None):
    """A DataFlowKernel over one executor: loaded, ready (`ready()` waits for its workers), warmed up,
    and cleaned up at the end."""
    parsl = import_parsl()
    from parsl.config import Config

    config = Config(executors=[executor], run_dir=run_dir(work_dir), strategy="none", usage_tracking=0,
                    initialize_logging=parsl_logging)
    dfk = parsl.load(config)
    try:
        if ready is not None:
            ready()
        warm_up(workers)
        yield dfk
    finally:
        dfk.cleanup()


def run_workflow(dfk, workflow: Workflow, file_for: Callable[[str], object],
                 command_for: Callable[[Step], str], progress=None) -> tuple[float, float, list[BaseException]]:
    """Submit every step, wait for all; returns the makespan, the CPU seconds used and the failures.

    The CPU seconds count this process tree only: workers that a Parsl
    provider starts in the background are outside it.
    """
    app = shell_app()
    made = {}  # file name -> DataFuture
    futures = []
    cpu = tree_cpu_seconds()
    started = time.perf_counter()
    for s in workflow.steps:
        inputs = [made[n] if n in made else file_for(n) for n in s.inputs]
        outputs = [file_for(n) for n in s.outputs]
        f = app(command_for(s), inputs=inputs, outputs=outputs)
        for n, df in zip(s.outputs, f.outputs):
            made[n] = df
        futures.append(f)
    wait_with_progress(futures, progress)
    failures = []
    for f in futures:
        try:
            f.result()
        except Exception as e:
            failures.append(e)
    return time.perf_counter() - started, tree_cpu_seconds() - cpu, failures


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(0.05)


def run_dir(work_dir: Path) -> str:
    path = work_dir / "runinfo"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def run_in_shared_directory(loaded, workflow: Workflow, work_dir: Path, progress, name: str,
                            cpu_seen: bool) -> dict:
    """The workflow through a loaded DataFlowKernel, every file a `file` path in one shared
    directory (which needs no staging), each command run there.

    loaded: a context manager giving the DataFlowKernel. cpu_seen: whether
    the executor's workers are in this process tree, so that its CPU counts.
    """
    from parsl.data_provider.files import File

    shared = work_dir / "shared"
    workflow.write_inputs(shared)
    cd = f"cd {shlex.quote(str(shared))} || exit 1; "
    with loaded as dfk:
        makespan, cpu, failures = run_workflow(dfk, workflow, lambda n: File(str(shared / n)),
                                               lambda s: cd + s.command, progress)
    problems = [str(e) for e in failures[:3]] or workflow.problems(shared)
    return make_row(name, makespan_s=makespan, cpu_s=cpu if cpu_seen else None, tasks=len(workflow),
                    correct=not problems, problems=problems)
