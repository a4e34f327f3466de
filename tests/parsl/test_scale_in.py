"""Parsl scaling a block in: its worker hands the temps still needed to one that stays, then its job goes."""
from __future__ import annotations

import os

from parsl import python_app
from parsl.data_provider.files import File
from parsl.jobs.states import JobState

from .conftest import parsl_on_tether


@python_app
def make(text, outputs=[]):
    import os
    with open(outputs[0], "w") as f:
        f.write(text)
    return os.environ.get("TETHER_WORKER")


@python_app
def read(inputs=[]):
    import os
    with open(inputs[0]) as f:
        return f.read(), os.environ.get("TETHER_WORKER")


def test_scaling_a_block_in_keeps_its_temps(tmp_path):
    with parsl_on_tether(tmp_path / "runinfo", workers=2) as ex:
        made = {}
        for i in range(8):
            made[i] = make(f"t{i}", outputs=[File(f"temp://kept-{i}")])
        where = {i: f.result(60) for i, f in made.items()}
        assert len(set(where.values())) == 2, "both workers made temps"
        # the idle block holding fewer bytes goes; the manager copies what only it holds first
        killed = ex.scale_in_facade(1)   # as Parsl's strategy calls it
        assert len(killed) == 1
        gone = ex._worker_of(killed[0])
        assert gone not in {w["worker"] for w in ex.manager.workers()}
        assert ex.status_facade[killed[0]].state is JobState.SCALED_IN
        for i in range(8):
            text, worker = read(inputs=[File(f"temp://kept-{i}")]).result(60)
            assert text == f"t{i}" and worker != gone
        stats = ex.manager.stats()
        assert stats["reruns"] == 0, "a temp was made again after the scale-in"
        assert stats["bytes_worker_to_worker"] >= sum(len(f"t{i}") for i in where if where[i] == gone)
        assert os.path.isdir(tmp_path / "runinfo")
