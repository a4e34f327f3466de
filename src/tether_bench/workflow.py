"""A workflow of shell steps that every system in a benchmark runs alike.

Each step is one shell command whose files are named by plain relative
names. The same command runs everywhere: in a tether sandbox (where inputs
appear under those names), in a Parsl or Dask task that changes into a
shared directory, or in the floor's plain loop. Files are classified as
the replay rule says: made by no step -> an input from the submitting side;
made by one step and read by another -> an intermediate (temp); read by no
step -> a final output brought back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tether.task import check_sandbox_name


@dataclass(frozen=True)
class Step:
    name: str
    command: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class Workflow:
    """Steps in an order where every producer comes before its consumers.

    inputs maps each input file name to its bytes (written into each
    system's submitting-side directory before the run). check(directory)
    returns the problems found in the final outputs in that directory.
    sizes gives the expected size of made files, where known, so that a run
    can say how many bytes of intermediates were alive at once.
    """

    steps: list[Step]
    inputs: dict[str, bytes] = field(default_factory=dict)
    check: Callable[[Path], list[str]] | None = None
    sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        made: dict[str, str] = {}
        for s in self.steps:
            for name in (*s.inputs, *s.outputs):
                check_sandbox_name(name, "file")
                if "/" in name:
                    raise ValueError(f"file name {name!r}: benchmark files live in one flat directory")
            for name in s.inputs:
                if name not in made and name not in self.inputs:
                    raise ValueError(f"step {s.name} reads {name!r}, which no earlier step makes "
                                     "and which is not an input")
            for name in s.outputs:
                if name in made or name in self.inputs:
                    raise ValueError(f"file {name!r} is made twice")
                made[name] = s.name
        self.producer = made
        read = {name for s in self.steps for name in s.inputs}
        self.temps = {name for name in made if name in read}
        self.finals = {name for name in made if name not in read}

    def __len__(self) -> int:
        return len(self.steps)

    def write_inputs(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.inputs.items():
            (directory / name).write_bytes(data)

    def problems(self, directory: Path) -> list[str]:
        """Missing finals, then whatever the workflow's own check finds."""
        missing = sorted(name for name in self.finals if not (directory / name).is_file())
        if missing:
            return [f"{len(missing)} final output(s) missing, e.g. {missing[0]}"]
        return self.check(directory) if self.check else []

    def consumers(self) -> dict[str, list[Step]]:
        """Step name -> the steps that read a file it makes."""
        out: dict[str, list[Step]] = {}
        for s in self.steps:
            for parent in self.parents(s):
                out.setdefault(parent, []).append(s)
        return out

    def parents(self, step: Step) -> list[str]:
        """Names of the steps that make this step's intermediate inputs."""
        return sorted({self.producer[n] for n in step.inputs if n in self.producer})
