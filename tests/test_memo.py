"""Memoization across runs, with real workers: each run is a Manager of its own over one memo directory.

Tasks count their runs by appending to a file in the test's directory,
outside the memo record and the workers' caches.
"""
from __future__ import annotations

import contextlib
import json
import threading
import warnings
from pathlib import Path

import pytest

from tether import Executor, Manager, MemoWarning, PythonTask, Task, TaskFailed
from tether.memo.fingerprint import code_digest

from .conftest import wait_until


def runs(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs"
    return path.read_text().split() if path.exists() else []


def mark(tmp_path: Path, name: str) -> str:
    return f"echo {name} >> {tmp_path / 'runs'}"


def add(x, y, marks):
    with open(marks, "a") as f:
        f.write("add\n")
    return x + y


def fail(marks):
    with open(marks, "a") as f:
        f.write("fail\n")
    raise ValueError("no good")


def chain(m: Manager, tmp_path: Path, last: str = "tr a-z A-Z < b > c") -> list:
    """in.txt -> sort -> uniq -c -> a last step writing out.txt home; temps between them."""
    src = m.declare_file(tmp_path / "in.txt")
    a, b = m.declare_temp(), m.declare_temp()
    out = m.declare_file(tmp_path / "out.txt")
    tasks = [Task(f"{mark(tmp_path, 'sort')}; sort in.txt > a", inputs={"in.txt": src}, outputs={"a": a}),
             Task(f"{mark(tmp_path, 'uniq')}; uniq -c a > b", inputs={"a": a}, outputs={"b": b}),
             Task(f"{mark(tmp_path, 'last')}; {last}; echo finished", inputs={"b": b}, outputs={"c": out})]
    return [m.submit(t) for t in tasks]


def run_chain(tmp_path: Path, memo: Path, **kw) -> tuple[list, dict]:
    with Manager(workers=1, memo=memo, progress=False) as m:
        results = [f.result(60) for f in chain(m, tmp_path, **kw)]
        stats = m.stats()
    return results, stats


@pytest.fixture(scope="module")
def pym(tmp_path_factory):
    """One manager for the Python tasks' tests (each test's arguments name its own directory): a task
    submitted again once its record is written is answered by it, as in a later run."""
    with Manager(workers=1, memo=tmp_path_factory.mktemp("memo"), progress=False) as m:
        yield m


def body(record: Path) -> dict:
    """A record's JSON (after its first line, the checksum)."""
    return json.loads(record.read_bytes().split(b"\n", 1)[1])


def pym_memo(m: Manager) -> Path:
    return m._memo.store.root


@contextlib.contextmanager
def recording(m: Manager, count: int):
    """Waits, after the block, until `count` more records are written (they are written after the Futures
    settle)."""
    before = m.stats()["memo_recorded"]
    yield
    wait_until(lambda: m.stats()["memo_recorded"] >= before + count, timeout=30)


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "in.txt").write_text("pear\napple\npear\nfig\n")
    return tmp_path


def test_a_second_run_of_a_chain_runs_none_of_it_and_writes_its_output_home(inputs):
    tmp_path, memo = inputs, inputs / "memo"
    first, _ = run_chain(tmp_path, memo)
    assert runs(tmp_path) == ["sort", "uniq", "last"]
    expected = (tmp_path / "out.txt").read_text()
    assert expected.split() == ["1", "APPLE", "1", "FIG", "2", "PEAR"]
    (tmp_path / "out.txt").unlink()
    second, stats = run_chain(tmp_path, memo)
    assert runs(tmp_path) == ["sort", "uniq", "last"]            # nothing ran again
    assert (tmp_path / "out.txt").read_text() == expected         # written home from the record
    assert [r.memoized for r in first] == [False] * 3 and [r.memoized for r in second] == [True] * 3
    assert second[-1].stdout == first[-1].stdout == "finished\n" and second[-1].exit_code == 0
    assert stats["memo_hits"] == 3 and stats["tasks_done"] == 3
    assert stats["bytes_manager_to_worker"] == 0 and stats["bytes_worker_to_manager"] == 0   # no temp made


def test_a_changed_input_runs_the_chain_again_and_a_changed_last_step_only_that_step(inputs):
    tmp_path, memo = inputs, inputs / "memo"
    run_chain(tmp_path, memo)
    (tmp_path / "in.txt").write_text("kiwi\nkiwi\n")
    run_chain(tmp_path, memo)
    assert runs(tmp_path) == ["sort", "uniq", "last"] * 2
    assert (tmp_path / "out.txt").read_text().split() == ["2", "KIWI"]
    results, stats = run_chain(tmp_path, memo, last="rev < b > c")
    # the last step reads the temp b from the record, which the manager serves: b is never made again
    assert runs(tmp_path)[6:] == ["last"] and [r.memoized for r in results] == [True, True, False]
    assert (tmp_path / "out.txt").read_text().split() == ["iwik", "2"]
    assert stats["bytes_manager_to_worker"] > 0


def test_a_large_temp_is_kept_in_the_record_and_read_from_there(tmp_path):
    """2 MB: fetched into a file of the record (not with the completion, nor into memory)."""
    memo = tmp_path / "memo"

    def run(reader: str):
        with Manager(workers=1, memo=memo, progress=False) as m:
            big, out = m.declare_temp(), m.declare_file(tmp_path / "out.txt")
            a = m.submit(Task(f"{mark(tmp_path, 'make')}; head -c 2000000 /dev/zero | tr '\\0' x > big",
                              outputs={"big": big}))
            b = m.submit(Task(f"{mark(tmp_path, 'read')}; {reader} big > out", inputs={"big": big},
                              outputs={"out": out}))
            return a.result(60), b.result(60)

    run("wc -c <")
    assert (tmp_path / "out.txt").read_text().strip() == "2000000"
    blobs = [p for p in (memo / "blobs").rglob("*") if p.is_file()]
    assert any(p.stat().st_size == 2_000_000 for p in blobs)
    made, read = run("tr -d x <")     # another reader: the temp comes from the record, its maker does not run
    assert made.memoized and not read.memoized
    assert runs(tmp_path) == ["make", "read", "read"] and (tmp_path / "out.txt").read_text() == ""


def test_python_tasks_run_again_when_an_argument_or_the_function_changes(pym, tmp_path):
    marks = str(tmp_path / "runs")

    def versions():
        def step(x, marks):
            with open(marks, "a") as f:
                f.write("step\n")
            return x * 2

        first = step

        def step(x, marks):   # the same name, another body
            with open(marks, "a") as f:
                f.write("step\n")
            return x * 3

        return first, step

    one, other = versions()
    assert one.__qualname__ == other.__qualname__
    with recording(pym, 2):
        assert pym.submit(PythonTask(add, args=(1, 2, marks))).result(60) == 3
        assert pym.submit(PythonTask(one, args=(5, marks))).result(60) == 10
    again = pym.submit(PythonTask(add, args=(1, 2, marks)))
    assert again.result(60) == 3 and again.info.memoized
    assert pym.submit(PythonTask(add, args=(1, 3, marks))).result(60) == 4    # another argument
    assert pym.submit(PythonTask(one, args=(5, marks))).result(60) == 10     # the same closure
    assert pym.submit(PythonTask(other, args=(5, marks))).result(60) == 15   # another body
    assert runs(tmp_path) == ["add", "step", "add", "step"]


def test_the_code_digest_sees_the_body_not_where_it_sits():
    def code(source):
        return compile(source, "f.py", "exec").co_consts[0]

    here = code("def f(x):\n    return x + 1\n")
    assert code_digest(here) == code_digest(code("\n\n\ndef f(x):\n    return x + 1\n"))
    assert code_digest(here) != code_digest(code("def f(x):\n    return x + 2\n"))


def test_a_failure_is_never_recorded(pym, tmp_path):
    marks = str(tmp_path / "runs")
    for _ in range(2):
        with pytest.raises(TaskFailed):
            pym.submit(Task(f"{mark(tmp_path, 'exit')}; exit 3")).result(60)
        with pytest.raises(ValueError, match="no good"):
            pym.submit(PythonTask(fail, args=(marks,))).result(60)
    with recording(pym, 1):   # a success after them, so that anything they left to write is written by now
        pym.submit(PythonTask(add, args=(0, 0, marks))).result(60)
    assert runs(tmp_path) == ["exit", "fail"] * 2 + ["add"]
    labels = [body(p)["label"] for p in (pym_memo(pym) / "records").rglob("*.json")]
    assert "fail" not in labels and not any("exit 3" in x for x in labels)


def test_a_corrupted_or_half_written_record_is_ignored_with_a_warning_naming_it(pym, tmp_path):
    marks = str(tmp_path / "runs")
    with recording(pym, 2):
        pym.submit(PythonTask(add, args=(1, 1, marks))).result(60)
        pym.submit(PythonTask(add, args=(2, 2, marks))).result(60)
    records = sorted((pym_memo(pym) / "records").rglob("*.json"), key=lambda p: p.stat().st_mtime_ns)[-2:]
    whole = records[0].read_bytes()
    records[0].write_bytes(whole[:len(whole) // 2])                  # half-written
    head, text = records[1].read_bytes().split(b"\n", 1)
    assert b'"exit":0' in text
    records[1].write_bytes(head + b"\n" + text.replace(b'"exit":0', b'"exit":1'))   # behind the checksum's back
    with pytest.warns(MemoWarning) as caught, recording(pym, 2):
        assert pym.submit(PythonTask(add, args=(1, 1, marks))).result(60) == 2
        assert pym.submit(PythonTask(add, args=(2, 2, marks))).result(60) == 4
    said = [str(w.message) for w in caught]
    assert any(str(records[0]) in s and "not whole JSON" in s for s in said)
    assert any(str(records[1]) in s and "checksum" in s for s in said)
    assert runs(tmp_path) == ["add"] * 4
    with warnings.catch_warnings():   # the runs replaced both with whole records
        warnings.simplefilter("error", MemoWarning)
        assert pym.submit(PythonTask(add, args=(1, 1, marks))).result(60) == 2
        assert pym.submit(PythonTask(add, args=(2, 2, marks))).result(60) == 4
    assert runs(tmp_path) == ["add"] * 4


def test_executor_calls_are_memoized_through_their_futures(tmp_path):
    memo, marks = tmp_path / "memo", str(tmp_path / "runs")

    def calls(ex):
        f = ex.submit(add, 0, 1, marks)
        for i in range(4):
            f = ex.submit(add, f, i, marks)   # a future as an argument counts by its call's fingerprint
        assert f.result(60) == 7
        assert list(ex.map(add, [1, 2], [10, 20], [marks, marks])) == [11, 22]
        big = ex.submit(add, b"x" * 300_000, b"y", marks)   # past small_result: fetched for the record
        return big

    with Executor(workers=1, memo=memo, progress=False) as ex:
        with recording(ex.manager, 8):
            calls(ex)
        big = calls(ex)   # every call answered by the records of the first time
        assert ex.stats()["memo_hits"] == 8
        assert big.result(60) == b"x" * 300_000 + b"y"
        assert ex.submit(add, big, b"z", marks).result(60)[-2:] == b"yz"   # it reads the value from the record
    assert runs(tmp_path) == ["add"] * 9


def test_memo_per_task_default_directory_and_opting_out(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TETHER_MEMO_DIR", raising=False)
    with Manager(workers=1, progress=False) as m:     # memo=None: only tasks that ask
        with recording(m, 1):
            m.submit(Task(f"{mark(tmp_path, 'asks')}", memo=True)).result(60)
            m.submit(Task(f"{mark(tmp_path, 'plain')}")).result(60)
        assert m.submit(Task(f"{mark(tmp_path, 'asks')}", memo=True)).result(60).memoized
        m.submit(Task(f"{mark(tmp_path, 'plain')}")).result(60)
    assert list((tmp_path / "xdg" / "tether" / "memo" / "records").rglob("*.json"))
    with Manager(workers=1, memo=tmp_path / "all", progress=False) as m:
        with recording(m, 1):
            m.submit(Task(f"{mark(tmp_path, 'every')}")).result(60)
            m.submit(Task(f"{mark(tmp_path, 'never')}", memo=False)).result(60)
        assert m.submit(Task(f"{mark(tmp_path, 'every')}")).result(60).memoized
        m.submit(Task(f"{mark(tmp_path, 'never')}", memo=False)).result(60)
    assert runs(tmp_path) == ["asks", "plain", "plain", "every", "never", "never"]


def test_two_runs_at_once_share_a_memo_directory(inputs):
    tmp_path, memo = inputs, inputs / "memo"
    errors = []

    def one():
        try:
            with Manager(workers=1, memo=memo, progress=False) as m:
                for f in chain(m, tmp_path):
                    f.result(60)
        except BaseException as e:   # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    done = len(runs(tmp_path))
    assert 3 <= done <= 6
    results, _ = run_chain(tmp_path, memo)
    assert len(runs(tmp_path)) == done and all(r.memoized for r in results)
    assert (tmp_path / "out.txt").read_text().split() == ["1", "APPLE", "1", "FIG", "2", "PEAR"]
    assert not list((memo / "tmp").iterdir())


def test_bad_memo_options_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="memo must be"):
        Manager(workers=0, memo=3, progress=False)
    with pytest.raises(ValueError, match="not both"):
        Manager(workers=0, memo=tmp_path, memo_dir=tmp_path, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file"):
        Manager(workers=0, memo=tmp_path / "file", progress=False)
    with pytest.raises(ValueError, match="memo must be True, False or None"):
        Task("true", memo="yes")
    with Manager(workers=0, memo=False, progress=False) as m:
        with pytest.raises(ValueError, match="memo=False"):
            m.submit(Task("true", memo=True))
