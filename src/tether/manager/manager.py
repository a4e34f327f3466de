"""The user-facing Manager: declare files, submit tasks, get Futures.

Thread-safe: any thread may declare and submit. The work of scheduling
happens in the manager's own event-loop thread (see engine.py); submit only
checks the task, freezes what the workers will need, and hands it over.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import gc
import itertools
import logging
import os
import pickle
import secrets
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import cloudpickle

from .. import pickling, spill
from ..contexts import Context
from ..core import CategorySet, FileReleased, FileSpec, NoWorkers, Scheduler, TaskCancelled, TaskSubmitted
from ..core.graph import check_options as check_graph_options
from ..files import MADE_ON_WORKERS, File, hash_bytes
from ..memo import MemoStore, default_dir
from ..memo.fingerprint import arguments_digest
from ..memo.planner import Planner
from ..memo.recorder import Recorder
from ..wire.handshake import new_secret, read_secret_file
from ..wire.messages import Make, TaskSpec
from ..wire.tls import TlsConfig
from ..refs import ResultRef
from ..task import LargeArgumentWarning, PythonTask, SerializationError, Task, TaskResult, check_text
from .engine import DEFAULT_HEARTBEAT, Engine, TaskRecord
from .results import task_result
from .local import LocalWorker, WorkerSize, kill_sessions, python_path, start_worker, stop_workers
from .loop import LoopThread
from . import recipes, rundir
from .progress import ProgressBar
from .progress import wanted as progress_wanted
from .txlog import TxLog

log = logging.getLogger("tether.manager")

_manager_ids = itertools.count(1)
YIELD_EVERY = 32  # submits in a row before the submitting thread yields the GIL
GC_GEN0 = 20_000  # young-generation threshold of Python's garbage collector while managers are open
RESTART_WINDOW = 60.0   # seconds over which restarts of local workers are counted
CLOSE_POLL = 0.05       # seconds between looks at what close(wait=True) waits for
CLOSED = "the manager was closed"   # why unfinished tasks fail at close
CLOSED_WITHOUT_WORKERS = "the manager was closed, and no worker was left to run it"
LARGE_ARGUMENTS = 10_000_000   # a call whose pickled arguments pass this many bytes gets a LargeArgumentWarning
BUFFERED_ARGUMENT = 4 << 20    # an argument whose pickle passes this goes as a content-named buffer
RECORD_WITH_COMPLETION = 64 << 10   # a memoized task's outputs up to this size come back with its completion


class _GcThreshold:
    """Raise the collector's young-generation threshold while any manager is open.

    A manager makes a few dozen objects per task, so with the default
    threshold (700) the cyclic collector runs every couple of dozen submits
    and, with many tasks alive, its older generations cost a large share of
    submission time. The threshold is process-wide: it is restored when the
    last manager closes.
    """

    _lock = threading.Lock()
    _open = 0
    _saved: tuple[int, int, int] | None = None

    @classmethod
    def acquire(cls) -> None:
        with cls._lock:
            if cls._open == 0:
                cls._saved = gc.get_threshold()
                if cls._saved[0] < GC_GEN0:
                    gc.set_threshold(GC_GEN0, *cls._saved[1:])
            cls._open += 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._open -= 1
            if cls._open == 0 and cls._saved is not None:
                gc.set_threshold(*cls._saved)


class TaskFuture(concurrent.futures.Future):
    """A Future for one task. `info` holds its TaskResult once it succeeded."""

    def __init__(self, task_id: int, on_cancel):
        super().__init__()
        self.task_id = task_id
        self._info: TaskResult | tuple | None = None
        self._on_cancel = on_cancel

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except TimeoutError:   # said plainly, with what the manager knows: are there workers at all?
            manager = getattr(self._on_cancel, "__self__", None)
            if not isinstance(manager, Manager):
                raise
            raise manager._timeout_error(self.task_id, timeout) from None

    @property
    def info(self) -> TaskResult | None:
        info = self._info
        if type(info) is tuple:   # what the engine recorded; made into a TaskResult when first read
            info = self._info = task_result(*info)
        return info

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled:
            # cancelled for good: no result will be delivered, so waiters are told now
            # (concurrent.futures.wait counts a cancelled future as done only once notified)
            self.set_running_or_notify_cancel()
            self._on_cancel(self.task_id)
        return cancelled


class Manager:
    """Holds the task graph and the workers; see the README for the whole API.

    workers: local worker processes to start (0: none; remote workers connect
    to `address` with the secret in `secret_file`). run_dir: the directory
    under which this run's directory is made (see rundir.py; `self.run_dir`
    names the run's own, which stays after close). transactions: keep the
    transaction log. dashboard: serve a live page of the run (and Prometheus
    metrics) on this port of localhost, or at "HOST:PORT" (0: any free port;
    `dashboard_url` names it). progress: a progress bar on stderr (None: when
    stderr is a terminal). placement: "graph" (groups, and tasks whose files
    meet later placed together), "groups" (groups alone) or "none"
    (group_tasks=False); order: which ready task goes first, "depth" (the
    default), "critical" or "breadth"; prune: levels below its readers a temp waits for
    before it is deleted (None: kept until its File is let go of). See the
    README's "Placement, order and pruning". memo: memoize every task (True, or the directory of
    the record), none (False), or those that ask with memo=True (None);
    memo_dir: the record's directory (default: memo.default_dir()).
    """

    def __init__(self, workers: int | None = None, *, cores_per_worker: int | None = None,
                 memory_per_worker: int | None = None, disk_per_worker: int | None = None,
                 gpus_per_worker: int = 0, group_tasks: bool = True, host: str | None = None, port: int = 0,
                 secret: bytes | str | None = None, secret_file: str | os.PathLike | None = None,
                 run_dir: str | os.PathLike | None = None, bandwidth: float = 125e6,
                 queue_time: float = 0.02, restart_local_workers: bool = True,
                 heartbeat: float = DEFAULT_HEARTBEAT, system_retries: int = 3, tls: str = "auto",
                 tls_files: tuple[str, str, str] | None = None, preload: tuple[str, ...] = (),
                 transactions: bool = True, dashboard: int | str | None = None, progress: bool | None = None,
                 placement: str | None = None, order: str = "depth", prune: int | None = 0,
                 memo: bool | str | os.PathLike | None = None, memo_dir: str | os.PathLike | None = None):
        if workers is None:
            workers = os.cpu_count() or 1
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
        if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or not 0.2 <= heartbeat < 1e6:
            raise ValueError(f"heartbeat must be a number of seconds from 0.2 on, got {heartbeat!r}")
        if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, int) or gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be a non-negative integer, got {gpus_per_worker!r}")
        if isinstance(system_retries, bool) or not isinstance(system_retries, int) or system_retries < 0:
            raise ValueError(f"system_retries must be a non-negative integer, got {system_retries!r}")
        if isinstance(preload, str) or not all(isinstance(p, str) and p and all(
                part.isidentifier() for part in p.split(".")) for p in preload):
            raise ValueError(f"preload must be a list of module names, got {preload!r}")
        placement = check_graph_options(placement, order, prune, group_tasks)
        memo_every, memo_dir = _memo_options(memo, memo_dir)
        self.run = f"{secrets.token_hex(4)}"
        self._memo: Planner | None = None
        self._memo_off = memo is False
        self._memo_dir = memo_dir
        self._serial = itertools.count(1)
        self._lock = threading.Lock()
        self._producers: dict[str, int] = {}
        self._submitted: list[tuple[TaskRecord, TaskSubmitted]] = []
        self._fn_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._context_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # Context -> its buffer
        self._buffer_lock = threading.Lock()
        self._arg_buffers: dict[str, list] = {}   # buffer of an argument -> [tasks using it, ids of bytes memoized]
        self._arg_memo: dict[int, tuple[Any, str, int]] = {}   # id of a bytes argument -> (it, buffer, size)
        self._recipes: dict[str, recipes.Recipe] = {}   # files each worker makes for itself -> how
        self._mini_temps: dict[str, int] = {}   # temps declared as mini-tasks' outputs -> the mini-task
        self._closed = False
        self._local: list[LocalWorker] = []
        self._restart = restart_local_workers
        self._restarts: collections.deque[float] = collections.deque()   # times of recent restarts
        self._replacing: set[LocalWorker] = set()   # local workers whose link ended, being dealt with
        self._max_restarts = max(4, 2 * workers)   # in any RESTART_WINDOW seconds: more is a crash loop
        self.heartbeat = float(heartbeat)
        self._final_stats: dict[str, Any] | None = None
        self._manager_log: rundir.ManagerLog | None = None
        self._txlog: TxLog | None = None
        self._page = None
        self._progress = None
        self.dashboard_url: str | None = None
        page_at = _dashboard_address(dashboard, transactions)
        show_progress = progress_wanted(progress)
        self.run_dir = rundir.make(run_dir, self.run)
        self._work = self.run_dir / "work"   # the secret and local workers' caches: gone at close
        _GcThreshold.acquire()   # released by close(), which the except below calls too
        try:
            self._secret = self._load_secret(secret, secret_file)
            self.secret_file = Path(secret_file) if secret_file else self._work / "secret"
            if not secret_file:
                fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(self._secret)
            self.core = Scheduler(bandwidth=bandwidth, queue_time=queue_time, system_retries=system_retries,
                                  park=True, placement=placement, order=order, prune=prune)
            self._loop = LoopThread()
            self._manager_log = rundir.ManagerLog(self.run_dir / "manager.log", self._loop.thread, self.run)
            cert, key, ca = tls_files if tls_files is not None else (None, None, None)
            self.tls = TlsConfig(self._secret, tls, cert, key, ca)
            self.engine = Engine(self.core, self._secret, on_worker_lost=self._worker_lost,
                                 heartbeat=self.heartbeat, tls=self.tls)
            self.engine.preload = tuple(preload)
            self.engine.park_dir = self._work / "parked"   # temps the last worker leaves: gone at close
            if transactions:
                self._txlog = self.engine.txlog = TxLog(self.run_dir / "transactions", self.run)
            self.engine.run = self.run
            bind = host or ("127.0.0.1" if workers else "0.0.0.0")
            bound_host, bound_port = self._loop.run(self.engine.start(bind, port))
            shown = bound_host if bound_host not in ("0.0.0.0", "::") else socket.getfqdn()
            self.address = f"{shown}:{bound_port}"
            if self._txlog is not None:
                self._txlog.add("MANAGER", "STARTED", f"address={self.address} workers={workers} tls={tls}")
            if page_at is not None:
                from ..report.live import LivePage
                self._page = LivePage(*page_at, source=self.run_dir / "transactions",
                                      title=f"tether run {self.run}").start()
                self.dashboard_url = self._page.url
                log.info("live page of run %s at %s", self.run, self.dashboard_url, extra={"run": self.run})
            if show_progress:
                self._progress = ProgressBar(self.engine, self.run)
            log.info("manager %s listening at %s; run directory %s", self.run, self.address, self.run_dir,
                     extra={"run": self.run})
            self._local_address = f"127.0.0.1:{bound_port}" if bind in ("0.0.0.0", "127.0.0.1") else self.address
            self.worker_size = WorkerSize.share_of_machine(workers, self._work, cores_per_worker,
                                                           memory_per_worker, disk_per_worker, gpus_per_worker)
            self._embedded = workers > 0
            self._max_cores = self.worker_size.cores if workers > 0 else 1 << 30
            self._path = python_path()
            if memo_every or memo_dir is not None:
                self._open_memo(memo_every)
            for i in range(workers):
                self._start_local(i + 1)
        except BaseException:
            self.close(wait=False)
            raise

    # ------------------------------------------------------------ set-up

    @staticmethod
    def _load_secret(secret, secret_file) -> bytes:
        if secret is not None and secret_file is not None:
            raise ValueError("give secret or secret_file, not both")
        if secret_file is not None:
            return read_secret_file(secret_file)
        if secret is not None:
            data = secret.encode() if isinstance(secret, str) else bytes(secret)
            if len(data) < 16:
                raise ValueError("the secret must be at least 16 bytes")
            return data
        return new_secret()

    def _open_memo(self, every: bool) -> Planner:
        """The memo record's store, and its two sides: deciding hits here, recording in the loop."""
        store = MemoStore(self._memo_dir if self._memo_dir is not None else default_dir())
        recorder = Recorder(store, self.engine._spawn, self.engine.served)
        self.engine.memo = recorder
        self._memo = Planner(store, every, recorder)
        log.info("memo record of run %s in %s (%s)", self.run, store.root,
                 "every task" if every else "tasks that ask", extra={"run": self.run})
        return self._memo

    def _memo_for(self, asked: bool | None) -> Planner | None:
        """The planner when this task is memoized (asked: its memo=), else None."""
        memo = self._memo
        if memo is not None:
            return memo if memo.wanted(asked) else None
        if not asked:
            return None
        if self._memo_off:
            raise ValueError("the task asks for memo=True, but this manager was opened with memo=False")
        with self._lock:
            if self._memo is None:
                self._open_memo(False)
        return self._memo

    def _start_local(self, index: int) -> None:
        self._local.append(start_worker(index, self._local_address, self.secret_file, self.worker_size,
                                        self._work, self.run_dir, self._path, self.heartbeat, self.tls))

    def _worker_lost(self, worker_id: str, pid: int, given_up: bool) -> None:
        """Called in the loop thread when a worker's link ends: a local one is stopped for good
        (it may be hung rather than dead) and replaced, unless they keep dying. given_up: this
        side declared it lost (it was silent), so it is not waited for."""
        for w in self._local:
            if w.proc.pid == pid and not w.replaced:
                w.replaced = True
                self._replacing.add(w)
                asyncio.ensure_future(self._replace(w, 0 if given_up else 50))
                return

    async def _replace(self, w: LocalWorker, patience: int) -> None:
        try:
            await self._replace_one(w, patience)
        finally:
            self._replacing.discard(w)

    async def _replace_one(self, w: LocalWorker, patience: int) -> None:
        for _ in range(patience):   # a worker that left on its own exits within moments
            if w.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        if w.proc.poll() is None:   # hung, stopped or cut off: it will not be trusted again
            kill_sessions([w.proc.pid])
            await asyncio.get_running_loop().run_in_executor(None, w.proc.wait)
        if self._closed or self.engine.closing:
            return
        log.warning("local worker %s ended (exit code %s); log tail:\n%s", w.name, w.proc.returncode,
                    w.log_tail())
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        if self._restart and len(self._restarts) < self._max_restarts:
            self._restarts.append(now)
            self._start_local(max(x.index for x in self._local) + 1)
            return
        if self._local and not self.engine.links and all(x.proc.poll() is not None for x in self._local):
            why = ("local workers are not restarted (restart_local_workers=False)" if not self._restart else
                   f"{len(self._restarts)} local workers were started in the last {RESTART_WINDOW:g} s and "
                   "died")
            self.engine.handle(NoWorkers(f"no worker is left to run it: {why}; the last one's log "
                                         f"ends:\n{w.log_tail(800)}"))

    def wait_for_workers(self, count: int | None = None, timeout: float = 60.0) -> int:
        """Block until `count` workers (default: the local ones) are connected."""
        want = len(self._local) if count is None else count

        async def wait() -> int:
            while len(self.engine.links) < want:
                dead = [w for w in self._local if w.proc.poll() is not None]
                if self._local and len(dead) == len(self._local):
                    raise RuntimeError(f"every local worker exited; the last one said:\n{dead[-1].log_tail()}")
                self.engine.worker_count_changed.clear()
                try:
                    await asyncio.wait_for(self.engine.worker_count_changed.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
            return len(self.engine.links)

        try:
            return self._loop.run(asyncio.wait_for(wait(), timeout))
        except (concurrent.futures.TimeoutError, asyncio.TimeoutError):
            raise TimeoutError(f"only {len(self.engine.links)} of {want} workers connected "
                               f"within {timeout} s") from None

    def _timeout_error(self, task_id: int, timeout: float | None) -> TimeoutError:
        """The TimeoutError of a result() that waited in vain, saying why when no worker is connected."""
        text = f"task {task_id} did not end within {timeout} s"
        if self._closed or len(self.engine.links):
            return TimeoutError(f"{text} ({len(self.engine.links)} workers connected)")
        if any(w.proc.poll() is None for w in self._local):
            return TimeoutError(f"{text}: no worker is connected yet; the {len(self._local)} local workers are "
                                f"still starting (their logs are in {self.run_dir})")
        if self._local:
            return TimeoutError(f"{text}: no worker is connected: the local workers have ended (their logs are "
                                f"in {self.run_dir})")
        return TimeoutError(f"{text}: no worker is connected to this manager, which started none "
                            f"(workers=0). Start one with: tether worker {self.address} "
                            f"--secret-file {self.secret_file}")

    def retire(self, workers: str | list[str], timeout: float = 60.0,
               reason: str = "the program retired it") -> list[dict[str, Any]]:
        """Send workers away without losing temps, and wait until they have left.

        Each takes no new work and gives back what it has not started; the
        temps only it holds that may still be needed (by a task to run, by a
        File the program still holds) are copied to workers that stay, or,
        when none stays, brought to this side and served from here to the
        workers that come later (kept in the run's work directory until
        nothing can read them); then it is told to stop. A worker that has not got that far
        `timeout` seconds on is sent away anyway, and a temp lost with it is
        made again if it is needed. Workers not connected are left out.
        Returns, for each worker retired: its id, the temps copied off it,
        those kept here ("kept_here"), those that could not be (a failed
        copy), and whether it was sent away at the deadline ("forced").
        """
        self._check_open()
        ids = [workers] if isinstance(workers, str) else list(workers)
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")

        async def retire() -> list[dict[str, Any]]:
            ends = self.engine.retire(ids, reason, timeout)
            if ends:
                await asyncio.wait([r.left for r in ends])
            return [{"worker": r.worker, "copied": r.copied, "kept_here": r.kept_here, "lost": r.lost,
                     "forced": r.forced} for r in ends]

        return self._loop.run(retire(), timeout + 30)

    def workers(self) -> list[dict[str, Any]]:
        """The connected workers: id, host, cores, and the tasks and files the scheduler counts there."""
        self._check_open()

        async def look() -> list[dict[str, Any]]:
            out = []
            for wid, link in self.engine.links.items():
                node = self.core.workers.get(wid)
                out.append({"worker": wid, "host": link.host, "cores": link.cores, "pid": link.pid,
                            "tasks": len(node.tasks) if node else 0,
                            "files": len(node.files) if node else 0,
                            "bytes": sum(f.size for f in node.files) if node else 0,
                            "retiring": bool(node and node.retiring)})
            return out

        return self._loop.run(look())

    # ------------------------------------------------------------ files

    def _new_file(self, kind: str, **kw) -> File:
        self._check_open()
        return File(kind, self.run, next(self._serial), **kw)

    def declare_file(self, path: str | os.PathLike, *, keep: bool = False) -> File:
        """A file on this side: an input (read when a task first uses it) or an output (written back)."""
        p = Path(path).absolute()
        if p.is_dir():
            raise IsADirectoryError(f"{p} is a directory; declare_file takes a file")
        if not p.parent.is_dir():
            raise FileNotFoundError(f"directory of {p} does not exist")
        return self._new_file("local", path=p, keep=keep)

    def declare_buffer(self, data: bytes | bytearray | memoryview, *, keep: bool = False) -> File:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"declare_buffer takes bytes, got {type(data).__name__}")
        return self._new_file("buffer", data=bytes(data), keep=keep)

    def declare_temp(self, *, keep: bool = False) -> File:
        """An intermediate file: made by one task, kept only in worker caches."""
        return self._new_file("temp", keep=keep)

    def declare_url(self, url: str, *, keep: bool = False) -> File:
        """A file each worker that reads it fetches from url itself (http, https or file), once.

        Every task on that worker shares its copy. keep=True: the copy stays in the worker's
        cache after the run, and a later run's first reader there revalidates it (a conditional
        GET; 304 keeps it). A fetch that fails fails the reading task, naming the URL and why."""
        self._check_open()
        name = recipes.url_name(url)
        return self._made_on_workers("url", name, recipes.Recipe(Make("url", url, keep=bool(keep)), ()),
                                     url)

    def declare_untar(self, archive: File) -> File:
        """The unpacked directory of a tar archive (plain, gzip, bzip2 or xz), which may be any File:
        declared, a buffer, a URL, a temp, a mini-task's output.

        Each worker unpacks it once, read-only, and links it into the sandbox of every task reading
        it. An archive with a member that would land outside it (an absolute path, '..', a link
        out, a device) is refused whole: its readers fail naming the member."""
        self._check_open()
        self._check_file(archive)
        name, recipe = recipes.untar(archive, self.engine.served, self._recipes)
        return self._made_on_workers("untar", name, recipe, f"{archive.describe()} unpacked")

    def declare_minitask(self, task: Task | PythonTask) -> File:
        """The one output of task, made on each worker that needs it by running task there once.

        Declare the output with declare_temp() and read the File returned here (never that temp)
        in the tasks that need it; every task on a worker shares its copy. It may be a file or a
        directory (shared read-only). The mini-task is not submitted: a worker runs it, with its
        cores, memory and disk, before the first task there that reads its output. If it fails,
        those tasks fail as a transfer does (retried elsewhere, then SystemFailure), naming it and
        its error."""
        self._check_open()
        if not isinstance(task, (Task, PythonTask)):
            raise TypeError(f"declare_minitask takes a Task or PythonTask, got {type(task).__name__}")
        if len(task.outputs) != 1:
            raise ValueError(f"a mini-task makes exactly one output; task {task.id} declares {len(task.outputs)}")
        (sandbox, out), = task.outputs.items()
        self._check_file(out)
        if out.kind != "temp":
            raise ValueError(f"mini-task {task.id}'s output {sandbox!r} must be declared with declare_temp(), "
                             f"not be {out.describe()}")
        self._check_fits(task)
        with self._lock:
            other = self._producers.get(out.name)
            if other is not None:
                raise ValueError(f"output {out.describe()} is already made by task {other}")
            self._producers[out.name] = task.id
        name = f"mini-{self.run}-{next(self._serial)}"
        inputs: list[tuple[str | None, str]] = []
        specs: list[FileSpec] = []
        self._input_specs(task, inputs, specs)
        spec, _ = self._spec(task, ((sandbox, name),), inputs, specs)   # its argument buffers stay served
        self._mini_temps[out.name] = task.id
        what = f"the output of mini-task {task.id} ({_name_of(task.fn) if isinstance(task, PythonTask) else task})"
        return self._made_on_workers("mini", name, recipes.mini(spec, inputs, specs, self._recipes), what)

    def _made_on_workers(self, kind: str, name: str, recipe: recipes.Recipe, what: str) -> File:
        self._recipes[name] = recipe
        self.engine.recipes[name] = recipe.make
        return self._new_file(kind, what=what, _name=name)

    def fetch(self, file: File, timeout: float | None = None) -> bytes:
        """The bytes of a file. For a temp, waits until it is made and keeps it from then on.

        A temp not kept is deleted once the last task reading it has ended; fetching it after
        that raises RuntimeError rather than run its producer again behind the program's back
        (a second run may cost much, or make other bytes than those its readers saw): declare it
        with keep=True, or fetch it before its last reader ends."""
        self._check_file(file)
        if file.kind == "buffer":
            return file.data or b""
        if file.kind in MADE_ON_WORKERS:
            raise ValueError(f"{file.describe()} is made by each worker that reads it, not kept here: read it "
                             "in a task")
        if file.kind == "local" and not file.produced:
            return file.path.read_bytes()
        try:
            return self._loop.run(self.engine.want(file.name, file.describe()), timeout)
        except ValueError:
            if file.name in self._producers:   # made by a task, then let go of with remove()
                raise RuntimeError(f"{file.describe()} was let go of with remove() and deleted from the "
                                   "workers: it can no longer be fetched") from None
            raise

    def remove(self, file: File) -> None:
        """Let a kept or fetched temp go: it is deleted once no consumer needs it.

        Dropping every reference to a File does the same (and lets the manager
        forget the tasks that made it, once nothing else needs them)."""
        self._check_file(file)
        if file.produced:
            self._loop.call(lambda: self.engine.handle(FileReleased(file.name)))

    # ------------------------------------------------------------ tasks

    def submit(self, task: Task | PythonTask) -> TaskFuture:
        """Hand a task to the manager; returns its Future at once."""
        self._check_open()
        if not isinstance(task, (Task, PythonTask)):
            raise TypeError(f"submit takes a Task or PythonTask, got {type(task).__name__}")
        record, event = self._prepare(task)
        future = record.future   # taken first: the loop lets go of it once the task ends
        self._enqueue(record, event)
        return future

    def _enqueue(self, record: TaskRecord, event: TaskSubmitted) -> None:
        """Hand a prepared task to the loop thread, batched with others submitted meanwhile."""
        self._check_open()
        with self._lock:
            self._submitted.append((record, event))
            waiting = len(self._submitted)
        if waiting == 1:  # one hand-over, and one scheduling pass, for everything submitted meanwhile
            self._loop.call(self._hand_over)
        elif waiting % YIELD_EVERY == 0:
            time.sleep(0)  # let the manager's thread take the GIL: a burst of submits must not starve it

    def _hand_over(self) -> None:
        with self._lock:
            batch, self._submitted = self._submitted, []
        self.engine.add_tasks([r for r, _ in batch], [e for _, e in batch])

    def _prepare(self, task: Task | PythonTask) -> tuple[TaskRecord, TaskSubmitted]:
        """Check a task and freeze what the core and the workers will need of it."""
        inputs: list[tuple[str | None, str]] = []
        in_specs: list[FileSpec] = []
        self._input_specs(task, inputs, in_specs)
        out_specs: list[FileSpec] = []
        outputs: tuple[tuple[str, str], ...] = ()
        if task.outputs:
            outputs = self._claim_outputs(task)
            out_specs = [FileSpec(f.name, home=f.kind == "local", keep=f.keep) for f in task.outputs.values()]
        if task.cores > self._max_cores or task.memory or task.disk or task.gpus:
            self._check_fits(task)
        memo = self._memo_for(task.memo)
        is_python = isinstance(task, PythonTask)
        spec, buffers = self._spec(task, outputs, inputs, in_specs)
        record = TaskRecord(task.id, TaskFuture(task.id, self._cancel), is_python, spec, inputs,
                            label=_name_of(task.fn) if is_python else None)
        if buffers:
            self._hold_buffers(record, buffers)
        hit = False
        if memo is not None:
            if is_python:
                kind, parts = "py", {"function": memo.identity(task.fn, spec.fn),
                                     "args": arguments_digest((task.args, task.kwargs))}
            else:
                kind, parts = "sh", {"command": task.command}
            parts["env"] = task.env
            homes = [(s, f.name, f.path if f.kind == "local" else None) for s, f in task.outputs.items()]
            out_specs, hit = self._memo_decide(memo, record, kind, parts, inputs, homes, out_specs)
        event = TaskSubmitted(task.id, tuple(in_specs), tuple(out_specs),
                              task.cores if "cores" in task.stated else 0, task.memory, task.disk, task.retries,
                              task.priority, task.gpus, task.category, task.tag, memo=hit)
        return record, event

    def _input_specs(self, task, inputs: list, in_specs: list) -> None:
        """Append each input of task, as (sandbox name, cache name) and FileSpec; a file each worker
        makes for itself brings what it is made from, read unlinked (sandbox name None)."""
        run = self.run
        served = self.engine.served
        for sandbox, f in task.inputs.items():
            if f.run != run:
                self._check_file(f)
            name = f.name
            inputs.append((sandbox, name))
            if f.kind == "buffer":
                served[name] = f.data
                in_specs.append(FileSpec(name, len(f.data), source=True))
            elif f.kind == "local" and not f.produced:
                served[name] = f.path
                in_specs.append(FileSpec(name, f.size, source=True))
            elif f.kind in MADE_ON_WORKERS:
                in_specs.append(FileSpec(name, recipe=True))
                for extra, spec in self._recipes[name].extras:
                    inputs.append((None, extra))
                    in_specs.append(spec)
            else:
                if self._mini_temps and name in self._mini_temps:
                    raise ValueError(f"input {sandbox!r} of task {task.id} is the temp mini-task "
                                     f"{self._mini_temps[name]} makes on each worker: read the File "
                                     "declare_minitask returned instead")
                in_specs.append(FileSpec(name, keep=f.keep))

    def _spec(self, task, outputs: tuple, inputs: list, in_specs: list) -> tuple[TaskSpec, tuple[str, ...]]:
        """What a worker needs to run task; a Python task's function and large arguments are
        appended to its inputs. Returns the spec and the names of its argument buffers."""
        buffers: tuple[str, ...] = ()
        if isinstance(task, PythonTask):
            fn_name, fn_spec = self._function_file(task.fn, task.id)
            inputs.append((None, fn_name))
            in_specs.append(fn_spec)
            context = None
            if task.context is not None:
                context, context_spec = self._context_file(task.context, task.id, task.fn)
                inputs.append((None, context))
                in_specs.append(context_spec)
            args, sizes = self._arguments(task.id, task.fn, task.args, task.kwargs)
            buffers = tuple(sizes)
            for name, size in sizes.items():
                inputs.append((None, name))
                in_specs.append(FileSpec(name, size, source=True))
            spec = TaskSpec(task.id, "py", task.cores, task.memory, task.disk, outputs, env=task.env or None,
                            timeout=task.timeout, fn=fn_name, args=args, refs=buffers, context=context,
                            priority=task.priority)
        else:
            spec = TaskSpec(task.id, "sh", task.cores, task.memory, task.disk, outputs, task.command,
                            task.env or None, task.timeout, priority=task.priority)
        return spec, buffers

    def _memo_decide(self, memo: Planner, record: TaskRecord, kind: str, parts: dict, inputs: list,
                     outputs: list, out_specs: list[FileSpec]) -> tuple[list[FileSpec], bool]:
        """A hit: the record's outputs, served from here, and its result on the task's record (True).
        A miss: the outputs not going home are marked to be brought to the record (False)."""
        label = record.label or (record.spec.command or "")[:200]
        decision = memo.decide(kind, parts, inputs, outputs, label)
        if decision is None:
            return out_specs, False
        hit = decision.hit
        if hit is None:
            record.memo = decision.pending
            record.spec = record.spec._replace(record=RECORD_WITH_COMPLETION)
            return [s if s.home else s._replace(record=True) for s in out_specs], False
        self.engine.served.update(hit.served)
        record.report = hit.report
        return [s._replace(size=hit.sizes[s.name]) for s in out_specs], True

    def _claim_outputs(self, task) -> tuple[tuple[str, str], ...]:
        """Each file is made by one task: record this one as the maker of its outputs."""
        for f in task.outputs.values():
            self._check_file(f)
        with self._lock:
            for f in task.outputs.values():
                other = self._producers.get(f.name)
                if other is not None:
                    raise ValueError(f"output {f.describe()} is already made by task {other}")
            for f in task.outputs.values():
                self._producers[f.name] = task.id
        for f in task.outputs.values():
            if f.kind == "local":
                self.engine.homes[f.name] = f.path
            # once the program can no longer name the file, the core may let go of it and its lineage
            weakref.finalize(f, self._file_dropped, f.name)
        return tuple((s, f.name) for s, f in task.outputs.items())

    def _file_dropped(self, name: str) -> None:
        """A made file's handle is gone (called where the garbage collector runs: no lock here)."""
        self._producers.pop(name, None)
        if self._memo is not None:
            self._memo.forget(name)
        if not self._closed:
            try:
                self._loop.call(lambda: self.engine.handle(FileReleased(name)))
            except RuntimeError:   # the loop closed meanwhile: nothing is left to let go of
                pass

    def _function_file(self, fn, task_id: int | None = None) -> tuple[str, FileSpec]:
        """A function is pickled once and sent as a content-named buffer, once per worker."""
        try:
            known = self._fn_names.get(fn)
        except TypeError:
            known = None
        if known is not None:
            return known
        try:
            data = pickling.dumps_function(fn)
        except Exception as e:
            raise _unpicklable(task_id, fn, "the function", _name_of(fn), fn, e, cloudpickle.dumps) from e
        known = self._serve_buffer(data)
        try:
            self._fn_names[fn] = known
        except TypeError:
            pass
        return known

    def _serve_buffer(self, data: bytes) -> tuple[str, FileSpec]:
        """data served from here under its content's name: a worker fetches it once, whichever task names it."""
        name = f"buf-{hash_bytes(data)}"
        self.engine.served.setdefault(name, data)
        return name, FileSpec(name, len(data), source=True)

    def _context_file(self, context: Context, task_id: int, fn) -> tuple[str, FileSpec]:
        """A context's setup and arguments, pickled together as a function is, in a content-named buffer:
        its name is the context's identity on the workers, and each worker receives it once."""
        try:
            known = self._context_names.get(context)
        except TypeError:   # unhashable arguments: pickled for each task
            known = None
        if known is not None:
            return known
        whole = (context.setup, context.args, context.kwargs)
        try:
            data = pickling.dumps_function(whole)
        except Exception as e:
            raise _unpicklable(task_id, fn, "its context", "(setup, args, kwargs)", whole, e, cloudpickle.dumps) from e
        known = self._serve_buffer(data)
        try:
            self._context_names[context] = known
        except TypeError:
            pass
        return known

    def _arguments(self, task_id: int, fn, args: tuple, kwargs: dict) -> tuple[bytes, dict[str, int]]:
        """A call's arguments pickled, and the buffers (name -> size) that carry its large ones.

        An argument whose pickle passes BUFFERED_ARGUMENT bytes is not sent
        inside the task: it becomes a content-named buffer (a ResultRef to it
        stands in the arguments; the interpreter reads it from its cache), so
        a worker that has it, from an earlier call with the same value, does
        not receive it again. Past LARGE_ARGUMENTS in all, a
        LargeArgumentWarning says what that costs and what sends data once.
        A value that cannot be pickled raises SerializationError naming it.
        """
        candidates = [key for key, v in _top_level(args, kwargs) if _quick_size(v) > BUFFERED_ARGUMENT]
        if not candidates:   # the usual case: one pickle, sent inside the task
            try:
                data = _dumps((args, kwargs))
            except Exception as e:
                raise _bad_argument(task_id, fn, args, kwargs, e) from e
            if len(data) <= BUFFERED_ARGUMENT:
                if len(data) > LARGE_ARGUMENTS:
                    _warn_large(fn, len(data), 0)
                return data, {}
            candidates = [key for key, _ in _top_level(args, kwargs)]
        buffers: dict[str, int] = {}
        swapped: dict[Any, ResultRef] = {}
        try:
            for key in candidates:
                found = self._argument_buffer(task_id, fn, key, args[key] if isinstance(key, int) else kwargs[key])
                if found is not None:
                    buffers[found[0]] = found[1]
                    swapped[key] = ResultRef(found[0])
            args = tuple(swapped.get(i, v) for i, v in enumerate(args))
            kwargs = {k: swapped.get(k, v) for k, v in kwargs.items()}
            try:
                data = _dumps((args, kwargs))
            except Exception as e:
                raise _bad_argument(task_id, fn, args, kwargs, e) from e
        except BaseException:
            self._let_go(tuple(buffers))
            raise
        total = len(data) + sum(buffers.values())
        if total > LARGE_ARGUMENTS:
            _warn_large(fn, total, len(buffers))
        return data, buffers

    def _argument_buffer(self, task_id: int, fn, key, value) -> tuple[str, int] | None:
        """(name, size) of the content-named buffer holding one argument, now used by one task more;
        None when the argument is small enough to go inside the task."""
        with self._buffer_lock:
            memo = self._arg_memo.get(id(value))
            if memo is not None and memo[0] is value:   # the same bytes object as an earlier call's
                self._arg_buffers[memo[1]][0] += 1
                return memo[1], memo[2]
        try:
            data = spill.to_bytes(_dump_parts(value))
        except Exception as e:
            what, root = _argument_names(key)
            raise _unpicklable(task_id, fn, what, root, value, e, _dumps) from e
        if len(data) <= BUFFERED_ARGUMENT:
            return None
        name = f"buf-{hash_bytes(data)}"
        with self._buffer_lock:
            held = self._arg_buffers.get(name)
            if held is None:
                held = self._arg_buffers[name] = [0, []]
                self.engine.served[name] = data
            held[0] += 1
            if type(value) in (bytes, str):   # immutable: the same object pickles the same
                self._arg_memo[id(value)] = (value, name, len(data))
                held[1].append(id(value))
        return name, len(data)

    def _hold_buffers(self, record: TaskRecord, names: tuple[str, ...]) -> None:
        """The buffers of a task's arguments stay served while the manager keeps its record (the task
        may run again, to make a lost result); then they are let go of, in the loop thread."""
        def forgotten(names=names, loop=self._loop) -> None:   # runs where the collector runs: no lock
            try:
                loop.call(lambda: self._let_go(names))
            except RuntimeError:   # the loop has stopped: nothing is served any more
                pass

        weakref.finalize(record, forgotten)

    def _let_go(self, names: tuple[str, ...]) -> None:
        with self._buffer_lock:
            for name in names:
                held = self._arg_buffers.get(name)
                if held is None:
                    continue
                held[0] -= 1
                if held[0] <= 0:
                    del self._arg_buffers[name]
                    for key in held[1]:
                        self._arg_memo.pop(key, None)
                    self.engine.served.pop(name, None)

    def _check_fits(self, task, who: str | None = None) -> None:
        if not self._embedded:
            return
        size = self.worker_size
        for what, need, have in (("cores", task.cores, size.cores), ("memory (MB)", task.memory, size.memory),
                                 ("disk (MB)", task.disk, size.disk), ("GPUs", task.gpus, size.gpus)):
            if need > have:
                raise ValueError(f"{who or f'task {task.id}'} asks for {need} {what}, but each local worker has "
                                 f"{have}")

    # ------------------------------------------------------------ categories, cancelling, hosts

    def set_category(self, name: str, *, cores: int = 0, memory: int = 0, disk: int = 0, gpus: int = 0,
                     mode: str = "max") -> None:
        """Resources for tasks submitted with category=name, where they state none themselves.

        mode "fixed": they get these. mode "max": these (a whole worker where none is given) are
        the most one may use; the first tasks run with them, and later ones with the peak memory
        and disk measured so far plus headroom, so that more share a worker; one that outgrows
        that and is killed for it runs again, once, with the whole allowance. Memory and disk in
        MB. Setting a category again changes it for the tasks not placed yet; what was learnt stays.
        """
        self._check_open()
        if not isinstance(name, str) or not name:
            raise ValueError(f"a category name must be a non-empty string, got {name!r}")
        if mode not in ("max", "fixed"):
            raise ValueError(f"category {name!r}: mode must be \"max\" or \"fixed\", got {mode!r}")
        for what, value in (("cores", cores), ("memory", memory), ("disk", disk), ("gpus", gpus)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"category {name!r}: {what} must be a non-negative integer, got {value!r}")
        if self._embedded:
            self._check_fits(_CategoryNeed(cores, memory, disk, gpus), f"category {name!r}")
        self._loop.call(lambda: self.engine.handle(CategorySet(name, cores, memory, disk, gpus, mode)))

    def cancel(self, *, tag: str) -> int:
        """Cancel every unfinished task carrying `tag`, and return how many there were.

        Their Futures raise CancelledError; those running are stopped on their worker; tasks that
        read what they would have made fail with DependencyFailed naming the cancelled task.
        """
        self._check_open()
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag must be a non-empty string, got {tag!r}")
        self._flush_submitted()

        async def cancel() -> int:
            return self.engine.cancel_tag(tag)

        return self._loop.run(cancel())

    def block_host(self, host: str, reason: str = "the program blocked it") -> list[str]:
        """Give no new work to the workers on `host`, those connected and those that connect later.

        host: the name the host gives itself (its first part will do), or the address its workers
        reach the manager from. What they have not started goes elsewhere, what runs there
        finishes, and the files they hold stay readable from them (a reader elsewhere fetches
        from them). Each is told why in its log. Returns the ids of the connected workers it
        applies to."""
        self._check_open()
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        reason = check_text(reason, "reason")

        async def block() -> list[str]:
            return self.engine.block_host(host, reason)

        return self._loop.run(block())

    def unblock_host(self, host: str) -> list[str]:
        """Let the workers on a host blocked with block_host take work again; returns their ids."""
        self._check_open()

        async def unblock() -> list[str]:
            return self.engine.unblock_host(host)

        return self._loop.run(unblock())

    def _flush_submitted(self) -> None:
        """Hand over what was submitted and not yet handed over (a cancel must see it)."""
        with self._lock:
            waiting = bool(self._submitted)
        if waiting:
            self._loop.run(_call_async(self._hand_over))

    def _cancel(self, task_id: int) -> None:
        if not self._closed:
            self._loop.call(lambda: self.engine.handle(TaskCancelled(task_id)))

    # ------------------------------------------------------------ state

    def stats(self) -> dict[str, Any]:
        """Counts and figures of this run (after close: as they were at close). Bytes:
        bytes_manager_to_worker (files and buffers sent out), bytes_arguments_to_worker (Python
        calls' pickled arguments, inside their tasks), bytes_worker_to_manager (outputs and values
        brought back), bytes_worker_to_worker (peer transfers); hop_latency_*; cache_bytes_peak
        per worker. The README lists every key."""
        if self._closed:
            if self._final_stats is None:
                raise RuntimeError("this manager is closed, and closed before it could take its figures")
            return dict(self._final_stats)

        async def get():
            return self.engine.stats()

        return self._loop.run(get())

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this manager is closed")
        broken = self.engine.broken if hasattr(self, "engine") else None
        if broken is not None:
            raise broken

    def _check_file(self, f: File) -> None:
        if not isinstance(f, File):
            raise TypeError(f"expected a File, got {type(f).__name__}")
        if f.run != self.run:
            raise ValueError(f"{f.describe()} was declared by another manager")

    # ------------------------------------------------------------ shutdown

    def close(self, wait: bool = True) -> None:
        """Stop the workers this manager started and remove their caches.

        wait=True (and leaving a `with` block normally) first waits for every unfinished task, as
        Executor.shutdown(wait=True) does, for as long as a worker may run it: while a worker is
        connected or a local worker is starting, running or being restarted. With none (workers=0
        and no worker connected, or local workers that died and are not restarted) it waits no
        more, rather than for ever; but a task that the connected workers can never run (it asks
        for more cores than any has) is waited for like the others. wait=False (and leaving a
        `with` block by an exception, or an interrupt while waiting) closes at once. Whatever is
        unfinished then fails with TaskFailed ("the manager was closed").
        """
        if self._closed:
            return
        why = CLOSED
        # (from the loop's own thread, a done callback's, the loop cannot be waited on: no wait)
        if wait and getattr(self, "engine", None) is not None and not self._loop.in_loop:
            try:
                if not self._wait_for_tasks():
                    why = CLOSED_WITHOUT_WORKERS
            except BaseException:   # Ctrl-C while waiting: close at once, then let it through
                self._shut(CLOSED)
                raise
        self._shut(why)

    def _shut(self, why: str) -> None:
        """Close now; unfinished tasks fail saying why."""
        if self._closed:
            return
        self._closed = True
        loop = getattr(self, "_loop", None)
        if loop is not None and hasattr(self, "engine"):
            try:
                self._final_stats = loop.run(self._stop_engine(why), timeout=10)
            except Exception:
                log.exception("error while stopping the manager", extra={"run": self.run})
        if self._progress is not None:
            self._progress.close()
        stop_workers(self._local)
        if loop is not None:
            loop.stop()
        if self._page is not None:
            self._page.stop()
        if self._txlog is not None:
            self._txlog.add("MANAGER", "CLOSED", "")
            self._txlog.close()
        if self._manager_log is not None:
            self._manager_log.close()
        rundir.remove_work(self.run_dir)
        _GcThreshold.release()

    def _wait_for_tasks(self) -> bool:
        """Block until every task submitted is settled. False: it stopped waiting because no
        worker is left that could run what is unfinished."""
        counters, engine = self.core.counters, self.engine

        def settled() -> bool:
            return engine.broken is not None or (
                not self._submitted and counters.tasks_submitted == counters.tasks_done + counters.tasks_failed
                and (engine.memo is None or not engine.memo.busy()))   # records being written are waited for

        return self._run_in_loop(self._while_workers(settled))

    def _run_in_loop(self, coro) -> Any:
        """Run a coroutine of the loop's from this thread; an interrupt here cancels it there."""
        job = self._loop.submit(coro)
        try:
            return job.result()
        except BaseException:
            job.cancel()
            raise

    def _workers_may_come(self) -> bool:
        """May a task still run: is a worker connected, or a local one starting, running or being replaced?"""
        return bool(self.engine.links) or bool(self._replacing) or any(w.proc.poll() is None for w in self._local)

    async def _while_workers(self, done) -> bool:
        """Wait (in the loop) until done() is true; False as soon as no worker may come to make it so."""
        while not done():
            if not self._workers_may_come():
                return False
            await asyncio.sleep(CLOSE_POLL)
        return True

    async def _stop_engine(self, why: str) -> dict[str, Any]:
        figures = self.engine.stats()
        await self.engine.stop(why)
        return figures

    def __enter__(self) -> "Manager":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leaving normally waits for unfinished tasks (see close); leaving by an exception does not."""
        self.close(wait=exc_type is None)

    def __del__(self) -> None:
        try:
            if not self._closed and self._local:
                self.close(wait=False)
        except Exception:
            pass


class _CategoryNeed:
    """A category's statement, checked against the local workers' size as a task's would be."""

    def __init__(self, cores: int, memory: int, disk: int, gpus: int):
        self.cores, self.memory, self.disk, self.gpus = cores, memory, disk, gpus


async def _call_async(fn) -> None:
    fn()


def _memo_options(memo, memo_dir) -> tuple[bool, Path | None]:
    """(memoize every task?, the record's directory or None for the default), from Manager's memo options."""
    if memo_dir is not None and not isinstance(memo_dir, (str, os.PathLike)):
        raise ValueError(f"memo_dir must be a directory's path, got {memo_dir!r}")
    if isinstance(memo, (str, os.PathLike)):
        if memo_dir is not None:
            raise ValueError("give the memo record's directory as memo=DIR or memo_dir=DIR, not both")
        return True, Path(memo)
    if memo is not None and not isinstance(memo, bool):
        raise ValueError(f"memo must be True, False, None or a directory's path, got {memo!r}")
    if memo is False and memo_dir is not None:
        raise ValueError("memo=False turns memoization off: memo_dir has no use then")
    return memo is True, Path(memo_dir) if memo_dir is not None else None


def _dashboard_address(dashboard, transactions: bool) -> tuple[str, int] | None:
    """(host, port) of the live page, from a port (on localhost) or "HOST:PORT"; None for none."""
    if dashboard is None or dashboard is False:
        return None
    if not transactions:
        raise ValueError("the live page follows the transaction log: dashboard needs transactions=True")
    host, port = "127.0.0.1", dashboard
    if isinstance(dashboard, str):
        host, _, port = dashboard.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            port = int(port)
        except ValueError:
            port = None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"dashboard must be a port (0-65535) or \"HOST:PORT\", got {dashboard!r}")
    return host, port


def _name_of(fn) -> str:
    """What messages and the transaction log call a function."""
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _top_level(args: tuple, kwargs: dict):
    """(position or keyword, value) of each argument of a call."""
    yield from enumerate(args)
    yield from kwargs.items()


def _quick_size(value) -> int:
    """The size of a bytes-like value or array, known without pickling it; 0 for anything else."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    nbytes = getattr(value, "nbytes", None)
    return nbytes if isinstance(nbytes, int) else 0


def _argument_names(key) -> tuple[str, str]:
    """What messages call an argument, and how a path into it starts."""
    if isinstance(key, int):
        return f"argument {key}", f"args[{key}]"
    return f"keyword argument {key!r}", f"kwargs[{key!r}]"


def _unpicklable(task_id: int | None, fn, what: str, root: str, value, error: BaseException,
                 dumps) -> SerializationError:
    """The error for a value that dumps failed on: which task, which value, the part inside it, why."""
    path, part = pickling.find_unpicklable(value, dumps)
    why = str(error) if isinstance(error, TypeError) else f"{type(error).__name__}: {error}"
    task = f"task {task_id} ({_name_of(fn)})" if task_id is not None else _name_of(fn)
    return SerializationError(f"{task}: {what} cannot be pickled to send it to a worker: {root}{path} is a "
                              f"{pickling.type_name(part)}: {why}", task_id=task_id, function=_name_of(fn),
                              what=what, type_name=pickling.type_name(part))


def _bad_argument(task_id: int, fn, args: tuple, kwargs: dict, error: BaseException) -> SerializationError:
    """The error for arguments that _dumps failed on: the first one that fails alone, or all of them."""
    for key, value in _top_level(args, kwargs):
        try:
            _dumps(value)
        except Exception as e:
            return _unpicklable(task_id, fn, *_argument_names(key), value, e, _dumps)
    return _unpicklable(task_id, fn, "the arguments", "(args, kwargs)", (args, kwargs), error, _dumps)


def _warn_large(fn, size: int, buffered: int) -> None:
    """A LargeArgumentWarning at the program's line; its text names the function and a size class
    (over 10 MB, 100 MB, 1 GB...), so Python's default filter shows it once per place and class."""
    import warnings

    over = LARGE_ARGUMENTS
    while size > over * 10:
        over *= 10
    sent = (f"those over {BUFFERED_ARGUMENT >> 20} MiB go to each worker once, as content-named buffers, "
            "but are pickled and hashed here for each call given a new object" if buffered else
            "they are pickled and sent with every call")
    warnings.warn(f"a call of {_name_of(fn)} has arguments of over {over / 1e6:g} MB pickled: {sent}. "
                  "To send data once, declare it with m.declare_buffer(data) and give the File as an input "
                  "of the tasks that read it, or make it on the workers with a call and pass that call's "
                  f"future. (tether warns past LARGE_ARGUMENTS, {LARGE_ARGUMENTS / 1e6:g} MB.)",
                  LargeArgumentWarning, stacklevel=_program_stacklevel())


def _program_stacklevel() -> int:
    """The stacklevel of warnings.warn that names the first frame outside tether: the program's line."""
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(2), 2   # _warn_large's caller: stacklevel 2 of its warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _dump_parts(value) -> spill.Parts:
    """spill.dump, with _dumps's rule: what names the program's __main__ goes by value."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        header = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception:   # cloudpickle's try below, out of this handler: its error alone is the cause
        header = None
    if header is None or b"__main__" in header:
        buffers.clear()
        header = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return spill.Parts(header, [b.raw() for b in buffers])


def _dumps(value) -> bytes:
    """Arguments as bytes: pickle when it can, cloudpickle for what pickle cannot send.

    pickle names a function or class by its module; one of the program's
    own `__main__` would then be looked for in the worker's `__main__`,
    which is not the program: such values go by value, with cloudpickle.
    """
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:   # cloudpickle's try below, out of this handler: its error alone is the cause
        data = None
    if data is None or b"__main__" in data:
        return cloudpickle.dumps(value, protocol=5)
    return data
