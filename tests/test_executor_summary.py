"""Executor(summarize=...): a small part of each result comes back, the value stays on its worker."""
from __future__ import annotations

import numpy as np
import pytest

from tether import Executor


def array(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


def shape_and_sum(value):
    return value.shape, float(value.sum())


def fails(value):
    raise ValueError("the summary failed")


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=2, cores_per_worker=1, summarize=shape_and_sum, spill_threshold=1 << 20) as ex:
        yield ex


def test_summary_arrives_with_completion_and_the_value_stays(ex):
    before = ex.stats()["bytes_worker_to_manager"]
    small = ex.submit(array, 10)                   # kept in the interpreter's memory
    large = ex.submit(array, 400_000)              # 3.2 MB: spilled to the worker's cache
    doubled = ex.submit(np.multiply, large, 2)     # a consumer of a result that stayed
    for f in (small, large, doubled):
        f.exception()                              # waits for completion, fetches nothing
    assert small.summary == ((10,), 45.0)
    assert large.summary == ((400_000,), float(sum(range(400_000))))
    assert doubled.summary == ((400_000,), 2 * float(sum(range(400_000))))
    moved = ex.stats()["bytes_worker_to_manager"] - before
    assert moved < 2_000, f"{moved} bytes came back for three summaries"
    assert doubled.result()[-1] == 2 * 399_999.0
    assert ex.stats()["bytes_worker_to_manager"] - before > 3_200_000


def test_map_values_still_come_back_whole(ex):
    assert list(ex.map(array, [3]))[0].tolist() == [0.0, 1.0, 2.0]


def test_a_failing_summary_fails_the_call():
    with Executor(workers=1, summarize=fails) as ex:
        f = ex.submit(array, 3)
        with pytest.raises(ValueError, match="the summary failed"):
            f.result()


def test_a_failing_summary_defined_in_place_shows_its_own_file_and_line():
    def in_place(value):   # defined here: it travels by value, with its lines
        raise ValueError("the summary made here failed")

    with Executor(workers=1, summarize=in_place) as ex:
        f = ex.submit(array, 3)
        with pytest.raises(ValueError, match="the summary made here failed") as raised:
            f.result()
    note = "\n".join(getattr(raised.value, "__notes__", []))
    assert __file__ in note and 'raise ValueError("the summary made here failed")' in note, note
