"""The names a Parsl program written for TaskVine uses, backed by tether.

A program that imports TaskVineExecutor, TaskVineManagerConfig,
TaskVineFactoryConfig and TaskVineStaging from here instead of from
parsl.executors.taskvine runs on tether unchanged otherwise. Every TaskVine
setting is accepted: those tether has an equivalent for are mapped onto it
(taskvine_config.MAPPED), the others warn once that they have no effect
(tether.parsl.IgnoredOptionWarning). A misspelt setting is a TypeError.
"""
from __future__ import annotations

from typing import Any

from . import options
from .executor import TetherExecutor
from .staging import TetherStaging as TaskVineStaging
from .taskvine_config import TaskVineFactoryConfig, TaskVineManagerConfig, executor_options

__all__ = ["TaskVineExecutor", "TaskVineManagerConfig", "TaskVineFactoryConfig", "TaskVineStaging"]

FUNCTION_EXEC_MODES = ("regular", "serverless")


class TaskVineExecutor(TetherExecutor):
    """TetherExecutor configured the TaskVine way (a manager config and a worker factory).

    worker_launch_method: "factory" starts workers as factory_config's
    batch_type says (a Parsl provider: local, condor, slurm, pbs or sge),
    "provider" through `provider`, "manual" none (run `tether worker`
    yourself: the executor logs the command at start; give
    manager_config.address for workers on other hosts). function_exec_mode:
    both "regular" and "serverless" run apps in each worker's warm Python
    interpreters, as tether always does.
    """

    def __init__(self, label: str = "TaskVineExecutor", worker_launch_method: str = "factory",
                 function_exec_mode: str = "regular", manager_config: TaskVineManagerConfig | None = None,
                 factory_config: TaskVineFactoryConfig | None = None, provider: Any = None,
                 storage_access: list | None = None, remote_monitoring_radio: Any = None, **unknown: Any):
        if unknown:
            options.reject_unknown(type(self).__name__, unknown, options.setting_names(TaskVineExecutor))
        if function_exec_mode not in FUNCTION_EXEC_MODES:
            raise ValueError(f"function_exec_mode must be one of {', '.join(FUNCTION_EXEC_MODES)}, "
                             f"got {function_exec_mode!r}")
        manager_config = manager_config or TaskVineManagerConfig()
        factory_config = factory_config or TaskVineFactoryConfig()
        mapped = executor_options(manager_config, factory_config, worker_launch_method, provider)
        self.worker_launch_method = worker_launch_method
        self.function_exec_mode = function_exec_mode
        self.manager_config = manager_config
        self.factory_config = factory_config
        super().__init__(label=label, storage_access=storage_access,
                         remote_monitoring_radio=remote_monitoring_radio, **mapped)
