"""The seed's workflow shape, shared by the demo, the tests and the benchmarks.

Chains of shell tasks: the first task of a chain writes a file, every next
task reads its predecessor's file and writes a new one, and the last file
comes home. Every file in between is a temp.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .manager.manager import Manager, TaskFuture
from .task import Task


def first_command(chain: int, size: int | None) -> str:
    if size:
        return f"head -c {size} /dev/zero > out && echo 'chain {chain} step 0' >> out"
    return f"echo 'chain {chain} step 0' > out"


def step_command(step: int, size: int | None) -> str:
    if size:  # read the predecessor's file whole and write a new one of the same size
        return f"cat in > out && echo 'step {step}' >> out"
    return f"cat in > out && echo 'step {step}' >> out"


def expected_tail(chain: int, length: int) -> bytes:
    lines = [f"chain {chain} step 0"] + [f"step {s}" for s in range(1, length)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class ChainRun:
    futures: list[TaskFuture]
    results: list[Path]


def submit_chains(m: Manager, chains: int, length: int, out_dir: Path, size: int | None = None,
                  temp_outputs: bool = True) -> ChainRun:
    """Submit `chains` chains of `length` tasks; returns every Future and the result paths.

    temp_outputs=False makes every intermediate a local file brought home and
    sent out again, as without temp files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    futures, results = [], []
    for c in range(chains):
        prev = None
        for step in range(length):
            last = step == length - 1
            if last:
                result = out_dir / f"chain-{c}.txt"
                made = m.declare_file(result)
                results.append(result)
            elif temp_outputs:
                made = m.declare_temp()
            else:
                made = m.declare_file(out_dir / f"chain-{c}-step-{step}.txt")
            command = first_command(c, size) if step == 0 else step_command(step, size)
            inputs = {"in": prev} if prev is not None else {}
            futures.append(m.submit(Task(command, inputs=inputs, outputs={"out": made})))
            prev = made
    return ChainRun(futures, results)
