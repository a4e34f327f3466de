"""`tether bench chains --quick`: every row named in the issue, in the shared format, with right results."""
from __future__ import annotations

import os

import pytest

from tether_bench.chains import ROWS

from .helpers import check_parsl_threads, check_png, check_ran, check_report, check_tether_parsl, run_bench


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_chains_quick(tmp_path):
    proc, report = run_bench(tmp_path, "chains", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "chains", ROWS)
    for name, row in rows.items():
        (check_tether_parsl if name == "tether-parsl" else check_ran)(row)
    native = rows["tether-native"]
    assert native["tasks_done"] == report["parameters"]["chains"] * report["parameters"]["length"]
    assert native["bytes_manager_to_worker"] == 0       # nothing but temps goes out
    notemp = rows["tether-native-notemp"]
    assert notemp["bytes_manager_to_worker"] > 0         # every intermediate is sent out again
    assert notemp["bytes_worker_to_manager"] > native["bytes_worker_to_manager"]
    assert rows["tether-native-nogroup"]["tasks_done"] == native["tasks_done"]
    assert {t["target"] for t in report["targets"]} >= {"tether-native <= 1.15x floor (makespan_s)"}
    check_parsl_threads(rows, report)
    check_png(tmp_path / "report.png")


@pytest.mark.slow
def test_chains_with_size(tmp_path):
    proc, report = run_bench(tmp_path, "chains", "--quick", "--size", "2MB",
                             "--rows", "floor,tether-native,tether-native-notemp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "chains", ["floor", "tether-native", "tether-native-notemp"])
    for row in rows.values():
        check_ran(row)
    assert report["parameters"]["size_bytes"] == 2_000_000
    assert rows["tether-native"]["peak_cache_bytes"] >= 2_000_000
    assert rows["tether-native-notemp"]["bytes_manager_to_worker"] >= 2_000_000


@pytest.mark.slow
def test_memo_rows_run_the_workflow_twice_the_second_time_from_the_record(tmp_path):
    proc, report = run_bench(tmp_path, "chains", "--quick", "--rows", "tether-native-memo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "chains", ["tether-native-memo-first", "tether-native-memo-second"])
    for row in rows.values():
        check_ran(row)
    tasks = report["parameters"]["chains"] * report["parameters"]["length"]
    first, second = rows["tether-native-memo-first"], rows["tether-native-memo-second"]
    assert (first["memo_hits"], first["memo_recorded"]) == (0, tasks)
    assert (second["memo_hits"], second["memo_recorded"]) == (tasks, 0)
    assert second["bytes_manager_to_worker"] == second["bytes_worker_to_manager"] == 0
    assert any(t["target"].startswith("tether-native-memo-second <= 0.1x") for t in report["targets"])


@pytest.mark.slow
@pytest.mark.netns
def test_emulated_cluster_says_why_it_cannot_run(tmp_path):
    proc, report = run_bench(tmp_path, "chains", "--quick", "--emulate-cluster")
    try:
        from tether_bench.cluster import unavailable_reason
    except ImportError:
        assert proc.returncode == 2
        assert "not part of this build" in proc.stderr
        return
    reason = unavailable_reason()
    if reason is not None:
        assert proc.returncode == 2
        assert reason in proc.stderr.replace("\n", " ")
        return
    if os.geteuid() == 0:  # it can run here: the rows it runs must be right
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = check_report(report, "chains", ["floor", "tether-native", "tether-native-nogroup",
                                               "tether-native-notemp"])
        for row in rows.values():
            check_ran(row)
        assert report["parameters"]["emulated_cluster"] is True
    else:
        pytest.fail("cluster emulation claims to be available without root")
