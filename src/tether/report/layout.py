"""Where things go on the timeline: lanes, sub-lanes, bars, marks, colours.

The HTML and the PNG draw the same picture, so the decisions about it are
made once, here, in seconds and lane numbers rather than pixels. A worker
with several cores runs tasks side by side; its lane is split into as many
sub-lanes as it ever had tasks running at once, and each attempt takes the
lowest free one (a group's next member keeps its predecessor's sub-lane when
it is free, so a chain reads as one line).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

from .model import Model

UNGROUPED = "#8a94a6"


@dataclass
class Bar:
    task: str
    attempt: int
    worker: str
    group: str | None
    start: float            # seconds from the timeline's origin
    end: float
    outcome: str            # ran, failed
    exit_code: int | None
    reason: str | None
    retry: bool             # not the task's first attempt
    sublane: int = 0


@dataclass
class Mark:
    """A failure that has no bar to sit on (the attempt never started as far as the log says)."""
    time: float
    task: str
    worker: str
    reason: str


@dataclass
class Lane:
    worker: str
    host: str | None
    cores: int | None
    sublanes: int
    joined: float | None
    left: float | None
    left_reason: str | None
    blocklisted: list[tuple[float, float]]
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


@dataclass
class Arrow:
    time: float
    file: str
    source: str
    dest: str
    bytes: int
    kind: str


@dataclass
class Timeline:
    origin: float           # epoch seconds of time 0
    span: float             # seconds shown
    lanes: list[Lane]
    arrows: list[Arrow]
    cache: dict[str, list[tuple[float, int]]]   # worker -> (seconds, bytes) steps
    colours: dict[str, str]                      # group -> colour


def group_colours(model: Model) -> dict[str, str]:
    """A colour for each group, in the order groups first appear; neighbours get distant hues."""
    colours: dict[str, str] = {}
    for task in model.tasks.values():
        for a in task.attempts:
            if a.group is not None and a.group not in colours:
                colours[a.group] = _colour(len(colours))
    return colours


def worker_colour(index: int) -> str:
    return _colour(index, lightness=0.42, saturation=0.65)


def _colour(index: int, lightness: float = 0.58, saturation: float = 0.55) -> str:
    hue = (index * 0.618033988749895 + 0.08) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def timeline(model: Model) -> Timeline:
    origin = model.first if model.first is not None else 0.0
    end = model.last if model.last is not None else origin
    lanes: dict[str, Lane] = {}
    for w in model.workers.values():
        lanes[w.id] = Lane(w.id, w.host, w.cores, 1, _rel(w.joined, origin), _rel(w.left, origin), w.left_reason,
                           [(b - origin, (u if u is not None else end) - origin) for b, u in w.blocklisted])
    for task in model.tasks.values():
        for index, a in enumerate(task.attempts):
            if a.outcome == "open":
                continue
            lane = lanes[a.worker]
            if a.started is None:
                lane.marks.append(Mark((a.failed_at or a.assigned) - origin, task.id, a.worker, a.reason or "unknown"))
                continue
            finished = a.finished if a.finished is not None else (a.failed_at or a.started)
            lane.bars.append(Bar(task.id, a.number, a.worker, a.group, a.started - origin,
                                 max(finished, a.started) - origin, a.outcome, a.exit_code, a.reason,
                                 retry=index > 0))
    for lane in lanes.values():
        lane.sublanes = _assign_sublanes(lane.bars)
    arrows = [Arrow(t.time - origin, t.file, t.source, t.dest, t.bytes, t.kind) for t in model.transfers]
    cache = {w: [(t - origin, b) for t, b in use.points] for w, use in model.cache.items()}
    return Timeline(origin, max(end - origin, 0.0), list(lanes.values()), arrows, cache, group_colours(model))


def _rel(t: float | None, origin: float) -> float | None:
    return None if t is None else t - origin


def _assign_sublanes(bars: list[Bar]) -> int:
    """Give each bar the lowest sub-lane free at its start; returns how many sub-lanes there are."""
    bars.sort(key=lambda b: (b.start, b.end))
    ends: list[float] = []              # when each sub-lane's last bar ends
    group_lane: dict[str, int] = {}
    for bar in bars:
        chosen = group_lane.get(bar.group) if bar.group is not None else None
        if chosen is None or ends[chosen] > bar.start:
            chosen = next((i for i, e in enumerate(ends) if e <= bar.start), None)
        if chosen is None:
            chosen = len(ends)
            ends.append(bar.end)
        ends[chosen] = bar.end
        bar.sublane = chosen
        if bar.group is not None:
            group_lane[bar.group] = chosen
    return max(len(ends), 1)


def nice_ticks(span: float, count: int = 8) -> list[float]:
    """Round tick positions (1, 2, 5 times a power of ten) covering 0..span."""
    if span <= 0:
        return [0.0]
    import math
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step + 1e-9) + 1)]
