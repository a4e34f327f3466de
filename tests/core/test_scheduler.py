"""The scheduler core, driven by events with no sockets or processes."""
from tether.core import LOCAL, MANAGER, FileHome, FilesCached, FileWanted, State, TaskCancelled

from .helpers import Harness, out, src, temp


def test_producer_then_consumer_on_one_worker_with_temp_passed_locally():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, inputs=[src("a")], outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")], outputs=[out("r")])
    assert h.assigned == {"w1": [1]}
    assert h.sources[1] == {"file-a": MANAGER}
    h.succeed(1)
    assert h.assigned["w1"] == [1, 2]
    assert h.sources[2] == {"temp-x": LOCAL}
    h.succeed(2)
    # the output is brought home before the task counts as complete
    assert 2 not in h.completed and h.fetches[-1].name == "out-r"
    h.send(FileHome("out-r"))
    assert 2 in h.completed
    # the temp is deleted once its only consumer succeeded
    assert "temp-x" in h.deleted["w1"]


def test_consumer_submitted_before_producer_waits_for_it():
    h = Harness()
    h.worker("w1")
    h.submit(2, inputs=[temp("x")])
    assert h.assigned == {}
    h.submit(1, outputs=[temp("x")])
    assert h.assigned["w1"][0] == 1
    h.run_all()
    assert set(h.completed) == {1, 2}


def test_user_file_is_sent_once_per_worker():
    h = Harness(group_tasks=False)
    h.worker("w1", cores=4)
    for tid in range(1, 4):
        h.submit(tid, inputs=[src("big", 10_000)])
    sources = [h.sources[t]["file-big"] for t in (1, 2, 3)]
    assert sources == [MANAGER, LOCAL, LOCAL]


def test_peer_transfer_when_consumer_runs_elsewhere():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")], cores=1)
    h.succeed(1)
    # w1 is the only worker that fits cores=1 and holds x; a 2-core task must go to w2
    h.worker("w2", cores=2)
    h.submit(2, inputs=[temp("x")], cores=2)
    assert h.where[2] == "w2"
    assert h.sources[2] == {"temp-x": "w1"}


def test_placement_prefers_worker_holding_most_input_bytes():
    h = Harness(group_tasks=False)
    h.worker("w1", cores=2)
    h.worker("w2", cores=2)
    h.submit(1, outputs=[temp("big")], cores=1)
    h.succeed(1, sizes=50_000_000)
    holder = h.where[1]
    h.submit(2, inputs=[temp("big")])
    assert h.where[2] == holder


def test_a_much_shorter_queue_elsewhere_wins_over_small_data():
    h = Harness(group_tasks=False)
    h.worker("w1", cores=1)
    h.submit(1, outputs=[temp("x")])
    h.succeed(1, sizes=10)
    h.submit(9, inputs=[src("long")])          # keeps w1 busy
    assert h.where[9] == "w1"
    h.worker("w2", cores=1)                     # idle, lacks 10 bytes
    h.submit(2, inputs=[temp("x")])
    assert h.where[2] == "w2" and h.sources[2] == {"temp-x": "w1"}


def test_resources_must_fit():
    h = Harness()
    h.worker("small", cores=1, memory=1000)
    h.submit(1, cores=2)
    h.submit(2, memory=2000)
    assert h.assigned == {}
    h.worker("big", cores=4, memory=8000)
    assert sorted(h.assigned["big"]) == [1, 2]


def test_nonzero_exit_fails_for_good_and_consumers_fail_as_dependencies():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")], outputs=[temp("y")])
    h.submit(3, inputs=[temp("y")])
    h.fail(1, message="exit 3")
    assert h.failed[1].reason == "exit"
    assert h.failed[2].reason == "dependency" and h.failed[2].cause == 1
    assert h.failed[3].reason == "dependency" and h.failed[3].cause == 1
    # nothing of the chain waits on the worker any more
    assert h.queued_on("w1") == []


def test_retry_runs_the_failed_task_again_alone():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")], retries=1)
    h.succeed(1)
    h.fail(2)
    assert h.assigned["w1"] == [1, 2, 2]
    h.succeed(2)
    assert h.completed[2].attempts == 2
    assert h.s.counters.attempts_failed == 1


def test_worker_lost_puts_running_tasks_back():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.worker("w2")
    h.submit(1, inputs=[src("a")])
    first = h.where[1]
    h.lose(first)
    other = "w2" if first == "w1" else "w1"
    assert h.where[1] == other and h.sources[1] == {"file-a": MANAGER}


def test_lost_temp_is_made_again_by_its_producer_only():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, inputs=[src("a")], outputs=[temp("x")])
    h.submit(2, inputs=[src("a")], outputs=[temp("y")])
    h.succeed(1)
    h.succeed(2)
    assert h.where[1] == h.where[2] == "w1"
    h.worker("w2")
    h.send(FilesCached("w2", (("temp-y", 10),)))  # y was copied to w2 meanwhile
    h.submit(3, inputs=[temp("x"), temp("y")], cores=1)
    h.lose("w1")
    # x existed only on w1: its producer runs again; y survives on w2, so task 2 does not
    assert h.s.counters.reruns == 1
    assert h.where[1] == "w2"
    assert h.assigned["w2"].count(2) == 0


def test_lost_temp_recovery_is_recursive_through_collected_inputs():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("a")])
    h.submit(2, inputs=[temp("a")], outputs=[temp("b")])
    h.submit(3, inputs=[temp("b")], outputs=[temp("c")])
    h.succeed(1)
    h.succeed(2)  # a is collected now
    assert "temp-a" in h.deleted["w1"]
    h.worker("w2")
    h.lose("w1")   # b is lost with w1, and a is gone: 1 and 2 run again, then 3
    assert h.s.counters.reruns == 2
    h.run_all()
    assert 3 in h.completed


def test_temp_without_consumers_is_kept_and_wanted_temp_is_fetched():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.send(FileWanted("temp-x"))
    h.succeed(1)
    assert [f.name for f in h.fetches] == ["temp-x"]
    assert "temp-x" not in h.deleted.get("w1", [])


def test_cancel_before_assignment_fails_dependents():
    h = Harness()
    h.submit(1, outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")])
    h.send(TaskCancelled(1))
    assert h.s.tasks[1].state == State.CANCELLED
    assert h.failed[2].reason == "dependency"


def test_second_producer_of_a_file_is_rejected():
    h = Harness()
    h.submit(1, outputs=[temp("x")])
    h.submit(2, outputs=[temp("x")])
    assert h.failed[2].reason == "invalid" and "already made by task 1" in h.failed[2].message


def test_a_finished_chain_goes_from_its_end_back_once_its_files_are_released():
    """Lineage is kept only while a file it made may be asked for: by the user (until the handle is
    released) or by a task that may run again. Released, the chain goes from its end back to its
    start, with its files; a chain whose end the user still names stays whole."""
    from tether.core import FileReleased, Forget

    h = Harness()
    h.worker("w1")
    for i in range(1, 4):
        h.submit(i, inputs=[temp(f"x{i - 1}")] if i > 1 else [src("in")], outputs=[temp(f"x{i}")])
    h.run_all()
    assert set(h.s.tasks) == {1, 2, 3}          # every handle is still held
    h.send(FileReleased("temp-x1"), FileReleased("temp-x2"))
    assert set(h.s.tasks) == {1, 2, 3}          # the end is still named, so its lineage stays
    forgets = [c for c in h.send(FileReleased("temp-x3")) if isinstance(c, Forget)]
    assert not h.s.tasks and [tid for c in forgets for tid in c.tasks] == [3, 2, 1]
    assert not [n for n in h.s.files if n.startswith("temp-")]
    assert h.s.counts_by_state()["done"] == 3

    # a released middle file stays while a consumer that may run again reads it
    h = Harness()
    h.worker("w1")
    h.submit(1, inputs=[src("in")], outputs=[temp("a")])
    h.submit(2, inputs=[temp("a")], outputs=[out("b")])
    h.send(FileReleased("temp-a"))
    assert set(h.s.tasks) == {1, 2}
    h.run_all()
    h.send(FileHome("out-b"))
    assert set(h.s.tasks) == {1, 2}             # out-b is still named: a later task may read it from home
    h.send(FileReleased("out-b"))
    assert not h.s.tasks


def test_hop_latency_is_from_producer_end_to_consumer_start():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")])
    h.succeed(1, duration=1.0)   # ends at t=1
    h.clock += 0.25
    h.succeed(2)                 # starts at 1.25
    assert abs(h.completed[2].hop_latency - 0.25) < 1e-9
    assert h.completed[1].hop_latency is None


def test_finished_tasks_that_make_nothing_are_let_go_and_still_counted():
    """A run of many tasks holds only the pending ones: a finished task that makes nothing can never
    be needed again (only producers of lost files run again), a group's last member included."""
    for grouped in (True, False):
        h = Harness(group_tasks=grouped)
        h.worker("w1", cores=2)
        h.submit(1, outputs=[temp("a")])
        h.submit(2, inputs=[temp("a")])             # reads a, makes nothing: a group's last member
        h.submit(3, inputs=[src("x")])              # makes nothing
        h.submit(4)                                 # fails: makes nothing either
        h.fail(4, message="boom")
        h.run_all()
        assert set(h.completed) == {1, 2, 3} and set(h.failed) == {4}
        assert set(h.s.tasks) == {1}   # 1 stays: the user may still name what it made
        counts = h.s.counts_by_state()
        assert counts["done"] == 3 and counts["failed"] == 1 and h.s.pending_count() == 0
        h.s.validate()
