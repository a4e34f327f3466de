"""The pieces of the harness that decide what a report says: rows, medians, live bytes, targets, Markdown."""
from __future__ import annotations

from tether.task import TaskResult
from tether_bench import targets
from tether_bench.markdown import render
from tether_bench.report import FIGURES, Report, make_row
from tether_bench.runner import median_row
from tether_bench.systems.tether_native import live_bytes_peaks
from tether_bench.workflow import Step, Workflow


def test_a_row_has_every_shared_figure_and_keeps_extra_ones():
    row = make_row("x", makespan_s=1.5, tasks_per_s=10.0)
    assert [k for k in row if k in FIGURES] == list(FIGURES)
    assert row["bytes_worker_to_worker"] is None and row["tasks_per_s"] == 10.0


def test_the_median_run_is_kept_with_every_makespan():
    runs = [make_row("a", makespan_s=s, hop_latency_median_s=s / 100) for s in (3.0, 1.0, 2.0)]
    row = median_row(runs)
    assert row["makespan_s"] == 2.0 and row["hop_latency_median_s"] == 0.02
    assert row["makespan_runs_s"] == [3.0, 1.0, 2.0]


def test_a_failed_run_is_not_hidden_behind_a_median():
    runs = [make_row("a", makespan_s=1.0, correct=True), make_row("a", makespan_s=2.0, correct=False),
            make_row("a", makespan_s=3.0, correct=True)]
    row = median_row(runs)
    assert row["correct"] is False
    assert row["makespan_runs_s"] == [1.0, 2.0, 3.0] and row["failed_runs"] == 1   # the others are not lost


def test_targets_are_ratios_between_rows_of_one_report():
    report = Report("chains", rows=[make_row("floor", makespan_s=2.0), make_row("tether-native", makespan_s=2.2),
                                    make_row("tether-parsl", skipped="not in this build")])
    met = targets.ratio_at_most(report, "tether-native", "floor", 1.15)
    assert met["met"] is True and met["value"] == "1.10x"
    missed = targets.ratio_at_most(report, "tether-native", "floor", 1.05)
    assert missed["met"] is False
    assert targets.ratio_at_most(report, "tether-parsl", "floor", 1.3)["met"] is None


def test_tether_under_parsl_is_held_to_a_share_of_htex_overhead_above_parsl_threads():
    import pytest

    def report(tether: float, logging: bool = True) -> Report:
        return Report("chains", {"parsl_logging": logging},
                      rows=[make_row("parsl-threads", makespan_s=4.0), make_row("parsl-htex", makespan_s=9.0),
                            make_row("tether-parsl", makespan_s=tether)])

    # HTEX costs 5 s above Parsl's threads; tether-parsl may cost a fifth of that, 1 s
    within, over = targets.parsl_floor(report(4.3))
    assert within["met"] is True and within["value"] == "1.07x"
    assert over["met"] is True and over["measured"] == pytest.approx(0.3 / 5.0)
    assert over["target"] == ("tether-parsl - parsl-threads <= 0.2x (parsl-htex - parsl-threads) (makespan_s), "
                              "Parsl's log on")
    within, over = targets.parsl_floor(report(5.5, logging=False))
    assert within["met"] is False and over["met"] is False and over["measured"] == pytest.approx(1.5 / 5.0)
    assert over["target"].endswith("Parsl's log off")
    # HTEX no slower than the threads: there is no overhead to take a share of
    htex_fast = Report("chains", rows=[make_row("parsl-threads", makespan_s=4.0), make_row("parsl-htex", makespan_s=3.0),
                                       make_row("tether-parsl", makespan_s=4.1)])
    assert targets.overhead_share_at_most(htex_fast, "tether-parsl", "parsl-threads", "parsl-htex", 0.2)["met"] is False
    missing = Report("chains", rows=[make_row("tether-parsl", makespan_s=4.1)])
    assert all(c["met"] is None for c in targets.parsl_floor(missing))


def result(task_id: int, worker: str, started: float, finished: float) -> TaskResult:
    return TaskResult(task_id, 0, "", "", worker, started, finished, None)


def test_live_bytes_follow_each_temp_from_its_producer_to_its_last_reader():
    # a -> t1 -> b -> t2 -> c (final), all on one worker; t1 is 100 bytes, t2 is 10, the final 1
    wf = Workflow([Step("a", "x", (), ("t1",)), Step("b", "x", ("t1",), ("t2",)), Step("c", "x", ("t2",), ("f",))],
                  sizes={"t1": 100, "t2": 10, "f": 1})
    info = {"a": result(1, "w", 0.0, 1.0), "b": result(2, "w", 1.0, 2.0), "c": result(3, "w", 2.0, 3.0)}
    # t1 lives [0, 2], t2 [1, 3], the final [2, its Future at 3.5]: at most t1 + t2 at once
    assert live_bytes_peaks(wf, info, {"a": 1.0, "b": 2.0, "c": 3.5}) == {"w": 110}


def test_a_temp_read_on_another_worker_lives_there_while_its_reader_runs():
    wf = Workflow([Step("a", "x", (), ("t",)), Step("b", "x", ("t",), ("f",))], sizes={"t": 50, "f": 0})
    info = {"a": result(1, "w1", 0.0, 1.0), "b": result(2, "w2", 2.0, 3.0)}
    assert live_bytes_peaks(wf, info, {"a": 1.0, "b": 3.0}) == {"w1": 50, "w2": 50}


def test_markdown_shows_ratios_to_the_floor_and_skipped_rows_with_their_reason():
    report = Report("chains", {"chains": 2}, rows=[make_row("floor", makespan_s=2.0, correct=True),
                                                   make_row("tether-native", makespan_s=3.0, correct=True,
                                                            bytes_worker_to_worker=0),
                                                   make_row("tether-parsl", skipped="no tether.parsl")])
    report.targets = [targets.ratio_at_most(report, "tether-native", "floor", 1.15)]
    text = render(report.to_dict())
    assert "| tether-native | 3.00 s | 1.50× |" in text
    assert "skipped: no tether.parsl" in text
    assert "tether-native <= 1.15x floor (makespan_s): 1.50x — **missed**" in text


def test_a_stalled_run_fails_its_row_instead_of_hanging_the_benchmark():
    from concurrent.futures import Future

    import pytest

    from tether_bench.display import wait_with_progress

    done, stuck = Future(), Future()
    done.set_result(None)
    seen = []
    with pytest.raises(TimeoutError, match="1 of 2 tasks still unfinished"):
        wait_with_progress([done, stuck], seen.append, poll=0.01, timeout=0.2)
    assert seen == [1]


def _rows_of(run, work_root):
    from tether_bench.display import Display
    from tether_bench.runner import RowPlan, run_rows

    report = Report("x")
    with Display() as display:
        run_rows(report, [RowPlan("a", None, lambda work_dir, advance: run(work_dir))], display, work_root)
    return report.rows


def test_a_row_with_a_task_missing_is_a_failed_row(tmp_path):
    (row,) = _rows_of(lambda _: make_row("a", makespan_s=1.0, tasks=10, tasks_done=9, correct=True), tmp_path)
    assert row["correct"] is False and "only 9 of 10 tasks done" in row["problems"]


def test_a_front_end_of_the_tree_that_does_not_import_fails_its_row(monkeypatch, tmp_path):
    """Where Parsl imports, tether.parsl must: its failure is a failed row, never a skipped one."""
    import sys

    from tether_bench.systems import tether_parsl

    monkeypatch.setitem(sys.modules, "tether.parsl", None)   # Python's own way to make an import fail
    (row,) = _rows_of(lambda _: tether_parsl.executor_class(), tmp_path)
    assert not row.get("skipped") and "tether.parsl does not import" in row["error"]


def test_an_even_number_of_runs_is_refused():
    import pytest

    from tether_bench.display import Display
    from tether_bench.runner import run_rows

    with Display() as display, pytest.raises(ValueError, match="odd"):
        run_rows(Report("x"), [], display, None, repeat=2)
