"""`tether bench shapes`: real workflow shapes (fan-out, fan-in, pairwise) on an emulated cluster.

Montage, Epigenomics, 1000Genome and Blast (see shape_traces.py), each with
its files scaled to `shape_bytes` in all, run by every row on one worker
of one core in each of `workers` network namespaces behind shaped links
(cluster.py). The tether rows differ only in the Manager's placement
options; the Dask row passes files as Dask results, so that Dask's own
locality and work stealing decide what moves; the HTEX row reads and writes
a shared directory on this machine (its bytes do not cross the links, so
its makespan is what a free shared file system would give). A row needing
a Manager option this version lacks is skipped, saying so; without root
every row on the cluster is skipped, saying why.
"""
from __future__ import annotations

import contextlib
import inspect
from functools import partial
from pathlib import Path

from . import targets as t
from .report import Report
from .runner import Options, RowPlan
from .shape_traces import SHAPES, ShapeUnavailable, describe, load, workflow
from .systems import Unavailable

# Manager keyword arguments of each tether row; the older spelling where the row has one
TETHER_ROWS = {
    "tether-graph": {"placement": "graph"},
    "tether-groups": {"placement": "groups"},
    "tether-nogroup": {"placement": "none"},
    "tether-graph-depth-pruned": {"placement": "graph", "order": "depth", "prune": 0},
    "tether-graph-unpruned": {"placement": "graph", "order": "breadth", "prune": None},
}
OLDER = {"tether-groups": {"group_tasks": True}, "tether-nogroup": {"group_tasks": False}}
ROWS = [*TETHER_ROWS, "dask", "parsl-htex"]
COLUMNS = ("makespan_s", "bytes_manager_to_worker", "bytes_worker_to_manager", "bytes_worker_to_worker",
           "bytes_shared_directory", "peak_disk_bytes", "peak_made_bytes")
PLOT_FIGURES = ("makespan_s", "bytes_worker_to_worker", "peak_disk_bytes")


def manager_options(row: str, manager_class=None) -> dict:
    """The Manager keyword arguments for a tether row, in the spelling this version of Manager takes;
    Unavailable when it has neither."""
    if manager_class is None:
        from tether.manager.manager import Manager as manager_class
    accepted = inspect.signature(manager_class).parameters
    wanted = TETHER_ROWS[row]
    if all(k in accepted for k in wanted):
        return dict(wanted)
    if row in OLDER:
        return dict(OLDER[row])
    missing = ", ".join(k for k in wanted if k not in accepted)
    raise Unavailable(f"not available in this version: Manager takes no {missing}")


@contextlib.contextmanager
def _cluster_manager(cluster, options: dict, group_tasks: bool, run_dir: Path):
    """A Manager in the root namespace with one worker of one core in each namespace (group_tasks:
    tether_native's own switch, overridden by `options`)."""
    from tether.manager.manager import Manager

    with Manager(workers=0, host=cluster.manager_host, run_dir=run_dir, **options) as m, \
            cluster.workers_for(m, cores=1):
        yield m


def run_tether(wf, workers: int, work_dir: Path, progress=None, *, name: str, row: str, cluster) -> dict:
    from .systems import tether_native

    options = manager_options(row)
    out = tether_native.run(wf, workers, work_dir, progress, name=name,
                            manager=partial(_cluster_manager, cluster, options))
    out["manager_options"] = dict(options)
    peaks, source = out.get("peak_bytes_per_worker"), "Manager.stats()['peak_bytes_per_worker']"
    if not peaks:
        peaks, source = out.get("peak_live_bytes_per_worker"), "live bytes from task times (no peak_bytes_per_worker)"
    out["peak_disk_bytes_per_worker"] = peaks or {}
    out["peak_disk_bytes"] = max(peaks.values()) if peaks else None
    out["peak_disk_source"] = source
    made = out.get("peak_made_bytes_per_worker")   # temps and outputs not yet home: what pruning governs
    out["peak_made_bytes"] = max(made.values()) if made else None
    return out


def _unavailable(reason: str, *args, **kwargs) -> dict:
    raise Unavailable(reason)


def plans(options: Options, shape_names: list[str], time_scale: float = 0.002, shape_bytes: int = 250_000_000,
          traces_dir: Path | None = None, cluster=None, cluster_reason: str | None = None
          ) -> tuple[dict, list[RowPlan]]:
    from .shape_traces import default_traces_dir
    from .systems import dask_results, htex_shared

    unknown = [s for s in shape_names if s not in SHAPES]
    if unknown or not shape_names:
        raise ValueError(f"unknown shape(s) {', '.join(unknown) or '(none given)'}; there are {', '.join(SHAPES)}")
    if options.quick:   # seconds for CI: no sleeping, a few MB
        time_scale, shape_bytes = 0.0, min(shape_bytes, 2_000_000)
    traces_dir = traces_dir or default_traces_dir()
    w = options.workers
    names = options.wanted(ROWS)
    parameters: dict = {"workers": w, "cores_per_worker": 1, "emulated_cluster": cluster is not None,
                        "rate": getattr(cluster, "rate", None), "time_scale": time_scale,
                        "bytes_per_shape": shape_bytes, "quick": options.quick,
                        "parsl_logging": options.parsl_logging}
    plans_: list[RowPlan] = []
    for shape_name in shape_names:
        try:
            _, tasks, sizes, source = load(SHAPES[shape_name], traces_dir)
        except ShapeUnavailable as e:
            parameters[shape_name] = f"not run: {e}"
            plans_ += [RowPlan(f"{shape_name}/{n}", None, partial(_unavailable, str(e))) for n in names]
            continue
        traced = sum(sizes.get(f, 0) for f in {f for x in tasks for f in (*x["inputs"], *x["outputs"])})
        scale = shape_bytes / traced if traced else 1.0
        wf = workflow(tasks, sizes, time_scale, scale)
        d = describe(tasks, wf)
        parameters[shape_name] = (f"{source}; {d['tasks']} tasks, sizes x {scale:.3g}: inputs {d['input_bytes']:,} B, "
                                  f"temps {d['temp_bytes']:,} B, finals {d['final_bytes']:,} B")
        for n in names:
            label = f"{shape_name}/{n}"
            if n == "parsl-htex":
                run = partial(htex_shared.run, wf, w, name=label, parsl_logging=options.parsl_logging)
            elif cluster is None:
                run = partial(_unavailable, f"runs on the emulated cluster, which is not here: {cluster_reason}")
            elif n == "dask":
                run = partial(dask_results.run, wf, w, name=label, cluster=cluster)
            else:
                run = partial(run_tether, wf, w, name=label, row=n, cluster=cluster)
            plans_.append(RowPlan(label, len(wf), run))
    return parameters, plans_


def bytes_at_most(report: Report, a: str, b: str, limit: float, figure: str) -> dict:
    """a's figure <= limit x b's; both zero meets it (ratio() cannot divide by zero)."""
    target = f"{a} {figure} <= {limit}x {b}'s"
    va, vb = ((report.row(n) or {}).get(figure) for n in (a, b))
    if va is None or vb is None:
        return {"target": target, "value": "not measured", "met": None}
    met = va <= limit * vb
    value = f"{va / vb:.2f}x" if vb else f"{va:,} B against 0 B"
    return {"target": target, "value": value, "met": met, "measured": va, "limit": limit * vb}


def check_targets(report: Report) -> list[dict]:
    shapes = sorted({r["name"].split("/", 1)[0] for r in report.rows}, key=list(SHAPES).index)
    out = []
    for s in shapes:
        g = f"{s}/tether-graph"
        out += [bytes_at_most(report, g, f"{s}/tether-nogroup", 0.7, "bytes_worker_to_worker"),
                bytes_at_most(report, g, f"{s}/dask", 1.0, "bytes_worker_to_worker"),
                t.ratio_at_most(report, g, f"{s}/tether-nogroup", 1.0),
                t.ratio_at_most(report, g, f"{s}/dask", 1.0),
                bytes_at_most(report, f"{s}/tether-graph-depth-pruned", f"{s}/tether-graph-unpruned", 0.5,
                              "peak_disk_bytes"),
                # the part of the peak that pruning governs: files tasks made (inputs stay cached)
                bytes_at_most(report, f"{s}/tether-graph-depth-pruned", f"{s}/tether-graph-unpruned", 0.5,
                              "peak_made_bytes")]
    return out
