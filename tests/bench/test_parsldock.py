"""`tether bench parsldock --quick`: sequences with several temp inputs each, on every system."""
from __future__ import annotations

import pytest

from tether_bench.parsldock import ROWS

from .helpers import check_parsl_threads, check_png, check_ran, check_report, check_tether_parsl, run_bench


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_parsldock_quick(tmp_path):
    proc, report = run_bench(tmp_path, "parsldock", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "parsldock", ROWS)
    for name, row in rows.items():
        (check_tether_parsl if name == "tether-parsl" else check_ran)(row)
    p = report["parameters"]
    native = rows["tether-native"]
    assert native["tasks_done"] == p["batches"] * p["sequences_per_batch"] * 5
    # each batch's receptor reaches a worker at most once, whatever the number of sequences
    assert native["bytes_manager_to_worker"] <= p["batches"] * p["receptor_bytes"] * p["workers"]
    check_parsl_threads(rows, report)
    check_png(tmp_path / "report.png")


@pytest.mark.slow
@pytest.mark.netns
def test_parsldock_on_the_stand_in_slurm(tmp_path):
    """The ParslDock program through Parsl's SlurmProvider: each worker in a job of the stand-in."""
    proc, report = run_bench(tmp_path, "parsldock", "--quick", "--rows", "tether-parsl-slurm")
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = check_report(report, "parsldock", ["tether-parsl-slurm"])["tether-parsl-slurm"]
    check_tether_parsl(row)
    p = report["parameters"]
    assert row["tasks"] == p["batches"] * p["sequences_per_batch"] * 5 <= row["tasks_done"]   # (and a warm-up)
