"""Bad input gets a clear error naming what was wrong; nothing is sent or lost."""
from __future__ import annotations

import os
import signal

import pytest

from tether import Manager, PythonTask, Task, TaskFailed

from .conftest import start_worker, stop, wait_until


def test_missing_input_file_fails_when_declared_into_a_task(shared_manager, tmp_path):
    m = shared_manager
    before = m.stats()
    missing = m.declare_file(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Task("cat nope.txt", inputs={"nope.txt": missing})
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        PythonTask(print, inputs={"x": missing})
    after = m.stats()
    assert after["tasks_submitted"] == before["tasks_submitted"]
    assert after["bytes_manager_to_worker"] == before["bytes_manager_to_worker"]


def test_missing_directory_fails_at_declare(shared_manager, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        shared_manager.declare_file(tmp_path / "no-such-dir" / "x")


def test_nonzero_exit_raises_taskfailed_with_code_and_stderr(shared_manager):
    f = shared_manager.submit(Task("echo doomed >&2; exit 3"))
    with pytest.raises(TaskFailed) as info:
        f.result(30)
    assert info.value.exit_code == 3
    assert "doomed" in info.value.stderr
    assert "exit code 3" in str(info.value)


def test_declared_output_not_made_raises_naming_it(shared_manager):
    tmp = shared_manager.declare_temp()
    f = shared_manager.submit(Task("true", outputs={"expected.dat": tmp}))
    with pytest.raises(TaskFailed, match="expected.dat"):
        f.result(30)


def test_consumer_of_a_failed_producer_fails_without_running(shared_manager, tmp_path):
    from tether import DependencyFailed

    marker = tmp_path / "ran"
    tmp = shared_manager.declare_temp()
    a = shared_manager.submit(Task("exit 1", outputs={"x": tmp}))
    b = shared_manager.submit(Task(f"touch {marker}", inputs={"x": tmp}))
    with pytest.raises(DependencyFailed, match=f"task {a.task_id}"):
        b.result(30)
    assert not marker.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"cores": 1, "colour": "red"}, "unknown Task option.*colour"),
    ({"inputs": {"/etc/passwd": None}}, "absolute"),
    ({"outputs": {"../escape": None}}, r"'\.\.'"),
    ({"outputs": {"a/../../b": None}}, r"'\.\.'"),
    ({"cores": 0}, "cores must be at least 1"),
    ({"cores": "two"}, "cores must be an integer"),
    ({"retries": -1}, "retries must be at least 0"),
    ({"inputs": ["x"]}, "inputs must be a dict"),
    ({"env": {"A=B": "x"}}, "env name 'A=B'"),
    ({"env": {"": "x"}}, "env name '' is empty"),
    ({"env": {"A": "x\0y"}}, "env value of A contains a NUL"),
    ({"env": {"A\0": "x"}}, "env name contains a NUL"),
    ({"env": {"A": "\udc80"}}, "env value of A is not valid text"),
    ({"timeout": float("nan")}, "timeout must be a finite number"),
    ({"timeout": float("inf")}, "timeout must be a finite number"),
    ({"timeout": 0}, "timeout must be a positive number"),
    ({"priority": float("nan")}, "priority must be a finite number"),
    ({"outputs": {"out\udc80": None}}, "output name is not valid text"),
    ({"inputs": {"in\0put": None}}, "input name contains a NUL"),
    ({"memory": 1 << 70}, "memory .* is too large"),
])
def test_bad_task_specs_raise_valueerror_at_construction(shared_manager, kwargs, message):
    f = shared_manager.declare_temp()
    for key in ("inputs", "outputs"):
        if isinstance(kwargs.get(key), dict):
            kwargs[key] = {name: f for name in kwargs[key]}
    with pytest.raises(ValueError, match=message):
        Task("true", **kwargs)


@pytest.mark.parametrize("command, message", [
    ("echo a\0b", "command contains a NUL"),
    ("echo \ud800", "command is not valid text"),
])
def test_hostile_commands_are_refused_before_anything_is_sent(shared_manager, command, message):
    before = shared_manager.stats()["tasks_submitted"]
    with pytest.raises(ValueError, match=message):
        Task(command)
    assert shared_manager.stats()["tasks_submitted"] == before


def test_bad_python_task_specs(shared_manager):
    with pytest.raises(ValueError, match="fn must be callable"):
        PythonTask(42)
    with pytest.raises(ValueError, match="unknown PythonTask option"):
        PythonTask(print, cpus=2)


def test_file_of_another_manager_is_refused(shared_manager):
    with Manager(workers=0) as other:
        foreign = other.declare_temp()
    with pytest.raises(ValueError, match="another manager"):
        shared_manager.submit(Task("true", outputs={"x": foreign}))


def test_second_producer_of_a_file_is_refused_at_submit(shared_manager):
    tmp = shared_manager.declare_temp()
    shared_manager.submit(Task("echo 1 > x", outputs={"x": tmp}))
    with pytest.raises(ValueError, match="already made by task"):
        shared_manager.submit(Task("echo 2 > x", outputs={"x": tmp}))


def test_task_too_big_for_the_local_workers_is_refused(shared_manager):
    with pytest.raises(ValueError, match="asks for 64 cores"):
        shared_manager.submit(Task("true", cores=64))


def test_running_task_of_a_lost_worker_runs_again_elsewhere(tmp_path):
    with Manager(workers=0) as m:
        procs = [start_worker(m, "first", tmp_path), start_worker(m, "second", tmp_path)]
        try:
            m.wait_for_workers(2)
            marker = tmp_path / "started"
            f = m.submit(Task(f"echo $$ >> {marker}; sleep 2; echo finished"))
            wait_until(lambda: marker.exists())
            victim = next(p for p in procs if p.poll() is None)
            # find which worker runs it: its process is in that worker's session
            pid = int(marker.read_text().split()[0])
            victim = next(p for p in procs if os.getsid(pid) == p.pid)
            os.killpg(victim.pid, signal.SIGKILL)
            r = f.result(60)
            assert r.stdout.strip() == "finished"
            assert r.attempts == 2 and len(marker.read_text().split()) == 2
        finally:
            for p in procs:
                stop(p)


def test_timeout_kills_the_task(shared_manager):
    f = shared_manager.submit(Task("sleep 30", timeout=0.5))
    with pytest.raises(TaskFailed, match="timeout"):
        f.result(30)


# ---------------------------------------------------------------- what a failing Python call shows

_SCRIPT = '''
import os, sys, time
import tether

HERE = os.path.abspath(__file__)


def boom(x):
    for _ in range(600):   # the program removes this file first: the lines must come with the function
        if not os.path.exists(HERE):
            break
        time.sleep(0.05)
    raise ValueError(f"boom {x}")


def show(future):
    try:
        future.result(60)
    except ValueError as e:
        print("".join(getattr(e, "__notes__", [])))
        print("=====")


if __name__ == "__main__":
    import mymod
    with tether.Executor(workers=1) as ex:
        calls = [ex.submit(boom, 1), ex.manager.submit(tether.PythonTask(boom, (2,))), ex.submit(mymod.fails, 3)]
        os.remove(HERE)
        for f in calls:
            show(f)
'''

_MODULE = '''
def fails(x):
    y = x * 2
    raise ValueError(f"fails {y}")
'''


def test_remote_traceback_names_the_file_and_shows_the_line(tmp_path):
    """A function of the program's __main__ (sent by value) and one of a module it imports: the
    remote traceback names each one's file and shows the line that raised, and no tether frame."""
    import subprocess
    import sys

    script = tmp_path / "program.py"
    script.write_text(_SCRIPT)
    (tmp_path / "mymod.py").write_text(_MODULE)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    executor_call, python_task, module_call = done.stdout.split("=====")[:3]
    for note in (executor_call, python_task):
        assert f'File "{script}", line 13, in boom' in note, note
        assert 'raise ValueError(f"boom {x}")' in note
        assert "<dynamic-code>" not in note and "interpreter.py" not in note
    assert f'File "{tmp_path / "mymod.py"}", line 4, in fails' in module_call, module_call
    assert 'raise ValueError(f"fails {y}")' in module_call


class _Refuses:
    """Raises when pickled: its frame is the user's, and shows."""

    def __reduce__(self):
        raise RuntimeError("this object stays where it was made")


def _returns_lock():
    import threading
    return {"n": 1, "lock": threading.Lock()}


def _lock_for(n):
    return _returns_lock()


def _returns_refuser():
    return [_Refuses()]


@pytest.fixture(scope="module")
def ex():
    from tether import Executor

    with Executor(workers=1) as ex:
        ex.manager.wait_for_workers()
        yield ex


def _failure(future):
    with pytest.raises(BaseException) as info:
        future.result(60)
    return info.value, "".join(getattr(info.value, "__notes__", []))


def test_unpicklable_return_value_names_task_function_and_type(ex, shared_manager):
    from tether import SerializationError

    for future in (ex.submit(_returns_lock), shared_manager.submit(PythonTask(_returns_lock))):
        error, notes = _failure(future)
        assert isinstance(error, SerializationError) and isinstance(error, TypeError)
        assert error.task_id == future.task_id and error.function == "_returns_lock"
        assert error.type_name == "_thread.lock" and error.what == "the return value"
        assert f"task {future.task_id} (_returns_lock): its return value, a dict, cannot be pickled" in str(error)
        assert "result['lock'] is a _thread.lock: cannot pickle '_thread.lock' object" in str(error)
        assert not notes   # no frame of the user's to show, and none of tether's
    with pytest.raises(SerializationError, match=r"\(_lock_for\): its return value, a dict"):
        list(ex.map(_lock_for, [0]))   # a value wanted here, not kept on the worker


def test_unpicklable_return_value_shows_the_users_frames_only(ex):
    error, notes = _failure(ex.submit(_returns_refuser))
    assert "result[0] is a tests.test_errors._Refuses" in str(error)
    assert "this object stays where it was made" in str(error)
    assert "in __reduce__" in notes and 'raise RuntimeError("this object stays' in notes
    for internal in ("interpreter.py", "spill.py", "cloudpickle", "pickle.py", "copyreg"):
        assert internal not in notes


def _takes(*args, **kwargs):
    return len(args) + len(kwargs)


def test_unpicklable_argument_is_named_at_submit(ex, shared_manager):
    import threading

    from tether import SerializationError

    before = shared_manager.stats()["tasks_submitted"]
    lock = threading.Lock()
    cases = [
        (lambda: ex.submit(_takes, 1, lock), "argument 1", "args[1] is a _thread.lock"),
        (lambda: ex.submit(_takes, 1, options={"guard": [lock]}), "keyword argument 'options'",
         "kwargs['options']['guard'][0] is a _thread.lock"),
        (lambda: shared_manager.submit(PythonTask(_takes, (0, 1, {"lock": lock}))), "argument 2",
         "args[2]['lock'] is a _thread.lock"),
        (lambda: shared_manager.submit(PythonTask(_takes, kwargs={"big": b"x" * (5 << 20), "lock": lock})),
         "keyword argument 'lock'", "kwargs['lock'] is a _thread.lock"),
    ]
    for submit, what, where in cases:
        with pytest.raises(SerializationError) as info:
            submit()
        error = info.value
        assert isinstance(error, TypeError) and error.what == what and error.function == "_takes"
        assert f"task {error.task_id} (_takes): {what} cannot be pickled" in str(error)
        assert where in str(error)
        assert "cannot pickle '_thread.lock' object" in str(error.__cause__)
    assert shared_manager.stats()["tasks_submitted"] == before


def test_unpicklable_function_is_named_at_submit(ex):
    import threading

    from tether import SerializationError

    lock = threading.Lock()

    def guarded():
        with lock:
            return 1

    with pytest.raises(SerializationError) as info:
        ex.submit(guarded)
    assert info.value.what == "the function" and info.value.type_name == "_thread.lock"
    assert "guarded → variable 'lock' is a _thread.lock" in str(info.value)
    assert isinstance(info.value.__cause__, TypeError)


# ---------------------------------------------------------------- large arguments


def _length(data, *rest):
    return len(data)


def test_large_argument_warns_at_the_programs_line_and_goes_to_a_worker_once(ex):
    import warnings

    from tether import LargeArgumentWarning
    from tether.manager.manager import LARGE_ARGUMENTS

    data = os.urandom(LARGE_ARGUMENTS + 1000)
    before = ex.stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ex.submit(_length, data).result(120) == len(data)
        assert ex.submit(_length, data, 1).result(120) == len(data)              # the same object
        assert ex.submit(_length, bytes(bytearray(data))).result(120) == len(data)  # the same bytes
    after = ex.stats()
    warned = [w for w in caught if issubclass(w.category, LargeArgumentWarning)]
    assert len(warned) == 3 and all(w.filename == __file__ for w in warned)
    assert "m.declare_buffer(data)" in str(warned[0].message)
    assert "over 10 MB" in str(warned[0].message)
    assert len(data) <= after["bytes_manager_to_worker"] - before["bytes_manager_to_worker"] < 2 * len(data)
    assert after["bytes_arguments_to_worker"] - before["bytes_arguments_to_worker"] < 10_000


def test_large_arguments_of_python_tasks_arrive_intact(shared_manager):
    import warnings

    import numpy as np

    from tether import LargeArgumentWarning

    array = np.arange(2_000_000, dtype=np.float64)   # 16 MB, a buffer of its own
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LargeArgumentWarning)
        f = shared_manager.submit(PythonTask(np.sum, (array,)))
        g = shared_manager.submit(PythonTask(_length, (b"y" * (6 << 20), "small", array)))
    assert f.result(120) == array.sum()
    assert g.result(120) == 6 << 20


def test_buffers_of_arguments_are_let_go_once_their_tasks_are_forgotten(ex):
    import gc
    import warnings

    from tether.manager.manager import BUFFERED_ARGUMENT

    m = ex.manager
    data = b"z" * (BUFFERED_ARGUMENT + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ex.submit(_length, data).result(60) == len(data)
    gc.collect()
    wait_until(lambda: not m._arg_buffers)
    assert not any(isinstance(v, bytes) and len(v) > BUFFERED_ARGUMENT for v in m.engine.served.values())


def _pid_and_length(data):
    return os.getpid(), len(data)


def _second(pair):
    return pair[1]


def test_a_lost_result_is_made_again_from_its_buffered_argument():
    """The buffer of an argument stays served while the call may run again: its result, lost with
    its worker, is made again on another from its lineage."""
    import warnings

    import psutil

    from tether import Executor
    from tether.manager.manager import BUFFERED_ARGUMENT

    data = os.urandom(BUFFERED_ARGUMENT + 1)
    with Executor(workers=2) as ex, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex.manager.wait_for_workers()
        f = ex.submit(_pid_and_length, data)
        pid, length = f.result(60)
        del data   # the program no longer has it: only the manager's buffer does
        worker = psutil.Process(pid).ppid()
        os.killpg(worker, signal.SIGKILL)
        assert ex.submit(_second, f).result(120) == length
        assert ex.stats()["bytes_manager_to_worker"] > 2 * length   # sent to each worker: it ran twice


def test_result_timeout_with_no_worker_says_how_to_start_one():
    from tether import Executor

    with Executor(workers=0) as ex:
        m = ex.manager
        waiting = [ex.submit(len, "abc"), m.submit(PythonTask(len, ("ab",)))]
        for future in waiting:
            with pytest.raises(TimeoutError) as info:
                future.result(timeout=0.2)
            text = str(info.value)
            assert f"task {future.task_id} did not end within 0.2 s" in text
            assert "no worker is connected" in text
            assert f"tether worker {m.address} --secret-file {m.secret_file}" in text
            future.cancel()


def test_result_timeout_with_workers_says_how_many(shared_manager):
    f = shared_manager.submit(Task("sleep 1"))   # cannot end within the 0.1 s waited
    with pytest.raises(TimeoutError, match=rf"task {f.task_id} did not end within 0.1 s \(2 workers connected\)"):
        f.result(timeout=0.1)
    assert f.result(30).exit_code == 0
