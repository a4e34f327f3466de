"""Reports as Markdown, for BENCHMARKS.md: the rows' table, the run's conditions and the targets."""
from __future__ import annotations

from typing import Any

REFERENCE = {"chains": "floor", "parsldock": "floor", "replay": "floor"}
COLUMNS = [("makespan_s", "makespan"), ("ratio", "× floor"), ("vs_process_pool", "× process pool"), ("tasks_per_s", "tasks/s"), ("cpu_s", "CPU"),
           ("seconds_per_task", "time/task"), ("bytes_per_task", "memory/task"),
           ("bytes_manager_to_worker", "mgr→wkr"), ("bytes_worker_to_manager", "wkr→mgr"),
           ("bytes_worker_to_worker", "wkr→wkr"), ("hop_latency_median_s", "hop p50"),
           ("peak_cache_bytes", "cache peak"), ("correct", "right")]


# benchmarks whose table shows figures of their own instead of COLUMNS
COLUMNS_BY_BENCHMARK = {
    "faults": [("makespan_s", "makespan"), ("vs_fault_free", "× fault-free"), ("faults_injected", "faults"),
               ("time_to_notice_s", "time to notice"), ("attempts_beyond_first", "attempts beyond the first"),
               ("system_failures", "attempts lost"), ("reruns", "reruns"), ("blocklisted", "blocklisted"),
               ("correct", "right")],
    "simcheck": [("workers", "workers"), ("makespan_real_s", "makespan real"), ("makespan_sim_s", "simulated"),
                 ("makespan_ratio", "× real"), ("bytes_real", "bytes moved real"), ("bytes_sim", "simulated"),
                 ("bytes_ratio", "× real"), ("bytes_manager_to_worker_ratio", "mgr→wkr ×"),
                 ("bytes_worker_to_worker_ratio", "wkr→wkr ×"), ("bytes_worker_to_manager_ratio", "wkr→mgr ×"),
                 ("overhead_s", "task overhead"), ("latency_s", "latency"),
                 ("bandwidth_bytes_per_s", "bandwidth")],
    "longrun": [("makespan_s", "total"), ("tasks", "tasks"), ("tasks_per_s", "tasks/s"), ("first_wave_s", "first wave"),
                ("last_wave_s", "last wave"), ("rss_first_wave_bytes", "RSS after the first"),
                ("rss_last_wave_bytes", "RSS after the last"), ("rss_growth_bytes", "growth"),
                ("rss_settled_growth_bytes", "growth, settled"), ("correct", "right")],
    "shapes": [("makespan_s", "makespan"), ("bytes_manager_to_worker", "mgr→wkr"),
               ("bytes_worker_to_manager", "wkr→mgr"), ("bytes_worker_to_worker", "wkr→wkr"),
               ("bytes_shared_directory", "shared dir r+w"), ("peak_disk_bytes", "peak disk"),
               ("peak_made_bytes", "peak made"), ("correct", "right")],
}


def _cell(key: str, v: Any) -> str:
    if v is None:
        return "–"
    if key == "correct":
        return "yes" if v else "**NO**"
    if key.endswith("_ratio"):
        return f"{v:.2f}×"
    if key == "bandwidth_bytes_per_s":
        return f"{v / 1e6:,.0f} MB/s"
    if key in ("makespan_s", "hop_latency_median_s", "seconds_per_task", "cpu_s", "time_to_notice_s",
               "first_wave_s", "last_wave_s", "makespan_real_s", "makespan_sim_s", "overhead_s", "latency_s"):
        return f"{v * 1e3:.2f} ms" if v < 0.1 else f"{v:.2f} s"
    if key.startswith("bytes") or key.endswith("_bytes"):
        for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if v >= size:
                return f"{v / size:.1f} {unit}"
        return f"{v:.0f} B"
    if key in ("vs_process_pool", "vs_fault_free"):
        return f"{v:.2f}×"
    if key == "tasks_per_s":
        return f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def table(report: dict[str, Any]) -> str:
    rows = report["rows"]
    ref_name = REFERENCE.get(report["benchmark"])
    ref = next((r for r in rows if r["name"] == ref_name and r.get("makespan_s")), None)
    ran = [r for r in rows if not r.get("skipped") and not r.get("error")]
    keys = [(k, h) for k, h in COLUMNS_BY_BENCHMARK.get(report["benchmark"], COLUMNS)
            if (k == "ratio" and ref is not None) or any(r.get(k) is not None for r in ran)]
    lines = ["| row | " + " | ".join(h for _, h in keys) + " |",
             "| --- | " + " | ".join("---:" for _ in keys) + " |"]
    for r in rows:
        if r.get("skipped") or r.get("error"):
            why = r.get("skipped") or r.get("error")
            lines.append(f"| {r['name']} | " + " | ".join("" for _ in keys[:-1]) + f" | skipped: {why} |")
            continue
        cells = []
        for k, _ in keys:
            if k == "ratio":
                cells.append(f"{r['makespan_s'] / ref['makespan_s']:.2f}×" if r.get("makespan_s") else "–")
            else:
                cells.append(_cell(k, r.get(k)))
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def conditions(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = m.get("load_average", ["?"])[0]
    after = (m.get("load_average_after") or ["?"])[0]
    params = ", ".join(f"{k}={v}" for k, v in report.get("parameters", {}).items())
    return (f"{m.get('cpus')} cores, {m.get('memory_bytes', 0) / 1e9:.0f} GB, Python {m.get('python')}, "
            f"load average {load} before and {after} after; {m.get('date')}"
            f"{', tether at ' + m['commit'] if m.get('commit') else ''}. Parameters: {params}.")


def targets(report: dict[str, Any]) -> str:
    out = []
    for t in report.get("targets", ()):
        if t["met"] is None:
            out.append(f"- {t['target']}: not measured")
        else:
            out.append(f"- {t['target']}: {t['value']} — {'met' if t['met'] else '**missed**'}")
    return "\n".join(out)


def waves(report: dict[str, Any]) -> str:
    """Rows that ran in waves (longrun): each wave's time and the RSS after it, a column per row."""
    ran = [r for r in report["rows"] if r.get("wave_s")]
    if not ran:
        return ""
    lines = ["| wave | " + " | ".join(f"{r['name']} ({r['wave_tasks'][0]:,} a wave)" for r in ran) + " |",
             "| ---: | " + " | ".join("---:" for _ in ran) + " |"]
    for i in range(max(len(r["wave_s"]) for r in ran)):
        cells = [f"{_cell('makespan_s', r['wave_s'][i])}, {_cell('rss_bytes', r['rss_after_wave_bytes'][i])}"
                 + (f" ({_cell('rss_bytes', r['rss_settled_after_wave_bytes'][i])} settled)"
                    if r.get("rss_settled_after_wave_bytes") else "")
                 if i < len(r["wave_s"]) else "" for r in ran]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    parts = [table(report), "", conditions(report)]
    if waves(report):
        parts += ["", waves(report)]
    if report.get("targets"):
        parts += ["", targets(report)]
    return "\n".join(parts) + "\n"
