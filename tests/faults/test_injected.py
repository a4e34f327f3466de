"""Faults injected for real during the seed's chains and a fan-in: every output right, every Future ended.

Each fault hits one worker once the run is under way. A test asserts that
every Future ends within a bound, that every output is right, and that no
task ran more often than the manager sent it out (1 + retries +
recoveries). Faults that need root (a cut link in a network namespace, a
small tmpfs as a worker's cache) are skipped without it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest

from tether import Manager

from ..conftest import start_worker, stop, wait_until
from .workloads import chains, fan_in, side_effects_within_attempts

BOUND = 90.0          # seconds every Future has to end in, fault included
HEARTBEAT = 2.0


def workload(kind: str, m: Manager, tmp_path, python: bool = False):
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    if kind == "chains":
        return chains(m, marks, python=python)
    return fan_in(m, marks, tmp_path / "sum.txt", python=python)


def finish(m: Manager, run) -> None:
    deadline = time.monotonic() + BOUND
    for f in run.futures:
        f.result(max(0.1, deadline - time.monotonic()))
    run.check()
    side_effects_within_attempts(m, run)


def interpreters_of(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "tether.worker.interpreter" in " ".join(c.cmdline())]


@pytest.mark.parametrize("kind", ["chains", "fan-in"])
@pytest.mark.parametrize("fault", ["SIGKILL", "SIGTERM", "SIGSTOP"])
def test_a_local_worker_signalled_mid_run(tmp_path, kind, fault):
    with Manager(workers=2, heartbeat=HEARTBEAT) as m:
        m.wait_for_workers()
        run = workload(kind, m, tmp_path)
        wait_until(lambda: sum(f.done() for f in run.futures) >= 3, timeout=30)
        victim = m._local[0].proc
        victim.send_signal(getattr(signal, fault))
        try:
            finish(m, run)
        finally:
            if fault == "SIGSTOP" and victim.poll() is None:
                victim.send_signal(signal.SIGCONT)
        assert victim.poll() is not None   # a stopped local worker is killed, not trusted again
        assert len(m._local) == 3          # and replaced


@pytest.mark.parametrize("kind", ["chains", "fan-in"])
def test_an_interpreter_killed_mid_run(tmp_path, kind):
    with Manager(workers=2, heartbeat=HEARTBEAT) as m:
        m.wait_for_workers()
        run = workload(kind, m, tmp_path, python=True)
        wait_until(lambda: sum(f.done() for f in run.futures) >= 3, timeout=30)
        victims = wait_until(lambda: interpreters_of(m._local[0].proc.pid), timeout=30)
        for p in victims:
            p.kill()
        finish(m, run)
        assert m.stats()["workers"] == 2   # the worker itself carries on


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and tmpfs mounts need root")


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("kind", ["chains", "fan-in"])
def test_a_worker_cut_off_mid_run(tmp_path, kind):
    from tether_bench.cluster import EmulatedCluster, unavailable_reason
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with EmulatedCluster(2) as cluster, Manager(workers=0, host=cluster.manager_host, heartbeat=HEARTBEAT) as m:
        workers = [cluster.start_worker(i, m.address, m.secret_file, extra_args=("--heartbeat", f"{HEARTBEAT}"))
                   for i in range(2)]
        try:
            m.wait_for_workers(2)
            run = workload(kind, m, tmp_path)
            wait_until(lambda: sum(f.done() for f in run.futures) >= 3, timeout=30)
            link = cluster.links[0]
            subprocess.run(["ip", "link", "set", link.root_dev, "down"], check=True)   # no RST, no FIN: silence
            cut = time.monotonic()
            finish(m, run)
            # the cut-off worker gave up on its manager by itself and stopped its tasks
            assert workers[0].proc.wait(HEARTBEAT * 4) == 4
            assert time.monotonic() - cut < BOUND
        finally:
            cluster.stop_workers()


@needs_root
@pytest.mark.parametrize("kind", ["chains", "fan-in"])
def test_a_worker_whose_disk_is_full(tmp_path, kind):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    procs = []
    try:
        # filled to the brim, but for what a worker needs to start (directories take no room)
        subprocess.run(["dd", "if=/dev/zero", f"of={small / 'filler'}", "bs=4k"], capture_output=True,
                       check=False)
        with Manager(workers=0, host="127.0.0.1") as m:
            procs.append(start_worker(m, "full", tmp_path, "--cache-dir", str(small / "cache"), "--cores", "2"))
            procs.append(start_worker(m, "roomy", tmp_path))
            m.wait_for_workers(2)
            run = workload(kind, m, tmp_path)
            finish(m, run)
            assert m.core.counters.system_failures >= 1   # the full disk was hit, and did not count against
            assert m.stats()["tasks_failed"] == 0          # the tasks' own retries
    finally:
        for p in procs:
            stop(p)
        subprocess.run(["umount", "-l", str(small)], check=False)
