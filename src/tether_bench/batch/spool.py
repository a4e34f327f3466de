"""The job spool behind the stand-in batch systems: job records, nodes, and the keeper of each job.

A spool is a directory: config.json (its nodes, the cancel grace, a token
that marks its jobs' processes), a lock file, and jobs/N/ for each job
(job.json, the job's own TMPDIR, the keeper's log). Every command takes
the lock, reads and writes records, and returns: there is no daemon.

A job runs on one node; a job with no free node stays pending. When a job
starts, a keeper process (in a session of its own) runs its script in a
new session and process group, waits for it, and records how it ended.
Its end starts the pending jobs that now find a node free. A node may
name a network namespace (see tether_bench.cluster): the job then runs
inside it, as if on another host.

Cancelling a running job signals its keeper, which sends SIGTERM to the
job's process group, gives it `grace` seconds, then SIGKILLs it. Whatever
the job leaves behind when it ends, however it ends, is killed too: its
group, every process whose environment carries the job's MARKER (which
tether's task processes inherit even when they leave the group), and, on a
namespace node, every process in the namespace. The job's TMPDIR goes.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

PENDING, RUNNING = "PENDING", "RUNNING"
COMPLETED, FAILED, CANCELLED, TIMEOUT = "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMEOUT})
MARKER = "TETHER_BATCH_JOB"      # in every job's environment: "<spool token>.<job number>"
SPOOL_ENV = "TETHER_BATCH_SPOOL"  # the spool's directory, in every job's environment too
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"


class Spool:
    """One spool directory; every method that reads or changes records takes its lock."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self._config: dict[str, Any] | None = None

    # ------------------------------------------------------------ making one

    @classmethod
    def create(cls, root: str | os.PathLike, nodes: list[dict[str, Any]] | int = 2, grace: float = 10.0,
               server: str = "standin") -> "Spool":
        """A new spool. nodes: a count of plain nodes (on this host), or dicts with "name" and "netns"."""
        if isinstance(nodes, int):
            nodes = [{"name": f"node{i}", "netns": None} for i in range(nodes)]
        root = Path(root).absolute()
        (root / "jobs").mkdir(parents=True, exist_ok=True)
        config = {"nodes": nodes, "grace": grace, "token": secrets.token_hex(4), "server": server}
        _write_json(root / "config.json", config)
        (root / "next").write_text("1")
        return cls(root)

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = json.loads((self.root / "config.json").read_text())
        return self._config

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return self.config["nodes"]

    def node_host(self, name: str) -> str | None:
        """The address of a node's jobs (None for a node on this host)."""
        return next((n.get("host") for n in self.nodes if n["name"] == name), None)

    def marker(self, number: int) -> str:
        return f"{self.config['token']}.{number}"

    # ------------------------------------------------------------ records

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.root / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def job_dir(self, number: int) -> Path:
        return self.root / "jobs" / str(number)

    def read(self, number: int) -> dict[str, Any] | None:
        try:
            return json.loads((self.job_dir(number) / "job.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, job: dict[str, Any]) -> None:
        _write_json(self.job_dir(job["number"]) / "job.json", job)

    def jobs(self, system: str | None = None) -> list[dict[str, Any]]:
        """Every job's record (of one system, if given), oldest first."""
        numbers = sorted(int(p.name) for p in (self.root / "jobs").iterdir() if p.name.isdigit())
        found = [self.read(n) for n in numbers]
        return [j for j in found if j is not None and (system is None or j["system"] == system)]

    def job(self, number: int, system: str | None = None) -> dict[str, Any] | None:
        job = self.read(number)
        return job if job is not None and (system is None or job["system"] == system) else None

    # ------------------------------------------------------------ the commands' side

    def submit(self, system: str, make) -> dict[str, Any]:
        """A new job: make(number) returns its record's fields; returns the record, started if a node is free.

        Fields: name, argv, cwd, env, stdout, stderr; optional walltime
        (seconds), inputs (files copied into the job's TMPDIR before it
        starts), node_env (variables set to the node's name), nodefile_env
        (variables naming a file that lists the node). cwd, and the value of
        any variable in env, may be "{tmp}": the job's TMPDIR.
        """
        with self.locked():
            number = int((self.root / "next").read_text())
            (self.root / "next").write_text(str(number + 1))
            job = {"walltime": None, "inputs": [], "node_env": [], "nodefile_env": []}
            job.update(make(number))
            job.update(number=number, system=system, state=PENDING, node=None, keeper=None, pid=None,
                       exit_code=None, cancel=False, submitted=time.time(), started=None, ended=None)
            self.job_dir(number).mkdir(parents=True)
            self._write(job)
            self._schedule()
            return self.read(number) or job

    def cancel(self, number: int) -> bool:
        """Cancel a job: a pending one at once, a running one by its keeper. False if it is unknown."""
        with self.locked():
            job = self.read(number)
            if job is None:
                return False
            if job["state"] in TERMINAL:
                return True
            job["cancel"] = True
            if job["state"] == PENDING:
                job.update(state=CANCELLED, ended=time.time())
            self._write(job)
            if job["state"] == RUNNING and job["keeper"]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job["keeper"], signal.SIGTERM)
            return True

    def settle(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until every job has ended and its keeper is gone; returns the records of those that did not."""
        deadline = time.monotonic() + timeout
        while True:
            with self.locked():
                self._reconcile()
            busy = [j for j in self.jobs() if j["state"] not in TERMINAL or _alive(j["keeper"])]
            if not busy or time.monotonic() > deadline:
                return busy
            time.sleep(0.05)

    def cancel_all(self) -> None:
        for job in self.jobs():
            if job["state"] not in TERMINAL:
                self.cancel(job["number"])

    def leftovers(self) -> list[int]:
        """Processes, anywhere on this machine, that carry the marker of one of this spool's jobs."""
        return _marked(f"{MARKER}={self.config['token']}.".encode())

    # ------------------------------------------------------------ scheduling

    def _schedule(self) -> None:
        """Start pending jobs on free nodes (under the lock)."""
        self._reconcile()
        jobs = self.jobs()
        busy = {j["node"] for j in jobs if j["state"] == RUNNING}
        free = [n for n in self.nodes if n["name"] not in busy]
        for job in jobs:
            if not free:
                return
            if job["state"] != PENDING:
                continue
            node = free.pop(0)
            job.update(state=RUNNING, node=node["name"], started=time.time())
            self._write(job)
            self._spawn_keeper(job["number"])

    def _reconcile(self) -> None:
        """A running job whose keeper died is failed, and what it left is killed (under the lock)."""
        for job in self.jobs():
            if job["state"] == RUNNING and job["keeper"] and not _alive(job["keeper"]):
                self._sweep(job)
                job.update(state=FAILED, ended=time.time())
                self._write(job)

    def _spawn_keeper(self, number: int) -> None:
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        with open(self.job_dir(number) / "keeper.log", "ab") as log:
            subprocess.Popen([sys.executable, "-m", "tether_bench.batch", "--spool", str(self.root), "_keep",
                              str(number)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                             start_new_session=True, close_fds=True)

    # ------------------------------------------------------------ the keeper

    def keep(self, number: int) -> int:
        """Run job `number` to its end (the keeper process's whole life).

        The keeper adopts the job's orphans (a child subreaper) and reaps
        them, so none is left a zombie for an init that may not reap.
        """
        watched = {signal.SIGTERM, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, watched)   # taken by sigtimedwait below, never lost
        _become_subreaper()
        with self.locked():
            job = self.read(number)
            if job is None or job["state"] != RUNNING:
                return 1
            job["keeper"] = os.getpid()
            self._write(job)
        if job["cancel"]:   # cancelled between being given a node and this keeper's start
            return self._end(job, CANCELLED, None)
        try:
            proc = self._start(job)
        except OSError as e:
            print(f"job {number} could not start: {e}", file=sys.stderr)
            return self._end(job, FAILED, 127)
        with self.locked():
            job = self.read(number) or job
            job["pid"] = proc.pid
            self._write(job)
        deadline = time.monotonic() + job["walltime"] if job["walltime"] else None
        outcome, code = None, None
        while code is None:
            wait = 3600.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                outcome = TIMEOUT
                break
            got = signal.sigtimedwait(watched, wait)
            if got is not None and got.si_signo == signal.SIGTERM:
                outcome = CANCELLED
                break
            code = _reap(proc.pid)
        if outcome is not None:
            code = self._stop_group(proc.pid)
        proc.returncode = code   # reaped here, not by Popen
        return self._end(job, outcome or (COMPLETED if code == 0 else FAILED), code)

    def _start(self, job: dict[str, Any]) -> subprocess.Popen:
        number = job["number"]
        tmp = self.job_dir(number) / "tmp"
        tmp.mkdir(exist_ok=True)
        for path in job["inputs"]:
            if os.path.isdir(path):
                shutil.copytree(path, tmp / os.path.basename(path.rstrip("/")), dirs_exist_ok=True)
            else:
                shutil.copy(path, tmp)
        node = next(n for n in self.nodes if n["name"] == job["node"])
        env = {k: str(tmp) if v == "{tmp}" else v for k, v in job["env"].items()}
        env.update({MARKER: self.marker(number), SPOOL_ENV: str(self.root), "TMPDIR": str(tmp)})
        env.update({name: node["name"] for name in job["node_env"]})
        if job["nodefile_env"]:
            nodefile = self.job_dir(number) / "nodefile"
            nodefile.write_text(node["name"] + "\n")
            env.update({name: str(nodefile) for name in job["nodefile_env"]})
        argv = list(job["argv"])
        if node.get("netns"):
            argv = ["ip", "netns", "exec", node["netns"]] + argv
        cwd = str(tmp) if job["cwd"] == "{tmp}" else job["cwd"]
        for path in (job["stdout"], job["stderr"]):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(job["stdout"], "ab") as out, open(job["stderr"], "ab") as err:
            return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=_unblock_signals)

    def _stop_group(self, pid: int) -> int | None:
        """SIGTERM the job's group, SIGKILL it if anything in it outlives the grace period; its exit code."""
        _signal_group(pid, signal.SIGTERM)
        code = None
        deadline = time.monotonic() + float(self.config["grace"])
        killed = False
        while True:
            reaped = _reap(pid)   # adopted orphans too, or they would keep the group alive as zombies
            code = reaped if code is None else code
            if code is not None and not _group_alive(pid):
                return code
            if time.monotonic() > deadline:
                if killed:
                    return code
                _signal_group(pid, signal.SIGKILL)
                killed, deadline = True, time.monotonic() + 5
            time.sleep(0.02)

    def _end(self, job: dict[str, Any], state: str, code: int | None) -> int:
        self._sweep(job)
        shutil.rmtree(self.job_dir(job["number"]) / "tmp", ignore_errors=True)
        with self.locked():
            job = self.read(job["number"]) or job
            job.update(state=state, exit_code=code, ended=time.time())
            self._write(job)
            self._schedule()
        return 0

    def _sweep(self, job: dict[str, Any]) -> None:
        """SIGKILL whatever of a job is left: its group, its marked processes, its namespace's processes."""
        if job["pid"]:
            _signal_group(job["pid"], signal.SIGKILL)
        pids = _marked(f"{MARKER}={self.marker(job['number'])}".encode())
        node = next((n for n in self.nodes if n["name"] == job["node"]), None)
        if node is not None and node.get("netns"):
            listed = subprocess.run(["ip", "netns", "pids", node["netns"]], capture_output=True, text=True)
            pids += [int(p) for p in listed.stdout.split() if p.isdigit()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        _reap(0)


def _become_subreaper() -> None:
    """Orphans among this process's descendants become its children (Linux's PR_SET_CHILD_SUBREAPER)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)


def _reap(main: int) -> int | None:
    """Reap every child that has ended; the exit code of `main` if it was one of them."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        if pid == 0:
            return code
        if pid == main:
            code = os.waitstatus_to_exitcode(status)


def _unblock_signals() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _alive(pid: int | None) -> bool:
    """The process exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _marked(entry: bytes) -> list[int]:
    """Live processes whose environment has an entry starting with `entry`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if any(e.startswith(entry) for e in environ.split(b"\0")) and _alive(int(name)):
            found.append(int(name))
    return found


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def minimal_env() -> dict[str, str]:
    """What a job sees of the environment when the submitter's is not passed on."""
    env = {"PATH": MINIMAL_PATH, "SHELL": "/bin/bash"}
    for name in ("HOME", "USER", "LOGNAME", "LANG"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env
