"""The timeline and the cache use as a PNG, for papers and slides (matplotlib, drawn off screen).

The same layout as the HTML (layout.py): a lane per worker, a sub-lane per
task running at once, bars coloured by group, failures crossed out, transfers
as thin vertical strokes; the cache use of each worker below, on the same
time axis.
"""
from __future__ import annotations

import os
from pathlib import Path

from .layout import UNGROUPED, timeline, worker_colour
from .load import ReportError
from .model import MANAGER, Model

KIND_COLOUR = {"manager_to_worker": "#2f6fb3", "worker_to_manager": "#2e8b57", "worker_to_worker": "#d9822b"}
FAIL = "#c0392b"


def render_png(model: Model, path: str | os.PathLike, *, transfers: bool = True, dpi: int = 150) -> Path:
    """Write the picture to `path`; ReportError if matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise ReportError("a PNG needs matplotlib, which is not installed: pip install matplotlib "
                          "(or install tether with its 'bench' extra)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    tl = timeline(model)
    rows = sum(lane.sublanes for lane in tl.lanes) + 1
    timeline_h = min(max(1.6, 0.16 * rows + 0.8), 30.0)
    has_cache = bool(tl.cache)
    fig, axes = plt.subplots(2 if has_cache else 1, 1, sharex=True, squeeze=False,
                             figsize=(11, timeline_h + (2.2 if has_cache else 0)),
                             gridspec_kw={"height_ratios": [timeline_h, 2.2] if has_cache else [1]})
    ax = axes[0][0]
    centre = {MANAGER: 0.5}
    ticks, labels = [0.5], ["manager"]
    y = 1.3
    plain, failed, retried, crosses = ([], []), ([], []), [], []    # (rectangles, colours); outlines
    for lane in tl.lanes:
        top = y
        for bar in lane.bars:
            x0, x1 = bar.start, bar.start + max(bar.end - bar.start, tl.span * 1e-4)
            y0, y1 = top + bar.sublane + 0.1, top + bar.sublane + 0.9
            box = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
            colour = tl.colours.get(bar.group, UNGROUPED) if bar.group is not None else UNGROUPED
            target = failed if bar.outcome == "failed" else plain
            target[0].append(box)
            target[1].append(colour)
            if bar.retry:
                retried.append(box)
            if bar.outcome == "failed":
                crosses.append((x1, (y0 + y1) / 2))
        crosses += [(mark.time, top + lane.sublanes / 2) for mark in lane.marks]
        if lane.left is not None:
            ax.plot([lane.left, lane.left], [top, top + lane.sublanes], color="#1d2330", linewidth=2)
        centre[lane.worker] = top + lane.sublanes / 2
        ticks.append(top + lane.sublanes / 2)
        cores = f" ({lane.cores} cores)" if lane.cores and lane.cores > 1 else ""
        labels.append(f"{lane.worker}{cores}")
        y = top + lane.sublanes + 0.3
    ax.add_collection(PolyCollection(plain[0], facecolors=plain[1], edgecolors="none"))
    if failed[0]:
        ax.add_collection(PolyCollection(failed[0], facecolors=failed[1], edgecolors=FAIL, linewidths=1.0,
                                         hatch="///", alpha=0.8))
    if retried:
        ax.add_collection(PolyCollection(retried, facecolors="none", edgecolors="#1d2330", linewidths=0.8,
                                         linestyles="--"))
    if crosses:
        ax.plot([c[0] for c in crosses], [c[1] for c in crosses], "x", color=FAIL, markersize=6, mew=1.5)
    if transfers and tl.arrows:
        for kind, colour in KIND_COLOUR.items():
            segments = [((a.time, centre[a.source]), (a.time, centre[a.dest])) for a in tl.arrows
                        if a.kind == kind and a.source in centre and a.dest in centre]
            if segments:
                ax.add_collection(LineCollection(segments, colors=colour, linewidths=0.6, alpha=0.6))
    ax.set_ylim(y, 0)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, (tl.span or 1) * 1.01)
    ax.set_title(f"tether run {model.run}" if model.run else "tether run", fontsize=10)
    handles = [Patch(facecolor=c, label=g) for g, c in list(tl.colours.items())[:8]]
    handles += [Patch(facecolor=UNGROUPED, label="no group"),
                Patch(facecolor="white", edgecolor=FAIL, hatch="///", label="failed attempt")]
    handles += [Line2D([], [], color=c, label=k.replace("_", " ")) for k, c in KIND_COLOUR.items()
                if transfers and any(a.kind == k for a in tl.arrows)]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    if has_cache:
        cx = axes[1][0]
        order = {lane.worker: i for i, lane in enumerate(tl.lanes)}
        peak = max((b for points in tl.cache.values() for _, b in points), default=0)
        scale, unit = next(((10.0 ** p, u) for p, u in ((9, "GB"), (6, "MB"), (3, "kB")) if peak >= 10 ** p),
                           (1.0, "bytes"))
        for worker, points in tl.cache.items():
            xs = [0.0] + [t for t, _ in points] + [tl.span]
            ys = [0.0] + [b / scale for _, b in points]
            ys.append(ys[-1])
            cx.step(xs, ys, where="post", color=worker_colour(order.get(worker, len(order))), label=worker,
                    linewidth=1.2)
        cx.set_ylabel(f"cache ({unit})", fontsize=8)
        cx.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        cx.set_ylim(bottom=0)
    axes[-1][0].set_xlabel("seconds since the first event", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
