"""Local worker processes: started for an embedded Manager, stopped with it.

Each worker runs in a session of its own, so that at the end everything it
started (shell commands, interpreters) can be found and stopped, even if the
worker itself was killed.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from ..wire.tls import TlsConfig


@dataclass
class WorkerSize:
    cores: int
    memory: int  # MB
    disk: int    # MB
    gpus: int = 0

    @classmethod
    def share_of_machine(cls, workers: int, work_dir: Path, cores: int | None = None,
                         memory: int | None = None, disk: int | None = None, gpus: int = 0) -> "WorkerSize":
        n = max(1, workers)
        return cls(
            cores=cores or max(1, (os.cpu_count() or 1) // n),
            memory=memory or psutil.virtual_memory().total // (1 << 20) // n,
            disk=disk or shutil.disk_usage(work_dir).free // (1 << 20) // n,
            gpus=gpus,
        )


class LocalWorker:
    def __init__(self, index: int, proc: subprocess.Popen, work_dir: Path, log_path: Path):
        self.index = index
        self.proc = proc
        self.work_dir = work_dir
        self.log_path = log_path
        self.replaced = False   # its link ended and the manager has dealt with it

    @property
    def name(self) -> str:
        return f"local-{self.index}"

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except FileNotFoundError:
            return ""


def start_worker(index: int, address: str, secret_file: Path, size: WorkerSize, work_dir: Path, log_dir: Path,
                 python_path: list[str], heartbeat: float, tls: "TlsConfig | None" = None) -> LocalWorker:
    """Start `tether worker` for this process's manager, its cache in work_dir, its log in log_dir.
    It removes work_dir when this process dies without closing the manager (the manager would
    have removed it)."""
    cache_dir = work_dir / f"worker-{index}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{index}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    cmd = [sys.executable, "-m", "tether", "-v", "worker", address, "--cores", str(size.cores),
           "--memory", str(size.memory), "--disk", str(size.disk), "--gpus", str(size.gpus),
           "--cache-dir", str(cache_dir),
           "--secret-file", str(secret_file), "--name", f"local-{index}", "--clean",
           "--connect-timeout", "30", "--heartbeat", f"{heartbeat:g}",
           "--owner-pid", str(os.getpid()), "--owner-dir", str(work_dir)]
    if tls is not None:
        cmd += tls_options(tls)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)
    return LocalWorker(index, proc, cache_dir, log_path)


def stop_workers(workers: list[LocalWorker], grace: float = 5.0) -> None:
    """Ask each worker to stop, wait a little, then kill whatever is left of its session."""
    for w in workers:
        if w.proc.poll() is None:
            try:
                w.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for w in workers:
        try:
            w.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    kill_sessions([w.proc.pid for w in workers])
    for w in workers:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait()


def tls_options(tls: "TlsConfig") -> list[str]:
    """The `tether worker` options that give a worker the same TLS settings."""
    options = ["--tls", tls.mode]
    if tls.cert_file is not None:
        options += ["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file), "--tls-ca", str(tls.ca_file)]
    return options


def kill_sessions(session_ids: list[int]) -> None:
    """SIGKILL every process in the given sessions (a worker's tasks and interpreters)."""
    wanted = set(session_ids)
    if not wanted:
        return
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) in wanted and p.pid != os.getpid():
                os.kill(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue


def python_path() -> list[str]:
    """The submitting interpreter's import path, so workers can import what it can."""
    return [p or os.getcwd() for p in sys.path if p == "" or os.path.isdir(p)]
