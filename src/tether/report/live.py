"""The live page: the report of a run while it runs, and its figures for Prometheus.

A small HTTP server in a thread of its own (http.server), so that it works
beside a manager whose asyncio loop runs in another thread and costs that
loop nothing but `add`: an append of the events to a queue. The queue is
read into the model only when someone asks (a browser polling, Prometheus
scraping), in the server's thread, and the view is drawn again only when
the model has changed and not more often than its own drawing time allows,
so a run of 100,000 tasks with a page open does not spend its manager's
time on drawing.

    page = LivePage(host="127.0.0.1", port=0).start()   # port 0: any free port
    page.add(events)           # from any thread: txlog.Events or the tuples the manager logs
    page.url                   # http://127.0.0.1:PORT/
    page.stop()

Routes: `/` the page (it polls `/state.json` and fetches `/view` when the
version changes), `/metrics` in Prometheus's text format. With
`source=PATH` the page follows a transaction log as it grows (a run in
another process); `source=callable` is called for new events at each
refresh.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .html import page_title, render_page, render_view
from .load import ReportError
from .metrics import CONTENT_TYPE, render_metrics
from .model import Model
from .tail import Tail

log = logging.getLogger(__name__)


class LivePage:
    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 source: str | os.PathLike | Callable[[], Iterable] | None = None, *,
                 title: str | None = None, refresh: float = 1.0, min_redraw: float = 0.5,
                 model: Model | None = None):
        self.host, self.port = host, port
        self.model = model if model is not None else Model()
        self.title = title
        self.refresh = refresh              # seconds between the browser's polls
        self.min_redraw = min_redraw        # seconds between two drawings of the view, at least
        self.error: str | None = None       # a followed log that cannot be read, said on the page
        if source is not None and not isinstance(source, (str, os.PathLike)) and not callable(source):
            raise TypeError(f"source must be a path to a transaction log or a callable, not {type(source).__name__}")
        self._tail = Tail(source) if isinstance(source, (str, os.PathLike)) else None
        self._pull = source if callable(source) else None
        self._pending: deque = deque()
        self._lock = threading.Lock()
        self._view: tuple[int, str] | None = None    # (model version, markup)
        self._view_at = 0.0
        self._view_cost = 0.0
        self._state: tuple[int, bytes] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- control

    def start(self) -> LivePage:
        if self._server is not None:
            return self
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server_class((self.host, self.port), _Handler)
        self._server.page = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="tether-live-page", daemon=True)
        self._thread.start()
        log.info("live page at %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> LivePage:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def add(self, events: Iterable) -> None:
        """Queue events (an iterable of them, or one); safe from any thread, and cheap."""
        if isinstance(events, tuple) and len(events) == 5 and isinstance(events[0], (int, float)):
            self._pending.append(events)
        else:
            self._pending.extend(events)

    # -------------------------------------------------------------- content (server threads)

    def _refresh(self) -> None:
        """Take what came since the last request into the model; the caller holds the lock."""
        if self._tail is not None:
            try:
                self.model.extend(self._tail.read())
                self.error = None
            except (OSError, ReportError) as e:
                self.error = str(e)
        if self._pull is not None:
            self.model.extend(self._pull())
        pending, add = self._pending, self.model.add
        for _ in range(len(pending)):
            add(pending.popleft())
        if self.model.run is None and self._tail is not None:
            self.model.run = self._tail.run

    def view(self) -> str:
        with self._lock:
            self._refresh()
            now = time.monotonic()
            stale = self._view is None or self._view[0] != self.model.version
            if stale and (self._view is None or now - self._view_at >= max(self.min_redraw, 4 * self._view_cost)):
                started = time.perf_counter()
                self._view = (self.model.version, render_view(self.model))
                self._view_cost = time.perf_counter() - started
                self._view_at = now
            return self._view[1]

    def page(self) -> str:
        view = self.view()
        return render_page(view, title=self.title or page_title(self.model), live=True, refresh=self.refresh)

    def state(self) -> bytes:
        with self._lock:
            self._refresh()
            if self._state is None or self._state[0] != self.model.version:
                counts = self.model.state_counts()
                body = json.dumps({"version": self.model.version, "tasks": len(self.model.tasks),
                                   "done": counts["done"], "failed": counts["failed"],
                                   "workers": len(self.model.workers), "error": self.error}).encode()
                self._state = (self.model.version, body)
            return self._state[1]

    def metrics(self) -> str:
        with self._lock:
            self._refresh()
            return render_metrics(self.model)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    page: LivePage


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        page = self.server.page
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                status, kind, data = 200, "text/html; charset=utf-8", page.page().encode()
            elif path == "/view":
                status, kind, data = 200, "text/html; charset=utf-8", page.view().encode()
            elif path == "/state.json":
                status, kind, data = 200, "application/json", page.state()
            elif path == "/metrics":
                status, kind, data = 200, CONTENT_TYPE, page.metrics().encode()
            else:
                status, kind, data = 404, "text/plain; charset=utf-8", b"not found: try / or /metrics\n"
        except Exception as e:      # a bug in drawing must not take the server (or the run) down
            log.exception("live page: %s failed", path)
            status, kind, data = 500, "text/plain; charset=utf-8", f"error: {e}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        log.debug("live page: " + format, *args)
