"""The systems of `tether bench longrun`, each run in a process of its own:

    python -m tether_bench.longrun_systems ROW WORKERS WAVE,WAVE,... DIRECTORY

A process of its own, so that the memory it reports after each wave is
that system's alone: rows run one after another in one process would
inherit each other's freed but unreturned memory, which hides growth.
It prints one JSON line per wave ({"wave": ...}) as the wave ends, and a
last line with the totals ({"done": ...}), or {"skipped": reason}.

Each wave is submitted whole, then waited for, and the wave's futures are
dropped before the process's RSS is read: what remains is what the system
keeps. tether's manager and Dask's scheduler live in this process; a
process pool keeps nothing of a finished call here.
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any, Callable

import psutil

from .noop import link_file, noop, noop_arg
from .report import tether_figures, tree_cpu_seconds
from .systems import Unavailable


def run_waves(waves: list[int], run_wave: Callable[[int], int], emit: Callable[[dict], None],
              held: Callable[[], dict] | None = None) -> dict[str, Any]:
    """run_wave(n) runs n no-ops and returns how many came back right; each wave's time and the RSS
    after it go to emit as the wave ends. held() names what the system holds (tether: tasks, records)."""
    me = psutil.Process()
    rss_start = me.memory_info().rss
    cpu = tree_cpu_seconds()
    right = 0
    for i, n in enumerate(waves):
        started = time.perf_counter()
        right += run_wave(n)
        seconds = time.perf_counter() - started
        line = {"wave": i + 1, "tasks": n, "seconds": seconds, "rss_bytes": me.memory_info().rss,
                **(held() if held else {})}
        line["rss_settled_bytes"] = _settled_rss(me, held)
        emit(line)
    return {"right": right, "cpu_s": tree_cpu_seconds() - cpu, "rss_start_bytes": rss_start}


def _settled_rss(me: psutil.Process, held: Callable[[], dict] | None, limit: float = 10.0) -> int:
    """The RSS once the system has let go of the wave: a wave's Futures, dropped as it ends, are
    released in the manager's loop a moment later (at most `limit` seconds are waited for that)."""
    if held is not None:
        deadline = time.monotonic() + limit
        while held()["records_held"] and time.monotonic() < deadline:
            time.sleep(0.05)
    return me.memory_info().rss


def tether_native(workers: int, waves: list[int], work_dir: Path, emit) -> dict[str, Any]:
    """PythonTasks of a no-op through the Manager, a wave submitted, then waited for."""
    from tether.manager.manager import Manager
    from tether.task import PythonTask

    with Manager(workers=workers, cores_per_worker=1, run_dir=work_dir, progress=False) as m:
        m.wait_for_workers()
        wait([m.submit(PythonTask(noop)) for _ in range(4 * workers)])

        def wave(n: int) -> int:
            futures = [m.submit(PythonTask(noop)) for _ in range(n)]
            wait(futures)
            return sum(f.exception() is None for f in futures)

        done = run_waves(waves, wave, emit, lambda: _held(m))
        stats = m.stats()
    return {**done, **tether_figures(stats)}


def tether_executor(workers: int, waves: list[int], work_dir: Path, emit) -> dict[str, Any]:
    """tether.Executor as concurrent.futures is used: `ex.submit(noop)` for a wave, then each `.result()`."""
    from tether.executor import Executor

    with Executor(workers=workers, cores_per_worker=1, run_dir=work_dir, progress=False) as ex:
        ex.manager.wait_for_workers()
        [ex.submit(noop).result() for _ in range(4 * workers)]

        def wave(n: int) -> int:
            futures = [ex.submit(noop) for _ in range(n)]
            return sum(f.result() is None for f in futures)

        done = run_waves(waves, wave, emit, lambda: _held(ex.manager))
        stats = ex.stats()
    return {**done, **tether_figures(stats)}


CHAIN = 10   # tasks in each chain of the tether-chains row


def tether_chains(workers: int, waves: list[int], work_dir: Path, emit) -> dict[str, Any]:
    """Chains of CHAIN PythonTasks, each reading the temp file the one before made, as a program builds them
    in a loop (each handle dropped as the loop moves on): the lineage the Manager keeps, wave after wave."""
    from tether.manager.manager import Manager
    from tether.task import PythonTask

    with Manager(workers=workers, cores_per_worker=1, run_dir=work_dir, progress=False) as m:
        m.wait_for_workers()
        wait([m.submit(PythonTask(noop)) for _ in range(4 * workers)])

        def wave(n: int) -> int:
            futures = []
            for start in range(0, n, CHAIN):
                prev = None
                for _ in range(min(CHAIN, n - start)):
                    out = m.declare_temp()
                    futures.append(m.submit(PythonTask(link_file, inputs={"in": prev} if prev else {},
                                                       outputs={"out": out})))
                    prev = out
            del prev, out
            wait(futures)
            return sum(f.exception() is None for f in futures)

        done = run_waves(waves, wave, emit, lambda: _held(m))
        stats = m.stats()
    return {**done, **tether_figures(stats)}


def _held(manager) -> dict[str, int]:
    """Tasks in the scheduler core's graph and task records in the engine, after a wave (a len() from
    this thread: a moment's reading, not a locked one)."""
    return {"tasks_held": len(manager.core.tasks), "records_held": len(manager.engine.records)}


def process_pool(workers: int, waves: list[int], work_dir: Path, emit) -> dict[str, Any]:
    """concurrent.futures.ProcessPoolExecutor, the same calls: submit a wave, then each `.result()`."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(noop_arg, range(4 * workers)))

        def wave(n: int) -> int:
            futures = [pool.submit(noop) for _ in range(n)]
            return sum(f.result() is None for f in futures)

        return run_waves(waves, wave, emit)


def dask(workers: int, waves: list[int], work_dir: Path, emit) -> dict[str, Any]:
    """Dask distributed's LocalCluster (its scheduler in this process): submit a wave, gather it."""
    from .systems.dask_shared import start_cluster

    cluster, client = start_cluster(workers, work_dir)
    try:
        def wave(n: int) -> int:
            futures = [client.submit(noop, pure=False) for _ in range(n)]
            return sum(v is None for v in client.gather(futures))

        return run_waves(waves, wave, emit)
    finally:
        client.close()
        cluster.close()


SYSTEMS = {"tether-native": tether_native, "tether-executor": tether_executor, "tether-chains": tether_chains,
           "process-pool": process_pool, "dask": dask}


def main(argv: list[str]) -> int:
    row, workers, waves, directory = argv

    def emit(line: dict) -> None:
        print(json.dumps(line), flush=True)

    try:
        done = SYSTEMS[row](int(workers), [int(n) for n in waves.split(",")], Path(directory), emit)
    except Unavailable as e:
        emit({"skipped": str(e)})
        return 0
    emit({"done": done})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
