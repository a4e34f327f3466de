"""What `tether report` does, so that cli.py only declares it: write the files, or serve the live page."""
from __future__ import annotations

import time
from pathlib import Path

import click

from . import format as fmt
from .html import render_html
from .load import LOG_NAME, ReportError, find_log, load, read_header


def write(run: Path, output: Path, png: Path | None) -> None:
    model = load(run)
    if png is not None:
        from .png import render_png
        render_png(model, png)              # first: a missing matplotlib is said before anything is written
    output.write_text(render_html(model), encoding="utf-8")
    s = model.summary()
    click.echo(f"{output}: {s.tasks} tasks ({s.states['done']} done, {s.states['failed']} failed) on "
               f"{fmt.count(s.workers, 'worker')}, makespan {fmt.seconds(s.makespan)}" +
               (f"; {png}" if png is not None else ""))


def serve(run: Path, address: str) -> None:
    """The live page following the log as the run writes it, until interrupted."""
    from .live import LivePage

    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"expected [HOST:]PORT, got {address!r}", param_hint="--serve")
    if run.is_dir():
        log = run / LOG_NAME                # a run just starting may not have written it yet
    else:
        log = find_log(run)
        read_header(log)
    page = LivePage(host=host.strip("[]") or "127.0.0.1", port=int(port), source=log).start()
    click.echo(f"following {log} at {page.url} (metrics at {page.url}metrics); Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        page.stop()


def report_command(run: Path, output: Path, png: Path | None, address: str | None) -> int:
    try:
        if address is not None:
            serve(run, address)
        else:
            write(run, output, png)
    except ReportError as e:
        click.echo(f"tether report: {e}", err=True)
        return 2
    except OSError as e:
        click.echo(f"tether report: {e}", err=True)
        return 2
    return 0
