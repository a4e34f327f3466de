"""What runs on a worker for one Parsl app call.

A Parsl app function never raises: Parsl wraps it so that an exception comes
back as a RemoteExceptionWrapper value. tether must see a failure as a
failure (so that the temp files the app should have made count as never
made, and their consumers are held or failed), so run_app raises AppFailure
instead, carrying the pickled wrapper. It also hands back what the app wrote
to its stdout and stderr files in the sandbox, on success and on failure,
since those files live on the submitting side.

This module is imported by workers: it must not import parsl at module level
(parsl is imported only when an app actually failed).
"""
from __future__ import annotations

import os
import pickle
import sys
import traceback
from typing import Any, Callable

import cloudpickle


class AppFailure(Exception):
    """A Parsl app failed on a worker.

    wrapped: the pickled RemoteExceptionWrapper Parsl made of the app's
    exception; streams: {sandbox name: bytes} of its stdout and stderr files.
    """

    def __init__(self, wrapped: bytes, streams: dict[str, bytes]):
        super().__init__(wrapped, streams)
        self.wrapped = wrapped
        self.streams = streams

    def __str__(self) -> str:
        return "a Parsl app failed on a tether worker (its exception is in .wrapped)"

    def exception(self) -> BaseException:
        """The app's own exception, rebuilt with its remote traceback."""
        return pickle.loads(self.wrapped).get_exception()


def run_app(func: Callable[..., Any], args: tuple, kwargs: dict[str, Any], streams: list[str],
            directories: list[str]) -> tuple[Any, dict[str, bytes]]:
    """Call a Parsl app function in the task's sandbox (the working directory).

    directories: sandbox sub-directories the app's outputs go to, made first.
    Returns (the app's value, {stream sandbox name: bytes}).
    """
    for d in directories:
        os.makedirs(d, exist_ok=True)
    try:
        value = func(*args, **kwargs)
    except Exception:
        value = _wrap(sys.exc_info())
    captured = _read_streams(streams)
    if _is_wrapper(value):
        raise AppFailure(_pickle_wrapper(value), captured)
    return value, captured


def _read_streams(names: list[str]) -> dict[str, bytes]:
    captured = {}
    for name in names:
        try:
            with open(name, "rb") as f:
                captured[name] = f.read()
        except FileNotFoundError:
            continue
    return captured


def _is_wrapper(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "RemoteExceptionWrapper" and cls.__module__ == "parsl.app.errors"


def _wrap(exc_info):
    from parsl.app.errors import RemoteExceptionWrapper

    return RemoteExceptionWrapper(*exc_info)


def _pickle_wrapper(wrapper) -> bytes:
    """The wrapper's bytes; an exception that cannot be pickled is replaced by its text."""
    for dumps in (pickle.dumps, cloudpickle.dumps):
        try:
            data = dumps(wrapper, protocol=5)
            pickle.loads(data)
            return data
        except Exception:
            continue
    text = "".join(traceback.format_exception(wrapper.e_value))
    substitute = RuntimeError(f"the app raised {wrapper.e_type.__name__}, which cannot be sent back:\n{text}")
    return pickle.dumps(_wrap((RuntimeError, substitute, None)), protocol=5)
