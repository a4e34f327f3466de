"""The run's figures in Prometheus's text exposition format (version 0.0.4), for /metrics.

Written by hand rather than with prometheus_client: the figures are read off
the model at scrape time, so no registry or second copy of the counts is
needed, and the manager gains no dependency. The tests parse the output with
prometheus_client's own parser.
"""
from __future__ import annotations

import math

from .model import TASK_STATES, TRANSFER_KINDS, Model, quantile

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HOP_QUANTILES = (0.5, 0.9, 0.99)


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


class _Writer:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels) -> None:
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{text}}} {_value(value)}" if text else f"{name} {_value(value)}")


def render_metrics(model: Model) -> str:
    s = model.summary()
    w = _Writer()
    w.family("tether_tasks", "gauge", "Tasks by state: waiting (not yet placed), assigned (on a worker, "
             "not ended), done, failed (given up), cancelled.")
    for state in TASK_STATES:
        w.sample("tether_tasks", s.states[state], state=state)
    w.family("tether_attempts_total", "counter", "Attempts of tasks placed on workers, retries included.")
    w.sample("tether_attempts_total", s.attempts)
    w.family("tether_workers", "gauge", "Workers by state: connected, or left.")
    w.sample("tether_workers", s.workers_connected, state="connected")
    w.sample("tether_workers", s.workers - s.workers_connected, state="left")
    w.family("tether_cores", "gauge", "Cores of the connected workers.")
    w.sample("tether_cores", s.cores)
    w.family("tether_bytes_moved_total", "counter", "Bytes transferred, by direction.")
    for kind in TRANSFER_KINDS:
        w.sample("tether_bytes_moved_total", s.bytes_moved[kind], kind=kind)
    w.family("tether_transfers_total", "counter", "Files transferred, by direction.")
    for kind in TRANSFER_KINDS:
        w.sample("tether_transfers_total", s.transfers[kind], kind=kind)
    w.family("tether_cache_bytes", "gauge", "Bytes in each worker's cache, as the manager knows it.")
    for worker, use in model.cache.items():
        w.sample("tether_cache_bytes", use.total, worker=worker)
    w.family("tether_hop_latency_seconds", "summary", "From the end of a task's process to the start of the "
             "next group member's (or of its consumer's).")
    hops = sorted(model.hop_latencies())
    for q in HOP_QUANTILES:
        value = quantile(hops, q)
        w.sample("tether_hop_latency_seconds", math.nan if value is None else value, quantile=str(q))
    w.sample("tether_hop_latency_seconds_sum", float(math.fsum(hops)))
    w.sample("tether_hop_latency_seconds_count", len(hops))
    w.family("tether_attempt_failures_total", "counter", "Attempts that failed, by reason (retried or not).")
    for reason, n in sorted(s.failures_by_reason.items()):
        w.sample("tether_attempt_failures_total", n, reason=reason)
    w.family("tether_task_failures_total", "counter", "Tasks given up on, by the reason of their last failure.")
    final: dict[str, int] = {}
    for f in model.failures:
        if f.final:
            final[f.reason] = final.get(f.reason, 0) + 1
    for reason, n in sorted(final.items()):
        w.sample("tether_task_failures_total", n, reason=reason)
    w.family("tether_makespan_seconds", "gauge", "From the first submission to the last task's end "
             "(to the last event while tasks are unfinished).")
    w.sample("tether_makespan_seconds", float(s.makespan))
    w.family("tether_log_events_total", "counter", "Transaction-log events taken by this page.")
    w.sample("tether_log_events_total", model.version)
    return "\n".join(w.lines) + "\n"
