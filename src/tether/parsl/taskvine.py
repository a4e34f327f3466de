"""The names a Parsl program written for TaskVine uses, backed by tether.

A program that imports TaskVineExecutor, TaskVineManagerConfig,
TaskVineFactoryConfig and TaskVineStaging from here instead of from
parsl.executors.taskvine runs on tether unchanged otherwise. Only the
settings that mean something to tether are accepted; any other raises a
TypeError naming it, rather than being silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider

from .executor import TetherExecutor
from .staging import TetherStaging as TaskVineStaging

__all__ = ["TaskVineExecutor", "TaskVineManagerConfig", "TaskVineFactoryConfig", "TaskVineStaging"]


@dataclass
class TaskVineManagerConfig:
    """Where the manager listens. project_name only labels the run."""

    port: int = 0
    address: str | None = None
    project_name: str | None = None
    project_password_file: str | None = None   # a file holding the workers' secret
    shared_fs: bool = False


@dataclass
class TaskVineFactoryConfig:
    """How many local workers to start, and how big; only batch_type "local" starts any."""

    batch_type: str = "local"
    min_workers: int = 1
    max_workers: int = 1
    cores: int | None = None
    memory: int | None = None
    disk: int | None = None
    worker_options: str = ""

    def __post_init__(self) -> None:
        if self.batch_type != "local":
            raise ValueError(f"batch_type {self.batch_type!r}: here the factory starts local workers only; "
                             "use TetherExecutor(provider=...) with a Parsl provider for a batch system")
        if not (0 <= self.min_workers <= self.max_workers) or self.max_workers < 1:
            raise ValueError(f"need 0 <= min_workers <= max_workers and max_workers >= 1, "
                             f"got {self.min_workers} and {self.max_workers}")


class TaskVineExecutor(TetherExecutor):
    """TetherExecutor configured the TaskVine way (a manager config and a worker factory)."""

    def __init__(self, label: str = "TaskVineExecutor", worker_launch_method: str = "factory",
                 manager_config: TaskVineManagerConfig | None = None,
                 factory_config: TaskVineFactoryConfig | None = None, provider: Any = None,
                 storage_access: list | None = None):
        manager_config = manager_config or TaskVineManagerConfig()
        factory_config = factory_config or TaskVineFactoryConfig()
        if worker_launch_method == "factory":
            provider = LocalProvider(init_blocks=max(1, factory_config.min_workers),
                                     min_blocks=factory_config.min_workers,
                                     max_blocks=factory_config.max_workers, launcher=SimpleLauncher())
        elif worker_launch_method == "provider":
            provider = provider or LocalProvider(init_blocks=1, launcher=SimpleLauncher())
        else:
            raise ValueError(f"worker_launch_method must be 'factory' or 'provider', got {worker_launch_method!r}")
        self.worker_launch_method = worker_launch_method
        self.manager_config = manager_config
        self.factory_config = factory_config
        super().__init__(label=label, provider=provider, cores_per_node=factory_config.cores,
                         memory_per_node=factory_config.memory, disk_per_node=factory_config.disk,
                         address=manager_config.address, port=manager_config.port,
                         secret_file=manager_config.project_password_file,
                         worker_options=factory_config.worker_options, shared_fs=manager_config.shared_fs,
                         storage_access=storage_access)
