"""`tether bench taps`: its rows, ratios, targets and table (a quick run of two systems on one app)."""
from __future__ import annotations

from tether.bench import taps as bench


def test_quick_run_gives_a_row_per_system_with_tether_bytes(tmp_path):
    rows = bench.run(quick=True, apps=["synthetic-sequential"], systems=["tether", "process-pool"],
                     work_dir=tmp_path)
    assert [r["name"] for r in rows] == ["synthetic-sequential/tether", "synthetic-sequential/process-pool"]
    for r in rows:
        assert r["correct"], r.get("error")
        assert r["makespan_s"] > 0 and r["tasks"] == 20
    mine, theirs = rows
    assert mine["vs_process_pool"] == mine["makespan_s"] / theirs["makespan_s"]
    assert theirs["bytes_worker_to_manager"] is None            # measured for tether only
    assert 100_000 <= mine["bytes_worker_to_manager"] < 100_000 + 20 * 1_000
    assert list(tmp_path.iterdir()) == []                       # every run's directory removed


def row(app, system, makespan):
    return {"name": f"{app}/{system}", "app": app, "system": system, "makespan_s": makespan}


def test_targets_and_table_from_rows():
    rows = [row("cholesky", "tether", 1.3), row("cholesky", "process-pool", 1.0),
            row("cholesky", "dask", 2.0), row("cholesky", "ray", 1.2)]
    bench.add_ratios(rows)
    targets = {t["target"]: t["met"] for t in bench.check_targets(rows)}
    assert targets == {"cholesky: tether at most 1.2x process-pool": False,
                       "cholesky: tether faster than dask": True,
                       "cholesky: tether faster than ray": False}
    table = bench.format_table(rows)
    assert "| cholesky | 1.30 | 1.00 | 2.00 | 1.20 | 1.30 | 2.00 | 1.20 |" in table


def test_median_row_keeps_every_run():
    runs = [dict(row("a", "tether", t), correct=True) for t in (3.0, 1.0, 2.0)]
    best = bench.median_row(runs)
    assert best["makespan_s"] == 2.0 and best["makespan_runs_s"] == [3.0, 1.0, 2.0]
