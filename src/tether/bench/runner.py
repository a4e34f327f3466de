"""Run a benchmark's rows one after another, each in a directory of its own that is removed after it.

A row whose system cannot run here is kept as skipped with its reason; a
row that raises is kept with its error, and the run goes on to the next.
"""
from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .display import Display
from .report import Report, make_row, skipped_row
from .systems import Unavailable

RowFunction = Callable[[Path, Callable[[int], None]], dict[str, Any]]


@dataclass
class RowPlan:
    name: str
    total: int | None   # tasks, for the progress bar
    run: RowFunction    # (its own directory, advance) -> row (or rows, for a plan that makes several)


def run_rows(report: Report, plans: list[RowPlan], display: Display, work_root: Path | None = None) -> None:
    for plan in plans:
        with tempfile.TemporaryDirectory(prefix=f"tether-bench-{plan.name}-", dir=work_root) as tmp:
            try:
                with display.row(plan.name, plan.total) as advance:
                    row = plan.run(Path(tmp), advance)
            except Unavailable as e:
                display.skipped(plan.name, str(e))
                row = skipped_row(plan.name, str(e))
            except Exception as e:
                display.failed(plan.name, f"{type(e).__name__}: {e}")
                row = make_row(plan.name, error=f"{type(e).__name__}: {e}",
                               traceback=traceback.format_exc(limit=8))
        for r in row if isinstance(row, list) else [row]:
            if r.get("correct") is False:
                display.failed(r["name"], f"wrong results: {r.get('problems')}")
            report.rows.append(r)


def failed_rows(report: Report) -> list[str]:
    """Rows that raised or gave wrong results (skipped rows are not failures)."""
    return [r["name"] for r in report.rows if r.get("error") or r.get("correct") is False]


@dataclass
class Options:
    """What every benchmark is given by the command line."""

    workers: int = 2
    quick: bool = False
    rows: tuple[str, ...] = ()          # only these rows (all when empty)
    work_root: Path | None = None       # where the rows' directories go [the system's temp directory]
    manager: Any = None                 # (group_tasks, run_dir) -> Manager context, for emulated clusters

    def wanted(self, names: list[str], default: list[str] | None = None) -> list[str]:
        """The rows asked for with --rows, else `default` (else all)."""
        if not self.rows:
            return default or names
        unknown = sorted(set(self.rows) - set(names))
        if unknown:
            raise ValueError(f"unknown row(s) {', '.join(unknown)}; this benchmark has {', '.join(names)}")
        return [n for n in names if n in self.rows]


def run_benchmark(name: str, parameters: dict[str, Any], plans: list[RowPlan], *, reference: str | None,
                  check_targets: Callable[[Report], list[dict]] | None = None,
                  plot_figures: tuple[str, ...] = ("makespan_s", "bytes_moved", "hop_latency_median_s"),
                  json_path: Path | None = None, plot_path: Path | None = None,
                  work_root: Path | None = None) -> Report:
    """Run the rows with a progress display, then print the table and write the JSON and the plot."""
    from .display import print_summary
    from .plot import plot

    report = Report(name, parameters)
    with Display() as display:
        run_rows(report, plans, display, work_root)
    if check_targets is not None:
        report.targets = check_targets(report)
    print_summary(report, reference, display.console)
    if json_path is not None:
        report.write_json(json_path)
        display.note(f"wrote {json_path}")
    if plot_path is not None:
        if plot(report, list(plot_figures), plot_path) is not None:
            display.note(f"wrote {plot_path}")
    return report
