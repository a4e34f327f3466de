"""Workflow traces: real ones read from WfFormat JSON, or generated from a WfCommons recipe.

A trace is what a run of a workflow looked like: each task's input and
output files and measured run time, and each file's size. The replay
benchmark runs one for real and `tether simulate` runs one on simulated
workers; both read it here, so that a file means the same to both.

Generation needs the `wfcommons` package (the `simulate` extra). It costs
about as much per task as simulating the task, so larger workflows are made
as independent copies of one instance (see tether.simrun).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

# recipe names as WfCommons' wfchef calls them (and the names its instances go by)
RECIPES = {"blast": "BlastRecipe", "bwa": "BwaRecipe", "cycles": "CyclesRecipe", "epigenomics": "EpigenomicsRecipe",
           "1000genome": "GenomeRecipe", "genome": "GenomeRecipe", "montage": "MontageRecipe",
           "rnaseq": "RnaseqRecipe", "seismology": "SeismologyRecipe", "soykb": "SoykbRecipe",
           "srasearch": "SrasearchRecipe"}


class TraceError(ValueError):
    """A file that is not a WfFormat workflow, a recipe that does not exist, or a trace that cannot run."""


@dataclass(frozen=True, slots=True)
class TraceTask:
    id: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    runtime: float   # seconds, as measured


@dataclass(slots=True)
class Trace:
    name: str
    tasks: list[TraceTask]       # producers before their readers (see `ordered`)
    sizes: dict[str, int]        # file -> bytes

    def made(self) -> set[str]:
        return {o for t in self.tasks for o in t.outputs}

    def read(self) -> set[str]:
        return {i for t in self.tasks for i in t.inputs}


def read_trace(path: Path) -> tuple[str, list[dict], dict[str, int]]:
    """(name, tasks with id/inputs/outputs/runtime, file sizes) from WfFormat 1.5, or the older 1.4 layout."""
    try:
        doc = json.loads(Path(path).read_text())
        wf = doc["workflow"]
        name = doc.get("name", Path(path).stem)
        if "specification" in wf:
            runtimes = {x["id"]: float(x.get("runtimeInSeconds", 0.0)) for x in wf["execution"]["tasks"]}
            sizes = {x["id"]: int(x.get("sizeInBytes", 0)) for x in wf["specification"]["files"]}
            tasks = [{"id": x["id"], "inputs": list(x.get("inputFiles", ())),
                      "outputs": list(x.get("outputFiles", ())), "runtime": runtimes.get(x["id"], 0.0)}
                     for x in wf["specification"]["tasks"]]
        else:
            tasks, sizes = [], {}
            for x in wf["tasks"]:
                files = x.get("files", ())
                for f in files:
                    sizes[f["name"]] = int(f.get("size", f.get("sizeInBytes", 0)))
                tasks.append({"id": x.get("id", x["name"]),
                              "inputs": [f["name"] for f in files if f["link"] == "input"],
                              "outputs": [f["name"] for f in files if f["link"] == "output"],
                              "runtime": float(x.get("runtimeInSeconds", x.get("runtime", 0.0)))})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TraceError(f"{path}: not a WfFormat workflow I can read ({type(e).__name__}: {e})") from None
    return name, tasks, sizes


def topological(tasks: list[dict]) -> list[dict]:
    """Tasks ordered so that each file's producer comes before its readers (Kahn's order, stable)."""
    producer: dict[str, str] = {}
    for t in tasks:
        for o in t["outputs"]:
            if producer.setdefault(o, t["id"]) != t["id"]:
                raise TraceError(f"file {o} is made by two tasks, {producer[o]} and {t['id']}")
    by_id = {t["id"]: t for t in tasks}
    if len(by_id) != len(tasks):
        raise TraceError("two tasks of the trace have the same id")
    needs = {t["id"]: {producer[i] for i in t["inputs"] if i in producer} - {t["id"]} for t in tasks}
    readers: dict[str, list[str]] = {}
    for tid, ps in needs.items():
        for p in ps:
            readers.setdefault(p, []).append(tid)
    left = {tid: len(ps) for tid, ps in needs.items()}
    order = [t for t in tasks if not left[t["id"]]]
    for t in order:   # grows as it goes
        for r in readers.get(t["id"], ()):
            left[r] -= 1
            if not left[r]:
                order.append(by_id[r])
    if len(order) < len(tasks):
        stuck = next(tid for tid, n in left.items() if n)
        raise TraceError(f"the trace has a cycle among {len(tasks) - len(order)} tasks, e.g. {stuck}")
    return order


def load(path: Path) -> Trace:
    """A WfFormat file as a Trace, producers first."""
    name, tasks, sizes = read_trace(path)
    return _trace(name, tasks, sizes)


def _trace(name: str, tasks: list[dict], sizes: dict[str, int]) -> Trace:
    if not tasks:
        raise TraceError(f"workflow {name} has no tasks")
    for t in tasks:
        if t["runtime"] < 0:
            raise TraceError(f"task {t['id']} has a negative run time ({t['runtime']})")
    return Trace(name, [TraceTask(t["id"], tuple(dict.fromkeys(t["inputs"])), tuple(dict.fromkeys(t["outputs"])),
                                  t["runtime"]) for t in topological(tasks)], sizes)


def generate(recipe: str, tasks: int, seed: int = 1) -> Trace:
    """An instance of a WfCommons recipe with about `tasks` tasks (the recipe decides the exact count)."""
    cls_name = RECIPES.get(recipe.lower())
    if cls_name is None:
        raise TraceError(f"no WfCommons recipe named {recipe!r}; known: {', '.join(sorted(RECIPES))}")
    try:
        import numpy
        import wfcommons.wfchef.recipes as recipes
        from wfcommons import WorkflowGenerator
    except ImportError as e:
        raise TraceError(f"generating a {recipe} workflow needs the wfcommons package "
                         f"(pip install 'tether[simulate]'): {e}") from None
    random.seed(seed)          # the recipes draw from both generators: the same seed, the same workflow
    numpy.random.seed(seed)
    try:
        wf = WorkflowGenerator(getattr(recipes, cls_name).from_num_tasks(tasks)).build_workflow()
    except ValueError as e:   # below the recipe's smallest instance
        raise TraceError(f"recipe {recipe} cannot make {tasks} tasks: {e}") from None
    sizes: dict[str, int] = {}
    names: dict[str, str] = {}   # the recipes name files by random UUIDs: renamed in order, for the same seed
    listed = []
    for t in wf.tasks.values():
        for f in (*t.input_files, *t.output_files):
            name = names.setdefault(f.file_id, f"f{len(names)}")
            sizes[name] = int(f.size or 0)
        listed.append({"id": t.task_id, "inputs": [names[f.file_id] for f in t.input_files],
                       "outputs": [names[f.file_id] for f in t.output_files], "runtime": float(t.runtime or 0.0)})
    return _trace(f"{recipe}-{len(listed)}", listed, sizes)
