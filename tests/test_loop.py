"""The manager's loop thread: work handed to it from anywhere, even from a finalizer run by the GC."""
from __future__ import annotations

import gc
import threading

from tether.manager.loop import LoopThread


def test_call_from_a_finalizer_the_loop_thread_runs_while_draining():
    """An Executor's result is released by a weakref finalizer, which runs wherever the GC runs:
    also in the loop thread, in the middle of taking its batch of calls."""
    loop = LoopThread()
    done = threading.Event()
    released = []

    def collecting(phase, info):
        if phase == "start" and loop.in_loop and len(released) < 50:
            loop.call(lambda: released.append(1))   # what Executor._release does

    threshold = gc.get_threshold()
    gc.callbacks.append(collecting)
    gc.set_threshold(1)   # a collection at (almost) every allocation, in the loop thread too
    try:
        for _ in range(50):
            loop.call(lambda: None)
        loop.call(done.set)
        assert done.wait(20), "the loop thread is stuck"
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(collecting)
        loop.stop()
    assert released
