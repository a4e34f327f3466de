"""Nothing of an emulated cluster outlives it: not on exit, an exception, SIGINT or SIGTERM."""
from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tether import Manager
from tether_bench.cluster import EmulatedCluster, remove_stale, unavailable_reason

REASON = unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


def footprint(cluster: EmulatedCluster) -> dict:
    """What the cluster made: the names and processes to look for afterwards."""
    return {
        "token": cluster.token,
        "namespaces": [link.namespace for link in cluster.links],
        "pids": [w.proc.pid for w in cluster.workers],
        "work_dir": str(cluster.work_dir),
    }


def leftovers(fp: dict) -> list[str]:
    left = []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left += [f"namespace {ns}" for ns in fp["namespaces"] if ns in namespaces]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if f"tt{fp['token']}" in line]
    qdiscs = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
    left += [f"qdisc {line}" for line in qdiscs.splitlines() if f"tt{fp['token']}" in line]
    for pid in fp["pids"]:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(f"process {pid}")
        except psutil.NoSuchProcess:
            pass
    if Path(fp["work_dir"]).exists():
        left.append(f"directory {fp['work_dir']}")
    return left


def started_cluster(cluster: EmulatedCluster, m: Manager) -> dict:
    cluster.start_workers(m.address, m.secret_file)
    m.wait_for_workers(len(cluster.links))
    fp = footprint(cluster)
    assert len(fp["namespaces"]) == len(fp["pids"]) == len(cluster.links)
    return fp


# The cluster is opened inside the manager's block, so that leaving it is what stops the workers.

def test_normal_exit_leaves_nothing():
    with Manager(workers=0, host="0.0.0.0") as m, EmulatedCluster(2) as cluster:
        fp = started_cluster(cluster, m)
        assert leftovers(fp)  # everything is there while the cluster is up
    assert leftovers(fp) == []


def test_exception_leaves_nothing():
    fp = {}
    with pytest.raises(RuntimeError, match="inside"):
        with Manager(workers=0, host="0.0.0.0") as m, EmulatedCluster(2) as cluster:
            fp = started_cluster(cluster, m)
            raise RuntimeError("inside the cluster block")
    assert fp and leftovers(fp) == []


HOLDER = textwrap.dedent("""
    import json, sys, time
    from tether import Manager
    from tether_bench.cluster import EmulatedCluster
    with Manager(workers=0, host="0.0.0.0") as m, EmulatedCluster(2) as cluster:
        cluster.start_workers(m.address, m.secret_file)
        m.wait_for_workers(2)
        print(json.dumps({"token": cluster.token, "namespaces": [l.namespace for l in cluster.links],
                          "pids": [w.proc.pid for w in cluster.workers], "work_dir": str(cluster.work_dir)}),
              flush=True)
        time.sleep(120)
""")


def interruptible() -> None:
    """In the child: SIGINT as a terminal's Ctrl-C gives it, even where the test runs with SIGINT
    ignored (a shell's background job), which a child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_holding_process_leaves_nothing(sig):
    child = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, preexec_fn=interruptible)
    try:
        line = child.stdout.readline()
        assert line, f"the child did not start its cluster:\n{child.stderr.read()}"
        fp = json.loads(line)
        assert leftovers(fp)
        child.send_signal(sig)
        child.wait(60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode != 0  # it was interrupted, not finished
    assert leftovers(fp) == []


def test_a_run_killed_outright_is_swept_by_the_next(tmp_path):
    """SIGKILL leaves no chance to clean up: the next cluster removes what is left, and only that."""
    holder = HOLDER.replace("EmulatedCluster(2)", f"EmulatedCluster(2, work_dir={str(tmp_path)!r})")
    holder = holder.replace('"work_dir": str(cluster.work_dir)}', '"work_dir": str(cluster.work_dir), '
                            '"run_dir": str(m.run_dir)}')
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        line = child.stdout.readline()
        assert line, f"the child did not start its cluster:\n{child.stderr.read()}"
        fp = json.loads(line)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
    try:
        assert leftovers(fp)  # killed outright, it could not clean up
        with EmulatedCluster(1, work_dir=tmp_path) as live:
            live_fp = footprint(live)
            # a live cluster is never taken for a dead one
            assert remove_stale(tmp_path) == [] and leftovers(live_fp)
        assert leftovers(fp) == []
    finally:
        remove_stale(tmp_path)
        shutil.rmtree(fp["run_dir"], ignore_errors=True)  # the killed manager's own directory
