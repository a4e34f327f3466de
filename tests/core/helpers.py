"""Driving the scheduler core by hand: submit tasks, play the workers' part."""
from __future__ import annotations

from tether.core import (MANAGER, Assign, Complete, Delete, Fail, Fetch, FileSpec, Retract, Scheduler, State,
                         TaskFailedOn, TaskSubmitted, TaskSucceeded, WorkerJoined, WorkerLost)


def temp(name: str) -> FileSpec:
    return FileSpec(f"temp-{name}")


def src(name: str, size: int = 100) -> FileSpec:
    return FileSpec(f"file-{name}", size=size, source=True)


def out(name: str) -> FileSpec:
    return FileSpec(f"out-{name}", home=True)


class Harness:
    """A scheduler plus a record of what it asked each worker to do."""

    def __init__(self, **options):
        self.s = Scheduler(**options)
        self.assigned: dict[str, list[int]] = {}      # worker -> task ids, in order sent
        self.where: dict[int, str] = {}               # task -> worker it was last sent to
        self.sources: dict[int, dict[str, str | None]] = {}
        self.deleted: dict[str, list[str]] = {}
        self.retracted: dict[str, list[int]] = {}
        self.completed: dict[int, Complete] = {}
        self.failed: dict[int, Fail] = {}
        self.fetches: list[Fetch] = []
        self.log: list = []
        self.clock = 0.0

    def send(self, *events):
        commands = self.s.handle(*events)
        self.s.validate()
        self.log.extend(commands)
        for c in commands:
            if isinstance(c, Assign):
                for a in c.tasks:
                    self.assigned.setdefault(c.worker, []).append(a.task)
                    self.where[a.task] = c.worker
                    self.sources[a.task] = dict(a.sources)
            elif isinstance(c, Delete):
                self.deleted.setdefault(c.worker, []).extend(c.names)
            elif isinstance(c, Retract):
                self.retracted.setdefault(c.worker, []).extend(c.tasks)
            elif isinstance(c, Complete):
                self.completed[c.task] = c
            elif isinstance(c, Fail):
                self.failed[c.task] = c
            elif isinstance(c, Fetch):
                self.fetches.append(c)
        return commands

    def worker(self, name: str, cores: int = 1, **kw):
        return self.send(WorkerJoined(name, cores, **kw))

    def submit(self, tid: int, inputs=(), outputs=(), **kw):
        return self.send(TaskSubmitted(tid, tuple(inputs), tuple(outputs), **kw))

    def succeed(self, tid: int, duration: float = 1.0, sizes: int = 10, worker: str | None = None):
        worker = worker or self.where[tid]
        t = self.s.tasks[tid]
        start = self.clock
        self.clock += duration
        outputs = tuple((f.name, sizes) for f in t.outputs)
        return self.send(TaskSucceeded(worker, tid, outputs, start, self.clock))

    def fail(self, tid: int, reason: str = "exit", **kw):
        return self.send(TaskFailedOn(self.where[tid], tid, reason, **kw))

    def lose(self, worker: str):
        return self.send(WorkerLost(worker))

    def queued_on(self, worker: str) -> list[int]:
        """Tasks the core counts as assigned to the worker and unfinished."""
        return sorted(t.id for t in self.s.workers[worker].tasks)

    def run_all(self, limit: int = 10_000):
        """Finish assigned tasks in the order the workers would, until none are left."""
        for _ in range(limit):
            runnable = [t for t in self.s.tasks.values() if t.state is State.RUNNING]
            if not runnable:
                return
            self.succeed(min(runnable, key=lambda t: t.id).id)
        raise AssertionError("run_all did not settle")


__all__ = ["Harness", "temp", "src", "out", "MANAGER"]
