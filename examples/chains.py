"""The demo workflow through Parsl: 20 chains of 30 bash apps passing temp files.

Each chain's first app writes a taskvinetemp file, every next app reads its
predecessor's file and writes a new one, and the last app writes a file that
comes home. Parsl hands every app to the executor at once (look-ahead), so
tether sees whole chains and runs each on one worker.

    python examples/chains.py [--chains 20] [--length 30] [--workers 4] [--no-groups]
"""
import argparse
import tempfile
import time
from pathlib import Path

import parsl
from parsl import bash_app
from parsl.config import Config
from parsl.data_provider.files import File
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider

from tether.parsl import TetherExecutor
from tether.workloads import expected_tail


@bash_app
def first(chain, outputs=[]):
    return f"echo 'chain {chain} step 0' > {outputs[0]}"


@bash_app
def step(n, inputs=[], outputs=[]):
    return f"cat {inputs[0]} > {outputs[0]} && echo 'step {n}' >> {outputs[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4, help="local workers, one core each")
    parser.add_argument("--no-groups", action="store_true", help="turn tether's task groups off, to compare")
    opts = parser.parse_args()
    executor = TetherExecutor(
        provider=LocalProvider(init_blocks=opts.workers, min_blocks=0, max_blocks=opts.workers,
                               launcher=SimpleLauncher()),
        cores_per_node=1, group_tasks=not opts.no_groups)
    with tempfile.TemporaryDirectory(prefix="tether-chains-") as tmp, \
            parsl.load(Config(executors=[executor], run_dir=str(Path(tmp) / "runinfo"))):
        deadline = time.monotonic() + 60
        while executor.connected_workers() < opts.workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {executor.connected_workers()} of {opts.workers} workers connected in 60 s")
            time.sleep(0.05)
        started = time.perf_counter()
        ends, results = [], []
        for c in range(opts.chains):
            app = first(c, outputs=[File(f"taskvinetemp://chain-{c}-step-0")])
            for n in range(1, opts.length):
                last = n == opts.length - 1
                out = File(str(Path(tmp) / f"chain-{c}.txt")) if last else File(f"taskvinetemp://chain-{c}-step-{n}")
                app = step(n, inputs=[app.outputs[0]], outputs=[out])
            ends.append(app)
            results.append(Path(tmp) / f"chain-{c}.txt")
        for app in ends:
            app.result()
        makespan = time.perf_counter() - started
        wrong = [c for c, p in enumerate(results) if p.read_bytes() != expected_tail(c, opts.length)]
        stats = executor.manager.stats()
    print(f"{opts.chains} chains of {opts.length} Parsl bash apps on {opts.workers} workers, "
          f"groups {'off' if opts.no_groups else 'on'}")
    print(f"makespan                 {makespan:.2f} s")
    print(f"results correct          {'yes' if not wrong else f'NO: chains {wrong}'}")
    print(f"tasks done / failed      {stats['tasks_done']} / {stats['tasks_failed']}")
    for key in ("bytes_manager_to_worker", "bytes_worker_to_manager", "bytes_worker_to_worker"):
        print(f"{key.replace('_', ' '):<24} {stats[key]:,}")
    if stats["hop_latency_median_s"] is not None:
        print(f"hop latency median / p95 {stats['hop_latency_median_s'] * 1e3:.3f} ms / "
              f"{stats['hop_latency_p95_s'] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
