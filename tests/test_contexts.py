"""Function context: a setup run once per worker interpreter, its value kept there for later calls.

Every setup here appends a line to a file in the test's directory, so the
tests count real setups in real interpreters. The Manager's tests use one
worker of one core: every call runs in its one interpreter (until a task
kills it), so what each asserts does not hang on where calls were placed.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import tether
from tether import Context, ContextError, Executor, Manager, PythonTask, SerializationError, SystemFailure


def record(log: str, tag: str) -> dict:
    """A setup: says who set it up, and where."""
    with open(log, "a") as f:
        f.write(f"{tag} {os.getpid()}\n")
    return {"tag": tag, "pid": os.getpid()}


def needs_file(log: str, ready: str) -> str:
    """A setup that fails until `ready` exists."""
    with open(log, "a") as f:
        f.write(f"try {os.getpid()}\n")
    with open(ready) as f:
        return f.read()


def use(x) -> tuple:
    """A call: its argument, its context's tag and setup pid, and the pid it ran in."""
    value = tether.context()
    return x, value["tag"], value["pid"], os.getpid()


def read_context():
    return tether.context()


def die_once(marker: str):
    """Kill this interpreter the first time (a task that crashes it), return the context after."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(3)
    return use(None)


def setups(log: Path) -> list[tuple[str, int]]:
    return [(tag, int(pid)) for tag, pid in (line.split() for line in log.read_text().splitlines())]


@pytest.fixture(scope="module")
def m():
    with Manager(workers=1, cores_per_worker=1, system_retries=0) as m:
        m.wait_for_workers()
        yield m


def test_setup_runs_once_per_interpreter_across_many_calls(m, tmp_path):
    log = tmp_path / "setups"
    ctx = Context(record, str(log), "a")
    results = [f.result(60) for f in [m.submit(PythonTask(use, args=(i,), context=ctx)) for i in range(30)]]
    assert [r[:2] for r in results] == [(i, "a") for i in range(30)]
    assert {r[2] for r in results} == {r[3] for r in results}   # the value was made in the interpreter using it
    assert setups(log) == [("a", results[0][3])]                  # once, for 30 calls
    # an equal Context built anew is the same context: no setup
    same = m.submit(PythonTask(use, args=(30,), context=Context(record, str(log), "a")))
    assert same.result(60)[1] == "a" and len(setups(log)) == 1
    # the same setup given its argument by keyword is another context (its identity is its arguments)
    other = m.submit(PythonTask(use, args=(31,), context=Context(record, str(log), tag="a")))
    assert other.result(60)[1] == "a" and len(setups(log)) == 2


def test_different_contexts_coexist_in_one_interpreter(m, tmp_path):
    log = tmp_path / "setups"
    a, b = Context(record, str(log), "a"), Context(record, str(log), "b")
    tasks = [PythonTask(use, args=(i,), context=a if i % 3 else b) for i in range(12)]
    results = [f.result(60) for f in [m.submit(t) for t in tasks]]
    assert [r[1] for r in results] == ["a" if i % 3 else "b" for i in range(12)]
    assert len({r[3] for r in results}) == 1           # one interpreter ran them all
    assert sorted(setups(log)) == [("a", results[0][3]), ("b", results[0][3])]
    plain = m.submit(PythonTask(read_context))          # a call with no context has none
    with pytest.raises(LookupError, match="outside a call that has a context"):
        plain.result(60)


def test_a_failing_setup_fails_its_call_clearly_and_is_tried_again(m, tmp_path):
    log, ready = tmp_path / "setups", tmp_path / "ready"
    ctx = Context(needs_file, str(log), str(ready))
    failed = [m.submit(PythonTask(use, args=(i,), context=ctx)) for i in range(3)]
    for f in failed:
        with pytest.raises(ContextError, match=r"setup needs_file\(\) failed.*FileNotFoundError") as caught:
            f.result(60)
    note = "\n".join(caught.value.__notes__)
    assert __file__ in note and "with open(ready) as f:" in note   # the setup's own frame and line
    assert len(setups(log)) == 3                     # no failure was kept: each call tried again
    ready.write_text("model")
    done = [m.submit(PythonTask(read_context, context=ctx)) for _ in range(5)]
    assert [f.result(60) for f in done] == ["model"] * 5
    assert len(setups(log)) == 4                     # one more setup, then kept


def test_an_interpreter_that_dies_takes_its_contexts_and_the_next_sets_up_again(m, tmp_path):
    log = tmp_path / "setups"
    ctx = Context(record, str(log), "a")
    first = m.submit(PythonTask(use, args=(0,), context=ctx)).result(60)
    with pytest.raises(SystemFailure, match="interpreter"):
        m.submit(PythonTask(die_once, args=(str(tmp_path / "died"),), context=ctx)).result(60)
    after = [m.submit(PythonTask(die_once, args=(str(tmp_path / "died"),), context=ctx)).result(60)
             for _ in range(3)]
    successor = after[0][3]
    assert successor != first[3] and {r[3] for r in after} == {successor}
    assert setups(log) == [("a", first[3]), ("a", successor)]


def test_bad_contexts_are_refused_before_anything_is_sent(m):
    with pytest.raises(ValueError, match="context must be a tether.Context or a setup function, got int"):
        PythonTask(use, args=(0,), context=3)
    with pytest.raises(ValueError, match="setup must be callable"):
        Context("model.pt")
    with pytest.raises(ValueError, match="setup must be a tether.Context or a setup function"):
        Executor(workers=0, setup="model.pt")
    with pytest.raises(SerializationError, match=r"its context .*\(setup, args, kwargs\)\[1\]\[0\] is a _thread.lock"):
        m.submit(PythonTask(use, args=(0,), context=Context(record, threading.Lock())))
    with pytest.raises(LookupError):
        tether.context()   # here, in the program: no call is running


def test_executor_setup_with_map_and_submit(tmp_path):
    log = tmp_path / "setups"
    with Executor(workers=2, cores_per_worker=1, setup=Context(record, str(log), "ex")) as ex:
        mapped = list(ex.map(use, range(40)))
        chunked = list(ex.map(use, range(40), chunksize=8))
        submitted = [ex.submit(use, i) for i in range(10)]
        chained = ex.submit(use, submitted[0])   # a future as argument: run where its value is
        results = mapped + chunked + [f.result(60) for f in submitted] + [chained.result(60)]
    assert [r[0] for r in mapped] == list(range(40)) and [r[0] for r in chunked] == list(range(40))
    assert {r[1] for r in results} == {"ex"}
    made = setups(log)
    pids = [pid for _, pid in made]
    assert len(pids) == len(set(pids))                  # once per interpreter
    assert {r[3] for r in results} == set(pids)         # ... each of which ran calls
    assert all(r[2] == r[3] for r in results)           # with the value made there
