"""The floor: the workflow's shell commands run by a plain loop, no framework.

Worker threads take ready steps from one queue and run each with /bin/sh in
a shared directory. A step's consumers go to the front of the queue, so a
chain runs back to back on one thread, as a framework at its best would run it.
An intermediate is deleted once every step that reads it has run, as temp
files are, so that large intermediates cost the floor no more disk than they must.
"""
from __future__ import annotations

import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from ..report import make_row, tree_cpu_seconds
from ..workflow import Workflow


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "floor") -> dict:
    shared = work_dir / "shared"
    workflow.write_inputs(shared)
    waiting = {s.name: len(workflow.parents(s)) for s in workflow.steps}
    consumers = workflow.consumers()
    readers_left = {n: 0 for n in workflow.temps}
    for s in workflow.steps:
        for n in s.inputs:
            if n in readers_left:
                readers_left[n] += 1
    ready = deque(s for s in workflow.steps if waiting[s.name] == 0)
    lock = threading.Condition()
    left = [len(workflow.steps)]
    failures: list[str] = []

    def work() -> None:
        while True:
            with lock:
                while not ready and left[0] > 0 and not failures:
                    lock.wait()
                if left[0] == 0 or failures:
                    return
                step = ready.popleft()
            done = subprocess.run(["/bin/sh", "-c", step.command], cwd=shared, stdin=subprocess.DEVNULL,
                                  capture_output=True)
            with lock:
                if done.returncode != 0:
                    failures.append(f"{step.name} exited {done.returncode}: {done.stderr[-300:]!r}")
                left[0] -= 1
                gone = [n for n in step.inputs if n in readers_left and _last_reader(readers_left, n)]
                for c in reversed(consumers.get(step.name, ())):
                    waiting[c.name] -= 1
                    if waiting[c.name] == 0:
                        ready.appendleft(c)
                lock.notify_all()
            for n in gone:
                (shared / n).unlink(missing_ok=True)
            if progress is not None:
                progress(1)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    cpu = tree_cpu_seconds()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    makespan = time.perf_counter() - started
    cpu = tree_cpu_seconds() - cpu
    problems = failures or workflow.problems(shared)
    return make_row(name, makespan_s=makespan, cpu_s=cpu, tasks=len(workflow), correct=not problems, problems=problems[:3])


def _last_reader(readers_left: dict[str, int], name: str) -> bool:
    readers_left[name] -= 1
    return readers_left[name] == 0
