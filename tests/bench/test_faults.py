"""`tether bench faults --quick`: every fault injected for real, every Future ended, every output right."""
from __future__ import annotations

import os
import subprocess

import psutil
import pytest

from tether_bench.faults import FAULTS

from .helpers import check_png, check_ran, check_report, run_bench

ROOT_ONLY = {"link-down", "disk-full"}


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.timeout(300)
def test_faults_quick(tmp_path):
    namespaces = _namespaces()
    proc, report = run_bench(tmp_path, "faults", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [f"{w}/{f}" for w in ("chains", "fanin") for f in FAULTS]
    rows = check_report(report, "faults", names)
    for name, row in rows.items():
        fault = name.split("/")[1]
        if row.get("skipped"):   # only where this machine cannot make the fault, and saying why
            assert fault in ROOT_ONLY and os.geteuid() != 0, row["skipped"]
            assert "root" in row["skipped"]
            continue
        check_ran(row)
        assert row["futures_ended"] == row["tasks"] == row["tasks_done"]
        assert row["failures_by_reason"] == {} and row["pending_by_state"] is None
        if fault == "none":
            assert row["faults_injected"] == 0 and row["system_failures"] == 0
            assert row["vs_fault_free"] == 1.0
            continue
        assert row["faults_injected"] == 1, row["injections"]
        if fault == "disk-full" and row["faults_noticed"] == 0:   # shows only when a task there writes
            assert row["system_failures"] == 0 and row["time_to_notice_s"] is None
        else:
            assert row["faults_noticed"] == 1 and row["time_to_notice_s"] >= 0
        if fault == "interpreter":   # noticed as a lost attempt, which was made again
            assert row["system_failures"] >= 1
        for figure in ("attempts_beyond_first", "system_failures", "reruns", "blocklisted"):
            assert isinstance(row[figure], int) and row[figure] >= 0
        assert row["vs_fault_free"] > 0
        exit_codes = [i["exit_code"] for i in row["injections"]]
        if fault == "sigkill":
            assert exit_codes == [-9]
        if fault == "link-down":
            assert exit_codes == [4]      # the cut-off worker knew it had lost its manager
    targets = {t["target"]: t for t in report["targets"]}
    assert targets["every row: every Future ended, every output right"]["met"] is True
    # the cut links' namespaces are gone (others' runs on this machine may have made some meanwhile)
    assert [n for n in _namespaces() - namespaces if not _owner_alive(n)] == []
    check_png(tmp_path / "report.png")


def _owner_alive(namespace: str) -> bool:
    """Is the process that made an emulated cluster's namespace (tether-PID-...) still running?"""
    parts = namespace.split("-")
    return len(parts) > 1 and parts[1].isdigit() and psutil.pid_exists(int(parts[1]))


def _namespaces() -> set[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return set()
    return {line.split()[0] for line in out.splitlines() if line.strip()}
