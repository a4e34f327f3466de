"""tether's own API: the workflow as Tasks on a Manager with local workers.

Three ways, each a row: intermediates as temp files with task groups (the
default), temp files without groups, and no temp files at all, where every
intermediate is brought home and its consumer, submitted only then, reads
it as a fresh input file sent out again. A fourth, `memo_rows`, runs the
default way twice with memoization over one memo directory: the first run
records every task, the second finds each recorded and runs none.
"""
from __future__ import annotations

import contextlib
import queue
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, ContextManager

from tether.manager.manager import Manager
from tether.task import Task

from ..display import wait_with_progress
from ..report import make_row, tether_figures, tree_cpu_seconds
from ..workflow import Workflow

ManagerFactory = Callable[[bool, Path], ContextManager[Manager]]


@contextlib.contextmanager
def local_manager(workers: int, group_tasks: bool, run_dir: Path, memo: Path | None = None):
    """A Manager with `workers` local workers of one core each, all connected."""
    with Manager(workers=workers, cores_per_worker=1, group_tasks=group_tasks, run_dir=run_dir, memo=memo) as m:
        m.wait_for_workers()
        yield m


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "tether-native",
        group_tasks: bool = True, temps: bool = True, manager: ManagerFactory | None = None,
        memo: Path | None = None) -> dict:
    if memo is not None and manager is not None:
        raise ValueError("memoized rows run on local workers only")
    home = work_dir / "home"
    workflow.write_inputs(home)
    run_dir = work_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    opened = manager(group_tasks, run_dir) if manager else local_manager(workers, group_tasks, run_dir, memo)
    with opened as m:
        cpu = tree_cpu_seconds()
        started = time.perf_counter()
        live, extra_figures = {}, {}
        if temps:
            # the program holds every File until the end, as one that may fetch them would: a Manager
            # told to keep temps until their File goes (prune=None) keeps them for the whole run
            futures, files = _submit_all(m, workflow, home)
            wait_with_progress(futures, progress)
            failures = [f.exception() for f in futures if f.exception() is not None]
            if not failures and memo is None:   # (memoized tasks have no worker, nor times of their own)
                per_worker: dict[str, int] = {}
                for f in futures:
                    per_worker[f.info.worker] = per_worker.get(f.info.worker, 0) + 1
                extra_figures["tasks_per_worker"] = dict(sorted(per_worker.items()))
            if not failures and workflow.sizes and memo is None:
                live = live_bytes_peaks(workflow, {s.name: f.info for s, f in zip(workflow.steps, futures)},
                                        {s.name: f.resolved for s, f in zip(workflow.steps, futures)})
        else:
            failures = _run_through_home(m, workflow, home, progress)
        makespan = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu
        stats = m.stats()
    if memo is not None:
        stats = m.stats()   # as at close, which waited for the last records to be written
    problems = [str(e) for e in failures[:3]] or workflow.problems(home)
    extra = dict(extra_figures, peak_live_bytes_per_worker=live) if live else extra_figures
    if memo is not None:
        extra.update(memo_hits=stats["memo_hits"], memo_recorded=stats["memo_recorded"])
    return make_row(name, makespan_s=makespan, cpu_s=cpu, tasks=len(workflow), correct=not problems, problems=problems,
                    **tether_figures(stats), **extra)


def memo_rows(workflow: Workflow, workers: int, work_dir: Path, progress=None,
              name: str = "tether-native-memo") -> list[dict]:
    """The workflow run twice over one memo directory, each run from a home of its own (the second
    writes its final outputs from the record): rows NAME-first and NAME-second."""
    memo = work_dir / "memo"
    return [run(workflow, workers, work_dir / which, progress, name=f"{name}-{which}", memo=memo)
            for which in ("first", "second")]


def _submit_all(m: Manager, workflow: Workflow, home: Path) -> tuple[list[Future], dict]:
    files = {}
    for name in workflow.inputs:
        files[name] = m.declare_file(home / name)
    for name in workflow.producer:
        files[name] = m.declare_temp() if name in workflow.temps else m.declare_file(home / name)
    futures = []
    for s in workflow.steps:
        task = Task(s.command, inputs={n: files[n] for n in s.inputs}, outputs={n: files[n] for n in s.outputs})
        f = m.submit(task)
        f.add_done_callback(_resolved_at)
        futures.append(f)
    return futures, files


def _resolved_at(f) -> None:
    """Note when a Future resolved: for a task with final outputs, after they are home."""
    f.resolved = time.time()


def _run_through_home(m: Manager, workflow: Workflow, home: Path, progress) -> list[BaseException]:
    """Submit each step once every file it reads is home, as a fresh input file."""
    waiting = {s.name: len(workflow.parents(s)) for s in workflow.steps}
    consumers = workflow.consumers()
    finished: queue.SimpleQueue = queue.SimpleQueue()

    def submit(step) -> None:
        inputs = {n: m.declare_file(home / n) for n in step.inputs}
        outputs = {n: m.declare_file(home / n) for n in step.outputs}
        f = m.submit(Task(step.command, inputs=inputs, outputs=outputs))
        f.add_done_callback(lambda f: finished.put((step, f)))

    for s in workflow.steps:
        if waiting[s.name] == 0:
            submit(s)
    readers_left = {n: 0 for n in workflow.temps}
    for s in workflow.steps:
        for n in s.inputs:
            if n in readers_left:
                readers_left[n] += 1
    left, failures = len(workflow.steps), []
    while left:
        step, f = finished.get()
        left -= 1
        if progress is not None:
            progress(1)
        if f.exception() is not None:
            failures.append(f.exception())
            break
        for n in step.inputs:  # an intermediate every reader has used goes, as a temp would
            if n in readers_left:
                readers_left[n] -= 1
                if readers_left[n] == 0:
                    (home / n).unlink()
        for c in consumers.get(step.name, ()):
            waiting[c.name] -= 1
            if waiting[c.name] == 0:
                submit(c)
    return failures


def live_bytes_peaks(workflow: Workflow, info: dict, resolved: dict) -> dict[str, int]:
    """Per worker, the most bytes of files alive at once, from the tasks' start and end times.

    A temp lives on its producer's worker from the producer's start until
    its last consumer ends, and on another consumer's worker while that
    consumer runs. A final output lives on its producer's worker until its
    Future resolves (it is home then). An input from the submitting side
    stays in a worker's cache from the first task that reads it there to
    the end of the run.
    """
    readers: dict[str, list[str]] = {}
    for s in workflow.steps:
        for n in s.inputs:
            readers.setdefault(n, []).append(s.name)
    end = max(i.finished for i in info.values())
    events: dict[str, list[tuple[float, int]]] = {}
    for name in workflow.temps:
        size = workflow.sizes.get(name)
        if size is None:
            continue
        made = info[workflow.producer[name]]
        users = [info[r] for r in readers[name]]
        spans = [(made.worker, made.started, max(u.finished for u in users))]
        spans += [(u.worker, u.started, u.finished) for u in users if u.worker != made.worker]
        for worker, start, stop in spans:
            events.setdefault(worker, []).extend([(start, size), (stop, -size)])
    for name in workflow.finals:
        size = workflow.sizes.get(name)
        step = workflow.producer[name]
        if size is not None:
            made = info[step]
            events.setdefault(made.worker, []).extend([(made.started, size), (resolved[step], -size)])
    for name, data in workflow.inputs.items():
        first: dict[str, float] = {}
        for r in readers.get(name, ()):
            i = info[r]
            first[i.worker] = min(first.get(i.worker, i.started), i.started)
        for worker, start in first.items():
            events.setdefault(worker, []).extend([(start, len(data)), (end, -len(data))])
    peaks = {}
    for worker, evs in events.items():
        level = peak = 0
        for _, delta in sorted(evs, key=lambda e: (e[0], e[1])):
            level += delta
            peak = max(peak, level)
        peaks[worker] = peak
    return peaks
