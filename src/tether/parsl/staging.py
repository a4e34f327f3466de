"""TetherStaging: the Parsl staging provider that makes temp files look ready at once.

Parsl hands an executor only the tasks whose dependencies are done, so an
executor never sees a chain of tasks before it runs, and cannot commit the
chain to one worker. For temp files (temp://NAME, and the seed's
taskvinetemp://NAME) this provider answers stage_out with a Future that is
already done: a consumer given the producer's output DataFuture is handed
to the executor at once, and TetherExecutor holds it until the file is made
(see temps.py). It also tells the executor which Parsl task makes each temp,
so that consumers fail with Parsl's DependencyError when Parsl gives up on
the producer.

`file` URLs are accepted and left to the executor, which moves them.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from parsl.app.futures import DataFuture
from parsl.data_provider.files import File
from parsl.data_provider.staging import Staging
from parsl.utils import RepresentationMixin

from .plan import TEMP_SCHEMES, temp_name


class TetherStaging(Staging, RepresentationMixin):
    def can_stage_in(self, file: File) -> bool:
        return file.scheme in TEMP_SCHEMES or file.scheme == "file"

    def can_stage_out(self, file: File) -> bool:
        return file.scheme in TEMP_SCHEMES or file.scheme == "file"

    def stage_in(self, dm: Any, executor: str, file: File, parent_fut: Future | None) -> DataFuture | None:
        if file.scheme == "file":
            return None
        ex = _tether_executor(dm, executor, file)
        name = temp_name(file)
        file.local_path = name
        gone = ex.temp_given_up(name)
        if gone is not None:  # its producer already failed for good: let Parsl fail this task
            return DataFuture(gone, file, tid=gone.tid)
        return None

    def stage_out(self, dm: Any, executor: str, file: File, app_fu: Future) -> Future | None:
        if file.scheme == "file":
            return None  # done when the task is: tether brings outputs back before it reports
        ex = _tether_executor(dm, executor, file)
        name = temp_name(file)
        file.local_path = name
        ex.temp_producer(name, app_fu)
        ready: Future = Future()
        ready.set_result(file)  # look-ahead: consumers may be handed over now
        return ready


def _tether_executor(dm: Any, label: str, file: File):
    from .executor import TetherExecutor

    ex = dm.dfk.executors[label]
    if not isinstance(ex, TetherExecutor):
        raise ValueError(f"{file.url} is a temp file, which needs a TetherExecutor; "
                         f"this app runs on executor {label!r} ({type(ex).__name__})")
    ex.dfk = dm.dfk
    return ex
