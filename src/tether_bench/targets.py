"""The performance targets of the benchmark issue, checked on a report's rows.

Each check gives a dict: the target in words, the measured value in words
and met (True, False, or None when a row it needs did not run).
"""
from __future__ import annotations

from typing import Any

from .report import Report, ratio


def _check(target: str, value: float | None, limit: float, at_most: bool, fmt: str) -> dict[str, Any]:
    if value is None:
        return {"target": target, "value": "not measured", "met": None}
    met = value <= limit if at_most else value >= limit
    return {"target": target, "value": fmt.format(value), "met": met, "measured": value, "limit": limit}


def ratio_at_most(report: Report, a: str, b: str, limit: float, figure: str = "makespan_s") -> dict:
    return _check(f"{a} <= {limit}x {b} ({figure})", ratio(report, a, b, figure), limit, True, "{:.2f}x")


def ratio_at_least(report: Report, a: str, b: str, limit: float, figure: str = "makespan_s") -> dict:
    return _check(f"{a} >= {limit}x {b} ({figure})", ratio(report, a, b, figure), limit, False, "{:.2f}x")


def figure_at_most(report: Report, row: str, figure: str, limit: float, fmt: str = "{:.4g}") -> dict:
    r = report.row(row)
    value = r.get(figure) if r else None
    return _check(f"{row} {figure} <= {fmt.format(limit)}", value, limit, True, fmt)


def figure_at_least(report: Report, row: str, figure: str, limit: float, fmt: str = "{:.4g}") -> dict:
    r = report.row(row)
    value = r.get(figure) if r else None
    return _check(f"{row} {figure} >= {fmt.format(limit)}", value, limit, False, fmt)


def faster_than(report: Report, a: str, b: str, figure: str) -> dict:
    """a's figure (a time) is below b's."""
    v = ratio(report, a, b, figure)
    return _check(f"{a} {figure} below {b}'s", v, 1.0, True, "{:.2f}x")


def cache_to_live_temps(report: Report, row_name: str, limit: float = 2.0) -> dict:
    """Each worker's peak cache against the most bytes of temps (and inputs in use) alive on it at once."""
    row = report.row(row_name) or {}
    caches = row.get("peak_cache_bytes_per_worker") or {}
    live = row.get("peak_live_bytes_per_worker") or {}
    ratios = [caches[w] / live[w] for w in caches if live.get(w)]
    return _check(f"{row_name} peak cache per worker <= {limit}x its live temp files",
                  max(ratios) if ratios else None, limit, True, "{:.2f}x")


def overhead_share_at_most(report: Report, a: str, base: str, other: str, limit: float,
                           figure: str = "makespan_s") -> dict:
    """What a costs above base is at most `limit` of what other costs above it:
    (a - base) <= limit * (other - base). A share of the overhead, not a ratio of
    totals, because base holds a cost (Parsl's own, per app) that neither can beat."""
    target = f"{a} - {base} <= {limit}x ({other} - {base}) ({figure})"
    values = [(report.row(n) or {}).get(figure) for n in (a, base, other)]
    if any(v is None for v in values):
        return {"target": target, "value": "not measured", "met": None}
    over_a, over_other = values[0] - values[1], values[2] - values[1]
    met = over_a <= limit * over_other
    unit = " s" if figure.endswith("_s") else ""
    if over_other <= 0:   # no overhead to take a share of: only the sign of a's says anything
        return {"target": target, "value": f"{other} not above {base}; {a} {over_a:+.3g}{unit} above it",
                "met": met}
    share = over_a / over_other
    return {"target": target, "met": met, "measured": share, "limit": limit,
            "value": f"{share:.2f} of {other}'s ({a} {over_a:+.3g}{unit}, {other} {over_other:+.3g}{unit} above {base})"}


def parsl_floor(report: Report, suffix: str = "") -> list[dict]:
    """Issue 14's targets for tether under Parsl, against Parsl's own thread pool (the floor of
    every Parsl row: the DataFlowKernel's cost per app) and HTEX, named with the state of Parsl's log.

    suffix: of the rows' names ("-chain" for the noop benchmark's chains).
    """
    log = "Parsl's log on" if report.parameters.get("parsl_logging", True) else "Parsl's log off"
    tp, pt, ph = f"tether-parsl{suffix}", f"parsl-threads{suffix}", f"parsl-htex{suffix}"
    out = [ratio_at_most(report, tp, pt, 1.1), overhead_share_at_most(report, tp, pt, ph, 0.2)]
    for check in out:
        check["target"] += f", {log}"
    return out
