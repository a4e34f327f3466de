"""Parsl's monitoring with a TetherExecutor: a MonitoringHub and no other option fills its database."""
from __future__ import annotations

import sqlite3

import pytest
from parsl import python_app

from .conftest import parsl_on_tether

pytest.importorskip("sqlalchemy", reason="Parsl's monitoring needs parsl[monitoring] (the dev extra has it)")


@python_app
def double(x):
    return 2 * x


@pytest.mark.slow
def test_a_monitoring_hub_with_no_other_option_fills_the_database(tmp_path):
    from parsl.monitoring.monitoring import MonitoringHub

    db = tmp_path / "monitoring.db"
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{db}", resource_monitoring_interval=1)
    with parsl_on_tether(tmp_path / "runinfo", workers=1, monitoring=hub):
        assert [double(i).result(60) for i in range(3)] == [0, 2, 4]
    with sqlite3.connect(db) as con:
        tasks = con.execute("select count(*) from task").fetchone()[0]
        tries = con.execute("select count(*) from try where task_try_time_running is not null").fetchone()[0]
        statuses = {row[0] for row in con.execute("select task_status_name from status")}
    assert tasks == 3
    assert tries == 3   # the tries' running times came back from the workers through the radio
    assert "exec_done" in statuses


def test_tethers_log_and_run_directory_are_in_parsls_run_directory(tmp_path):
    """tether's records reach runinfo/NNN/parsl.log, and the manager's run directory (its own log and
    transaction log) is made inside Parsl's run directory and stays there."""
    runinfo = tmp_path / "runinfo"
    with parsl_on_tether(runinfo) as ex:
        assert double(21).result(60) == 42
        run_dir = ex.manager.run_dir
    parsl_logs = list(runinfo.rglob("parsl.log"))
    assert len(parsl_logs) == 1
    text = parsl_logs[0].read_text()
    assert "tether.manager" in text and "joined" in text   # a worker joining, as tether logged it
    assert run_dir.is_relative_to(parsl_logs[0].parent)
    assert "SUBMITTED" in (run_dir / "transactions").read_text()
