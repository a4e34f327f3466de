"""`tether bench shapes`: real workflow shapes with checkable files, on the emulated cluster when root."""
from __future__ import annotations

import inspect
import shutil
import subprocess

import pytest

from tether.manager.manager import Manager
from tether_bench import runner, shapes
from tether_bench.display import Display
from tether_bench.report import Report
from tether_bench.shape_traces import SHAPES, default_traces_dir, generate, io_bytes, load, workflow
from tether_bench.systems import Unavailable
from tether_bench.systems.htex_shared import DirectoryPeak

from .helpers import check_ran, check_report, run_bench

MONTAGE = default_traces_dir() / SHAPES["montage"].instance
needs_trace = pytest.mark.skipif(not MONTAGE.exists(), reason=f"no workflow traces beside the repository ({MONTAGE})")
NEW_OPTIONS = {"placement", "order", "prune"} <= set(inspect.signature(Manager).parameters)


def _cluster_reason() -> str | None:
    from tether_bench.cluster import unavailable_reason
    return unavailable_reason()


def _run_steps(wf, directory):
    """Every step's command in one directory, in order, as the floor runs them; (read, written) in all."""
    wf.write_inputs(directory)
    read = written = 0
    for s in wf.steps:
        done = subprocess.run(["/bin/sh", "-c", s.command], cwd=directory, capture_output=True, text=True)
        assert done.returncode == 0, (s.command, done.stderr)
        r, w = io_bytes(done.stdout)
        read, written = read + r, written + w
    return read, written


@needs_trace
def test_files_carry_lines_that_catch_a_wrong_input(tmp_path):
    _, tasks, sizes, source = load(SHAPES["montage"], default_traces_dir())
    assert source.startswith("instance")
    wf = workflow(tasks, sizes, time_scale=0.0, size_scale=0.0005)
    read, written = _run_steps(wf, tmp_path / "right")
    assert wf.problems(tmp_path / "right") == []
    # what the tasks say they read and wrote is what the files hold
    assert read == sum((tmp_path / "right" / n).stat().st_size for s in wf.steps for n in s.inputs)
    assert written == sum(wf.sizes[n] for s in wf.steps for n in s.outputs)
    # the same bytes, one input's line changed: the finals made from it say so
    wrong = tmp_path / "wrong"
    name = sorted(wf.inputs)[0]
    data = bytearray(wf.inputs[name])
    data[0] = ord("x") if data[0] != ord("x") else ord("y")
    wf.inputs[name] = bytes(data)
    _run_steps(wf, wrong)
    problems = wf.problems(wrong)
    assert problems and all("a wrong input upstream" in p for p in problems)


def test_a_generated_shape_is_the_same_every_time():
    pytest.importorskip("wfcommons")
    _, tasks, sizes = generate(SHAPES["epigenomics"])
    _, again, sizes_again = generate(SHAPES["epigenomics"])
    assert tasks == again and sizes == sizes_again
    assert len(tasks) >= 50
    names = {f for t in tasks for f in (*t["inputs"], *t["outputs"])}
    assert all(".out" in f or ".in" in f for f in names)   # named after tasks, not random UUIDs
    wf = workflow(tasks, sizes, 0.0, 1e-4)
    assert wf.temps and wf.finals and wf.inputs


def test_manager_options_follow_this_version_of_manager():
    for row in ("tether-groups", "tether-nogroup"):
        expected = shapes.TETHER_ROWS[row] if NEW_OPTIONS else shapes.OLDER[row]
        assert shapes.manager_options(row) == expected
    if NEW_OPTIONS:
        assert shapes.manager_options("tether-graph-unpruned") == {"placement": "graph", "order": "breadth",
                                                                   "prune": None}
    else:
        with pytest.raises(Unavailable, match="not available in this version: Manager takes no placement"):
            shapes.manager_options("tether-graph")

    class Newer:   # a Manager signature with the options, for the spelling the newer one takes
        def __init__(self, workers=None, *, group_tasks=True, placement=None, order="critical", prune=0):
            pass

    assert shapes.manager_options("tether-graph-depth-pruned", Newer) == {"placement": "graph", "order": "depth",
                                                                          "prune": 0}


@needs_trace
def test_cluster_rows_are_skipped_with_the_reason_when_there_is_no_cluster(tmp_path):
    why = "cluster emulation needs root (it makes network namespaces and veth pairs)"
    options = runner.Options(workers=4, quick=True, rows=("tether-graph", "tether-nogroup", "dask"),
                             work_root=tmp_path)
    parameters, plans = shapes.plans(options, ["montage"], cluster=None, cluster_reason=why)
    assert parameters["emulated_cluster"] is False
    report = Report("shapes", parameters)
    with Display() as display:
        runner.run_rows(report, plans, display, tmp_path)
    assert [r["name"] for r in report.rows] == ["montage/tether-graph", "montage/tether-nogroup", "montage/dask"]
    for r in report.rows:
        assert why in r["skipped"] and "emulated cluster" in r["skipped"]
    assert all(t["met"] is None for t in shapes.check_targets(report))
    assert list(tmp_path.iterdir()) == []


def test_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown shape.*soykb.*there are montage"):
        shapes.plans(runner.Options(quick=True), ["soykb"])


def test_directory_peak_sees_what_was_there_and_went(tmp_path):
    with DirectoryPeak(tmp_path, every=0.01) as peak:
        (tmp_path / "a").write_bytes(b"\0" * 5000)
        (tmp_path / "b").write_bytes(b"\0" * 3000)
    assert peak.peak == 8000
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    with DirectoryPeak(tmp_path, every=10) as peak:   # no sample in between: the last look counts
        pass
    assert peak.peak == 0


@needs_trace
@pytest.mark.root
@pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or "")
@pytest.mark.slow
def test_shapes_quick_on_the_emulated_cluster(tmp_path):
    names = ["tether-graph", "tether-nogroup", "dask"]
    proc, report = run_bench(tmp_path, "shapes", "--quick", "--workers", "2", "--shapes", "montage",
                             "--rows", ",".join(names))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = check_report(report, "shapes", [f"montage/{n}" for n in names])
    assert report["parameters"]["emulated_cluster"] is True
    assert report["parameters"]["montage"].startswith("instance montage-chameleon")
    graph = rows["montage/tether-graph"]
    if NEW_OPTIONS:
        check_ran(graph)
        assert graph["peak_disk_source"] == "Manager.stats()['peak_bytes_per_worker']"
        assert 0 < graph["peak_made_bytes"] <= graph["peak_disk_bytes"]   # made files are part of the peak
    else:
        assert graph["skipped"] == "not available in this version: Manager takes no placement"
    for name in ("montage/tether-nogroup", "montage/dask"):
        row = rows[name]
        check_ran(row)
        assert row["bytes_manager_to_worker"] > 0 and row["bytes_worker_to_manager"] > 0
        assert len(row["peak_disk_bytes_per_worker"]) == 2 and row["peak_disk_bytes"] > 0
    assert set(rows["montage/dask"]["peak_disk_bytes_per_worker"]) == {"ns-0", "ns-1"}
    nogroup = rows["montage/tether-nogroup"]
    assert nogroup["tasks_done"] == 58
    assert nogroup["manager_options"] in ({"placement": "none"}, {"group_tasks": False})
    assert len(report["targets"]) == 6
