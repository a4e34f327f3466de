"""Workflows the fault tests run: the seed's chains, and a fan-in, in shell or Python tasks.

Every task appends a line to a file of its own outside the sandbox (its
side effect), so a test can count how often each task really ran and set
that against how often the manager sent it out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tether import Manager, PythonTask, Task


@dataclass
class Run:
    futures: list = field(default_factory=list)
    marks: dict[int, Path] = field(default_factory=dict)    # task id -> its side-effect file
    check: Callable[[], None] = lambda: None                 # raises if an output is wrong
    files: list = field(default_factory=list)   # the handles, held so that the tasks' records stay to be checked


def _step(mark: str, previous: str | None, line: str) -> None:
    """A Python chain step: note the run, copy what came before, add a line."""
    import time
    with open(mark, "a") as f:
        f.write("ran\n")
    time.sleep(0.05)
    text = open("in").read() if previous else ""
    with open("out", "w") as f:
        f.write(text + line + "\n")


def chains(m: Manager, marks: Path, *, count: int = 4, length: int = 8, python: bool = False) -> Run:
    """`count` chains of `length` tasks, each reading the temp its predecessor made."""
    run = Run()
    last = []
    for c in range(count):
        previous = None
        for i in range(length):
            out = m.declare_temp()
            inputs = {"in": previous} if previous is not None else {}
            mark = marks / f"c{c}-{i}"
            if python:
                task = PythonTask(_step, args=(str(mark), "in" if previous else None, f"{c}-{i}"),
                                  inputs=inputs, outputs={"out": out})
            else:
                copy = "cat in > out; " if previous is not None else ""
                task = Task(f"echo ran >> {mark}; sleep 0.05; {copy}echo {c}-{i} >> out",
                            inputs=inputs, outputs={"out": out})
            run.futures.append(m.submit(task))
            run.marks[task.id] = mark
            previous = out
        last.append(previous)

    def check() -> None:
        for c, temp in enumerate(last):
            assert m.fetch(temp, timeout=60).decode().split() == [f"{c}-{i}" for i in range(length)]

    run.check = check
    return run


def _part(mark: str, n: int) -> None:
    with open(mark, "a") as f:
        f.write("ran\n")
    with open("part", "w") as f:
        f.write(f"{n * n}\n")


def _gather(mark: str, count: int) -> None:
    with open(mark, "a") as f:
        f.write("ran\n")
    total = sum(int(open(f"p{i}").read()) for i in range(count))
    with open("sum", "w") as f:
        f.write(f"{total}\n")


def fan_in(m: Manager, marks: Path, home: Path, *, width: int = 24, python: bool = False) -> Run:
    """`width` tasks each making a temp, and one task reading them all and writing a file home."""
    run = Run()
    parts = []
    for n in range(width):
        out = m.declare_temp()
        mark = marks / f"p{n}"
        if python:
            task = PythonTask(_part, args=(str(mark), n), outputs={"part": out})
        else:
            task = Task(f"echo ran >> {mark}; sleep 0.1; echo {n * n} > part", outputs={"part": out})
        run.futures.append(m.submit(task))
        run.marks[task.id] = mark
        parts.append(out)
    result = m.declare_file(home)
    run.files = [*parts, result]
    inputs = {f"p{i}": p for i, p in enumerate(parts)}
    mark = marks / "gather"
    if python:
        task = PythonTask(_gather, args=(str(mark), width), inputs=inputs, outputs={"sum": result})
    else:
        task = Task(f"echo ran >> {mark}; cat p* | awk '{{s+=$1}} END {{print s}}' > sum", inputs=inputs,
                    outputs={"sum": result})
    run.futures.append(m.submit(task))
    run.marks[task.id] = mark

    def check() -> None:
        assert int(home.read_text()) == sum(n * n for n in range(width))

    run.check = check
    return run


def side_effects_within_attempts(m: Manager, run: Run) -> None:
    """No task ran more often than the manager sent it out (1 + retries + recoveries)."""
    for tid, mark in run.marks.items():
        ran = mark.read_text().count("ran") if mark.exists() else 0
        attempts = m.core.tasks[tid].attempts
        assert 1 <= ran <= attempts, f"task {tid} ran {ran} times, sent out {attempts} times"
