"""The seed's program, with only its imports changed and batch_type="slurm", against the stand-in Slurm.

The program's text is examples/temp_file.py with "local" made "slurm";
it runs as a script of its own, as a user would run it, with the stand-in's
commands first on PATH. Its one block is a Slurm job whose worker makes the
temp and runs both apps. Jobs run on this host (the program names no
address: the manager offers its host's name, which a namespace would not
reach).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tether_bench.batch.cluster import BatchCluster

SEED = Path(__file__).resolve().parents[2] / "examples" / "temp_file.py"


@pytest.mark.slow
def test_the_seed_program_runs_in_slurm_jobs(tmp_path):
    text = SEED.read_text()
    assert text.count('batch_type="local"') == 1
    script = tmp_path / "seed_on_slurm.py"
    script.write_text(text.replace('batch_type="local"', 'batch_type="slurm"'))
    with BatchCluster(tmp_path / "batch", nodes=1, namespaces=False) as batch:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout == "intermediate data\n"
        assert batch.spool.settle(timeout=60) == []
        jobs = batch.jobs("slurm")
    assert jobs, "no Slurm job was submitted"
    assert {j["state"] for j in jobs} <= {"CANCELLED", "COMPLETED"}
    assert not batch.left, f"job processes outlived the run: {batch.left}"
