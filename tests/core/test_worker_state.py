"""The worker's own decisions (WorkerState), driven directly: no process, no sockets."""
from __future__ import annotations

from tether.wire.messages import TaskSpec
from tether.worker.state import Evict, Fetch, Reject, Start, Unfetched, WorkerState, WorkTask, WorkState


def task(tid: int, sources: dict, outputs=(), kind: str = "sh", **spec) -> WorkTask:
    return WorkTask(tid, TaskSpec(tid, kind, **spec), [(f"in{i}", n) for i, n in enumerate(sources)],
                    [(f"out{i}", n) for i, n in enumerate(outputs)], dict(sources))


def test_a_task_told_an_input_is_here_when_it_is_not_goes_back_naming_the_file():
    # the manager still believed temp-x was here (its loss was on the way): waiting would be for ever
    ws = WorkerState(cores=2)
    ws.adopt_cached({"file-y": 10})
    out = ws.assign([task(1, {"temp-x": None, "file-y": None})])
    assert out == [Reject(1, "input", "temp-x is not in this worker's cache", "temp-x", None)]
    assert ws.tasks == {} and ws.waiters.get("temp-x", []) == []
    ws.validate()


def test_a_content_named_input_gone_from_here_is_fetched_from_the_manager_again():
    ws = WorkerState(cores=1)
    out = ws.assign([task(1, {"file-x": None})])   # evicted just before the assignment came
    assert out == [Fetch("file-x", "@manager")]
    assert ws.file_present("file-x", 10) == [Start(ws.tasks[1])]
    ws.validate()


def _evicted(out) -> list[str]:
    return [i.name for i in out if isinstance(i, Evict)]


def test_the_cache_keeps_to_its_budget_least_recently_used_first_never_what_a_task_reads():
    ws = WorkerState(cores=1, cache_budget=30)
    ws.adopt_cached({"file-old": 10})
    for tid, name in ((10, "file-a"), (11, "file-b")):
        ws.assign([task(tid, {name: "@manager"})])
        assert ws.file_present(name, 10) == [Start(ws.tasks[tid])]
        ws.task_ended(tid)
    ws.assign([task(99, {"file-old": None})])          # read again: now the most recently used
    ws.task_ended(99)
    ws.assign([task(100, {"file-c": "@manager"})])
    out = ws.file_present("file-c", 10)                # 40 bytes: the least recently used goes
    assert _evicted(out) == ["file-a"] and ws.present_bytes == 30
    ws.validate()
    out = ws.file_present("temp-t", 25)                # made here: temps are the manager's to collect
    assert _evicted(out) == ["file-b", "file-old"]     # not file-c: task 100 reads it
    assert set(ws.present) == {"file-c", "temp-t"}
    ws.validate()


def test_an_input_made_by_a_task_here_or_on_its_way_here_is_waited_for():
    ws = WorkerState(cores=1)
    first = task(1, {"file-a": "@manager"}, outputs=["temp-b"])
    second = task(2, {"temp-b": None, "file-a": None})   # the next member of a group, in the same message
    out = ws.assign([first, second])
    assert out == [Fetch("file-a", "@manager")]
    third = task(3, {"file-a": None})                     # told file-a is here: it is on its way
    assert ws.assign([third]) == []
    assert ws.tasks[2].state is WorkState.WAITING and ws.tasks[3].state is WorkState.WAITING
    out = ws.file_present("file-a", 5)
    assert out == [Start(first)]
    ws.validate()


def test_a_call_waiting_for_the_result_of_a_call_here_is_not_rejected():
    ws = WorkerState(cores=1)
    producer = task(1, {}, kind="py", result="res-1")
    ws.assign([producer])
    consumer = task(2, {"res-1": None}, kind="py")
    assert ws.assign([consumer]) == []
    assert ws.tasks[2].state is WorkState.WAITING
    ws.validate()


def _starts(out) -> list[WorkTask]:
    return [i.task for i in out if isinstance(i, Start)]


def test_a_made_input_is_made_once_by_a_maker_after_what_it_reads_and_both_readers_wait_for_it():
    from tether.wire.messages import Make
    ws = WorkerState(cores=1)
    unpack = Make("untar", inputs=((None, "buf-tar"),))
    out = ws.assign([task(1, {"untar-buf-tar": unpack, "buf-tar": "@manager"}),
                     task(2, {"untar-buf-tar": unpack, "buf-tar": "@manager"})])
    assert out == [Fetch("buf-tar", "@manager")]       # the archive once; nothing starts yet
    ws.validate()
    (maker,) = _starts(ws.file_present("buf-tar", 100))
    assert maker.makes == "untar-buf-tar" and maker.cores == 0 and ws.used_cores == 0
    ws.validate()
    started = _starts(ws.task_ended(maker.id, {"untar-buf-tar": 500}))
    assert [t.id for t in started] == [1]             # one core: the second reader waits for it
    assert [t.id for t in _starts(ws.task_ended(1))] == [2]
    ws.validate()


def test_a_mini_task_maker_holds_its_cores_and_its_failure_rejects_every_reader_naming_it():
    from tether.wire.messages import Make
    ws = WorkerState(cores=2)
    spec = TaskSpec(50, "sh", cores=2, outputs=(("tool", "mini-a-1"),), command="make tool")
    build = Make("task", task=spec, inputs=(("src.c", "file-src"),))
    ws.adopt_cached({"file-src": 10})
    out = ws.assign([task(1, {"mini-a-1": build, "file-src": None}), task(2, {"mini-a-1": build, "file-src": None})])
    (maker,) = _starts(out)
    assert maker.spec is spec and maker.inputs == [("src.c", "file-src")] and ws.used_cores == 2
    ws.validate()
    out = ws.make_failed(maker.id, "mini-task 50 making mini-a-1 failed: exit code 2")
    said = "mini-task 50 making mini-a-1 failed: exit code 2"
    assert out == [Reject(1, "input", said, "mini-a-1", build), Reject(2, "input", said, "mini-a-1", build),
                   Unfetched("mini-a-1", said)]   # the manager no longer counts on it here
    assert ws.tasks == {} and ws.used_cores == 0 and "mini-a-1" not in ws.fetching
    ws.validate()
    (again,) = _starts(ws.assign([task(3, {"mini-a-1": build, "file-src": None})]))   # a retry makes it anew
    assert again.makes == "mini-a-1" and again.id != maker.id


def _started(out) -> list[int]:
    return [i.task.id for i in out if isinstance(i, Start)]


def test_each_gpu_task_gets_devices_no_running_task_holds():
    ws = WorkerState(cores=4, gpus=2)
    one, two, both = (WorkTask(i, TaskSpec(i, "sh"), [], [], {}, gpus=g) for i, g in ((1, 1), (2, 1), (3, 2)))
    assert _started(ws.assign([one, two, both])) == [1, 2]
    assert {one.devices, two.devices} == {(0,), (1,)}
    ws.validate()
    assert _started(ws.task_ended(1)) == []   # one device free, two wanted
    assert _started(ws.task_ended(2)) == [3] and both.devices == (0, 1)
    ws.validate()


def test_ready_tasks_start_by_priority_then_in_order():
    ws = WorkerState(cores=1)
    busy, low, high, same = (WorkTask(i, TaskSpec(i, "sh"), [], [], {}, priority=p)
                             for i, p in ((1, 0), (2, 1), (3, 5), (4, 5)))
    assert _started(ws.assign([busy])) == [1]
    assert _started(ws.assign([low, high, same])) == []
    assert _started(ws.task_ended(1)) == [3]
    assert _started(ws.task_ended(3)) == [4]
    assert _started(ws.task_ended(4)) == [2]
    ws.validate()
