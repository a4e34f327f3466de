"""`tether bench chains`: the seed's benchmark, independent chains of tasks passing one file each.

Each chain's first task writes a file; every next task reads its
predecessor's file whole and writes a new one (the same bytes plus a line).
Every system runs the same shell commands with the same number of one-core
workers; every row checks each chain's last file.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from . import targets as t
from .report import Report
from .runner import Options, RowPlan
from .systems import workflow_runners
from .workflow import Step, Workflow

ROWS = ["floor", "parsl-threads", "parsl-htex", "dask", "tether-parsl", "tether-native", "tether-native-nogroup",
        "tether-native-notemp"]
# with --rows only: workers in jobs of the stand-in Slurm; the workflow run twice with memoization (two rows,
# tether-native-memo-first and -second)
OPT_IN_ROWS = ["tether-parsl-slurm", "tether-native-memo"]
EMULATED_ROWS = ["floor", "tether-native", "tether-native-nogroup", "tether-native-notemp"]


def file_name(chain: int, step: int) -> str:
    return f"chain{chain}-step{step}"


def expected_lines(chain: int, length: int) -> bytes:
    lines = [f"chain {chain} step 0"] + [f"step {s}" for s in range(1, length)]
    return ("\n".join(lines) + "\n").encode()


def workflow(chains: int, length: int, size: int = 0) -> Workflow:
    steps = []
    for c in range(chains):
        for s in range(length):
            out = file_name(c, s)
            if s == 0:
                pad = f"head -c {size} /dev/zero > {out} && " if size else ""
                cmd = f"{pad}echo 'chain {c} step 0' >> {out}" if size else f"echo 'chain {c} step 0' > {out}"
                steps.append(Step(out, cmd, (), (out,)))
            else:
                prev = file_name(c, s - 1)
                steps.append(Step(out, f"cat {prev} > {out} && echo 'step {s}' >> {out}", (prev,), (out,)))
    sizes = {}
    for c in range(chains):
        lines = expected_lines(c, length).splitlines(keepends=True)
        for s in range(length):
            sizes[file_name(c, s)] = size + sum(len(x) for x in lines[:s + 1])
    return Workflow(steps, check=partial(check, chains=chains, length=length, size=size), sizes=sizes)


def check(directory: Path, chains: int, length: int, size: int) -> list[str]:
    problems = []
    for c in range(chains):
        path = directory / file_name(c, length - 1)
        tail = expected_lines(c, length)
        if path.stat().st_size != size + len(tail):
            problems.append(f"{path.name}: {path.stat().st_size} bytes, expected {size + len(tail)}")
            continue
        with open(path, "rb") as f:
            f.seek(size)
            if f.read() != tail:
                problems.append(f"{path.name}: wrong content")
    return problems


def plans(options: Options, chains: int = 20, length: int = 30, size: int = 0) -> tuple[dict, list[RowPlan]]:
    if options.quick:
        chains, length = min(chains, 4), min(length, 5)
    wf = workflow(chains, length, size)
    w = options.workers
    runners = workflow_runners(wf, w, options)
    names = options.wanted(ROWS + OPT_IN_ROWS, EMULATED_ROWS if options.manager is not None else ROWS)
    parameters = {"chains": chains, "length": length, "size_bytes": size, "workers": w,
                  "cores_per_worker": 1, "quick": options.quick, "emulated_cluster": options.manager is not None,
                  "parsl_logging": options.parsl_logging}
    return parameters, [RowPlan(n, len(wf) * (2 if n == "tether-native-memo" else 1), runners[n]) for n in names]


def check_targets(report: Report) -> list[dict]:
    size = report.parameters.get("size_bytes", 0)
    out = []
    if not size:
        out += [t.ratio_at_most(report, "tether-parsl", "floor", 1.3),
                t.ratio_at_most(report, "tether-native", "floor", 1.15),
                t.ratio_at_least(report, "parsl-htex", "tether-parsl", 2.0),
                t.figure_at_most(report, "tether-native", "hop_latency_median_s", 1e-3, "{:.2e} s"),
                *t.parsl_floor(report)]
    else:
        out += [t.ratio_at_least(report, "tether-native-notemp", "tether-native", 5.0),
                t.figure_at_most(report, "tether-native", "bytes_worker_to_worker", 0, "{:.0f} B")]
    out.append(t.cache_to_live_temps(report, "tether-native"))
    if report.row("tether-native-memo-second") is not None:
        out.append(t.ratio_at_most(report, "tether-native-memo-second", "tether-native-memo-first", 0.1))
    return out
