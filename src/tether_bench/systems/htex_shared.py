"""Parsl HTEX over a shared directory, counting what crosses it: the bytes its tasks read and wrote there.

The shape benchmark's tasks print `io READ WRITTEN`; each app's output goes
to a file of its own, and the row adds them up. The directory's peak size
is sampled while the run goes (nothing in it is deleted: a shared directory
keeps every intermediate unless the workflow removes it).
"""
from __future__ import annotations

import os
import shlex
import threading
from pathlib import Path

from ..report import make_row
from ..shape_traces import io_bytes
from ..workflow import Workflow
from .parsl_apps import run_workflow
from .parsl_htex import loaded


class DirectoryPeak:
    """The most bytes of files a directory held, sampled every `every` seconds and once at stop()."""

    def __init__(self, directory: Path, every: float = 0.05):
        self.directory, self.every, self.peak = directory, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="shared-dir-peak", daemon=True)

    def __enter__(self) -> "DirectoryPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.size())

    def size(self) -> int:
        total = 0
        with os.scandir(self.directory) as entries:
            for e in entries:
                try:
                    total += e.stat(follow_symlinks=False).st_size if e.is_file(follow_symlinks=False) else 0
                except FileNotFoundError:
                    pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.size())


def run(workflow: Workflow, workers: int, work_dir: Path, progress=None, name: str = "parsl-htex",
        parsl_logging: bool = True) -> dict:
    shared = work_dir / "shared"
    workflow.write_inputs(shared)
    outs = work_dir / "stdout"
    outs.mkdir()
    index = {s.name: i for i, s in enumerate(workflow.steps)}
    cd = f"cd {shlex.quote(str(shared))} || exit 1; "

    def command(step) -> str:
        return f"{cd}{{ {step.command} ; }} > {shlex.quote(str(outs / str(index[step.name])))}"

    from parsl.data_provider.files import File

    with loaded(workers, work_dir, parsl_logging) as dfk, DirectoryPeak(shared) as peak:
        makespan, _, failures = run_workflow(dfk, workflow, lambda n: File(str(shared / n)), command, progress)
    problems = [str(e) for e in failures[:3]] or workflow.problems(shared)
    read = written = 0
    if not problems:
        for i in range(len(workflow.steps)):
            r, w = io_bytes((outs / str(i)).read_text())
            read, written = read + r, written + w
    return make_row(name, makespan_s=makespan, tasks=len(workflow), correct=not problems, problems=problems,
                    bytes_shared_read=read, bytes_shared_written=written, bytes_shared_directory=read + written,
                    peak_disk_bytes=peak.peak, peak_disk_source="the shared directory's peak (sampled)")
