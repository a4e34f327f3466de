"""The manager's side of `tether status`: a snapshot of the run, and the link that serves it.

A client that proves the secret in the "status" role sends one
StatusRequest and is answered with one Status, then the connection closes
(the client is in tether/status.py). The snapshot is read off the engine and
its scheduler core in the manager's loop thread, where they live, by one
pass over the tasks and the workers: nothing is kept for it between
requests, and nothing in the run changes because of it.
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..core.lifecycle import TaskState
from ..wire import codec
from ..wire import messages as m
from ..wire.errors import ProtocolError
from ..wire.framing import frame, read_frame

if TYPE_CHECKING:
    from .engine import Engine

REQUEST_LIMIT = 1024    # bytes of a request's frame (it has no fields)
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request after the handshake


def snapshot(engine: "Engine") -> m.Status:
    """The run as it stands: workers, tasks by state, groups, bytes moved."""
    core = engine.core
    by_state = core.counts_by_state()   # finished tasks the core let go of included
    groups: dict[int, int] = {}     # id(group) -> its size
    for t in core.tasks.values():
        g = t.group
        if g is not None and len(g.members) > 1:
            groups[id(g)] = len(g.members)
    workers = []
    for wid, link in engine.links.items():
        node = core.workers.get(wid)
        running = queued = assigned = cache = used = 0
        if node is not None:
            # the core counts a task RUNNING from when it may start there, a short queue included:
            # those that became RUNNING first and fill the cores run, the others wait their turn
            held = sorted((t for t in node.tasks if t.state is TaskState.RUNNING), key=_started)
            for t in held:
                if used + t.cores <= node.cores:
                    used += t.cores
                    running += 1
                else:
                    queued += 1
            assigned = sum(1 for t in node.tasks if t.state is TaskState.ASSIGNED)
            cache = sum(f.size for f in node.files if node in f.replicas)
        workers.append(m.WorkerStatus(wid, link.host, link.cores, used, running, queued, assigned, cache,
                                      link.cache_peak, link.joined))
    broken = str(engine.broken) if engine.broken is not None else None
    return m.Status(engine.run, engine.started, time.time(), tuple(workers),
                    tuple((s.name.lower(), by_state[s.name.lower()]) for s in TaskState), len(groups),
                    sum(groups.values()),
                    engine.bytes_manager_to_worker, engine.bytes_worker_to_manager, engine.bytes_worker_to_worker,
                    engine.bytes_arguments_to_worker, broken)


def _started(task) -> int:
    return task.active_seq


async def serve_status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, engine: "Engine") -> None:
    """Answer one StatusRequest on an authenticated connection, then close it."""
    try:
        request = codec.decode(await asyncio.wait_for(read_frame(reader, REQUEST_LIMIT), REQUEST_TIMEOUT))
        if type(request) is m.StatusRequest:
            writer.write(frame(codec.encode(snapshot(engine))))
            await writer.drain()
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ProtocolError, ConnectionError, OSError):
        pass
    finally:
        writer.close()
