"""`tether bench scale --quick`: the core alone, rows per size; or a clear refusal where the build lacks it."""
from __future__ import annotations

import importlib.util

from .helpers import check_report, run_bench


def test_scale_quick(tmp_path):
    proc, report = run_bench(tmp_path, "scale", "--quick")
    if importlib.util.find_spec("tether_bench.scale") is None:
        assert proc.returncode == 2 and report is None
        assert "not part of this build" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "scale", [r["name"] for r in report["rows"]])
    assert len(rows) >= 2
    for row in rows.values():
        assert row["tasks"] > 0 and row["makespan_s"] > 0
        assert row["seconds_per_task"] > 0 and row["bytes_per_task"] > 0
    assert [t["target"].split()[0] for t in report["targets"]] == ["manager", "time"]
