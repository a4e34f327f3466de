"""Stand-in batch systems (Slurm, PBS, HTCondor, and Kubernetes' API) that run their jobs on this machine.

So that tether can be run, in tests and benchmarks, under Parsl's own
cluster providers, which drive the batch system's commands: the stand-ins
accept what those providers send and answer in the forms they parse. Jobs
are real processes (see spool.py); with BatchCluster (cluster.py) each
runs in a network namespace of its own when this machine can emulate
hosts, on this host otherwise.

write_shims(bin_dir, spool) puts the commands in bin_dir; with bin_dir
first on PATH, a provider finds them as it would the real ones. Kubernetes
has an API server instead of commands: see kube.py.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from . import condor, pbs, slurm
from .spool import Spool

COMMANDS = {**slurm.COMMANDS, **pbs.COMMANDS, **condor.COMMANDS}
USAGE = "usage: python -m tether_bench.batch --spool DIR COMMAND [ARGS...]   (commands: " + \
    ", ".join(sorted(COMMANDS)) + ")"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "--spool":
        print(USAGE, file=sys.stderr)
        return 2
    spool, command, args = Spool(argv[1]), argv[2], argv[3:]
    if command == "_keep":
        return spool.keep(int(args[0]))
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    return COMMANDS[command](spool, args)


def write_shims(bin_dir: str | os.PathLike, spool: Spool | str | os.PathLike, tether: bool = True) -> list[Path]:
    """Executable scripts named like the batch commands, each running this package on `spool`.

    They run the current interpreter, with this process's import path. With
    tether=True a `tether` command is written too, standing for tether
    installed on the cluster's nodes (the command a TetherExecutor's blocks run).
    """
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    root = spool.root if isinstance(spool, Spool) else Path(spool).absolute()
    path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    head = f"PYTHONPATH={shlex.quote(path)} exec {shlex.quote(sys.executable)}"
    scripts = {name: f"{head} -m tether_bench.batch --spool {shlex.quote(str(root))} {name} \"$@\""
               for name in COMMANDS}
    if tether:
        scripts["tether"] = f"{head} -m tether \"$@\""
    written = []
    for name, line in scripts.items():
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\n{line}\n")
        shim.chmod(0o755)
        written.append(shim)
    return written
