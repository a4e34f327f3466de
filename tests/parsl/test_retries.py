"""Parsl's retries with consumers held ahead: a failed attempt of a producer keeps them waiting.

Each app appends a line to its own log on this machine (the worker is
local), so the tests can count how often each one really ran.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from parsl import bash_app, python_app
from parsl.app.errors import BashExitFailure
from parsl.data_provider.files import File
from parsl.dataflow.errors import DependencyError

from .conftest import parsl_on_tether


@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    with parsl_on_tether(tmp_path_factory.mktemp("runinfo"), retries=2) as executor:
        yield executor


@bash_app
def flaky_head(log, fail_times, outputs=[]):
    # fails its first fail_times attempts, after a pause that lets its consumers reach tether first
    return (f"echo run >> {log}; n=$(wc -l < {log}); sleep 0.5; "
            f"if [ $n -le {fail_times} ]; then exit 1; fi; echo head > {outputs[0]}")


@bash_app
def middle(log, inputs=[], outputs=[]):
    return f"echo run >> {log}; cat {inputs[0]} > {outputs[0]}; echo middle >> {outputs[0]}"


@python_app
def tail(log, inputs=[]):
    with open(log, "a") as f:
        f.write("run\n")
    with open(inputs[0]) as f:
        return f.read()


@python_app
def flaky_tail(log, fail_times, inputs=[]):
    with open(log, "a") as f:
        f.write("run\n")
    with open(log) as f:
        if len(f.readlines()) <= fail_times:
            raise RuntimeError("not this time")
    with open(inputs[0]) as f:
        return f.read()


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_producer_retried_by_parsl_feeds_the_chain_held_behind_it(ex, tmp_path):
    logs = [tmp_path / n for n in ("head", "middle", "tail")]
    head = flaky_head(str(logs[0]), 1, outputs=[File("temp://retry-1")])
    mid = middle(str(logs[1]), inputs=[head.outputs[0]], outputs=[File("temp://retry-2")])
    end = tail(str(logs[2]), inputs=[mid.outputs[0]])
    assert end.result(timeout=60) == "head\nmiddle\n"
    assert [runs(log) for log in logs] == [2, 1, 1]
    # Parsl handed each consumer over once; the executor kept them through the failed attempt
    assert len(ex.handed_at("middle")) == 1 and len(ex.handed_at("tail")) == 1
    assert len(ex.handed_at("flaky_head")) == 2


def test_consumers_fail_with_a_dependency_error_once_parsl_gives_up(ex, tmp_path):
    logs = [tmp_path / n for n in ("head", "middle", "tail")]
    head = flaky_head(str(logs[0]), 99, outputs=[File("temp://doomed-1")])
    mid = middle(str(logs[1]), inputs=[head.outputs[0]], outputs=[File("temp://doomed-2")])
    end = tail(str(logs[2]), inputs=[mid.outputs[0]])
    with pytest.raises(DependencyError) as info:
        end.result(timeout=60)
    assert isinstance(info.value.__cause__, BashExitFailure)
    with pytest.raises(DependencyError):
        mid.result()
    with pytest.raises(BashExitFailure):
        head.result()
    assert [runs(log) for log in logs] == [3, 0, 0]   # 1 + 2 retries; the consumers never ran


def test_a_retried_consumer_reads_the_temp_without_its_producer_running_again(ex, tmp_path):
    logs = [tmp_path / n for n in ("head", "tail")]
    head = flaky_head(str(logs[0]), 0, outputs=[File("temp://kept")])
    end = flaky_tail(str(logs[1]), 1, inputs=[head.outputs[0]])
    assert end.result(timeout=60) == "head\n"
    assert [runs(log) for log in logs] == [1, 2]
