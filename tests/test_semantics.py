"""What a newcomer expects of leaving a block and of fetching, with real workers.

An Executor's `with` block brings back the values of the futures still held;
a Manager's `with` block waits for unfinished tasks (not when it raised, not
when no worker is left to run them); fetching a temp already deleted is an
error naming what to do, never a silent second run of its producer.
"""
from __future__ import annotations

import concurrent.futures as cf
import gc
import signal
import time

import pytest

from tether import Executor, Manager, Task, TaskFailed

from .conftest import start_worker, stop, wait_until


def blob(n):
    return b"x" * n


def inc(x):
    return x + 1


def slow_inc(x, seconds):
    time.sleep(seconds)
    return x + 1


# ------------------------------------------------------------ Executor: values after the block

def test_values_of_futures_still_held_come_back_at_shutdown_and_dropped_ones_do_not():
    with Executor(workers=2, small_result=0) as ex:   # every value stays on its worker until asked for
        held = [ex.submit(blob, 100_000 + i) for i in range(6)]
        chained = ex.submit(len, ex.submit(blob, 50_000))   # its argument's future is dropped at once
        dropped = ex.submit(blob, 5_000_000)
        cf.wait([*held, chained])
        del dropped
        gc.collect()
    assert [len(f.result()) for f in held] == [100_000 + i for i in range(6)]
    assert chained.result() == 50_000
    moved = ex.stats()["bytes_worker_to_manager"]   # the figures as they were at close
    assert 600_000 <= moved < 620_000, moved        # the dropped 5 MB and 50 kB stayed behind


def test_a_call_a_done_callback_submits_during_shutdown_is_waited_for_too():
    follow = []
    with Executor(workers=1, small_result=0) as ex:
        first = ex.submit(slow_inc, 1, 0.3)
        first.add_done_callback(lambda f: follow.append(ex.submit(inc, f)))
    assert first.result() == 2 and follow[0].result() == 3


def test_shutdown_without_waiting_brings_no_value():
    with Executor(workers=1, small_result=0) as ex:
        f = ex.submit(inc, 1)
        cf.wait([f])
        ex.shutdown(wait=False)
    with pytest.raises(RuntimeError, match=r"wait=False"):
        f.result()


def test_an_executor_without_workers_does_not_wait_for_ever_at_shutdown():
    with Executor(workers=0) as ex:
        f = ex.submit(inc, 1)
    with pytest.raises(TaskFailed, match="no worker was left"):
        f.result()


# ------------------------------------------------------------ Manager: leaving the block

def test_leaving_the_block_waits_for_unfinished_tasks_and_their_outputs(tmp_path):
    out = tmp_path / "out.txt"
    with Manager(workers=1) as m:
        f = m.submit(Task("sleep 0.5; echo done > out.txt", outputs={"out.txt": m.declare_file(out)}))
        g = m.submit(Task("echo second"))
    assert f.result().exit_code == 0 and out.read_text() == "done\n"
    assert g.result().stdout == "second\n"


def test_leaving_the_block_by_an_exception_closes_at_once():
    with pytest.raises(KeyError):
        with Manager(workers=1) as m:
            m.wait_for_workers()
            f = m.submit(Task("sleep 60"))
            raise KeyError("the program failed")
    with pytest.raises(TaskFailed, match="the manager was closed"):
        f.result()


def test_close_waits_or_not_as_asked():
    with Manager(workers=1) as m:
        m.wait_for_workers()
        short = m.submit(Task("sleep 0.3; echo ok"))
        m.close(wait=True)
        assert short.result().stdout == "ok\n"
    with Manager(workers=1) as m:
        long = m.submit(Task("sleep 60"))
        m.close(wait=False)
    with pytest.raises(TaskFailed, match="the manager was closed"):
        long.result()


def test_with_no_worker_connected_leaving_does_not_wait():
    with Manager(workers=0, host="127.0.0.1") as m:
        f = m.submit(Task("echo never"))
    with pytest.raises(TaskFailed, match="no worker was left to run it"):
        f.result()


def test_leaving_waits_for_a_connected_worker_of_its_own(tmp_path):
    with Manager(workers=0, host="127.0.0.1") as m:
        proc = start_worker(m, "remote", tmp_path)
        try:
            m.wait_for_workers(1)
            f = m.submit(Task("sleep 0.5; echo remote"))
            m.close()   # the default waits, as leaving the block does
        finally:
            stop(proc)
    assert f.result().stdout == "remote\n" and f.result().worker == "remote"


def test_local_workers_that_died_and_are_not_restarted_are_not_waited_for():
    with Manager(workers=1, restart_local_workers=False) as m:
        m.wait_for_workers()
        w = m._local[0].proc
        w.send_signal(signal.SIGKILL)
        w.wait()
        wait_until(lambda: m.stats()["workers"] == 0, timeout=30)
        f = m.submit(Task("echo never"))
    with pytest.raises(TaskFailed):
        f.result()


# ------------------------------------------------------------ fetching a temp

@pytest.fixture(scope="module")
def m():
    with Manager(workers=1) as m:
        m.wait_for_workers()
        yield m


def _made_and_read(m: Manager, keep: bool = False):
    tmp = m.declare_temp(keep=keep)
    made = m.submit(Task("echo made > t", outputs={"t": tmp}))
    return tmp, made


def test_fetching_a_temp_deleted_after_its_last_reader_is_an_error_not_a_second_run(m):
    before = m.stats()["reruns"]
    tmp, made = _made_and_read(m)
    m.submit(Task("cat t", inputs={"t": tmp})).result(60)   # its last reader: the temp goes now
    with pytest.raises(RuntimeError) as info:
        m.fetch(tmp, timeout=60)
    said = str(info.value)
    assert f"temp file #{tmp.serial}" in said and f"task {made.task_id}" in said and "keep=True" in said
    assert m.stats()["reruns"] == before
    m.remove(tmp)
    with pytest.raises(RuntimeError, match=r"remove\(\)"):
        m.fetch(tmp, timeout=60)
    assert m.stats()["reruns"] == before


def test_a_kept_temp_or_one_fetched_before_its_reader_ends_can_be_fetched_after(m):
    before = m.stats()["reruns"]
    kept, _ = _made_and_read(m, keep=True)
    early, _ = _made_and_read(m)
    assert m.fetch(early, timeout=60) == b"made\n"   # wanted from now on: it stays
    m.submit(Task("cat a b", inputs={"a": kept, "b": early})).result(60)
    assert m.fetch(kept, timeout=60) == b"made\n" and m.fetch(early, timeout=60) == b"made\n"
    assert m.stats()["reruns"] == before
