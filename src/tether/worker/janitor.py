"""A background thread for deletions that can be slow.

On file systems where freeing blocks is slow (online discard, network file
systems), unlinking a file with data or removing a directory can take far
longer than a short task. Such work is queued here, off the event loop; a
job is a plain call (no Future per job), and the thread wakes only when
there is work.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

log = logging.getLogger("tether.worker")


class Janitor:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tether-janitor", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._jobs.put((fn, args))

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except Exception:  # a failed clean-up must not stop the ones after it
                log.exception("clean-up failed: %s%r", getattr(fn, "__name__", fn), args)
            del job, fn, args

    def shutdown(self) -> None:
        """Finish what is queued, then stop."""
        self._jobs.put(None)
        self._thread.join()
