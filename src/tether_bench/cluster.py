"""A cluster emulated on one machine, so that bytes moved cost real time.

Each worker lives in a network namespace of its own, joined to the root
namespace by a veth pair whose two ends are rate-limited (tc tbf): bytes
from the manager to a worker, from a worker to the manager, and from one
worker to another (routed through the root namespace) all cross a shaped
link. The manager stays in the root namespace and listens on `manager_host`,
which every namespace can reach. The namespaces have routes only to the
cluster's own addresses: no default route, no NAT, nothing beyond them.
Forwarding is turned on for the cluster's own root-side interfaces only
(it goes with them), so the machine's other interfaces are untouched.

    with EmulatedCluster(2, rate="1gbit") as cluster, \\
            Manager(workers=0, host=cluster.manager_host) as m, \\
            cluster.workers_for(m, cores=1):
        ...

(workers_for stops the workers before the manager closes, so the manager
does not close under connected workers.)

Everything it makes (namespaces, veth pairs and their qdiscs, worker
processes, their cache directories) is removed when the block is left,
normally, by an exception, by Ctrl-C or by SIGTERM. Leftovers of a run
whose process was killed outright (SIGKILL) are removed by the next run:
each run holds a lock in its directory, so a live run is never taken for
a dead one.
Needs root and iproute2 (`ip`, `tc`).
"""
from __future__ import annotations

import fcntl
import ipaddress
import logging
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from tether.manager.local import LocalWorker, python_path, stop_workers

log = logging.getLogger(__name__)

MAX_WORKERS = 4096
LOCK_NAME = "owner.lock"   # held by the running cluster; free once its process is gone
_NAMESPACE = re.compile(r"^tether-(\d+)-([0-9a-f]{6})-(\d+)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)(bit|bps)$")
_LOCAL_HOSTS = {"0.0.0.0", "::", "", "localhost", "127.0.0.1", "::1"}


class ClusterUnavailable(RuntimeError):
    """This machine cannot emulate a cluster (not root, or no iproute2)."""


class ClusterError(RuntimeError):
    """A command that builds the emulated cluster failed."""


def unavailable_reason() -> str | None:
    """Why a cluster cannot be emulated here, or None if it can be tried."""
    if os.geteuid() != 0:
        return "cluster emulation needs root (it makes network namespaces and veth pairs)"
    missing = [c for c in ("ip", "tc") if shutil.which(c) is None]
    if missing:
        return f"cluster emulation needs iproute2; not found: {', '.join(missing)}"
    return None


def rate_bytes_per_second(rate: str) -> float:
    """A tc rate ("1gbit", "100mbit", "125mbps") in bytes per second."""
    m = _RATE.match(rate.strip().lower())
    if m is None:
        raise ValueError(f"not a rate tc understands: {rate!r} (e.g. 1gbit, 100mbit, 125mbps)")
    value = float(m.group(1)) * 1000 ** " kmgt".index(m.group(2) or " ")
    return value / 8 if m.group(3) == "bit" else value


@dataclass(frozen=True)
class Link:
    """One worker's namespace and the veth pair that joins it to the root namespace."""

    index: int
    namespace: str
    root_dev: str      # the end in the root namespace
    worker_dev: str    # the end in the worker's namespace
    gateway: str       # address of root_dev: the worker reaches the manager and its peers through it
    host: str          # address of worker_dev: where the worker listens for peers


class EmulatedCluster:
    """Worker namespaces joined to the root namespace by rate-limited links.

    workers: how many namespaces (one worker each). rate: the tc rate of
    each link, in each direction. burst: bytes the token bucket may send at
    once [4 ms at the rate, at least 64 KiB].
    """

    def __init__(self, workers: int, rate: str = "1gbit", *, burst: int | None = None,
                 latency: str = "50ms", work_dir: str | os.PathLike | None = None):
        if not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be an integer from 1 to {MAX_WORKERS}, got {workers!r}")
        self.size = workers
        self.rate = rate
        self.rate_bytes = rate_bytes_per_second(rate)
        self.burst = burst or max(64 * 1024, int(self.rate_bytes * 0.004))
        self.latency = latency
        self.token = secrets.token_hex(3)
        self.links: list[Link] = []
        self.workers: list[LocalWorker] = []
        self._parent_dir = work_dir
        self.work_dir: Path | None = None
        self._namespaces: list[str] = []
        self._devices: list[str] = []
        self._previous_sigterm = None
        self._lock_file = None
        self._open = False

    # ------------------------------------------------------------ life cycle

    def __enter__(self) -> "EmulatedCluster":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise ClusterUnavailable(reason)
        if self._open:
            return
        self._open = True
        self._catch_sigterm()
        try:
            remove_stale(self._parent_dir)
            self.work_dir = Path(tempfile.mkdtemp(prefix=f"tether-cluster-{self.token}-", dir=self._parent_dir))
            self._lock_file = open(self.work_dir / LOCK_NAME, "w")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            block = _free_block(self.size)
            self.block = str(block)
            for i in range(self.size):
                self._add_link(i, block)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the workers and remove everything the cluster made. Safe to call twice.

        SIGINT and SIGTERM that arrive meanwhile are held and delivered
        after, so a second Ctrl-C does not leave half a cluster behind.
        """
        held: list[int] = []
        previous = self._hold_signals(held)
        try:
            if self.workers:
                self.stop_workers()
            for name in self._namespaces:
                _kill_members(name)
            for dev in reversed(self._devices):
                _run("ip", "link", "del", dev, check=False)
            for name in reversed(self._namespaces):
                _run("ip", "netns", "del", name, check=False)
            self._devices.clear()
            self._namespaces.clear()
            self.links.clear()
            if self.work_dir is not None:
                shutil.rmtree(self.work_dir, ignore_errors=True)
                self.work_dir = None
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None
            self._open = False
        finally:
            if self._previous_sigterm is not None and previous is not None:
                previous[signal.SIGTERM] = self._previous_sigterm
                self._previous_sigterm = None
            self._release_signals(previous, held)

    # ------------------------------------------------------------ workers

    @property
    def manager_host(self) -> str:
        """An address of the root namespace that every worker namespace can reach."""
        if not self.links:
            raise RuntimeError("the cluster is not open")
        return self.links[0].gateway

    def start_worker(self, index: int, address: str, secret_file: str | os.PathLike, *, cores: int = 1,
                     memory: int | None = None, disk: int | None = None, name: str | None = None,
                     extra_args: tuple[str, ...] = ()) -> LocalWorker:
        """Start `tether worker` in namespace `index`, for the manager at address (HOST:PORT).

        A manager listening on all interfaces (0.0.0.0) or on loopback is
        reached through the namespace's own gateway.
        """
        link = self.links[index]
        host, _, port = address.rpartition(":")
        if host.strip("[]") in _LOCAL_HOSTS:
            host = link.gateway
        name = name or f"cluster-{index}"
        assert self.work_dir is not None
        cache = self.work_dir / name
        log_path = self.work_dir / f"{name}.log"
        cmd = ["ip", "netns", "exec", link.namespace, sys.executable, "-m", "tether", "worker",
               f"{host}:{port}", "--cores", str(cores), "--cache-dir", str(cache),
               "--secret-file", str(secret_file), "--name", name, "--clean", "--connect-timeout", "30"]
        if memory is not None:
            cmd += ["--memory", str(memory)]
        if disk is not None:
            cmd += ["--disk", str(disk)]
        cmd += list(extra_args)
        return self._popen(index, cmd, cache, log_path)

    def start_process(self, index: int, args: list[str], name: str, env: dict[str, str] | None = None
                      ) -> LocalWorker:
        """Start another system's worker (any command) inside namespace `index`, with this
        interpreter's import path; its output goes to NAME.log in the cluster's directory, and it is
        stopped with the workers (or by `stop_workers([it])`)."""
        if not 0 <= index < len(self.links):
            raise ValueError(f"no namespace {index}: the cluster has {len(self.links)}")
        assert self.work_dir is not None
        cmd = ["ip", "netns", "exec", self.links[index].namespace, *args]
        return self._popen(index, cmd, self.work_dir / name, self.work_dir / f"{name}.log", env)

    def _popen(self, index: int, cmd: list[str], work_dir: Path, log_path: Path,
               extra_env: dict[str, str] | None = None) -> LocalWorker:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(python_path())
        env.update(extra_env or {})
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                    start_new_session=True)
        worker = LocalWorker(index, proc, work_dir, log_path)
        self.workers.append(worker)
        return worker

    def start_workers(self, address: str, secret_file: str | os.PathLike, *, cores: int = 1,
                      memory: int | None = None, disk: int | None = None,
                      extra_args: tuple[str, ...] = ()) -> list[LocalWorker]:
        """One worker in each namespace, all of the same size."""
        return [self.start_worker(i, address, secret_file, cores=cores, memory=memory, disk=disk,
                                  extra_args=extra_args) for i in range(len(self.links))]

    @contextmanager
    def workers_for(self, manager, *, cores: int = 1, memory: int | None = None, disk: int | None = None,
                    timeout: float = 60.0):
        """A worker in each namespace for `manager`, connected on entry and stopped on exit."""
        before = manager.stats()["workers"]
        started = self.start_workers(manager.address, manager.secret_file, cores=cores, memory=memory,
                                     disk=disk)
        try:
            try:
                manager.wait_for_workers(before + len(started), timeout=timeout)
            except TimeoutError as e:
                tails = "\n".join(f"worker in namespace {w.index}: {w.log_tail(500)}"
                                  for w in started if w.proc.poll() is not None)
                raise ClusterError(f"{e}; workers that exited said:\n{tails}") from None
            yield started
        finally:
            self.stop(started)

    def stop(self, processes: list[LocalWorker], grace: float = 5.0) -> None:
        """Stop some of the processes started here (one row's), leaving the others running."""
        stop_workers(processes, grace)
        self.workers = [w for w in self.workers if w not in processes]

    def stop_workers(self, grace: float = 5.0) -> None:
        stop_workers(self.workers, grace)
        self.workers.clear()

    def traffic(self) -> list[dict[str, int]]:
        """Bytes the kernel counted on each worker's link so far (IP headers included).

        to_worker: sent down the link (from the manager or another worker);
        from_worker: sent up it. A check on what tether says it moved.
        """
        out = []
        for link in self.links:
            stats = Path(f"/sys/class/net/{link.root_dev}/statistics")
            out.append({"to_worker": int((stats / "tx_bytes").read_text()),
                        "from_worker": int((stats / "rx_bytes").read_text())})
        return out

    def run(self, index: int, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run a command inside namespace `index` and wait for it."""
        return subprocess.run(["ip", "netns", "exec", self.links[index].namespace, *args],
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    # ------------------------------------------------------------ building

    def _add_link(self, i: int, block: ipaddress.IPv4Network) -> None:
        ns = f"tether-{os.getpid()}-{self.token}-{i}"
        root_dev, worker_dev = f"tt{self.token}r{i}", f"tt{self.token}w{i}"
        base = block.network_address + 4 * i
        gateway, host = str(base + 1), str(base + 2)
        _run("ip", "netns", "add", ns, first=not self._namespaces)
        self._namespaces.append(ns)
        _run("ip", "link", "add", root_dev, "type", "veth", "peer", "name", worker_dev, "netns", ns)
        self._devices.append(root_dev)
        _run("ip", "addr", "add", f"{gateway}/30", "dev", root_dev)
        _run("ip", "link", "set", root_dev, "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "addr", "add", f"{host}/30", "dev", worker_dev)
        _run("ip", "-n", ns, "link", "set", worker_dev, "up")
        _run("ip", "-n", ns, "route", "add", str(block), "via", gateway)
        shape = ["root", "tbf", "rate", self.rate, "burst", str(self.burst), "latency", self.latency]
        _run("tc", "qdisc", "add", "dev", root_dev, *shape)
        _run("tc", "-n", ns, "qdisc", "add", "dev", worker_dev, *shape)
        if self.size > 1:
            # worker to worker goes through the root namespace: forward, but only between our links
            Path(f"/proc/sys/net/ipv4/conf/{root_dev}/forwarding").write_text("1")
        self.links.append(Link(i, ns, root_dev, worker_dev, gateway, host))

    # ------------------------------------------------------------ signals

    def _catch_sigterm(self) -> None:
        """Turn SIGTERM into SystemExit while the cluster is up, so that it is taken down."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)

    @staticmethod
    def _hold_signals(held: list[int]) -> dict | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        return {s: signal.signal(s, lambda signum, frame: held.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _release_signals(previous: dict | None, held: list[int]) -> None:
        if previous is None:
            return
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])


def remove_stale(parent: str | os.PathLike | None = None) -> list[str]:
    """Remove what emulated clusters killed outright left behind; returns the namespaces removed.

    A namespace counts as left behind when the process named in it is gone
    and the lock in its cluster's directory (under `parent`, by default the
    temporary directory) is free. Without that directory it is left alone.
    """
    removed = []
    dead_dirs: set[Path] = set()
    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    for name in _namespaces():
        m = _NAMESPACE.match(name)
        if m is None or psutil.pid_exists(int(m.group(1))):
            continue
        dirs = [d for d in root.glob(f"tether-cluster-{m.group(2)}-*") if (d / LOCK_NAME).exists()]
        if not dirs or not all(_lock_is_free(d / LOCK_NAME) for d in dirs):
            continue
        _kill_members(name)
        _run("ip", "link", "del", f"tt{m.group(2)}r{m.group(3)}", check=False)
        _run("ip", "netns", "del", name, check=False)
        removed.append(name)
        dead_dirs.update(dirs)
    for d in dead_dirs:
        shutil.rmtree(d, ignore_errors=True)
    if removed:
        log.warning("removed %d network namespaces left by emulated clusters whose process was killed",
                    len(removed))
    return removed


def _namespaces() -> list[str]:
    return [line.split(" ", 1)[0] for line in _run("ip", "netns", "list", check=False).stdout.splitlines()]


def _lock_is_free(path: Path) -> bool:
    try:
        with open(path, "r") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
    except OSError:
        return False


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _kill_members(namespace: str) -> None:
    """SIGKILL whatever still runs inside a namespace (a worker's tasks, say)."""
    pids = _run("ip", "netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + 5
    for pid in pids:
        try:
            p = psutil.Process(int(pid))
            p.wait(max(0.0, deadline - time.monotonic()))
        except (psutil.Error, ValueError):
            pass


def _free_block(workers: int) -> ipaddress.IPv4Network:
    """A random block of 10.0.0.0/8 with a /30 per worker that no route or address here overlaps."""
    bits = max(8, 2 + math.ceil(math.log2(workers)))
    used = _used_networks()
    pool = ipaddress.ip_network("10.0.0.0/8")
    count = 2 ** (32 - pool.prefixlen - bits)
    for _ in range(1000):
        start = int(pool.network_address) + secrets.randbelow(count) * 2 ** bits
        block = ipaddress.ip_network((start, 32 - bits))
        if block.network_address.packed[1] == 0:
            continue  # keep clear of 10.0.x.x, a favourite of other tools
        if not any(block.overlaps(u) for u in used):
            return block
    raise ClusterError("found no free address block in 10.0.0.0/8 for the emulated cluster")


def _used_networks() -> list[ipaddress.IPv4Network]:
    text = _run("ip", "-4", "-o", "route", "show", "table", "all").stdout
    text += _run("ip", "-4", "-o", "addr", "show").stdout
    used = []
    for token in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", text):
        try:
            net = ipaddress.ip_network(token, strict=False)
        except ValueError:
            continue
        if net.prefixlen > 0:
            used.append(net)
    return used


def _run(*args: str, check: bool = True, first: bool = False) -> subprocess.CompletedProcess:
    """Run ip or tc. In a session of its own, so a Ctrl-C at the terminal does not cut it short."""
    p = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    if check and p.returncode != 0:
        message = f"`{' '.join(args)}` failed: {p.stderr.strip()}"
        if first and ("not permitted" in p.stderr.lower() or "permission" in p.stderr.lower()):
            raise ClusterUnavailable(f"cluster emulation is not permitted here: {message}")
        raise ClusterError(message)
    return p
