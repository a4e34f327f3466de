"""Dask distributed on the emulated cluster, file contents travelling as Dask results.

A scheduler in the root namespace (where the client is) and one `dask
worker` of one thread in each worker namespace, so that everything Dask
moves crosses the shaped links. Inputs are scattered from the client; a
step is a Dask task given the bytes of its input files, which it writes
into a sandbox (each input once per worker, linked from the worker's own
copy), runs the command there and returns its outputs' bytes; one small
task per output file makes each file a result of its own, so that a reader
fetches the file it reads and no other. Dask's own placement and work
stealing decide where each step runs and what moves. The client holds only
the final outputs' futures, so Dask releases a temp once its readers ran.

Figures: bytes scattered (manager to worker), gathered (worker to manager),
moved between workers as the workers' transfer logs record them, and the
peak bytes of results each worker held (a worker plugin that adds up its
results after every transition).
"""
from __future__ import annotations

import logging
import operator
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..report import make_row, tree_cpu_seconds
from ..workflow import Workflow
from . import Unavailable

PLUGIN = "tether-bench-held"
LOG_LENGTH = "1000000"   # transfer log entries each worker keeps (Dask's default, 1000, could drop some)


def run_step(command: str, inputs: tuple[str, ...], outputs: tuple[str, ...], *contents: bytes) -> dict[str, bytes]:
    """On a Dask worker: the step's command in a sandbox holding its inputs; its outputs' bytes."""
    from distributed import get_worker

    base = Path(get_worker().local_directory)
    files = base / "files"
    files.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix="step-") as sandbox:
        for name, data in zip(inputs, contents):
            kept = files / name   # every file of a workflow is made once, so its name says what it holds
            if not kept.exists():
                partial = files / f".{name}.{os.getpid()}"
                partial.write_bytes(data)
                partial.rename(kept)
            os.link(kept, Path(sandbox) / name)
        done = subprocess.run(["/bin/sh", "-c", command], cwd=sandbox, stdin=subprocess.DEVNULL, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"exit {done.returncode}: {done.stderr[-300:]!r}")
        return {o: (Path(sandbox) / o).read_bytes() for o in outputs}


def _held(data) -> int:
    """Bytes of the results a worker holds, each object counted once (a file's own result and the
    step's dict it came from share their bytes)."""
    seen: set[int] = set()
    total = 0
    for value in list(data.values()):
        for part in (value.values() if isinstance(value, dict) else (value,)):
            if isinstance(part, bytes) and id(part) not in seen:
                seen.add(id(part))
                total += len(part)
    return total


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:   # the row says Dask is missing when it runs
    WorkerPlugin = object


class PeakHeld(WorkerPlugin):
    """The most bytes of results this worker held at once, checked after every transition."""

    name = PLUGIN

    def setup(self, worker) -> None:
        self.worker = worker
        self.peak = 0

    def transition(self, key, start, finish, **kwargs) -> None:
        held = _held(self.worker.data)
        if held > self.peak:
            self.peak = held


def _peaks(dask_worker) -> int:
    return dask_worker.plugins[PLUGIN].peak


def _incoming(dask_worker) -> list[tuple[int, list[str]]]:
    return [(e["total"], [str(k) for k in e["keys"]]) for e in dask_worker.transfer_incoming_log]


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "dask", cluster=None) -> dict:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as e:
        raise Unavailable(f"dask distributed is not installed ({e}); pip install 'tether[bench]'") from None
    if cluster is None:
        raise Unavailable("this row runs on the emulated cluster only")
    home = work_dir / "home"
    workflow.write_inputs(home)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    scheduler = LocalCluster(n_workers=0, host=cluster.manager_host, scheduler_port=0, dashboard_address=None,
                             processes=False, protocol="tcp://", silence_logs=logging.ERROR)
    started_workers = []
    try:
        for i, link in enumerate(cluster.links[:workers]):
            local = work_dir / f"dask-{i}"
            local.mkdir()
            started_workers.append(cluster.start_process(
                i, [sys.executable, "-m", "distributed.cli.dask_worker", scheduler.scheduler_address,
                    "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--host", link.host, "--no-dashboard",
                    "--memory-limit", "0", "--local-directory", str(local), "--name", f"ns-{i}"],
                f"dask-{i}-{os.getpid()}", env={"DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": LOG_LENGTH}))
        with Client(scheduler) as client:
            client.wait_for_workers(len(started_workers), timeout=60)
            client.register_plugin(PeakHeld())
            row = _run(client, as_completed, workflow, home, progress)
    finally:
        cluster.stop(started_workers)
        scheduler.close()
    problems = row.pop("errors") or workflow.problems(home)
    return make_row(name, tasks=len(workflow), correct=not problems, problems=problems, **row)


def _run(client, as_completed, workflow: Workflow, home: Path, progress) -> dict:
    cpu = tree_cpu_seconds()
    started = time.perf_counter()
    files = client.scatter(dict(workflow.inputs), hash=False)
    input_keys = {str(f.key) for f in files.values()}
    steps = []
    for s in workflow.steps:
        step = client.submit(run_step, s.command, s.inputs, s.outputs, *[files[n] for n in s.inputs],
                             key=f"step-{s.name}", pure=False)
        steps.append(step)
        for o in s.outputs:
            files[o] = client.submit(operator.getitem, step, o, key=f"file-{o}", pure=False)
    finals = {n: files[n] for n in workflow.finals}
    del files, step   # only the finals stay held: Dask lets a temp go once its readers ran
    errors = []
    pending = as_completed(steps)
    steps = []
    for done in pending:
        if progress is not None:
            progress(1)
        if done.status == "error":
            errors.append(f"{done.key}: {done.exception()}")
        del done
    gathered = 0
    if not errors:
        for n, data in zip(finals, client.gather(list(finals.values()))):
            (home / n).write_bytes(data)
            gathered += len(data)
    makespan = time.perf_counter() - started
    cpu = tree_cpu_seconds() - cpu
    logs = client.run(_incoming)
    moved = sum(total for entries in logs.values() for total, _ in entries)
    moved_inputs = sum(total for entries in logs.values() for total, keys in entries
                       if all(k in input_keys for k in keys))
    names = {a: str(w.get("name", a)) for a, w in client.scheduler_info()["workers"].items()}
    peaks = {names.get(a, a): p for a, p in client.run(_peaks).items()}
    return {"makespan_s": makespan, "cpu_s": cpu, "errors": errors[:3],
            "bytes_manager_to_worker": sum(len(b) for b in workflow.inputs.values()),
            "bytes_worker_to_manager": gathered, "bytes_worker_to_worker": moved,
            "bytes_worker_to_worker_inputs": moved_inputs,
            "peak_disk_bytes": max(peaks.values()) if peaks else None, "peak_disk_bytes_per_worker": peaks,
            "peak_disk_source": "results held (Dask worker plugin)"}
