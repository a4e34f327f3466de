"""The `tether` executor in TaPS's plugin registry: importing this module registers it."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from taps.executor import ExecutorConfig
from taps.plugins import register

from ..executor import DEFAULT_SPILL
from .executor import TapsExecutor

logger = logging.getLogger(__name__)

RUN_LOG_LEVEL = 22   # TaPS's level for what the harness reports (taps.logging.RUN_LOG_LEVEL)


@register("executor")
class TetherConfig(ExecutorConfig):
    """tether executor: results stay on the workers; a future passed on is resolved there."""

    name: Literal["tether"] = Field("tether", description="Executor name.")
    workers: int = Field(os.cpu_count() or 1, description="Local worker processes to start "
                         "(0: none; remote workers connect with `tether worker`).")
    cores_per_worker: int = Field(1, description="Cores (and warm Python interpreters) of each local worker.")
    group_tasks: bool = Field(True, description="Run chains of dependent tasks as groups on one worker.")
    spill_threshold: int = Field(DEFAULT_SPILL, description="Results larger than this (bytes, pickled) "
                                 "go to the worker's cache instead of its memory.")
    host: str | None = Field(None, description="Address the manager listens on (default: loopback "
                             "with local workers, all interfaces without).")
    port: int = Field(0, description="Port the manager listens on (0: any free port).")
    secret_file: str | None = Field(None, description="Secret shared with remote workers (default: "
                                    "a new one, written under the manager's run directory).")
    wait_for_workers: int | None = Field(None, description="Remote workers to wait for before the app starts.")
    warm_modules: list[str] = Field(["taps.engine"], description="Modules imported in every worker "
                                    "interpreter before the app starts (none: an empty string).")
    stats_file: str | None = Field("tether-stats.json", description="Where, in the run directory, "
                                   "to write tether's figures (bytes moved, hop latency) at shutdown.")

    def get_executor(self) -> TapsExecutor:
        """Start the manager and its workers, warm their interpreters."""
        options: dict[str, Any] = {"cores_per_worker": self.cores_per_worker, "group_tasks": self.group_tasks,
                                   "spill_threshold": self.spill_threshold, "port": self.port}
        if self.host is not None:
            options["host"] = self.host
        if self.secret_file is not None:
            options["secret_file"] = self.secret_file
        executor = TapsExecutor(self.workers, warm_modules=tuple(m for m in self.warm_modules if m),
                                wait_for_workers=self.wait_for_workers, **options)
        if self.stats_file is not None:
            executor.on_shutdown = lambda stats: _write_stats(Path(self.stats_file), stats)
        return executor


def _write_stats(path: Path, stats: dict[str, Any]) -> None:
    path.write_text(json.dumps(stats, indent=2, default=str) + "\n")
    logger.log(RUN_LOG_LEVEL, "tether: %s bytes manager to worker, %s worker to manager, %s worker to worker "
               "(figures in %s)", f"{stats['bytes_manager_to_worker']:,}", f"{stats['bytes_worker_to_manager']:,}",
               f"{stats['bytes_worker_to_worker']:,}", path)
