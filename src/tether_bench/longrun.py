"""`tether bench longrun`: a million no-op tasks in waves, and what the submitting process keeps.

N no-op calls (1,000,000 by default) through tether's Manager
(PythonTasks) and tether.Executor (`ex.submit`, then `.result()` of each),
beside concurrent.futures.ProcessPoolExecutor and Dask distributed (given
fewer, 100,000 by default: it is slow), each with the same workers; and
tether-chains, chains of 10 PythonTasks passing temp files (200,000 tasks
by default), whose lineage the Manager must let go of as the chains end; in
waves of 100,000 (of a tenth of the tasks for fewer than a million): a
wave is submitted whole and waited for before the next. After every wave:
its time, and the RSS of the submitting process, where tether's manager
and Dask's scheduler live, read at once and again once tether has let go
of the wave (its Futures, dropped as the wave ends, are released in the
manager's loop a moment later; at most 10 s are waited for that). A system that forgets finished tasks stays
flat; one that keeps them grows by what it keeps of each, and slows as
what it keeps gets larger.

Each system runs in a process of its own (longrun_systems.py), so that
the memory it reports is its own.
"""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any, Callable

from . import targets as t
from .report import Report, make_row
from .runner import Options, RowPlan
from .sessions import end_session
from .systems import Unavailable

ROWS = ["tether-native", "tether-executor", "tether-chains", "process-pool", "dask"]
TETHER_ROWS = ["tether-native", "tether-executor", "tether-chains"]
WAVE = 100_000
COLUMNS = ("makespan_s", "tasks", "tasks_per_s", "first_wave_s", "last_wave_s", "rss_first_wave_bytes",
           "rss_last_wave_bytes", "rss_settled_growth_bytes")


def wave_sizes(tasks: int) -> list[int]:
    """Waves of 100,000 tasks, or of a tenth of the tasks for fewer than a million; the last wave
    takes what is left over."""
    size = max(1, min(WAVE, tasks // 10))
    waves = [size] * (tasks // size)
    waves[-1] += tasks - sum(waves)
    return waves


def run_row(name: str, workers: int, waves: list[int], work_dir: Path, progress: Callable[[int], None]) -> dict:
    """The row's system in a process (and session) of its own, read wave by wave as it runs."""
    stderr_path = work_dir / "stderr"
    lines: queue.Queue = queue.Queue()
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "tether_bench.longrun_systems", name, str(workers),
                                 ",".join(map(str, waves)), str(work_dir)],
                                stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=work_dir,
                                start_new_session=True)
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    seen: list[dict] = []
    end: dict | None = None
    try:
        while end is None:
            limit = 300 + 0.01 * waves[min(len(seen), len(waves) - 1)]   # a wave that makes no progress fails
            try:
                line = lines.get(timeout=limit)
            except queue.Empty:
                raise TimeoutError(f"{name}: no wave ended within {limit:.0f} s (after {len(seen)} waves)") from None
            if line is None:
                break
            if "wave" in line:
                seen.append(line)
                progress(line["tasks"])
            elif "done" in line or "skipped" in line:
                end = line
        proc.wait(timeout=60)
    finally:
        end_session(proc)
    if end is not None and "skipped" in end:
        raise Unavailable(end["skipped"])
    if end is None or proc.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{name} exited {proc.returncode} after {len(seen)} of {len(waves)} waves: {tail}")
    return waves_row(name, seen, end["done"])


def _read_lines(stream, lines: queue.Queue) -> None:
    """The child's JSON lines, in order; anything else it prints is not ours to read. None at the end."""
    for text in stream:
        if text.startswith("{"):
            try:
                lines.put(json.loads(text))
            except ValueError:
                pass
    lines.put(None)


def waves_row(name: str, waves: list[dict], done: dict[str, Any]) -> dict:
    """The per-wave lists, and totals: time, rate, the first and last wave's time and RSS."""
    tasks = sum(w["tasks"] for w in waves)
    seconds = [w["seconds"] for w in waves]
    rss = [w["rss_bytes"] for w in waves]
    settled = [w.get("rss_settled_bytes", w["rss_bytes"]) for w in waves]
    total = sum(seconds)
    first, last = waves[0], waves[-1]
    grown_over = tasks - first["tasks"]     # tasks run after the first wave's RSS was read
    extra = {k: [w[k] for w in waves] for k in ("tasks_held", "records_held") if k in first}
    right = done.pop("right")
    return make_row(
        name, makespan_s=total, tasks=tasks, tasks_per_s=tasks / total, seconds_per_task=total / tasks,
        waves=len(waves), wave_tasks=[w["tasks"] for w in waves], wave_s=seconds,
        wave_tasks_per_s=[w["tasks"] / w["seconds"] for w in waves], rss_after_wave_bytes=rss,
        **{f"{k}_after_wave": v for k, v in extra.items()},
        first_wave_s=first["seconds"], last_wave_s=last["seconds"],
        last_wave_vs_first=(last["seconds"] / last["tasks"]) / (first["seconds"] / first["tasks"]),
        rss_first_wave_bytes=rss[0], rss_last_wave_bytes=rss[-1], rss_growth_bytes=rss[-1] - rss[0],
        rss_growth_per_task_bytes=(rss[-1] - rss[0]) / grown_over if grown_over else None,
        rss_settled_after_wave_bytes=settled, rss_settled_growth_bytes=settled[-1] - settled[0],
        cpu_us_per_task=done["cpu_s"] / tasks * 1e6, correct=right == tasks,
        problems=[] if right == tasks else [f"{tasks - right} of {tasks} calls did not return None"], **done)


def plans(options: Options, tasks: int = 1_000_000, dask_tasks: int = 100_000,
          chain_tasks: int = 200_000) -> tuple[dict, list[RowPlan]]:
    if options.quick:   # the same shape, a fiftieth of the size
        tasks, dask_tasks, chain_tasks = min(tasks, 20_000), min(dask_tasks, 2_000), min(chain_tasks, 4_000)
    dask_tasks, chain_tasks = min(dask_tasks, tasks), min(chain_tasks, tasks)
    w = options.workers
    sizes = {"dask": dask_tasks, "tether-chains": chain_tasks}
    waves = {name: wave_sizes(sizes.get(name, tasks)) for name in ROWS}
    names = options.wanted(ROWS)
    parameters = {"tasks": tasks, "dask_tasks": dask_tasks, "chain_tasks": chain_tasks,
                  "wave": waves["tether-native"][0], "dask_wave": waves["dask"][0],
                  "chain_wave": waves["tether-chains"][0], "workers": w, "cores_per_worker": 1,
                  "quick": options.quick}
    return parameters, [RowPlan(n, sum(waves[n]), partial(run_row, n, w, waves[n])) for n in names]


def check_targets(report: Report) -> list[dict]:
    """Issue 14: a long run's manager does not grow or slow down; an Executor call costs at most twice a
    process pool's."""
    out = []
    for row in TETHER_ROWS:
        out += [t.figure_at_most(report, row, "rss_growth_bytes", 50e6, "{:,.0f} B"),
                t.figure_at_most(report, row, "rss_settled_growth_bytes", 50e6, "{:,.0f} B"),
                t.figure_at_most(report, row, "last_wave_vs_first", 1.25, "{:.2f}x")]
    out.append(t.ratio_at_most(report, "tether-executor", "process-pool", 2.0, "seconds_per_task"))
    return out
