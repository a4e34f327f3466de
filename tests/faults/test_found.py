"""Faults found by `tether bench faults` and the TaPS failures app, made for real, not yet mended.

Each test is a strict xfail: it states what should happen, fails today, and
will report XPASS (and so fail) once the defect is mended, so that the
marker is removed with the fix.
"""
from __future__ import annotations

import time

import pytest

from tether import Manager, PythonTask

from ..conftest import start_worker, stop, wait_until


@pytest.mark.xfail(strict=True, reason="Scheduler._avoiding counts a blocklisted worker as one that can run the "
                   "task, so the task avoids every worker that may take work and waits out the blocklist")
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
