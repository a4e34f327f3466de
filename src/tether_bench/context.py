"""`tether bench context`: a slow setup made once per worker interpreter, or in every call.

Each call looks a number up in a table whose setup takes `setup_s` seconds
(a sleep, standing for loading a model or reading a large table). Both
rows are `list(ex.map(lookup, range(calls)))` on tether.Executor, with
workers of one core each:

  context-kept      Executor(setup=Context(load_table, ...)): the table is
                    made the first time a call runs in an interpreter and
                    read with tether.context() by every later call there
  context-per-call  each call makes the table itself, as a function that
                    cannot keep state between calls must

Each setup appends a line to a file in the row's directory: `setups` is
what ran, counted, not assumed. Both rows start their interpreters with
a few no-op tasks that ask for no context before the clock starts; the
kept row's setups are in its time.
"""
from __future__ import annotations

import time
from concurrent.futures import wait
from functools import partial
from pathlib import Path

from . import targets as t
from .report import Report, make_row, tether_figures, tree_cpu_seconds
from .runner import Options, RowPlan

ROWS = ["context-kept", "context-per-call"]
TABLE = 1000   # entries in the table a setup makes


def load_table(seconds: float, log: str) -> list[int]:
    """The setup: slow, then a table."""
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write("setup\n")
    return [i * i for i in range(TABLE)]


def noop() -> None:
    return None


def lookup(x: int) -> int:
    import tether

    return tether.context()[x % TABLE]


def lookup_after_setup(x: int, seconds: float, log: str) -> int:
    return load_table(seconds, log)[x % TABLE]


def run(kept: bool, calls: int, setup_s: float, workers: int, work_dir: Path, progress) -> dict:
    from tether import Context, Executor, PythonTask

    log = work_dir / "setups"
    log.touch()
    setup = Context(load_table, setup_s, str(log)) if kept else None
    with Executor(workers=workers, cores_per_worker=1, run_dir=work_dir, setup=setup) as ex:
        ex.manager.wait_for_workers(workers)
        # interpreters started and warm, without the context: its setups stay in the timed window
        wait([ex.manager.submit(PythonTask(noop)) for _ in range(4 * workers)])
        cpu = tree_cpu_seconds()
        started = time.perf_counter()
        fn = lookup if kept else partial(lookup_after_setup, seconds=setup_s, log=str(log))
        values = []
        for value in ex.map(fn, range(calls)):
            values.append(value)
            progress(1)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu
        stats = ex.stats()
    setups = len(log.read_text().splitlines())
    right = [(x % TABLE) ** 2 for x in range(calls)]
    problems = [] if values == right else [f"values {values[:5]}..."]
    if kept and setups > workers * 2:   # one interpreter a worker, and its successor if one died
        problems.append(f"{setups} setups for {workers} workers of one core")
    return make_row("context-kept" if kept else "context-per-call", makespan_s=elapsed, tasks=calls,
                    tasks_per_s=calls / elapsed, cpu_s=cpu, setups=setups, setup_s=setup_s,
                    correct=not problems, problems=problems, **tether_figures(stats))


def plans(options: Options, calls: int = 1_000, setup_s: float = 1.0) -> tuple[dict, list[RowPlan]]:
    if options.quick:
        calls, setup_s = min(calls, 40), min(setup_s, 0.05)
    w = options.workers
    runners = {"context-kept": partial(run, True, calls, setup_s, w),
               "context-per-call": partial(run, False, calls, setup_s, w)}
    parameters = {"calls": calls, "setup_s": setup_s, "workers": w, "cores_per_worker": 1, "quick": options.quick}
    return parameters, [RowPlan(n, calls, runners[n]) for n in options.wanted(ROWS)]


def check_targets(report: Report) -> list[dict]:
    return [t.ratio_at_least(report, "context-kept", "context-per-call", 10.0, "tasks_per_s")]


COLUMNS = ("makespan_s", "tasks_per_s", "setups", "setup_s", "cpu_s", "bytes_manager_to_worker")
