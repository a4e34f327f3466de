"""One test per fault that used to stop a run for ever, or lose a result, made for real.

Each is named after what a user saw; each fails without its fix.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tether import InternalError, Manager, PythonTask, SystemFailure, Task, TaskFailed
from tether.core import TaskState, TaskSucceeded

from ..conftest import alive, descendants_of, start_worker, stop, wait_until


def test_1_a_command_the_worker_cannot_start_fails_that_task_only():
    with Manager(workers=2) as m:
        m.wait_for_workers()
        bad = Task("echo a")
        bad.command = "echo a\x00b"   # past Task()'s own check, as a corrupted spec would be
        worse = Task("echo b", env={"OK": "1"})
        worse.env = {"BAD=NAME": "x"}
        futures = [m.submit(bad), m.submit(worse)]
        for f in futures:
            # the worker's own check refuses it (a malformed assignment), or starting it fails: it fails alone
            with pytest.raises(TaskFailed, match="malformed assignment|could not start the task"):
                f.result(20)
        assert m.submit(Task("echo still here")).result(20).stdout.strip() == "still here"
        assert m.stats()["workers"] == 2


def test_2_a_local_worker_that_exits_cleanly_is_replaced():
    with Manager(workers=1) as m:
        m.wait_for_workers()
        futures = [m.submit(Task("sleep 0.05")) for _ in range(100)]
        wait_until(lambda: sum(f.done() for f in futures) >= 20, timeout=60)
        m._local[0].proc.send_signal(signal.SIGTERM)
        for f in futures:
            assert f.result(60).exit_code == 0
        assert len(m._local) == 2


@pytest.mark.parametrize("spoil", ["directory", "parent removed"])
def test_3_an_output_that_cannot_be_written_home_fails_its_future_with_the_oserror(tmp_path, spoil):
    counter = tmp_path / "runs"
    home = tmp_path / "out" / "result.txt"
    home.parent.mkdir()
    with Manager(workers=1) as m:
        target = m.declare_file(home)
        if spoil == "directory":
            home.mkdir()
        else:
            home.parent.rmdir()
        f = m.submit(Task(f"echo run >> {counter}; echo data > result.txt", outputs={"result.txt": target}))
        with pytest.raises(OSError) as info:
            f.result(30)
        assert str(home) in "\n".join(getattr(info.value, "__notes__", []))
    assert counter.read_text().count("run") == 1   # not run again and again


def test_4_a_worker_lost_while_its_output_travels_home_leaves_no_future_pending(tmp_path):
    home = tmp_path / "big.bin"
    with Manager(workers=2) as m:
        m.wait_for_workers()
        target = m.declare_file(home)
        f = m.submit(Task("head -c 60000000 /dev/zero > big.bin", outputs={"big.bin": target}))
        t = wait_until(lambda: m.core.tasks.get(f.task_id), timeout=30)
        wait_until(lambda: t.state is TaskState.HOMING, timeout=30, interval=0.0005)
        # stop the worker serving the output at once, then kill it: the transfer home breaks
        pid = next(w.proc.pid for w in m._local if w.name == m.engine.records[f.task_id].worker)
        os.kill(pid, signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
        r = f.result(60)
        assert r.exit_code == 0 and r.attempts >= 1
    assert home.stat().st_size == 60_000_000


LONG = os.environ.get("TETHER_LONG") == "1"


@pytest.mark.parametrize("heartbeat, stopped_for", [
    (2.0, 0.0),   # SIGCONT as soon as the run has ended
    pytest.param(5.0, 60.0, marks=pytest.mark.skipif(not LONG, reason="the long form: TETHER_LONG=1")),
])
@pytest.mark.slow
def test_5_a_stopped_worker_is_declared_lost_and_its_work_done_elsewhere(tmp_path, heartbeat, stopped_for):
    marks = tmp_path / "marks"   # a line per task start: the worker and the time
    with Manager(workers=0, host="127.0.0.1", heartbeat=heartbeat) as m:
        procs = [start_worker(m, name, tmp_path, "--heartbeat", str(heartbeat)) for name in ("a", "b")]
        try:
            m.wait_for_workers(2)
            chains = []
            for c in range(2):
                prev = None
                for i in range(6):
                    out = m.declare_temp()
                    ins = {"in": prev} if prev is not None else {}
                    cmd = (f"echo $TETHER_WORKER $(date +%s.%N) >> {marks}; sleep 0.3; "
                           + ("cat in > out; " if prev is not None else "") + f"echo {c}-{i} >> out")
                    chains.append(m.submit(Task(cmd, inputs=ins, outputs={"out": out})))
                    prev = out
            wait_until(lambda: sum(f.done() for f in chains) >= 2, timeout=30)
            victim = procs[0]
            victim.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            for f in chains:
                f.result(30)
            ended = time.monotonic() - stopped
            print(f"\nheartbeat {heartbeat:g} s: the run ended {ended:.1f} s after the worker was stopped")
            assert ended < 15
            assert m.fetch(out).decode().split() == [f"1-{i}" for i in range(6)]
            time.sleep(max(0.0, stopped_for - (time.monotonic() - stopped)))
            resumed = time.time()
            victim.send_signal(signal.SIGCONT)
            assert victim.wait(20) == 4   # it knows it was given up on, and leaves
            starts = [line.split() for line in marks.read_text().splitlines()]
            assert {w for w, _ in starts} <= {"a", "b"}
            late = [(w, t) for w, t in starts if w == "a" and float(t) > resumed]
            assert late == []   # nothing started on the stopped worker after it came back
        finally:
            for p in procs:
                p.send_signal(signal.SIGCONT)
                stop(p)


def test_6_a_python_task_that_kills_its_interpreter_is_retried_elsewhere(tmp_path):
    flag = tmp_path / "killed-once"

    def die_once(flag):
        import os
        import signal
        if not os.path.exists(flag):
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGTERM)
        return "survived"

    def always_die():
        import os
        os._exit(9)

    with Manager(workers=2) as m:
        assert m.submit(PythonTask(die_once, args=(str(flag),))).result(60) == "survived"
        f = m.submit(PythonTask(always_die))
        with pytest.raises(SystemFailure, match="interpreter") as info:
            f.result(120)
        assert "4 attempts" in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as a worker's cache needs root")
def test_7_a_task_failing_on_a_full_disk_is_retried_on_a_worker_with_room(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    procs = []
    try:
        with Manager(workers=0, host="127.0.0.1") as m:
            procs.append(start_worker(m, "full", tmp_path, "--cache-dir", str(small / "cache")))
            m.wait_for_workers(1)
            out = m.declare_temp()
            f = m.submit(Task("head -c 5000000 /dev/zero > big", outputs={"big": out}, retries=3))
            wait_until(lambda: getattr(m.core.tasks.get(f.task_id), "system_failures", 0) >= 1, timeout=30)
            procs.append(start_worker(m, "roomy", tmp_path))
            r = f.result(60)
            assert r.worker == "roomy"
            assert m.core.workers["full"].blocks >= 1 or m.core.tasks[f.task_id].system_failures < 3
    finally:
        for p in procs:
            stop(p)
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_9_a_killed_program_leaves_no_cache_no_secret_and_no_worker(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from tether import Manager, Task
        m = Manager(workers=2, run_dir={str(tmp_path)!r})
        m.submit(Task("echo hi")).result(30)
        print(m.run_dir, *[w.proc.pid for w in m._local], flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        run_dir, *pids = p.stdout.readline().split()
        family = descendants_of([int(x) for x in pids])
        p.kill()
        p.wait()
        wait_until(lambda: not os.path.exists(os.path.join(run_dir, "work")), timeout=10)
        wait_until(lambda: not alive(family), timeout=10)
    finally:
        p.kill()
    # only the run's record is left: its logs and transaction log
    assert os.listdir(tmp_path) == [os.path.basename(run_dir)]
    assert "work" not in os.listdir(run_dir) and "transactions" in os.listdir(run_dir)


def test_9_a_worker_without_cache_dir_removes_the_one_it_made(tmp_path):
    secret = tmp_path / "wrong"
    secret.write_text("not-the-secret-of-any-manager-here")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with Manager(workers=0, host="127.0.0.1") as m:
        port = m.address.rsplit(":", 1)[1]
        p = subprocess.run([sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}", "--secret-file",
                            str(secret)], env={**os.environ, "TMPDIR": str(scratch)}, capture_output=True,
                           timeout=60)
        assert p.returncode == 3
    assert list(scratch.iterdir()) == []


def test_10_a_failure_inside_the_core_fails_every_future_loudly(caplog):
    with Manager(workers=1) as m:
        m.wait_for_workers()
        waiting = m.submit(Task("sleep 5"))

        def broken(event):
            raise KeyError("a bug")

        m.core._handlers[TaskSucceeded] = broken
        with caplog.at_level(logging.CRITICAL, logger="tether.manager"):
            f = m.submit(Task("echo hi"))
            with pytest.raises(InternalError, match="KeyError"):
                f.result(30)
            with pytest.raises(InternalError):
                waiting.result(30)
        assert any(r.levelno == logging.CRITICAL and "bug in tether" in r.getMessage() for r in caplog.records)
        assert m.stats()["workers"] == 1   # not mistaken for a lost worker
        with pytest.raises(InternalError):
            m.submit(Task("echo again"))
