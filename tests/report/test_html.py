"""The report as written: its content checked without a browser, the PNG, and `tether report`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tether
from tether.report import load, render_html, render_png
from tether.report.html import COLUMNS

from .dom import parse, select


def test_a_lane_per_worker_and_a_bar_per_attempt(run_dir):
    path, expected = run_dir
    model = load(path)
    els = parse(render_html(model))
    lanes = select(els, "g", within="timeline-svg", data_worker=True)
    assert [lane.attrs["data-worker"] for lane in lanes] == list(expected.workers)
    assert {lane.attrs["data-worker"]: int(lane.attrs["data-sublanes"]) for lane in lanes} == expected.sublanes
    bars = select(els, "rect", within="timeline-svg", data_task=True)
    assert {bar.attrs["data-task"] for bar in bars} == set(expected.tasks)
    assert len(bars) == sum(expected.attempts.values()) - 0      # every attempt that started has a bar
    for task, worker in expected.task_worker.items():             # the last attempt is in its worker's lane
        last = max((b for b in bars if b.attrs["data-task"] == task), key=lambda b: int(b.attrs["data-attempt"]))
        assert last.lane == worker
    for group, members in expected.groups.items():
        in_group = [b for b in bars if b.attrs.get("data-group") == group]
        assert {b.attrs["data-task"] for b in in_group} == set(members)
        assert {b.lane for b in in_group} == {expected.group_worker[group]}
        assert len({b.attrs["fill"] for b in in_group}) == 1
    assert "data-group" not in next(b for b in bars if b.attrs["data-task"] == "t6").attrs
    fills = {b.attrs["data-group"]: b.attrs["fill"] for b in bars if "data-group" in b.attrs}
    assert fills["g1"] != fills["g2"]


def test_failures_retries_transfers_and_cache_are_drawn(run_dir):
    path, _ = run_dir
    els = parse(render_html(load(path)))
    failed = select(els, "rect", within="timeline-svg", data_task=True)
    failed = [b for b in failed if "failed" in b.attrs["class"].split()]
    assert sorted((b.attrs["data-task"], b.lane) for b in failed) == [("t7", "w3"), ("t8", "w2"), ("t8", "w2")]
    marks = select(els, "path", within="timeline-svg")
    assert sorted(m.attrs["data-task"] for m in marks if "fail-mark" in m.attrs.get("class", "")) == ["t7", "t8", "t8"]
    retries = [b for b in select(els, "rect", data_task=True) if "retry" in b.attrs["class"].split()]
    assert sorted(b.attrs["data-task"] for b in retries) == ["t7", "t8"]
    left = select(els, "line", within="timeline-svg", **{"class": "left"})
    assert [line.lane for line in left] == ["w3"] and "connection closed" in left[0].text
    transfers = select(els, "line", within="timeline-svg", data_kind=True)
    kinds = [t.attrs["data-kind"] for t in transfers]
    assert kinds.count("manager_to_worker") == 3 and kinds.count("worker_to_manager") == 4
    assert kinds.count("worker_to_worker") == 1
    peer = next(t for t in transfers if t.attrs["data-kind"] == "worker_to_worker")
    assert peer.attrs["data-file"] == "a"
    lines = select(els, "polyline", within="cache-svg", data_cache=True)
    assert sorted(line.attrs["data-cache"] for line in lines) == ["w1", "w2", "w3"]
    rows = select(els, "tr", within="failures", data_task=True)
    assert [r.attrs["data-task"] for r in rows] == ["t7", "t8", "t8", "t8"]
    assert "retried, then done" in rows[0].text and "given up" in rows[-1].text


def test_summary_and_task_data(run_dir):
    path, expected = run_dir
    model = load(path)
    html = render_html(model)
    els = parse(html)
    figures = {el.attrs["data-figure"]: el.text for el in select(els, "div", data_figure=True)}
    assert figures["tasks"].endswith("8") and figures["done"].endswith("7") and figures["failed"].endswith("1")
    assert "2.0 kB in 1 transfer" in figures["worker-to-worker"]
    assert figures["hop-median"].endswith("1.0 ms")
    data = select(els, "script", id="task-data")[0].text
    payload = json.loads(data)
    assert [c["key"] for c in payload["columns"]] == [k for k, _, _ in COLUMNS]
    rows = {r[0]: dict(zip([c["key"] for c in payload["columns"]], r)) for r in payload["rows"]}
    assert set(rows) == set(expected.tasks)
    assert rows["t8"]["state"] == "failed" and rows["t8"]["reason"] == "exit" and rows["t8"]["attempts"] == 2
    assert rows["t2"]["hop"] == pytest.approx(0.001) and rows["t1"]["memory"] == 7_000_000
    # each figure is rounded to the microsecond on its own: the difference may be off by two roundings
    assert rows["t1"]["finished"] - rows["t1"]["started"] == pytest.approx(rows["t1"]["run"], abs=2e-6)
    # a command that says </script> cannot end the data early, and shows as text
    assert "</script><b>" not in data and rows["t6"]["what"] == 'echo "</script><b>bold</b>" > note'
    assert "<b>bold</b>" not in html


def test_self_contained(run_dir):
    """Nothing is fetched when the file is opened: no external scripts, styles, fonts or images."""
    path, _ = run_dir
    html = render_html(load(path))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", html)
    assert re.findall(r"https?://[^\s\"'<>]+", html) == ["http://www.w3.org/2000/svg"] * 2  # SVG's namespace


def test_an_empty_model_renders():
    from tether.report import Model
    els = parse(render_html(Model()))
    assert select(els, "g", within="timeline-svg", data_worker=True) == []
    assert "No events yet" in "".join(e.text for e in select(els, "section", id="summary"))


@pytest.mark.slow
def test_a_large_run_keeps_every_task_and_one_svg(big_log):
    path, facts = big_log
    html = render_html(load(path))
    els = parse(html)
    bars = select(els, "rect", within="timeline-svg", data_task=True)
    assert len(bars) == facts["tasks"] and len({b.attrs["data-task"] for b in bars}) == facts["tasks"]
    assert len(select(els, "g", within="timeline-svg", data_worker=True)) == facts["workers"]
    assert len(select(els, "svg")) == 2                          # the timeline and the cache, nothing per task
    assert len(select(els, "tr", within="task-table")) == 1      # the table's rows are drawn a page at a time
    assert len(json.loads(select(els, "script", id="task-data")[0].text)["rows"]) == facts["tasks"]


def test_png(run_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="render_png needs matplotlib (the bench extra)")
    path, _ = run_dir
    out = render_png(load(path), tmp_path / "run.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_png_without_matplotlib_says_so(run_dir):
    """In a process where matplotlib cannot be imported, the error names it and how to get it."""
    path, _ = run_dir
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from tether.report import ReportError, load, render_png\n"
            "try:\n    render_png(load(sys.argv[1]), sys.argv[2])\n"
            "except ReportError as e:\n    print(e)\n")
    src = str(Path(tether.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, str(path), str(path / "x.png")], env=env, check=False,
                          capture_output=True, text=True, timeout=120)
    assert "needs matplotlib" in done.stdout and "pip install" in done.stdout, done.stderr
    assert not (path / "x.png").exists()


def _tether(*args, cwd):
    """`tether report ...` in a process of its own, importing the tether these tests import."""
    src = str(Path(tether.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "tether", "report", *map(str, args)], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True, timeout=120)


def test_the_command(run_dir, tmp_path):
    path, expected = run_dir
    done = _tether(path, "-o", tmp_path / "r.html", "--png", tmp_path / "r.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "r.html" in done.stdout and "8 tasks" in done.stdout
    els = parse((tmp_path / "r.html").read_text())
    assert len(select(els, "g", within="timeline-svg", data_worker=True)) == len(expected.workers)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    done = _tether(path / "transactions", cwd=tmp_path)        # the log itself; report.html by default
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.html").exists()


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "does not exist"),
    (lambda d: d, "has no transactions file"),
    (lambda d: (d / "notes.txt").write_text("shopping list\n") and d / "notes.txt", "is not a tether transaction log"),
])
def test_the_command_says_what_is_wrong(tmp_path, make, message):
    target = make(tmp_path)
    done = _tether(target, "-o", tmp_path / "r.html", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r.html").exists()
