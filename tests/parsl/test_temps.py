"""The temp bookkeeping behind look-ahead, driven directly: no Parsl run, no workers.

Launches are recorded instead of sent; each test says what tether would
report back (done, failed, or not run because an input died).
"""
from __future__ import annotations

import itertools
from concurrent.futures import Future

import pytest

from tether.parsl.temps import DEAD, MADE, NONE, PENDING, Job, TempBook


class Bench:
    """A TempBook whose launches are recorded, with tether Files stood in for by numbered names."""

    def __init__(self, refuse: set[int] = frozenset()):
        self.serial = itertools.count(1)
        self.launched: list[tuple[int, dict, dict]] = []
        self.refuse = refuse
        self.book = TempBook(lambda: f"file{next(self.serial)}", self.launch)
        self.ids = itertools.count(1)

    def launch(self, job, inputs, outputs):
        if job.id in self.refuse:
            raise FileNotFoundError(f"input of job {job.id} is missing")
        self.launched.append((job.id, dict(inputs), dict(outputs)))
        return Future()

    def job(self, reads=(), makes=()) -> Job:
        return Job(next(self.ids), {r: self.book.slot(r) for r in reads}, {m: self.book.slot(m) for m in makes})

    def launches_of(self, job: Job) -> list[tuple[dict, dict]]:
        return [(i, o) for jid, i, o in self.launched if jid == job.id]


def test_consumer_waits_in_the_executor_until_its_producer_is_submitted():
    b = Bench()
    consumer = b.job(reads=["t"])
    assert b.book.add(consumer).failures == []
    assert consumer.state == "waiting" and not b.launched
    producer = b.job(makes=["t"])
    b.book.add(producer)
    # both go to tether now, the consumer reading the file the producer will make
    (_, made), = b.launches_of(producer)
    (read, _), = b.launches_of(consumer)
    assert read == {"t": made["t"]} and b.book.slot("t").state == PENDING


def test_consumer_of_a_pending_temp_is_launched_at_once_and_not_outstanding():
    b = Bench()
    producer = b.job(makes=["t"])
    consumer = b.job(reads=["t"])
    b.book.add(producer)
    b.book.add(consumer)
    assert consumer.state == "running"
    assert b.book.outstanding() == 1   # only the producer can run now
    b.book.finished(producer, producer.task, "ok")
    assert b.book.slot("t").state == MADE
    assert b.book.outstanding() == 1   # now the consumer can


def test_a_failed_attempt_holds_consumers_until_the_retry_makes_a_fresh_file():
    b = Bench()
    a1 = b.job(makes=["t"])
    c = b.job(reads=["t"])
    b.book.add(a1)
    b.book.add(c)
    first_file = b.book.slot("t").file
    b.book.finished(a1, a1.task, "failed")
    assert b.book.slot("t").state == DEAD
    # tether fails the held consumer: it waits, it is not failed
    out = b.book.finished(c, c.task, "dependency", RuntimeError("input died"))
    assert out.failures == [] and c.state == "waiting"
    a2 = b.job(makes=["t"])                      # Parsl's retry of the producer
    b.book.add(a2)
    (_, made), = b.launches_of(a2)
    assert made["t"] != first_file
    assert [r for r, _ in b.launches_of(c)] == [{"t": first_file}, {"t": made["t"]}]
    assert c.state == "running"


def test_retry_arriving_before_the_consumer_is_reported_relaunches_it_at_once():
    b = Bench()
    a1, c = b.job(makes=["t"]), b.job(reads=["t"])
    b.book.add(a1)
    b.book.add(c)
    b.book.finished(a1, a1.task, "failed")
    a2 = b.job(makes=["t"])
    b.book.add(a2)                               # the retry comes first
    b.book.finished(c, c.task, "dependency", RuntimeError("input died"))
    assert len(b.launches_of(c)) == 2 and c.state == "running"
    assert b.launches_of(c)[1][0]["t"] == b.book.slot("t").file


def test_a_chain_is_carried_down_when_its_head_fails_and_is_retried():
    b = Bench()
    a1, mid, end = b.job(makes=["t1"]), b.job(reads=["t1"], makes=["t2"]), b.job(reads=["t2"])
    for j in (a1, mid, end):
        b.book.add(j)
    b.book.finished(a1, a1.task, "failed")
    b.book.finished(mid, mid.task, "dependency")
    assert b.book.slot("t2").state == DEAD       # mid's output dies with it
    b.book.finished(end, end.task, "dependency")
    assert mid.state == end.state == "waiting"
    b.book.add(b.job(makes=["t1"]))
    assert mid.state == end.state == "running"
    assert b.launches_of(end)[1][0]["t2"] == b.launches_of(mid)[1][1]["t2"]


def test_when_parsl_gives_up_on_the_producer_waiting_consumers_fail_without_running():
    b = Bench()
    app_future: Future = Future()
    b.book.producer_registered("t", app_future)
    a, c = b.job(makes=["t"]), b.job(reads=["t"])
    b.book.add(a)
    b.book.add(c)
    b.book.finished(a, a.task, "failed")
    b.book.finished(c, c.task, "dependency")
    app_future.set_exception(RuntimeError("producer failed"))
    out = b.book.producer_done(b.book.slot("t"), app_future)
    assert [f.job for f in out.failures] == [c] and out.failures[0].slot.name == "t"
    assert len(b.launches_of(c)) == 1
    # a consumer arriving later fails at once
    late = b.job(reads=["t"])
    out = b.book.add(late)
    assert [f.job for f in out.failures] == [late] and not b.launches_of(late)


def test_a_producer_that_never_reached_the_executor_fails_its_waiting_consumers():
    b = Bench()
    app_future: Future = Future()
    b.book.producer_registered("t", app_future)
    c = b.job(reads=["t"])
    b.book.add(c)
    app_future.set_exception(RuntimeError("its own dependency failed"))
    out = b.book.producer_done(b.book.slot("t"), app_future)
    assert [f.job for f in out.failures] == [c] and not b.launched


def test_a_successful_producer_does_not_fail_anyone():
    b = Bench()
    app_future: Future = Future()
    b.book.producer_registered("t", app_future)
    a, c = b.job(makes=["t"]), b.job(reads=["t"])
    b.book.add(a)
    b.book.add(c)
    b.book.finished(a, a.task, "ok")
    app_future.set_result(None)
    assert b.book.producer_done(b.book.slot("t"), app_future).failures == []
    assert c.state == "running"


def test_two_live_producers_of_one_temp_are_refused():
    b = Bench()
    b.book.add(b.job(makes=["t"]))
    second = b.job(makes=["t"])
    out = b.book.add(second)
    assert len(out.failures) == 1 and "already made" in str(out.failures[0].error)


def test_a_launch_that_cannot_be_made_fails_that_job_only_and_its_consumers_wait():
    b = Bench(refuse={1})
    bad = b.job(makes=["t"])
    c = b.job(reads=["t"])
    out = b.book.add(bad)
    assert isinstance(out.failures[0].error, FileNotFoundError)
    b.book.add(c)
    assert c.state == "waiting" and b.book.slot("t").state == NONE


def test_old_reports_are_ignored():
    b = Bench()
    a = b.job(makes=["t"])
    b.book.add(a)
    stale = a.task
    b.book.finished(a, stale, "ok")
    assert b.book.finished(a, stale, "failed").current is False
    assert b.book.slot("t").state == MADE


@pytest.mark.parametrize("order", ["consumer first", "producer first"])
def test_unchanged_inputs_after_a_dependency_failure_fail_instead_of_looping(order):
    b = Bench()
    a, c = b.job(makes=["t"]), b.job(reads=["t"])
    for j in ((c, a) if order == "consumer first" else (a, c)):
        b.book.add(j)
    b.book.finished(a, a.task, "ok")
    # tether lost the made file and could not make it again: the consumer is reported dead,
    # but as far as the executor knows its input is still there
    err = RuntimeError("input lost")
    out = b.book.finished(c, c.task, "dependency", err)
    assert [(f.job, f.error) for f in out.failures] == [(c, err)]
