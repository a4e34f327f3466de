"""Turning what a worker reported into what the user's Future gives."""
from __future__ import annotations

import pickle
from concurrent.futures import CancelledError
from typing import Any

import cloudpickle

from ..core import SYSTEM_REASONS
from ..task import DependencyFailed, InternalError, RemoteError, SystemFailure, TaskFailed, TaskResult
from ..wire.messages import Report


def task_result(task_id: int, report: Report, worker: str, hop: float | None, attempts: int,
                held: tuple[int, int, int, int] | None = None) -> TaskResult:
    peak, cpu, disk = report.usage or (None, None, None)
    cores, memory, disk_limit, _ = held or (1, 0, 0, 0)
    return TaskResult(task_id=task_id, exit_code=report.exit or 0, stdout=report.stdout, stderr=report.stderr,
                      worker=worker, started=report.started, finished=report.finished, hop_latency=hop,
                      attempts=attempts, peak_memory=peak, cpu_time=cpu, disk=disk, cores=cores,
                      memory_limit=memory, disk_limit=disk_limit, gpus=report.gpus,
                      memoized=attempts == 0)   # only a task a memo record answered completes unrun


def python_value(report: Report) -> Any:
    return cloudpickle.loads(report.value)


def failure(task_id: int, is_python: bool, reason: str, message: str, report: Report | None,
            worker: str | None, cause: int | None) -> BaseException:
    """The exception a failed task's Future raises."""
    report = report or Report()
    if reason == "cancelled":
        return CancelledError(f"task {task_id} {message.removeprefix(f'task {task_id} ')}")
    if reason == "dependency":
        return DependencyFailed(f"task {task_id} did not run: {message}", task_id=task_id)
    if reason in SYSTEM_REASONS or reason == "no-workers":
        return SystemFailure(f"task {task_id} failed: {message}", reason=reason, task_id=task_id)
    if reason == "internal":
        return InternalError(message)
    if reason == "exit" and is_python:
        return _python_exception(task_id, report, worker)
    where = f" on worker {worker}" if worker else ""
    stderr = report.stderr
    text = f"task {task_id} failed{where}: {message}"
    if reason == "exit" and stderr.strip():
        text += f"\n--- stderr (tail) ---\n{stderr.rstrip()}"
    return TaskFailed(text, exit_code=report.exit, stderr=stderr, task_id=task_id)


def _python_exception(task_id: int, report: Report, worker: str | None) -> BaseException:
    text = report.stderr
    payload = report.error
    exc: BaseException | None = None
    if payload is not None:
        try:
            exc = pickle.loads(payload)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"task {task_id} raised an exception that cannot be rebuilt here:\n{text}")
    if "\n  File " in text:   # a traceback with the user's frames in it (none: the message says it all)
        exc.add_note(f"Remote traceback (task {task_id} on worker {worker}):\n{text.rstrip()}")
    return exc
