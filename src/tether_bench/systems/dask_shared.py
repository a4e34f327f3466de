"""Dask distributed: a LocalCluster of worker processes, files passed through a shared directory.

Each step is a Dask task that runs the shell command in the shared
directory and depends on the tasks that make its inputs. Hop latency comes
from Dask's own task stream (compute start of a step minus the compute
end of its last producer).
"""
from __future__ import annotations

import logging
import statistics
import subprocess
import time
from pathlib import Path

from ..report import make_row, tree_cpu_seconds
from ..workflow import Workflow
from . import Unavailable


def run_step(command: str, cwd: str, *after) -> int:
    """Run on a Dask worker; `after` holds the producers' results, only to order the steps."""
    done = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr[-300:]!r}")
    return done.returncode


def start_cluster(workers: int, work_dir: Path):
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise Unavailable(f"dask distributed is not installed ({e}); pip install 'tether[bench]'") from None
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           local_directory=str(work_dir / "dask"), silence_logs=logging.ERROR)
    client = Client(cluster)
    client.wait_for_workers(workers)
    client.gather(client.map(run_step, ["true"] * (2 * workers), [str(work_dir)] * (2 * workers), pure=False))
    return cluster, client


def dask_wait_with_progress(futures: list, progress) -> None:
    """Wait for Dask futures from this thread (they are not concurrent.futures), advancing the bar."""
    from distributed import as_completed

    for _ in as_completed(futures):
        if progress is not None:
            progress(1)


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "dask") -> dict:
    from distributed import get_task_stream

    shared = work_dir / "shared"
    workflow.write_inputs(shared)
    cluster, client = start_cluster(workers, work_dir)
    try:
        futures = {}
        with get_task_stream(client) as stream:
            cpu = tree_cpu_seconds()
            started = time.perf_counter()
            for s in workflow.steps:
                deps = [futures[p] for p in workflow.parents(s)]
                futures[s.name] = client.submit(run_step, s.command, str(shared), *deps, key=f"step-{s.name}",
                                                pure=False)
            dask_wait_with_progress(list(futures.values()), progress)
            errors = [e for e in (f.exception() for f in futures.values()) if e is not None]
            makespan = time.perf_counter() - started
            cpu = tree_cpu_seconds() - cpu
        hops = _hops(workflow, stream.data)
    finally:
        client.close()
        cluster.close()
    problems = [str(e) for e in errors[:3]] or workflow.problems(shared)
    return make_row(name, makespan_s=makespan, cpu_s=cpu, hop_latency_median_s=statistics.median(hops) if hops else None,
                    tasks=len(workflow), correct=not problems, problems=problems)


def _hops(workflow: Workflow, stream: list[dict]) -> list[float]:
    spans = {}
    for record in stream:
        for ss in record.get("startstops", ()):
            if ss.get("action") == "compute":
                spans[str(record["key"]).removeprefix("step-")] = (ss["start"], ss["stop"])
    hops = []
    for s in workflow.steps:
        parents = workflow.parents(s)
        if s.name in spans and parents and all(p in spans for p in parents):
            hops.append(spans[s.name][0] - max(spans[p][1] for p in parents))
    return hops
