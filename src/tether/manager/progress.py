"""A progress bar for interactive runs: tasks done of those submitted, running, waiting, failed.

Drawn by rich on stderr from a thread of its own, four times a second. It
reads the core's counts without a lock: they are plain integers in a dict
whose keys never change, so a read sees a value a moment old at worst,
which is all a progress bar needs. On by default only when stderr is a
terminal (`Manager(progress=None)`); `progress=True` or `False` decides.
"""
from __future__ import annotations

import sys
import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..core import TaskState

REFRESH = 0.25   # seconds


def wanted(setting: bool | None) -> bool:
    if setting is None:
        return sys.stderr.isatty()
    if not isinstance(setting, bool):
        raise ValueError(f"progress must be True, False or None (on when stderr is a terminal), got {setting!r}")
    return setting


class ProgressBar:
    def __init__(self, engine, run: str):
        self.engine = engine
        self._stop = threading.Event()
        self._bar = Progress(TextColumn("[bold]tether[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                             console=Console(stderr=True), auto_refresh=False, transient=False)
        self._task = self._bar.add_task(run, total=0, detail="")
        self._thread = threading.Thread(target=self._run, name="tether-progress", daemon=True)
        self._bar.start()
        self._thread.start()

    def _figures(self) -> tuple[int, int, str]:
        core = self.engine.core
        counts = core.by_state
        c = core.counters
        running = counts[TaskState.ASSIGNED] + counts[TaskState.RUNNING] + counts[TaskState.HOMING]
        waiting = counts[TaskState.WAITING] + counts[TaskState.READY]
        detail = (f"running {running}  waiting {waiting}  failed {c.tasks_failed}  "
                  f"workers {len(self.engine.links)}")
        return c.tasks_done + c.tasks_failed, c.tasks_submitted, detail

    def _draw(self) -> None:
        done, total, detail = self._figures()
        self._bar.update(self._task, completed=done, total=max(total, 1), detail=detail)
        self._bar.refresh()

    def _run(self) -> None:
        while not self._stop.wait(REFRESH):
            try:
                self._draw()
            except RuntimeError:   # a count read while the core grew a dict: the next one will do
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._draw()
        self._bar.stop()
