"""`tether bench taps`: its rows, ratios and targets (a quick run of two systems on one app)."""
from __future__ import annotations

import pytest

from tether_bench import taps as bench
from tether_bench.report import Report
from tether_bench.runner import Options

from ..bench.helpers import check_ran, check_report, run_bench


@pytest.mark.slow
def test_quick_run_gives_a_row_per_system_with_tether_bytes(tmp_path):
    proc, report = run_bench(tmp_path, "taps", "--quick", "--apps", "synthetic-sequential",
                             "--systems", "tether,process-pool")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "taps", ["synthetic-sequential/tether", "synthetic-sequential/process-pool"])
    for r in rows.values():
        check_ran(r)
        assert r["tasks"] == 20
    mine, theirs = rows.values()
    assert mine["vs_process_pool"] == mine["makespan_s"] / theirs["makespan_s"]
    assert theirs["bytes_worker_to_manager"] is None            # measured for tether only
    # The app reads the last value (100 kB) and every task's record (a few hundred bytes each).
    assert 100_000 <= mine["bytes_worker_to_manager"] < 100_000 + 20 * 1_000
    assert {t["target"] for t in report["targets"]} >= {"synthetic-sequential: tether at most 1.2x process-pool"}


def test_unknown_app_is_named():
    with pytest.raises(ValueError, match="unknown app 'nbody'; choose from .*cholesky"):
        bench.plans(Options(), apps=["nbody"])


def row(app, system, makespan):
    return {"name": f"{app}/{system}", "app": app, "system": system, "makespan_s": makespan}


def test_targets_from_rows():
    report = Report("taps", machine={})
    report.rows = [row("cholesky", "tether", 1.3), row("cholesky", "process-pool", 1.0),
                   row("cholesky", "dask", 2.0), row("cholesky", "ray", 1.2)]
    targets = {t["target"]: t["met"] for t in bench.check_targets(report)}
    assert targets == {"cholesky: tether at most 1.2x process-pool": False,
                       "cholesky: tether faster than dask": True,
                       "cholesky: tether faster than ray": False}
    assert report.rows[0]["vs_process_pool"] == 1.3


def test_the_failures_app_runs_on_the_systems_that_recover_and_must_finish_on_tether():
    _, plans = bench.plans(Options(), apps=["failures-cholesky"])
    assert [p.name for p in plans] == ["failures-cholesky/tether", "failures-cholesky/tether-spill",
                                       "failures-cholesky/dask", "failures-cholesky/ray"]
    with pytest.raises(ValueError, match="process-pool run none of the apps"):
        bench.plans(Options(), apps=["failures-cholesky"], systems=["process-pool"])
    report = Report("taps", machine={})
    app = "failures-cholesky"
    report.rows = [dict(row(app, "tether", 6.0), correct=True), dict(row(app, "tether-spill", None), correct=False,
                                                                       error="did not finish within 900 s"),
                   row(app, "dask", 8.0), row(app, "ray", 5.0)]
    targets = {t["target"]: t["met"] for t in bench.check_targets(report)}
    assert targets == {f"{app}: finishes on tether": True, f"{app}: tether faster than dask": True,
                       f"{app}: tether faster than ray": False, f"{app}: finishes on tether-spill": False,
                       f"{app}: tether-spill faster than dask": None, f"{app}: tether-spill faster than ray": None}
