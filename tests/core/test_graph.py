"""The whole graph in the core: the order of ready work, partners placed together, pruning, bytes held."""
import pytest

from tether.core import LOCAL, Assign, FileSpec, Scheduler, TaskSubmitted, Tick
from tether import Manager

from .helpers import Harness, out, src, temp

LOCAL_SOURCES = {LOCAL}   # an input already in the worker's cache


def warm(h: Harness, *workers: str) -> None:
    """Workers that have each run a task of 1 s: the core then queues nothing behind a busy core."""
    for i, w in enumerate(workers):
        h.worker(w)
        h.submit(900 + i, [src(f"warm{i}")])
        h.succeed(900 + i, duration=1.0)


def run_in_order(h: Harness, worker: str) -> list[int]:
    """Succeed whatever the worker is given until nothing is left; the order it was given work in."""
    done = []
    while True:
        todo = [t for t in h.queued_on(worker)]
        if not todo:
            return done
        for t in todo:
            h.succeed(t)
            done.append(t)


# a1 -> a2 -> a3, b1 alone, c1 -> c2: ready at once are a1, b1 and c1
GRAPH = [TaskSubmitted(1, (src("a"),), (temp("A1"),)), TaskSubmitted(2, (temp("A1"),), (temp("A2"),)),
         TaskSubmitted(3, (temp("A2"),), (out("A3"),)), TaskSubmitted(4, (src("b"),), (out("B1"),)),
         TaskSubmitted(5, (src("c"),), (temp("C1"),)), TaskSubmitted(6, (temp("C1"),), (out("C2"),))]


@pytest.mark.parametrize("order, expected", [
    ("critical", [1, 2, 5, 3, 4, 6]),   # the longest path still to run first
    ("depth", [1, 2, 3, 4, 5, 6]),      # finish a branch before starting another
    ("breadth", [1, 4, 5, 2, 6, 3]),    # level by level
])
def test_ready_tasks_go_in_the_order_asked_for(order, expected):
    h = Harness(placement="none", order=order)
    warm(h, "w1")
    h.send(*GRAPH)   # submitted together: heights are known before anything is placed
    assert run_in_order(h, "w1") == expected


def test_heights_are_known_when_consumers_come_first():
    h = Harness(placement="none", order="critical")
    warm(h, "w1")
    h.send(*reversed(GRAPH))   # each producer after the tasks that read what it makes
    assert run_in_order(h, "w1") == [1, 2, 5, 3, 4, 6]


def partners(placement: str) -> Harness:
    """Two workers; A1 and A2 meet in X, B1 and B2 in Y; submitted A1, A2, B1, B2."""
    h = Harness(placement=placement)
    warm(h, "w1", "w2")
    h.send(*[TaskSubmitted(i, (src(f"p{i}"),), (temp(f"P{i}"),)) for i in (1, 2, 3, 4)],
           TaskSubmitted(5, (temp("P1"), temp("P2")), (out("X"),)),
           TaskSubmitted(6, (temp("P3"), temp("P4")), (out("Y"),)))
    while True:   # tasks take the same time: the first given out ends first
        running = {t for w in ("w1", "w2") for t in h.queued_on(w)}
        if not running:
            break
        first = next(a.task for c in h.log if isinstance(c, Assign) for a in c.tasks if a.task in running)
        h.succeed(first, sizes=1_000_000)
    return h


def test_files_that_meet_later_are_made_on_one_worker():
    h = partners("graph")
    assert h.where[1] == h.where[2] and h.where[3] == h.where[4] and h.where[1] != h.where[3]
    for consumer in (5, 6):   # each reads both its inputs where they are, with no transfer
        assert set(h.sources[consumer].values()) <= LOCAL_SOURCES


def test_without_the_graph_the_same_files_cross_between_workers():
    h = partners("none")
    moved = [c for c in (5, 6) if not set(h.sources[c].values()) <= LOCAL_SOURCES]
    assert moved, "placed one task at a time, the producers spread and a consumer fetches from a peer"


def chain(prune) -> Harness:
    """t1 -> T1 -> t2 -> T2 -> t3 -> T3 -> t4, on one worker."""
    h = Harness(placement="none", prune=prune)
    warm(h, "w1")
    h.send(TaskSubmitted(1, (src("a"),), (temp("T1"),)), TaskSubmitted(2, (temp("T1"),), (temp("T2"),)),
           TaskSubmitted(3, (temp("T2"),), (temp("T3"),)), TaskSubmitted(4, (temp("T3"),), (out("end"),)))
    return h


@pytest.mark.parametrize("prune, t1_goes_after", [(0, 2), (1, 3), (2, 4)])
def test_a_temp_waits_for_the_tasks_below_its_readers(prune, t1_goes_after):
    h = chain(prune)
    for tid in (1, 2, 3, 4):
        h.succeed(tid)
        gone = "temp-T1" in h.deleted.get("w1", [])
        assert gone == (tid >= t1_goes_after), f"after task {tid}, prune={prune}"


def test_without_pruning_temps_stay_until_released():
    from tether.core import FileReleased
    h = chain(None)
    for tid in (1, 2, 3, 4):
        h.succeed(tid)
    assert not h.deleted.get("w1"), "nothing is deleted while the program may still name it"
    assert h.s.workers["w1"].held == 4 * 10   # three temps and the output on its way home
    h.send(FileReleased("temp-T2"))
    assert h.deleted["w1"] == ["temp-T2"]
    assert h.s.workers["w1"].held == 3 * 10


def test_each_worker_counts_the_bytes_it_holds_and_its_peak():
    peaks = {}
    for prune in (0, None):
        h = chain(prune)
        w = h.s.workers["w1"]
        held = []
        for tid in (1, 2, 3, 4):
            h.succeed(tid)
            held.append(w.held)
        peaks[prune] = w.peak
        # pruned: one temp of 10 B at a time, then the output on its way home; kept: all of them
        assert held == ([10, 10, 10, 10] if prune == 0 else [10, 20, 30, 40])
    assert peaks == {0: 10, None: 40}


@pytest.mark.parametrize("option, value", [("placement", "nearest"), ("order", "random"), ("prune", -1),
                                           ("prune", 1.5)])
def test_a_bad_option_is_named(option, value):
    with pytest.raises(ValueError, match=option):
        Scheduler(**{option: value})
    with pytest.raises(ValueError, match=option):
        Manager(0, **{option: value})


# ------------------------------------------------------------ a large input: wait for its holder, or copy it

DB = 625_000_000   # 5 s to move at the core's 125 MB/s; the warmed workers' tasks take 1 s


def readers(h: Harness, ids) -> None:
    h.send(*[TaskSubmitted(i, (src("db", size=DB), src(f"q{i}")), (out(f"r{i}"),)) for i in ids])


@pytest.mark.parametrize("placement", ["graph", "none"])
def test_readers_of_a_large_input_wait_for_its_holder_while_it_keeps_up(placement):
    h = Harness(placement=placement)
    warm(h, "w1", "w2")
    readers(h, (1, 2, 3))    # the holder's wait (3 tasks of 1 s) is shorter than a copy (5 s)
    assert h.queued_on("w1") == [1] and h.queued_on("w2") == []
    order = run_in_order(h, "w1")
    assert order == [1, 2, 3] and "w2" not in {h.where[i] for i in (1, 2, 3)}


@pytest.mark.parametrize("placement", ["graph", "none"])
def test_a_second_copy_is_made_once_the_queue_for_the_holder_is_longer_than_the_copy(placement):
    h = Harness(placement=placement)
    warm(h, "w1", "w2")
    readers(h, range(1, 11))   # ten of 1 s each: waiting for w1 would take longer than the copy
    assert h.queued_on("w1") == [1] and h.queued_on("w2") == [2], "w2 copies the input at once"
    h.run_all()
    assert {h.where[i] for i in range(1, 11)} == {"w1", "w2"}


def test_a_holder_stuck_on_a_long_task_is_not_waited_for():
    h = Harness()
    warm(h, "w1", "w2")
    readers(h, (1, 2))
    assert h.queued_on("w1") == [1] and h.queued_on("w2") == []
    h.send(Tick(h.clock + 0.5))     # task 1 has just been sent: w2 still leaves task 2 to w1
    assert h.queued_on("w2") == []
    h.send(Tick(h.clock + 10.0))    # 10 s since: w1 looks busy for as long again, longer than a copy
    assert h.queued_on("w2") == [2]


def test_small_inputs_are_not_waited_for():
    h = Harness()
    warm(h, "w1", "w2")
    h.send(*[TaskSubmitted(i, (src("small", size=1_000_000),), (out(f"s{i}"),)) for i in (1, 2)])
    assert h.queued_on("w1") == [1] and h.queued_on("w2") == [2]   # a copy takes less than a task

def first_by_definition(s: Scheduler, w, guess: float):
    """The ready task a free worker takes, as whole-graph placement defines it: among the first
    CANDIDATES of each ready queue that it can run now, the first by (priority, rank), then by most
    graph.affinity to it, then by id, every affinity worked out afresh (those left to a worker holding
    their large input aside)."""
    from tether.core import graph, placement
    from tether.core.lifecycle import FINISHED, TaskState
    best, best_key = None, None
    for heap in s._ready.values():
        for entry in heap[:graph.CANDIDATES]:
            t = s.tasks.get(entry[-1])
            if t is None or t.state is not TaskState.READY or not placement.has_room(w, t, 0):
                continue
            g = t.group
            if g is not None and (g.worker is not None or g.target is not None
                                  or not all(w.fits(m) for m in g.members if m.state not in FINISHED)):
                continue
            if t.avoid and w.id in t.avoid and s._avoiding(t) is not None:
                continue
            if s._leave_for_holder(t, w):
                continue
            key = (entry[0], entry[1], -graph.affinity(t, w, guess), t.id)
            if best_key is None or key < best_key:
                best, best_key = t, key
    return best, best_key


def test_a_free_worker_takes_the_task_the_definition_names():
    """The core scores only candidates tied on priority and rank, and shares sums between those with the
    same partners: each pick of a simulated run is the one the plain definition gives."""
    from tether.simulate import Cluster
    c = Cluster(latency=0.01)
    s = c.core
    picks, ties = [], 0
    chosen = s._pick

    def checked(w, guess):
        nonlocal ties
        expected, key = first_by_definition(s, w, guess)
        got = chosen(w, guess)
        assert got is expected, f"worker {w.id} took {got}, the definition says {expected}"
        picks.append(got)
        ties += key is not None and key[2] != 0.0
        return got

    s._pick = checked
    for _ in range(4):
        c.add_worker()
    source = FileSpec("file-s", size=1000, source=True)
    made = [FileSpec(f"temp-p{i}") for i in range(24)]
    for i, f in enumerate(made):   # two priorities, sizes and run times of a few kinds
        c.submit(TaskSubmitted(i + 1, (source,), (f,), priority=i % 5 == 0), duration=0.4 + i % 3 * 0.15,
                 sizes={f.name: 1000 * (1 + i % 4)})
    pairs = [FileSpec(f"temp-d{j}") for j in range(72)]
    for j, f in enumerate(pairs):   # each reads two of them; all meet in one reader wider than PARTNER_READS
        c.submit(TaskSubmitted(100 + j, (made[j % 24], made[(j * 7 + 3) % 24]), (f,)), duration=0.3,
                 sizes={f.name: 500})
    c.submit(TaskSubmitted(200, tuple(pairs), (FileSpec("out-all", home=True),)), duration=0.2)
    c.run()
    assert len(c.successes) == 97
    assert len(picks) >= 20 and ties >= 5, (len(picks), ties)
