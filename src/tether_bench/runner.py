"""Run a benchmark's rows one after another, each in a directory of its own that is removed after it.

A row whose system cannot run here (its package is not installed) is kept
as skipped with its reason; a row that raises is kept with its error, and
the run goes on to the next. Without matplotlib no plot is drawn, and the
run says so.
"""
from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .display import Display
from .report import Report, make_row, skipped_row
from .systems import Unavailable, not_installed

RowFunction = Callable[[Path, Callable[[int], None]], dict[str, Any]]


@dataclass
class RowPlan:
    name: str
    total: int | None   # tasks, for the progress bar
    run: RowFunction    # (its own directory, advance) -> row (or rows, for a plan that makes several)


def run_rows(report: Report, plans: list[RowPlan], display: Display, work_root: Path | None = None,
             repeat: int = 1) -> None:
    """Run every plan `repeat` times, in rounds (all rows, then all rows again), so that a
    disturbance of the machine falls on every row alike; each row keeps its median run."""
    if repeat % 2 == 0:
        raise ValueError(f"repeat={repeat}: an odd number of runs, so that each row's median is one of them")
    runs: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    skipped: set[str] = set()
    for round_ in range(repeat):
        for plan in plans:
            if plan.name in skipped:  # cannot run here: once is enough to say so
                continue
            label = plan.name if repeat == 1 else f"{plan.name} ({round_ + 1}/{repeat})"
            for r in _run_one(plan, label, display, work_root):
                if r["name"] not in runs:
                    order.append(r["name"])
                runs.setdefault(r["name"], []).append(r)
                if r.get("skipped"):
                    skipped.add(plan.name)
    for name in order:
        report.rows.append(median_row(runs[name]))


def _run_one(plan: RowPlan, label: str, display: Display, work_root: Path | None) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix=f"tether-bench-{plan.name.replace('/', '-')}-", dir=work_root) as tmp:
        try:
            with display.row(label, plan.total) as advance:
                row = plan.run(Path(tmp), advance)
        except Unavailable as e:
            display.skipped(plan.name, str(e))
            row = skipped_row(plan.name, str(e))
        except ImportError as e:
            missing = not_installed(e)   # a system's package that is not here: skipped, not failed
            if missing is None:
                display.failed(plan.name, f"{type(e).__name__}: {e}")
                row = make_row(plan.name, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
            else:
                display.skipped(plan.name, str(missing))
                row = skipped_row(plan.name, str(missing))
        except Exception as e:
            display.failed(plan.name, f"{type(e).__name__}: {e}")
            row = make_row(plan.name, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    rows = row if isinstance(row, list) else [row]
    for r in rows:
        done, submitted = r.get("tasks_done"), r.get("tasks")
        if done is not None and submitted and done < submitted and r.get("correct") is not False:
            r["correct"] = False   # a task that never ended is a wrong result, whatever else came back
            r["problems"] = [*(r.get("problems") or []), f"only {done} of {submitted} tasks done"]
        if r.get("correct") is False:
            display.failed(r["name"], f"wrong results: {r.get('problems')}")
    return rows


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median makespan, with every run's makespan beside it (the command line
    takes only an odd number of runs, so the median is one of them).

    A run that failed or was skipped wins over the others, so that no
    failure is hidden behind a median.
    """
    bad = [r for r in runs if r.get("skipped") or r.get("error") or r.get("correct") is False]
    if bad and len(runs) > 1 and not bad[0].get("skipped"):
        chosen = dict(bad[0])   # with what every run gave (None for a run that gave no makespan)
        chosen["makespan_runs_s"] = [r.get("makespan_s") for r in runs]
        chosen["failed_runs"] = len(bad)
        return chosen
    if bad or len(runs) == 1:
        return bad[0] if bad else runs[0]
    ordered = sorted(runs, key=lambda r: r["makespan_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["makespan_runs_s"] = [r["makespan_s"] for r in runs]
    if chosen.get("tasks_per_s") is not None:
        chosen["tasks_per_s_runs"] = [r.get("tasks_per_s") for r in runs]
    return chosen


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
    repeat: int = 1                     # runs of each row, in rounds; each row reports its median run
    parsl_logging: bool = True          # Parsl's own debug log in its run directory, as Parsl does by default

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
                  work_root: Path | None = None, repeat: int = 1,
                  columns: tuple[str, ...] | None = None) -> Report:
    """Run the rows with a progress display, then print the table and write the JSON and the plot."""
    from .display import print_summary
    from .plot import plot, plot_unavailable

    report = Report(name, parameters)
    with Display() as display:
        run_rows(report, plans, display, work_root, repeat)
    if check_targets is not None:
        report.targets = check_targets(report)
    print_summary(report, reference, display.console, columns)
    if json_path is not None:
        report.write_json(json_path)
        display.note(f"wrote {json_path}")
    if plot_path is not None:
        why = plot_unavailable()
        if why is not None:   # the figures are in the table and the JSON all the same
            display.note(f"no plot written to {plot_path}: {why}")
        elif plot(report, list(plot_figures), plot_path) is not None:
            display.note(f"wrote {plot_path}")
    return report
