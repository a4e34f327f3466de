"""A worker asked to leave: no new work, its unstarted tasks go elsewhere, its needed temps are copied off first."""
from tether.core import (FileHome, FileLostOn, FileReleased, FilesCached, Park, Replicate, Retired, Retracted,
                         WorkerLost, WorkerRetiring)

from .helpers import MANAGER, Harness, temp


def _of(kind, commands):
    return [c for c in commands if isinstance(c, kind)]


def test_a_temp_only_the_retiring_worker_holds_is_copied_off_before_it_goes():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1, sizes=500)
    h.worker("w2")
    out = h.send(WorkerRetiring("w1", "scaled in"))
    assert _of(Replicate, out) == [Replicate("w2", (("temp-x", "w1"),))]
    assert not _of(Retired, out), "it may not go before the copy arrived"
    out = h.send(FilesCached("w2", (("temp-x", 500),)))
    assert _of(Retired, out) == [Retired("w1", copied=1, lost=0)]
    h.lose("w1")
    # the consumer submitted later reads the copy where it is: nothing is made again
    h.submit(2, inputs=[temp("x")])
    assert h.where[2] == "w2" and h.sources[2] == {"temp-x": None}
    assert h.s.counters.reruns == 0


def test_the_copy_goes_to_the_worker_a_reader_is_placed_on():
    h = Harness(group_tasks=False)
    for w in ("w1", "w2", "w3"):
        h.worker(w)
    h.submit(1, outputs=[temp("x")])
    maker = h.where[1]
    h.succeed(1, sizes=10)
    h.submit(2, inputs=[temp("x")], outputs=[temp("y")])   # runs on the maker (the input is there)
    h.submit(3, outputs=[temp("big")])
    assert h.where[2] == maker
    h.succeed(3, sizes=10_000)   # the other workers differ in bytes held
    out = h.send(WorkerRetiring(maker))
    back = _of(Retracted, out)
    assert not back
    assert h.retracted[maker] == [2]
    h.send(Retracted(maker, returned=(2,)))
    reader = h.where[2]
    assert reader != maker
    copies = [c for c in h.log if isinstance(c, Replicate)]
    assert copies and all(c.worker in ("w1", "w2", "w3") and c.worker != maker for c in copies)


def test_no_new_work_goes_to_a_retiring_worker_and_its_queued_tasks_go_elsewhere():
    h = Harness(group_tasks=False)
    h.worker("w1", cores=1)
    h.submit(1)
    h.submit(2)   # queued behind 1 on w1
    assert h.queued_on("w1") == [1, 2]
    h.send(WorkerRetiring("w1"))
    assert h.retracted["w1"] == [1, 2]
    h.send(Retracted("w1", returned=(2,), started=(1,)))
    h.submit(3)
    assert h.queued_on("w1") == [1], "the retiring worker was given new work"
    h.worker("w2")
    assert h.where[2] == "w2" and h.where[3] == "w2"
    out = h.succeed(1)
    assert _of(Retired, out) == [Retired("w1", 0, 0)], "it runs nothing more: it may go"


def test_the_only_worker_retires_at_once_and_says_what_will_be_made_again():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    out = h.send(WorkerRetiring("w1"))
    assert _of(Retired, out) == [Retired("w1", copied=0, lost=1)]
    h.lose("w1")
    h.worker("w2")
    h.submit(2, inputs=[temp("x")])
    assert h.s.counters.reruns == 1 and h.where[1] == "w2"


def test_a_temp_nothing_needs_is_not_copied():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.worker("w2")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    h.send(FileReleased("temp-x"))
    out = h.send(WorkerRetiring(h.where[1]))
    assert not _of(Replicate, out)
    assert _of(Retired, out) == [Retired(h.where[1], 0, 0)]


def test_a_failed_copy_lets_the_worker_go_and_the_temp_is_made_again_when_needed():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    h.worker("w2")
    h.send(WorkerRetiring("w1"))
    out = h.send(FileLostOn("w2", "temp-x"))   # the copy could not be fetched
    assert _of(Retired, out) == [Retired("w1", copied=0, lost=1)]
    h.lose("w1")
    h.submit(2, inputs=[temp("x")])
    assert h.s.counters.reruns == 1


def test_a_retiring_worker_lost_meanwhile_is_no_longer_retired():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    h.worker("w2")
    h.send(WorkerRetiring("w1"))
    out = h.send(WorkerLost("w1"))
    assert not _of(Retired, out)
    assert not h.s._retiring
    # the copy on its way is dropped with its source; the temp is made again once needed
    h.send(FileLostOn("w2", "temp-x"))
    h.submit(2, inputs=[temp("x")])
    assert h.s.counters.reruns == 1


def test_a_group_committed_to_a_retiring_worker_continues_elsewhere():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("a")])
    h.submit(2, inputs=[temp("a")], outputs=[temp("b")])
    h.submit(3, inputs=[temp("b")], outputs=[temp("c")])
    assert h.where[1] == h.where[2] == h.where[3] == "w1"
    h.worker("w2")
    h.send(WorkerRetiring("w1"))
    h.send(Retracted("w1", returned=(2, 3), started=(1,)))
    h.succeed(1, worker="w1")
    # the members taken back run on w2, reading the head's temp from w1 while it still serves
    assert h.where[2] == "w2" and h.sources[2] == {"temp-a": "w1"}
    assert not [c for c in h.log if isinstance(c, Retired)], "a copy to w2 is under way"
    out = h.send(FilesCached("w2", (("temp-a", 10),)))
    assert _of(Retired, out) == [Retired("w1", copied=0, lost=0)]


def test_the_last_worker_leaves_its_temps_to_the_submitting_side_when_it_can_keep_them():
    h = Harness(group_tasks=False, park=True)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    out = h.send(WorkerRetiring("w1"))
    assert _of(Park, out) == [Park("temp-x", "w1")]
    assert not _of(Retired, out), "it may not go before the file is kept"
    out = h.send(FileHome("temp-x"))
    assert _of(Retired, out) == [Retired("w1", copied=0, lost=0, parked=1)]
    h.lose("w1")
    h.worker("w2")
    h.submit(2, inputs=[temp("x")])   # read from the submitting side: nothing made again
    assert h.where[2] == "w2" and h.sources[2] == {"temp-x": MANAGER}
    assert h.s.counters.reruns == 0


def test_a_park_that_fails_leaves_the_temp_to_be_made_again():
    h = Harness(group_tasks=False, park=True)
    h.worker("w1")
    h.submit(1, outputs=[temp("x")])
    h.succeed(1)
    h.send(WorkerRetiring("w1"))
    out = h.send(FileLostOn("w1", "temp-x"))   # the worker could not serve it
    assert _of(Retired, out) == [Retired("w1", copied=0, lost=0, parked=0)]
    h.lose("w1")
    h.worker("w2")
    h.submit(2, inputs=[temp("x")])
    assert h.s.counters.reruns == 1
