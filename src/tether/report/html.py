"""The report as one self-contained HTML file: summary, timeline, cache use, failures, workers, tasks.

Everything is drawn here, in Python, as markup (one SVG for the timeline,
one for the cache), so the file opens anywhere without a network and reads
the same in a test as in a browser. The inline script only adds what markup
cannot: sorting and paging the task table (its rows travel as JSON, so
100,000 tasks do not make 100,000 table rows), highlighting a group, and on
the live page, fetching the new view while the run goes on.

Elements carry stable hooks: `data-worker` on each lane, `data-task`,
`data-group`, `data-attempt` on each bar, `data-kind` on transfers,
`data-cache` on each worker's cache line, `data-figure` on summary figures.
"""
from __future__ import annotations

import json
from functools import cache
from html import escape
from importlib import resources

from . import format as fmt
from .layout import UNGROUPED, Lane, Timeline, nice_ticks, timeline, worker_colour
from .model import MANAGER, TASK_STATES, TRANSFER_KINDS, Model

LABEL_W = 180           # lane labels
PLOT_W = 1080           # the time axis
RIGHT_W = 36
SUB_H = 12              # one sub-lane
LANE_PAD = 3
LANE_GAP = 5
AXIS_H = 24
MANAGER_H = 18
CACHE_H = 150
FAILURES_SHOWN = 500
KIND_LABEL = {"manager_to_worker": "manager → worker", "worker_to_manager": "worker → manager",
              "worker_to_worker": "worker → worker"}
KIND_CLASS = {"manager_to_worker": "m2w", "worker_to_manager": "w2m", "worker_to_worker": "w2w"}

# The task table's columns: key, heading, type (text, s: seconds, B: bytes, n: number).
COLUMNS = [("id", "task", "text"), ("kind", "kind", "text"), ("what", "what", "text"),
           ("worker", "worker", "text"), ("group", "group", "text"), ("attempts", "attempts", "n"),
           ("submitted", "submitted", "s"), ("started", "started", "s"), ("finished", "finished", "s"),
           ("run", "run time", "s"),
           ("hop", "hop latency", "s"), ("memory", "peak memory", "B"), ("cpu", "cpu", "s"),
           ("disk", "disk", "B"), ("state", "outcome", "text"), ("reason", "reason", "text")]
WHAT_MAX = 160


@cache
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def render_html(model: Model, *, live: bool = False, refresh: float = 1.0, title: str | None = None) -> str:
    """The whole page. `live` makes it poll the server it came from (see live.py) every `refresh` s."""
    return render_page(render_view(model), title=title or page_title(model), live=live, refresh=refresh)


def page_title(model: Model) -> str:
    return f"tether run {model.run}" if model.run else "tether run"


def render_page(view: str, *, title: str, live: bool = False, refresh: float = 1.0) -> str:
    """A page around a view from `render_view` (the live page keeps its last view and reuses it)."""
    live_attrs = f' data-live="1" data-refresh="{int(refresh * 1000)}"' if live else ""
    return "".join([
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head>",
        f"<body{live_attrs}><header><h1>{escape(title)}</h1>",
        '<span id="live-status">' + ("live" if live else "") + "</span></header>\n",
        view,
        f"\n<script>{_asset('report.js')}</script></body></html>\n",
    ])


def render_view(model: Model) -> str:
    """The part of the page that changes with the run: what the live page fetches and swaps in."""
    tl = timeline(model)
    return "".join([
        f'<main id="report" data-version="{model.version}">',
        _summary(model),
        _timeline(tl),
        _cache(tl),
        _failures(model),
        _workers(model),
        _tasks(model, tl.origin),
        "</main>",
    ])


# ---------------------------------------------------------------- summary

def _summary(model: Model) -> str:
    s = model.summary()
    moved = sum(s.bytes_moved.values())
    figures = [
        ("makespan", "makespan", fmt.seconds(s.makespan)),
        ("tasks", "tasks", str(s.tasks)),
    ] + [(state, state, str(s.states[state])) for state in TASK_STATES if s.states[state] or state in ("done", "failed")] + [
        ("attempts", "attempts", str(s.attempts)),
        ("failed-attempts", "failed attempts", str(s.failed_attempts)),
        ("retried", "tasks retried", str(s.retried_tasks)),
        ("workers", "workers", f"{s.workers} ({s.workers_connected} connected, {s.cores} cores)"),
        ("hop-median", "median hop latency", fmt.seconds(s.hop_median)),
        ("hop-p90", "90th percentile hop", fmt.seconds(s.hop_p90)),
        ("bytes-moved", "bytes moved", fmt.size(moved)),
    ] + [(kind.replace("_", "-"), KIND_LABEL[kind],
          f"{fmt.size(s.bytes_moved[kind])} in {fmt.count(s.transfers[kind], 'transfer')}") for kind in TRANSFER_KINDS]
    if s.peak_cache:
        figures.append(("peak-cache", "peak cache (largest worker)", fmt.size(max(s.peak_cache.values()))))
    if model.skipped:
        figures.append(("skipped", "log lines not understood", str(model.skipped)))
    items = "".join(f'<div data-figure="{key}"><dt>{escape(label)}</dt><dd>{escape(value)}</dd></div>'
                    for key, label, value in figures)
    empty = "" if model.version else '<p class="note">No events yet.</p>'
    return f'<section id="summary"><h2>Summary</h2>{empty}<dl>{items}</dl></section>'


# ---------------------------------------------------------------- timeline

class _Scale:
    def __init__(self, span: float):
        self.k = PLOT_W / span if span > 0 else 0.0

    def x(self, t: float) -> float:
        return LABEL_W + t * self.k


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _axis(tl: Timeline, sx: _Scale, top: float, bottom: float) -> list[str]:
    out = ['<g class="axis">']
    for tick in nice_ticks(tl.span):
        x = _n(sx.x(tick))
        out.append(f'<line x1="{x}" x2="{x}" y1="{_n(top)}" y2="{_n(bottom)}"/>'
                   f'<text x="{x}" y="{_n(top - 6)}">{escape(fmt.seconds(tick))}</text>')
    out.append("</g>")
    return out


def _timeline(tl: Timeline) -> str:
    sx = _Scale(tl.span)
    width = LABEL_W + PLOT_W + RIGHT_W
    centre: dict[str, float] = {MANAGER: AXIS_H + MANAGER_H / 2}
    y = AXIS_H + MANAGER_H + LANE_GAP
    tops = []
    for lane in tl.lanes:
        height = lane.sublanes * SUB_H + 2 * LANE_PAD
        tops.append((lane, y, height))
        centre[lane.worker] = y + height / 2
        y += height + LANE_GAP
    height = y + 4
    out = [f'<section id="timeline"><h2>Timeline</h2>{_legend(tl)}',
           (f'<div class="scroll"><svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{_n(height)}" viewBox="0 0 {width} {_n(height)}">'),
           ('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" class="hatch"/></pattern>'),
           ''.join(f'<marker id="arrow-{c}" class="arrow {c}" viewBox="0 0 6 6" refX="5" refY="3" markerWidth="5" '
                   f'markerHeight="5" orient="auto-start-reverse"><path d="M0,0 L6,3 L0,6 z"/></marker>'
                   for c in KIND_CLASS.values()),
           '</defs>']
    out += _axis(tl, sx, AXIS_H, height - 2)
    out.append(f'<g class="lane manager" data-lane="manager"><rect class="lane-bg" x="{LABEL_W}" y="{AXIS_H}" '
               f'width="{PLOT_W}" height="{MANAGER_H}"/><text class="label" x="6" y="{_n(centre[MANAGER] + 4)}">'
               'manager</text></g>')
    for lane, top, lane_h in tops:
        out.append(_lane(lane, tl, sx, top, lane_h))
    out.append('<g class="transfers">')
    for a in tl.arrows:
        if a.source not in centre or a.dest not in centre:
            continue
        x = _n(sx.x(a.time))
        c = KIND_CLASS[a.kind]
        y1, y2 = centre[a.source], centre[a.dest]
        out.append(f'<line class="transfer {c}" data-kind="{a.kind}" data-file="{escape(a.file)}" '
                   f'x1="{x}" x2="{x}" y1="{_n(y1)}" y2="{_n(y2)}" marker-end="url(#arrow-{c})">'
                   f'<title>{escape(a.file)}: {escape(fmt.size(a.bytes))}, {escape(a.source)} → {escape(a.dest)} '
                   f'at {escape(fmt.seconds(a.time))}</title></line>')
    out.append("</g></svg></div></section>")
    return "".join(out)


def _lane(lane: Lane, tl: Timeline, sx: _Scale, top: float, height: float) -> str:
    cores = f", {lane.cores} cores" if lane.cores and lane.cores > 1 else (", 1 core" if lane.cores else "")
    label = f"{lane.worker}{cores}"
    out = [f'<g class="lane" data-worker="{escape(lane.worker)}" data-sublanes="{lane.sublanes}">',
           f'<rect class="lane-bg" x="{LABEL_W}" y="{_n(top)}" width="{PLOT_W}" height="{_n(height)}"/>',
           (f'<text class="label" x="6" y="{_n(top + min(height, 2 * SUB_H) / 2 + 4)}">{escape(label)}'
            f'<title>{escape(lane.worker)} on {escape(lane.host or "?")}{escape(cores)}</title></text>')]
    if lane.joined is not None and lane.joined > 0:
        out.append(f'<rect class="absent" x="{LABEL_W}" y="{_n(top)}" width="{_n(sx.x(lane.joined) - LABEL_W)}" '
                   f'height="{_n(height)}"><title>not yet joined</title></rect>')
    for since, until in lane.blocklisted:
        x0, x1 = sx.x(since), sx.x(min(max(until, since), tl.span))
        out.append(f'<rect class="blocked" x="{_n(x0)}" y="{_n(top)}" width="{_n(max(x1 - x0, 1))}" '
                   f'height="{_n(height)}"><title>blocklisted until {escape(fmt.seconds(until))}</title></rect>')
    for bar in lane.bars:
        x0 = sx.x(bar.start)
        w = max(sx.x(bar.end) - x0, 0.8)
        y = top + LANE_PAD + bar.sublane * SUB_H + 1
        classes = "bar" + (" failed" if bar.outcome == "failed" else "") + (" retry" if bar.retry else "")
        group = f' data-group="{escape(bar.group)}"' if bar.group is not None else ""
        fill = tl.colours.get(bar.group, UNGROUPED) if bar.group is not None else UNGROUPED
        ended = (f"failed: {bar.reason}" if bar.outcome == "failed" else
                 f"exit {bar.exit_code}" if bar.exit_code is not None else "ran")
        tip = (f"{bar.task}" + (f" · group {bar.group}" if bar.group else "") + f" · attempt {bar.attempt}\n"
               f"{fmt.seconds(bar.start)} → {fmt.seconds(bar.end)} ({fmt.seconds(bar.end - bar.start)}) · {ended}")
        out.append(f'<rect class="{classes}" data-task="{escape(bar.task)}"{group} data-attempt="{bar.attempt}" '
                   f'x="{_n(x0)}" y="{_n(y)}" width="{_n(w)}" height="{SUB_H - 2}" fill="{fill}">'
                   f'<title>{escape(tip)}</title></rect>')
        if bar.outcome == "failed":
            out.append(_cross(x0 + w, y + (SUB_H - 2) / 2, bar.task, bar.reason or "failed"))
    for mark in lane.marks:
        out.append(_cross(sx.x(mark.time), top + height / 2, mark.task, mark.reason))
    if lane.left is not None:
        x = _n(sx.x(lane.left))
        out.append(f'<rect class="absent" x="{x}" y="{_n(top)}" width="{_n(LABEL_W + PLOT_W - sx.x(lane.left))}" '
                   f'height="{_n(height)}"/><line class="left" x1="{x}" x2="{x}" y1="{_n(top)}" '
                   f'y2="{_n(top + height)}"><title>left at {escape(fmt.seconds(lane.left))}: '
                   f'{escape(lane.left_reason or "?")}</title></line>')
    out.append("</g>")
    return "".join(out)


def _cross(x: float, y: float, task: str, reason: str) -> str:
    d = 3.5
    return (f'<path class="fail-mark" data-task="{escape(task)}" d="M{_n(x - d)},{_n(y - d)} L{_n(x + d)},{_n(y + d)} '
            f'M{_n(x - d)},{_n(y + d)} L{_n(x + d)},{_n(y - d)}"><title>{escape(task)}: {escape(reason)}</title></path>')


def _legend(tl: Timeline) -> str:
    chips = [f'<span class="chip"><i style="background:{colour}"></i>{escape(group)}</span>'
             for group, colour in list(tl.colours.items())[:12]]
    if len(tl.colours) > 12:
        chips.append(f'<span class="chip">… {len(tl.colours) - 12} more groups</span>')
    chips.append(f'<span class="chip"><i style="background:{UNGROUPED}"></i>no group</span>')
    return ('<div class="legend">' + "".join(chips) +
            '<span class="chip"><i class="failed"></i>failed attempt ✕</span>'
            '<span class="chip"><i class="retry"></i>retry</span>' +
            "".join(f'<span class="chip"><i class="line {c}"></i>{KIND_LABEL[k]}</span>'
                    for k, c in KIND_CLASS.items()) +
            '<label class="chip"><input type="checkbox" id="show-transfers" checked> transfers</label></div>')


# ---------------------------------------------------------------- cache

def _cache(tl: Timeline) -> str:
    if not tl.cache:
        return '<section id="cache"><h2>Cache use</h2><p class="note">No cache events.</p></section>'
    sx = _Scale(tl.span)
    top, width = AXIS_H, LABEL_W + PLOT_W + RIGHT_W
    height = top + CACHE_H + 6
    peak = max((b for points in tl.cache.values() for _, b in points), default=0) or 1

    def y(b: float) -> float:
        return top + CACHE_H - b / peak * CACHE_H

    out = [(f'<section id="cache"><h2>Cache use</h2><div class="scroll"><svg id="cache-svg" '
            f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">')]
    out += _axis(tl, sx, top, top + CACHE_H)
    out.append(f'<g class="axis"><text x="6" y="{top + 10}">{escape(fmt.size(peak))}</text>'
               f'<text x="6" y="{top + CACHE_H}">0</text></g>')
    order = {lane.worker: i for i, lane in enumerate(tl.lanes)}
    for worker, points in tl.cache.items():
        colour = worker_colour(order.get(worker, len(order)))
        xy = _steps([(sx.x(t), y(b)) for t, b in points], sx.x(tl.span), y(0))
        out.append(f'<polyline class="cache-line" data-cache="{escape(worker)}" stroke="{colour}" points="{xy}">'
                   f'<title>{escape(worker)}: peak {escape(fmt.size(max(b for _, b in points)))}</title></polyline>')
    out.append("</svg></div><div class=\"legend\">" +
               "".join(f'<span class="chip"><i style="background:{worker_colour(order.get(w, len(order)))}"></i>'
                       f'{escape(w)}</span>' for w in tl.cache) + "</div></section>")
    return "".join(out)


def _steps(points: list[tuple[float, float]], x_end: float, y_zero: float) -> str:
    """A step line through the points, at most a few per pixel column (the highest kept, so peaks show)."""
    out: list[tuple[float, float]] = [(LABEL_W, y_zero)]
    column, cx, high, last = None, 0.0, y_zero, y_zero
    for x, yv in points:
        c = int(x)
        if c != column:
            if column is not None:
                out += [(cx, high), (cx, last)]
            out.append((x, last))
            column, cx, high = c, x, yv
        high = min(high, yv)             # smaller y is higher on the screen
        last = yv
    if column is not None:
        out += [(cx, high), (cx, last)]
    out.append((x_end, last))
    return " ".join(f"{_n(x)},{_n(yv)}" for x, yv in out)


# ---------------------------------------------------------------- tables

def _failures(model: Model) -> str:
    if not model.failures:
        return '<section id="failures"><h2>Failures and retries</h2><p class="note">None.</p></section>'
    origin = model.first or 0.0
    rows = []
    for f in model.failures[:FAILURES_SHOWN]:
        task = model.tasks.get(f.task)
        state = task.state if task is not None else None
        then = ("given up" if f.final else
                "retried, then done" if state == "done" else
                "not retried" if state == "failed" and f.attempt is not None and f.attempt >= task.tries else
                "retried")
        rows.append(f'<tr data-task="{escape(f.task)}" class="{"final" if f.final else "attempt"}">'
                    f'<td>{escape(fmt.seconds(f.time - origin))}</td><td>{escape(f.task)}</td>'
                    f'<td>{escape(f.worker or "–")}</td><td>{escape(f.reason)}</td><td>{escape(then)}</td>'
                    f'<td class="msg">{escape((f.message or "")[:300])}</td></tr>')
    note = (f'<p class="note">The first {FAILURES_SHOWN} of {len(model.failures)} failures.</p>'
            if len(model.failures) > FAILURES_SHOWN else "")
    return ('<section id="failures"><h2>Failures and retries</h2>' + note +
            '<div class="wide"><table class="plain"><thead><tr><th>time</th><th>task</th><th>worker</th>'
            '<th>reason</th><th>then</th><th>message</th></tr></thead><tbody>' + "".join(rows) +
            "</tbody></table></div></section>")


def _workers(model: Model) -> str:
    if not model.workers:
        return '<section id="workers"><h2>Workers</h2><p class="note">No workers yet.</p></section>'
    origin = model.first or 0.0
    busy: dict[str, float] = {}
    ran: dict[str, int] = {}
    for task in model.tasks.values():
        for a in task.attempts:
            if a.started is not None and a.finished is not None:
                busy[a.worker] = busy.get(a.worker, 0.0) + max(a.finished - a.started, 0.0)
                ran[a.worker] = ran.get(a.worker, 0) + 1

    def rel(t):
        return fmt.seconds(t - origin) if t is not None else "–"

    rows = []
    for w in model.workers.values():
        left = rel(w.left) + (f" ({w.left_reason})" if w.left is not None else "")
        blocked = ", ".join(f"{rel(b)}–{rel(u)}" for b, u in w.blocklisted) or "–"
        use = model.cache.get(w.id)
        rows.append(f'<tr data-worker="{escape(w.id)}"><td>{escape(w.id)}</td><td>{escape(w.host or "–")}</td>'
                    f'<td>{w.cores if w.cores is not None else "–"}</td>'
                    f'<td>{escape(fmt.size(w.memory * 10**6) if w.memory is not None else "–")}</td>'
                    f'<td>{escape(rel(w.joined))}</td><td>{escape(left)}</td><td>{escape(blocked)}</td>'
                    f'<td>{ran.get(w.id, 0)}</td><td>{escape(fmt.seconds(busy.get(w.id, 0.0)))}</td>'
                    f'<td>{escape(fmt.size(use.peak if use else 0))}</td></tr>')
    return ('<section id="workers"><h2>Workers</h2><div class="wide"><table class="plain"><thead><tr>'
            '<th>worker</th><th>host</th>'
            '<th>cores</th><th>memory</th><th>joined</th><th>left</th><th>blocklisted</th><th>attempts run</th>'
            '<th>busy</th><th>peak cache</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table></div></section>")


def task_rows(model: Model, origin: float) -> list[list]:
    """The task table's rows, in COLUMNS' order (times in seconds from the origin)."""
    rows = []
    for t in model.tasks.values():
        a = t.ran
        run = (a.finished - a.started) if a is not None and a.finished is not None else None
        what = t.what if t.what is None or len(t.what) <= WHAT_MAX else t.what[:WHAT_MAX - 1] + "…"
        reason = t.reason or (t.last.reason if t.last is not None and t.last.outcome == "failed" else None)
        rows.append([t.id, t.kind, what, t.worker, t.group, t.tries,
                     _round(t.submitted - origin if t.submitted is not None else None),
                     _round(a.started - origin if a is not None else None),
                     _round(a.finished - origin if a is not None and a.finished is not None else None),
                     _round(run), _round(t.hop_latency),
                     a.peak_memory if a else None, _round(a.cpu if a else None), a.disk if a else None,
                     t.state, reason])
    return rows


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def _tasks(model: Model, origin: float) -> str:
    payload = {"columns": [{"key": k, "label": label, "type": kind} for k, label, kind in COLUMNS],
               "rows": task_rows(model, origin)}
    # "<" escaped so that no text in a command can close the script element
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
    return ('<section id="tasks"><h2>Tasks</h2><div class="controls"><input type="search" id="task-filter" '
            'placeholder="filter: task, worker, group, outcome…"> <span id="task-pager"></span></div>'
            '<noscript><p class="note">The task table needs JavaScript; the timeline and the tables above '
            'do not.</p></noscript>'
            f'<div class="wide"><table id="task-table" class="plain" data-rows="{len(payload["rows"])}"><thead>'
            f'<tr></tr></thead><tbody></tbody></table></div><script type="application/json" id="task-data">{data}</script></section>')
