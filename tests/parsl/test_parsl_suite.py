"""A fast part of Parsl's own test suite, run against TetherExecutor (tests/parsl_config.py).

Parsl's suite needs pytest<8, so it runs in a virtual environment of its own,
made once in .parsl-suite/ (git-ignored) and made again when the pins below
or pyproject.toml change. tether is installed there in editable mode, so the
suite always runs the code of this tree. The whole suite, and its results,
are in the README ("Parsl's own test suite").
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import venv
from pathlib import Path

import parsl
import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE_ENV = REPO / ".parsl-suite" / "venv"
PINS = ["pytest>=7,<8", f"parsl[monitoring]=={parsl.__version__}", "pandas", "pytest-timeout"]
FILTER = "not cleannet and not issue_3620 and not shared_fs and not unix_filesystem_permissions_required"
SUBSET = [  # apps of both kinds, dependencies and their failures, retries, std streams, staging
    "test_python_apps/test_basic.py",
    "test_python_apps/test_depfail_propagation.py",
    "test_python_apps/test_fail.py",
    "test_bash_apps/test_basic.py",
    "test_bash_apps/test_stdout.py",
    "test_error_handling/test_retries.py",
    "test_staging/test_file_staging.py",
    "test_staging/test_staging_stdout.py",
]


def suite_python() -> Path:
    """The suite's interpreter, with its environment made (or remade) first if needed."""
    wanted = hashlib.sha256("\n".join(PINS).encode() + (REPO / "pyproject.toml").read_bytes()).hexdigest()
    stamp = SUITE_ENV / ".installed"
    py = SUITE_ENV / "bin" / "python"
    if py.exists() and stamp.exists() and stamp.read_text() == wanted:
        return py
    if not py.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(SUITE_ENV)
    subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", *PINS,
                    "-e", str(REPO)], check=True, timeout=900)
    stamp.write_text(wanted)
    return py


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_part_of_parsls_own_suite_passes(tmp_path):
    py = suite_python()
    tests = Path(subprocess.run([str(py), "-c", "import parsl, os; print(os.path.dirname(parsl.__file__))"],
                                capture_output=True, text=True, check=True).stdout.strip()) / "tests"
    env = dict(os.environ, PATH=f"{py.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [str(py), "-m", "pytest", *(str(tests / t) for t in SUBSET), "--config", str(REPO / "tests" / "parsl_config.py"),
         "--rootdir", str(tests), "-c", os.devnull, "-p", "no:cacheprovider", "-k", FILTER, "--timeout", "120",
         "-q", "-ra"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, f"{summary}\n{run.stdout[-6000:]}"
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
