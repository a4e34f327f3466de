"""HighThroughputExecutor's option names on TetherExecutor, with HTEX's meanings.

In HTEX a worker is one slot for one app at a time: cores_per_worker and
mem_per_worker are what each app gets, max_workers_per_node the most apps
at once on a node. A tether worker is one per node (or block) and runs as
many apps at once as its cores and memory allow, so these become each
task's default cores and memory, and a cap on the cores a tether worker
offers (cores_per_node, memory_per_node, disk_per_node say what it offers).

derive() turns an executor's settings into what tether uses, checking them
and warning once about the HTEX options tether has nothing for.
"""
from __future__ import annotations

import math
import socket
import string
from dataclasses import dataclass
from typing import Any

from ..task import check_env
from . import options

OWNER = "TetherExecutor"
LAUNCH_FIELDS = ("address", "secret_file", "block_id", "label", "worker_options")

# HTEX options tether has nothing for: name -> (values that ask for nothing, why)
UNUSED: dict[str, tuple[tuple, str]] = {
    "heartbeat_period": ((None,), "the manager and workers ping each other at a quarter of the heartbeat, "
                                  "which heartbeat_threshold (or heartbeat) sets"),
    "prefetch_capacity": ((None, 0), "a worker is sent the tasks its free cores can take, and chains of "
                                     "dependent tasks are committed to a worker ahead of time (group_tasks)"),
    "poll_period": ((None,), "the manager and workers act on messages as they arrive"),
    "interchange_port_range": ((None,), "there is no interchange process: the manager runs in this process"),
    "interchange_launch_cmd": ((None,), "there is no interchange process: the manager runs in this process"),
    "loopback_address": ((None, "127.0.0.1"), "local workers reach the manager at 127.0.0.1"),
    "encrypted": ((None, True), "links that leave the host are encrypted with TLS all the same"),
    "cpu_affinity": ((None, "none"), "apps are not pinned to cores"),
    "manager_selector": ((None,), "tether places each task where its input files are"),
    "drain_period": ((None,), "workers run until the provider's job ends or Parsl scales the block in"),
    "address_probe_timeout": ((None,), "workers are given one address (address=...), not a list to probe"),
    "worker_logdir_root": ((None,), "a worker logs to its standard error, which the provider keeps with "
                                    "the block's output"),
}


@dataclass(frozen=True)
class Derived:
    """What tether does with an executor's settings."""

    offer: dict[str, int | None]      # cores, memory (MB), disk (MB) each worker offers; None: all it has
    task_defaults: dict[str, Any]     # options of a task whose resource specification does not say
    port: int                         # the manager's port (0: any free one)
    heartbeat: float                  # seconds of silence after which a worker is lost


def derive(ex: Any) -> Derived:
    """Check the executor's settings (set as attributes of the same names) and derive tether's."""
    for name in ("cores_per_node", "memory_per_node", "disk_per_node", "max_workers_per_node", "max_workers"):
        value = getattr(ex, name)
        if value is not None and not _positive_int(value):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    _check_launch_cmd(ex.launch_cmd)
    for name, (quiet, why) in UNUSED.items():
        if not any(getattr(ex, name) is q or getattr(ex, name) == q for q in quiet):
            options.unused(OWNER, name, why)
    defaults = _task_defaults(ex.cores_per_worker, ex.mem_per_worker, ex.task_env)
    return Derived(_offer(ex, defaults), defaults, _port(ex), _heartbeat(ex.heartbeat, ex.heartbeat_threshold))


def _task_defaults(cores_per_worker: Any, mem_per_worker: Any, env: Any) -> dict[str, Any]:
    """HTEX's per-app cores and memory (GB), as each task's default cores and memory (MB)."""
    if not _positive_number(cores_per_worker) or cores_per_worker != int(cores_per_worker):
        raise ValueError(f"cores_per_worker (the cores each app uses) must be a whole number from 1 on, got "
                         f"{cores_per_worker!r}: tether gives each app whole cores; to run more apps at once "
                         "than a node has cores, give each worker more cores than it has (cores_per_node)")
    defaults: dict[str, Any] = {"cores": int(cores_per_worker)}
    if mem_per_worker is not None:
        if not _positive_number(mem_per_worker):
            raise ValueError(f"mem_per_worker (GB of memory each app uses) must be a positive number or None, "
                             f"got {mem_per_worker!r}")
        defaults["memory"] = math.ceil(mem_per_worker * 1024)
    if env:
        defaults["env"] = check_env(env)
    return defaults


def _offer(ex: Any, defaults: dict[str, Any]) -> dict[str, int | None]:
    """What each worker offers: cores_per_node, capped by how many apps may run at once on a node."""
    per_node = ex.max_workers_per_node
    if ex.max_workers is not None:   # HTEX's older name of max_workers_per_node
        if per_node is not None and per_node != ex.max_workers:
            raise ValueError(f"max_workers={ex.max_workers!r} and max_workers_per_node={per_node!r}: "
                             "max_workers is HTEX's older name of max_workers_per_node; give only that")
        per_node = ex.max_workers
    caps = [per_node] if per_node is not None else []
    accelerators = _accelerators(ex.available_accelerators)
    if accelerators:
        caps.append(accelerators)
        options.partly_used(OWNER, "available_accelerators",
                            f"at most {accelerators} apps run at once on a worker, one per accelerator, but "
                            "an app is not given a device of its own (no CUDA_VISIBLE_DEVICES is set)")
    cores = ex.cores_per_node
    if caps:
        capped = min(caps) * defaults["cores"]
        cores = capped if cores is None else min(cores, capped)
    if cores is not None and defaults["cores"] > cores:
        raise ValueError(f"cores_per_worker={ex.cores_per_worker!r} (the cores each app uses) is more than "
                         f"each worker offers (cores_per_node={cores})")
    memory = ex.memory_per_node
    if memory is not None and defaults.get("memory", 0) > memory:
        raise ValueError(f"mem_per_worker={ex.mem_per_worker!r} GB (the memory each app uses) is more than "
                         f"each worker offers (memory_per_node={memory} MB)")
    return {"cores": cores, "memory": memory, "disk": ex.disk_per_node}


def _accelerators(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and all(isinstance(a, str) for a in value):
        return len(value)
    raise ValueError(f"available_accelerators must be a number of accelerators or a list of their names, "
                     f"got {value!r}")


def _port(ex: Any) -> int:
    """port, HTEX's worker_port (the same thing), or a free port of worker_port_range."""
    port = ex.port
    if ex.worker_port is not None:
        if port not in (0, ex.worker_port):
            raise ValueError(f"port={port!r} and worker_port={ex.worker_port!r} name the same setting; give one")
        port = ex.worker_port
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise ValueError(f"port must be a port number (0: any free port), got {port!r}")
    if ex.worker_port_range is None:
        return port
    if port:
        raise ValueError(f"port={port!r} and worker_port_range={ex.worker_port_range!r}: give one or the other")
    try:
        low, high = ex.worker_port_range
        ok = all(isinstance(p, int) and not isinstance(p, bool) for p in (low, high)) and 0 < low <= high < 65536
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"worker_port_range must be (lowest, highest) port numbers, got {ex.worker_port_range!r}")
    host = "127.0.0.1" if ex.is_local and not ex.address else "0.0.0.0"
    for candidate in range(low, high):   # as in HTEX, the highest is not included
        with socket.socket() as s:
            try:
                s.bind((host, candidate))
            except OSError:
                continue
        return candidate
    raise ValueError(f"no port of worker_port_range {ex.worker_port_range!r} is free on this host")


def _heartbeat(heartbeat: Any, threshold: Any) -> float:
    """HTEX's heartbeat_threshold is tether's heartbeat: silence after which a worker is lost."""
    if threshold is None:
        return heartbeat
    if heartbeat not in (30.0, threshold):
        raise ValueError(f"heartbeat={heartbeat!r} and heartbeat_threshold={threshold!r} name the same "
                         "setting; give one")
    if not _positive_number(threshold):
        raise ValueError(f"heartbeat_threshold must be a positive number of seconds, got {threshold!r}")
    return float(threshold)


def _check_launch_cmd(launch_cmd: str | None) -> None:
    """A launch_cmd written for HTEX's worker pool names fields tether does not fill: say which."""
    if launch_cmd is None:
        return
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(launch_cmd) if f is not None}
    except ValueError as e:
        raise ValueError(f"launch_cmd is not a valid template: {e}") from None
    unknown = sorted(fields - set(LAUNCH_FIELDS))
    if unknown:
        raise ValueError(f"launch_cmd uses {', '.join('{' + f + '}' for f in unknown)}, which tether does not "
                         "fill: it runs `tether worker` and fills only "
                         f"{', '.join('{' + f + '}' for f in LAUNCH_FIELDS)}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)
