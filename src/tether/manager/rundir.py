"""A run's directory: what a person reads after the run, kept when the manager closes.

    <parent>/<YYYYmmdd-HHMMSS>-<run>/
        manager.log      this manager's log records (its loop thread's, and its own calls')
        transactions     one line per event (see txlog.py)
        worker-N.log     each local worker's output
        work/            the secret and the local workers' caches: removed at close

The parent is `Manager(run_dir=...)`, else the environment's TETHER_RUN_DIR,
else `tether-runs` in the current directory (as Parsl writes `runinfo/` and
TaskVine `vine-run-info/` there).
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

DEFAULT_PARENT = "tether-runs"
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def make(parent: str | os.PathLike | None, run: str) -> Path:
    """Create the run's directory, and its `work` directory, under parent."""
    base = Path(parent if parent is not None else os.environ.get("TETHER_RUN_DIR") or DEFAULT_PARENT)
    path = base.absolute() / f"{time.strftime('%Y%m%d-%H%M%S')}-{run}"
    (path / "work").mkdir(parents=True)
    return path


def remove_work(path: Path) -> None:
    shutil.rmtree(path / "work", ignore_errors=True)


class _ThisManager(logging.Filter):
    """Records from the manager's loop thread, or logged with this manager's run (extra={"run": ...})."""

    def __init__(self, thread: threading.Thread, run: str):
        super().__init__()
        self.thread_id = thread.ident
        self.run = run

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread_id or getattr(record, "run", None) == self.run


class _Propagate(logging.Handler):
    """Passes `tether` records on to the root logger's handlers at the level they would have
    passed at had `tether` no level of its own: what propagation did before INFO was turned on."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.root.getEffectiveLevel():
            return
        handlers = logging.root.handlers
        if not handlers:
            if logging.lastResort is not None and record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)
            return
        for handler in handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


class ManagerLog:
    """Sends this manager's records of the `tether` logger, from INFO up, to <run dir>/manager.log.

    Unless the user has set a level on `tether` (then that level rules), the
    `tether` logger is set to INFO while a manager is open, and passes its
    records on to the root logger's handlers itself, at the root's level, so
    that a terminal shows what it showed before (warnings, by default) while
    the file gets the joins and departures too.
    """

    _lock = threading.Lock()
    _open = 0                              # open managers that turned INFO on
    _bridge: _Propagate | None = None

    def __init__(self, path: Path, thread: threading.Thread, run: str):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter(FORMAT))
        self.handler.addFilter(_ThisManager(thread, run))
        self.logger = logging.getLogger("tether")
        self.logger.addHandler(self.handler)
        self.raised = False
        with ManagerLog._lock:
            if ManagerLog._open == 0 and self.logger.level == logging.NOTSET and self.logger.propagate:
                ManagerLog._bridge = _Propagate()
                self.logger.addHandler(ManagerLog._bridge)
                self.logger.propagate = False
                self.logger.setLevel(logging.INFO)
            if ManagerLog._bridge is not None:
                ManagerLog._open += 1
                self.raised = True

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
        if not self.raised:
            return
        self.raised = False
        with ManagerLog._lock:
            ManagerLog._open -= 1
            if ManagerLog._open == 0 and ManagerLog._bridge is not None:
                self.logger.removeHandler(ManagerLog._bridge)
                ManagerLog._bridge = None
                self.logger.propagate = True
                if self.logger.level == logging.INFO:
                    self.logger.setLevel(logging.NOTSET)
