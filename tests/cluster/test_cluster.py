"""Workers in network namespaces behind rate-limited links, driven by a real Manager."""
from __future__ import annotations

import hashlib
import os

import pytest

from tether import Manager, Task
from tether_bench.cluster import EmulatedCluster, unavailable_reason

REASON = unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


def test_workers_in_namespaces_connect_and_run_tasks():
    with (EmulatedCluster(2) as cluster, Manager(workers=0, host=cluster.manager_host) as m,
          cluster.workers_for(m, cores=1)):
        # each worker reached the manager from its own namespace's address
        assert {m.engine.links[f"cluster-{i}"].host for i in range(2)} == {link.host for link in cluster.links}
        root_ns = os.readlink("/proc/self/ns/net")
        futures = [m.submit(Task(f"readlink /proc/self/ns/net; echo {i}")) for i in range(8)]
        results = [f.result(60) for f in futures]
        for i, r in enumerate(results):
            ns, echoed = r.stdout.split()
            assert ns != root_ns and echoed == str(i)
        assert {r.worker for r in results} <= {"cluster-0", "cluster-1"}


def test_temp_crosses_between_namespaced_workers_intact(tmp_path):
    size = 50_000_000
    with EmulatedCluster(2, rate="1gbit") as cluster, Manager(workers=0, host=cluster.manager_host) as m:
        # resources force the two tasks apart: only the maker has the memory, only the reader the cores
        cluster.start_worker(0, m.address, m.secret_file, cores=1, memory=4000, name="maker")
        cluster.start_worker(1, m.address, m.secret_file, cores=2, memory=100, name="reader")
        try:
            before = cluster.traffic()
            crossed = pass_temp_between(m, tmp_path, size)
            after = cluster.traffic()
        finally:
            cluster.stop_workers()  # before the manager closes
    # the kernel saw the bytes leave the maker's link and arrive down the reader's
    assert after[0]["from_worker"] - before[0]["from_worker"] >= size
    assert after[1]["to_worker"] - before[1]["to_worker"] >= size
    assert after[1]["from_worker"] - before[1]["from_worker"] < size // 10
    print(f"\n50 MB peer to peer across {cluster.rate} links: {crossed:.2f} s from the maker's end "
          f"to the reader's start ({size / crossed / 1e6:.0f} MB/s; the link allows "
          f"{cluster.rate_bytes / 1e6:.0f} MB/s)")


def pass_temp_between(m: Manager, tmp_path, size: int) -> float:
    """A temp made by `maker`, read by `reader`, checksums compared; seconds it took to cross."""
    m.wait_for_workers(2)
    big = m.declare_temp()
    made_sum = m.declare_temp()
    read_sum = m.declare_file(tmp_path / "read.sha")
    made = m.submit(Task(f"head -c {size} /dev/urandom > big && sha256sum < big > sum",
                         outputs={"big": big, "sum": made_sum}, memory=1000))
    read = m.submit(Task("sha256sum < big > read.sha", inputs={"big": big},
                         outputs={"read.sha": read_sum}, cores=2))
    rm, rr = made.result(120), read.result(120)
    assert (rm.worker, rr.worker) == ("maker", "reader")
    assert m.fetch(made_sum, timeout=60) == (tmp_path / "read.sha").read_bytes()
    stats = m.stats()
    assert stats["bytes_worker_to_worker"] == size
    assert stats["bytes_worker_to_manager"] < 1000
    return rr.started - rm.finished


def test_manager_listening_on_all_interfaces_is_reached_through_each_gateway():
    with Manager(workers=0, host="0.0.0.0") as m, EmulatedCluster(1) as cluster, cluster.workers_for(m):
        payload = hashlib.sha256(b"x").hexdigest()
        data = m.declare_buffer(b"x")
        r = m.submit(Task("sha256sum < data", inputs={"data": data})).result(60)
        assert r.stdout.split()[0] == payload
        assert m.stats()["bytes_manager_to_worker"] == 1
