"""A worker's cache keeps to its budget: least recently used inputs go, and come back when needed."""
from __future__ import annotations

import os

from tether import Manager, Task
from tether.manager import txlog

from .conftest import start_worker, stop

MB = 1 << 20


def cache_bytes(cache_dir) -> int:
    root = cache_dir / "cache"
    return sum(e.stat().st_size for e in os.scandir(root) if e.is_file())


def test_inputs_go_when_the_cache_is_over_budget_and_come_back_when_read_again(tmp_path):
    inputs = []
    for i in range(6):
        p = tmp_path / f"in{i}.bin"
        p.write_bytes(bytes([i]) * MB)
        inputs.append(p)
    with Manager(workers=0, run_dir=tmp_path / "runs") as m:
        w = start_worker(m, "small", tmp_path, "--cache-budget", "3", "--cores", "1")
        try:
            m.wait_for_workers(1)
            files = [m.declare_file(p) for p in inputs]
            for f in files:    # one after another: each needs its input in the cache
                r = m.submit(Task("od -An -tu1 -N1 in", inputs={"in": f})).result(60)
                assert r.exit_code == 0
            assert cache_bytes(tmp_path / "cache-small") <= 3 * MB + 4096   # within the budget (and a function)
            node = m.core.files[files[0].name]
            assert "small" not in {w.id for w in node.replicas}   # the manager knows it went
            again = m.submit(Task("od -An -tu1 -N1 in", inputs={"in": files[0]})).result(60)
            assert again.stdout.split() == ["0"]                 # sent again, and right
            assert m.stats()["bytes_manager_to_worker"] >= 7 * MB
        finally:
            stop(w)
    evicted = [e for e in txlog.read(m.run_dir / "transactions") if e.kind == "CACHE" and e.event == "EVICT"]
    assert files[0].name in {e.fields[0] for e in evicted}
