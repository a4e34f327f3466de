"""The simulated cluster itself: the real core and real worker states, joined as the shells join them."""
from __future__ import annotations

from tether.core import Complete, Fail, FileSpec, Scheduler, TaskSubmitted
from tether.simulate import Cluster
from tether.wire import messages as m
from tether.worker.state import from_assignment
from tether.worker.process import Worker

SRC = FileSpec("file-s", size=1000, source=True)


def chain(c: Cluster, first: int, length: int, duration: float = 0.5, head=SRC, home: bool = True) -> list[str]:
    names, previous = [], head
    for i in range(length):
        made = FileSpec(f"out-{first + i}", home=True) if home and i == length - 1 else FileSpec(f"temp-{first + i}")
        c.submit(TaskSubmitted(first + i, (previous,), (made,)), duration=duration)
        names.append(made.name)
        previous = made
    return names


def completed(c: Cluster) -> set[int]:
    return {t for t, o in c.outcomes.items() if [type(x) for x in o] == [Complete]}


def test_an_assignment_becomes_the_task_the_worker_keeps():
    sh = m.AssignedTask(m.TaskSpec(3, "sh", 2, outputs=(("b", "out-b"),), command="cat a > b"),
                        (m.Input("a", "file-a", m.MANAGER), m.Input("t", "temp-t", m.Peer("w2", "sim", 0)),
                         m.Input("l", "temp-l", None)))
    t = from_assignment(sh)
    assert (t.id, t.inputs, t.outputs, t.cores, t.light) == (
        3, [("a", "file-a"), ("t", "temp-t"), ("l", "temp-l")], [("b", "out-b")], 2, False)
    assert t.sources == {"file-a": m.MANAGER, "temp-t": m.Peer("w2", "sim", 0), "temp-l": None}
    py = from_assignment(m.AssignedTask(m.TaskSpec(4, "py", fn="fn-1", args=b"", result="res-4"),
                                        (m.Input(None, "fn-1", m.MANAGER),)))
    assert (py.inputs, py.light, py.result) == ([], True, "res-4")


def test_chains_and_independent_tasks_all_complete_and_groups_hop_on_their_worker():
    c = Cluster(latency=0.01)
    c.add_worker(cores=2)
    c.add_worker(cores=1)
    chain(c, 1, 5)
    for tid in range(10, 16):
        c.submit(TaskSubmitted(tid, (SRC,), (FileSpec(f"out-{tid}", home=True),)), duration=0.2)
    c.run()
    c.validate()
    assert completed(c) == set(range(1, 6)) | set(range(10, 16))
    assert c.quiet() and c.core.pending_count() == 0
    # the chain ran as a group, on one worker: each member started when the one before it ended
    runs = [c.successes[t][0] for t in range(1, 6)]
    assert len({w for w, _, _ in runs}) == 1
    assert all(after[1] == before[2] for before, after in zip(runs, runs[1:]))
    assert {f"out-{t}" for t in (5, *range(10, 16))} <= c.homes


def test_the_same_calls_give_the_same_history():
    def history():
        c = Cluster(latency=0.01)
        c.add_worker(cores=1, speed=0.5)
        c.add_worker(cores=2)
        chain(c, 1, 6)
        chain(c, 20, 6)
        c.run(until=1.2)
        c.lose_worker("w2", noticed_after=0.3)
        c.add_worker()
        c.run()
        return c.now, sorted(c.successes.items())

    assert history() == history()


def test_a_lost_worker_s_tasks_and_only_temps_are_made_again_elsewhere():
    c = Cluster(latency=0.01)
    first = c.add_worker()
    chain(c, 1, 4, home=False)
    c.submit(TaskSubmitted(9, (FileSpec("temp-4"),), (FileSpec("out-9", home=True),)), duration=0.5)
    c.run(until=1.2)   # two members done on the first worker, the third running
    c.add_worker()
    c.lose_worker(first, noticed_after=0.5)
    c.run()
    c.validate()
    assert completed(c) == {1, 2, 3, 4, 9}
    assert c.core.counters.reruns >= 1 and "out-9" in c.homes


def test_members_behind_a_slow_worker_move_to_a_fast_one_gone_idle():
    c = Cluster(latency=0.01)
    slow = c.add_worker(speed=0.1)
    fast = c.add_worker()
    chain(c, 1, 8, duration=0.2)
    chain(c, 21, 8, duration=0.2)
    c.run()
    assert completed(c) == set(range(1, 9)) | set(range(21, 29))
    assert c.core.counters.moves > 0
    ran = {t: {w for w, _, _ in c.successes[t]} for t in c.successes}
    assert any(ran[t] == {slow} for t in ran) and sum(ran[t] == {fast} for t in ran) > 8


def test_a_stalled_link_delays_the_report_until_the_stall_ends():
    c = Cluster(latency=0.01)
    w = c.add_worker()
    c.run()
    c.submit(TaskSubmitted(1, (SRC,), (FileSpec("out-1", home=True),)), duration=0.1)
    c.flush()
    c.stall(w, 3.0)
    c.run()
    assert completed(c) == {1}
    assert c.settled_at[1] > 3.0


def test_failures_planned_ahead_and_ended_runs_reach_the_core_as_each_reason_says():
    c = Cluster(Scheduler(group_tasks=False), latency=0.01)
    c.add_worker()
    c.add_worker()
    c.submit(TaskSubmitted(1, (SRC,), (FileSpec("temp-1"),), retries=1), failures=["exit"])
    c.submit(TaskSubmitted(2, (SRC,), (FileSpec("temp-2"),)), failures=["exit"])
    c.submit(TaskSubmitted(3, (SRC,), (FileSpec("temp-3"),)), failures=["interpreter"])
    c.submit(TaskSubmitted(4, (SRC,), (FileSpec("temp-4"),)), duration=5.0)
    c.run(until=1.5)
    assert c.end_run(4, "disk-full")
    c.run()
    assert completed(c) == {1, 3, 4}
    assert [type(o) for o in c.outcomes[2]] == [Fail] and c.outcomes[2][0].reason == "exit"
    assert c.outcomes[3][0].attempts == 2 and c.outcomes[4][0].attempts == 2


def test_a_wanted_file_is_fetched_and_an_unwritable_output_fails_its_task():
    c = Cluster(latency=0.01)
    c.add_worker()
    chain(c, 1, 2, home=False)
    c.submit(TaskSubmitted(5, (SRC,), (FileSpec("out-5", home=True),)))
    c.want("temp-1")
    c.refuse_home("out-5")
    c.run()
    assert c.wants == {"temp-1": "ok"}
    assert c.outcomes[5][0].reason == "home"
    assert completed(c) == {1, 2}
