"""The worker's own decisions (WorkerState), driven directly: no process, no sockets."""
from __future__ import annotations

from tether.wire.messages import TaskSpec
from tether.worker.state import Fetch, Reject, Start, WorkerState, WorkTask, WorkState


def task(tid: int, sources: dict, outputs=(), kind: str = "sh", **spec) -> WorkTask:
    return WorkTask(tid, TaskSpec(tid, kind, **spec), [(f"in{i}", n) for i, n in enumerate(sources)],
                    [(f"out{i}", n) for i, n in enumerate(outputs)], dict(sources))


def test_a_task_told_an_input_is_here_when_it_is_not_goes_back_naming_the_file():
    # the manager still believed file-x was here (its loss was on the way): waiting would be for ever
    ws = WorkerState(cores=2)
    ws.present["file-y"] = 10
    out = ws.assign([task(1, {"file-x": None, "file-y": None})])
    assert out == [Reject(1, "input", "file-x is not in this worker's cache", "file-x", None)]
    assert ws.tasks == {} and ws.waiters.get("file-x", []) == []
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
