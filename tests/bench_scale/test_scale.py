"""The scale benchmark's quick form: the core runs a simulated workflow to the end."""
from __future__ import annotations

import pytest

from tether_bench import scale


@pytest.mark.slow
def test_quick_run_completes_every_task_at_each_size():
    rows = scale.run(quick=True)
    assert [r["name"] for r in rows] == ["1k", "3k"]
    for row, n in zip(rows, scale.QUICK_SIZES):
        assert row["tasks"] == n
        assert row["completed"] == n and row["failed"] == 0
        assert row["seconds_per_task"] > 0 and row["makespan_s"] > row["core_s"] > 0
        # a pending task costs the manager something, and nowhere near a megabyte
        assert 100 < row["bytes_per_task"] < 1_000_000
        assert row["simulated_s"] > 0


def test_workflow_mixes_chains_of_temps_with_independent_tasks():
    events = [e for e, _ in scale.workflow(45)]
    assert [e.task for e in events] == list(range(1, 46))
    chain, independent = events[:scale.CHAIN_LENGTH], events[scale.CHAIN_LENGTH:2 * scale.CHAIN_LENGTH]
    # each chain member reads what the one before it made; only the last output goes home
    for before, after in zip(chain, chain[1:]):
        assert after.inputs == before.outputs and before.outputs[0].name.startswith("temp-")
    assert chain[-1].outputs[0].home
    assert all(e.inputs[0].source and e.outputs[0].home for e in independent)


def test_every_task_is_pending_before_workers_join_and_done_after():
    result = scale.timed_run(250, workers=3, cores=2)
    assert result["pending"] == 250
    assert result["completed"] == 250 and result["failed"] == 0


def test_command_line_quick_run_writes_its_report(tmp_path):
    from ..bench.helpers import check_png, check_report, run_bench

    proc, report = run_bench(tmp_path, "scale", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "scale", ["1k", "3k"])
    assert all(r["completed"] == r["tasks"] for r in rows.values())
    assert {t["met"] for t in report["targets"]} <= {True, False}
    check_png(tmp_path / "report.png")
