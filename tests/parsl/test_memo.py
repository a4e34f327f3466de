"""TetherExecutor(memo_dir=): Parsl apps over temp files, memoized across two runs of Parsl."""
from __future__ import annotations

import pytest
from parsl import bash_app, python_app
from parsl.data_provider.files import File
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider

from tether.parsl import TetherExecutor

from .conftest import parsl_with


@python_app
def make(marks, outputs=()):
    with open(marks, "a") as f:
        f.write("make\n")
    with open(outputs[0], "w") as f:
        f.write("hello\n")
    return 1


@python_app
def upper(marks, inputs=(), outputs=()):
    with open(marks, "a") as f:
        f.write("upper\n")
    with open(inputs[0]) as f:
        data = f.read()
    with open(outputs[0], "w") as f:
        f.write(data.upper())
    return len(data)


@bash_app
def final(marks, inputs=(), outputs=()):
    return f"echo final >> {marks}; cat {inputs[0]} > {outputs[0]}"


@pytest.mark.slow
def test_a_second_parsl_run_runs_no_app_and_writes_the_output_home(tmp_path):
    marks, out = str(tmp_path / "marks"), tmp_path / "out.txt"
    for run in range(2):
        ex = TetherExecutor(provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1,
                                                   launcher=SimpleLauncher()), memo_dir=str(tmp_path / "memo"))
        with parsl_with(ex, tmp_path / f"runinfo{run}", 1):
            a = make(marks, outputs=[File("temp://a")])
            b = upper(marks, inputs=[a.outputs[0]], outputs=[File("temp://b")])
            c = final(marks, inputs=[b.outputs[0]], outputs=[File(str(out))])
            assert (a.result(60), b.result(60), c.result(60)) == (1, 6, 0)
            assert out.read_text() == "HELLO\n"
            hits = ex.manager.stats()["memo_hits"]
        out.unlink()
        assert hits == 3 * run
    assert (tmp_path / "marks").read_text().split() == ["make", "upper", "final"]
