"""A concurrent.futures Executor whose results stay on the workers.

    with Executor(workers=2) as ex:
        a = ex.submit(load, "x")
        b = ex.submit(clean, a)          # a future as an argument: resolved on the workers
        print(b.result())                # only now does b's value travel here

Each call's result is, to the scheduler core, a temp file made by that call
(named res-<run>-<task>): so a future passed to another call is a
dependency resolved on the workers, a chain of futures is a group run on
one worker, results move worker to worker only when they must, and a result
lost with a worker is made again from its lineage. The result stays while
its Future is alive here or a pending call needs it (the Future keeps it,
as a kept temp; when the Future is garbage-collected the result is
released), in the memory of the interpreter that made it when small, in
the worker's cache when large.

Futures are settled from a thread of the Executor's own, so done callbacks
may call result() (which fetches the value) without blocking the manager.
Calls run in their interpreter's working directory on the worker (a scratch
directory of the worker's), as calls to a process pool do, not in a sandbox
of their own.

A small result (its pickle at most `small_result` bytes, 64 KiB by
default) also comes back with the call's completion, so that `result()`
needs no round trip; it stays on its worker all the same, for the calls
that read it there. 0 keeps every value away.

As with a process pool, `result()` works after `shutdown(wait=True)` (and
after a `with` block): before the workers go, the values still on them of
the futures the program still holds are brought here, in one batch. The
Executor holds those futures only weakly, so one the program dropped is
neither kept alive nor fetched. `shutdown(wait=False)` brings nothing: a
value left on its worker is lost with it.

Each result() of a value left on its worker is a round trip to that
worker. To bring many at once, `ex.gather(futures)` (their values, in
order), `ex.as_completed(futures)` (the futures that ended together have
their values brought in one batch before they are yielded) and
`ex.fetch_values(futures)` run every transfer at the same time.

`summarize`, when given, is called on the worker with each result that
stays there (and then no value comes back with the completion); its return, which should be small, comes back with the call's
completion as `future.summary`. A front end that must see a little of every
result (TaPS reads each result's execution record) gets it without the
value leaving its worker.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Iterator

from . import pickling, spill
from .contexts import Context, as_context
from .core import Complete, Fail, FileReleased, FileSpec, TaskCancelled, TaskSubmitted
from .manager.engine import TaskRecord
from .manager.manager import CLOSED, CLOSED_WITHOUT_WORKERS, Manager
from .memo.fingerprint import arguments_digest, digest
from .manager import results
from .refs import ResultRef, replace
from .task import DependencyFailed, _Spec
from .wire.messages import Report, TaskSpec

_REMOTE = object()   # the value is on a worker: fetched by result()
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})

DEFAULT_SPILL = 1 << 20   # results larger than this (pickled) go to the worker's cache, not memory
DEFAULT_SMALL = 64 << 10  # results up to this size (pickled) also come back with the completion


class ExecutorFuture(concurrent.futures.Future):
    """A Future whose value stays on a worker until result() asks for it.

    `summary` holds what the Executor's summarize function made of the value
    on its worker (None without one), set before the Future is done.
    """

    def __init__(self, executor: "Executor", task_id: int, result_name: str | None):
        super().__init__()
        self._executor = executor
        self.task_id = task_id
        self.result_name = result_name
        self.summary: Any = None

    def result(self, timeout: float | None = None) -> Any:
        started = time.monotonic()
        try:
            value = super().result(timeout)
        except TimeoutError:   # said plainly: are there workers at all?
            raise self._executor.manager._timeout_error(self.task_id, timeout) from None
        if value is _REMOTE:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            value = self._executor._fetch(self, left)
            with self._condition:
                self._result = value
        return value

    def _on_worker(self) -> bool:
        """Done, with its value still on its worker (result() would fetch it)."""
        with self._condition:
            return self._result is _REMOTE   # set only by a success whose value stayed there

    def _fetched(self, value: Any) -> None:
        with self._condition:
            if self._result is _REMOTE:
                self._result = value

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled:
            # cancelled for good: no result will be delivered, so waiters are told now
            # (concurrent.futures.wait counts a cancelled future as done only once notified)
            self.set_running_or_notify_cancel()
            self._executor._cancelled(self.task_id)
        return cancelled


class Executor(concurrent.futures.Executor):
    """Takes the options of Manager (workers, group_tasks, memo, ...), plus spill_threshold and
    small_result in bytes, summarize (see the module's docstring) and setup: a tether.Context or a
    setup function, the context of every call (set up once per worker interpreter, read in a call
    with tether.context()). With memo, every call is memoized (see the README's "Memoization")."""

    def __init__(self, workers: int | None = None, *, spill_threshold: int = DEFAULT_SPILL,
                 small_result: int = DEFAULT_SMALL, summarize: Callable[[Any], Any] | None = None,
                 setup: Context | Callable[[], Any] | None = None, **manager_options: Any):
        if isinstance(small_result, bool) or not isinstance(small_result, int) or small_result < 0:
            raise ValueError(f"small_result must be a number of bytes, 0 or more, got {small_result!r}")
        self._context = as_context(setup, "setup")
        # pickled as a task's function is: a traceback from it names its file and shows its lines
        self._summary = None if summarize is None else pickling.dumps_function(summarize)
        self._small = small_result if summarize is None else 0
        self.manager = Manager(workers, **manager_options)
        self.spill_threshold = spill_threshold
        self._run = self.manager.run
        self._pending: set[ExecutorFuture] = set()
        self._pending_lock = threading.Lock()
        # done futures whose value stayed on a worker, held weakly: those still alive at shutdown are fetched
        self._remote: weakref.WeakSet[ExecutorFuture] = weakref.WeakSet()
        self._waited = False   # shutdown waited, and brought the values it could
        self._errors: dict[int, BaseException] = {}
        self._settle: queue.SimpleQueue = queue.SimpleQueue()
        self._shutdown = False
        self._settler = threading.Thread(target=self._settle_loop, name="tether-executor", daemon=True)
        self._settler.start()

    # ------------------------------------------------------------ submitting

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> ExecutorFuture:
        return self._submit(fn, args, kwargs, keep=True)

    def map(self, fn: Callable, *iterables: Iterable, timeout: float | None = None,
            chunksize: int = 1) -> Iterator:
        """Like concurrent.futures: every call is submitted now; values come back in order.

        The values are wanted here, so each comes back with its call's
        completion instead of staying on its worker. chunksize > 1 sends the
        calls in tasks of that many, run one after another on a worker, as
        ProcessPoolExecutor.map does: far fewer tasks for many short calls
        (an exception then fails its whole chunk, and is raised when the
        iteration reaches that chunk's first value).
        """
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be a whole number of at least 1, not {chunksize!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        if chunksize == 1:
            futures = [self._submit(fn, args, {}, keep=False) for args in zip(*iterables)]
        else:
            calls = list(zip(*iterables))
            futures = [self._submit(_call_chunk, (fn, calls[i:i + chunksize]), {}, keep=False)
                       for i in range(0, len(calls), chunksize)]

        def values():
            try:
                futures.reverse()
                while futures:
                    left = None if deadline is None else deadline - time.monotonic()
                    if chunksize == 1:
                        yield futures.pop().result(left)
                    else:
                        yield from futures.pop().result(left)
            finally:
                for f in futures:
                    f.cancel()

        return values()

    def gather(self, futures: Iterable[ExecutorFuture], timeout: float | None = None) -> list:
        """The values of these futures, in order: waits for them, then brings every value still on a
        worker in one batch (all transfers at once) instead of a round trip for each result()."""
        futures = list(futures)
        deadline = None if timeout is None else time.monotonic() + timeout
        done, pending = concurrent.futures.wait(futures, timeout)
        if pending:
            raise TimeoutError(f"{len(pending)} of {len(futures)} calls did not end within {timeout} s")
        self.fetch_values(futures, None if deadline is None else max(0.0, deadline - time.monotonic()))
        return [f.result(0) for f in futures]

    def as_completed(self, futures: Iterable[ExecutorFuture], timeout: float | None = None
                     ) -> Iterator[ExecutorFuture]:
        """concurrent.futures.as_completed, with the values of the futures that ended together
        brought here in one batch before they are yielded: result() then needs no round trip."""
        deadline = None if timeout is None else time.monotonic() + timeout
        left = set(futures)
        while left:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, left = concurrent.futures.wait(left, wait, return_when=concurrent.futures.FIRST_COMPLETED)
            if not done:
                raise TimeoutError(f"{len(left)} calls did not end within {timeout} s")
            self.fetch_values(done, None if deadline is None else max(0.0, deadline - time.monotonic()))
            yield from done

    def fetch_values(self, futures: Iterable[ExecutorFuture], timeout: float | None = None) -> int:
        """Bring here, at once, the values of the futures that are done and whose values are still on
        their workers (a value that cannot come is left: its result() raises why). Returns how many
        came."""
        remote = [f for f in futures if isinstance(f, ExecutorFuture) and f._on_worker()]
        if not remote:
            return 0
        m = self.manager
        if m._closed:
            return 0

        async def want_all():
            return await asyncio.gather(*(m.engine.want(f.result_name) for f in remote), return_exceptions=True)

        try:
            datas = m._loop.run(want_all(), timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the values of {len(remote)} calls did not arrive within {timeout} s") from None
        return self._unpickle_into(remote, datas)

    def _unpickle_into(self, remote: list[ExecutorFuture], datas: list) -> int:
        """Settle each future's value from its bytes; a value that failed is left for result() to raise."""
        came = 0
        for f, data in zip(remote, datas):
            if isinstance(data, BaseException):
                continue
            try:
                f._fetched(spill.loads(data))
                came += 1
            except Exception:
                continue   # result() fetches it again and raises what unpickling it raises
        return came

    def _submit(self, fn: Callable, args: tuple, kwargs: dict, keep: bool) -> ExecutorFuture:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        m = self.manager
        deps: dict[str, ExecutorFuture] = {}

        def swap(value):
            if isinstance(value, ExecutorFuture):
                if value._executor is not self:
                    raise ValueError("a future of another Executor was passed as an argument")
                if value.result_name is None:   # a map future: its value is here, not on a worker
                    return value.result()
                deps[value.result_name] = value
                return ResultRef(value.result_name)
            return None

        given = (args, kwargs)
        if kwargs or not all(type(a) in _PLAIN for a in args):   # no future can hide in plain values
            args, kwargs = replace(args, swap), replace(kwargs, swap)
        task_id = next(_Spec._ids)
        result_name = f"res-{self._run}-{task_id}" if keep else None
        fn_name, fn_spec = m._function_file(fn, task_id)
        data, buffers = m._arguments(task_id, args[0] if fn is _call_chunk else fn, args, kwargs)
        context = None
        if self._context is not None:
            context, context_spec = m._context_file(self._context, task_id, args[0] if fn is _call_chunk else fn)
        spec = TaskSpec(task_id, "py", fn=fn_name, args=data, refs=(*deps, *buffers), scratch=True,
                        result=result_name, spill=None if result_name is None else self.spill_threshold,
                        summary=None if result_name is None else self._summary,
                        inline=0 if result_name is None else self._small, context=context)
        inputs: list[tuple[str | None, str]] = [(None, name) for name in deps]
        in_specs = [FileSpec(name) for name in deps]
        out_specs: tuple[FileSpec, ...] = ()
        if result_name is not None:
            out_specs = (FileSpec(result_name, keep=True),)
        inputs.append((None, fn_name))
        in_specs.append(fn_spec)
        if context is not None:
            inputs.append((None, context))
            in_specs.append(context_spec)
        for name, size in buffers.items():   # large arguments, sent as buffers: see Manager._arguments
            inputs.append((None, name))
            in_specs.append(FileSpec(name, size, source=True))
        future = ExecutorFuture(self, task_id, result_name)
        record = TaskRecord(task_id, future, True, spec, inputs, deliver=self._deliver, label=_name_of(args[0] if fn is _call_chunk else fn))
        if buffers:
            m._hold_buffers(record, tuple(buffers))
        hit = False
        memo = m._memo_for(None)
        if memo is not None:
            parts = self._memo_parts(memo, fn, fn_name, given, deps)
            outputs = [("", result_name, None)] if result_name is not None else []
            out_specs, hit = m._memo_decide(memo, record, "call", parts, inputs, outputs, list(out_specs))
        event = TaskSubmitted(task_id, tuple(in_specs), tuple(out_specs), memo=hit)
        with self._pending_lock:
            self._pending.add(future)
        if result_name is not None:
            weakref.finalize(future, self._release, result_name)
        try:
            m._enqueue(record, event)
        except BaseException:   # never handed over (the manager broke or closed): nothing will settle it
            with self._pending_lock:
                self._pending.discard(future)
            raise
        return future

    def _memo_parts(self, memo, fn: Callable, fn_name: str, given: tuple, deps: dict) -> dict:
        """What besides its inputs decides a call's result: its function, its arguments, the summary
        function. A future among the arguments counts by its call's fingerprint, not by its name in
        this run (as the pickle sent to the worker names it); a map's future, by its value."""
        def by_fingerprint(value):
            if isinstance(value, ExecutorFuture):
                if value.result_name is None:
                    return value.result()
                return ("tether-result", memo.fingerprint_of(value.result_name))
            return None

        if deps or given[1] or not all(type(a) in _PLAIN for a in given[0]):
            given = replace(given, by_fingerprint)
        parts = {"function": memo.identity(fn, fn_name), "args": arguments_digest(given),
                 "summary": digest(self._summary) if self._summary is not None else None}
        if fn is _call_chunk:   # a map's chunk: the function mapped is an argument, known here by its code too
            parts["mapped"] = memo.identity(given[0][0], "")
        return parts

    # ------------------------------------------------------------ settling futures

    def _deliver(self, rec: TaskRecord, outcome: Complete | Fail) -> None:
        """Called in the manager's loop thread: hand the outcome to the settling thread."""
        self._settle.put((rec.future, rec.id, outcome, rec.report, rec.worker))

    def _settle_loop(self) -> None:
        while True:
            item = self._settle.get()
            if item is None:
                return
            if isinstance(item, threading.Event):   # a barrier: everything delivered before it is settled
                item.set()
                continue
            self._settle_item(*item)
            del item   # hold no Future while waiting: a dropped Future must be able to die

    def _settle_item(self, future: ExecutorFuture, tid: int, outcome, report, worker) -> None:
        try:
            self._settle_one(future, tid, outcome, report or Report(), worker)
        finally:
            with self._pending_lock:
                self._pending.discard(future)

    def _settle_one(self, future: ExecutorFuture, tid: int, outcome, report: Report, worker) -> None:
        if isinstance(outcome, Complete):
            if future.done() or (not future.running() and not future.set_running_or_notify_cancel()):
                return   # cancelled meanwhile
            try:
                if future.result_name is None:
                    value = results.python_value(report)
                elif report.value is None:
                    value = _REMOTE
                elif self._summary is not None:   # what summarize made of it
                    value = _REMOTE
                    future.summary = results.python_value(report)
                else:                             # small: it came back with the completion
                    value = spill.loads(report.value)
            except Exception as e:  # the value (or its summary) could not be unpickled here
                future.set_exception(e)
                return
            if value is _REMOTE:
                with self._pending_lock:
                    self._remote.add(future)
            future.set_result(value)
            return
        exc = self._exception(tid, outcome, report, worker)
        self._errors[tid] = exc
        if future.done():
            return
        if isinstance(exc, concurrent.futures.CancelledError) and not future.running():
            future.cancel()
            return
        if not future.running():
            future.set_running_or_notify_cancel()
        future.set_exception(exc)

    def _exception(self, tid: int, outcome: Fail, report: Report, worker) -> BaseException:
        if outcome.reason == "cancelled":
            return concurrent.futures.CancelledError(f"task {tid} was cancelled")
        if outcome.reason == "dependency":
            cause = self._errors.get(outcome.cause)
            if cause is not None:
                return cause   # the producer's own exception, type and remote traceback kept
            return DependencyFailed(f"task {tid} did not run: {outcome.message}", task_id=tid)
        return results.failure(tid, True, outcome.reason, outcome.message, report, worker, outcome.cause)

    # ------------------------------------------------------------ values and lifetimes

    def _fetch(self, future: ExecutorFuture, timeout: float | None) -> Any:
        m = self.manager
        if m._closed:
            if self._waited:
                raise RuntimeError(f"the value of task {future.task_id} could not be brought from its worker "
                                   "before the executor shut down: no worker was left to send it")
            raise RuntimeError(f"the value of task {future.task_id} stayed on its worker, and the executor "
                               "has shut down without bringing it: shutdown(wait=False) brings no values; ask "
                               "for them before, or shut down with wait=True")
        try:
            data = m._loop.run(m.engine.want(future.result_name), timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the value of task {future.task_id} did not arrive within {timeout} s") from None
        return spill.loads(data)

    def _release(self, result_name: str) -> None:
        """The user's Future is gone: its result may go once no pending call needs it."""
        m = self.manager
        if m._memo is not None:
            m._memo.forget(result_name)
        if not self._shutdown and not m._closed:
            m._loop.call(lambda: m.engine.handle(FileReleased(result_name)))

    def _cancelled(self, task_id: int) -> None:
        m = self.manager
        if not m._closed:
            m._loop.call(lambda: m.engine.handle(TaskCancelled(task_id)))

    # ------------------------------------------------------------ shutdown

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As concurrent.futures says: cancel_futures cancels the calls not started; wait=True waits
        for the others, then brings here in one batch the values still on workers of the futures the
        program still holds (dropped ones are not fetched), so that result() works afterwards.

        Waiting stops when no worker is left that could run a call (Manager.close says when); the
        calls unfinished then fail. wait=False waits for nothing and brings nothing: the calls
        unfinished fail, and result() of a value left on a worker raises.
        """
        if self._shutdown:
            return
        with self._pending_lock:
            pending = list(self._pending)
        if cancel_futures:
            for f in pending:
                f.cancel()
        del pending   # held no longer than this: a future the program dropped must be able to die
        self._waited = wait
        why = CLOSED
        try:
            if wait:
                if self._wait_all():
                    self._bring_held_values()
                else:
                    why = CLOSED_WITHOUT_WORKERS
        except BaseException:   # Ctrl-C while waiting: shut down at once, then let it through
            self._close(CLOSED)
            raise
        self._close(why)

    def _close(self, why: str) -> None:
        self._shutdown = True
        self.manager._shut(why)
        self._settle.put(None)
        self._settler.join(timeout=10)

    def _wait_all(self) -> bool:
        """Wait until every call has ended and its future is settled (those a done callback submits
        meanwhile too). False: a call could not end, for want of any worker."""
        seen: set[int] | None = None
        while True:
            if not self.manager._wait_for_tasks():
                return False
            barrier = threading.Event()
            self._settle.put(barrier)   # after every outcome delivered so far
            barrier.wait()
            with self._pending_lock:
                unsettled = {f.task_id for f in self._pending if not f.done()}
            if not unsettled or unsettled == seen:   # the same twice: nothing the manager will settle
                return True
            seen = unsettled

    def _bring_held_values(self) -> None:
        """Fetch, all at once, the values still on workers of the futures still alive (held weakly:
        a future the program dropped is not among them), while a worker is there to send them."""
        with self._pending_lock:
            held = [f for f in self._remote if f._on_worker()]
        if not held:
            return
        m = self.manager

        async def want_all() -> list:
            jobs = [asyncio.ensure_future(m.engine.want(f.result_name)) for f in held]
            if not await m._while_workers(lambda: all(j.done() for j in jobs)):
                for j in jobs:
                    j.cancel()   # no worker is left to send them: they stay, and result() says so
            return await asyncio.gather(*jobs, return_exceptions=True)

        self._unpickle_into(held, m._run_in_loop(want_all()))

    def stats(self) -> dict[str, Any]:
        return self.manager.stats()


__all__ = ["Executor", "ExecutorFuture"]


def _call_chunk(fn: Callable, calls: list[tuple]) -> list:
    """Run on a worker: one task's chunk of a map, in order."""
    return [fn(*args) for args in calls]


def _name_of(fn) -> str:
    """What the transaction log calls a function."""
    return getattr(fn, "__qualname__", None) or type(fn).__name__
