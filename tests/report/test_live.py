"""The live page over real HTTP: its routes, following a log, and /metrics read by Prometheus's parser."""
from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest

from tether.manager import txlog
from tether.manager.txlog import TxLog
from tether.report import LivePage, load

from .dom import parse, select


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_routes_and_updates(run_dir):
    path, expected = run_dir
    events = list(txlog.read(path / "transactions"))
    with LivePage(port=0, min_redraw=0) as page:
        assert page.url == f"http://127.0.0.1:{page.port}/" and page.port > 0
        status, kind, body = get(page.url)
        assert status == 200 and kind.startswith("text/html")
        els = parse(body)
        assert select(els, "body", data_live="1") and not select(els, "rect", data_task=True)
        assert json.loads(get(page.url + "state.json")[2])["version"] == 0
        page.add(events[: len(events) // 2])
        state = json.loads(get(page.url + "state.json")[2])
        assert state["version"] == len(events) // 2 and 0 < state["tasks"] <= 8
        page.add(events[len(events) // 2:])
        status, kind, view = get(page.url + "view")
        assert status == 200 and view.startswith('<main id="report"')
        els = parse(view)
        assert {b.attrs["data-task"] for b in select(els, "rect", data_task=True)} == set(expected.tasks)
        assert len(select(els, "g", data_worker=True)) == 3
        status, _, _ = get(page.url + "nothing-here")
        assert status == 404


def test_events_from_many_threads(run_dir):
    """`add` is called from the manager's loop while the server's threads read: nothing is lost."""
    path, _ = run_dir
    events = list(txlog.read(path / "transactions"))
    with LivePage(port=0) as page:
        def feed():
            for event in events:
                page.add(event)          # one event at a time, as well as lists
        threads = [threading.Thread(target=feed) for _ in range(4)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            get(page.url + "state.json")
        for t in threads:
            t.join()
        assert json.loads(get(page.url + "state.json")[2])["version"] == 4 * len(events)


def test_following_a_log_as_it_is_written(tmp_path):
    path = tmp_path / "transactions"
    with LivePage(port=0, source=path, min_redraw=0) as page:
        assert json.loads(get(page.url + "state.json")[2])["tasks"] == 0      # no log yet: nothing, no error
        log = TxLog(path, run="followed", separate_process=False)
        log.add("WORKER", "w1", "JOINED", "h", 2, 100, 100)
        log.add("TASK", "t1", "SUBMITTED", "sh", 1, 0, 0, "true")
        log.flush()
        assert json.loads(get(page.url + "state.json")[2])["tasks"] == 1
        log.add("TASK", "t1", "ASSIGNED", "w1", 1, None)
        log.add("TASK", "t1", "RAN", "w1", 1.0, 2.0, None, None, None, 0)
        log.add("TASK", "t1", "DONE", 1, None)
        log.close()
        state = json.loads(get(page.url + "state.json")[2])
        assert state["done"] == 1 and state["error"] is None
        assert "tether run followed" in get(page.url)[2]


def test_a_callable_source_is_asked_at_each_refresh(run_dir):
    path, expected = run_dir
    batches = iter([list(txlog.read(path / "transactions")), []])
    with LivePage(port=0, source=lambda: next(batches, [])) as page:
        assert json.loads(get(page.url + "state.json")[2])["tasks"] == len(expected.tasks)
        assert json.loads(get(page.url + "state.json")[2])["tasks"] == len(expected.tasks)
    with pytest.raises(TypeError, match="source must be"):
        LivePage(source=42)


def test_a_foreign_file_is_said_on_the_page(tmp_path):
    path = tmp_path / "transactions"
    path.write_text("these are not the events you are looking for\n")
    with LivePage(port=0, source=path) as page:
        assert "not a tether transaction log" in json.loads(get(page.url + "state.json")[2])["error"]


def test_bound_to_loopback_and_stopped_for_good():
    page = LivePage(port=0).start()
    host, port = page._server.server_address[:2]
    assert host == "127.0.0.1"
    page.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    page.stop()     # twice is harmless


def test_metrics_parse(run_dir):
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (dev extra) parses /metrics")
    path, expected = run_dir
    with LivePage(port=0) as page:
        page.add(txlog.read(path / "transactions"))
        status, kind, text = get(page.url + "metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}

    def samples(family, suffix=""):
        return {tuple(sorted(s.labels.items())): s.value for s in families[family].samples
                if s.name == family + suffix}

    assert families["tether_tasks"].type == "gauge"
    tasks = {labels[0][1]: v for labels, v in samples("tether_tasks").items()}
    assert tasks == {"waiting": 0, "assigned": 0, "done": 7, "failed": 1, "cancelled": 0}
    workers = {labels[0][1]: v for labels, v in samples("tether_workers").items()}
    assert workers == {"connected": 2, "left": 1}
    assert samples("tether_cores") == {(): 3}
    assert families["tether_bytes_moved"].type == "counter"
    moved = {labels[0][1]: v for labels, v in samples("tether_bytes_moved", "_total").items()}
    assert moved == expected.bytes_moved
    cache = {labels[0][1]: v for labels, v in samples("tether_cache_bytes").items()}
    assert cache == expected.cache_final
    hop = families["tether_hop_latency_seconds"]
    assert hop.type == "summary"
    values = {s.name + str(sorted(s.labels.items())): s.value for s in hop.samples}
    assert values["tether_hop_latency_seconds_count[]"] == 3
    assert values["tether_hop_latency_seconds_sum[]"] == pytest.approx(sum(expected.hops))
    assert values["tether_hop_latency_seconds[('quantile', '0.5')]"] == pytest.approx(0.001)
    failures = {labels[0][1]: v for labels, v in samples("tether_attempt_failures", "_total").items()}
    assert failures == {"exit": 2, "worker-lost": 1}
    final = {labels[0][1]: v for labels, v in samples("tether_task_failures", "_total").items()}
    assert final == {"exit": 1}
    assert samples("tether_makespan_seconds")[()] == pytest.approx(load(path).summary().makespan)


def test_metrics_escape_label_values():
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (dev extra) parses /metrics")
    from tether.report import Model, render_metrics
    odd = 'w"1\\x\nnew'
    model = Model()
    model.add((1.0, "CACHE", odd, "INSERT", ("f", 10)))
    model.add((1.0, "TASK", "t", "ATTEMPT-FAILED", (odd, 'why "not"', "-", "-", "")))
    families = {f.name: f for f in parser.text_string_to_metric_families(render_metrics(model))}
    assert [s.labels["worker"] for s in families["tether_cache_bytes"].samples] == [odd]
    assert [s.labels["reason"] for s in families["tether_attempt_failures"].samples] == ['why "not"']
    hop = {s.labels.get("quantile"): s.value for s in families["tether_hop_latency_seconds"].samples}
    assert hop["0.5"] != hop["0.5"]          # NaN while there is no hop yet


def test_the_command_serves_a_run_until_interrupted(run_dir):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import tether

    path, expected = run_dir
    src = str(Path(tether.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "tether", "report", str(path), "--serve", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # (as from a terminal)
    try:
        line = proc.stdout.readline()
        assert "following" in line, proc.stderr.read() if proc.poll() is not None else line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        state = json.loads(get(url + "state.json")[2])
        assert state["tasks"] == len(expected.tasks) and state["failed"] == 1
        assert get(url + "metrics")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
