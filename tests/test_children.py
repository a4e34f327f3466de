"""reaper.Children: after a Python call, does the interpreter have a child left to end?

Each check runs in a fresh interpreter, whose only children are the ones it starts.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(body: str) -> None:
    code = "import os, subprocess, threading\nfrom tether.worker.reaper import Children, end_children\n"
    done = subprocess.run([sys.executable, "-c", code + textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("waitid", [True, False], ids=["waitid", "proc"])
def test_a_child_of_another_thread_counts_until_it_is_waited_for(waitid):
    run(f"""
        c = Children()
        c._waitid = c._waitid and {waitid}
        assert not c.any()
        started, stop = threading.Event(), threading.Event()

        def start_one():
            subprocess.Popen(["sleep", "30"])
            started.set()
            stop.wait()

        t = threading.Thread(target=start_one)
        t.start()
        started.wait()
        assert c.any(), "a running child started by another thread"
        stop.set()
        t.join()
        assert end_children() == 1
        assert not c.any()
    """)


@pytest.mark.parametrize("waitid", [True, False], ids=["waitid", "proc"])
def test_an_exited_child_counts_and_asking_does_not_reap_it(waitid):
    run(f"""
        c = Children()
        c._waitid = c._waitid and {waitid}
        pid = os.posix_spawn("/bin/true", ["true"], os.environ)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)   # it has exited, and is still ours
        assert c.any() and c.any()
        assert os.waitpid(pid, 0)[0] == pid
        assert not c.any()
    """)
