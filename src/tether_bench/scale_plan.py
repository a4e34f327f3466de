"""`tether bench scale`: the plan around the scale module, which measures the core alone.

The scale module (tether_bench.scale) runs the scheduler core with
simulated workers at growing task counts and returns its rows; this module
only turns them into a report and checks the issue's targets on them.
"""
from __future__ import annotations

from . import targets as t
from .plugins import load
from .report import Report, make_row
from .runner import Options, RowPlan


def plans(options: Options) -> tuple[dict, list[RowPlan]]:
    scale = load("scale", "the scale benchmark")

    def run(work_dir, advance):
        rows = [make_row(r["name"], **{k: v for k, v in r.items() if k != "name"}) for r in scale.run(options.quick)]
        advance(1)
        return rows

    return {"quick": options.quick}, [RowPlan("scale", 1, run)]


def check_targets(report: Report) -> list[dict]:
    rows = sorted((r for r in report.rows if r.get("tasks")), key=lambda r: r["tasks"])
    if not rows:
        return []
    small, large = rows[0], rows[-1]
    memory = t._check(f"manager memory per pending task <= 2 KB at {large['tasks']:,} tasks",
                      large.get("bytes_per_task"), 2048, True, "{:,.0f} B")
    flat = None
    if small.get("seconds_per_task") and large.get("seconds_per_task") and large is not small:
        flat = large["seconds_per_task"] / small["seconds_per_task"]
    time_flat = t._check(f"time per task flat from {small['tasks']:,} to {large['tasks']:,} tasks "
                         "(ratio <= 1.25)", flat, 1.25, True, "{:.2f}x")
    return [memory, time_flat]
