"""Group detection and commitment in the core: shapes from the seed and beyond."""
from tether.core import LOCAL

from .helpers import Harness, src, temp


def chain(h: Harness, first: int, length: int, prefix: str, **kw):
    h.submit(first, inputs=[src(prefix)], outputs=[temp(f"{prefix}{first}")], **kw)
    for i in range(first + 1, first + length):
        h.submit(i, inputs=[temp(f"{prefix}{i - 1}")], outputs=[temp(f"{prefix}{i}")], **kw)


def members(h: Harness, tid: int) -> list[int]:
    g = h.s.tasks[tid].group
    return [m.id for m in g.members] if g else [tid]


def test_chain_is_one_group_sent_whole_when_its_head_is_placed():
    h = Harness()
    chain(h, 1, 5, "c")
    assert members(h, 1) == [1, 2, 3, 4, 5]
    h.worker("w1")
    assert h.assigned == {"w1": [1, 2, 3, 4, 5]}
    # every member after the head finds its temp input locally
    assert all(h.sources[t] == {f"temp-c{t - 1}": LOCAL} for t in range(2, 6))
    # waiting members hold no cores: only the head counts
    assert h.s.workers["w1"].used_cores == 1


def test_chain_submitted_backwards_still_forms_one_group():
    h = Harness()
    for i in range(5, 1, -1):
        h.submit(i, inputs=[temp(f"c{i - 1}")], outputs=[temp(f"c{i}")])
    h.submit(1, outputs=[temp("c1")])
    assert members(h, 1) == [1, 2, 3, 4, 5]


def test_waiting_members_leave_other_cores_free():
    h = Harness()
    h.worker("w1", cores=2)
    chain(h, 1, 3, "a")
    h.submit(10, inputs=[src("x")])
    assert h.where[10] == "w1"   # the chain holds one core, the other takes the lone task


def test_parsldock_shape_is_one_group():
    # five members; later ones read several temps made by earlier ones
    h = Harness()
    h.submit(1, inputs=[src("receptor")], outputs=[temp("pdbqt")])
    h.submit(2, inputs=[temp("pdbqt")], outputs=[temp("ligand")])
    h.submit(3, inputs=[temp("pdbqt"), temp("ligand")], outputs=[temp("docked")])
    h.submit(4, inputs=[temp("docked"), temp("pdbqt")], outputs=[temp("scored")])
    h.submit(5, inputs=[temp("scored"), temp("ligand")], outputs=[temp("report")])
    assert members(h, 1) == [1, 2, 3, 4, 5]
    h.worker("w1")
    h.run_all()
    assert len(h.completed) == 5


def test_fan_out_first_consumer_continues_others_are_not_serialized():
    h = Harness()
    h.worker("w1")
    h.worker("w2")
    h.submit(1, outputs=[temp("x")])
    h.submit(2, inputs=[temp("x")])
    h.submit(3, inputs=[temp("x")])
    h.submit(4, inputs=[temp("x")])
    assert members(h, 1) == [1, 2]
    assert members(h, 3) == [3] and members(h, 4) == [4]
    h.succeed(1)
    # 2 continues on 1's worker; 3 and 4 are ready at once and go where they start first
    assert h.where[2] == h.where[1]
    other = "w2" if h.where[1] == "w1" else "w1"
    assert other in (h.where.get(3), h.where.get(4))


def test_fan_in_starts_its_own_group_placed_by_locality():
    h = Harness()
    h.worker("w1", cores=2)
    h.worker("w2", cores=2)
    h.submit(1, outputs=[temp("a")])
    h.submit(2, outputs=[temp("b")])
    h.submit(3, inputs=[temp("a"), temp("b")], outputs=[temp("c")])
    h.submit(4, inputs=[temp("c")])
    assert members(h, 3) == [3, 4]
    h.succeed(1, sizes=100)
    h.succeed(2, sizes=5_000_000)
    assert h.where[3] == h.where[2]   # goes to the bigger input


def test_diamond():
    h = Harness()
    h.worker("w1")
    h.submit(1, outputs=[temp("a")])
    h.submit(2, inputs=[temp("a")], outputs=[temp("b")])
    h.submit(3, inputs=[temp("a")], outputs=[temp("c")])
    h.submit(4, inputs=[temp("b"), temp("c")])
    assert members(h, 1) == [1, 2]
    assert members(h, 3) == [3] and members(h, 4) == [4]
    h.run_all()
    assert set(h.completed) == {1, 2, 3, 4}


def test_group_tasks_false_sends_one_task_at_a_time():
    h = Harness(group_tasks=False)
    h.worker("w1")
    chain(h, 1, 3, "c")
    assert h.assigned == {"w1": [1]}


def test_failed_member_is_retried_alone_on_the_same_worker():
    h = Harness()
    h.worker("w1")
    h.worker("w2")
    chain(h, 1, 4, "c", retries=2)
    w = h.where[1]
    h.succeed(1)
    h.fail(2)
    # only 2 is sent again, to the same worker; 3 and 4 still wait there
    assert h.assigned[w] == [1, 2, 3, 4, 2]
    assert h.queued_on(w) == [2, 3, 4]
    h.run_all()
    runs = h.assigned[w]
    assert {t: runs.count(t) for t in (1, 2, 3, 4)} == {1: 1, 2: 2, 3: 1, 4: 1}


def test_lost_worker_replans_unfinished_members_and_remakes_only_lost_temps():
    h = Harness()
    h.worker("w1")
    h.worker("w2")
    chain(h, 1, 4, "a")
    chain(h, 11, 4, "b")
    wa, wb = h.where[1], h.where[11]
    assert wa != wb
    h.succeed(1)
    h.succeed(2)
    h.succeed(11)
    h.lose(wa)
    # chain a's lost temps are remade by running 1 and 2 again; chain b is untouched
    assert h.s.counters.reruns == 2
    h.run_all()
    assert set(h.completed) == {1, 2, 3, 4, 11, 12, 13, 14}
    runs = h.assigned[wb]
    assert {t: runs.count(t) for t in (1, 2, 3, 4, 11, 12, 13, 14)} == dict.fromkeys(
        (1, 2, 3, 4, 11, 12, 13, 14), 1)
    # and it ran as one group again: sent whole when its head was placed
    assert runs[runs.index(1):runs.index(1) + 4] == [1, 2, 3, 4]


def test_group_no_worker_can_run_whole_is_split_where_members_fit():
    h = Harness()
    h.submit(1, outputs=[temp("x")], memory=1000)
    h.submit(2, inputs=[temp("x")], outputs=[temp("y")], memory=1000)
    h.submit(3, inputs=[temp("y")], cores=2)
    assert members(h, 1) == [1, 2, 3]
    h.worker("bigmem", cores=1, memory=4000)
    h.worker("twocore", cores=2, memory=100)
    h.run_all()
    assert h.where[1] == h.where[2] == "bigmem" and h.where[3] == "twocore"
    assert h.sources[3] == {"temp-y": "bigmem"}


def test_a_group_head_waits_for_a_free_core_instead_of_queueing():
    h = Harness()
    for base in (100, 200, 300):
        chain(h, base, 3, f"c{base}")
    h.worker("w1")
    h.worker("w2")
    # two chains start, one on each worker; the third waits for whichever frees first
    assert sorted(h.assigned) == ["w1", "w2"]
    assert all(len(tasks) == 3 for tasks in h.assigned.values())
    first = h.where[100]
    for i in (100, 101, 102):
        h.succeed(i)
    assert h.where[300] == first
