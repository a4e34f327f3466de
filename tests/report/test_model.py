"""The model and the layout, built from real transaction logs."""
from __future__ import annotations

import itertools
import statistics

import pytest

from tether.manager import txlog
from tether.manager.txlog import TxLog
from tether.report import Model, ReportError, load
from tether.report.layout import timeline
from tether.report.tail import Tail


def test_tasks_workers_groups_and_outcomes(run_dir):
    path, expected = run_dir
    model = load(path)
    assert model.run == "run-test"
    assert {t: task.state for t, task in model.tasks.items()} == expected.tasks
    assert {t: task.worker for t, task in model.tasks.items()} == expected.task_worker
    assert {t: task.tries for t, task in model.tasks.items()} == expected.attempts
    assert {w: worker.cores for w, worker in model.workers.items()} == expected.workers
    assert model.workers["w3"].left_reason == "connection closed"
    assert model.workers["w1"].left is None
    assert len(model.workers["w2"].blocklisted) == 1
    assert {g: group.members for g, group in model.groups.items()} == expected.groups
    assert {g: group.worker for g, group in model.groups.items()} == expected.group_worker
    for group, members in expected.groups.items():
        assert {model.tasks[m].group for m in members} == {group}
    assert model.tasks["t6"].group is None
    assert model.tasks["t6"].what == 'echo "</script><b>bold</b>" > note'
    t1 = model.tasks["t1"]
    assert t1.kind == "sh" and t1.cores == 1 and t1.memory == 100
    ran = t1.ran
    assert ran.peak_memory == 7_000_000 and ran.cpu == pytest.approx(0.03) and ran.disk == 2000
    assert ran.finished > ran.started
    assert model.skipped == 0
    assert len(model.manager_events) == 2


def test_failures_and_retries(run_dir):
    path, expected = run_dir
    model = load(path)
    t7 = model.tasks["t7"]      # lost with w3, then done on w2
    assert [(a.worker, a.outcome, a.reason) for a in t7.attempts] == [("w3", "failed", "worker-lost"),
                                                                      ("w2", "ran", None)]
    assert t7.state == "done" and t7.tries == 2
    t8 = model.tasks["t8"]      # failed on w2, retried there, given up
    assert [(a.number, a.outcome, a.exit_code) for a in t8.attempts] == [(1, "failed", 1), (2, "failed", 1)]
    assert t8.state == "failed" and t8.reason == "exit" and t8.message.startswith("exit code 1")
    attempts = [f for f in model.failures if not f.final]
    assert len(attempts) == expected.failed_attempts
    assert [(f.task, f.reason) for f in model.failures if f.final] == [("t8", "exit")]
    s = model.summary()
    assert s.failures_by_reason == {"worker-lost": 1, "exit": 2}
    assert s.retried_tasks == 2 and s.failed_attempts == 3 and s.attempts == 10


def test_summary_transfers_and_cache(run_dir):
    path, expected = run_dir
    model = load(path)
    s = model.summary()
    assert s.tasks == 8 and s.states["done"] == 7 and s.states["failed"] == 1
    assert s.bytes_moved == expected.bytes_moved
    assert s.transfers == {"manager_to_worker": 3, "worker_to_manager": 4, "worker_to_worker": 1}
    assert s.workers == 3 and s.workers_connected == 2 and s.cores == 3
    assert s.hop_count == 3 and s.hop_median == pytest.approx(statistics.median(expected.hops))
    assert {w: use.total for w, use in model.cache.items()} == expected.cache_final
    assert s.peak_cache == expected.cache_peak
    # the cache's history: w3's ends at zero when it leaves, w1's rises and falls with inserts and evictions
    assert model.cache["w3"].points[-1][1] == 0
    totals = [b for _, b in model.cache["w1"].points]
    assert max(totals) == expected.cache_peak["w1"] and totals[-1] == expected.cache_final["w1"]
    starts = [a.started for t in model.tasks.values() for a in t.attempts if a.started]
    ends = [a.finished for t in model.tasks.values() for a in t.attempts if a.finished]
    assert s.start <= min(starts) and s.end >= max(ends) and s.makespan == pytest.approx(s.end - s.start)


def test_events_one_at_a_time_make_the_same_model(run_dir):
    path, _ = run_dir
    whole = load(path)
    live = Model(run="run-test")
    events = list(txlog.read(path / "transactions"))
    for i, event in enumerate(events):
        live.add(event)
        assert live.version == i + 1
        if i == len(events) // 2:       # half way: what is known so far, nothing more
            half = live.summary()
            assert half.states["done"] < 7
    assert live.summary() == whole.summary()
    assert {t: x.state for t, x in live.tasks.items()} == {t: x.state for t, x in whole.tasks.items()}


def test_the_managers_own_tuples_are_taken_too():
    """The manager logs numbers and None; the model takes them as they are, without the text round trip."""
    model = Model()
    model.extend([
        (10.0, "WORKER", "w1", "JOINED", ("h", 4, 1000, 1000)),
        (10.1, "TASK", 1, "SUBMITTED", ("py", 1, 0, 0, "f")),
        (10.2, "TASK", 1, "ASSIGNED", ("w1", 1, None)),
        (10.5, "TASK", 1, "RAN", ("w1", 10.25, 10.45, None, 0.1, None, 0)),
        (10.6, "TASK", 1, "DONE", (1, 0.002)),
    ])
    task = model.tasks["1"]
    assert task.state == "done" and task.group is None and task.hop_latency == 0.002
    assert task.ran.peak_memory is None and task.ran.started == 10.25
    assert model.summary().makespan == pytest.approx(0.5)


def test_lines_it_does_not_understand_are_counted_not_fatal(tmp_path):
    path = tmp_path / "transactions"
    log = TxLog(path, run="odd")
    log.add("TASK", "t1", "SUBMITTED", "sh", 1, 0, 0, "true")
    log.add("TASK", "t1", "TELEPORTED", "mars")            # an event of a later version
    log.add("SPACESHIP", "x", "LANDED")                    # a kind of a later version
    log.add("TASK", "t1", "RAN", "w1", "soon", "later")    # numbers that do not parse
    log.add("TASK", "t1", "ASSIGNED", "w1", 1, "-", "a field of a later version")
    log.close()
    with open(path, "a") as f:
        f.write("not even tab separated\n#a comment\n")
    model = load(path)
    assert model.skipped == 3
    assert model.tasks["t1"].state == "assigned" and model.tasks["t1"].worker == "w1"


def test_a_growing_log_read_in_pieces(tmp_path):
    """The live page's reader: only finished lines are taken, and the pieces add up to the whole."""
    path = tmp_path / "transactions"
    tail = Tail(path)
    assert tail.read() == []                                 # not written yet
    log = TxLog(path, run="growing", separate_process=False)   # flush() writes at once
    model = Model()
    for i in range(5):
        log.add("TASK", f"t{i}", "SUBMITTED", "sh", 1, 0, 0, f"step {i}")
        log.flush()
        model.extend(tail.read())
        assert len(model.tasks) == i + 1
    with open(path, "a") as f:                             # a line the writer has not finished
        f.write("1.0\tTASK\tt9\tSUBMI")
    model.extend(tail.read())
    assert "t9" not in model.tasks
    with open(path, "a") as f:
        f.write("TTED\tsh\t1\t0\t0\tlate\n")
    model.extend(tail.read())
    assert model.tasks["t9"].what == "late"
    log.close()
    assert tail.run == "growing"


def test_sublanes_keep_concurrent_tasks_apart(run_dir, big_log):
    path, expected = run_dir
    tl = timeline(load(path))
    assert {lane.worker: lane.sublanes for lane in tl.lanes} == expected.sublanes
    w1 = next(lane for lane in tl.lanes if lane.worker == "w1")
    assert {b.sublane for b in w1.bars if b.group == "g1"} == {0}          # a chain reads as one line
    assert next(b for b in w1.bars if b.task == "t6").sublane == 1
    w3 = next(lane for lane in tl.lanes if lane.worker == "w3")
    assert w3.left is not None and w3.left_reason == "connection closed"
    big, facts = big_log
    tl = timeline(load(big))
    assert sum(len(lane.bars) for lane in tl.lanes) == facts["tasks"]
    for lane in tl.lanes:
        assert lane.sublanes <= lane.cores
        by_sublane: dict[int, list] = {}
        for bar in lane.bars:
            by_sublane.setdefault(bar.sublane, []).append(bar)
        for bars in by_sublane.values():
            bars.sort(key=lambda b: b.start)
            assert all(a.end <= b.start for a, b in itertools.pairwise(bars))


@pytest.mark.parametrize("content, message", [
    (None, "has no transactions file"),
    ("hello\tworld\n", "is not a tether transaction log"),
    ("#tether-transactions 99 r 1\n", "version 99"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not text"),
])
def test_clear_errors_for_what_is_not_a_log(tmp_path, content, message):
    target = tmp_path
    if content is not None:
        target = tmp_path / "file"
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ReportError, match=message):
        load(target)
    with pytest.raises(ReportError, match="does not exist"):
        load(tmp_path / "nowhere")
