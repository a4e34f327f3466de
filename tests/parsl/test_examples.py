"""The Parsl examples run as a user runs them: as programs, in a directory of their own."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_seed_example_prints_intermediate_data(tmp_path):
    assert run_example("temp_file.py", tmp_path).stdout == "intermediate data\n"


@pytest.mark.slow
def test_chains_example_runs_its_chains_through_parsl(tmp_path):
    out = run_example("chains.py", tmp_path, "--chains", "3", "--length", "5", "--workers", "2").stdout
    lines = {line[:25].strip(): line[25:].strip() for line in out.splitlines()[1:]}  # "label   value"
    assert lines["results correct"] == "yes"
    assert lines["tasks done / failed"] == "15 / 0"
