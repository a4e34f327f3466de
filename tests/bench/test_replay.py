"""`tether bench replay --quick` on a real trace from ../shared/workflows."""
from __future__ import annotations

import json

import pytest

from tether_bench.replay import DEFAULT_ROWS, workflow

from .helpers import WORKFLOWS, check_parsl_threads, check_png, check_ran, check_report, check_tether_parsl, run_bench

TRACE = WORKFLOWS / "montage-chameleon-dss-05d-001.json"
needs_trace = pytest.mark.skipif(not TRACE.exists(), reason=f"no workflow traces beside the repository ({TRACE})")


@needs_trace
@pytest.mark.slow
def test_replay_quick(tmp_path):
    proc, report = run_bench(tmp_path, "replay", str(TRACE), "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "replay", DEFAULT_ROWS)
    for row in rows.values():
        check_ran(row)
    p = report["parameters"]
    assert rows["tether-native"]["tasks_done"] == p["tasks"] == 58
    # inputs go out from the submitting side, finals come back; temps need not
    assert rows["tether-native"]["bytes_manager_to_worker"] >= p["input_bytes"] > 0
    assert rows["tether-native"]["bytes_worker_to_manager"] >= p["final_bytes"] > 0
    check_png(tmp_path / "report.png")


@needs_trace
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_replay_parsl_rows_quick(tmp_path):
    """The Parsl rows, off by default here, run the trace too, with Parsl's log off."""
    names = ["floor", "parsl-threads", "parsl-htex", "tether-parsl"]
    proc, report = run_bench(tmp_path, "replay", str(TRACE), "--quick", "--no-parsl-logging", "--rows", ",".join(names))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "replay", names)
    for name, row in rows.items():
        (check_tether_parsl if name == "tether-parsl" else check_ran)(row)
    check_parsl_threads(rows, report)
    assert all(t["target"].endswith("Parsl's log off") for t in report["targets"][1:])


@needs_trace
def test_replay_classifies_files_by_the_rule():
    _, wf = workflow(TRACE, time_scale=0.0, size_scale=1.0)
    doc = json.loads(TRACE.read_text())["workflow"]["specification"]
    made = {o for t in doc["tasks"] for o in t["outputFiles"]}
    read = {i for t in doc["tasks"] for i in t["inputFiles"]}
    assert set(wf.inputs) == read - made
    assert wf.temps == made & read
    assert wf.finals == made - read
    sizes = {f["id"]: f["sizeInBytes"] for f in doc["files"]}
    assert all(len(wf.inputs[f]) == sizes[f] for f in list(wf.inputs)[:3])


def test_replay_refuses_a_file_that_is_not_a_trace(tmp_path):
    bad = tmp_path / "not-a-trace.json"
    bad.write_text('{"name": "x"}')
    proc, report = run_bench(tmp_path, "replay", str(bad))
    assert proc.returncode == 2 and report is None
    assert "not a WfFormat workflow" in proc.stderr
