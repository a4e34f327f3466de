"""Benchmarks that run a system in a process (and session) of their own end it, and all it started, here."""
from __future__ import annotations

import os
import signal
import subprocess

import psutil


def end_session(proc: subprocess.Popen) -> None:
    """Stop the run and whatever it started (Dask and Ray leave helpers behind when interrupted)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    left = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) == proc.pid:
                left.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    for p in left:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
