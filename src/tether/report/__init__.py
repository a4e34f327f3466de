"""Seeing a run: its transaction log turned into a model, an HTML report, a PNG, a live page.

    from tether.report import load, render_html, render_png, LivePage
    model = load("RUN_DIR")                 # or Model() fed with .add(event) as events come
    open("report.html", "w").write(render_html(model))
    page = LivePage(host="127.0.0.1", port=0).start(); page.add(events); page.url; page.stop()

The modules, one concern each: model (events -> tasks, workers, transfers,
cache, failures, summary), layout (lanes and sub-lanes, colours), html, png,
metrics (Prometheus text), live (the HTTP server), tail (a log that is still
growing), load (finding and checking a log), format (units), command
(`tether report`).
"""
from .html import render_html
from .live import LivePage
from .load import ReportError, find_log, load
from .metrics import render_metrics
from .model import Model
from .png import render_png

__all__ = ["LivePage", "Model", "ReportError", "find_log", "load", "render_html", "render_metrics", "render_png"]
