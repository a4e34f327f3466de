"""`tether bench replay FILE`: a real workflow trace (WfFormat JSON) replayed as shell steps.

Every file some task outputs becomes an intermediate, every file no task
outputs an input written on the submitting side, every file no task reads
a final output brought back. Each task reads all its inputs, sleeps for its
measured run time times `time_scale`, and writes each output at its traced
size times `size_scale`; the check is that every final output has its size.
"""
from __future__ import annotations

import shlex
from functools import partial
from pathlib import Path

from tether.traces import read_trace, topological

from . import targets as t
from .report import Report
from .runner import Options, RowPlan
from .systems import workflow_runners
from .workflow import Step, Workflow

ROWS = ["floor", "parsl-threads", "parsl-htex", "dask", "tether-parsl", "tether-native", "tether-native-nogroup",
        "tether-native-notemp"]
DEFAULT_ROWS = ["floor", "dask", "tether-native", "tether-native-nogroup"]


def workflow(path: Path, time_scale: float, size_scale: float) -> tuple[str, Workflow]:
    name, tasks, sizes = read_trace(path)
    made = {o for t in tasks for o in t["outputs"]}
    scaled = {f: int(s * size_scale) for f, s in sizes.items()}
    inputs = {f: b"\0" * scaled.get(f, 0) for t in tasks for f in t["inputs"] if f not in made}
    steps = []
    for task in topological(tasks):
        parts = []
        if task["inputs"]:
            parts.append("cat " + " ".join(shlex.quote(f) for f in task["inputs"]) + " > /dev/null")
        seconds = task["runtime"] * time_scale
        if seconds >= 0.001:
            parts.append(f"sleep {seconds:.3f}")
        parts += [f"head -c {scaled.get(o, 0)} /dev/zero > {shlex.quote(o)}" for o in task["outputs"]]
        steps.append(Step(task["id"], " && ".join(parts) or "true", tuple(task["inputs"]), tuple(task["outputs"])))
    wf = Workflow(steps, inputs=inputs, sizes={f: scaled.get(f, 0) for f in made})
    wf.check = partial(check, sizes={f: wf.sizes[f] for f in wf.finals})
    return name, wf


def check(directory: Path, sizes: dict[str, int]) -> list[str]:
    return [f"{f}: {(directory / f).stat().st_size} bytes, expected {n}" for f, n in sorted(sizes.items())
            if (directory / f).stat().st_size != n]


def plans(options: Options, path: Path, time_scale: float = 0.01, size_scale: float = 0.001
          ) -> tuple[dict, list[RowPlan]]:
    if options.quick:  # a hundredth of the time, a tenth of the size, for a smoke test
        time_scale, size_scale = time_scale / 100, size_scale / 10
    name, wf = workflow(path, time_scale, size_scale)
    w = options.workers
    runners = workflow_runners(wf, w, options)
    names = options.wanted(ROWS, DEFAULT_ROWS)
    parameters = {"trace": path.name, "workflow": name, "tasks": len(wf), "inputs": len(wf.inputs),
                  "temps": len(wf.temps), "finals": len(wf.finals), "time_scale": time_scale,
                  "size_scale": size_scale, "quick": options.quick, "input_bytes": sum(len(b) for b in wf.inputs.values()),
                  "temp_bytes": sum(wf.sizes[f] for f in wf.temps),
                  "final_bytes": sum(wf.sizes[f] for f in wf.finals), "workers": w, "cores_per_worker": 1,
                  "parsl_logging": options.parsl_logging}
    return parameters, [RowPlan(n, len(wf), runners[n]) for n in names]


def check_targets(report: Report) -> list[dict]:
    return [t.cache_to_live_temps(report, "tether-native"), *t.parsl_floor(report)]
