"""The transaction log's writer: the same lines from the writer process as from the manager's own thread."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from tether.manager import txlog
from tether.manager.txlog import TxLog

from .conftest import wait_until

EVENTS = [("TASK", 1, "SUBMITTED", "sh", 1, 0, 0, "printf 'a\tb\nc'"),   # a tab and a newline in a command
          ("TASK", 1, "ASSIGNED", "w1", 1, None),
          ("TASK", 1, "RAN", "w1", 10.5, 11.25, 1 << 40, 0.5, 0, 0),
          ("TASK", 1, "DONE", 1, 0.002),
          ("CACHE", "w1", "INSERT", "tmp-ab\u00e9", 12),
          ("WORKER", "w1", "LEFT", "its connection failed: \udcff")]   # a lone surrogate from a bad string


def written(path, separate: bool) -> list[txlog.Event]:
    log = TxLog(path, run="r", separate_process=separate)
    for e in EVENTS:
        log.add(*e)
    log.close()
    return [e._replace(time=0) for e in txlog.read(path)]


def test_the_writer_process_and_the_thread_write_the_same_lines(tmp_path):
    apart, here = written(tmp_path / "apart", True), written(tmp_path / "here", False)
    assert apart == here and len(here) == len(EVENTS)
    assert here[0].fields[-1] == "printf 'a b c'" and here[1].fields == ("w1", "1", "-")
    assert here[2].fields[1:3] == ("10.5", "11.25") and here[2].fields[3] == str(1 << 40)


def test_a_killed_manager_leaves_whole_lines_and_no_writer(tmp_path):
    path = tmp_path / "transactions"
    script = textwrap.dedent(f"""
        import time
        from tether.manager.txlog import TxLog
        log = TxLog({str(path)!r}, run="killed")
        for i in range(20000):
            log.add("TASK", i, "SUBMITTED", "sh", 1, 0, 0, "true")
        log.flush()
        print(log._writer.pid, flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    writer = int(p.stdout.readline())
    p.send_signal(signal.SIGKILL)
    p.wait()
    wait_until(lambda: not os.path.exists(f"/proc/{writer}") or _zombie(writer), timeout=10)
    events = list(txlog.read(path))
    assert [e.subject for e in events] == [str(i) for i in range(20000)]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True
