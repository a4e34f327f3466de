"""`tether bench simcheck --quick`: the simulator beside a real run of the same trace."""
from __future__ import annotations

import pytest

from .helpers import WORKFLOWS, run_bench

TRACE = WORKFLOWS / "helloworld-forkjoin-10-chameleon.json"


@pytest.mark.skipif(not TRACE.exists(), reason=f"no workflow traces beside the repository ({TRACE})")
def test_simcheck_quick_puts_simulated_and_real_figures_side_by_side(tmp_path):
    proc, report = run_bench(tmp_path, "simcheck", str(TRACE), "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ["calibration", "2 workers"]
    calibration, row = rows["calibration"], rows["2 workers"]
    assert calibration["overhead_s"] > 0 and calibration["bandwidth_bytes_per_s"] > 0
    assert calibration["latency_s"] >= 0
    assert row["correct"] and row["makespan_real_s"] > 0 and row["makespan_sim_s"] > 0
    assert row["makespan_ratio"] == pytest.approx(row["makespan_sim_s"] / row["makespan_real_s"])
    # the one input goes out once and the one final output comes home once, in both
    assert row["bytes_manager_to_worker_sim"] == row["bytes_manager_to_worker_real"] == 9090
    assert row["bytes_worker_to_manager_sim"] == row["bytes_worker_to_manager_real"] == 9090
    assert len(report["targets"]) == 2 and {t["met"] for t in report["targets"]} <= {True, False}
    assert "sim/real" in proc.stderr   # the summary table
