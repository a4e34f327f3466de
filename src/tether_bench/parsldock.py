"""`tether bench parsldock`: batches of 5-task sequences with several intermediate dependencies each.

The shape of the seed's ParslDock slide (docking ligands against a
receptor). Each batch shares one receptor file from the submitting side;
each sequence in it handles one ligand in five steps, where later steps
read several files made by earlier ones:

    1 prepare  receptor          -> a
    2 ligand   a                 -> b
    3 box      a, b              -> c
    4 dock     b, c              -> d
    5 score    a, c, d           -> e   (final, brought back)

Each step hashes its inputs (and its step's tag) and pads the result to
`size` bytes, so every output can be checked.
"""
from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

from . import targets as t
from .report import Report
from .runner import Options, RowPlan
from .systems import workflow_runners
from .workflow import Step, Workflow

ROWS = ["floor", "parsl-threads", "parsl-htex", "dask", "tether-parsl", "tether-native", "tether-native-nogroup",
        "tether-native-notemp"]
OPT_IN_ROWS = ["tether-parsl-slurm"]   # with --rows only: workers in jobs of the stand-in Slurm
# step -> (tag, letters of the earlier steps' outputs it reads; "" for the receptor)
STEPS = [("prepare", ""), ("ligand", "a"), ("box", "ab"), ("dock", "bc"), ("score", "acd")]
LETTERS = "abcde"


def receptor_name(batch: int) -> str:
    return f"receptor{batch}.pdb"


def receptor_bytes(batch: int, size: int) -> bytes:
    line = f"ATOM receptor {batch}\n".encode()
    return line * max(1, size // len(line))


def out_name(batch: int, seq: int, letter: str) -> str:
    return f"b{batch}-l{seq}-{letter}"


def step_output(inputs: list[bytes], tag: str, size: int) -> bytes:
    """What a step writes: the hash of its inputs and tag, as sha256sum prints it, then zero padding."""
    digest = hashlib.sha256(b"".join(inputs) + tag.encode() + b"\n").hexdigest()
    return f"{digest}  -\n".encode() + b"\0" * size


def workflow(batches: int, sequences: int, size: int, receptor_size: int) -> Workflow:
    steps, inputs = [], {}
    for b in range(batches):
        inputs[receptor_name(b)] = receptor_bytes(b, receptor_size)
        for s in range(sequences):
            for (tag, reads), letter in zip(STEPS, LETTERS):
                ins = tuple(out_name(b, s, x) for x in reads) or (receptor_name(b),)
                out = out_name(b, s, letter)
                label = f"{tag} {b}-{s}"
                pad = f"; head -c {size} /dev/zero" if size else ""
                cmd = f"{{ {{ cat {' '.join(ins)}; echo '{label}'; }} | sha256sum{pad}; }} > {out}"
                steps.append(Step(out, cmd, ins, (out,)))
    sizes = {s.outputs[0]: 67 + size for s in steps}
    return Workflow(steps, inputs=inputs, sizes=sizes,
                    check=partial(check, inputs=inputs, batches=batches, sequences=sequences, size=size))


def check(directory: Path, inputs: dict, batches: int, sequences: int, size: int) -> list[str]:
    problems = []
    for b in range(batches):
        for s in range(sequences):
            made: dict[str, bytes] = {}
            for (tag, reads), letter in zip(STEPS, LETTERS):
                ins = [made[x] for x in reads] or [inputs[receptor_name(b)]]
                made[letter] = step_output(ins, f"{tag} {b}-{s}", size)
            path = directory / out_name(b, s, "e")
            if path.read_bytes() != made["e"]:
                problems.append(f"{path.name}: wrong content")
    return problems


def plans(options: Options, batches: int = 4, sequences: int = 10, size: int = 0,
          receptor_size: int = 1_000_000) -> tuple[dict, list[RowPlan]]:
    if options.quick:
        batches, sequences = min(batches, 2), min(sequences, 2)
    wf = workflow(batches, sequences, size, receptor_size)
    w = options.workers
    runners = workflow_runners(wf, w, options)
    names = options.wanted(ROWS + OPT_IN_ROWS, ROWS)
    parameters = {"batches": batches, "sequences_per_batch": sequences, "tasks_per_sequence": 5,
                  "size_bytes": size, "receptor_bytes": receptor_size, "workers": w, "cores_per_worker": 1,
                  "quick": options.quick, "parsl_logging": options.parsl_logging}
    return parameters, [RowPlan(n, len(wf), runners[n]) for n in names]


def check_targets(report: Report) -> list[dict]:
    return [t.ratio_at_most(report, "tether-native", "floor", 1.15),
            t.ratio_at_most(report, "tether-parsl", "floor", 1.3),
            t.figure_at_most(report, "tether-native", "hop_latency_median_s", 1e-3, "{:.2e} s"),
            t.cache_to_live_temps(report, "tether-native"),
            *t.parsl_floor(report)]
