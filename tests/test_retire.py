"""Workers sent away without losing temps: Manager.retire and `tether worker --idle-timeout`, real processes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tether import Manager, Task
from tether.report import load

from .conftest import stop, wait_until


def _worker(m: Manager, name: str, *extra: str) -> subprocess.Popen:
    port = m.address.rsplit(":", 1)[1]
    log = open(m.run_dir / f"{name}.log", "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}", "--secret-file",
                                 str(m.secret_file), "--cores", "1", "--name", name, "--heartbeat", "5", *extra],
                                stdout=log, stderr=log, start_new_session=True)
    finally:
        log.close()


def _make_temp(m: Manager, text: str, keep: bool = False):
    tmp = m.declare_temp(keep=keep)
    r = m.submit(Task(f"printf {text} > t", outputs={"t": tmp})).result(60)
    return tmp, r.worker


def test_a_retired_worker_hands_its_temps_to_one_that_stays(tmp_path):
    with Manager(workers=2, run_dir=tmp_path) as m:
        m.wait_for_workers(2)
        made = [_make_temp(m, f"t{i}", keep=True) for i in range(6)]   # kept: fetched after they are read
        holder = made[0][1]
        mine = [tmp for tmp, w in made if w == holder]
        [report] = m.retire(holder, timeout=60)
        assert report == {"worker": holder, "copied": len(mine), "kept_here": 0, "lost": 0, "forced": False}
        assert holder not in {w["worker"] for w in m.workers()}
        # every temp is read where it now is: nothing is made again
        for i, (tmp, _) in enumerate(made):
            r = m.submit(Task("cat t", inputs={"t": tmp})).result(60)
            assert r.stdout == f"t{i}" and r.worker != holder
        assert m.stats()["reruns"] == 0
        assert m.fetch(mine[0]) == f"t{made.index((mine[0], holder))}".encode()


def test_the_last_worker_leaves_its_temps_to_the_manager_and_a_later_worker_reads_them(tmp_path):
    with Manager(workers=1, run_dir=tmp_path) as m:
        m.wait_for_workers(1)
        tmp, holder = _make_temp(m, "x")
        [report] = m.retire(holder, timeout=60)
        assert report["lost"] == 0 and report["copied"] == 0
        assert m.stats()["retired_temps_kept_here"] == 1
        assert m.fetch(tmp) == b"x"   # served from the manager's side
        w = _worker(m, "late")
        try:
            r = m.submit(Task("cat t", inputs={"t": tmp})).result(60)
            assert r.stdout == "x" and r.worker == "late"
            assert m.stats()["reruns"] == 0
            kept = m.engine.park_dir / tmp.name
            assert kept.exists()
            m.remove(tmp)   # nothing can read it any more: the manager's copy goes too
            wait_until(lambda: not kept.exists(), 30)
        finally:
            stop(w)


def test_a_retiring_worker_finishes_its_running_task_and_gives_back_the_rest(tmp_path):
    with Manager(workers=0, run_dir=tmp_path) as m:
        a = _worker(m, "a")
        try:
            m.wait_for_workers(1)
            gate = tmp_path / "gate"
            first = m.submit(Task(f"while [ ! -e {gate} ]; do sleep 0.05; done; echo first"))
            rest = [m.submit(Task(f"echo {i}")) for i in range(3)]
            wait_until(lambda: any(w["tasks"] >= 2 for w in m.workers()), 30)   # one runs, one queued there
            b = _worker(m, "b")
            try:
                m.wait_for_workers(2)
                retiring = m._loop.submit(_retire_async(m, "a"))
                assert [f.result(60).worker for f in rest] == ["b"] * 3
                gate.touch()
                assert first.result(60).worker == "a" and first.result().stdout == "first\n"
                [report] = retiring.result(60)
                assert report.forced is False
                assert a.wait(30) == 0, "a retired worker exits 0"
            finally:
                stop(b)
        finally:
            stop(a)


async def _retire_async(m: Manager, wid: str):
    import asyncio
    ends = m.engine.retire([wid], "test", 60)
    await asyncio.wait([r.left for r in ends])
    return ends


def test_an_idle_worker_asks_to_leave_and_its_temp_stays(tmp_path):
    with Manager(workers=0, run_dir=tmp_path) as m:
        idle = _worker(m, "idle", "--idle-timeout", "1")
        stays = None
        try:
            m.wait_for_workers(1)
            tmp, holder = _make_temp(m, "kept")
            assert holder == "idle"
            stays = _worker(m, "stays")
            assert idle.wait(60) == 0, (tmp_path / "idle.log").read_text()
            wait_until(lambda: [w["worker"] for w in m.workers()] == ["stays"], 30)
            r = m.submit(Task("cat t", inputs={"t": tmp})).result(60)
            assert r.stdout == "kept" and r.worker == "stays"
            assert m.stats()["reruns"] == 0
        finally:
            stop(idle)
            if stays is not None:
                stop(stays)
    log = (m.run_dir / "transactions").read_text()   # complete once the manager has closed
    assert "\tidle\tRETIRING\t" in log and "\tidle\tRETIRED\t1\t0" in log
    seen = load(m.run_dir).workers["idle"]   # the report reads it: asked to leave, one temp copied off
    assert seen.retiring is not None and seen.retired == (1, 0) and seen.left >= seen.retiring


def test_retire_checks_its_timeout(tmp_path):
    with Manager(workers=0, run_dir=tmp_path) as m:
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            m.retire("nobody", timeout=0)
        assert m.retire("nobody") == []
