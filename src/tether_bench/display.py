"""What a person sees while a benchmark runs (a progress bar per row) and after (a table, the targets)."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .report import Report


def _seconds(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:.3f} ms" if v < 0.1 else f"{v:.2f} s"


def _bytes(v: int | None) -> str:
    if v is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


HEADERS = {"makespan_s": "makespan", "bytes_manager_to_worker": "mgr→wkr", "bytes_worker_to_manager": "wkr→mgr",
           "bytes_worker_to_worker": "wkr→wkr", "hop_latency_median_s": "hop p50", "peak_cache_bytes": "cache peak",
           "vs_process_pool": "× pool", "vs_fault_free": "× no fault", "faults_injected": "faults",
           "time_to_notice_s": "notice", "attempts_beyond_first": "attempts+", "system_failures": "lost",
           "tasks_per_s": "tasks/s", "cpu_s": "cpu", "seconds_per_task": "s/task", "bytes_per_task": "B/task", "correct": "ok",
           "first_wave_s": "first wave", "last_wave_s": "last wave", "rss_first_wave_bytes": "RSS 1st wave",
           "rss_last_wave_bytes": "RSS last wave", "rss_settled_growth_bytes": "growth settled",
           "makespan_real_s": "makespan real", "makespan_sim_s": "sim", "makespan_ratio": "sim/real",
           "bytes_real": "bytes real", "bytes_sim": "sim", "bytes_ratio": "sim/real",
           "bytes_shared_directory": "shared r+w", "peak_disk_bytes": "peak disk",
           "peak_made_bytes": "peak made"}


class Display:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, width=None if sys.stderr.isatty() else 120)
        self.progress = Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=False)

    def __enter__(self) -> "Display":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def row(self, name: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A bar for one row; yields a thread-safe advance(n)."""
        bar = self.progress.add_task(name, total=total)
        try:
            yield lambda n=1: self.progress.advance(bar, n)
        finally:
            self.progress.stop_task(bar)

    def skipped(self, name: str, reason: str) -> None:
        self.console.print(f"[bold red]SKIPPED {name}[/]: {escape(reason)}")

    def failed(self, name: str, reason: str) -> None:
        self.console.print(f"[bold red]FAILED {name}[/]: {escape(reason)}")

    def note(self, text: str) -> None:
        self.console.print(escape(text))


def print_summary(report: Report, reference: str | None, console: Console | None = None,
                  columns: tuple[str, ...] | None = None) -> None:
    """The rows as a table, with each makespan as a ratio to the reference row, then the targets.

    columns: the figures to show, in order (default: makespan, the extra figures rows have, bytes,
    hop latency, cache peak)."""
    console = console or Console()
    table = Table(title=f"tether bench {report.benchmark}", pad_edge=False, collapse_padding=True)
    table.add_column("row")
    if columns is not None:
        columns = [*columns, "correct"]
    else:
        extra = [k for k in ("vs_process_pool", "tasks_per_s", "cpu_s", "tasks", "seconds_per_task",
                             "bytes_per_task") if any(r.get(k) is not None for r in report.rows)]
        columns = ["makespan_s"] + extra + ["ratio", "bytes_manager_to_worker", "bytes_worker_to_manager",
                                            "bytes_worker_to_worker", "hop_latency_median_s", "peak_cache_bytes",
                                            "correct"]
    shown = [r for r in report.rows if not r.get("skipped") and not r.get("error")]
    columns = [c for c in columns if c == "ratio" and reference or c != "ratio"
               and any(r.get(c) is not None for r in shown)]
    for c in columns:
        table.add_column(HEADERS.get(c, c.replace("_", " ")), justify="right")
    ref = report.row(reference) if reference else None
    for r in report.rows:
        if r.get("skipped") or r.get("error"):
            table.add_row(r["name"], *([""] * (len(columns) - 1)),
                          "[red]skipped[/]" if r.get("skipped") else "[red]error[/]")
            continue
        cells = []
        for c in columns:
            v: Any = r.get(c)
            if c == "ratio":
                ok = ref is not None and ref.get("makespan_s") and r.get("makespan_s") is not None
                cells.append(f"{r['makespan_s'] / ref['makespan_s']:.2f}x" if ok else "-")
            elif c == "vs_fault_free" or c.endswith("_ratio"):
                cells.append("-" if v is None else f"{v:.2f}x")
            elif c == "correct":
                cells.append("-" if v is None else ("yes" if v else "[red]NO[/]"))
            elif c.startswith("bytes") or c.endswith("_bytes"):
                cells.append(_bytes(v))
            elif c in ("makespan_s", "hop_latency_median_s", "seconds_per_task", "cpu_s", "time_to_notice_s",
                       "first_wave_s", "last_wave_s", "makespan_real_s", "makespan_sim_s"):
                cells.append(_seconds(v))
            elif isinstance(v, float):
                cells.append(f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
            else:
                cells.append("-" if v is None else f"{v:,}" if isinstance(v, int) else str(v))
        table.add_row(r["name"], *cells)
    console.print(table)
    for r in report.rows:
        if r.get("skipped"):
            console.print(f"  [bold red]SKIPPED {r['name']}[/]: {escape(str(r['skipped']))}")
        elif r.get("error"):
            console.print(f"  [bold red]ERROR {r['name']}[/]: {escape(str(r['error']))}")
    for t in report.targets:
        mark = "[green]met[/]" if t["met"] else ("[yellow]n/a[/]" if t["met"] is None else "[red]MISSED[/]")
        console.print(f"  target {t['target']}: {t['value']} -> {mark}")


def wait_with_progress(futures: list, progress: Callable[[int], None] | None, poll: float = 0.1,
                       timeout: float | None = None) -> None:
    """Wait for every Future, advancing the bar from this thread; returns as soon as the last is done.

    Each Future's only callback appends to a list and, for the last one,
    sets an event: the display's own code never runs in the thread that
    resolves Futures (the system's hot loop), and this thread does not
    touch the Futures' locks while it waits. A run stalled for `timeout`
    seconds (default: 300 s plus 1 s a task) raises TimeoutError, so that a
    system that hangs fails its row instead of the whole benchmark.
    """
    import threading
    import time

    total = len(futures)
    finished: list = []
    all_done = threading.Event()

    def one_done(f) -> None:
        finished.append(f)
        if len(finished) >= total:
            all_done.set()

    if total == 0:
        return
    for f in futures:
        f.add_done_callback(one_done)
    shown = 0
    limit = timeout if timeout is not None else 300.0 + total
    moved = time.monotonic()
    while True:
        complete = all_done.wait(poll)
        now = len(finished)
        if now > shown:
            if progress is not None:
                progress(now - shown)
            shown, moved = now, time.monotonic()
        if complete:
            return
        if time.monotonic() - moved > limit:
            raise TimeoutError(f"{total - now} of {total} tasks still unfinished after {limit:.0f} s without progress")
