"""`tether bench context --quick`: a setup kept on the workers against one made in every call, both right,
the setups counted where they ran."""
from __future__ import annotations

import pytest

from .helpers import check_ran, check_report, run_bench


@pytest.mark.slow
def test_context_quick(tmp_path):
    proc, report = run_bench(tmp_path, "context", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "context", ["context-kept", "context-per-call"])
    calls, workers = report["parameters"]["calls"], report["parameters"]["workers"]
    for row in rows.values():
        check_ran(row)
        assert row["tasks"] == calls
    assert 1 <= rows["context-kept"]["setups"] <= workers   # once per interpreter: one a one-core worker
    assert rows["context-per-call"]["setups"] == calls
    assert [t["target"] for t in report["targets"]] == ["context-kept >= 10.0x context-per-call (tasks_per_s)"]
