"""The core's part in memoization: tasks completed at submission, and outputs copied to the record."""
from tether.core import MANAGER, FileHome, FileHomeFailed, State

from .helpers import Harness, out, src, temp


def test_a_memoized_task_completes_at_submission_and_its_temp_is_served_from_the_manager():
    h = Harness()
    h.worker("w1")
    h.submit(2, inputs=[temp("x")], outputs=[out("r")])   # submitted first: it waits for x
    assert h.assigned == {}
    h.submit(1, inputs=[src("a")], outputs=[temp("x")._replace(size=7)], memo=True)
    assert 1 in h.completed and h.completed[1].attempts == 0 and h.completed[1].hop_latency is None
    assert h.s.tasks[1].state is State.DONE and h.s.files["temp-x"].state.name == "HOME"
    assert h.assigned == {"w1": [2]} and h.sources[2] == {"temp-x": MANAGER}
    assert "file-a" not in h.sources[2]


def test_a_chain_of_memoized_tasks_sends_nothing():
    h = Harness()
    h.worker("w1")
    h.submit(1, inputs=[src("a")], outputs=[temp("x")], memo=True)
    h.submit(2, inputs=[temp("x")], outputs=[temp("y")], memo=True)
    h.submit(3, inputs=[temp("y")], outputs=[out("r")], memo=True)
    assert set(h.completed) == {1, 2, 3}
    assert h.assigned == {} and h.fetches == []


def test_a_memoized_consumer_lets_a_temp_made_for_it_go():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")], memo=True)   # answered by its record: x is read by nobody now
    h.succeed(1)
    assert "temp-x" in h.deleted["w1"]


def test_an_output_to_record_is_brought_after_its_task_completed_and_collected_once_there():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("x")._replace(record=True)])
    h.submit(2, inputs=[temp("x")])
    h.succeed(1)
    assert 1 in h.completed   # the Future does not wait for the copy
    assert [f.name for f in h.fetches] == ["temp-x"]
    h.succeed(2)
    assert "temp-x" not in h.deleted.get("w1", [])   # still on its way to the record
    h.send(FileHome("temp-x"))
    assert "temp-x" in h.deleted["w1"]


def test_an_output_that_cannot_reach_the_record_is_collected_as_a_temp():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("x")._replace(record=True)])
    h.submit(2, inputs=[temp("x")])
    h.succeed(1)
    h.succeed(2)
    h.send(FileHomeFailed("temp-x", "disk full"))
    assert "temp-x" in h.deleted["w1"] and 1 not in h.failed
