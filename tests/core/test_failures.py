"""Failures in the core: the task's own against the system's, budgets, blocklists, outputs on their way home."""
import pytest

from tether.core import (FileHome, FileHomeFailed, FileLostOn, FileState, IllegalTransition, NoWorkers, State,
                         TaskState, Tick)
from tether.core.lifecycle import FILE_TRANSITIONS, TASK_TRANSITIONS, move_task

from .helpers import Harness, out, temp


def test_a_system_failure_is_retried_on_another_worker():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.worker("w2")
    h.submit(1, outputs=[temp("x")])
    first = h.where[1]
    h.fail(1, reason="disk-full", message="no space left")
    assert h.where[1] != first
    h.succeed(1)
    assert 1 in h.completed and h.completed[1].attempts == 2


def test_system_failures_do_not_use_up_the_tasks_own_retries():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.worker("w2")
    h.submit(1, outputs=[temp("x")], retries=0)
    h.fail(1, reason="interpreter", message="the interpreter died")
    assert 1 not in h.failed
    h.succeed(1)
    assert 1 in h.completed


def test_a_tasks_own_failure_fails_it_when_its_retries_are_used_up():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")], retries=1)
    h.fail(1, reason="exit", message="exit code 1")
    assert 1 not in h.failed
    h.fail(1, reason="exit", message="exit code 1")
    assert h.failed[1].reason == "exit"


def test_past_the_system_retries_the_task_fails_naming_every_lost_attempt():
    h = Harness(group_tasks=False, system_retries=2, blocklist_after=100)
    for w in ("w1", "w2", "w3"):
        h.worker(w)
    h.submit(1, outputs=[temp("x")])
    seen = []
    for _ in range(3):
        seen.append(h.where[1])
        h.fail(1, reason="interpreter", message="the interpreter died (exit code -9)")
    fail = h.failed[1]
    assert fail.reason == "interpreter"
    assert "3 attempts" in fail.message and fail.message.count("interpreter died") == 3
    assert len(set(seen)) == 3   # each attempt on a worker it had not failed on
    # its consumers fail with it, as a dependency
    h.submit(2, inputs=[temp("x")])
    assert h.failed[2].reason == "dependency"


def test_a_lost_worker_charges_the_task_running_there_not_those_queued_behind_it():
    h = Harness(group_tasks=False, system_retries=0)
    h.worker("w1", cores=1)
    for tid in (1, 2, 3):
        h.submit(tid, outputs=[temp(f"x{tid}")])
    assert h.queued_on("w1") == [1, 2]   # one running, one queued
    h.worker("w2", cores=1)
    h.lose("w1")
    assert h.failed[1].reason == "worker-lost" and "w1" in h.failed[1].message
    assert 2 not in h.failed
    h.run_all()
    assert {2, 3} <= set(h.completed)


def test_a_worker_failing_tasks_again_and_again_is_blocklisted_for_a_while():
    h = Harness(group_tasks=False, blocklist_after=3, blocklist_seconds=10)
    h.worker("bad", cores=4)
    for tid in range(1, 4):
        h.submit(tid, outputs=[temp(f"x{tid}")])
    assert h.queued_on("bad") == [1, 2, 3]
    for tid in range(1, 4):
        h.fail(tid, reason="disk-full", message="no space")
    assert h.s.workers["bad"].blocked_until is not None
    assert 3 not in h.queued_on("bad")   # blocklisted: the last retry waits rather than go back there
    h.worker("good", cores=1)
    assert h.where[3] == "good"
    h.fail(1, reason="disk-full", message="no space")
    h.fail(2, reason="disk-full", message="no space")
    h.run_all()
    assert {1, 2, 3} <= set(h.completed)
    h.submit(10, outputs=[temp("y")], cores=2)   # only "bad" has two cores, and it is blocklisted
    assert 10 not in h.where
    h.send(Tick(h.s.now + 11))
    assert h.s.workers["bad"].blocked_until is None
    assert h.where[10] == "bad"


def test_a_worker_lost_while_an_output_is_on_its_way_home_runs_the_task_again_and_ends_it():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.worker("w2")
    h.submit(1, outputs=[out("r")])
    first = h.where[1]
    h.succeed(1)
    assert h.s.tasks[1].state is TaskState.HOMING and 1 not in h.completed
    h.lose(first)   # before the output arrived home
    assert h.where[1] != first
    h.succeed(1)
    h.send(FileHome("out-r"))
    assert h.s.tasks[1].state is TaskState.DONE
    assert 1 in h.completed


def test_an_output_missing_from_a_live_worker_before_home_is_made_again_within_the_budget():
    h = Harness(group_tasks=False, system_retries=1)
    h.worker("w1")
    h.submit(1, outputs=[out("r")])
    h.succeed(1)
    h.send(FileLostOn("w1", "out-r"))
    assert h.s.tasks[1].state is State.RUNNING
    h.succeed(1)
    h.send(FileLostOn("w1", "out-r"))
    assert h.failed[1].reason == "output-lost"


def test_an_output_that_cannot_be_written_home_fails_its_task_once():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[out("r")])
    h.succeed(1)
    h.send(FileHomeFailed("out-r", "could not write /x/r: [Errno 21] Is a directory"))
    assert h.failed[1].reason == "home" and "Is a directory" in h.failed[1].message
    assert h.assigned["w1"] == [1]   # not run again


def test_no_workers_fails_everything_pending():
    h = Harness()
    h.submit(1, outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")])
    h.send(NoWorkers("every local worker died"))
    assert h.failed[1].reason == "no-workers" and "died" in h.failed[1].message
    assert 2 in h.failed


def test_a_group_member_lost_to_the_system_continues_on_another_worker():
    h = Harness(system_retries=3, blocklist_after=100)
    h.worker("w1")
    h.worker("w2")
    h.submit(1, outputs=[temp("a")])
    h.submit(2, inputs=[temp("a")], outputs=[temp("b")])
    h.submit(3, inputs=[temp("b")], outputs=[temp("c")])
    assert h.where[1] == h.where[2] == h.where[3]
    w = h.where[1]
    h.succeed(1)
    h.fail(2, reason="disk-full", message="no space")
    other = "w2" if w == "w1" else "w1"
    assert h.where[2] == other
    from tether.core import Retracted
    assert 3 in h.retracted[w]
    h.send(Retracted(w, (3,)))
    h.succeed(2)
    assert h.where[3] == other
    h.succeed(3)
    assert {1, 2, 3} <= set(h.completed)


def test_every_listed_transition_is_allowed_and_nothing_else():
    class Dummy:
        id = 1
        state = TaskState.DONE
    t = Dummy()
    with pytest.raises(IllegalTransition):
        move_task(t, TaskState.RUNNING)
    for old, news in TASK_TRANSITIONS.items():
        for new in TaskState:
            t.state = old
            if new in news:
                move_task(t, new)
            else:
                with pytest.raises(IllegalTransition):
                    move_task(t, new)
    assert FILE_TRANSITIONS[FileState.DOOMED] == frozenset()


def test_a_worker_that_did_not_find_a_file_in_its_own_cache_no_longer_counts_as_holding_it():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    h.submit(2, inputs=[temp("x")])
    assert h.sources[2] == {"temp-x": None}   # w1 is believed to hold it
    h.fail(2, reason="input", message="temp-x is not in this worker's cache", file="temp-x")
    assert h.s.workers["w1"] not in h.s.files["temp-x"].replicas
    assert h.s.tasks[1].state is State.RUNNING   # made again
    h.succeed(1)
    h.succeed(2)
    assert 2 in h.completed and 1 in h.completed and h.s.counters.reruns == 1


def test_a_cancel_for_a_task_already_settled_does_not_stop_it_remaking_a_file():
    # found by the stateful test: task 1 ran again to remake a wanted temp, the user's cancel of its
    # (settled) Future cancelled that run and doomed the temp, and task 2, run again for a later
    # consumer, then waited for a file that would never be made
    from tether.core import FileWanted, TaskCancelled
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("a")])
    h.submit(2, inputs=[temp("a")], outputs=[temp("b")])
    h.run_all()
    assert h.s.files["temp-a"].state is FileState.GONE
    h.send(FileWanted("temp-a"))
    h.send(TaskCancelled(1))
    assert 1 not in h.failed and h.s.tasks[1].state is State.RUNNING
    h.submit(3, inputs=[temp("b")])
    h.run_all()
    assert set(h.completed) == {1, 2, 3}
    assert any(f.name == "temp-a" for f in h.fetches)


def test_a_lost_output_of_a_task_failed_for_good_fails_its_consumers_rather_than_keep_them_waiting():
    # found by the stateful test: task 1's output could not be written home (task 1 failed), task 2
    # was sent to read the copy on w1, the copy was lost, and task 2 waited for a file never made again
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[out("r")])
    h.succeed(1)
    h.send(FileHomeFailed("out-r", "could not write it"))
    h.submit(2, inputs=[out("r")], outputs=[temp("s")])
    assert h.where[2] == "w1" and h.failed[1].reason == "home"
    h.send(FileLostOn("w1", "out-r"))
    assert h.failed[2].reason == "dependency" and h.failed[2].cause == 1
    assert h.s.files["out-r"].state is FileState.DOOMED


def test_a_done_task_that_cannot_be_run_again_for_a_lost_temp_fails_what_waits_for_the_temp():
    # found by the stateful test: task 2 ran again to remake a wanted temp lost with its worker, but
    # its own input (an output of task 1, which failed writing it home) was lost too
    from tether.core import FileFailed, FileWanted
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[out("r")])
    h.succeed(1)
    h.send(FileHomeFailed("out-r", "could not write it"))
    h.submit(2, inputs=[out("r")], outputs=[temp("b")])
    h.succeed(2)
    h.send(FileWanted("temp-b"))
    commands = h.lose("w1")
    assert FileFailed("temp-b", "task 2 that makes it did not succeed") in commands
    assert h.s.tasks[2].state is TaskState.FAILED and 2 in h.completed and 2 not in h.failed


def test_an_output_on_its_way_home_from_a_lost_worker_is_brought_from_another_copy():
    # found by the stateful test: the manager was fetching a file from a worker that was lost; another
    # worker held a copy, so the core planned nothing again, and the file never reached home
    from tether.core import Fetch, FilesCached, FileWanted
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.worker("w2")
    h.submit(1, outputs=[out("r")])
    first = h.where[1]
    other = "w2" if first == "w1" else "w1"
    assert Fetch("out-r", first) in h.succeed(1)
    h.send(FilesCached(other, (("out-r", 10),)))    # a consumer's copy
    assert Fetch("out-r", other) in h.lose(first)
    h.send(FileHome("out-r"))
    assert h.s.tasks[1].state is TaskState.DONE and 1 in h.completed
    # the same for a wanted temp, and for a copy found missing when fetched
    h.worker("w3")
    h.submit(2, outputs=[temp("t")])
    h.succeed(2, worker=h.where[2])
    holder = h.where[2]
    spare = next(w for w in (other, "w3") if w != holder)
    h.send(FilesCached(spare, (("temp-t", 10),)))
    assert Fetch("temp-t", holder) in h.send(FileWanted("temp-t"))
    assert Fetch("temp-t", spare) in h.send(FileLostOn(holder, "temp-t"))


def test_a_copy_a_peer_could_not_serve_is_deleted_there_as_well_as_forgotten():
    # found by the stateful test: w2's fetch from w1 failed while w1 had lost the file; w1 made it
    # again before the (delayed) report arrived, and the core, forgetting w1's new copy, never
    # deleted it: the worker kept a file for ever that the core did not count
    from tether.core import Delete
    h = Harness(group_tasks=False)
    h.worker("w1", cores=1)
    h.worker("w2", cores=2)
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    h.submit(2, inputs=[temp("x")], outputs=[temp("y")], cores=2)   # only w2 can run it
    assert h.where[1] == "w1" and h.where[2] == "w2" and h.sources[2] == {"temp-x": "w1"}
    commands = h.fail(2, reason="input", message="could not fetch temp-x from worker w1", file="temp-x",
                      source="w1")
    assert h.s.workers["w1"] not in h.s.files["temp-x"].replicas
    assert Delete("w1", ("temp-x",)) in commands


def test_a_file_doomed_while_a_copy_is_on_its_way_to_a_worker_is_no_longer_awaited_there():
    # found by the stateful test: the last copy of an output of a failed task was lost while another
    # worker fetched it; the file was doomed but still counted as arriving there
    h = Harness(group_tasks=False)
    h.worker("w1", cores=1)
    h.worker("w2", cores=2)
    h.submit(1, outputs=[out("r")])
    h.succeed(1)
    h.send(FileHomeFailed("out-r", "could not write it"))
    h.submit(2, inputs=[out("r")], outputs=[temp("s")], cores=2)
    assert h.where[2] == "w2" and h.sources[2] == {"out-r": "w1"}
    h.lose("w1")   # validated: out-r is DOOMED and on its way nowhere
    f = h.s.files["out-r"]
    assert f.state is FileState.DOOMED and not f.pending and f not in h.s.workers["w2"].files
    assert h.failed[2].reason == "dependency"


def test_a_file_cached_before_any_task_named_it_and_lost_since_is_not_counted_there():
    # found by the stateful test: a worker joined with a user input in its cache, lost it and said so
    # before any task named it; the core later counted the copy it no longer had
    from tether.core import WorkerJoined
    from .helpers import src
    h = Harness(group_tasks=False)
    h.send(WorkerJoined("w1", 1, cached=(("file-a", 100),)))
    h.send(FileLostOn("w1", "file-a"))
    h.submit(1, inputs=[src("a")], outputs=[temp("x")])
    assert h.s.workers["w1"] not in h.s.files["file-a"].replicas
    assert h.sources[1] == {"file-a": "@manager"}


def test_a_copy_arriving_after_the_core_gave_it_up_is_deleted_not_counted():
    # found by the stateful test: a worker fetched an output written home for a task that then
    # failed; the core had the file deleted there, but the worker's report of the copy crossed the
    # deletion and the core counted a copy the worker no longer held
    from tether.core import Delete, FilesCached
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[out("r")])
    h.succeed(1)
    h.send(FileHome("out-r"))
    h.submit(2, inputs=[out("r")], outputs=[temp("s")])
    assert h.sources[2] == {"out-r": "@manager"}
    assert Delete("w1", ("out-r",)) in h.fail(2, reason="exit")   # nothing needs it on w1 any more
    commands = h.send(FilesCached("w1", (("out-r", 10),)))        # sent before the deletion arrived
    assert h.s.workers["w1"] not in h.s.files["out-r"].replicas
    assert Delete("w1", ("out-r",)) in commands
