"""The report and the live page opened in headless Chromium: what a person would see.

Skipped, saying why, where Chromium is not installed (.ci/run installs Debian's package).
"""
from __future__ import annotations

import time

import pytest

from tether.manager import txlog
from tether.manager.txlog import TxLog
from tether.report import LivePage, load, render_html

from .browser import Browser, dump_dom, need_chromium
from .dom import parse, select

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def browser():
    need_chromium()
    with Browser() as b:
        yield b


def _lanes_and_bars(els):
    lanes = [el.attrs["data-worker"] for el in select(els, "g", within="timeline-svg", data_worker=True)]
    bars = select(els, "rect", within="timeline-svg", data_task=True)
    return lanes, bars


def test_the_report_as_chromium_shows_it(run_dir, tmp_path):
    path, expected = run_dir
    report = tmp_path / "report.html"
    report.write_text(render_html(load(path)))
    els = parse(dump_dom(report.as_uri()))
    lanes, bars = _lanes_and_bars(els)
    assert lanes == list(expected.workers)                          # a lane per worker
    assert {b.attrs["data-task"] for b in bars} == set(expected.tasks)   # every task shown
    for group in expected.groups:                                   # a group's tasks in one lane
        assert {b.lane for b in bars if b.attrs.get("data-group") == group} == {expected.group_worker[group]}
    rows = select(els, "tr", within="task-table", data_task=True)  # the table, drawn by the page's script
    assert sorted(r.attrs["data-task"] for r in rows) == sorted(expected.tasks)
    headings = [el.text for el in select(els, "th", within="task-table", data_key=True)]
    assert "hop latency" in headings and "peak memory" in headings
    assert "1–8 of 8 tasks" in select(els, "span", id="task-pager")[0].text


def test_sorting_filtering_and_paging(run_dir, big_log, tmp_path, browser):
    path, expected = run_dir
    report = tmp_path / "report.html"
    report.write_text(render_html(load(path)))
    page = browser.open(report.as_uri())
    order = "Array.from(document.querySelectorAll('#task-table tbody tr')).map(r => r.dataset.task)"
    assert page.eval(order) == list(expected.tasks)
    page.eval("document.querySelector('#task-table th[data-key=hop]').click()")
    hops = sorted((h, t) for t, h in zip(["t2", "t3", "t5"], [0.001, 0.0012, 0.0009]))
    assert page.eval(order)[:3] == [t for _, t in hops]             # shortest hop first, tasks without one last
    page.eval("document.querySelector('#task-table th[data-key=hop]').click()")
    assert page.eval(order)[:3] == [t for _, t in reversed(hops)]
    page.eval("const f = document.getElementById('task-filter'); f.value = 'failed';"
              "f.dispatchEvent(new Event('input'))")
    assert page.eval(order) == ["t8"]
    # a click on a bar shows that task in the table
    page.eval("document.querySelector('#timeline-svg rect[data-task=t5]')"
              ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert page.eval(order) == ["t5"]

    big, facts = big_log
    report = tmp_path / "big.html"
    report.write_text(render_html(load(big)))
    page = browser.open(report.as_uri())
    assert page.eval("document.querySelectorAll('#timeline-svg rect[data-task]').length") == facts["tasks"]
    assert page.eval("document.querySelectorAll('#timeline-svg g.lane[data-worker]').length") == facts["workers"]
    assert page.eval("document.querySelectorAll('#task-table tbody tr').length") == 100
    pager = "document.getElementById('task-pager').textContent"
    assert page.eval(pager).startswith(f"1–100 of {facts['tasks']} tasks")
    page.eval("document.querySelectorAll('#task-pager button')[2].click()")      # the next page
    assert page.eval(pager).startswith(f"101–200 of {facts['tasks']}")


def _bars(page) -> set[str]:
    return set(page.eval("Array.from(document.querySelectorAll('#timeline-svg rect[data-task]'))"
                         ".map(b => b.dataset.task)"))


def test_the_live_page_follows_the_run(run_dir, browser):
    path, expected = run_dir
    events = list(txlog.read(path / "transactions"))
    first = [e for e in events if not (e.kind == "TASK" and e.subject in ("t3", "t7", "t8"))]
    rest = [e for e in events if e not in first]
    with LivePage(port=0, refresh=0.2, min_redraw=0) as live:
        page = browser.open(live.url)
        assert _bars(page) == set()
        assert page.eval("document.querySelector('#summary [data-figure=tasks] dd').textContent") == "0"
        live.add(first)
        page.wait_for("document.querySelectorAll('#timeline-svg rect[data-task]').length > 0")
        page.wait_for("document.querySelectorAll('#task-table tbody tr').length === 5")
        assert _bars(page) == set(expected.tasks) - {"t3", "t7", "t8"}
        page.eval("document.querySelector('#task-table th[data-key=hop]').click()")     # kept across updates
        page.eval("document.getElementById('task-filter').focus()")                    # as if typing
        live.add(rest)
        page.wait_for("document.querySelectorAll('#task-table tbody tr').length === 8")
        assert page.eval("document.activeElement.id") == "task-filter"
        assert _bars(page) == set(expected.tasks)
        lanes = page.eval("Array.from(document.querySelectorAll('#timeline-svg g.lane[data-worker]'))"
                          ".map(g => g.dataset.worker)")
        assert lanes == list(expected.workers)
        assert page.eval("document.querySelector('#task-table th[data-key=hop]').className") == "asc"
        page.wait_for("document.getElementById('live-status').textContent.includes('8 tasks')")
        assert page.eval("document.querySelector('#summary [data-figure=failed] dd').textContent") == "1"


def test_the_live_page_follows_a_log_being_written(tmp_path, browser):
    path = tmp_path / "transactions"
    log = TxLog(path, run="growing")
    log.add("WORKER", "w1", "JOINED", "h", 2, 100, 100)
    log.flush()
    with LivePage(port=0, source=path, refresh=0.2, min_redraw=0) as live:
        page = browser.open(live.url)
        page.wait_for("document.querySelectorAll('#timeline-svg g.lane[data-worker=w1]').length === 1")
        for i in range(3):
            now = time.time()
            log.add("TASK", f"t{i}", "SUBMITTED", "sh", 1, 0, 0, "true")
            log.add("TASK", f"t{i}", "ASSIGNED", "w1", 1, "g")
            log.add("TASK", f"t{i}", "RAN", "w1", now - 0.01, now, None, None, None, 0)
            log.add("TASK", f"t{i}", "DONE", 1, None)
            log.flush()
            page.wait_for(f"document.querySelectorAll('#timeline-svg rect[data-task=t{i}]').length === 1")
        log.close()
        assert page.eval("document.title") == "tether run growing"


@pytest.mark.slow
def test_a_managers_own_live_page_and_its_report(tmp_path, browser):
    """A real run with Manager(dashboard=0): the page shows the workers, then each task as it runs;
    after the run, `tether report` of its run directory shows every task, each chain in one lane."""
    import subprocess
    import sys
    import urllib.request

    from tether import Manager, Task

    gate = tmp_path / "gate"
    with Manager(workers=2, cores_per_worker=1, run_dir=tmp_path / "runs", dashboard=0) as m:
        assert m.dashboard_url.startswith("http://127.0.0.1:")
        page = browser.open(m.dashboard_url)
        m.wait_for_workers()
        page.wait_for("document.querySelectorAll('#timeline-svg g.lane[data-worker]').length === 2")
        first = m.submit(Task("true")).task_id
        page.wait_for(f"document.querySelectorAll('#timeline-svg rect[data-task=\"{first}\"]').length === 1")
        chains = []
        for c in range(2):
            prev, ids = None, []
            for i in range(4):
                made = m.declare_temp()
                wait = f"while [ ! -e {gate} ]; do sleep 0.05; done; " if i == 3 else ""
                cmd = wait + ("cat in > out; " if prev else "") + f"echo {c}{i} >> out"
                ids.append(m.submit(Task(cmd, inputs={"in": prev} if prev else {}, outputs={"out": made})))
                prev = made
            chains.append(ids)
        # while the chains' last tasks wait at the gate, the page already shows the tasks before them
        for ids in chains:
            for f in ids[:3]:
                page.wait_for(f"document.querySelectorAll('#timeline-svg rect[data-task=\"{f.task_id}\"]').length"
                              " === 1")
        assert "tether_tasks" in urllib.request.urlopen(m.dashboard_url + "metrics", timeout=30).read().decode()
        gate.touch()
        for ids in chains:
            for f in ids:
                f.result(60)
        page.wait_for("document.getElementById('live-status').textContent.includes('9 tasks')")
    report = tmp_path / "report.html"
    subprocess.run([sys.executable, "-m", "tether", "report", str(m.run_dir), "-o", str(report)], check=True,
                   timeout=120)
    els = parse(dump_dom(report.as_uri()))
    lanes, bars = _lanes_and_bars(els)
    assert sorted(lanes) == ["local-1", "local-2"]
    shown = {b.attrs["data-task"] for b in bars}
    assert shown == {str(first)} | {str(f.task_id) for ids in chains for f in ids}
    for ids in chains:   # a chain is a group: its tasks share a lane
        members = {str(f.task_id) for f in ids}
        assert len({b.lane for b in bars if b.attrs["data-task"] in members}) == 1
        groups = {b.attrs.get("data-group") for b in bars if b.attrs["data-task"] in members}
        assert len(groups) == 1 and None not in groups
