"""Running TaPS apps in this process on a given executor, and collecting what they report."""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy
from taps.engine import Engine
from taps.logging import APP_LOG_LEVEL
from taps.run.parse import parse_args_to_config

import tether.taps.plugin  # noqa: F401  (the tether executor is a choice TaPS's parser knows)


class Records:
    """TaPS's record logger, kept in memory: one dict per finished task."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def log(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


class AppMessages(logging.Handler):
    """What the apps log at TaPS's APP level (their results: word counts, matrices)."""

    def __init__(self) -> None:
        super().__init__(APP_LOG_LEVEL)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == APP_LOG_LEVEL:
            self.messages.append(record.getMessage())


def run_app(args: list[str], executor, run_dir: Path, seed: int = 7) -> tuple[list[str], list[dict[str, Any]]]:
    """Run the app TaPS's command line describes on executor; its messages and task records.

    The inputs the app generates are seeded, so that two executors see the same ones.
    """
    config = parse_args_to_config([*args, "--engine.executor", "tether"])
    run_dir.mkdir(parents=True, exist_ok=True)
    random.seed(seed)
    numpy.random.seed(seed)
    app = config.app.get_app()
    records = Records()
    engine = Engine(executor, record_logger=records)   # not shut down: the executor outlives the app
    handler = AppMessages()
    apps_logger = logging.getLogger("taps.apps")
    apps_logger.addHandler(handler)
    level = apps_logger.level
    apps_logger.setLevel(APP_LOG_LEVEL)
    try:
        app.run(engine=engine, run_dir=run_dir)
    finally:
        app.close()
        apps_logger.removeHandler(handler)
        apps_logger.setLevel(level)
    return handler.messages, records.records
