"""Faults found by `tether bench faults`, the TaPS failures app and the churn runs, made for real.

Each failed before its fix (as a strict xfail while it was open).
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from tether import Manager, PythonTask, SystemFailure, Task, TaskFailed

from ..conftest import start_worker, stop, wait_until


def test_a_task_that_lost_an_attempt_on_the_only_available_worker_is_not_held_for_a_blocklist(tmp_path):
    def die_on(name: str) -> str:   # (defined here, so that it travels by value to workers started by hand)
        import os
        import signal
        if os.environ.get("TETHER_WORKER") == name:
            os.kill(os.getpid(), signal.SIGKILL)
        return os.environ.get("TETHER_WORKER", "")

    def die_once(flag: str) -> str:
        import os
        import signal
        if not os.path.exists(flag):
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return os.environ.get("TETHER_WORKER", "")

    procs = []
    with Manager(workers=0, host="127.0.0.1") as m:
        try:
            procs.append(start_worker(m, "b", tmp_path, "--cores", "1"))
            m.wait_for_workers(1)
            x = m.submit(PythonTask(die_on, args=("b",)))   # b loses it three times in a row: blocklisted
            wait_until(lambda: m.core.counters.blocklisted >= 1, timeout=60)
            procs.append(start_worker(m, "a", tmp_path, "--cores", "1"))
            m.wait_for_workers(2)
            assert x.result(30) == "a"
            started = time.monotonic()
            t = m.submit(PythonTask(die_once, args=(str(tmp_path / "flag"),)))   # dies once, on a
            # a is idle and the only worker that may take work: t should run there again at once,
            # not wait for b's blocklist (30 s) to end
            assert t.result(10) == "a"
            assert time.monotonic() - started < 10
        finally:
            for p in procs:
                stop(p)


@pytest.mark.slow
def test_a_consumer_failing_because_a_rerun_producer_failed_is_told_why(tmp_path):
    def produce(flag: str) -> str:   # every run after the first kills its interpreter
        import os
        import signal
        if os.path.exists(flag):
            os.kill(os.getpid(), signal.SIGKILL)
        with open("a", "w") as f:
            f.write("made\n")
        return "ran"

    flag = tmp_path / "runs-again-and-dies"
    with Manager(workers=2) as m:
        m.wait_for_workers()
        a, g = m.declare_temp(), m.declare_temp()
        fa = m.submit(PythonTask(produce, args=(str(flag),), outputs={"a": a}))
        m.submit(Task("sleep 4; echo g > g", outputs={"g": g}))
        fb = m.submit(Task("cat a g", inputs={"a": a, "g": g}))
        assert fa.result(30) == "ran"
        flag.touch()
        victim = next(w for w in m._local if w.name == fa.info.worker)
        os.kill(victim.proc.pid, signal.SIGKILL)   # a is lost with it: its producer runs again, and dies
        with pytest.raises(TaskFailed) as info:
            fb.result(60)
        assert fa.exception() is None   # the producer's Future had succeeded, and stays so
        # the consumer's failure should say why: the producer's attempts lost to the system
        assert isinstance(info.value, SystemFailure) or "attempts" in str(info.value), str(info.value)
