"""A stand-in cluster for tests and benchmarks: nodes, a spool, and the batch commands first on PATH.

    with BatchCluster(tmp_path, nodes=2) as batch:
        TetherExecutor(address=batch.address, provider=SlurmProvider(...))
        ...

As root with iproute2, each node is a network namespace of an
EmulatedCluster, so a job's worker is on "another host" and reaches the
manager at batch.address; elsewhere nodes are slots on this host
(batch.namespace_reason says why) and batch.address is loopback. On leaving,
every job still queued or running is cancelled and waited for, PATH is put
back and the namespaces go; batch.left (processes of its jobs that outlived
them) should then be empty.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..cluster import EmulatedCluster, unavailable_reason
from . import write_shims
from .spool import Spool


class BatchCluster:
    """nodes: how many jobs can run at once. namespaces: None to use them where possible, or True/False."""

    def __init__(self, work_dir: str | os.PathLike, nodes: int = 2, *, namespaces: bool | None = None,
                 grace: float = 5.0, rate: str = "1gbit"):
        self.work_dir = Path(work_dir).absolute()
        self.size = nodes
        self.grace = grace
        self.rate = rate
        self.namespace_reason = unavailable_reason() if namespaces is not False else "namespaces not asked for"
        if namespaces and self.namespace_reason:
            raise RuntimeError(self.namespace_reason)
        self.emulated: EmulatedCluster | None = None
        self.spool: Spool | None = None
        self.bin_dir = self.work_dir / "bin"
        self.address = "127.0.0.1"
        self.left: list[int] = []
        self._old_path: str | None = None

    @property
    def namespaced(self) -> bool:
        return self.emulated is not None

    def __enter__(self) -> "BatchCluster":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        if self.namespace_reason is None:
            self.emulated = EmulatedCluster(self.size, rate=self.rate)
            self.emulated.open()
            nodes: list[dict] | int = [{"name": f"node{link.index}", "netns": link.namespace, "host": link.host}
                                       for link in self.emulated.links]
            self.address = self.emulated.manager_host
        else:
            nodes = self.size
        self.spool = Spool.create(self.work_dir / "spool", nodes, grace=self.grace)
        write_shims(self.bin_dir, self.spool)
        self._old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = os.pathsep.join([str(self.bin_dir), self._old_path])

    def close(self) -> None:
        """Cancel what still runs, wait for every job's end, and take the cluster down."""
        try:
            if self.spool is not None:
                self.spool.cancel_all()
                busy = self.spool.settle(timeout=self.grace + 30)
                if busy:
                    raise RuntimeError(f"jobs did not end: {[j['number'] for j in busy]}")
                self.left = self.spool.leftovers()
        finally:
            if self._old_path is not None:
                os.environ["PATH"] = self._old_path
                self._old_path = None
            if self.emulated is not None:
                self.emulated.close()

    def jobs(self, system: str | None = None) -> list[dict]:
        assert self.spool is not None
        return self.spool.jobs(system)

    def node_host(self, name: str) -> str | None:
        """The address a node's jobs have (None for a node on this host)."""
        assert self.spool is not None
        return self.spool.node_host(name)
