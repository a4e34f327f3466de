"""The core alone: GPUs, proportional shares, categories, priorities, cancel by tag, blocked hosts.

Each step goes through the Harness, which checks Scheduler.validate() after it.
"""
from __future__ import annotations

from tether.core import (Assign, CategorySet, HostBlocked, HostUnblocked, Resources, Retract, Retracted, Stop,
                         TagCancelled, TaskFailedOn, TaskSucceeded, WorkerJoined)

from .helpers import Harness, temp

MB = 1 << 20


def held(h: Harness, tid: int) -> Resources | None:
    """What the last assignment of tid said it holds."""
    for c in reversed(h.log):
        if isinstance(c, Assign):
            for a in c.tasks:
                if a.task == tid:
                    return a.resources
    raise AssertionError(f"task {tid} was never assigned")


def measured(**options) -> Harness:
    """A harness whose workers hold no queue beyond their cores (a task was measured taking a second)."""
    h = Harness(queue_time=0.0, **options)
    h.worker("warm", 1)
    h.submit(999)
    h.succeed(999)
    h.lose("warm")
    return h


# ------------------------------------------------------------ GPUs

def test_one_gpu_tasks_share_a_two_gpu_worker_and_a_two_gpu_task_waits_for_both():
    h = measured()
    h.worker("g", 2, gpus=2)
    h.submit(1, gpus=1)
    h.submit(2, gpus=1)
    h.submit(3, gpus=2)
    assert h.assigned["g"] == [1, 2]
    assert held(h, 1).gpus == held(h, 2).gpus == 1
    h.succeed(1)
    assert 3 not in h.assigned["g"]   # one GPU is free, not two
    h.succeed(2)
    assert h.assigned["g"][-1] == 3 and held(h, 3) == Resources(2, 0, 0, 2)


def test_a_gpu_task_goes_only_where_there_are_gpus_enough():
    h = Harness()
    h.worker("cpu", 8)
    h.worker("one", 2, gpus=1)
    h.submit(1, gpus=2)
    assert h.where.get(1) is None
    h.worker("two", 2, gpus=2)
    assert h.where[1] == "two"
    assert held(h, 1).cores == 2   # two of two GPUs: the whole worker's share


def test_tasks_without_gpus_are_given_none():
    h = Harness()
    h.worker("g", 4, memory=4000, gpus=2)
    h.submit(1, memory=4000)
    assert held(h, 1) == Resources(4, 4000, 0, 0)


# ------------------------------------------------------------ proportional shares

def test_unstated_resources_follow_the_stated_share():
    h = Harness()
    h.worker("w", 4, memory=4000, disk=8000)
    h.submit(1, cores=1)
    h.submit(2, memory=2000)
    h.submit(3, disk=6000)
    assert held(h, 1) == Resources(1, 1000, 2000, 0)
    assert held(h, 2) == Resources(2, 2000, 4000, 0)
    assert held(h, 3) == Resources(3, 3000, 6000, 0)   # three quarters: three cores


def test_a_task_stating_nothing_takes_one_core_and_its_share_unwatched():
    h = Harness()
    h.worker("w", 4, memory=4000, disk=8000)
    h.submit(1)
    assert held(h, 1) is None   # one core, nothing watched on the worker
    w = h.s.workers["w"]
    assert (w.used_cores, w.used_memory, w.used_disk) == (1, 1000, 2000)
    h.succeed(1)
    assert (w.used_cores, w.used_memory, w.used_disk) == (0, 0, 0)


def test_shares_decide_how_many_run_at_once():
    h = measured()
    h.worker("w", 4, memory=4000)
    for tid in (1, 2, 3):
        h.submit(tid, memory=2000)
    assert h.assigned["w"] == [1, 2]   # two halves of the memory: all four cores
    h.submit(4)                        # one core and a quarter: no room either
    assert h.assigned["w"] == [1, 2]
    h.succeed(1)
    assert h.assigned["w"] == [1, 2, 3]


def test_a_task_returned_to_the_pool_asks_again_for_what_it_states():
    h = Harness()
    h.worker("big", 8, memory=8000)
    h.submit(1, memory=2000)
    assert held(h, 1) == Resources(2, 2000, 0, 0)
    h.lose("big")
    t = h.s.tasks[1]
    assert (t.cores, t.memory, t.worker) == (1, 2000, None)
    h.worker("small", 2, memory=2000)
    assert held(h, 1) == Resources(2, 2000, 0, 0)   # the whole of the smaller worker


def test_a_task_larger_than_every_worker_waits():
    h = Harness()
    h.worker("w", 4, memory=1000)
    h.submit(1, memory=2000)
    assert h.where.get(1) is None


# ------------------------------------------------------------ categories

def test_a_max_category_learns_its_peak_and_packs_later_tasks():
    h = measured()
    h.send(CategorySet("sim", mode="max"))
    h.worker("w", 4, memory=4000, disk=4000)
    for tid in (1, 2, 3):
        h.submit(tid, category="sim")
    assert h.assigned["w"] == [1] and held(h, 1) == Resources(4, 4000, 4000, 0)   # a whole worker at first
    h.send(TaskSucceeded("w", 1, (), 0.0, 1.0, (100 * MB, 1 * MB)))
    assert h.assigned["w"] == [1, 2, 3]
    assert held(h, 2) == Resources(1, 125, 11, 0)   # a quarter more memory; at least 10 MB more disk
    c = h.s.categories["sim"]
    assert (c.samples, c.peak_memory) == (1, 100 * MB)


def test_a_task_that_outgrows_what_was_learnt_runs_once_more_with_the_whole_allowance():
    h = measured()
    h.send(CategorySet("sim", memory=3000, mode="max"))
    h.worker("w", 4, memory=4000)
    h.submit(1, category="sim")
    assert held(h, 1) == Resources(3, 3000, 0, 0)   # what the category states, cores in proportion
    h.send(TaskSucceeded("w", 1, (), 0.0, 1.0, (20 * MB, 0)))
    h.submit(2, category="sim")
    assert held(h, 2) == Resources(1, 30, 0, 0)   # 10 MB over the peak; no disk measured, none stated
    h.fail(2, "memory", message="over")
    assert held(h, 2) == Resources(3, 3000, 0, 0) and h.s.tasks[2].attempts == 2
    assert h.s.counters.resized == 1 and 2 not in h.failed
    h.fail(2, "memory", message="over again")   # with the whole allowance: its own failure now
    assert h.failed[2].reason == "memory"


def test_a_fixed_category_gives_what_it_states_and_a_task_s_own_statement_wins():
    h = Harness()
    h.send(CategorySet("io", cores=2, disk=100, mode="fixed"))
    h.worker("w", 8, memory=8000, disk=800)
    h.submit(1, category="io")
    h.submit(2, category="io", cores=1)
    assert held(h, 1) == Resources(2, 2000, 100, 0)
    assert held(h, 2) == Resources(1, 1000, 100, 0)
    h.send(TaskSucceeded("w", 1, (), 0.0, 1.0, (5 * MB, 0)))
    h.submit(3, category="io")
    assert held(h, 3) == Resources(2, 2000, 100, 0)   # fixed: nothing learnt


# ------------------------------------------------------------ priorities

def test_a_higher_priority_task_takes_the_queue_place_of_a_lower_one():
    h = Harness()   # nothing measured yet: one task may wait behind each core
    h.worker("w", 1)
    h.submit(1)
    h.submit(2, priority=0)     # queued on the worker behind task 1
    h.submit(3, priority=5)     # no room: task 2 is taken back for it
    assert h.assigned["w"] == [1, 2] and h.retracted["w"] == [2]
    h.send(Retracted("w", (2,)))
    assert h.assigned["w"] == [1, 2, 3]
    h.succeed(1)
    h.succeed(3)
    assert h.assigned["w"] == [1, 2, 3, 2]


def test_a_retried_task_keeps_its_priority():
    h = measured()
    h.worker("w", 1)
    h.submit(1, priority=3, retries=1)
    h.submit(2, priority=1)
    h.submit(3, priority=2)
    h.fail(1, "exit")
    assert h.assigned["w"] == [1, 1]
    h.succeed(1)
    assert h.assigned["w"] == [1, 1, 3]
    h.succeed(3)
    assert h.assigned["w"] == [1, 1, 3, 2]


def test_equal_priorities_go_in_submission_order():
    h = measured()
    h.worker("w", 1)
    for tid in (5, 6, 7):
        h.submit(tid, priority=1)
    for tid in (5, 6):
        h.succeed(tid)
    assert h.assigned["w"] == [5, 6, 7]


# ------------------------------------------------------------ cancel by tag

def test_cancelling_a_tag_stops_its_tasks_and_fails_what_reads_them():
    h = Harness()
    h.worker("w", 1)
    h.submit(1, outputs=[temp("a")], tag="batch")
    h.submit(2, tag="batch")
    h.submit(3, inputs=[temp("a")])
    h.submit(4, tag="other")
    assert h.where[1] == "w"
    h.send(TagCancelled("batch"))
    assert {h.failed[1].reason, h.failed[2].reason} == {"cancelled"}
    assert h.failed[3].reason == "dependency" and h.failed[3].cause == 1
    assert 4 not in h.failed
    stops = [c for c in h.log if isinstance(c, Stop)]
    assert stops and 1 in stops[0].tasks and stops[0].worker == "w"
    assert h.s.counters.cancelled == 2
    h.send(TaskFailedOn("w", 1, "cancelled"))   # its report when it was stopped: nothing more happens
    assert h.s.counters.cancelled == 2


# ------------------------------------------------------------ blocked hosts

def test_a_blocked_host_takes_no_new_work_and_its_files_stay_readable():
    h = Harness()
    h.send(WorkerJoined("a1", 1, host="10.0.0.1"))
    h.submit(1, outputs=[temp("x")])
    assert h.where[1] == "a1"
    h.submit(2, inputs=[temp("x")])        # continues task 1's group on a1
    h.send(HostBlocked("10.0.0.1"))
    assert 2 in h.retracted.get("a1", [])  # not started there: taken back
    h.send(Retracted("a1", (2,)))
    h.succeed(1, worker="a1")              # what ran there finishes
    h.send(WorkerJoined("a2", 1, host="10.0.0.1"))   # joins a blocked host: no work either
    h.send(WorkerJoined("b", 2, host="10.0.0.2"))
    assert h.where[2] == "b" and h.sources[2]["temp-x"] == "a1"   # read from the blocked worker
    h.submit(3)
    assert h.where[3] not in ("a1", "a2")
    h.send(HostUnblocked("10.0.0.1"))
    h.submit(4)
    assert h.where[4] in ("a1", "a2")
    assert not any(isinstance(c, Retract) and c.worker == "a2" for c in h.log)
