"""Members stuck behind a slow worker move to an idle one (fake clock: Tick events)."""
from tether.core import Retract, Retracted, TaskSucceeded, Tick

from .helpers import Harness, src, temp


def two_chains(h: Harness, length: int):
    for base, name in ((100, "a"), (200, "b")):
        h.submit(base + 1, inputs=[src(name)], outputs=[temp(f"{name}1")])
        for i in range(2, length + 1):
            h.submit(base + i, inputs=[temp(f"{name}{i - 1}")], outputs=[temp(f"{name}{i}")])


def finish(h: Harness, tid: int, start: float, end: float):
    t = h.s.tasks[tid]
    return h.send(TaskSucceeded(h.where[tid], tid, tuple((f.name, 1000) for f in t.outputs), start, end))


def setup(step_fast: float, step_slow: float, length: int = 10):
    h = Harness()
    h.worker("fast")
    h.worker("slow")
    two_chains(h, length)
    on_fast = 100 if h.where[101] == "fast" else 200
    on_slow = 300 - on_fast
    # the fast worker runs its whole chain; the slow one finishes only its first member
    for i in range(1, length + 1):
        finish(h, on_fast + i, (i - 1) * step_fast, i * step_fast)
    finish(h, on_slow + 1, 0.0, step_slow)
    return h, on_fast, on_slow


def test_members_not_started_move_from_slow_to_idle_worker():
    h, _, slow = setup(step_fast=1.0, step_slow=10.0)
    commands = h.send(Tick(10.5))
    retracts = [c for c in commands if isinstance(c, Retract)]
    # member 2 runs on the slow worker; 3..10 have not started and are taken back
    assert retracts == [Retract("slow", tuple(slow + i for i in range(3, 11)))]
    h.send(Retracted("slow", tuple(slow + i for i in range(3, 11))))
    assert h.s.counters.moves == 8
    # once member 2 ends on the slow worker, 3 starts on the fast one with one peer transfer
    finish(h, slow + 2, 10.0, 20.0)
    assert all(h.where[slow + i] == "fast" for i in range(3, 11))
    assert h.sources[slow + 3] == {f"temp-{'a' if slow == 100 else 'b'}2": "slow"}
    h.run_all()
    assert len(h.completed) == 20


def test_no_move_between_equally_fast_workers():
    h, _, _ = setup(step_fast=1.0, step_slow=1.0)
    commands = h.send(Tick(1.2))
    assert not [c for c in commands if isinstance(c, Retract)]


def test_a_member_already_started_is_not_moved():
    h, _, slow = setup(step_fast=1.0, step_slow=10.0)
    h.send(Tick(10.5))
    # the worker had started member 3 already: it keeps it, the rest move
    h.send(Retracted("slow", tuple(slow + i for i in range(4, 11)), started=(slow + 3,)))
    finish(h, slow + 2, 10.0, 20.0)
    assert h.where[slow + 3] == "slow"
    finish(h, slow + 3, 20.0, 30.0)
    assert all(h.where[slow + i] == "fast" for i in range(4, 11))
    h.run_all()
    assert len(h.completed) == 20


def test_target_lost_before_the_answer_plans_the_members_again():
    h, _, slow = setup(step_fast=1.0, step_slow=10.0)
    h.send(Tick(10.5))
    h.lose("fast")
    h.send(Retracted("slow", tuple(slow + i for i in range(3, 11))))
    h.run_all()
    assert len(h.completed) == 20
    assert all(h.where[slow + i] == "slow" for i in range(3, 11))


def test_a_consumer_of_a_tail_being_moved_reads_it_where_it_is_made():
    h, _, slow = setup(step_fast=1.0, step_slow=10.0)
    name = "a" if slow == 100 else "b"
    h.send(Tick(10.5))                      # 3..10 are being taken back from the slow worker
    h.submit(slow + 11, inputs=[temp(f"{name}10")], outputs=[temp(f"{name}11")])   # before the answer
    h.send(Retracted("slow", tuple(slow + i for i in range(3, 11))))
    finish(h, slow + 2, 10.0, 20.0)
    h.run_all()
    assert len(h.completed) == 21
    made_on = h.where[slow + 10]
    assert made_on == "fast"
    # slow+11 either runs where temp-10 is made, or is told to fetch it from there
    assert h.where[slow + 11] == made_on or h.sources[slow + 11][f"temp-{name}10"] == made_on


def test_a_member_that_ends_before_the_answer_to_its_move_is_no_longer_being_moved():
    # found by the stateful test: the slow worker ended member 3 before the retraction reached it;
    # the core kept 3 among the tasks being moved though it was done (and a cancelled one too)
    from tether.core import TaskCancelled
    h, _, slow = setup(step_fast=1.0, step_slow=10.0)
    h.send(Tick(10.5))
    finish(h, slow + 2, 10.0, 20.0)
    finish(h, slow + 3, 20.0, 30.0)        # validated after each step: 3 is DONE, not being moved
    assert slow + 3 not in h.s.moves
    h.send(TaskCancelled(slow + 10))
    assert slow + 10 not in h.s.moves
    h.send(Retracted("slow", tuple(slow + i for i in range(4, 10)), started=(slow + 3, slow + 10)))
    h.run_all()
    assert len(h.completed) == 19 and h.failed[slow + 10].reason == "cancelled"


def test_members_moved_to_a_worker_go_elsewhere_if_a_member_joining_since_does_not_fit_there():
    # found by the stateful test: members were moved to a one-core worker; a two-core consumer joined
    # their group before its head was placed, and the whole group went to the one-core worker, where
    # the two-core task could never start
    h = Harness()
    h.worker("big", cores=2)
    h.submit(1, inputs=[src("a")], outputs=[temp("a1")])
    h.submit(2, inputs=[temp("a1")], outputs=[temp("a2")])
    h.submit(3, inputs=[temp("a2")], outputs=[temp("a3")])
    assert h.where[1] == h.where[2] == h.where[3] == "big"
    h.worker("small", cores=1)
    s = h.s
    s.move([s.tasks[2], s.tasks[3]], s.workers["big"], s.workers["small"])
    h.send(Tick(1.0))
    h.send(Retracted("big", (2, 3)))
    h.submit(4, inputs=[temp("a3")], outputs=[temp("a4")], cores=2)   # joins 2 and 3 before they are placed
    h.succeed(1)
    assert h.where[4] == "big"           # validated on the way: no task sits where it cannot fit
    h.run_all()
    assert set(h.completed) == {1, 2, 3, 4}
