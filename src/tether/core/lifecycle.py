"""The lifecycles of tasks and files: their states and every legal transition.

Everything that changes a task's or a file's state goes through `move_task`
or `move_file`, which refuse a transition the tables below do not list. A
refused transition is a bug in the core, raised as IllegalTransition, never
a silent inconsistency that leaves a Future pending for ever.

Task states, as the manager's core sees them:

    WAITING    some input does not exist yet
    READY      every input exists somewhere; waiting for a worker
    ASSIGNED   sent to a worker, but some input is not made yet (a group
               member waiting for the one before it); holds no cores
    RUNNING    on its worker with every input made; holds cores there
               (running, or next in line there)
    HOMING     succeeded; an output is on its way to the submitting side
    DONE       succeeded, every output where it belongs
    FAILED     failed for good (its own failure past its retries, system
               failures past the system retries, or a dependency failed)
    CANCELLED  cancelled by the user before it ran

A task whose result a memo record holds goes from WAITING to DONE at
once, without running. A DONE task goes back to WAITING when a temp it made is lost and needed
again (recovery); its Future stays settled. File states:

    SOURCE     on the submitting side (a user input or buffer): always there
    ABSENT     made by a task: not made yet, or lost and to be made again
    MADE       held by at least one worker
    HOME       an output written back to the submitting side, served from
               there from now on (workers may still hold copies); or an
               output of a memoized task, served from its memo record
    GONE       deleted everywhere once nothing needed it; made again if a
               new consumer turns up
    DOOMED     will never be made: its producer failed for good
    RECIPE     made by each worker that reads it, for itself (a URL it fetches, an
               archive it unpacks, a mini-task it runs): always available, no
               producer task; a copy lost with its worker is not recovered, the
               next worker that needs it makes its own
"""
from __future__ import annotations

from enum import IntEnum


class TaskState(IntEnum):
    WAITING = 0
    READY = 1
    ASSIGNED = 2
    RUNNING = 3
    HOMING = 4
    DONE = 5
    FAILED = 6
    CANCELLED = 7


class FileState(IntEnum):
    SOURCE = 0
    ABSENT = 1
    MADE = 2
    HOME = 3
    GONE = 4
    DOOMED = 5
    RECIPE = 6


T = TaskState
F = FileState

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    T.WAITING: frozenset({T.READY, T.ASSIGNED, T.RUNNING, T.DONE, T.FAILED, T.CANCELLED}),
    T.READY: frozenset({T.WAITING, T.ASSIGNED, T.RUNNING, T.FAILED, T.CANCELLED}),
    # a report may overtake the core's view: a member the core still sees waiting can end
    T.ASSIGNED: frozenset({T.RUNNING, T.WAITING, T.READY, T.HOMING, T.DONE, T.FAILED, T.CANCELLED}),
    T.RUNNING: frozenset({T.ASSIGNED, T.WAITING, T.READY, T.HOMING, T.DONE, T.FAILED, T.CANCELLED}),
    T.HOMING: frozenset({T.DONE, T.WAITING, T.FAILED}),
    T.DONE: frozenset({T.WAITING}),
    T.FAILED: frozenset(),
    T.CANCELLED: frozenset(),
}

FILE_TRANSITIONS: dict[FileState, frozenset[FileState]] = {
    F.SOURCE: frozenset(),
    F.ABSENT: frozenset({F.MADE, F.HOME, F.DOOMED}),
    F.MADE: frozenset({F.ABSENT, F.HOME, F.GONE}),
    F.HOME: frozenset(),
    F.GONE: frozenset({F.ABSENT}),
    F.DOOMED: frozenset(),
    F.RECIPE: frozenset(),
}

TERMINAL = frozenset({T.DONE, T.FAILED, T.CANCELLED})       # the Future is settled by now
FINISHED = TERMINAL | {T.HOMING}                             # will not run again unless recovered
ON_WORKER = frozenset({T.ASSIGNED, T.RUNNING})               # sent to a worker and not ended there
UNSTARTED = frozenset({T.WAITING, T.READY})                  # not sent to any worker
PENDING = frozenset({T.WAITING, T.READY, T.ASSIGNED, T.RUNNING})   # will run (again)
AVAILABLE = frozenset({F.SOURCE, F.MADE, F.HOME, F.RECIPE})  # a task can read it now
SERVED_HOME = frozenset({F.SOURCE, F.HOME})                  # the submitting side serves it


class IllegalTransition(RuntimeError):
    """The core tried a transition its lifecycle tables do not allow: a bug in tether."""


def move_task(task, new: TaskState) -> TaskState:
    """Change a task's state, refusing what TASK_TRANSITIONS does not list. Returns the old state."""
    old = task.state
    if new not in TASK_TRANSITIONS[old]:
        raise IllegalTransition(f"task {task.id}: {old.name} -> {new.name} is not a legal transition")
    task.state = new
    return old


def move_file(file, new: FileState) -> FileState:
    """Change a file's state, refusing what FILE_TRANSITIONS does not list. Returns the old state."""
    old = file.state
    if new not in FILE_TRANSITIONS[old]:
        raise IllegalTransition(f"file {file.name}: {old.name} -> {new.name} is not a legal transition")
    file.state = new
    return old
