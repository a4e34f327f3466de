"""The core engine end to end: real worker processes, sockets and files."""
from __future__ import annotations

import os

import pytest

from tether import Manager, PythonTask, Task

from .conftest import cache_files, start_worker, stop, wait_until


def test_producer_and_consumer_on_one_worker(shared_manager, tmp_path):
    m = shared_manager
    src_path = tmp_path / "in.txt"
    src_path.write_text("b\na\nc\n")
    before = m.stats()
    src = m.declare_file(src_path)
    tmp = m.declare_temp()
    out = m.declare_file(tmp_path / "result.txt")
    a = Task("sort in.txt > mid.txt", inputs={"in.txt": src}, outputs={"mid.txt": tmp})
    b = Task("wc -l < mid.txt > result.txt", inputs={"mid.txt": tmp}, outputs={"result.txt": out})
    fb = m.submit(b)   # the consumer first: it waits for its producer
    fa = m.submit(a)
    rb, ra = fb.result(30), fa.result(30)
    assert (tmp_path / "result.txt").read_text().strip() == "3"
    assert ra.worker == rb.worker and ra.exit_code == 0
    assert rb.hop_latency is not None and rb.hop_latency >= 0 and ra.hop_latency is None
    after = m.stats()
    # the temp never reached the manager: only the 2-byte result came back
    assert after["bytes_worker_to_manager"] - before["bytes_worker_to_manager"] == 2
    assert after["bytes_worker_to_worker"] == before["bytes_worker_to_worker"]


def test_output_file_comes_back_with_the_right_bytes(shared_manager, tmp_path):
    m = shared_manager
    data = os.urandom(300_000)
    buf = m.declare_buffer(data)
    out = m.declare_file(tmp_path / "copy.bin")
    m.submit(Task("cp in.bin out.bin", inputs={"in.bin": buf}, outputs={"out.bin": out})).result(30)
    assert (tmp_path / "copy.bin").read_bytes() == data


def test_user_file_sent_once_per_worker(tmp_path):
    data = os.urandom(100_000)
    (tmp_path / "big").write_bytes(data)
    with Manager(workers=1) as m:
        big = m.declare_file(tmp_path / "big")
        futures = [m.submit(Task("wc -c < big", inputs={"big": big})) for _ in range(5)]
        assert all(f.result(30).stdout.strip() == "100000" for f in futures)
        assert m.stats()["bytes_manager_to_worker"] == 100_000


def test_fetch_gives_a_temp_on_request(shared_manager):
    m = shared_manager
    tmp = m.declare_temp()
    m.submit(Task("printf hello > t", outputs={"t": tmp}))
    assert m.fetch(tmp, timeout=30) == b"hello"


def test_python_task_value_and_files(shared_manager, tmp_path):
    m = shared_manager

    def count_words(scale):
        return scale * len(open("text").read().split())

    text = m.declare_buffer(b"one two three")
    assert m.submit(PythonTask(count_words, args=(2,), inputs={"text": text})).result(30) == 6


def test_python_task_exception_is_reraised_with_remote_traceback(shared_manager):
    def explode(x):
        raise KeyError(f"no such key {x}")

    f = shared_manager.submit(PythonTask(explode, args=("k",)))
    with pytest.raises(KeyError, match="no such key k") as info:
        f.result(30)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "Remote traceback" in notes and "explode" in notes


def test_python_tasks_reuse_warm_interpreters(shared_manager):
    pids = {shared_manager.submit(PythonTask(os.getpid)).result(30) for _ in range(20)}
    # one interpreter per core of each of the two workers, not one process per task
    assert len(pids) <= 2


def test_stats_has_the_documented_keys(shared_manager):
    stats = shared_manager.stats()
    for key in ("tasks_submitted", "tasks_done", "tasks_failed", "bytes_manager_to_worker",
                "bytes_worker_to_manager", "bytes_worker_to_worker", "hop_latency_median_s",
                "hop_latency_p95_s", "cache_bytes_peak"):
        assert key in stats
    assert isinstance(stats["cache_bytes_peak"], dict)


def test_temps_are_collected_once_their_consumers_succeed(tmp_path):
    with Manager(workers=1) as m:
        kept = m.declare_temp(keep=True)
        tmps = [m.declare_temp() for _ in range(3)]
        out = m.declare_file(tmp_path / "end")
        m.submit(Task("echo 0 > o", outputs={"o": tmps[0]}))
        m.submit(Task("cat i > o", inputs={"i": tmps[0]}, outputs={"o": tmps[1]}))
        m.submit(Task("cat i > o; echo k > k", inputs={"i": tmps[1]}, outputs={"o": tmps[2], "k": kept}))
        m.submit(Task("cat i k > o", inputs={"i": tmps[2], "k": kept}, outputs={"o": out})).result(30)
        names = {t.name for t in tmps}
        wait_until(lambda: not names & set(cache_files(m)["local-1"]))
        assert kept.name in cache_files(m)["local-1"]
        assert m.fetch(kept, timeout=30) == b"k\n"


def test_temp_crosses_between_workers_peer_to_peer(tmp_path):
    """50 MB made on one worker, read on another: straight between them, intact."""
    with Manager(workers=0) as m:
        # resources force the two tasks apart: only `maker` has the memory, only `reader` the cores
        procs = [start_worker(m, "maker", tmp_path, "--cores", "1", "--memory", "4000"),
                 start_worker(m, "reader", tmp_path, "--cores", "2", "--memory", "100")]
        try:
            m.wait_for_workers(2)
            big = m.declare_temp()
            made_sum = m.declare_temp()
            read_sum = m.declare_file(tmp_path / "read.sha")
            mf = m.submit(Task("head -c 50000000 /dev/urandom > big && sha256sum < big > sum",
                               outputs={"big": big, "sum": made_sum}, memory=1000))
            rf = m.submit(Task("sha256sum < big > read.sha", inputs={"big": big},
                               outputs={"read.sha": read_sum}, cores=2))
            assert rf.result(60).worker == "reader" and mf.result(60).worker == "maker"
            assert m.fetch(made_sum, timeout=30) == (tmp_path / "read.sha").read_bytes()
            s = m.stats()
            assert s["bytes_worker_to_worker"] == 50_000_000
            # the 50 MB went between workers; only the two checksums came to the manager
            assert s["bytes_worker_to_manager"] < 1000
        finally:
            for p in procs:
                stop(p)


def test_remote_worker_reuses_its_cache_across_runs(tmp_path):
    (tmp_path / "data").write_bytes(b"x" * 10_000)
    cache = tmp_path / "cache-keep"
    secret = tmp_path / "secret"
    secret.write_text("s" * 32)
    for run in range(2):
        with Manager(workers=0, secret_file=secret) as m:
            host, port = m.address.rsplit(":", 1)
            import subprocess
            import sys
            p = subprocess.Popen([sys.executable, "-m", "tether", "worker", f"127.0.0.1:{port}",
                                  "--cache-dir", str(cache), "--secret-file", str(secret), "--keep-cache"])
            try:
                m.wait_for_workers(1)
                data = m.declare_file(tmp_path / "data")
                r = m.submit(Task("wc -c < data", inputs={"data": data})).result(30)
                assert r.stdout.strip() == "10000"
                sent = m.stats()["bytes_manager_to_worker"]
                assert sent == (10_000 if run == 0 else 0)
            finally:
                stop(p)


def test_many_small_tasks_all_finish(shared_manager):
    futures = [shared_manager.submit(Task(f"echo {i}")) for i in range(300)]
    assert [f.result(60).stdout.strip() for f in futures] == [str(i) for i in range(300)]


def _nothing():
    return None


def test_finished_tasks_that_make_nothing_leave_no_record_behind():
    """A long run must not grow with the tasks it has finished: those that make nothing are let go."""
    from concurrent.futures import wait

    with Manager(workers=1) as m:
        futures = [m.submit(PythonTask(_nothing)) for _ in range(2000)]
        futures.append(m.submit(Task("exit 2")))
        wait(futures, timeout=120)
        assert all(f.done() for f in futures) and futures[-1].exception() is not None
        wait_until(lambda: not m.core.tasks and not m.engine.records, timeout=10)
        stats = m.stats()
        assert stats["tasks_done"] == 2000 and stats["tasks_failed"] == 1
        assert m.core.counts_by_state()["done"] == 2000


def test_finished_chains_whose_files_the_program_dropped_leave_nothing_behind(tmp_path):
    """Lineage is kept while a file it made may be asked for. Chains built in a loop drop each
    handle as the loop moves on: once the chains are done, their tasks and files go, and a chain
    whose temp the program still holds stays whole (its temp, kept, can be fetched, and is remade
    if lost)."""
    import gc
    from concurrent.futures import wait

    with Manager(workers=2, run_dir=tmp_path / "runs") as m:
        futures = []
        for c in range(20):
            prev = None
            for i in range(10):
                out = m.declare_file(tmp_path / f"chain-{c}") if i == 9 else m.declare_temp()
                cmd = f"cat in > out && echo {i} >> out" if prev else "echo 0 > out"
                futures.append(m.submit(Task(cmd, inputs={"in": prev} if prev else {}, outputs={"out": out})))
                prev = out
        held = m.declare_temp(keep=True)   # fetched after its reader ended: kept until then
        futures.append(m.submit(Task("echo kept > out", outputs={"out": held})))
        futures.append(m.submit(Task("cat in > out", inputs={"in": held}, outputs={"out": m.declare_temp()})))
        del out, prev
        wait(futures, timeout=120)
        assert all(f.exception() is None for f in futures)
        assert (tmp_path / "chain-3").read_text().split() == [str(i) for i in range(10)]
        gc.collect()
        # what stays: the task that made the temp still held (its consumer made only a dropped temp)
        wait_until(lambda: len(m.core.tasks) == 1 and len(m.engine.records) == 1, timeout=30)
        assert sorted(n for n in m.core.files if n.startswith("temp-")) == [held.name]
        assert m.fetch(held, timeout=60) == b"kept\n"
        assert m.core.counts_by_state()["done"] == 202 and m.stats()["reruns"] == 0
