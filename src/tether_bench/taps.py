"""`tether bench taps`: TaPS applications run on tether, a process pool, Dask and Ray, side by side.

TaPS (github.com/proxystore/taps) is the published benchmark suite for
task executors; its apps are run here unchanged, through its own command
line (`python -m tether.taps`, which is `python -m taps.run` with the
tether executor registered), each run in a process of its own with the
same number of workers for every system. For each app the systems run one
after another, so that a disturbance of the shared machine falls on all of
them alike; with repeat > 1 the whole set runs again in rounds and each
row keeps its median run.

makespan_s is TaPS's own "Finished app (elapsed=...)": the application's
time, after the executor and its workers were started. Bytes moved are
known for tether only (the figures the plugin writes at shutdown).

failures-cholesky is TaPS's failure injection around cholesky: each task
first terminates the process it runs in with probability 0.1 (on tether a
warm interpreter, on Dask a worker, on Ray a worker process). It runs on
the systems that recover from that (a process pool breaks), and on
tether-spill too: tether with every result in its worker's cache, where an
interpreter's death does not take it (by default results below 1 MiB stay
in the memory of the interpreter that made them and are made again from
their lineage when it dies).

The tether plugin imports TaPS in its workers' interpreters while it
starts (a forked process pool inherits the import); Dask's and Ray's
workers import it with their first task, inside the app's time. The
tether-cold row runs tether without that warm-up, to show what it is worth.

"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from .report import make_row, tether_figures
from .sessions import end_session


def _apps(tasks: int, task_bytes: int, matrix: int, block: int, files: int, words: int,
          failing_matrix: int, failing_block: int) -> dict[str, list[str]]:
    """Each app's TaPS options at the given sizes."""
    def synthetic(structure: str) -> list[str]:
        return ["--app", "synthetic", "--app.structure", structure, "--app.task-count", str(tasks),
                "--app.task-data-bytes", str(task_bytes)]
    return {
        "synthetic-sequential": synthetic("sequential"),
        "synthetic-diamond": synthetic("diamond"),
        "synthetic-reduce": synthetic("reduce"),
        "cholesky": ["--app", "cholesky", "--app.matrix-size", str(matrix), "--app.block-size", str(block)],
        "mapreduce": ["--app", "mapreduce", "--app.generate", "true", "--app.generated-files", str(files),
                      "--app.generated-words", str(words)],
        # TaPS's failure injection around cholesky: each task, with probability 0.1, first
        # terminates the process it runs in (SIGTERM to itself)
        "failures-cholesky": ["--app", "failures", "--app.base", "cholesky", "--app.config",
                              json.dumps({"matrix_size": failing_matrix, "block_size": failing_block}),
                              "--app.failure-rate", "0.1", "--app.failure-type", "WORKER_KILLED"],
    }


# The sizes: 200 tasks of 1 MB data, a 2000-matrix in blocks of 250, 8 files of 200,000 words;
# failures around a 1000-matrix in blocks of 250.
APPS = _apps(200, 1_000_000, 2000, 250, 8, 200_000, 1000, 250)
QUICK_APPS = _apps(20, 100_000, 400, 100, 3, 20_000, 400, 100)
SYSTEMS = ("tether", "process-pool", "dask", "ray", "tether-cold")
# A process pool cannot survive a worker that terminates itself (BrokenProcessPool): the
# failures app runs on the systems that recover from it. tether-spill keeps every result in
# its worker's cache, where the death of the interpreter that made it does not take it.
APP_SYSTEMS = {"failures-cholesky": ("tether", "tether-spill", "dask", "ray")}
REFERENCE = "process-pool"
TIMEOUT = 900.0          # seconds a run may take, start-up included
QUICK_TIMEOUT = 300.0

_ELAPSED = re.compile(r"Finished app \(elapsed=([0-9.]+)s\)")
_ENGINE = re.compile(r"Initialized engine \(elapsed=([0-9.]+)s\)")


def executor_args(system: str, workers: int) -> list[str]:
    """TaPS options that give each system the same number of workers."""
    if system == "tether":
        return ["--engine.executor", "tether", "--engine.executor.workers", str(workers)]
    if system == "tether-cold":   # interpreters not warmed: TaPS is imported by the first task, as on Dask and Ray
        return [*executor_args("tether", workers), "--engine.executor.warm-modules", ""]
    if system == "tether-spill":  # every result in the worker's cache, none in an interpreter's memory
        return [*executor_args("tether", workers), "--engine.executor.spill-threshold", "0"]
    if system == "process-pool":
        return ["--engine.executor", "process-pool", "--engine.executor.max-processes", str(workers)]
    if system == "dask":
        return ["--engine.executor", "dask", "--engine.executor.workers", str(workers)]
    if system == "ray":
        return ["--engine.executor", "ray", "--engine.executor.num-cpus", str(workers)]
    raise ValueError(f"unknown system {system!r}; choose from {', '.join((*SYSTEMS, 'tether-spill'))}")


def unavailable_reason() -> str | None:
    """Why TaPS apps cannot run here, or None."""
    try:
        import taps  # noqa: F401
    except ImportError:
        return ("TaPS is not installed (pip install git+https://github.com/proxystore/taps; "
                "see the README's TaPS section)")
    return None


def run_one(app: str, app_args: list[str], system: str, workers: int, work_dir: Path,
            timeout: float) -> dict[str, Any]:
    """One TaPS run in a process (and session) of its own; its row."""
    row = make_row(f"{app}/{system}", app=app, system=system, workers=workers)
    run_dir = work_dir / "run"
    tmp = work_dir / "tmp"
    tmp.mkdir(parents=True)
    # Ray puts AF_UNIX sockets under its temp directory (107 bytes at most): a short one of its own.
    ray_tmp = Path(tempfile.mkdtemp(prefix="tb-ray-"))
    args = [sys.executable, "-m", "tether.taps", *app_args, *executor_args(system, workers),
            "--run.dir-format", str(run_dir), "--logging.level", "WARNING", "--logging.file-level", "INFO"]
    if "mapreduce" in app_args:
        args += ["--app.data-dir", str(work_dir / "data")]
    env = dict(os.environ, TMPDIR=str(tmp), RAY_TMPDIR=str(ray_tmp), RAY_USAGE_STATS_ENABLED="0",
               PYTHONWARNINGS="ignore")
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, cwd=work_dir)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        output = ""
        row["error"] = f"did not finish within {timeout:.0f} s"
    finally:
        end_session(proc)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    row["wall_s"] = time.perf_counter() - started
    log = (run_dir / "log.txt").read_text(errors="replace") if (run_dir / "log.txt").exists() else ""
    elapsed = _ELAPSED.search(log)
    engine = _ENGINE.search(log)
    if elapsed is not None:
        row["makespan_s"] = float(elapsed.group(1))
    if engine is not None:
        row["engine_start_s"] = float(engine.group(1))
    records = _task_records(run_dir / "tasks.jsonl")
    row["tasks"] = len(records)
    failed = [r for r in records if not r.get("success")]
    if proc.returncode != 0 or elapsed is None or failed:
        row.setdefault("error", f"exit code {proc.returncode}, {len(failed)} failed task(s)")
        # the environment's own path says nothing about the run, and does not belong in a report
        row["output_tail"] = (output or log)[-2000:].replace(sys.prefix, "<python prefix>")
    row["correct"] = "error" not in row
    stats_path = run_dir / "tether-stats.json"
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        row.update(tether_figures(stats))
        for key in ("tasks_failed", "attempts_failed", "reruns", "system_failures"):
            row[key] = stats.get(key)
    return row


def _task_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's makespan over the process pool's for the same app."""
    reference = {r["app"]: r.get("makespan_s") for r in rows if r.get("system") == REFERENCE}
    for r in rows:
        ref = reference.get(r.get("app"))
        r["vs_process_pool"] = (r["makespan_s"] / ref) if r.get("makespan_s") and ref else None


def plans(options, apps: Iterable[str] | None = None,
          systems: Iterable[str] | None = None) -> tuple[dict[str, Any], list]:
    """The rows of `tether bench taps`: for each app, every system one after another."""
    from .runner import RowPlan
    from .systems import Unavailable

    table = QUICK_APPS if options.quick else APPS
    apps = list(apps or table)
    systems = list(systems or dict.fromkeys(s for a in apps for s in APP_SYSTEMS.get(a, SYSTEMS)))
    for a in apps:
        if a not in table:
            raise ValueError(f"unknown app {a!r}; choose from {', '.join(table)}")
    for s in systems:
        executor_args(s, options.workers)
    known = {s for a in apps for s in APP_SYSTEMS.get(a, SYSTEMS)}
    idle = [s for s in systems if s not in known]
    if idle:
        raise ValueError(f"system(s) {', '.join(idle)} run none of the apps asked for")
    names = options.wanted([f"{a}/{s}" for a in apps for s in APP_SYSTEMS.get(a, SYSTEMS) if s in systems])
    timeout = QUICK_TIMEOUT if options.quick else TIMEOUT

    def plan(name: str) -> RowPlan:
        app, system = name.split("/")

        def run(work_dir: Path, advance) -> dict[str, Any]:
            reason = unavailable_reason()
            if reason is not None:
                raise Unavailable(reason)
            row = run_one(app, table[app], system, options.workers, work_dir, timeout)
            advance(row.get("tasks") or 0)
            return row
        return RowPlan(name, None, run)

    parameters = {"workers": options.workers, "quick": options.quick,
                  "apps": {a: " ".join(table[a]) for a in apps}, "systems": systems}
    return parameters, [plan(n) for n in names]


def check_targets(report) -> list[dict[str, Any]]:
    """The issue's targets: on each app, tether within 1.2x the process pool and faster than Dask and Ray.

    Adds each row's ratio to the process pool first, so the table shows it.
    """
    add_ratios(report.rows)
    return targets_from_rows(report.rows)


def targets_from_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per app: tether within 1.2x the process pool, faster than Dask and Ray (each where the app
    runs on that system); an app that injects failures must also finish on tether."""
    by = {(r["app"], r["system"]): r.get("makespan_s") for r in rows}
    out = []
    for app in dict.fromkeys(r["app"] for r in rows):
        systems = APP_SYSTEMS.get(app, SYSTEMS)
        for me in [s for s in ("tether", "tether-spill") if s in systems and (s == "tether" or (app, s) in by)]:
            mine = by.get((app, me))
            if app in APP_SYSTEMS and (app, me) in by:
                row = next(r for r in rows if r["app"] == app and r["system"] == me)
                finished = bool(mine) and row.get("correct") is True
                out.append({"target": f"{app}: finishes on {me}", "met": finished, "measured": mine,
                            "value": f"finished in {mine:.2f} s" if finished else
                            f"did not finish ({row.get('error') or row.get('skipped') or 'no time'})"})
            for other, limit in (("process-pool", 1.2), ("dask", 1.0), ("ray", 1.0)):
                if other not in systems:
                    continue
                theirs = by.get((app, other))
                ratio = mine / theirs if mine and theirs else None
                word = "at most 1.2x" if limit != 1.0 else "faster than"
                met = None if ratio is None else ratio <= limit if limit != 1.0 else ratio < 1.0
                out.append({"target": f"{app}: {me} {word} {other}", "met": met, "measured": ratio,
                            "value": "not measured" if ratio is None else f"{ratio:.2f}x"})
    return out
