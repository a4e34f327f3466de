"""Resource limits, the end of a task's whole process tree, and what each task used.

Real workers and real processes. A process that leaves its session
(setsid) writes its pid to a marker file; the test then checks, with psutil,
that the pid is gone (not even a zombie) and that no process carries the
task's tag. A fixture kills whatever a marker names, so a failing test
leaves nothing behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tether import Manager, PythonTask, Task, TaskFailed

from .conftest import wait_until

MB = 1 << 20
PY = sys.executable


# ------------------------------------------------------------ helpers

@pytest.fixture(scope="module")
def m():
    with Manager(workers=1, cores_per_worker=2) as manager:
        manager.wait_for_workers()
        yield manager


@pytest.fixture
def markers(tmp_path):
    """Marker files that escaped processes write their pid to; whatever they name is killed afterwards."""
    made = []

    def marker(name: str = "pid"):
        path = tmp_path / name
        made.append(path)
        return path

    yield marker
    for path in made:
        pid = read_pid(path)
        if pid is not None and psutil.pid_exists(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def read_pid(path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def escape(marker) -> str:
    """A shell command that starts `sleep 300` in a new session, writing its pid to marker."""
    return f"setsid -f sh -c 'echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; exec sleep 300'"


def escape_in_python(marker: str) -> None:
    subprocess.Popen(["setsid", "-f", "sh", "-c", f"echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; exec sleep 300"])


def gone(pid: int) -> bool:
    """Not running and not a zombie: killed and waited for."""
    return not psutil.pid_exists(pid)


def tagged(worker_pid: int, task_id: int) -> list[int]:
    """Processes whose environment carries the tag of an attempt of this task on this worker."""
    prefix = f"TETHER_TASK={worker_pid}-{task_id}-"
    found = []
    for p in psutil.process_iter():
        try:
            if any(f"{k}={v}".startswith(prefix) for k, v in p.environ().items()):
                found.append(p.pid)
        except psutil.Error:
            continue
    return found


def worker_pid(m: Manager) -> int:
    return m._local[0].proc.pid


def hold_memory(mb: int, seconds: float) -> int:
    data = bytearray(mb * MB)
    for i in range(0, len(data), 4096):
        data[i] = 1
    time.sleep(seconds)
    return len(data)


def allocate(mb: int) -> int:
    data = bytearray(mb * MB)
    for i in range(0, len(data), 4096):
        data[i] = 1
    return len(data)


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def write_and_wait(mb: int, seconds: float) -> None:
    with open("big", "wb") as f:
        f.write(b"x" * (mb * MB))
    time.sleep(seconds)


def leave_file(size: int) -> None:
    with open("left", "wb") as f:
        f.write(b"x" * size)


def own_tag() -> str | None:
    return os.environ.get("TETHER_TASK")


def escape_and_sleep(marker: str, seconds: float) -> None:
    escape_in_python(marker)
    time.sleep(seconds)


# ------------------------------------------------------------ memory

def test_a_command_over_its_memory_limit_fails_naming_memory(m):
    t = Task(f"{PY} -c 'import time; b = bytearray(200 << 20); b[::4096] = b\"x\" * len(b[::4096]); "
             f"time.sleep(30)'", memory=50)
    started = time.monotonic()
    with pytest.raises(TaskFailed, match="memory") as info:
        m.submit(t).result(60)
    assert "limit of 50 MB" in str(info.value)
    assert time.monotonic() - started < 25      # killed, not waited for
    wait_until(lambda: tagged(worker_pid(m), t.id) == [], timeout=10)   # SIGKILLed: gone within moments


def test_a_python_task_over_its_memory_limit_fails_naming_memory(m):
    with pytest.raises(TaskFailed, match="memory limit of 100 MB"):
        m.submit(PythonTask(hold_memory, args=(200, 30), memory=100)).result(60)
    assert m.submit(PythonTask(len, args=("abc",))).result(30) == 3   # the worker carries on


def test_a_python_task_is_not_charged_for_its_warm_interpreter(m):
    # the interpreter alone holds some 30 MB before any call, more once tasks have imported modules;
    # a first call may add a few MB of its own (unpickling the function, importing its module)
    assert m.submit(PythonTask(allocate, args=(2,), memory=25)).result(30) == 2 * MB


def test_a_spike_between_two_looks_still_fails_at_the_end(m):
    # allocated and freed long before the next poll: the peak the runner measured says it
    with pytest.raises(TaskFailed, match="memory"):
        m.submit(PythonTask(allocate, args=(200,), memory=100)).result(60)


def test_a_memory_failure_is_retried_as_the_task_says(m, tmp_path):
    log = tmp_path / "attempts"
    t = Task(f"echo x >> {log}; {PY} -c 'import time; b = bytearray(200 << 20); "
             f"b[::4096] = b\"x\" * len(b[::4096]); time.sleep(30)'", memory=50, retries=1)
    with pytest.raises(TaskFailed, match="memory"):
        m.submit(t).result(90)
    assert log.read_text().split() == ["x", "x"]


def test_tasks_within_their_limits_run(m):
    assert m.submit(Task("echo ok", memory=50, disk=1)).result(30).stdout == "ok\n"
    assert m.submit(PythonTask(allocate, args=(10,), memory=500, disk=1)).result(30) == 10 * MB


# ------------------------------------------------------------ disk

def test_a_command_over_its_disk_limit_fails_naming_disk(m):
    with pytest.raises(TaskFailed, match="disk") as info:
        m.submit(Task("head -c 20000000 /dev/zero > big; sleep 30", disk=1)).result(60)
    assert "limit of 1 MB" in str(info.value)


def test_what_a_command_wrote_before_it_ended_counts(m):
    with pytest.raises(TaskFailed, match="disk limit of 1 MB"):
        m.submit(Task("head -c 5000000 /dev/zero > big", disk=1)).result(60)


def test_stdout_counts_as_disk(m):
    with pytest.raises(TaskFailed, match="disk"):
        m.submit(Task("head -c 5000000 /dev/zero", disk=1)).result(60)


def test_a_python_task_over_its_disk_limit_fails_naming_disk(m):
    with pytest.raises(TaskFailed, match="disk limit of 1 MB"):
        m.submit(PythonTask(write_and_wait, args=(5, 30), disk=1)).result(60)


def test_inputs_do_not_count_against_the_disk_limit(m, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * (3 * MB))
    f = m.declare_file(src)
    r = m.submit(Task("wc -c < in.bin", inputs={"in.bin": f}, disk=1)).result(30)
    assert r.stdout.strip() == str(3 * MB)


# ------------------------------------------------------------ the whole tree ends

def test_an_escaped_child_ends_with_its_task(m, markers):
    marker = markers()
    t = Task(f"{escape(marker)}; while [ ! -s {marker} ]; do sleep 0.01; done")
    m.submit(t).result(30)
    pid = read_pid(marker)
    wait_until(lambda: gone(pid), timeout=10)
    wait_until(lambda: tagged(worker_pid(m), t.id) == [], timeout=10)   # SIGKILLed: gone within moments


def test_an_escaped_child_ends_at_the_task_timeout(m, markers):
    marker = markers()
    t = Task(f"{escape(marker)}; sleep 30", timeout=1)
    with pytest.raises(TaskFailed, match="timeout"):
        m.submit(t).result(30)
    pid = wait_until(lambda: read_pid(marker))
    wait_until(lambda: gone(pid), timeout=10)
    wait_until(lambda: tagged(worker_pid(m), t.id) == [], timeout=10)   # SIGKILLed: gone within moments


def test_an_escaped_child_ends_when_its_task_is_killed_for_memory(m, markers):
    marker = markers()
    t = Task(f"{escape(marker)}; {PY} -c 'import time; b = bytearray(200 << 20); "
             f"b[::4096] = b\"x\" * len(b[::4096]); time.sleep(30)'", memory=50)
    with pytest.raises(TaskFailed, match="memory"):
        m.submit(t).result(60)
    pid = wait_until(lambda: read_pid(marker))
    wait_until(lambda: gone(pid), timeout=10)


def test_a_python_task_s_escaped_child_ends_with_the_call(m, markers):
    marker = markers()
    t = PythonTask(escape_and_sleep, args=(str(marker), 0.5))
    m.submit(t).result(30)
    pid = read_pid(marker)
    assert pid is not None and gone(pid)      # ended before the task was reported done
    wait_until(lambda: tagged(worker_pid(m), t.id) == [], timeout=10)   # SIGKILLed: gone within moments


def test_a_python_task_s_escaped_child_ends_at_its_timeout(m, markers):
    marker = markers()
    t = PythonTask(escape_and_sleep, args=(str(marker), 30), timeout=1)
    with pytest.raises(TaskFailed, match="timeout"):
        m.submit(t).result(30)
    pid = wait_until(lambda: read_pid(marker))
    wait_until(lambda: gone(pid), timeout=10)
    wait_until(lambda: tagged(worker_pid(m), t.id) == [], timeout=10)   # SIGKILLed: gone within moments


def test_a_task_s_processes_carry_the_tag_of_its_attempt(m):
    t = Task("echo $TETHER_TASK")
    tag = m.submit(t).result(30).stdout.strip()
    pid, task, run = tag.split("-")
    assert (int(pid), int(task)) == (worker_pid(m), t.id) and int(run) > 0
    assert m.submit(PythonTask(own_tag)).result(30).startswith(f"{pid}-")


def test_escaped_children_end_when_the_manager_closes(markers, tmp_path):
    running, untagged, python = markers("running"), markers("untagged"), markers("python")
    with Manager(workers=1, cores_per_worker=3, run_dir=tmp_path) as m:
        m.wait_for_workers()
        m.submit(Task(f"{escape(running)}; sleep 300"))
        # this one clears its environment: no tag, it stays until the worker stops
        m.submit(Task(f"env -i {escape(untagged)}; while [ ! -s {untagged} ]; do sleep 0.01; done"))
        m.submit(PythonTask(escape_and_sleep, args=(str(python), 300)))
        pids = [wait_until(lambda p=path: read_pid(p), timeout=30) for path in (running, untagged, python)]
        assert not any(gone(pid) for pid in pids)
        m.close(wait=False)   # while two tasks still run
    wait_until(lambda: all(gone(pid) for pid in pids), timeout=10)


# ------------------------------------------------------------ what a task used

def test_a_command_reports_what_it_used(m):
    r = m.submit(Task(f"{PY} -c 'b = bytearray(100 << 20); b[::4096] = b\"x\" * len(b[::4096])'; "
                      f"head -c 300000 /dev/zero > left; echo done")).result(60)
    assert r.peak_memory >= 100_000_000
    assert r.cpu_time > 0
    assert r.disk >= 300_000


def test_a_python_task_reports_what_it_used(m):
    f = m.submit(PythonTask(allocate, args=(100,)))     # 100 MiB
    f.result(60)
    assert f.info.peak_memory >= 100_000_000             # what it added to its interpreter
    f = m.submit(PythonTask(spin, args=(0.2,)))
    f.result(60)
    assert f.info.cpu_time >= 0.1
    assert f.info.disk == 0


def test_what_a_python_task_leaves_in_a_reused_sandbox_counts(m):
    for _ in range(4):                       # sandboxes found empty at their task's end, and reused
        f = m.submit(PythonTask(len, args=("x",)))
        f.result(30)
        assert f.info.disk == 0
    f = m.submit(PythonTask(leave_file, args=(300_000,)))
    f.result(30)
    assert f.info.disk == 300_000
    f = m.submit(PythonTask(len, args=("x",)))
    f.result(30)
    assert f.info.disk == 0


def test_outputs_count_in_disk(m, tmp_path):
    out = m.declare_file(tmp_path / "out.bin")
    r = m.submit(Task("head -c 200000 /dev/zero > out.bin", outputs={"out.bin": out})).result(30)
    assert r.disk >= 200_000
    assert r.peak_memory > 0 and r.cpu_time >= 0
