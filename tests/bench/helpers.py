"""Running `tether bench` as a user would, and checking the report it writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

SHARED_FIGURES = ("makespan_s", "bytes_manager_to_worker", "bytes_worker_to_manager", "bytes_worker_to_worker",
                  "hop_latency_median_s", "peak_cache_bytes")
REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO.parent / "shared" / "workflows"   # ../shared/workflows beside the repository


def run_bench(tmp_path: Path, *args: str, timeout: float = 280) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`tether bench ARGS --json ...` with its rows' directories under tmp_path; returns the process and report."""
    out = tmp_path / "report.json"
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "tether", "bench", *args, "--json", str(out), "--work-dir", str(work)]
    before = _children()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert _children() - before == set(), "the benchmark left processes behind"
    assert list(work.iterdir()) == [], f"rows left files behind: {list(work.iterdir())}"
    return proc, json.loads(out.read_text()) if out.exists() else None


def _children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


def check_report(report: dict, benchmark: str, names: list[str]) -> dict[str, dict]:
    """The shared format: benchmark, machine, rows with every shared figure; returns rows by name."""
    assert report["benchmark"] == benchmark
    assert report["machine"]["cpus"] >= 1
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == names
    for r in rows.values():
        for figure in SHARED_FIGURES:
            assert figure in r, f"{r['name']} lacks {figure}"
    return rows


def check_ran(row: dict) -> None:
    """A row that ran: a positive makespan, right results, byte counts that are counts."""
    assert not row.get("error"), row.get("traceback")
    assert row["makespan_s"] > 0
    assert row.get("correct", True) is True, row.get("problems")
    for figure in ("bytes_manager_to_worker", "bytes_worker_to_manager", "bytes_worker_to_worker"):
        assert row[figure] is None or (isinstance(row[figure], int) and row[figure] >= 0)
    if row["hop_latency_median_s"] is not None:
        assert 0 <= row["hop_latency_median_s"] < row["makespan_s"]


def check_tether_parsl(row: dict) -> None:
    """Ran, or was skipped because this build has no Parsl front end (and says so)."""
    if row.get("skipped"):
        assert "tether.parsl" in row["skipped"]
    else:
        check_ran(row)


def check_parsl_threads(rows: dict[str, dict], report: dict, suffix: str = "") -> None:
    """Parsl's own thread pool ran beside the other Parsl rows, its threads' CPU seen (they are this
    process tree's), and the targets against it were checked."""
    row = rows[f"parsl-threads{suffix}"]
    check_ran(row)
    if not suffix:
        assert row["cpu_s"] is not None and row["cpu_s"] > 0
    named = [t for t in report["targets"] if t["target"].startswith(f"tether-parsl{suffix} ")
             and f"parsl-threads{suffix} " in t["target"]]
    assert len(named) == 2, report["targets"]
    if not rows[f"tether-parsl{suffix}"].get("skipped"):
        assert all(t["met"] is not None for t in named)


def check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
