"""`tether bench wire`: what TLS costs, side by side with plain links.

Two figures, each with TLS off and on (`Manager(tls="never")` against
`tls="always"`, which encrypts even links on this host), on local workers:

  noop      no-op Python tasks a second (each task's assignment and report
            cross the encrypted control link)
  transfer  a temp of `size` bytes made on one worker and read on another
            (resources force them apart): the time from the maker's end to
            the reader's start is the peer transfer, through the encrypted
            file link (no sendfile under TLS)

and, without TLS, what an Executor's values left on their workers cost to
bring here (`values` calls of 256 KiB each, all ended before the clock
starts): one result() round trip each (values-each) against one batch for
all (values-batched, Executor.gather).
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from .noop import native_throughput
from .report import Report, make_row, tether_figures
from .runner import Options, RowPlan

MODES = {"plain": "never", "tls": "always"}


def peer_transfer(tls: str, size: int, work_dir: Path, progress) -> dict:
    from tether.manager.local import WorkerSize, python_path, start_worker, stop_workers
    from tether.manager.manager import Manager
    from tether.task import Task
    from tether.wire.tls import TlsConfig

    with Manager(workers=0, host="127.0.0.1", run_dir=work_dir, tls=tls) as m:
        # resources force the two tasks apart: only the maker has the memory, only the reader two cores
        sizes = {"maker": WorkerSize(1, 4000, 100_000), "reader": WorkerSize(2, 100, 100_000)}
        workers = [start_worker(i, m._local_address, m.secret_file, size, m._work, m.run_dir, python_path(), 30.0,
                                TlsConfig(m._secret, tls)) for i, size in enumerate(sizes.values(), start=1)]
        try:
            m.wait_for_workers(2)
            big, digest = m.declare_temp(), m.declare_temp()
            started = time.perf_counter()
            made = m.submit(Task(f"head -c {size} /dev/zero > big && cksum < big > sum",
                                 outputs={"big": big, "sum": digest}, memory=1000))
            read = m.submit(Task("cksum < big", inputs={"big": big}, cores=2))
            r, mk = read.result(600), made.result(600)
            elapsed = time.perf_counter() - started
            progress(1)
            made_sum = m.fetch(digest, timeout=60).decode().strip()
            stats = m.stats()
        finally:
            stop_workers(workers)
    name = "transfer-" + next(k for k, v in MODES.items() if v == tls)
    crossed = r.started - mk.finished
    correct = r.stdout.strip() == made_sum and r.worker != mk.worker
    return make_row(name, makespan_s=elapsed, tasks=2, bytes_moved=size, transfer_s=crossed,
                    transfer_mb_per_s=size / crossed / 1e6 if crossed > 0 else None, correct=correct,
                    problems=[] if correct else [f"read on {r.worker}, made on {mk.worker}; sums {r.stdout!r} "
                                                 f"{made_sum!r}"], **tether_figures(stats))


VALUE_BYTES = 256 << 10


def value_of(i: int) -> bytes:
    return i.to_bytes(4, "big") * (VALUE_BYTES // 4)


def bring_values(batched: bool, count: int, workers: int, work_dir: Path, progress) -> dict:
    """Seconds to bring `count` values left on the workers here, one result() each or in one batch."""
    import concurrent.futures as cf

    from tether.executor import Executor

    name = "values-batched" if batched else "values-each"
    with Executor(workers=workers, cores_per_worker=1, run_dir=work_dir) as ex:
        ex.manager.wait_for_workers()
        futures = [ex.submit(value_of, i) for i in range(count)]
        cf.wait(futures)
        started = time.perf_counter()
        values = ex.gather(futures) if batched else [f.result() for f in futures]
        elapsed = time.perf_counter() - started
        progress(count)
        stats = ex.stats()
    problems = [] if values == [value_of(i) for i in range(count)] else ["a value came back wrong"]
    if stats["reruns"]:
        problems.append(f"{stats['reruns']} values could not be brought and were made again")
    return make_row(name, makespan_s=elapsed, tasks=count, bytes_moved=count * VALUE_BYTES,
                    per_value_ms=elapsed / count * 1e3, correct=not problems, problems=problems,
                    **tether_figures(stats))


def plans(options: Options, tasks: int, size: int) -> tuple[dict, list[RowPlan]]:
    if options.quick:
        tasks, size = min(tasks, 200), min(size, 50_000_000)
    w = options.workers
    values = 50 if options.quick else 500
    runners = {
        "noop-plain": (tasks, partial(native_throughput, tasks, w, name="noop-plain", tls=MODES["plain"])),
        "noop-tls": (tasks, partial(native_throughput, tasks, w, name="noop-tls", tls=MODES["tls"])),
        "transfer-plain": (1, partial(peer_transfer, "never", size)),
        "transfer-tls": (1, partial(peer_transfer, "always", size)),
        "values-each": (values, partial(bring_values, False, values, w)),
        "values-batched": (values, partial(bring_values, True, values, w)),
    }
    names = options.wanted(list(runners))
    parameters = {"tasks": tasks, "transfer_bytes": size, "values": values, "value_bytes": VALUE_BYTES, "workers": w,
                  "quick": options.quick}
    return parameters, [RowPlan(n, runners[n][0], runners[n][1]) for n in names]


def check_targets(report: Report) -> list[dict]:
    return []
