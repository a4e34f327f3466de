"""The progress bar: on when stderr is a terminal, off otherwise, and settable."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

import pytest

from tether import Manager

SCRIPT = textwrap.dedent("""
    import sys
    from tether import Manager, Task
    setting = {"on": True, "off": False, "auto": None}[sys.argv[1]]
    with Manager(workers=1, progress=setting) as m:
        futures = [m.submit(Task("sleep 0.05")) for _ in range(12)]
        failing = m.submit(Task("exit 3"))
        for f in futures:
            f.result(60)
        failing.exception(60)
""")


def run(setting: str, tty: bool) -> str:
    """The script's stderr, through a pseudo-terminal when tty."""
    if not tty:
        done = subprocess.run([sys.executable, "-c", SCRIPT, setting], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, setting], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:   # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(120) == 0
    return b"".join(chunks).decode(errors="replace")


def test_on_by_itself_on_a_terminal():
    shown = run("auto", tty=True)
    assert "tether" in shown and "13/13" in shown and "failed 1" in shown


def test_off_by_itself_when_stderr_is_not_a_terminal():
    assert run("auto", tty=False) == ""


def test_asked_for_it_shows_where_stderr_goes():
    shown = run("on", tty=False)
    assert "13/13" in shown and "failed 1" in shown


def test_a_bad_setting_is_named():
    with pytest.raises(ValueError, match="progress"):
        Manager(workers=0, progress="yes")
