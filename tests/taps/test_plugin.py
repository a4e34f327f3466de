"""The tether executor in TaPS: registered, configured from TaPS's command line, values left on workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from taps.engine import Engine
from taps.plugins import get_executor_configs
from taps.run.parse import parse_args_to_config

from tether import Executor
from tether.taps.executor import TapsExecutor
from tether.taps.plugin import TetherConfig

from .helpers import run_app


def test_registered_and_parsed_from_the_command_line():
    assert get_executor_configs()["tether"] is TetherConfig
    config = parse_args_to_config(["--app", "cholesky", "--app.matrix-size", "4", "--app.block-size", "2",
                                   "--engine.executor", "tether", "--engine.executor.workers", "1",
                                   "--engine.executor.spill-threshold", "4096",
                                   "--engine.executor.group-tasks", "false"])
    ex = config.engine.executor
    assert isinstance(ex, TetherConfig)
    assert (ex.workers, ex.spill_threshold, ex.group_tasks) == (1, 4096, False)


def test_the_config_builds_a_tether_executor_with_warm_workers(tmp_path):
    executor = TetherConfig(workers=1, stats_file=str(tmp_path / "stats.json")).get_executor()
    try:
        assert isinstance(executor, TapsExecutor)
        assert isinstance(executor.executor, Executor)
        assert executor.executor.manager.core.counters.tasks_done >= 1   # the warm-up ran
        assert executor.submit(pow, 2, 10).result() == 1024              # a plain function, not a TaPS task
    finally:
        executor.shutdown()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["tasks_done"] >= 2


def divide(a: float, b: float) -> float:
    return a / b


def test_a_task_error_reaches_the_app_and_its_record(tmp_path):
    executor = TapsExecutor(1)
    try:
        with Engine(executor) as engine:
            ok = engine.submit(divide, 1.0, 4.0)
            bad = engine.submit(divide, ok, 0.0)        # runs on the worker, with ok's value
            assert ok.result() == 0.25
            with pytest.raises(ZeroDivisionError):
                bad.result()
    finally:
        executor.shutdown()
    # the engine's done callbacks have all run once the executor is shut down
    assert bad.info.success is False and bad.info.exception.type == "ZeroDivisionError"
    assert ok.info.success is True and ok.info.execution.hostname


@pytest.mark.slow
def test_sequential_app_brings_only_what_it_asks_for(tmp_path):
    """200 tasks of 100 kB: only the last value (asked for by the app) and the small records come back."""
    executor = TapsExecutor(2, cores_per_worker=1)
    try:
        before = executor.stats()["bytes_worker_to_manager"]
        _, records = run_app(["--app", "synthetic", "--app.structure", "sequential", "--app.task-count", "200",
                              "--app.task-data-bytes", "100000"], executor, tmp_path)
        moved = executor.stats()["bytes_worker_to_manager"] - before
    finally:
        executor.shutdown()
    assert len(records) == 200 and all(r["success"] for r in records)
    asked = 100_000                      # tasks[-1].result() at the end of the app
    assert asked <= moved < asked + 200 * 1_000, f"{moved:,} bytes came back from the workers"


@pytest.mark.slow
def test_python_m_tether_taps_runs_an_app_on_tether(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "tether.taps", "--app", "synthetic", "--app.structure", "sequential",
            "--app.task-count", "20", "--app.task-data-bytes", "50000", "--engine.executor", "tether",
            "--engine.executor.workers", "2", "--run.dir-format", str(run_dir), "--logging.level", "WARNING",
            "--logging.file-level", "INFO"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = [json.loads(line) for line in (run_dir / "tasks.jsonl").read_text().splitlines()]
    assert len(records) == 20 and all(r["success"] for r in records)
    assert "Finished app" in (run_dir / "log.txt").read_text()
    stats = json.loads((run_dir / "tether-stats.json").read_text())
    assert 50_000 <= stats["bytes_worker_to_manager"] < 50_000 + 20 * 1_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]        # the manager's files are gone
