"""Histories the stateful test (test_stateful.py) found, replayed on the simulated cluster.

Each test is one history, cut down to the steps that matter, and named
after what went wrong; each failed before its fix.
"""
from __future__ import annotations

from tether.core import FileSpec, Scheduler, TaskSubmitted
from tether.simulate import Cluster

SRC0 = FileSpec("file-0", size=2_000, source=True)
SRC1 = FileSpec("file-1", size=2_000, source=True)


def cluster() -> Cluster:
    c = Cluster(Scheduler(system_retries=2, blocklist_after=3, blocklist_seconds=2.0), latency=0.01, bandwidth=1e6)
    c.add_worker(cores=2)
    c.add_worker(cores=2)
    return c


def settled(c: Cluster) -> dict[int, str]:
    return {t: type(o[0]).__name__ if len(o) == 1 else f"{len(o)} outcomes" for t, o in c.outcomes.items()}


def test_a_task_sent_where_an_input_was_just_lost_does_not_wait_for_it_for_ever():
    # w1 lost file-0 from its cache and said so; before the news arrived, the core sent task 3 there
    # naming w1's own cache as file-0's source, and w1 waited for it for ever
    c = cluster()
    c.submit(TaskSubmitted(1, (SRC0,), (FileSpec("temp-a"),)), duration=0.05)
    c.submit(TaskSubmitted(2, (FileSpec("temp-a"),), (FileSpec("temp-b"),)), duration=0.05)
    c.run()
    assert c.lose_file("w1", "file-0")
    c.submit(TaskSubmitted(3, (SRC0, SRC1), (FileSpec("temp-c"),)), duration=0.05)
    c.run()
    c.validate()
    assert settled(c) == {1: "Complete", 2: "Complete", 3: "Complete"}
    assert c.quiet() and c.core.pending_count() == 0


def test_a_wanted_file_fetched_from_a_worker_lost_meanwhile_comes_from_another_copy():
    # the manager was fetching a wanted temp from w1 when w1 was lost; w2 held a copy, so the core
    # planned nothing again, and the user waited for ever
    c = Cluster(Scheduler(group_tasks=False), latency=0.01, bandwidth=1e6)
    c.add_worker(cores=1)
    c.add_worker(cores=2)
    kept = FileSpec("temp-a", keep=True)
    c.submit(TaskSubmitted(1, (SRC0,), (kept,)), duration=0.05)
    c.submit(TaskSubmitted(2, (FileSpec("temp-a"),), (FileSpec("temp-b"),), cores=2), duration=0.05)
    c.run()
    assert {w for w in ("w1", "w2") if "temp-a" in c.workers[w].state.present} == {"w1", "w2"}
    c.want("temp-a")
    c.flush()           # the core asks w1 (the first holder)
    c.lose_worker("w1")
    c.run()
    assert c.wants == {"temp-a": "ok"}
    assert settled(c) == {1: "Complete", 2: "Complete"}


def test_a_task_run_again_waits_where_its_input_is_made_not_where_its_old_group_ran():
    # a finished task (3) ran again to remake a lost temp for a new consumer (6); its old group was
    # still committed to w1, so 3 was sent there at once, waiting for an input made by another group
    # (1, 2) that w1 was also running; when 1 failed there for a system reason, 1 and 2 moved to w2
    # and 3 waited on w1 for ever for a file made on w2
    c = Cluster(latency=0.01, bandwidth=1e6)
    c.add_worker(cores=2)
    c.add_worker(cores=2)
    temp = [FileSpec(f"temp-{n}") for n in "abce"]
    a, b, cc, e = temp
    c.submit(TaskSubmitted(1, (SRC0,), (a,)), duration=0.1)
    c.submit(TaskSubmitted(2, (a,), (b,)), duration=0.1)
    c.submit(TaskSubmitted(5, (b,), (e,)), duration=0.1)     # continues 1 and 2
    c.submit(TaskSubmitted(3, (b,), (cc,)), duration=0.1)    # a fan-out: a group of its own
    c.submit(TaskSubmitted(4, (cc, e), (FileSpec("out-d", home=True),)), duration=0.1)
    c.run()
    assert all(c.core.files[f.name].state.name == "GONE" for f in temp)
    c.submit(TaskSubmitted(6, (cc,), (FileSpec("out-f", home=True),)), duration=0.1)   # 3, 2, 1 run again
    c.run(until=c.now + 0.05)
    assert c.running() == [("w1", 1)]
    c.end_run(1, "worker")
    c.run()
    c.validate()
    assert settled(c) == {t: "Complete" for t in (1, 2, 3, 4, 5, 6)}
    assert c.quiet() and c.core.pending_count() == 0
