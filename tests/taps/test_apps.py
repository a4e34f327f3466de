"""TaPS's apps give the same results on tether as on TaPS's process pool (small sizes).

Both executors run each app from the same TaPS command line with the same
seeded inputs; the apps' own output (word counts, the factor matrix) and
the task graphs they record are compared.
"""
from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pytest
from taps.executor import FutureDependencyExecutor

from tether.taps.executor import TapsExecutor

from .helpers import run_app

SYNTHETIC = ["--app", "synthetic", "--app.task-count", "12", "--app.task-data-bytes", "10000"]


@pytest.fixture(scope="module")
def tether_executor():
    ex = TapsExecutor(2, cores_per_worker=1)
    yield ex
    ex.shutdown()


@pytest.fixture(scope="module")
def process_pool():
    ex = FutureDependencyExecutor(ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")))
    yield ex
    ex.shutdown()


def graph(records):
    """What the records say about the task graph: (task name, number of parents, success), counted."""
    return Counter((r["name"], len(r["parent_task_ids"]), r["success"]) for r in records)


def both(args, tether_executor, process_pool, tmp_path):
    mine = run_app(args, tether_executor, tmp_path / "tether")
    theirs = run_app(args, process_pool, tmp_path / "process-pool")
    return mine, theirs


@pytest.mark.parametrize("structure", ["sequential", "diamond", "reduce"])
@pytest.mark.slow
def test_synthetic(structure, tether_executor, process_pool, tmp_path):
    args = [*SYNTHETIC, "--app.structure", structure]
    (_, mine), (_, theirs) = both(args, tether_executor, process_pool, tmp_path)
    expected = {"sequential": 12, "diamond": 14, "reduce": 13}[structure]
    assert len(mine) == expected
    assert all(r["success"] for r in mine)
    assert graph(mine) == graph(theirs)
    assert all(r["execution"]["task_end_time"] >= r["execution"]["task_start_time"] for r in mine)


def test_cholesky(tether_executor, process_pool, tmp_path):
    args = ["--app", "cholesky", "--app.matrix-size", "8", "--app.block-size", "2"]
    (messages, records), (their_messages, their_records) = both(args, tether_executor, process_pool, tmp_path)
    output = [m for m in messages if m.startswith("Output matrix")]
    assert len(output) == 1 and output[0].count("[") == 9          # the 8x8 factor, printed
    assert messages == their_messages                              # same input, same factor
    assert graph(records) == graph(their_records)


def test_mapreduce(tether_executor, process_pool, tmp_path):
    args = ["--app", "mapreduce", "--app.generate", "true", "--app.generated-files", "4",
            "--app.generated-words", "3000", "--app.map-tasks", "4", "--app.data-dir", str(tmp_path / "data")]
    (messages, records), (their_messages, _) = both(args, tether_executor, process_pool, tmp_path)
    assert "10 most frequent words:" in messages
    assert any(m.startswith("Total number of words: ") for m in messages)
    assert messages == their_messages                              # same files, same counts
    assert {r["name"] for r in records} == {"map_task", "reduce_task"}
