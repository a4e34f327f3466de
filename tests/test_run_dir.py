"""A run's directory after a real run: its logs, its transaction log, and what the report makes of them."""
from __future__ import annotations

import logging
import os
import signal

import pytest

from tether import Manager, PythonTask, Task, TaskFailed
from tether.manager import txlog
from tether.report.model import Model

from .conftest import start_worker, stop, wait_until


def _square(x):
    return x * x


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _chain(m: Manager, length: int, out):
    prev, futures = None, []
    for i in range(length):
        made = m.declare_file(out) if i == length - 1 else m.declare_temp()
        cmd = ("cat in > out; " if prev else "") + f"echo step{i} >> out"
        futures.append(m.submit(Task(cmd, inputs={"in": prev} if prev else {}, outputs={"out": made})))
        prev = made
    return futures


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run with two chains (groups), Python calls, a retried and a failed task; then closed."""
    parent = tmp_path_factory.mktemp("runs")
    out = tmp_path_factory.mktemp("out")
    m = Manager(workers=2, cores_per_worker=1, run_dir=parent)
    chains = [_chain(m, 5, out / f"chain{c}.txt") for c in range(2)]
    calls = [m.submit(PythonTask(_square, args=(i,))) for i in range(6)]
    marker = out / "marker"
    flaky = m.submit(Task(f"test -e {marker} || {{ touch {marker}; exit 3; }}", retries=1))
    failing = m.submit(Task("echo no >&2; exit 4"))
    killer = m.submit(PythonTask(_die))
    for f in [*sum(chains, []), *calls, flaky]:
        f.result(60)
    for f in (failing, killer):
        with pytest.raises(TaskFailed):
            f.result(60)
    stats_open = m.stats()
    m.close()
    ids = {"chains": [[f.task_id for f in c] for c in chains], "calls": [f.task_id for f in calls],
           "flaky": flaky.task_id, "failing": failing.task_id, "killer": killer.task_id}
    return m, parent, ids, stats_open


@pytest.mark.slow
def test_the_run_directory_stays_with_logs_and_without_caches(finished_run):
    m, parent, _, _ = finished_run
    assert m.run_dir.parent == parent and m.run_dir.name.endswith(m.run)
    names = sorted(os.listdir(m.run_dir))
    assert "work" not in names   # the secret and the caches went with the manager
    assert {"manager.log", "transactions", "worker-1.log", "worker-2.log"} <= set(names)
    manager_log = (m.run_dir / "manager.log").read_text()
    assert "listening at" in manager_log and "worker local-1 joined" in manager_log
    assert "connected to the manager" in (m.run_dir / "worker-1.log").read_text()


def test_stats_after_close_are_the_figures_at_close(finished_run):
    m, _, ids, before = finished_run
    after = m.stats()
    assert after["tasks_submitted"] == before["tasks_submitted"] == 2 * 5 + 6 + 3
    assert after["tasks_done"] >= before["tasks_done"] and after["tasks_failed"] == 2


def test_every_task_is_in_the_transaction_log(finished_run):
    m, _, ids, _ = finished_run
    events = list(txlog.read(m.run_dir / "transactions"))
    by_task: dict[str, list[str]] = {}
    for e in events:
        if e.kind == "TASK":
            by_task.setdefault(e.subject, []).append(e.event)
    all_ids = [*sum(ids["chains"], []), *ids["calls"], ids["flaky"], ids["failing"], ids["killer"]]
    for tid in all_ids:
        seen = by_task[str(tid)]
        assert seen[0] == "SUBMITTED" and "ASSIGNED" in seen, (tid, seen)
    for tid in [*sum(ids["chains"], []), *ids["calls"]]:
        assert by_task[str(tid)][-1] == "DONE" and "RAN" in by_task[str(tid)]
    assert by_task[str(ids["flaky"])].count("ASSIGNED") == 2 and "ATTEMPT-FAILED" in by_task[str(ids["flaky"])]
    assert by_task[str(ids["failing"])][-1] == "FAILED"
    kinds = {(e.kind, e.event) for e in events}
    assert {("WORKER", "JOINED"), ("WORKER", "LEFT"), ("GROUP", "FORMED"), ("CACHE", "INSERT")} <= kinds
    transfers = [(e.event, e.fields[0]) for e in events if e.kind == "TRANSFER"]   # (from, to)
    assert ("manager", "local-1") in transfers or ("manager", "local-2") in transfers   # the functions
    assert sum(1 for source, dest in transfers if dest == "manager") == 2   # the chains' last files
    managers = [e for e in events if e.kind == "MANAGER"]
    assert [e.subject for e in managers] == ["STARTED", "CLOSED"]


def test_the_report_model_shows_each_chain_in_one_lane(finished_run):
    m, _, ids, _ = finished_run
    model = Model.from_events(txlog.read(m.run_dir / "transactions"))
    assert model.skipped == 0
    assert set(model.workers) >= {"local-1", "local-2"}
    for chain in ids["chains"]:
        workers = {model.tasks[str(t)].worker for t in chain}
        groups = {model.tasks[str(t)].group for t in chain}
        assert len(workers) == 1 and len(groups) == 1 and None not in groups
        assert model.groups[groups.pop()].members == tuple(str(t) for t in chain)
    killer = model.tasks[str(ids["killer"])]
    assert killer.state == "failed" and killer.tries == 4   # the first try and three system retries
    assert model.bytes_moved["worker_to_manager"] > 0 and model.bytes_moved["manager_to_worker"] > 0


def test_no_transaction_log_when_asked_not_to(tmp_path):
    with Manager(workers=1, run_dir=tmp_path, transactions=False) as m:
        assert m.submit(Task("true")).result(30).exit_code == 0
    assert not (m.run_dir / "transactions").exists()
    assert (m.run_dir / "manager.log").exists()


def test_a_remote_worker_and_a_blocklisting_are_logged(tmp_path):
    with Manager(workers=0, run_dir=tmp_path, system_retries=5) as m:
        m.core.blocklist_seconds = 0.5   # the blocklist is what is logged; its 30 s would only be waited out
        w = start_worker(m, "far", tmp_path)
        try:
            m.wait_for_workers(1)

            def die():   # defined here, so that it travels by value: the worker cannot import tests
                import os
                import signal
                os.kill(os.getpid(), signal.SIGKILL)

            f = m.submit(PythonTask(die))
            with pytest.raises(TaskFailed):
                f.result(60)
        finally:
            stop(w)
        wait_until(lambda: not m.engine.links, timeout=15)
    events = list(txlog.read(m.run_dir / "transactions"))
    assert any(e.kind == "WORKER" and e.subject == "far" and e.event == "JOINED" for e in events)
    assert any(e.kind == "WORKER" and e.subject == "far" and e.event == "BLOCKLISTED" for e in events)
    left = [e for e in events if e.kind == "WORKER" and e.event == "LEFT"]
    assert left and left[0].fields[0]   # with why


def test_the_manager_log_leaves_a_configured_logger_alone(tmp_path):
    tether = logging.getLogger("tether")
    tether.setLevel(logging.ERROR)
    try:
        with Manager(workers=0, run_dir=tmp_path) as m:
            assert tether.level == logging.ERROR
        assert "listening" not in (m.run_dir / "manager.log").read_text()
    finally:
        tether.setLevel(logging.NOTSET)


def test_python_tasks_are_named_by_their_function(finished_run):
    m, _, ids, _ = finished_run
    submitted = {e.subject: e.fields for e in txlog.read(m.run_dir / "transactions")
                 if e.kind == "TASK" and e.event == "SUBMITTED"}
    assert submitted[str(ids["calls"][0])][0] == "py" and submitted[str(ids["calls"][0])][-1] == "_square"
    assert submitted[str(ids["failing"])][-1] == "echo no >&2; exit 4"
