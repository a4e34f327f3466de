"""tether.Executor: a concurrent.futures Executor whose results stay on the workers."""
from __future__ import annotations

import concurrent.futures as cf
import gc
import os
import signal
import time

import numpy as np
import psutil
import pytest

from tether import Executor

from .conftest import wait_until


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def total(items):
    return sum(total(i) if isinstance(i, (list, tuple)) else i for i in items)


def blob(n):
    return b"x" * n


def where():
    return os.getpid()


def fail(x):
    raise ZeroDivisionError(f"cannot use {x}")


def slow_value(x, seconds):
    time.sleep(seconds)
    return x


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=2) as ex:
        ex.manager.wait_for_workers()
        yield ex


def test_chain_of_futures_stays_on_one_worker(ex):
    before = ex.stats()
    f = ex.submit(inc, 0)
    for _ in range(49):
        f = ex.submit(inc, f)
    assert f.result(60) == 50
    after = ex.stats()
    # one group, one worker: nothing between workers; the small values came back with their completions
    assert after["bytes_worker_to_worker"] == before["bytes_worker_to_worker"]
    assert after["bytes_worker_to_manager"] - before["bytes_worker_to_manager"] < 50 * 100


def test_values_stay_on_the_workers_with_small_result_0():
    with Executor(workers=1, small_result=0) as ex:
        f = ex.submit(inc, 0)
        for _ in range(19):
            f = ex.submit(inc, f)
        kept = ex.submit(inc, 1)
        cf.wait([f, kept])
        before = ex.stats()["bytes_worker_to_manager"]
        assert before == 0                        # nothing came back with the completions
        assert f.result(60) == 20
        assert 0 < ex.stats()["bytes_worker_to_manager"] - before < 100   # only the value asked for
    assert kept.result() == 2   # brought at shutdown: the program still held its future


def test_a_small_value_comes_with_its_completion_and_outlives_the_executor():
    with Executor(workers=1) as ex:
        small = ex.submit(inc, 1)
        big = ex.submit(bytes, 200_000)           # above the 64 KiB of small_result
        cf.wait([small, big])
        ex.shutdown(wait=False)                   # brings nothing here
    assert small.result() == 2
    with pytest.raises(RuntimeError, match="stayed on its worker"):
        big.result()
    with pytest.raises(ValueError, match="small_result"):
        Executor(workers=0, small_result=-1)


def test_diamond(ex):
    a = ex.submit(inc, 1)
    b = ex.submit(inc, a)
    c = ex.submit(add, a, 10)
    d = ex.submit(add, b, c)
    assert d.result(60) == 3 + 12


def test_futures_nested_in_containers(ex):
    fs = [ex.submit(inc, i) for i in range(4)]
    nested = ex.submit(total, [fs[0], (fs[1], [fs[2]]), {"not": "used"}.get("x", fs[3])])
    assert nested.result(60) == 1 + 2 + 3 + 4
    as_dict = ex.submit(lambda d: d["a"] + d["b"][0], {"a": fs[0], "b": [fs[1]]})
    assert as_dict.result(60) == 3


def test_exception_passes_down_a_chain_and_consumers_never_run(ex, tmp_path):
    marker = tmp_path / "ran"
    a = ex.submit(fail, 7)
    b = ex.submit(inc, a)
    c = ex.submit(lambda x: open(marker, "w").write("ran"), b)
    for f in (a, b, c):
        with pytest.raises(ZeroDivisionError, match="cannot use 7") as info:
            f.result(60)
        assert "Remote traceback" in "\n".join(getattr(info.value, "__notes__", []))
    assert not marker.exists()


def test_cancel_a_call_waiting_for_its_input(ex):
    gate = ex.submit(slow_value, 1, 1.0)
    waiting = ex.submit(inc, gate)
    assert waiting.cancel()
    assert waiting.cancelled()
    assert gate.result(60) == 1
    with pytest.raises(cf.CancelledError):
        waiting.result(10)


def test_cancel_is_refused_once_running(ex):
    f = ex.submit(slow_value, 1, 1.0)
    wait_until(f.running)
    assert not f.cancel()
    assert f.result(60) == 1


def test_wait_and_as_completed(ex):
    fast = ex.submit(slow_value, "fast", 0.0)
    slow = ex.submit(slow_value, "slow", 1.0)
    done, not_done = cf.wait([fast, slow], return_when=cf.FIRST_COMPLETED, timeout=30)
    assert fast in done and slow in not_done
    order = [f.result() for f in cf.as_completed([slow, fast], timeout=30)]
    assert sorted(order) == ["fast", "slow"]


def tagged_blob(i, n):
    return bytes([i]) * n


def test_gather_and_as_completed_bring_values_left_on_workers_in_batches(ex):
    # above small_result, every value stays on its worker; more of them than a server lets handshake at once
    n, size = 150, 70_000
    reruns = ex.stats()["reruns"]
    futures = [ex.submit(tagged_blob, i, size) for i in range(n)]
    cf.wait(futures, timeout=60)
    assert all(f._on_worker() for f in futures)
    before = ex.stats()["bytes_worker_to_manager"]
    values = ex.gather(futures, timeout=60)
    assert values == [bytes([i]) * size for i in range(n)]
    assert ex.stats()["bytes_worker_to_manager"] - before == pytest.approx(n * size, rel=0.01)
    assert not any(f._on_worker() for f in futures)   # result() has nothing more to fetch
    assert ex.stats()["reruns"] == reruns, "a value failed to come and was made again"
    # as_completed: each future it yields already holds its value, errors are left to result()
    more = [ex.submit(tagged_blob, i, size) for i in range(12)] + [ex.submit(fail, 1)]
    seen = []
    for f in ex.as_completed(more, timeout=60):
        if f.exception() is not None:
            assert isinstance(f.exception(), ZeroDivisionError)
            continue
        assert not f._on_worker()
        seen.append(f.result(0)[0])
    assert sorted(seen) == list(range(12))
    assert ex.fetch_values(more) == 0      # nothing left to bring
    with pytest.raises(TimeoutError, match="did not end within"):
        ex.gather([ex.submit(slow_value, 1, 5.0)], timeout=0.2)


def test_done_callback_may_fetch_the_value(ex):
    got = cf.Future()
    f = ex.submit(inc, 41)
    f.add_done_callback(lambda fut: got.set_result(fut.result()))
    assert got.result(30) == 42


def test_map_and_shutdown_semantics():
    with Executor(workers=2) as ex:
        assert list(ex.map(add, range(50), range(50))) == [2 * i for i in range(50)]
        gate = ex.submit(slow_value, 0, 1.0)
        waiting = [ex.submit(add, gate, i) for i in range(4)]
        wait_until(gate.running)
        ex.shutdown(wait=True, cancel_futures=True)
        # what had started finished; what had not was cancelled
        assert gate.done() and not gate.cancelled() and gate.exception() is None
        assert all(f.cancelled() for f in waiting)
        assert gate.result() == 0   # a small value came back with its completion: it outlives the executor
        with pytest.raises(RuntimeError, match="after shutdown"):
            ex.submit(inc, 1)


def test_map_in_chunks_runs_each_call_once_in_order():
    with Executor(workers=2) as ex:
        assert list(ex.map(add, range(1000), range(1000), chunksize=64)) == [2 * i for i in range(1000)]
        assert list(ex.map(add, [1], [2], chunksize=64)) == [3]
        assert list(ex.map(add, [], [], chunksize=8)) == []
        # a future of this executor inside a chunk is resolved on the worker
        kept = ex.submit(inc, 9)
        assert list(ex.map(add, [kept, kept], [1, 2], chunksize=2)) == [11, 12]
        # an exception fails its chunk: raised when iteration reaches it, after the values before it
        values = ex.map(fail_on_seven, range(20), chunksize=5)
        assert [next(values) for _ in range(5)] == list(range(5))
        with pytest.raises(ZeroDivisionError, match="cannot use 7"):
            next(values)
        with pytest.raises(ValueError, match="chunksize"):
            ex.map(inc, range(3), chunksize=0)


def fail_on_seven(x):
    if x == 7:
        raise ZeroDivisionError(f"cannot use {x}")
    return x


def test_result_freed_from_memory_when_its_future_is_dropped():
    with Executor(workers=1, cores_per_worker=1, spill_threshold=1 << 30) as ex:
        interp = psutil.Process(ex.submit(_pid).result(30))   # the one working interpreter (a spare waits)
        base = interp.memory_info().rss
        f = ex.submit(blob, 200_000_000)
        wait_until(f.done, timeout=60)
        held = interp.memory_info().rss
        assert held - base > 150_000_000          # the value lives in the worker's interpreter
        del f
        gc.collect()
        wait_until(lambda: interp.memory_info().rss - base < 50_000_000, timeout=30)


def test_large_result_spills_to_the_cache_and_goes_when_dropped():
    with Executor(workers=1, spill_threshold=1_000_000) as ex:
        cache = ex.manager._local[0].work_dir / "cache"
        f = ex.submit(lambda n: np.ones(n), 1_000_000)        # 8 MB: spilled
        assert ex.submit(lambda a: float(a.sum()), f).result(60) == 1_000_000.0
        name = f.result_name
        assert (cache / name).stat().st_size > 8_000_000
        del f
        gc.collect()
        wait_until(lambda: not (cache / name).exists(), timeout=30)


def test_value_comes_to_the_manager_only_when_asked(ex):
    before = ex.stats()["bytes_worker_to_manager"]
    big = ex.submit(blob, 2_000_000)
    size = ex.submit(len, big)
    assert size.result(60) == 2_000_000
    assert ex.stats()["bytes_worker_to_manager"] - before < 1000
    assert len(big.result(60)) == 2_000_000
    assert ex.stats()["bytes_worker_to_manager"] - before > 2_000_000


def test_worker_killed_mid_chain_chain_still_right(tmp_path):
    with Executor(workers=2) as ex:
        ex.manager.wait_for_workers()
        first = ex.submit(slow_value, 0, 0.1)
        f = first
        for _ in range(20):
            f = ex.submit(lambda x: (time.sleep(0.05), x + 1)[1], f)
        pid = ex.submit(where).result(30)  # not needed for the chain: just proves workers respond
        assert pid
        wait_until(lambda: first.done(), timeout=30)
        time.sleep(0.3)
        victim = next(w for w in ex.manager._local
                      if any(c.pid for c in psutil.Process(w.proc.pid).children()) and
                      ex.stats()["workers"] == 2)
        os.kill(victim.proc.pid, signal.SIGKILL)
        assert f.result(120) == 20


def identity(x):
    return x


def test_large_arguments_arrive_intact_and_are_counted(ex):
    before = ex.stats()
    arrays = [np.random.default_rng(i).random(125_000) for i in range(40)]   # 1 MB each, 40 MB at once
    futures = [ex.submit(identity, a) for a in arrays]
    for a, f in zip(arrays, futures):
        assert np.array_equal(f.result(60), a)
    sent = ex.stats()["bytes_arguments_to_worker"] - before["bytes_arguments_to_worker"]
    assert 40 * 1_000_000 <= sent < 40 * 1_010_000


def _loaded(name):
    import sys
    return name in sys.modules


def test_preloaded_modules_are_in_every_interpreter_a_successor_too(tmp_path):
    from tether import Manager, PythonTask, SystemFailure

    def die():
        import os
        os._exit(3)

    with Manager(workers=1, preload=("colorsys",), system_retries=0) as m:
        assert m.submit(PythonTask(_loaded, args=("colorsys",))).result(60) is True
        with pytest.raises(SystemFailure):
            m.submit(PythonTask(die)).result(60)
        assert m.submit(PythonTask(_loaded, args=("colorsys",))).result(60) is True
    with pytest.raises(ValueError, match="preload"):
        Manager(workers=0, preload=("not a module",))


def test_a_chain_of_futures_loses_no_attempt(ex):
    before = ex.manager.core.counters.system_failures
    f = ex.submit(inc, 0)
    for _ in range(19):
        f = ex.submit(inc, f)
    assert f.result(60) == 20
    assert ex.manager.core.counters.system_failures == before   # each call found its input in its worker


def _pid():
    import os
    return os.getpid()


def test_a_spare_interpreter_takes_a_dead_ones_place_at_once():
    """A one-core worker keeps a warm spare: after its interpreter dies, the next call runs in the spare
    (an interpreter that was already running), not in one started after the death."""
    import os

    import psutil

    from tether import Manager, PythonTask, SystemFailure

    def die():
        import os
        os._exit(3)

    with Manager(workers=1, cores_per_worker=1, system_retries=0) as m:
        first = m.submit(PythonTask(_pid)).result(60)
        worker = psutil.Process(m._local[0].proc.pid)
        wait_until = __import__("tests.conftest", fromlist=["wait_until"]).wait_until
        spares = wait_until(lambda: [p.pid for p in worker.children() if p.pid != first
                                     and "tether.worker.interpreter" in " ".join(p.cmdline())] or None, timeout=30)
        with pytest.raises(SystemFailure):
            m.submit(PythonTask(die)).result(60)
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
        assert m.submit(PythonTask(_pid)).result(60) in spares
        assert os.getpid() not in spares


def test_calls_whose_futures_are_gone_leave_nothing_behind_but_a_chains_lineage_stays():
    with Executor(workers=1) as ex:
        for i in range(300):
            assert ex.submit(inc, i).result(30) == i + 1      # each Future dropped at once
        gc.collect()
        m = ex.manager
        wait_until(lambda: not m.core.tasks and not m.engine.records, timeout=10)
        assert not [name for name in m.core.files if name.startswith("res-")]
        assert not m.engine._groups_seen   # each call was a group of one, logged, then let go of
        first = ex.submit(inc, 0)
        last = ex.submit(inc, first)
        assert last.result(30) == 2
        del first
        gc.collect()
        time.sleep(0.5)
        # the first call's result was read by the second: its lineage stays while the second's value may be needed
        assert len(m.core.tasks) == 2


SCRIPT_WITH_ITS_OWN_FUNCTIONS = """
from tether import Executor

def double(x):
    return 2 * x

def apply(fn, x):
    return fn(x)

if __name__ == "__main__":
    with Executor(workers=1) as ex:
        # a function of the script's own __main__, passed as an argument and mapped in chunks
        print(ex.submit(apply, double, 21).result(60))
        print(sum(ex.map(double, range(100), chunksize=10)))
"""


def test_functions_of_the_programs_main_travel_as_arguments(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "program.py"
    script.write_text(SCRIPT_WITH_ITS_OWN_FUNCTIONS)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TETHER_RUN_DIR": str(tmp_path / "runs")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", str(2 * sum(range(100)))]


def _short_or_gated(x, gate):
    if x:
        while not os.path.exists(gate):
            time.sleep(0.01)
    return x


def test_a_short_calls_value_does_not_wait_for_the_long_call_after_it(tmp_path):
    """An interpreter batches replies while more calls wait; a reply must still go out while the next,
    long call runs. Here the long call ends only once the short call's value has arrived: a reply held
    behind it would never arrive (the result() below would time out)."""
    gate = str(tmp_path / "gate")
    with Executor(workers=1, cores_per_worker=1) as ex:
        list(ex.map(_short_or_gated, [0] * 2000, [gate] * 2000))   # short calls: many queued per interpreter
        for _ in range(20):   # submitted together, the two often reach the interpreter in one batch
            short, gated = [ex.submit(_short_or_gated, x, gate) for x in (0, 1)]
            assert short.result(timeout=60) == 0
            open(gate, "w").close()
            assert gated.result(timeout=60) == 1
            os.unlink(gate)
