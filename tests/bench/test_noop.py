"""`tether bench noop --quick`: throughput rows report tasks/s, chain rows a hop latency."""
from __future__ import annotations

import pytest

from tether_bench.noop import CHAIN_ROWS, THROUGHPUT_ROWS

from .helpers import check_parsl_threads, check_png, check_ran, check_report, check_tether_parsl, run_bench


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_noop_quick(tmp_path):
    proc, report = run_bench(tmp_path, "noop", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "noop", THROUGHPUT_ROWS + CHAIN_ROWS)
    p = report["parameters"]
    for name in THROUGHPUT_ROWS:
        row = rows[name]
        (check_tether_parsl if name == "tether-parsl" else check_ran)(row)
        if not row.get("skipped"):
            assert row["tasks"] == p["tasks"]
            assert row["tasks_per_s"] == row["tasks"] / row["makespan_s"]
    assert rows["tether-native"]["tasks_done"] >= p["tasks"]
    for name in CHAIN_ROWS:
        row = rows[name]
        (check_tether_parsl if name == "tether-parsl-chain" else check_ran)(row)
        if not row.get("skipped"):
            assert row["hop_latency_median_s"] is not None
    assert rows["tether-native-chain"]["tasks_done"] >= p["chain_length"]
    check_parsl_threads(rows, report)
    check_parsl_threads(rows, report, "-chain")
    check_png(tmp_path / "report.png")
