"""Fixtures: transaction logs written by the real TxLog (see runlog.py)."""
from __future__ import annotations

import pytest

from .runlog import write_big, write_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding the small run's `transactions`, and what it holds."""
    path = tmp_path_factory.mktemp("run")
    expected = write_run(path / "transactions")
    return path, expected


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "transactions"
    return path, write_big(path)
