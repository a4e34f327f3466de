"""`tether bench longrun --quick`: every system runs its no-ops in waves, each wave timed and its memory read."""
from __future__ import annotations

import pytest

from tether_bench.longrun import ROWS, TETHER_ROWS, wave_sizes
from tether_bench.longrun_systems import CHAIN

from .helpers import check_png, check_ran, check_report, run_bench


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_longrun_quick(tmp_path):
    proc, report = run_bench(tmp_path, "longrun", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "longrun", ROWS)
    p = report["parameters"]
    assert (p["tasks"], p["dask_tasks"], p["wave"], p["chain_tasks"]) == (20_000, 2_000, 2_000, 4_000)
    for name, row in rows.items():
        check_ran(row)
        tasks = {"dask": p["dask_tasks"], "tether-chains": p["chain_tasks"]}.get(name, p["tasks"])
        assert row["tasks"] == sum(row["wave_tasks"]) == tasks
        assert row["waves"] == len(row["wave_s"]) == len(row["rss_after_wave_bytes"]) == 10
        assert all(s > 0 for s in row["wave_s"]) and row["makespan_s"] == sum(row["wave_s"])
        assert row["tasks_per_s"] == tasks / row["makespan_s"]
        # the RSS is the submitting process's own, read after each wave: tens of MB, not the machine's
        assert all(20e6 < rss < 2e9 for rss in row["rss_after_wave_bytes"])
        assert row["rss_growth_bytes"] == row["rss_last_wave_bytes"] - row["rss_first_wave_bytes"]
        assert row["first_wave_s"] == row["wave_s"][0] and row["last_wave_s"] == row["wave_s"][-1]
    for name in TETHER_ROWS:
        row = rows[name]
        assert row["tasks_done"] >= row["tasks"]
        # what the manager's graph and engine hold after each wave: a count for each wave, none beyond the tasks
        for held in (row["tasks_held_after_wave"], row["records_held_after_wave"]):
            assert len(held) == 10 and all(0 <= n <= p["tasks"] + 4 * p["workers"] for n in held)
    # the chains' handles are dropped wave by wave: their lineage goes with them. At most the last chain's
    # release may still be on its way to the manager's loop when the wave's last Future settles
    assert max(rows["tether-chains"]["tasks_held_after_wave"]) <= CHAIN
    targets = {t["target"]: t for t in report["targets"]}
    assert len(targets) == 10 and all(t["met"] is not None for t in targets.values())
    for row in rows.values():   # the RSS read again once the system has let go of the wave
        assert len(row["rss_settled_after_wave_bytes"]) == 10
        assert row["rss_settled_growth_bytes"] == row["rss_settled_after_wave_bytes"][-1] - row["rss_settled_after_wave_bytes"][0]
    assert "tether-executor <= 2.0x process-pool (seconds_per_task)" in targets
    check_png(tmp_path / "report.png")


def test_waves_are_a_tenth_of_the_tasks_up_to_a_hundred_thousand():
    assert wave_sizes(1_000_000) == [100_000] * 10
    assert wave_sizes(2_500_000) == [100_000] * 25
    assert wave_sizes(20_000) == [2_000] * 10
    assert wave_sizes(20_005) == [2_000] * 9 + [2_005]
    assert sum(wave_sizes(123_457)) == 123_457
