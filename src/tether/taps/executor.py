"""The concurrent.futures Executor that TaPS's engine drives: tether underneath, values left on the workers.

TaPS wraps each task so that it returns a TaskResult(value, info) and
calls `future.result().info` in a done callback for every task. Given
tether's futures as they are, that would fetch every value to the
manager. Here the tether Executor runs with a summarize function that
takes the TaskResult's execution record on the worker; the Future given
to TaPS resolves, at completion, to a RemoteTaskResult holding that record
and the tether future, and fetches the value only when `.value` is read.
"""
from __future__ import annotations

import concurrent.futures
import os
import weakref
from functools import partial
from typing import Any, Callable

from taps.engine.task import TaskResult

from ..executor import Executor, ExecutorFuture
from ..refs import replace


def execution_info(value: Any) -> Any:
    """Runs on the worker for each result: a TaskResult's execution record, else None."""
    return value.info if isinstance(value, TaskResult) else None


def warm_interpreter(modules: tuple[str, ...]) -> int:
    """Runs on the worker: import what TaPS's tasks need, before the application's clock starts."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    return os.getpid()


class RemoteTaskResult(TaskResult):
    """A TaskResult whose execution record is here and whose value stays on its worker until read."""

    def __init__(self, future: ExecutorFuture, info: Any):
        self._future = future
        self.info = info

    @property
    def value(self) -> Any:
        return self._future.result().value

    def __reduce__(self):
        return (TaskResult, (self.value, self.info))


class TapsFuture(concurrent.futures.Future):
    """Settled when its tether future is, without fetching the value.

    Passed to another submit of the same TapsExecutor, it stands for its
    tether future: the dependency is resolved on the workers.
    """

    def __init__(self, inner: ExecutorFuture, pending: set):
        super().__init__()
        self.inner = inner
        self._pending = pending

    def cancel(self) -> bool:
        return self.inner.cancel() and super().cancel()

    def result(self, timeout: float | None = None) -> Any:
        value = super().result(timeout)
        if value is _PLAIN:   # not a TaPS task: the value itself was asked for
            return self.inner.result(timeout)
        return value

    def _settle(self, inner: ExecutorFuture) -> None:
        self._pending.discard(self)
        if inner.cancelled():
            super().cancel()
            return
        error = inner.exception()
        if not self.set_running_or_notify_cancel():
            return
        if error is not None:
            self.set_exception(error)
        elif inner.summary is None:
            self.set_result(_PLAIN)
        else:
            self.set_result(RemoteTaskResult(inner, inner.summary))


_PLAIN = object()


class TapsExecutor(concurrent.futures.Executor):
    """The tether Executor behind TaPS's engine (see the module's docstring)."""

    def __init__(self, workers: int | None = None, *, warm_modules: tuple[str, ...] = ("taps.engine",),
                 wait_for_workers: int | None = None, **options: Any):
        # every interpreter imports them as it starts, a successor of one that died too
        self.executor = Executor(workers, summarize=execution_info, preload=tuple(warm_modules), **options)
        self.last_stats: dict[str, Any] | None = None
        self.on_shutdown: Callable[[dict[str, Any]], None] | None = None   # given the run's figures
        self._pending: set[TapsFuture] = set()
        try:
            self.executor.manager.wait_for_workers(wait_for_workers)
            if warm_modules:
                self.warm(warm_modules)
        except BaseException:
            self.executor.shutdown(wait=False, cancel_futures=True)
            raise

    def warm(self, modules: tuple[str, ...], rounds: int = 5) -> set[int]:
        """Start every worker's interpreters and import modules in them; the pids seen."""
        links = list(self.executor.manager.engine.links.values())
        slots = sum(link.cores for link in links)
        seen: set[int] = set()
        for _ in range(rounds):
            seen.update(self.executor.map(warm_interpreter, [modules] * slots))
            if len(seen) >= slots:
                break
        return seen

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> TapsFuture:
        args, kwargs = replace(args, _inner), replace(kwargs, _inner)
        outer = TapsFuture(self.executor.submit(fn, *args, **kwargs), self._pending)
        self._pending.add(outer)
        # through a weak reference: the inner future keeps its callbacks, and a cycle through
        # them would leave both futures (and the result on its worker) to the cyclic GC
        outer.inner.add_done_callback(partial(_settle, weakref.ref(outer)))
        return outer

    def stats(self) -> dict[str, Any]:
        return self.executor.stats() if self.last_stats is None else self.last_stats

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self.last_stats is None:   # the figures of the whole run, kept for after the manager closes
            if wait:
                concurrent.futures.wait(list(self._pending))
            self.last_stats = self.executor.stats()
            if self.on_shutdown is not None:
                self.on_shutdown(self.last_stats)
        self.executor.shutdown(wait, cancel_futures=cancel_futures)


def _settle(outer_ref: weakref.ref, inner: ExecutorFuture) -> None:
    outer = outer_ref()
    if outer is not None:
        outer._settle(inner)


def _inner(value: Any) -> ExecutorFuture | None:
    return value.inner if isinstance(value, TapsFuture) else None
