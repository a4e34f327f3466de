"""`tether bench wire --quick`: no-op throughput and a peer transfer, plain and under TLS, and values
brought one by one or in a batch, every row right."""
from __future__ import annotations

import pytest

from .helpers import check_report, run_bench


@pytest.mark.slow
def test_wire_quick(tmp_path):
    proc, report = run_bench(tmp_path, "wire", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "wire", ["noop-plain", "noop-tls", "transfer-plain", "transfer-tls",
                                         "values-each", "values-batched"])
    for name in ("noop-plain", "noop-tls"):
        assert rows[name]["correct"] and rows[name]["tasks"] == report["parameters"]["tasks"]
    for name in ("transfer-plain", "transfer-tls"):
        row = rows[name]
        assert row["correct"] and row["bytes_worker_to_worker"] >= report["parameters"]["transfer_bytes"]
        assert row["transfer_mb_per_s"] > 0
    for name in ("values-each", "values-batched"):
        row = rows[name]
        assert row["correct"], row["problems"]   # right values, none made again
        assert row["tasks"] == report["parameters"]["values"]
        assert row["bytes_worker_to_manager"] >= row["tasks"] * report["parameters"]["value_bytes"]
