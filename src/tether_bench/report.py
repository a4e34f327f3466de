"""The report every benchmark writes: one row per system, the machine, JSON.

Rows share one set of figures so that benchmarks can be compared and
plotted alike; a figure a system cannot measure is None, never a guess.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

# The figures of a row, in the order tables show them.
FIGURES = ("makespan_s", "bytes_manager_to_worker", "bytes_worker_to_manager", "bytes_worker_to_worker",
           "hop_latency_median_s", "peak_cache_bytes")


def make_row(name: str, **figures: Any) -> dict[str, Any]:
    """A row with every shared figure present (None where not measured) plus any extra ones."""
    row: dict[str, Any] = {"name": name}
    for key in FIGURES:
        row[key] = figures.pop(key, None)
    row.update(figures)
    return row


def skipped_row(name: str, reason: str) -> dict[str, Any]:
    """A row for a system that could not run here; the reason is shown and kept in the JSON."""
    return make_row(name, skipped=reason)


def tether_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The shared figures out of a Manager's stats()."""
    peaks = stats.get("cache_bytes_peak") or {}
    return {
        "bytes_manager_to_worker": stats["bytes_manager_to_worker"],
        "bytes_arguments_to_worker": stats.get("bytes_arguments_to_worker"),
        "bytes_worker_to_manager": stats["bytes_worker_to_manager"],
        "bytes_worker_to_worker": stats["bytes_worker_to_worker"],
        "hop_latency_median_s": stats["hop_latency_median_s"],
        "hop_latency_p95_s": stats["hop_latency_p95_s"],
        "peak_cache_bytes": max(peaks.values()) if peaks else None,
        "peak_cache_bytes_per_worker": peaks,
        "peak_bytes_per_worker": stats.get("peak_bytes_per_worker"),   # files the core counted, where it does
        "peak_made_bytes_per_worker": stats.get("peak_made_bytes_per_worker"),   # of those, files tasks made
        "tasks_done": stats["tasks_done"],
    }


def machine_info() -> dict[str, Any]:
    """What the figures depend on: cores, memory, load, software versions."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    versions = {}
    for package in ("tether", "parsl", "dask", "distributed"):
        try:
            from importlib.metadata import version
            versions[package] = version(package)
        except Exception:
            versions[package] = None
    info["versions"] = versions
    info["commit"] = _source_commit()
    return info


def _source_commit() -> str | None:
    """The git commit tether runs from, when it runs from a clone, with '+dirty' if anything but
    benchmark results (benchmarks/results/, BENCHMARKS.md) differs from it: the figures must be
    those of the commit named."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(exclude,top)benchmarks/results", ":(exclude,top)BENCHMARKS.md"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@dataclass
class Report:
    benchmark: str
    parameters: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine_info)

    def row(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["name"] == name), None)

    def to_dict(self) -> dict[str, Any]:
        self.machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return {"benchmark": self.benchmark, "machine": self.machine, "parameters": self.parameters,
                "rows": self.rows, "targets": self.targets}

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")


def ratio(report: Report, numerator: str, denominator: str, figure: str = "makespan_s") -> float | None:
    """figure(numerator) / figure(denominator), or None when either is missing."""
    a, b = report.row(numerator), report.row(denominator)
    if not a or not b or a.get(figure) is None or not b.get(figure):
        return None
    return a[figure] / b[figure]


def tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process and every live descendant, with the children each has reaped.

    The difference over a timed window is what a system cost the machine:
    its manager or scheduler, its workers and the commands they ran.
    """
    total = 0.0
    me = psutil.Process()
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total
