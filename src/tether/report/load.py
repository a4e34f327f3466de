"""Finding and reading a run's transaction log, with errors that say what was wrong."""
from __future__ import annotations

import os
from pathlib import Path

from ..manager import txlog
from .model import Model

LOG_NAME = "transactions"


class ReportError(Exception):
    """A report cannot be made: the path, the file or a missing library, said in a sentence."""


def find_log(path: str | os.PathLike) -> Path:
    """A run directory's `transactions` file, or the file itself when given one."""
    path = Path(path)
    if path.is_dir():
        log = path / LOG_NAME
        if not log.is_file():
            raise ReportError(f"{path} has no {LOG_NAME} file: give a run directory of a tether manager "
                              "that writes its transaction log, or the log itself")
        return log
    if not path.exists():
        raise ReportError(f"{path} does not exist")
    if not path.is_file():
        raise ReportError(f"{path} is neither a run directory nor a transaction log")
    return path


def read_header(log: Path) -> tuple[int, str | None]:
    """The log's version and run name, or ReportError if it is not a transaction log."""
    try:
        with open(log, "rb") as f:
            first = f.readline(4096).decode("utf-8")
    except UnicodeDecodeError:
        raise ReportError(f"{log} is not a tether transaction log (it is not text)") from None
    except OSError as e:
        raise ReportError(f"cannot read {log}: {e.strerror or e}") from None
    words = first.split()
    if len(words) < 2 or words[0] != "#tether-transactions" or not words[1].isdigit():
        shown = first.strip()[:60] or "an empty file"
        raise ReportError(f"{log} is not a tether transaction log (it starts with {shown!r}, "
                          "not '#tether-transactions')")
    version = int(words[1])
    if version > txlog.VERSION:
        raise ReportError(f"{log} is of version {version}; this tether reads version {txlog.VERSION} "
                          "(a newer tether wrote it)")
    return version, (words[2] if len(words) > 2 else None)


def load(path: str | os.PathLike) -> Model:
    """The model of a finished (or still growing) run, read with txlog's reference reader."""
    log = find_log(path)
    _, run = read_header(log)
    model = Model(run)
    try:
        model.extend(txlog.read(log))
    except UnicodeDecodeError:
        raise ReportError(f"{log} is not a tether transaction log (a line is not text)") from None
    except (OSError, ValueError) as e:
        raise ReportError(f"cannot read {log}: {e}") from None
    return model
