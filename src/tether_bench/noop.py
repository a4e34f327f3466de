"""`tether bench noop`: how many no-op Python tasks a second, and the hop of a chain.

Throughput is measured as parsl-perf measures it: submit N tasks that do
nothing, wait for all, N / elapsed, after a warm-up of a few tasks per
worker. The chain passes each task's result to the next: natively through
a temp file between PythonTasks (hop latency from the manager's stats);
through Parsl and Dask as chained apps each taking the previous result,
where each task reports its own start and end, and a hop is one task's
start minus its predecessor's end. The tether-executor rows are
tether.Executor: `ex.map` of no-op calls, and a chain of 1,000 futures
(each call given the previous call's future), hops measured as Dask's.
"""
from __future__ import annotations

import statistics
import time
from concurrent.futures import wait
from functools import partial
from pathlib import Path

from . import targets as t
from .display import wait_with_progress
from .report import Report, make_row, tether_figures, tree_cpu_seconds
from .runner import Options, RowPlan

# the -notx rows keep no transaction log: beside the rows that do, they show what writing it costs
# parsl-threads is Parsl's own ThreadPoolExecutor: the DataFlowKernel's cost per app, the floor of the Parsl rows
# the -chunks rows are `map(..., chunksize=CHUNK)`: a task per chunk of calls, beside a process pool's own
THROUGHPUT_ROWS = ["tether-native", "tether-native-notx", "tether-executor", "tether-executor-notx",
                   "tether-executor-chunks", "process-pool", "process-pool-chunks", "tether-parsl",
                   "parsl-threads", "parsl-htex", "dask"]
CHUNK = 64
CHAIN_ROWS = ["tether-native-chain", "tether-executor-chain", "tether-parsl-chain", "parsl-threads-chain",
              "parsl-htex-chain", "dask-chain"]


def noop() -> None:
    return None


def noop_arg(_) -> None:
    return None


def link(previous):
    """One chained step: takes the previous (value, started, finished), returns its own."""
    started = time.time()
    value = previous[0] + 1 if previous is not None else 0
    return value, started, time.time()


def link_file() -> int:
    """One natively chained step: reads the predecessor's number from `in` (if any), writes the next to `out`."""
    try:
        with open("in") as f:
            value = int(f.read()) + 1
    except FileNotFoundError:
        value = 0
    with open("out", "w") as f:
        f.write(str(value))
    return value


def rate_row(name: str, tasks: int, elapsed: float, cpu: float | None, **extra) -> dict:
    """cpu: seconds used by every process of the system, or None where some run outside this process tree."""
    return make_row(name, makespan_s=elapsed, tasks=tasks, tasks_per_s=tasks / elapsed, cpu_s=cpu,
                    cpu_us_per_task=None if cpu is None else cpu / tasks * 1e6, **extra)


def chain_row(name: str, results: list, elapsed: float, length: int) -> dict:
    hops = [b[1] - a[2] for a, b in zip(results, results[1:])]
    values = [r[0] for r in results]
    ok = values == list(range(length))
    return make_row(name, makespan_s=elapsed, tasks=length, hop_latency_median_s=statistics.median(hops),
                    hop_latency_p95_s=sorted(hops)[int(0.95 * (len(hops) - 1))], correct=ok,
                    problems=[] if ok else [f"chain values {values[:5]}..."])


# ------------------------------------------------------------------ tether, natively


def native_throughput(tasks: int, workers: int, work_dir: Path, progress, name: str = "tether-native",
                      **manager_options) -> dict:
    """N no-op PythonTasks after a warm-up; manager_options (transactions, tls, ...) go to the Manager."""
    from tether.manager.manager import Manager
    from tether.task import PythonTask

    with Manager(workers=workers, cores_per_worker=1, run_dir=work_dir, **manager_options) as m:
        m.wait_for_workers()
        wait([m.submit(PythonTask(noop)) for _ in range(4 * workers)])
        cpu = tree_cpu_seconds()
        started = time.perf_counter()
        futures = [m.submit(PythonTask(noop)) for _ in range(tasks)]
        submitted = time.perf_counter()
        wait_with_progress(futures, progress)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu
        errors = [f.exception() for f in futures if f.exception() is not None]
        stats = m.stats()
    return rate_row(name, tasks, elapsed, cpu, submit_s=submitted - started, correct=not errors,
                    problems=[str(e) for e in errors[:3]], **tether_figures(stats))


def native_chain(length: int, workers: int, work_dir: Path, progress) -> dict:
    from tether.manager.manager import Manager
    from tether.task import PythonTask

    home = work_dir / "home"
    home.mkdir()
    with Manager(workers=workers, cores_per_worker=1, run_dir=work_dir) as m:
        m.wait_for_workers()
        wait([m.submit(PythonTask(noop)) for _ in range(4 * workers)])
        cpu = tree_cpu_seconds()
        started = time.perf_counter()
        futures, prev = [], None
        for i in range(length):
            out = m.declare_file(home / "last") if i == length - 1 else m.declare_temp()
            f = m.submit(PythonTask(link_file, inputs={"in": prev} if prev else {}, outputs={"out": out}))
            futures.append(f)
            prev = out
        wait_with_progress(futures, progress)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu
        errors = [f.exception() for f in futures if f.exception() is not None]
        stats = m.stats()
    ok = not errors and (home / "last").read_text() == str(length - 1)
    return make_row("tether-native-chain", makespan_s=elapsed, cpu_s=cpu, tasks=length, correct=ok,
                    problems=[str(e) for e in errors[:3]], **tether_figures(stats))


# ------------------------------------------------------------------ tether.Executor


def executor_throughput(tasks: int, workers: int, work_dir: Path, progress, transactions: bool = True,
                        chunksize: int = 1) -> dict:
    """`list(ex.map(noop_arg, range(N)))`, as a user of concurrent.futures writes it."""
    from tether.executor import Executor

    with Executor(workers=workers, cores_per_worker=1, run_dir=work_dir, transactions=transactions) as ex:
        ex.manager.wait_for_workers()
        values, elapsed, cpu = _timed_map(ex, tasks, workers, chunksize, progress)
        stats = ex.stats()
    ok = values == [None] * tasks
    name = "tether-executor" + ("" if transactions else "-notx") + ("-chunks" if chunksize > 1 else "")
    figures = tether_figures(stats)
    if chunksize > 1:   # tether ran a task a chunk: the calls done are the values that came back
        figures["chunk_tasks_done"] = figures.pop("tasks_done")
        figures["tasks_done"] = len(values)
    return rate_row(name, tasks, elapsed, cpu, correct=ok, **figures)


def process_pool_throughput(tasks: int, workers: int, work_dir: Path, progress, chunksize: int = 1) -> dict:
    """The same map on concurrent.futures.ProcessPoolExecutor, one process a worker."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        values, elapsed, cpu = _timed_map(pool, tasks, workers, chunksize, progress)
    return rate_row("process-pool" + ("-chunks" if chunksize > 1 else ""), tasks, elapsed, cpu,
                    correct=values == [None] * tasks)


def _timed_map(executor, tasks: int, workers: int, chunksize: int, progress) -> tuple[list, float, float]:
    """A warm-up map, then the timed one: its values, seconds and the CPU of every process of the run."""
    list(executor.map(noop_arg, range(4 * workers)))
    cpu = tree_cpu_seconds()
    started = time.perf_counter()
    values = list(executor.map(noop_arg, range(tasks), chunksize=chunksize))
    elapsed = time.perf_counter() - started
    cpu = tree_cpu_seconds() - cpu
    progress(tasks)
    return values, elapsed, cpu


def executor_chain(length: int, workers: int, work_dir: Path, progress) -> dict:
    """Each call takes the previous call's future; every result stays on its worker until gathered at the end."""
    from tether.executor import Executor

    with Executor(workers=workers, cores_per_worker=1, run_dir=work_dir) as ex:
        ex.manager.wait_for_workers()
        list(ex.map(noop_arg, range(4 * workers)))
        started = time.perf_counter()
        futures, prev = [], None
        for _ in range(length):
            prev = ex.submit(link, prev)
            futures.append(prev)
        wait_with_progress(futures, progress)
        elapsed = time.perf_counter() - started
        stats = ex.stats()      # before the results are gathered: what the chain itself moved
        results = [f.result() for f in futures]
    row = chain_row("tether-executor-chain", results, elapsed, length)
    # the hops measured by the calls themselves stand; the manager's (from temp files) do not apply
    row.update({k: v for k, v in tether_figures(stats).items() if not k.startswith("hop_")})
    return row


# ------------------------------------------------------------------ Parsl (HTEX, its threads, or tether through Parsl)


def _loaded(system: str, workers: int, work_dir: Path, parsl_logging: bool):
    if system == "parsl-htex":
        from .systems import parsl_htex
        return parsl_htex.loaded(workers, work_dir, parsl_logging)
    if system == "parsl-threads":
        from .systems import parsl_threads
        return parsl_threads.loaded(workers, work_dir, parsl_logging)
    from .systems import tether_parsl
    return _first(tether_parsl.loaded(workers, work_dir, parsl_logging))


class _first:
    """tether_parsl.loaded yields (dfk, executor); the noop rows need only the dfk."""

    def __init__(self, cm):
        self.cm = cm

    def __enter__(self):
        return self.cm.__enter__()[0]

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


def parsl_throughput(system: str, tasks: int, workers: int, parsl_logging: bool, work_dir: Path, progress) -> dict:
    from .systems.parsl_apps import import_parsl, python_apps

    import_parsl()
    with _loaded(system, workers, work_dir, parsl_logging):
        noop_app, _ = python_apps()
        wait([noop_app() for _ in range(4 * workers)])
        cpu = tree_cpu_seconds()
        started = time.perf_counter()
        futures = [noop_app() for _ in range(tasks)]
        submitted = time.perf_counter()
        wait_with_progress(futures, progress)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu
        errors = [f.exception() for f in futures if f.exception() is not None]
    # Parsl's LocalProvider starts workers in the background, outside this process tree: their CPU is not
    # seen; the thread pool's threads are this process's
    return rate_row(system, tasks, elapsed, cpu if system == "parsl-threads" else None,
                    submit_s=submitted - started, correct=not errors, problems=[str(e) for e in errors[:3]])


def parsl_chain(system: str, length: int, workers: int, parsl_logging: bool, work_dir: Path, progress) -> dict:
    from .systems.parsl_apps import import_parsl, python_apps

    import_parsl()
    with _loaded(system, workers, work_dir, parsl_logging):
        noop_app, link_app = python_apps()
        wait([noop_app() for _ in range(4 * workers)])
        started = time.perf_counter()
        futures, prev = [], None
        for _ in range(length):
            prev = link_app(prev)
            futures.append(prev)
        wait_with_progress(futures, progress)
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - started
    return chain_row(f"{system}-chain", results, elapsed, length)


# ------------------------------------------------------------------ Dask


def dask_throughput(tasks: int, workers: int, work_dir: Path, progress) -> dict:
    from .systems.dask_shared import dask_wait_with_progress, start_cluster

    cluster, client = start_cluster(workers, work_dir)
    try:
        client.gather(client.map(noop_arg, range(4 * workers), pure=False))
        cpu = tree_cpu_seconds()
        started = time.perf_counter()
        futures = [client.submit(noop, pure=False) for _ in range(tasks)]
        submitted = time.perf_counter()
        dask_wait_with_progress(futures, progress)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds() - cpu
    finally:
        client.close()
        cluster.close()
    return rate_row("dask", tasks, elapsed, cpu, submit_s=submitted - started, correct=True)


def dask_chain(length: int, workers: int, work_dir: Path, progress) -> dict:
    from .systems.dask_shared import dask_wait_with_progress, start_cluster

    cluster, client = start_cluster(workers, work_dir)
    try:
        client.gather(client.map(noop_arg, range(4 * workers), pure=False))
        started = time.perf_counter()
        futures, prev = [], None
        for _ in range(length):
            prev = client.submit(link, prev, pure=False)
            futures.append(prev)
        dask_wait_with_progress(futures, progress)
        results = client.gather(futures)
        elapsed = time.perf_counter() - started
    finally:
        client.close()
        cluster.close()
    return chain_row("dask-chain", results, elapsed, length)


# ------------------------------------------------------------------ plan and targets


def plans(options: Options, tasks: int = 10_000, length: int = 200,
          futures_length: int = 1_000) -> tuple[dict, list[RowPlan]]:
    if options.quick:
        tasks, length, futures_length = min(tasks, 200), min(length, 20), min(futures_length, 20)
    w = options.workers
    runners = {
        "tether-native": (tasks, partial(native_throughput, tasks, w)),
        "tether-native-notx": (tasks, partial(native_throughput, tasks, w, name="tether-native-notx",
                                              transactions=False)),
        "tether-executor": (tasks, partial(executor_throughput, tasks, w)),
        "tether-executor-notx": (tasks, partial(executor_throughput, tasks, w, transactions=False)),
        "tether-executor-chunks": (tasks, partial(executor_throughput, tasks, w, chunksize=CHUNK)),
        "process-pool": (tasks, partial(process_pool_throughput, tasks, w)),
        "process-pool-chunks": (tasks, partial(process_pool_throughput, tasks, w, chunksize=CHUNK)),
        "tether-parsl": (tasks, partial(parsl_throughput, "tether-parsl", tasks, w, options.parsl_logging)),
        "parsl-threads": (tasks, partial(parsl_throughput, "parsl-threads", tasks, w, options.parsl_logging)),
        "parsl-htex": (tasks, partial(parsl_throughput, "parsl-htex", tasks, w, options.parsl_logging)),
        "dask": (tasks, partial(dask_throughput, tasks, w)),
        "tether-native-chain": (length, partial(native_chain, length, w)),
        "tether-executor-chain": (futures_length, partial(executor_chain, futures_length, w)),
        "tether-parsl-chain": (length, partial(parsl_chain, "tether-parsl", length, w, options.parsl_logging)),
        "parsl-threads-chain": (length, partial(parsl_chain, "parsl-threads", length, w, options.parsl_logging)),
        "parsl-htex-chain": (length, partial(parsl_chain, "parsl-htex", length, w, options.parsl_logging)),
        "dask-chain": (length, partial(dask_chain, length, w)),
    }
    names = options.wanted(THROUGHPUT_ROWS + CHAIN_ROWS)
    parameters = {"tasks": tasks, "chain_length": length, "futures_chain_length": futures_length, "workers": w, "cores_per_worker": 1,
                  "quick": options.quick, "parsl_logging": options.parsl_logging}
    return parameters, [RowPlan(n, runners[n][0], runners[n][1]) for n in names]


def check_targets(report: Report) -> list[dict]:
    return [t.figure_at_least(report, "tether-native", "tasks_per_s", 20_000, "{:,.0f}/s"),
            t.ratio_at_least(report, "tether-parsl", "parsl-htex", 1.5, "tasks_per_s"),
            t.faster_than(report, "tether-parsl-chain", "parsl-htex-chain", "hop_latency_median_s"),
            t.figure_at_most(report, "tether-native-chain", "hop_latency_median_s", 1e-3, "{:.2e} s"),
            t.figure_at_least(report, "tether-executor", "tasks_per_s", 30_000, "{:,.0f}/s"),
            t.figure_at_least(report, "tether-executor-chunks", "tasks_per_s", 30_000, "{:,.0f}/s"),
            t.ratio_at_least(report, "tether-executor", "process-pool", 1.0, "tasks_per_s"),
            t.ratio_at_least(report, "tether-native", "tether-native-notx", 0.95, "tasks_per_s"),
            t.ratio_at_least(report, "tether-executor", "tether-executor-notx", 0.95, "tasks_per_s"),
            t.figure_at_most(report, "tether-executor-chain", "hop_latency_median_s", 0.5e-3, "{:.2e} s"),
            *t.parsl_floor(report), *t.parsl_floor(report, "-chain")]
