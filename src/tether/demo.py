"""`tether demo`: the seed's workflow on local workers, with a summary."""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from .manager.manager import Manager
from .workloads import expected_tail, submit_chains


def run_demo(chains: int = 20, length: int = 30, workers: int = 4, group_tasks: bool = True) -> dict:
    console = Console()
    console.print(f"[bold]tether demo[/]: {chains} chains of {length} tasks passing temp files, "
                  f"{workers} local workers, groups {'on' if group_tasks else 'off'}")
    with tempfile.TemporaryDirectory(prefix="tether-demo-") as tmp, \
            Manager(workers=workers, cores_per_worker=1, group_tasks=group_tasks, progress=False) as m:
        m.wait_for_workers()
        started = time.perf_counter()
        run = submit_chains(m, chains, length, Path(tmp))
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            bar = progress.add_task("tasks", total=len(run.futures))
            for f in run.futures:
                f.add_done_callback(lambda _: progress.advance(bar))
            wait(run.futures)
        makespan = time.perf_counter() - started
        failed = [f for f in run.futures if f.exception() is not None]
        wrong = [p for c, p in enumerate(run.results) if not failed and p.read_bytes() != expected_tail(c, length)]
        stats = m.stats()
        workers_used: dict[str, int] = {}
        for f in run.futures:
            if f.info is not None:
                workers_used[f.info.worker] = workers_used.get(f.info.worker, 0) + 1
        chain_workers = [{f.info.worker for f in run.futures[c * length:(c + 1) * length] if f.info}
                         for c in range(chains)]
        whole = sum(1 for ws in chain_workers if len(ws) == 1)
    table = Table(title="summary", show_header=False)
    table.add_row("makespan", f"{makespan:.2f} s")
    table.add_row("tasks done / failed", f"{stats['tasks_done']} / {stats['tasks_failed']}")
    table.add_row("results correct", "yes" if not failed and not wrong else f"NO ({len(failed)} failed, "
                  f"{len(wrong)} wrong)")
    for key in ("bytes_manager_to_worker", "bytes_worker_to_manager", "bytes_worker_to_worker"):
        table.add_row(key.replace("_", " "), f"{stats[key]:,}")
    hop = stats["hop_latency_median_s"]
    p95 = stats["hop_latency_p95_s"]
    if hop is not None:
        table.add_row("hop latency median / p95", f"{hop * 1e3:.3f} ms / {p95 * 1e3:.3f} ms")
    table.add_row("chains run on one worker", f"{whole} of {chains}")
    table.add_row("tasks per worker", ", ".join(f"{w}: {n}" for w, n in sorted(workers_used.items())))
    peaks = stats["cache_bytes_peak"]
    table.add_row("peak cache per worker", ", ".join(f"{w}: {b:,} B" for w, b in sorted(peaks.items())))
    console.print(table)
    console.print(f"run directory: {m.run_dir} (a report of the run: tether report {m.run_dir} -o report.html)")
    if failed:
        console.print(f"[red]first failure:[/] {failed[0].exception()}")
    stats["makespan_s"] = makespan
    stats["chains_on_one_worker"] = whole
    return stats
