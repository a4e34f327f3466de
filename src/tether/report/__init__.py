"""Seeing a run: its transaction log turned into a model, an HTML report, a PNG.

    from tether.report import load, render_html, render_png
    model = load("RUN_DIR")                 # or Model() fed with .add(event) as events come
    open("report.html", "w").write(render_html(model))

The modules, one concern each: model (events -> tasks, workers, transfers,
cache, failures, summary), layout (lanes and sub-lanes, colours), html, png,
tail (a log that is still growing), load (finding and checking a log),
format (units), command (`tether report`).
"""
from .html import render_html
from .load import ReportError, find_log, load
from .model import Model
from .png import render_png

__all__ = ["Model", "ReportError", "find_log", "load", "render_html", "render_png"]
