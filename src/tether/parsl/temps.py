"""Which task makes each temp file, and which consumers wait for it.

Parsl believes temp files exist at once (see staging.py), so consumers reach
the executor before their producers have run. tether can hold a consumer
until its temp is made, but only for one producer: tether fails the held
consumers the moment that producer fails, and refuses a second producer of
the same file. Parsl, though, may run a failed producer again (a retry is a
new executor submission). So one temp URL (a Slot) is backed by a series of
tether temp files, one per attempt of its producer:

    none     no producer submitted yet: consumers wait here, in the executor
    pending  the producer is in tether: consumers go to tether, which holds them
    made     the producer succeeded
    dead     the producer's attempt failed: consumers wait here for the next
             attempt, which makes a fresh tether file

Consumers that tether failed because their input died come back through
finished(..., "dependency") and wait (or go again at once if the next
attempt is already in). Only when Parsl gives up on the producer (its
AppFuture fails) do the waiting consumers fail, with a dependency error,
never having run. A consumer that is itself a producer passes all this down
its chain: its outputs die with it and are made afresh when it goes again.

No parsl or network here: the executor passes in how to declare a tether
temp and how to launch a job, and acts on the failures returned.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

NONE, PENDING, MADE, DEAD = "none", "pending", "made", "dead"


class Slot:
    """One temp URL of the run (temp://x and taskvinetemp://x are the same slot)."""

    __slots__ = ("name", "file", "producer", "state", "app_future", "gave_up", "waiting")

    def __init__(self, name: str):
        self.name = name
        self.file: Any = None            # the tether temp File of the current attempt
        self.producer: Job | None = None
        self.state = NONE
        self.app_future: Any = None      # Parsl's AppFuture of the task that makes it
        self.gave_up = False             # Parsl gave up on the producer: it will never be made
        self.waiting: set[Job] = set()   # consumers held in the executor

    def __repr__(self) -> str:
        return f"Slot({self.name!r}, {self.state})"


class Job:
    """One executor submission (one try of a Parsl task)."""

    __slots__ = ("id", "temp_inputs", "temp_outputs", "data", "state", "task", "used")

    def __init__(self, id: int, temp_inputs: dict[str, Slot], temp_outputs: dict[str, Slot], data: Any = None):
        self.id = id
        self.temp_inputs = temp_inputs     # sandbox name -> slot
        self.temp_outputs = temp_outputs
        self.data = data                   # what the executor needs to launch it
        self.state = "new"                 # new, waiting, running, done
        self.task: Any = None              # the tether Future of the current launch
        self.used: dict[Slot, Any] = {}    # slot -> tether File the current launch reads

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.state})"


@dataclass
class Failure:
    """A job to fail for good: because `slot` will never be made, or with `error`."""

    job: Job
    slot: Slot | None = None
    error: BaseException | None = None


@dataclass
class Outcome:
    failures: list[Failure] = field(default_factory=list)
    current: bool = True   # false: the report was about an old launch, ignore it


# launch(job, temp inputs {sandbox: tether File}, temp outputs {sandbox: tether File}) -> tether Future
Launch = Callable[[Job, dict[str, Any], dict[str, Any]], Any]


class TempBook:
    def __init__(self, declare: Callable[[], Any], launch: Launch):
        self._declare = declare
        self._launch = launch
        self._lock = threading.Lock()
        self.slots: dict[str, Slot] = {}
        self.jobs: dict[int, Job] = {}     # jobs not done yet

    # ------------------------------------------------------------ entry points

    def slot(self, name: str) -> Slot:
        with self._lock:
            return self._slot(name)

    def _slot(self, name: str) -> Slot:
        s = self.slots.get(name)
        if s is None:
            s = self.slots[name] = Slot(name)
        return s

    def producer_registered(self, name: str, app_future: Any) -> Slot:
        """Parsl will run the task behind app_future to make temp `name`."""
        with self._lock:
            s = self._slot(name)
            s.app_future = app_future
            s.gave_up = False
            return s

    def add(self, job: Job) -> Outcome:
        """A new submission: launch it, or hold it until its temp inputs can come."""
        with self._lock:
            return self._add(job)

    def submit(self, id: int, temp_inputs: dict[str, str], temp_outputs: dict[str, str], data: Any) -> Outcome:
        """add() of a new Job reading and making these temps ({sandbox name: temp name}), in one
        hold of the lock (the launching thread takes it once per submission, not once per temp)."""
        with self._lock:
            slot = self._slot
            return self._add(Job(id, {n: slot(t) for n, t in temp_inputs.items()},
                                 {n: slot(t) for n, t in temp_outputs.items()}, data))

    def _add(self, job: Job) -> Outcome:
        self.jobs[job.id] = job
        out = Outcome()
        self._settle([job], out)
        return out

    def finished(self, job: Job, task: Any, how: str, error: BaseException | None = None) -> Outcome:
        """A launch ended: how is "ok", "failed", or "dependency" (tether never ran it: an input died)."""
        with self._lock:
            out = Outcome()
            if job.task is not task or job.state != "running":
                out.current = False
                return out
            if how == "ok":
                self._done(job)
                for s in job.temp_outputs.values():
                    if s.producer is job:
                        s.state = MADE
                return out
            self._kill_outputs(job)
            if how == "failed":
                self._done(job)
                return out
            # "dependency": go again once every input has a live attempt
            if all(s.state in (PENDING, MADE) and job.used.get(s) is s.file for s in job.temp_inputs.values()):
                # nothing we know of changed, so launching again would fail the same way
                self._done(job)
                out.failures.append(Failure(job, error=error))
                return out
            job.state = "new"
            self._settle([job], out)
            return out

    def producer_done(self, slot: Slot, app_future: Any) -> Outcome:
        """Parsl finished with the task that makes slot; if the file is not made, it never will be."""
        with self._lock:
            out = Outcome()
            if slot.app_future is not app_future or slot.state in (PENDING, MADE):
                return out
            slot.gave_up = True
            waiting = list(slot.waiting)
            slot.waiting.clear()
            for j in waiting:
                j.state = "new"
            self._settle(waiting, out)
            return out

    def outstanding(self) -> int:
        """Launched jobs that can run now: every temp input is made (not held for look-ahead)."""
        with self._lock:
            return sum(1 for j in self.jobs.values() if j.state == "running"
                       and all(s.state == MADE and j.used.get(s) is s.file for s in j.temp_inputs.values()))

    def unfinished(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    # ------------------------------------------------------------ the work

    def _settle(self, work: list[Job], out: Outcome) -> None:
        """Launch, hold or fail each job; a launched producer releases its waiting consumers."""
        while work:
            job = work.pop()
            if job.state != "new":
                continue
            broken = next((s for s in job.temp_inputs.values() if s.state in (NONE, DEAD) and s.gave_up), None)
            if broken is not None:
                self._done(job)
                out.failures.append(Failure(job, slot=broken))
                continue
            blocked = [s for s in job.temp_inputs.values() if s.state in (NONE, DEAD)]
            if blocked:
                job.state = "waiting"
                for s in blocked:
                    s.waiting.add(job)
                continue
            clash = next((s for s in job.temp_outputs.values()
                          if s.producer is not None and s.producer is not job and s.state in (PENDING, MADE)), None)
            if clash is not None:
                self._done(job)
                out.failures.append(Failure(job, error=ValueError(
                    f"temp file {clash.name!r} is already made by another task; each temp URL is made once")))
                continue
            made = {name: self._declare() for name in job.temp_outputs}
            try:
                task = self._launch(job, {n: s.file for n, s in job.temp_inputs.items()}, made)
            except Exception as e:
                self._done(job)
                out.failures.append(Failure(job, error=e))
                continue
            job.task = task
            job.state = "running"
            job.used = {s: s.file for s in job.temp_inputs.values()}
            for s in job.temp_inputs.values():
                s.waiting.discard(job)
            for name, s in job.temp_outputs.items():
                s.file, s.producer, s.state, s.gave_up = made[name], job, PENDING, False
                for c in s.waiting:
                    c.state = "new"
                work.extend(s.waiting)
                s.waiting.clear()

    def _kill_outputs(self, job: Job) -> None:
        for s in job.temp_outputs.values():
            if s.producer is job and s.state == PENDING:
                s.state = DEAD

    def _done(self, job: Job) -> None:
        job.state = "done"
        self.jobs.pop(job.id, None)
        for s in job.temp_inputs.values():
            s.waiting.discard(job)
