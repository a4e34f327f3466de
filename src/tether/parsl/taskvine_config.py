"""TaskVine's manager and factory settings, and what each becomes in tether.

Every field TaskVine's TaskVineManagerConfig and TaskVineFactoryConfig have
is accepted, with TaskVine's defaults. executor_options() maps them onto
TetherExecutor's settings and a Parsl provider (see MAPPED below); a field
tether has nothing for (UNUSED) warns once when set to other than its
default. A misspelt field is a TypeError naming the field it was probably
meant to be.
"""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, fields
from typing import Any

from parsl.launchers import SimpleLauncher
from parsl.providers import CondorProvider, GridEngineProvider, LocalProvider, PBSProProvider, SlurmProvider

from . import options

BATCH_TYPES = {"local": LocalProvider, "condor": CondorProvider, "slurm": SlurmProvider,
               "pbs": PBSProProvider, "sge": GridEngineProvider}
WORKER_LAUNCH_METHODS = ("factory", "provider", "manual")
FOREVER = sys.maxsize   # max_retries=None: a task may be lost to the system any number of times


@options.check_keywords
@dataclass
class TaskVineManagerConfig:
    """Where the manager listens and how tasks run; field names and defaults as TaskVine's."""

    port: int = 0
    address: str | None = None
    project_name: str | None = None
    project_password_file: str | None = None
    env_vars: dict | None = None
    init_command: str = ""
    env_pack: str | None = None
    app_pack: bool = False
    extra_pkgs: list | None = None
    max_retries: int | None = 1
    library_config: dict | None = None
    shared_fs: bool = False
    autolabel: bool = False
    autolabel_algorithm: str = "max-xput"
    autolabel_window: int | None = None
    autocategory: bool = True
    enable_peer_transfers: bool = True
    wait_for_workers: int | None = None
    tune_parameters: dict | None = None
    vine_log_dir: str | None = None


@options.check_keywords
@dataclass
class TaskVineFactoryConfig:
    """Which workers to start, where and how big; field names and defaults as TaskVine's."""

    factory_timeout: int = 300
    scratch_dir: str | None = None
    min_workers: int = 1
    max_workers: int = 1
    workers_per_cycle: int = 1
    worker_options: str | None = None
    worker_executable: str = "vine_worker"
    worker_timeout: int = 300
    cores: int | None = None
    gpus: int | None = None
    memory: int | None = None
    disk: int | None = None
    python_env: str | None = None
    batch_type: str = "local"
    condor_requirements: str | None = None
    batch_options: str | None = None
    _project_port: int = 0
    _project_address: str | None = None
    _project_name: str | None = None
    _project_password_file: str | None = None

    def __post_init__(self) -> None:
        check_factory(self)


# fields tether does something with, and what (for the README and the tests)
MAPPED = {
    "port": "port", "address": "address", "project_password_file": "secret_file", "shared_fs": "shared_fs",
    "env_vars": "task_env", "max_retries": "system_retries (None: no limit)", "vine_log_dir": "tether_run_dir",
    "enable_peer_transfers": "(True is what tether does)",
    "min_workers": "the provider's min_blocks (init_blocks: at least 1)", "max_workers": "the provider's max_blocks",
    "worker_options": "worker_options", "worker_timeout": "`tether worker --connect-timeout`",
    "cores": "cores_per_node", "memory": "memory_per_node", "disk": "disk_per_node",
    "gpus": "(slurm: the job's gpus_per_node; tether does not count GPUs, and warns)",
    "batch_type": "the provider", "batch_options": "the provider's scheduler_options",
    "condor_requirements": "CondorProvider's requirements",
}

# fields tether has nothing for: name -> why
_NO_ENV = "workers run apps in the Python environment they were started in"
_NO_LABELS = "a task takes the cores, memory and disk its parsl_resource_specification asks for (1 core by default)"
_OWN = "TaskVine's executor sets it for its factory; tether starts its workers itself"
UNUSED = {
    "project_name": "there is no catalog; workers are given the manager's address",
    "init_command": "no command runs before each app; put it in the app, or in the provider's worker_init",
    "env_pack": _NO_ENV, "app_pack": _NO_ENV, "extra_pkgs": _NO_ENV, "python_env": _NO_ENV,
    "library_config": "apps always run in each worker's warm Python interpreters",
    "autolabel": _NO_LABELS, "autolabel_algorithm": _NO_LABELS, "autolabel_window": _NO_LABELS,
    "autocategory": "tether keeps no task categories",
    "enable_peer_transfers": "workers always pass files to each other when that is the shortest way",
    "wait_for_workers": "tasks go to workers as they connect",
    "tune_parameters": "they are TaskVine's own tuning parameters",
    "factory_timeout": "Parsl's provider starts and stops the workers",
    "scratch_dir": "local workers keep their caches in Parsl's run directory",
    "workers_per_cycle": "Parsl's scaling strategy decides when blocks start",
    "worker_executable": "workers are `tether worker`",
    "_project_port": _OWN, "_project_address": _OWN, "_project_name": _OWN, "_project_password_file": _OWN,
}


def check_factory(factory: Any) -> None:
    if factory.batch_type not in BATCH_TYPES:
        raise ValueError(f"batch_type must be one of {', '.join(BATCH_TYPES)}, got {factory.batch_type!r}")
    lo, hi = factory.min_workers, factory.max_workers
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi and hi >= 1):
        raise ValueError(f"need 0 <= min_workers <= max_workers and max_workers >= 1, got {lo!r} and {hi!r}")


def executor_options(manager: Any, factory: Any, worker_launch_method: str, provider: Any) -> dict[str, Any]:
    """TetherExecutor's keyword arguments for these settings (TaskVine's dataclasses, tether's or Parsl's)."""
    if worker_launch_method not in WORKER_LAUNCH_METHODS:
        raise ValueError(f"worker_launch_method must be one of {', '.join(WORKER_LAUNCH_METHODS)}, "
                         f"got {worker_launch_method!r}")
    check_factory(factory)
    _warn_unused("TaskVineManagerConfig", manager, TaskVineManagerConfig)
    _warn_unused("TaskVineFactoryConfig", factory, TaskVineFactoryConfig)
    if factory.gpus:
        _warn_gpus(factory, worker_launch_method)
    if worker_launch_method == "factory":
        provider = batch_provider(factory)
    elif worker_launch_method == "provider":
        provider = provider or LocalProvider(init_blocks=1, launcher=SimpleLauncher())
    else:   # manual: no worker is started; run `tether worker` yourself (start() logs the command)
        provider = LocalProvider(init_blocks=0, min_blocks=0, max_blocks=0, launcher=SimpleLauncher())
    retries = manager.max_retries
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        raise ValueError(f"max_retries must be a non-negative integer or None (no limit), got {retries!r}")
    timeout = factory.worker_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"worker_timeout must be a positive number of seconds, got {timeout!r}")
    worker_options = " ".join(filter(None, [f"--connect-timeout {timeout:g}", factory.worker_options]))
    return dict(provider=provider, cores_per_node=factory.cores, memory_per_node=factory.memory,
                disk_per_node=factory.disk, address=manager.address, port=manager.port,
                secret_file=manager.project_password_file, worker_options=worker_options,
                shared_fs=manager.shared_fs, task_env=manager.env_vars,
                system_retries=FOREVER if retries is None else retries, tether_run_dir=manager.vine_log_dir)


def _warn_unused(owner: str, config: Any, defaults_from: type) -> None:
    defaults = {f.name: f.default for f in fields(defaults_from)}
    for name, why in UNUSED.items():
        if name in defaults and getattr(config, name, defaults[name]) != defaults[name]:
            options.unused(owner, name, why)


def _warn_gpus(factory: Any, worker_launch_method: str) -> None:
    why = "tether does not count GPUs, so they do not limit how many tasks run at once"
    if worker_launch_method == "factory" and factory.batch_type == "slurm":
        options.partly_used("TaskVineFactoryConfig", "gpus", f"each Slurm job asks for them, but {why}")
    else:
        options.unused("TaskVineFactoryConfig", "gpus", why)


def batch_provider(factory: Any) -> Any:
    """The Parsl provider for the factory's batch_type: one tether worker per block."""
    kind, extra = factory.batch_type, factory.batch_options
    blocks = dict(init_blocks=max(1, factory.min_workers), min_blocks=factory.min_workers,
                  max_blocks=factory.max_workers, nodes_per_block=1)
    if factory.condor_requirements and kind != "condor":
        options.unused("TaskVineFactoryConfig", "condor_requirements", f"batch_type is {kind!r}, not 'condor'")
    if kind == "local":
        if extra:
            options.unused("TaskVineFactoryConfig", "batch_options", "local workers are no batch jobs")
        return LocalProvider(launcher=SimpleLauncher(), **blocks)
    if factory.gpus and kind == "slurm":
        blocks["gpus_per_node"] = factory.gpus   # the job gets them; tether does not count them
    if kind == "condor":
        return CondorProvider(scheduler_options=extra or "",
                              requirements=factory.condor_requirements or "", cores_per_slot=factory.cores,
                              mem_per_slot=factory.memory / 1024 if factory.memory else None, **blocks)
    prefix = {"slurm": "#SBATCH", "pbs": "#PBS", "sge": "#$"}[kind]
    directives = _directives(prefix, extra)
    walltime = _walltime(kind, extra)
    if walltime:
        blocks["walltime"] = walltime
    if kind == "slurm":
        return SlurmProvider(scheduler_options=directives, cores_per_node=factory.cores,
                             mem_per_node=-(-factory.memory // 1024) if factory.memory else None, **blocks)
    if kind == "pbs":
        if factory.cores:
            blocks["cpus_per_node"] = factory.cores
        return PBSProProvider(scheduler_options=directives, **blocks)
    return GridEngineProvider(scheduler_options=directives, **blocks)


def _directives(prefix: str, batch_options: str | None) -> str:
    """TaskVine's batch_options are the submit command's options; a job script wants them as directives.

    Lines that already start with '#' are taken as directives as they are.
    """
    if not batch_options:
        return ""
    if batch_options.lstrip().startswith("#"):
        return batch_options
    groups: list[list[str]] = []
    for word in shlex.split(batch_options):
        if word.startswith("-") or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return "\n".join(f"{prefix} {' '.join(shlex.quote(w) for w in g)}" for g in groups) + "\n"


_WALLTIME = {"slurm": r"(?:--time[= ]|(?:^|\s)-t\s*)(\S+)", "pbs": r"walltime=([\d:]+)", "sge": r"h_rt=([\d:]+)"}


def _walltime(kind: str, batch_options: str | None) -> str | None:
    """The walltime batch_options ask for, so that the provider's default one does not cut the job short."""
    match = re.search(_WALLTIME[kind], batch_options or "")
    return match.group(1) if match else None
