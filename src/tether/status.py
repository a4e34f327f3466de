"""`tether status`'s client: ask a running manager how its run stands.

`query(address, secret)` opens a connection in the "status" role (the
secret proved as every link proves it, TLS where it is due), sends one
StatusRequest and returns the manager's Status (wire/messages.py); the
manager's side is manager/status.py. `as_dict` turns a Status into the
mapping `tether status --json` prints, `render` into the text it prints
otherwise.
"""
from __future__ import annotations

import asyncio
import datetime
import ssl
from typing import Any

from .wire import codec
from .wire import messages as m
from .wire.errors import AuthError, ProtocolError
from .wire.framing import frame, read_frame
from .wire.handshake import connect
from .wire.tls import TlsConfig

DEFAULT_TIMEOUT = 30.0


class StatusError(Exception):
    """The status could not be had; the message says why, for a person."""


class NoManager(StatusError):
    """Nothing at the address answered as a tether manager."""


class NotAuthenticated(StatusError):
    """Something answered, but the two sides do not hold the same secret."""


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


async def _ask(host: str, port: int, secret: bytes, tls: TlsConfig) -> m.Status:
    reader, writer = await connect(host, port, secret, "status", tls)
    try:
        writer.write(frame(codec.encode(m.StatusRequest())))
        await writer.drain()
        reply = codec.decode(await read_frame(reader))
    finally:
        writer.close()
    if type(reply) is not m.Status:
        raise ProtocolError(f"{host}:{port} answered a status request with {type(reply).__name__}")
    return reply


def query(address: str, secret: bytes, tls: TlsConfig | str = "auto", timeout: float = DEFAULT_TIMEOUT) -> m.Status:
    """The Status of the manager at address (HOST:PORT).

    tls: a TlsConfig, or its mode ("auto", "always", "never"). Raises
    NotAuthenticated when the secrets differ, NoManager when nothing there
    answers as a tether manager (nothing listening, no such host, another
    program, no answer within timeout), ValueError for an address that is not
    HOST:PORT.
    """
    host, port = _split(address)
    config = tls if isinstance(tls, TlsConfig) else TlsConfig(secret, tls)
    try:
        return asyncio.run(asyncio.wait_for(_ask(host, port, secret, config), timeout))
    except AuthError as e:
        raise NotAuthenticated(f"could not authenticate to {address}: {e}") from None
    except ssl.SSLError as e:
        raise NotAuthenticated(f"could not authenticate to {address}: TLS failed ({e.reason or e})") from None
    except asyncio.IncompleteReadError:
        raise NoManager(f"no manager at {address}: the connection closed before the status came") from None
    except asyncio.TimeoutError:
        raise NoManager(f"no manager at {address}: no answer within {timeout:g} s") from None
    except ProtocolError as e:
        raise NoManager(f"no manager at {address}: {e}") from None
    except OSError as e:
        raise NoManager(f"no manager at {address}: {e}") from None


# ---------------------------------------------------------------- presenting it


def as_dict(status: m.Status) -> dict[str, Any]:
    """The Status as plain data (what `tether status --json` prints)."""
    tasks = dict(status.tasks)
    tasks["total"] = sum(n for _, n in status.tasks)
    workers = [{"id": w.id, "host": w.host, "cores": w.cores, "cores_used": w.cores_used, "running": w.running,
                "queued": w.queued, "assigned": w.assigned, "cache_bytes": w.cache, "cache_peak_bytes": w.cache_peak,
                "joined": w.joined} for w in status.workers]
    return {
        "run": status.run,
        "started": status.started,
        "uptime_s": max(0.0, status.now - status.started),
        "workers": workers,
        "cores": {"total": sum(w.cores for w in status.workers),
                  "used": sum(w.cores_used for w in status.workers)},
        "tasks": tasks,
        "groups": {"count": status.groups, "tasks": status.grouped},
        "bytes": {"manager_to_worker": status.bytes_manager_to_worker,
                  "worker_to_manager": status.bytes_worker_to_manager,
                  "worker_to_worker": status.bytes_worker_to_worker,
                  "arguments": status.bytes_arguments},
        "cache_bytes": sum(w.cache for w in status.workers),
        "broken": status.broken,
    }


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{hours:d}:{minutes:02d}:{seconds:02d}"
    return f"{days}d {text}" if days else text


def render(status: m.Status, address: str, console=None) -> None:
    """Print the Status as tables (rich; plain text when the output is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:   # no markup: worker names and messages are shown as they are
        console = Console(markup=False)
        if not console.is_terminal:   # piped or captured: wide enough that nothing is folded
            console = Console(markup=False, width=max(console.width, 160))
    d = as_dict(status)
    started = datetime.datetime.fromtimestamp(status.started).astimezone().isoformat(timespec="seconds")
    console.print(f"manager {address}  run {d['run'] or '-'}  up {_duration(d['uptime_s'])} (since {started})")
    if status.broken is not None:
        console.print(f"broken: {status.broken}", style="red")

    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_column(style="dim")
    summary.add_row("workers", str(len(status.workers)))
    summary.add_row("cores", f"{d['cores']['used']} used of {d['cores']['total']}")
    queued = sum(w.queued for w in status.workers)
    for state, n in status.tasks:
        note = f"{queued} of them queued behind others on their workers" if state == "running" and queued else ""
        summary.add_row(f"tasks {state}", str(n), note)
    summary.add_row("tasks in all", str(d["tasks"]["total"]))
    summary.add_row("groups", f"{status.groups} ({status.grouped} tasks)")
    summary.add_row("manager -> worker", _size(status.bytes_manager_to_worker))
    summary.add_row("worker -> manager", _size(status.bytes_worker_to_manager))
    summary.add_row("worker -> worker", _size(status.bytes_worker_to_worker))
    summary.add_row("arguments", _size(status.bytes_arguments))
    summary.add_row("cache", _size(d["cache_bytes"]))
    console.print(summary)

    if not status.workers:
        console.print("no workers connected")
        return
    table = Table(title="workers", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("host", no_wrap=True)
    for name in ("cores", "used", "running", "queued", "assigned", "cache", "cache peak", "up"):
        table.add_column(name, justify="right", no_wrap=True)
    for w in status.workers:
        table.add_row(w.id, w.host, str(w.cores), str(w.cores_used), str(w.running), str(w.queued), str(w.assigned),
                      _size(w.cache), _size(w.cache_peak), _duration(max(0.0, status.now - w.joined)))
    console.print(table)
