"""GPUs, proportional shares, categories, priorities, cancel by tag and blocked hosts, with real workers.

No real GPU is needed: the workers are told how many they have, and each task
reports the CUDA_VISIBLE_DEVICES it was given. Whether two tasks ran at the
same time is shown by a barrier of files (each waits for the other's), not by
their clocks.
"""
from __future__ import annotations

import concurrent.futures
import os
import socket
import subprocess
import sys

import pytest

from tether import DependencyFailed, Manager, PythonTask, Task, TaskFailed

from .conftest import stop, wait_until

PY = sys.executable
BARRIER = "touch {me}; i=0; while [ ! -e {other} ]; do i=$((i+1)); [ $i -gt 1500 ] && exit 9; sleep 0.01; done"


def _eat(mb: int) -> str:
    """A command that holds `mb` MB of memory it has written to, for a moment."""
    return f"{PY} -c 'import time; x = b\"\\1\" * ({mb} << 20); time.sleep(0.3)'"


@pytest.fixture(scope="module")
def gm():
    """One worker of 4 cores, 400 MB and 2 GPUs."""
    with Manager(workers=1, cores_per_worker=4, memory_per_worker=400, gpus_per_worker=2) as m:
        m.wait_for_workers()
        yield m


# ------------------------------------------------------------ GPUs

def test_two_one_gpu_tasks_run_at_once_on_different_devices(gm, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fa = gm.submit(Task(BARRIER.format(me=a, other=b) + "; echo $CUDA_VISIBLE_DEVICES", gpus=1))
    fb = gm.submit(Task(BARRIER.format(me=b, other=a) + "; echo $CUDA_VISIBLE_DEVICES", gpus=1))
    ra, rb = fa.result(60), fb.result(60)
    assert {ra.stdout.strip(), rb.stdout.strip()} == {"0", "1"}
    assert {ra.gpus, rb.gpus} == {(0,), (1,)}
    assert ra.cores == 2 and ra.memory_limit == 200   # half the GPUs: half of the rest


def test_a_two_gpu_task_waits_until_both_are_free(gm, tmp_path):
    go, one, two, other = (tmp_path / n for n in ("go", "one", "two", "other"))
    hold = gm.submit(Task(f"touch {one}; while [ ! -e {go} ]; do sleep 0.01; done", gpus=1))
    wait_until(one.exists, 30)
    both = gm.submit(Task(f"touch {two}; echo $CUDA_VISIBLE_DEVICES", gpus=2))
    later = gm.submit(Task(f"touch {other}", gpus=1))   # submitted after it, it fits beside the first
    later.result(60)
    assert not two.exists()   # ready before the later one, the two-GPU task could not start
    go.touch()
    hold.result(60)
    r = both.result(60)
    assert r.stdout.strip() == "0,1" and r.gpus == (0, 1) and r.cores == 4


def test_a_task_asking_more_gpus_than_a_worker_has_is_refused(gm):
    with pytest.raises(ValueError, match="asks for 3 GPUs, but each local worker has 2"):
        gm.submit(Task("true", gpus=3))


def test_a_task_without_gpus_sees_none_on_a_gpu_worker(gm):
    r = gm.submit(Task("echo \"[$CUDA_VISIBLE_DEVICES]\"")).result(60)
    assert r.stdout.strip() == "[]" and r.gpus == ()


# ------------------------------------------------------------ proportional shares

def test_a_task_of_one_core_is_limited_to_a_quarter_of_the_memory(gm):
    with pytest.raises(TaskFailed, match="memory limit of 100 MB"):
        gm.submit(Task(_eat(150), cores=1)).result(60)


def test_a_task_stating_nothing_is_placed_by_its_share_but_not_limited(gm):
    r = gm.submit(Task(_eat(150))).result(60)
    assert (r.cores, r.memory_limit, r.disk_limit) == (1, 0, 0)
    assert r.peak_memory > 150 << 20


def test_stating_memory_takes_cores_in_proportion(gm):
    r = gm.submit(PythonTask(os.getpid, memory=300)).result(60)
    info = gm.submit(Task("true", memory=300)).result(60)
    assert (info.cores, info.memory_limit) == (3, 300)
    assert r != os.getpid()


# ------------------------------------------------------------ categories

def test_a_category_learns_what_its_tasks_use_and_packs_the_later_ones(gm, tmp_path):
    gm.set_category("eat", mode="max")
    first = gm.submit(Task(_eat(30), category="eat")).result(60)
    assert (first.cores, first.memory_limit) == (4, 400)   # a whole worker at first
    a, b = tmp_path / "a", tmp_path / "b"
    later = [gm.submit(Task(f"{_eat(30)} && " + BARRIER.format(me=me, other=other), category="eat"))
             for me, other in ((a, b), (b, a))]
    rs = [f.result(60) for f in later]   # they ran at once: each waited for the other
    # what the first run showed, in whole MB rounded up, with a quarter more, and at least 10 MB more
    peak_mb = -(-first.peak_memory // (1 << 20))
    for r in rs:
        assert r.cores == 1 and r.memory_limit == max(-(-peak_mb * 5 // 4), peak_mb + 10)
        assert r.attempts == 1
    big = gm.submit(Task(_eat(150), category="eat")).result(60)
    assert big.attempts == 2 and big.memory_limit == 400   # killed at what was learnt, then given it all
    assert gm.stats()["tasks_resized"] == 1


def test_a_category_refuses_a_bad_mode_or_a_size_no_worker_has(gm):
    with pytest.raises(ValueError, match="mode must be"):
        gm.set_category("x", mode="min")
    with pytest.raises(ValueError, match="category 'x' asks for 800 memory"):
        gm.set_category("x", memory=800)


# ------------------------------------------------------------ priorities and cancelling

@pytest.fixture(scope="module")
def one():
    """One worker of one core."""
    with Manager(workers=1, cores_per_worker=1) as m:
        m.wait_for_workers()
        yield m


def test_a_higher_priority_starts_first(one, tmp_path):
    go, busy, order = tmp_path / "go", tmp_path / "busy", tmp_path / "order"
    first = one.submit(Task(f"touch {busy}; while [ ! -e {go} ]; do sleep 0.01; done"))
    wait_until(busy.exists, 30)
    low = one.submit(Task(f"echo low >> {order}", priority=1))
    high = one.submit(Task(f"echo high >> {order}", priority=5))
    same = one.submit(Task(f"echo same >> {order}", priority=5))

    def high_on_the_worker() -> bool:   # the low one taken back from the worker's queue, the high one sent
        t = one.core.tasks.get(high.task_id)
        return t is not None and t.worker is not None
    wait_until(high_on_the_worker, 30)
    go.touch()
    for f in (first, low, high, same):
        f.result(60)
    assert order.read_text().split() == ["high", "same", "low"]


def test_cancel_by_tag_stops_running_tasks_and_fails_their_readers(one, tmp_path):
    busy, pid = tmp_path / "busy", tmp_path / "pid"
    out = one.declare_temp()
    running = one.submit(Task(f"echo $$ > {pid}; touch {busy}; sleep 60; echo > made", outputs={"made": out},
                              tag="batch"))
    wait_until(busy.exists, 30)
    waiting = one.submit(Task("true", tag="batch"))
    reader = one.submit(Task("cat in", inputs={"in": out}))
    untouched = one.submit(Task("echo fine", tag="other"))
    assert one.cancel(tag="batch") == 2
    for f in (running, waiting):
        with pytest.raises(concurrent.futures.CancelledError):
            f.result(60)
    with pytest.raises(DependencyFailed, match=f"task {running.task_id}"):
        reader.result(60)
    assert untouched.result(60).stdout.strip() == "fine"   # the core was free: the sleep was stopped
    shell = int(pid.read_text())
    wait_until(lambda: not os.path.exists(f"/proc/{shell}"), 30)
    assert one.cancel(tag="batch") == 0
    assert one.stats()["tasks_cancelled"] == 2


def test_cancel_needs_a_tag(one):
    with pytest.raises(ValueError, match="tag must be a non-empty string"):
        one.cancel(tag="")
    with pytest.raises(ValueError, match="tag must be a non-empty string"):
        Task("true", tag=3)


# ------------------------------------------------------------ blocked hosts

def _worker(m: Manager, name: str, tmp_path, hostname: str | None = None) -> subprocess.Popen:
    """`tether worker` for m; with hostname, in a namespace of its own where its host is called that."""
    port = m.address.rsplit(":", 1)[1]
    cmd = [PY, "-m", "tether", "worker", f"127.0.0.1:{port}", "--cache-dir", str(tmp_path / f"cache-{name}"),
           "--secret-file", str(m.secret_file), "--name", name, "--clean", "--cores", "1"]
    if hostname is not None:
        cmd = ["unshare", "--map-root-user", "--uts", "sh", "-c", f'hostname {hostname} && exec "$@"', "sh", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True)


def _can_rename_host() -> bool:
    try:
        return subprocess.run(["unshare", "--map-root-user", "--uts", "hostname", "elsewhere"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _can_rename_host(), reason="needs unshare to give a worker a host name of its own")
def test_a_blocked_host_takes_no_new_work_and_its_temps_stay_readable(tmp_path):
    with Manager(workers=1, cores_per_worker=1) as m:
        m.wait_for_workers()
        temp = m.declare_temp()
        made = m.submit(Task("echo kept > t", outputs={"t": temp})).result(60)
        assert made.worker == "local-1"
        assert m.block_host(socket.gethostname(), reason="maintenance") == ["local-1"]
        later = _worker(m, "late", tmp_path)                            # same host, joins after the block
        other = _worker(m, "elsewhere", tmp_path, hostname="elsewhere")
        try:
            m.wait_for_workers(3)
            reads = [m.submit(Task("cat t", inputs={"t": temp})) for _ in range(3)]
            for f in reads:
                r = f.result(60)
                assert r.worker == "elsewhere" and r.stdout.strip() == "kept"   # read from the blocked worker
            assert m.stats()["reruns"] == 0
            assert m.unblock_host(socket.gethostname()) == ["late", "local-1"]
        finally:
            stop(later)
            stop(other)
        assert "no new work: maintenance" in later.stderr.read()
        assert "no new work" not in other.stderr.read()


def test_block_host_needs_a_host():
    with Manager(workers=0) as m:
        with pytest.raises(ValueError, match="host must be a non-empty string"):
            m.block_host("")
        assert m.unblock_host("nowhere") == []
