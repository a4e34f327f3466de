"""An asyncio event loop in a background thread, for the manager.

The user's threads never touch the loop's state: they hand it work with
call() (fire and forget, batched) or run() (wait for a coroutine's result).

call() takes no lock: it is called from weakref finalizers (an Executor's
result released when its Future is collected), which run wherever the
garbage collector runs, the loop thread included, in the middle of a
drain. A lock held there by the same thread would never be released.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from typing import Any, Callable, Coroutine


class LoopThread:
    def __init__(self, name: str = "tether-manager"):
        self.loop = asyncio.new_event_loop()
        self._pending: deque[Callable[[], None]] = deque()   # append and popleft are atomic
        self._drain_scheduled = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # whatever is still pending is cancelled and allowed to finish before the loop closes
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn in the loop soon. Calls made close together wake the loop once."""
        self._pending.append(fn)
        if not self._drain_scheduled:   # a race here costs at most one extra, empty drain
            self._drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        # the flag is cleared before taking calls, so a call appended after the last
        # popleft below sees it cleared and wakes the loop again: none is left behind
        self._drain_scheduled = False
        pending = self._pending
        try:
            while pending:
                pending.popleft()()
        finally:   # a call raised: the ones after it still run, in a drain of their own
            if pending and not self._drain_scheduled:
                self._drain_scheduled = True
                self.loop.call_soon(self._drain)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run a coroutine in the loop and wait for its result from this thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @property
    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
