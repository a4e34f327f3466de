"""A PNG of a benchmark's rows: one horizontal bar panel per figure, so rows compare at a glance."""
from __future__ import annotations

from pathlib import Path

from .report import Report

LABELS = {
    "makespan_s": "makespan (s)",
    "tasks_per_s": "tasks per second",
    "hop_latency_median_s": "median hop latency (ms)",
    "bytes_moved": "bytes moved (MB)",
    "seconds_per_task": "time per task (µs)",
    "bytes_per_task": "manager memory per task (bytes)",
    "time_to_notice_s": "time to notice (s)",
    "rss_growth_bytes": "RSS growth, first wave to last (MB)",
    "bytes_worker_to_worker": "bytes worker to worker (MB)",
    "peak_disk_bytes": "peak disk of a worker (MB)",
}
SCALE = {"hop_latency_median_s": 1e3, "bytes_moved": 1e-6, "seconds_per_task": 1e6, "rss_growth_bytes": 1e-6,
         "bytes_worker_to_worker": 1e-6, "peak_disk_bytes": 1e-6}


def _value(row: dict, figure: str) -> float | None:
    if figure == "bytes_moved":
        parts = [row.get(k) for k in ("bytes_manager_to_worker", "bytes_worker_to_manager", "bytes_worker_to_worker")]
        return None if all(p is None for p in parts) else float(sum(p or 0 for p in parts))
    v = row.get(figure)
    return None if v is None else float(v)


def plot_unavailable() -> str | None:
    """Why no plot can be drawn here (matplotlib is an extra), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install 'tether[bench]', or pip install matplotlib)"
    return None


def plot(report: Report, figures: list[str], path: Path) -> Path | None:
    """Draw the figures that at least one row has; returns the path, or None if there was nothing to draw."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if not r.get("skipped") and not r.get("error")]
    panels = [f for f in figures if any(_value(r, f) is not None for r in rows)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(rows) + 1.6), squeeze=False)
    for ax, figure in zip(axes[0], panels):
        names = [r["name"] for r in rows]
        values = [_value(r, figure) for r in rows]
        shown = [(v or 0.0) * SCALE.get(figure, 1.0) for v in values]
        bars = ax.barh(names, shown, color=["#4c72b0" if n.rpartition("/")[2].startswith("tether") else "#999999"
                                            for n in names])
        for bar, v, s in zip(bars, values, shown):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " -" if v is None else f" {s:.3g}",
                    va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(LABELS.get(figure, figure))
        ax.margins(x=0.25)
    fig.suptitle(f"tether bench {report.benchmark}  ({report.machine.get('cpus')} cores)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
