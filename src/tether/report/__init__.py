"""Seeing a run: its transaction log turned into a model of what happened.

    from tether.report import load
    model = load("RUN_DIR")                 # or Model() fed with .add(event) as events come

The modules, one concern each: model (events -> tasks, workers, transfers,
cache, failures, summary), layout (lanes and sub-lanes, colours), tail (a log
that is still growing), load (finding and checking a log), format (units).
"""
from .load import ReportError, find_log, load
from .model import Model

__all__ = ["Model", "ReportError", "find_log", "load"]
