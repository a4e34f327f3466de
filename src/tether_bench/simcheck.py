"""`tether bench simcheck TRACE`: the simulator against real runs of the same trace.

At sizes both can run here, the trace is replayed for real (tether-native:
local workers of one core, each task sleeping its scaled run time and
writing its outputs at their scaled size) and in `tether simulate`, with
the links and the per-task cost measured on this machine first:

  overhead    a chain of no-op tasks run as one group on one worker: what
              starting, running and reporting a task costs, per task
  latency     independent tasks that sleep, on one worker: each waits for a
              round trip to the manager (they are too long to queue), so the
              time beyond sleep and overhead is two message delays
  bandwidth   one task reading a large input from the manager, less the
              overhead and the round trip

Each worker count gives a row with the real and the simulated figures and
their ratio (simulated / real); the targets ask every ratio to be within 20%.
"""
from __future__ import annotations

import time
from pathlib import Path

from tether.manager.manager import Manager
from tether.simrun import Setup, simulate
from tether.task import Task
from tether.traces import load

from . import targets as t
from .replay import workflow
from .report import Report, make_row
from .runner import Options, RowPlan
from .systems import tether_native

WORKER_COUNTS = (4, 8)
QUICK_WORKER_COUNTS = (2,)
CALIBRATION_TASKS = 20
SLEEP = 0.05            # seconds each task of the latency probe sleeps: beyond what a worker queues
PROBE_BYTES = 64 << 20  # the bandwidth probe's input
TOLERANCE = 0.2         # simulated / real within 1 +- this
FIGURES = ("makespan_s", "bytes_manager_to_worker", "bytes_worker_to_worker", "bytes_worker_to_manager")
COLUMNS = ("workers", "makespan_real_s", "makespan_sim_s", "makespan_ratio", "bytes_real", "bytes_sim",
           "bytes_ratio")   # what the summary table shows


def calibrate(work_dir: Path, probe_bytes: int = PROBE_BYTES) -> dict[str, float]:
    """Per-task overhead, message latency and link bandwidth of local workers, measured as described above."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with Manager(workers=1, cores_per_worker=1, run_dir=work_dir / "run") as m:
        m.wait_for_workers()
        m.submit(Task("true")).result()   # warm: the worker's first task pays for its sandbox directory
        started = time.perf_counter()
        previous = None
        futures = []
        for _ in range(CALIBRATION_TASKS):
            made = m.declare_temp()
            inputs = {"in": previous} if previous is not None else {}
            futures.append(m.submit(Task("touch out", inputs=inputs, outputs={"out": made})))
            previous = made
        for f in futures:
            f.result()
        overhead = (time.perf_counter() - started) / CALIBRATION_TASKS
        started = time.perf_counter()
        for f in [m.submit(Task(f"sleep {SLEEP}")) for _ in range(CALIBRATION_TASKS)]:
            f.result()
        per_task = (time.perf_counter() - started) / CALIBRATION_TASKS
        latency = max(0.0, (per_task - SLEEP - overhead) / 2)
        probe = work_dir / "probe"
        probe.write_bytes(b"\0" * probe_bytes)
        started = time.perf_counter()
        m.submit(Task("cat in > /dev/null", inputs={"in": m.declare_file(probe)})).result()
        seconds = time.perf_counter() - started - overhead - 2 * latency
        probe.unlink()
    return {"overhead_s": overhead, "latency_s": latency, "bandwidth_bytes_per_s": probe_bytes / max(seconds, 1e-6)}


def compare(real: dict, sim: dict) -> dict:
    """The figures side by side, each with its ratio simulated / real (None where the real one is 0)."""
    row: dict = {}
    for key in FIGURES:
        base = key[:-2] if key.endswith("_s") else key
        row[f"{base}_real{'_s' if key.endswith('_s') else ''}"] = real[key]
        row[f"{base}_sim{'_s' if key.endswith('_s') else ''}"] = sim[key]
        row[f"{base}_ratio"] = sim[key] / real[key] if real[key] else (1.0 if not sim[key] else None)
    real_bytes = sum(real[k] for k in FIGURES[1:])
    sim_bytes = sum(sim[k] for k in FIGURES[1:])
    row.update(bytes_real=real_bytes, bytes_sim=sim_bytes, bytes_ratio=sim_bytes / real_bytes if real_bytes else None)
    return row


def plans(options: Options, path: Path, time_scale: float = 0.01, size_scale: float = 0.001
          ) -> tuple[dict, list[RowPlan]]:
    if options.quick:
        time_scale /= 10
    counts = QUICK_WORKER_COUNTS if options.quick else WORKER_COUNTS
    name, wf = workflow(path, time_scale, size_scale)
    trace = load(path)
    parameters = {"trace": path.name, "workflow": name, "tasks": len(wf), "time_scale": time_scale,
                  "size_scale": size_scale, "worker_counts": list(counts), "quick": options.quick}
    measured: dict[str, float] = {}

    def calibration(work_dir: Path, advance) -> dict:
        measured.update(calibrate(work_dir, PROBE_BYTES // 8 if options.quick else PROBE_BYTES))
        parameters.update(measured)
        advance(1)
        return make_row("calibration", **measured)

    def row(workers: int):
        def run(work_dir: Path, advance) -> dict:
            real = tether_native.run(wf, workers, work_dir, progress=advance)
            if not real.get("correct"):
                return make_row(f"{workers} workers", workers=workers, error=f"the real run failed: {real['problems']}")
            setup = Setup(workers=workers, cores=1, bandwidth=measured["bandwidth_bytes_per_s"],
                          latency=measured["latency_s"], overhead=measured["overhead_s"], time_scale=time_scale,
                          size_scale=size_scale)
            sim = simulate(trace, setup).as_dict()
            return make_row(f"{workers} workers", workers=workers, **compare(real, sim),
                            sim_scheduling_s=sim["scheduling_s"], correct=sim["failed"] == 0)
        return run

    return parameters, [RowPlan("calibration", 1, calibration),
                        *(RowPlan(f"{w} workers", len(wf), row(w)) for w in counts)]


def check_targets(report: Report) -> list[dict]:
    checks = []
    for r in report.rows:
        if r.get("workers") is None or r.get("error") or r.get("skipped"):
            continue
        for key, what in (("makespan_ratio", "makespan"), ("bytes_ratio", "bytes moved")):
            value = r.get(key)
            deviation = abs(value - 1) if value is not None else None
            checks.append(t._check(f"simulated {what} within {TOLERANCE:.0%} of the real run's at "
                                   f"{r['workers']} workers", deviation, TOLERANCE, True, "{:.1%} off"))
    return checks
