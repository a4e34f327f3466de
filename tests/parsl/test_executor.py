"""Parsl apps on a real tether worker: look-ahead, dependency failures, streams, files, resources."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from parsl import bash_app, python_app
from parsl.app.errors import BashExitFailure
from parsl.data_provider.files import File
from parsl.dataflow.errors import DependencyError
from parsl.executors.errors import InvalidResourceSpecification

from .conftest import parsl_on_tether

@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    with parsl_on_tether(tmp_path_factory.mktemp("runinfo")) as executor:
        yield executor


@python_app
def slow_producer(seconds, outputs=[]):
    import time
    time.sleep(seconds)
    with open(outputs[0], "w") as f:
        f.write(repr(time.time()))


@python_app
def timed_consumer(inputs=[]):
    import time
    started = time.time()
    with open(inputs[0]) as f:
        return f.read(), started


@bash_app
def failing_producer(outputs=[]):
    return "sleep 0.5; exit 3"


@python_app
def marking_consumer(marker, inputs=[]):
    with open(marker, "w") as f:
        f.write("ran")


@python_app
def wait_for(path, outputs=[]):
    import os
    import time
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(outputs[0], "w") as f:
        f.write("released")


@python_app
def read_back(inputs=[]):
    with open(inputs[0]) as f:
        return f.read()


def test_consumer_is_handed_over_before_its_producer_ends_and_runs_after_it(ex):
    start = time.monotonic()
    p = slow_producer(2, outputs=[File("temp://lookahead.txt")])
    c = timed_consumer(inputs=[p.outputs[0]])
    (made_at, started_at) = c.result(timeout=60)
    handed = ex.handed_at("timed_consumer")
    assert len(handed) == 1
    assert handed[0] - start < 0.5, "Parsl held the consumer back until its producer finished"
    assert float(made_at) <= started_at, "the consumer ran before its input was made"
    assert p.done() and p.exception() is None


def test_failed_producer_fails_its_consumer_with_a_dependency_error_and_it_never_runs(ex, tmp_path):
    marker = tmp_path / "consumer-ran"
    p = failing_producer(outputs=[File("temp://never.txt")])
    c = marking_consumer(str(marker), inputs=[p.outputs[0]])
    with pytest.raises(DependencyError) as info:
        c.result(timeout=60)
    assert isinstance(info.value.__cause__, BashExitFailure)   # the root cause is the producer's failure
    assert info.value.task_id == c.tid
    assert ex.handed_at("marking_consumer"), "the consumer should have been handed over ahead"
    with pytest.raises(BashExitFailure):
        p.result()
    assert not marker.exists()
    # a consumer called after Parsl gave up fails the same way, without running
    late = marking_consumer(str(marker), inputs=[File("temp://never.txt")])
    with pytest.raises(DependencyError):
        late.result(timeout=60)
    assert not marker.exists()


def test_held_consumers_are_not_outstanding(ex, tmp_path):
    release = tmp_path / "release"
    p = wait_for(str(release), outputs=[File("temp://gate.txt")])
    consumers = [read_back(inputs=[p.outputs[0]]) for _ in range(3)]
    deadline = time.monotonic() + 30
    while len(ex.handed_at("read_back")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(ex.handed_at("read_back")) == 3 and not p.done()
    assert ex.outstanding() == 1   # the producer only: the consumers cannot run yet
    release.touch()
    assert [c.result(timeout=60) for c in consumers] == ["released"] * 3
    assert ex.outstanding() == 0


@bash_app
def talk(stdout=None, stderr=None):
    return "echo out-line; echo err-line >&2"


@bash_app
def complain(stderr=None):
    return "echo boom >&2; exit 2"


def test_bash_stdout_and_stderr_as_paths_tuples_and_files(ex, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    talk(stdout="rel/out.txt", stderr=str(tmp_path / "err.txt")).result(timeout=60)
    assert (tmp_path / "rel" / "out.txt").read_text() == "out-line\n"
    assert "err-line" in (tmp_path / "err.txt").read_text()
    for _ in range(2):  # append mode adds, write mode replaces
        talk(stdout=(str(tmp_path / "a.txt"), "a"), stderr=(str(tmp_path / "w.txt"), "w")).result(timeout=60)
    assert (tmp_path / "a.txt").read_text() == "out-line\nout-line\n"
    assert (tmp_path / "w.txt").read_text().splitlines().count("err-line") == 1
    talk(stdout=File(str(tmp_path / "f.txt"))).result(timeout=60)
    assert (tmp_path / "f.txt").read_text() == "out-line\n"
    with pytest.raises(BashExitFailure):
        complain(stderr=str(tmp_path / "failed.err")).result(timeout=60)
    assert "boom" in (tmp_path / "failed.err").read_text(), "a failed app's stderr must still come home"


@bash_app
def upper(inputs=[], outputs=[]):
    return f"tr a-z A-Z < {inputs[0]} > {outputs[0]}"


@python_app
def where(f, inputs=[]):
    import os
    with open(f) as fh:
        return fh.read(), str(f), os.getcwd()


def test_file_inputs_are_sent_and_outputs_brought_back(ex, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    upper(inputs=[File(str(src))], outputs=[File(str(tmp_path / "out" / "up.txt"))]).result(timeout=60)
    assert (tmp_path / "out" / "up.txt").read_text() == "HELLO\n"
    text, seen_as, cwd = where(File(str(src))).result(timeout=60)
    assert text == "hello\n" and seen_as == "in.txt", "the app should read the copy in its sandbox"
    assert cwd != str(tmp_path)


@python_app
def double(x, parsl_resource_specification={}):
    return 2 * x


def test_resource_specification(ex):
    assert double(2, parsl_resource_specification={"cores": 1, "memory": 10, "disk": 1, "priority": 3}
                  ).result(timeout=60) == 4
    for bad in ({"cpus": 1}, {"cores": 1, "walltime": 5}, {"cores": 99}):
        with pytest.raises(InvalidResourceSpecification):
            double(2, parsl_resource_specification=bad).result(timeout=60)


@python_app
def pid():
    import os
    return os.getpid()


def test_python_apps_run_in_warm_interpreters(ex):
    pids = {pid().result(timeout=60) for _ in range(12)}
    assert os.getpid() not in pids
    assert len(pids) <= 2   # one interpreter per worker (one core each), not a process per app


@bash_app
def step(n, inputs=[], outputs=[]):
    return f"cat {inputs[0]} > {outputs[0]}; echo {n} >> {outputs[0]}"


@bash_app
def begin(outputs=[]):
    return f"echo 0 > {outputs[0]}"


def test_a_chains_temps_are_collected_once_it_is_done(ex, tmp_path):
    app = begin(outputs=[File("temp://chain-0")])
    for n in range(1, 5):
        out = File(str(tmp_path / "end.txt")) if n == 4 else File(f"temp://chain-{n}")
        app = step(n, inputs=[app.outputs[0]], outputs=[out])
    app.result(timeout=60)
    assert (tmp_path / "end.txt").read_text().split() == ["0", "1", "2", "3", "4"]
    caches = list(Path(ex.run_dir).glob("tether-workers/*/*/cache"))
    assert caches, "the local worker's cache should be in Parsl's run directory"

    def temps_left():
        return [p.name for c in caches for p in c.iterdir() if p.name.startswith("temp-")]

    deadline = time.monotonic() + 10
    while temps_left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert temps_left() == []


def test_a_worker_started_with_the_command_a_cluster_job_runs(tmp_path):
    """With a provider other than LocalProvider, each block runs `tether worker ...`: run that command here."""
    import shlex
    import subprocess

    from parsl.providers import SlurmProvider

    from tether.parsl import TetherExecutor

    ex = TetherExecutor(provider=SlurmProvider(init_blocks=0), address="127.0.0.1", cores_per_node=1)
    ex.run_dir = str(tmp_path)
    ex.start()
    worker = None
    try:
        command = ex._get_launch_command("7")
        words = shlex.split(command)
        assert words[:2] == ["tether", "worker"] and "tether-7" in words
        assert "--clean" not in words and "--cache-dir" not in words   # the node's cache, kept for the next run
        bin_dir = os.path.dirname(sys.executable)
        worker = subprocess.Popen(command, shell=True, cwd=tmp_path, start_new_session=True,
                                  env=dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
        deadline = time.monotonic() + 60
        while ex.connected_workers() < 1:
            assert time.monotonic() < deadline and worker.poll() is None, "the worker did not connect"
            time.sleep(0.02)
        assert ex.submit(len, {}, "abcd").result(timeout=60) == 4
    finally:
        ex.shutdown()
        if worker is not None:
            assert worker.wait(timeout=30) == 0
    slot = Path(os.environ["TETHER_CACHE_DIR"]) / "worker-0"
    assert (slot / "cache").is_dir(), "the worker kept its slot of the node's cache"
