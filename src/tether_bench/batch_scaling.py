"""Workers over time while Parsl's strategy scales TetherExecutor's blocks on a stand-in batch system.

    python -m tether_bench.batch_scaling [--system slurm] [--max-blocks 3] [--burst 9] [--waves 2] ...

Each wave submits a burst of sleeping tasks and waits for them; between
waves the executor is idle until the strategy has cancelled every block.
A sampler records, every --interval seconds, the workers connected to the
manager, the tasks outstanding, and the jobs the batch system holds (submitted,
pending, running, cancelled). Printed: the samples where something changed
and a summary per wave; --json writes every sample, for BENCHMARKS.md figures.
Jobs run in network namespaces as root (see tether_bench.batch.cluster).

With --temps, each task makes a temp file and each task of the next wave
reads one made by the wave before; --min-blocks (1 by default then) blocks
stay, so between waves the strategy scales in to them and every worker it
lets go of must first hand its temps to those that stay. Reported per
wave: temps copied at scale-in, temps lost, producers run again (none
expected).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import parsl
from parsl import python_app
from parsl.config import Config
from parsl.launchers import SimpleLauncher, SingleNodeLauncher, SrunLauncher
from parsl.providers import CondorProvider, PBSProProvider, SlurmProvider

from tether.parsl import TetherExecutor

from .batch.cluster import BatchCluster
from .batch.spool import TERMINAL


@python_app
def _nap(seconds: float):
    import time
    time.sleep(seconds)


@python_app
def _step(seconds: float, text: str, inputs=(), outputs=()):
    """Sleep, check the temp read (if any) says what its maker wrote, and write the next one."""
    import time
    time.sleep(seconds)
    if inputs:
        with open(inputs[0]) as f:
            got = f.read()
        if not got.startswith("made by "):
            raise ValueError(f"read {got!r}")
    with open(outputs[0], "w") as f:
        f.write(f"made by {text}")


def _provider(system: str, max_blocks: int, min_blocks: int = 0):
    limits = {"init_blocks": 0, "min_blocks": min_blocks, "max_blocks": max_blocks}
    if system == "slurm":
        return SlurmProvider(launcher=SrunLauncher(), **limits)
    if system == "pbs":
        return PBSProProvider(launcher=SimpleLauncher(), scheduler_options="#PBS -V", **limits)
    if system == "condor":
        return CondorProvider(launcher=SingleNodeLauncher(), scheduler_options="getenv = true", **limits)
    raise ValueError(f"unknown system {system!r}: slurm, pbs or condor")


def trace(system: str = "slurm", max_blocks: int = 3, burst: int = 9, task_seconds: float = 1.0,
          waves: int = 2, max_idletime: float = 2.0, strategy_period: float = 0.25, interval: float = 0.25,
          work_dir: str | Path | None = None, temps: bool = False, min_blocks: int = 0) -> dict[str, Any]:
    """Run the waves; returns the parameters, the samples and a summary of each wave."""
    params = {k: v for k, v in locals().items() if k != "work_dir"}
    with tempfile.TemporaryDirectory(prefix="tether-batch-scaling-", dir=work_dir) as tmp, \
            BatchCluster(Path(tmp) / "batch", nodes=max_blocks) as batch:
        ex = TetherExecutor(label="scaling", provider=_provider(system, max_blocks, min_blocks),
                            address=batch.address, cores_per_worker=1)
        dfk = parsl.load(Config(executors=[ex], run_dir=str(Path(tmp) / "runinfo"), strategy="simple",
                                strategy_period=strategy_period, max_idletime=max_idletime))
        samples: list[dict[str, Any]] = []
        start = time.monotonic()
        stop = threading.Event()

        def sample() -> dict[str, Any]:
            jobs = batch.jobs(system)
            states = [j["state"] for j in jobs]
            return {"t": round(time.monotonic() - start, 3), "workers": ex.connected_workers(),
                    "outstanding": ex.outstanding(), "submitted": len(jobs),
                    "pending": states.count("PENDING"), "running": states.count("RUNNING"),
                    "cancelled": states.count("CANCELLED"), "ended": sum(s in TERMINAL for s in states)}

        def sampler() -> None:
            while not stop.is_set():
                samples.append(sample())
                stop.wait(interval)

        thread = threading.Thread(target=sampler, name="batch-scaling-sampler", daemon=True)
        thread.start()
        summary = []
        try:
            for wave in range(waves):
                began = time.monotonic() - start
                before = ex.manager.stats()
                if temps:
                    from parsl.data_provider.files import File
                    tasks = [_step(task_seconds, f"{wave}-{i}",
                                   inputs=[File(f"temp://w{wave - 1}-{i}")] if wave else [],
                                   outputs=[File(f"temp://w{wave}-{i}")]) for i in range(burst)]
                else:
                    tasks = [_nap(task_seconds) for _ in range(burst)]
                for f in tasks:
                    f.result(timeout=600)
                done = time.monotonic() - start
                _wait(lambda: sum(j["state"] not in TERMINAL for j in batch.jobs(system)) <= min_blocks
                      and ex.connected_workers() <= min_blocks and ex.outstanding() == 0)
                idle_end = time.monotonic() - start
                after = ex.manager.stats()
                in_wave = [s for s in samples if began <= s["t"] <= idle_end]
                first_worker = next((s["t"] for s in in_wave if s["workers"] > 0), None)
                summary.append({"wave": wave + 1, "tasks": burst, "began_s": round(began, 2),
                                "first_worker_after_s": round(first_worker - began, 2) if first_worker else None,
                                "peak_workers": max((s["workers"] for s in in_wave), default=0),
                                "blocks_submitted": len(batch.jobs(system)),
                                "tasks_done_after_s": round(done - began, 2),
                                "scaled_in_after_idle_s": round(idle_end - done, 2),
                                **{k: after[k] - before[k] for k in ("workers_retired", "retired_temps_copied",
                                                                     "retired_temps_kept_here", "retired_temps_lost",
                                                                     "retired_forced", "reruns",
                                                                     "bytes_worker_to_worker")}})
        finally:
            stop.set()
            thread.join()
            samples.append(sample())
            dfk.cleanup()
        jobs = batch.jobs(system)
    return {"parameters": params, "namespaces": batch.namespaced, "samples": samples, "waves": summary,
            "jobs": [{"number": j["number"], "state": j["state"], "ran_s": round(j["ended"] - j["started"], 2)
                      if j["started"] and j["ended"] else None} for j in jobs]}


def _wait(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the blocks were not scaled in")
        time.sleep(0.05)


def changes(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples where anything but the time changed (the first and last always)."""
    out = []
    for s in samples:
        if not out or {k: v for k, v in s.items() if k != "t"} != {k: v for k, v in out[-1].items() if k != "t"}:
            out.append(s)
    if samples and out[-1] is not samples[-1]:
        out.append(samples[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tether_bench.batch_scaling", description=__doc__.split("\n")[0])
    p.add_argument("--system", default="slurm", choices=["slurm", "pbs", "condor"])
    p.add_argument("--max-blocks", type=int, default=3)
    p.add_argument("--burst", type=int, default=9, help="tasks in each wave")
    p.add_argument("--task-seconds", type=float, default=1.0)
    p.add_argument("--waves", type=int, default=2)
    p.add_argument("--max-idletime", type=float, default=2.0, help="Parsl's: idle seconds before scaling in")
    p.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    p.add_argument("--temps", action="store_true", help="each wave's tasks read the temps of the wave before")
    p.add_argument("--min-blocks", type=int, default=None, help="blocks kept when idle [1 with --temps, else 0]")
    p.add_argument("--json", type=Path, help="write the parameters, every sample and the summary here")
    a = p.parse_args(argv)
    min_blocks = a.min_blocks if a.min_blocks is not None else (1 if a.temps else 0)
    result = trace(a.system, a.max_blocks, a.burst, a.task_seconds, a.waves, a.max_idletime,
                   interval=a.interval, temps=a.temps, min_blocks=min_blocks)
    where = "network namespaces" if result["namespaces"] else "this host"
    print(f"{a.system}: {a.waves} waves of {a.burst} x {a.task_seconds:g} s tasks, at most {a.max_blocks} "
          f"blocks, jobs in {where}")
    print(f"{'t (s)':>7} {'workers':>7} {'outstanding':>11} {'submitted':>9} {'pending':>7} {'running':>7} "
          f"{'cancelled':>9}")
    for s in changes(result["samples"]):
        print(f"{s['t']:7.2f} {s['workers']:7d} {s['outstanding']:11d} {s['submitted']:9d} {s['pending']:7d} "
              f"{s['running']:7d} {s['cancelled']:9d}")
    for w in result["waves"]:
        print(f"wave {w['wave']}: first worker {w['first_worker_after_s']} s after the burst, peak "
              f"{w['peak_workers']} workers, tasks done after {w['tasks_done_after_s']} s, blocks down to "
              f"--min-blocks {w['scaled_in_after_idle_s']} s after that ({w['blocks_submitted']} submitted so far); "
              f"{w['workers_retired']} workers retired, {w['retired_temps_copied']} temps copied off them, "
              f"{w['retired_temps_kept_here']} kept by the manager, "
              f"{w['retired_temps_lost']} lost, {w['reruns']} producers run again")
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
