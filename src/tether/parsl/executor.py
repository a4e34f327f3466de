"""TetherExecutor: Parsl apps run as tether tasks, on workers started by a Parsl provider.

Each submission becomes a PythonTask that calls the app in a worker's warm
interpreter, with its files declared to tether: temp files as tether temps
(held, grouped and passed worker to worker by tether), `file` files sent to
the worker and brought back (unless shared_fs=True). Workers are `tether
worker` processes that the provider starts, one per node, on this machine
(LocalProvider, the default) or in cluster jobs.

Results come back on tether's loop thread; a collector thread of the
executor settles Parsl's futures, so Parsl's callbacks and the users' never
run on (or block) the manager's loop.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import shlex
import sys
import threading
import weakref
from concurrent.futures import Future, InvalidStateError
from functools import partial
from typing import Any, Callable

import psutil
from parsl.data_provider.ftp import FTPInTaskStaging
from parsl.data_provider.http import HTTPInTaskStaging
from parsl.data_provider.zip import ZipFileStaging
from parsl.dataflow.errors import DependencyError
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.states import TERMINAL_STATES
from parsl.launchers import SimpleLauncher
from parsl.monitoring.radios.filesystem import FilesystemRadio
from parsl.providers import LocalProvider
from parsl.utils import RepresentationMixin

from ..core.graph import check_options as check_graph_options
from ..manager.local import python_path
from ..manager.manager import Manager
from ..task import DependencyFailed, PythonTask
from . import htex
from .options import reject_unknown, setting_names
from .plan import CallPlan, check_resources, plan_call
from .remote import AppFailure, run_app
from .staging import TetherStaging
from .temps import MADE, Failure, Job, Outcome, Slot, TempBook

log = logging.getLogger("tether.parsl")

_DONE, _PRODUCER_DONE, _RELEASE = "done", "producer-done", "release"


class _Call:
    """What a job needs to be launched (again): the app, its rewritten call, its options."""

    __slots__ = ("func", "plan", "options", "future", "inputs_list", "held")

    def __init__(self, func: Callable, plan: CallPlan, options: dict[str, Any], future: Future, inputs_list: Any):
        self.func = func
        self.plan = plan
        self.options = options
        self.future = future
        self.inputs_list = inputs_list   # Parsl's own inputs list: finds the task record again
        self.held: dict[Future, list] = {}   # tether Future of a launch -> temp Files it holds


class TetherExecutor(BlockProviderExecutor, RepresentationMixin):
    """A Parsl executor whose tasks run on tether workers.

    provider: where workers run; default LocalProvider (one worker on this
      machine). Any Parsl provider works: each block runs `launch_cmd`, one
      tether worker, which runs as many apps at once as its cores allow.
    cores_per_node, memory_per_node (MB), disk_per_node (MB): what each
      worker offers (default: all of its node).
    HTEX's names, with HTEX's meanings (see htex.py): cores_per_worker (1)
      and mem_per_worker (GB): what each app uses unless its
      parsl_resource_specification says; max_workers_per_node: the most apps
      at once on a worker (it then offers max_workers_per_node *
      cores_per_worker cores, or cores_per_node if fewer); worker_port: port;
      worker_port_range: the manager listens on a free port of it;
      heartbeat_threshold: heartbeat; worker_debug: workers log at debug
      level; available_accelerators: at most that many apps at once per
      worker. HTEX's other options are accepted and have no effect, with a
      warning (tether.parsl.IgnoredOptionWarning) once each.
    address: the address workers connect to (default 127.0.0.1 with
      LocalProvider, this host's name otherwise); port: the manager's port.
    secret_file: a file holding the secret workers prove they know (default:
      a new secret for each run, in the run directory, which must then be
      readable where the workers run).
    worker_options: more `tether worker` options, appended to the command.
    launch_cmd: the whole worker command, a template with {address},
      {secret_file}, {block_id}, {label} and {worker_options}.
    group_tasks: commit sequences of dependent tasks to one worker.
    placement, order, prune: as Manager's (see the README's "Placement,
      order and pruning").
    shared_fs: workers see this machine's files at the same paths; `file`
      inputs and outputs are then used in place instead of being moved.
    storage_access: Parsl staging providers (default: TetherStaging, plus
      in-task HTTP and FTP staging and zip staging).
    task_env: environment variables set for every app.
    memo_dir: memoize every app call, with its record in this directory (see
      the README's "Memoization"): a call whose fingerprint matches a
      recorded success, in this run or an earlier one, does not run again.
    heartbeat: seconds of silence after which a worker is declared lost (and
      a worker gives up on the manager); system_retries: attempts a task may
      lose to the system (workers lost, interpreters dead, full disks) before
      it fails; see the README's fault model. An app's own exceptions are
      retried by Parsl (Config(retries=...)), not here.
    block_error_handler, remote_monitoring_radio, working_dir: as for
      Parsl's own executors. With a MonitoringHub in the Config and no radio
      given, tasks report through Parsl's FilesystemRadio (as TaskVine's
      executor does): monitoring works with no extra option where the
      workers share the run directory's file system.
    dashboard: a live page of the run, as for Manager (a port of localhost,
      or "HOST:PORT"). tether's log records go to Parsl's own log file too,
      and the manager's run directory (its log and transaction log) is made
      inside tether_run_dir, by default Parsl's run directory.
    """

    def __init__(self, label: str = "tether", provider: Any = None, cores_per_node: int | None = None,
                 memory_per_node: int | None = None, disk_per_node: int | None = None,
                 address: str | None = None, port: int = 0, secret_file: str | None = None,
                 worker_options: str = "", launch_cmd: str | None = None, group_tasks: bool = True,
                 placement: str | None = None, order: str = "depth", prune: int | None = 0,
                 shared_fs: bool = False, storage_access: list | None = None,
                 block_error_handler: Any = True, remote_monitoring_radio: Any = None,
                 working_dir: str | None = None, heartbeat: float = 30.0, system_retries: int = 3,
                 dashboard: int | str | None = None, tether_run_dir: str | None = None,
                 task_env: dict[str, str] | None = None, memo_dir: str | None = None,
                 # HTEX's names, with HTEX's meanings (htex.py)
                 cores_per_worker: float = 1.0, mem_per_worker: float | None = None,
                 max_workers_per_node: int | None = None, available_accelerators: int | list[str] = (),
                 worker_debug: bool = False, heartbeat_threshold: float | None = None,
                 heartbeat_period: float | None = None, prefetch_capacity: int | None = None,
                 poll_period: int | None = None, worker_port: int | None = None,
                 worker_port_range: tuple[int, int] | None = None,
                 interchange_port_range: tuple[int, int] | None = None, interchange_launch_cmd: Any = None,
                 loopback_address: str | None = None, encrypted: bool | None = None,
                 cpu_affinity: str | None = None, manager_selector: Any = None, drain_period: int | None = None,
                 address_probe_timeout: int | None = None, worker_logdir_root: str | None = None,
                 max_workers: int | None = None, **unknown: Any):
        if unknown:
            reject_unknown(type(self).__name__, unknown, setting_names(TetherExecutor))
        if provider is None:
            provider = LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, launcher=SimpleLauncher())
        BlockProviderExecutor.__init__(self, provider=provider, block_error_handler=block_error_handler)
        self.label = label
        self.cores_per_node = cores_per_node
        self.memory_per_node = memory_per_node
        self.disk_per_node = disk_per_node
        self.address = address
        self.port = port
        self.secret_file = secret_file
        self.worker_options = worker_options
        self.heartbeat = heartbeat
        self.system_retries = system_retries
        self.launch_cmd = launch_cmd
        self.tether_run_dir = tether_run_dir
        self.task_env = task_env
        self.memo_dir = memo_dir
        self.cores_per_worker = cores_per_worker
        self.mem_per_worker = mem_per_worker
        self.max_workers_per_node = max_workers_per_node
        self.available_accelerators = available_accelerators
        self.worker_debug = worker_debug
        self.heartbeat_threshold = heartbeat_threshold
        self.heartbeat_period = heartbeat_period
        self.prefetch_capacity = prefetch_capacity
        self.poll_period = poll_period
        self.worker_port = worker_port
        self.worker_port_range = worker_port_range
        self.interchange_port_range = interchange_port_range
        self.interchange_launch_cmd = interchange_launch_cmd
        self.loopback_address = loopback_address
        self.encrypted = encrypted
        self.cpu_affinity = cpu_affinity
        self.manager_selector = manager_selector
        self.drain_period = drain_period
        self.address_probe_timeout = address_probe_timeout
        self.worker_logdir_root = worker_logdir_root
        self.max_workers = max_workers
        derived = htex.derive(self)
        self._offer = derived.offer              # what each worker offers
        self._task_defaults = derived.task_defaults
        self.manager_port = derived.port         # port, worker_port, or a free port of worker_port_range
        self.heartbeat = derived.heartbeat
        self.group_tasks = group_tasks
        placement = check_graph_options(placement, order, prune, group_tasks)
        self.placement, self.order, self.prune = placement, order, prune
        self.shared_fs = shared_fs
        self.storage_access = storage_access if storage_access is not None else [
            TetherStaging(), HTTPInTaskStaging(), FTPInTaskStaging(), ZipFileStaging()]
        self.remote_monitoring_radio = (remote_monitoring_radio if remote_monitoring_radio is not None
                                        else FilesystemRadio())
        self.working_dir = working_dir
        self.dashboard = dashboard
        self._parsl_log_handlers: list[logging.Handler] = []

        self.manager: Manager | None = None
        self.dfk: Any = None                   # set by TetherStaging, to name tasks in errors
        self._ids = itertools.count(1)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._collector: threading.Thread | None = None
        self._runners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._book = TempBook(self._declare_temp, self._launch)
        self._holds: dict[Any, int] = {}       # tether temp File -> launches that may still read it
        self._holds_lock = threading.Lock()
        self._retired_pids: set[int] = set()
        self._worker_command = ""
        self._started_early = 0

    # ------------------------------------------------------------ Parsl's executor interface

    @property
    def is_local(self) -> bool:
        return isinstance(self.provider, LocalProvider)

    def start(self) -> None:
        super().start()
        bind = "127.0.0.1" if self.is_local and not self.address else "0.0.0.0"
        os.makedirs(self.run_dir, exist_ok=True)
        self.manager = Manager(workers=0, host=bind, port=self.manager_port, secret_file=self.secret_file,
                               run_dir=self.tether_run_dir or self.run_dir, placement=self.placement,
                               order=self.order, prune=self.prune,
                               heartbeat=self.heartbeat, system_retries=self.system_retries,
                               dashboard=self.dashboard, progress=False,
                               memo=self.memo_dir if self.memo_dir is not None else None)
        self._share_parsl_log()
        host, port = self.manager.address.rsplit(":", 1)
        self.worker_address = f"{self.address or ('127.0.0.1' if self.is_local else host)}:{port}"
        self._worker_command = self._compose_worker_command()
        log.info("%s: manager at %s; workers start with: %s", self.label, self.manager.address,
                 self._worker_command)
        self._collector = threading.Thread(target=self._collect, name=f"{self.label}-collector", daemon=True)
        self._collector.start()
        # Parsl's scaling first runs one strategy period after start; start the
        # initial blocks now instead, and let the strategy's first request for them pass
        init_blocks = getattr(self.provider, "init_blocks", 0)
        if init_blocks:
            self.scale_out_facade(init_blocks)
            self._started_early = init_blocks

    def submit(self, func: Callable, resource_specification: dict, *args: Any, **kwargs: Any) -> Future:
        if self.bad_state_is_set:
            raise self.executor_exception
        if self.manager is None:
            raise RuntimeError(f"executor {self.label} has not been started")
        # one core is what a task states nothing gets: left unstated, as a TetherExecutor's default it
        # limits no app to its share of the worker's memory (README "Proportional shares")
        defaults = {k: v for k, v in self._task_defaults.items() if (k, v) != ("cores", 1)}
        options = {**defaults, **check_resources(resource_specification, self._offer)}
        plan = plan_call(args, kwargs, self.shared_fs)
        for path in plan.file_outputs.values():
            os.makedirs(os.path.dirname(path), exist_ok=True)
        future: Future = Future()
        job_id = next(self._ids)
        future.parsl_executor_task_id = job_id  # type: ignore[attr-defined]
        self._tasks[job_id] = future
        self._fail_all(self._book.submit(job_id, plan.temp_inputs, plan.temp_outputs,
                                         _Call(func, plan, options, future, kwargs.get("inputs"))))
        return future

    def outstanding(self) -> int:
        """Tasks that can run now; consumers held until their temp inputs are made do not count."""
        return self._book.outstanding()

    def connected_workers(self) -> int:
        if self.manager is None:
            return 0
        return len(self.manager.engine.links)

    @property
    def workers_per_node(self) -> int:
        """Apps one block runs at once, for Parsl's scaling: as many as its worker's cores and memory hold."""
        cores = self._offer["cores"] or ((os.cpu_count() or 1) if self.is_local else None)
        fits = [cores // self._task_defaults["cores"]] if cores else []
        if self._offer["memory"] and self._task_defaults.get("memory"):
            fits.append(self._offer["memory"] // self._task_defaults["memory"])
        return max(1, min(fits)) if fits else 1

    def _get_launch_command(self, block_id: str) -> str:
        return self._worker_command.replace("{block_id}", str(block_id))

    def scale_out_facade(self, n: int) -> list[str]:
        if self._started_early and n == self._started_early:
            self._started_early = 0
            return []
        return super().scale_out_facade(n)

    retire_timeout = 60.0   # seconds a worker being scaled in has to hand its temps over

    def scale_in(self, blocks: int) -> list[str]:
        """Release `blocks` blocks, those that cost least first, without losing temps.

        Blocks whose worker has not connected go first (a job still queued),
        then workers with the fewest tasks, then the fewest bytes cached. Each
        chosen worker is retired before its job is cancelled: it takes no new
        work, and the temps only it holds that are still needed are copied to
        workers that stay (Manager.retire; within retire_timeout seconds).
        """
        self._remember_local_workers()
        active = [bid for bid, status in self._status.items() if status.state not in TERMINAL_STATES]
        if self.manager is None or not self.provider or blocks <= 0:
            return super().scale_in(blocks)
        connected = {w["worker"]: w for w in self.manager.workers()}

        def cost(block_id: str) -> tuple:
            w = connected.get(self._worker_of(block_id))
            return (0, 0, 0, block_id) if w is None else (1, w["tasks"], w["bytes"], block_id)

        chosen = sorted(active, key=cost)[:blocks]
        leaving = [self._worker_of(b) for b in chosen if self._worker_of(b) in connected]
        if leaving:
            for r in self.manager.retire(leaving, timeout=self.retire_timeout, reason="Parsl scaled its block in"):
                log.info("worker %s retired: %d temps copied to other workers, %d not%s", r["worker"], r["copied"],
                         r["lost"], " (sent away at the deadline)" if r["forced"] else "")
        job_ids = [self.blocks_to_job_id[b] for b in chosen]
        cancelled = self._filter_scale_in_ids(job_ids, self.provider.cancel(job_ids))
        return [self.job_ids_to_block[j] for j in cancelled]

    def _worker_of(self, block_id: str) -> str:
        """The name the block's worker joins with (see _compose_worker_command)."""
        return f"{self.label}-{block_id}"

    def shutdown(self) -> None:
        """Stop the manager (its workers are told to stop), then wait for local workers to exit."""
        if self.manager is not None:
            self._remember_local_workers()
            self.manager.close(wait=False)   # whether to wait for its tasks is Parsl's to say (exit_mode)
        self._events.put(None)
        if self._collector is not None:
            self._collector.join(timeout=30)
        for job in self._book.unfinished():
            _settle(job.data.future, exc=RuntimeError(f"executor {self.label} shut down before the task ended"))
        self._wait_for_local_workers()
        tether_log = logging.getLogger("tether")
        for handler in self._parsl_log_handlers:
            tether_log.removeHandler(handler)
        self._parsl_log_handlers = []
        super().shutdown()

    def _share_parsl_log(self) -> None:
        """tether's records go to the files Parsl logs to (runinfo/NNN/parsl.log), beside Parsl's own."""
        tether_log = logging.getLogger("tether")
        for handler in logging.getLogger("parsl").handlers:
            if isinstance(handler, logging.FileHandler) and handler not in tether_log.handlers:
                tether_log.addHandler(handler)
                self._parsl_log_handlers.append(handler)

    # ------------------------------------------------------------ temps (called by TetherStaging)

    def temp_producer(self, name: str, app_future: Future) -> None:
        """Parsl will run the task behind app_future to make temp `name`."""
        slot = self._book.producer_registered(name, app_future)
        app_future.add_done_callback(partial(self._producer_finished, slot))

    def _producer_finished(self, slot: Slot, app_future: Future) -> None:
        if slot.state == MADE and slot.app_future is app_future:
            return   # its task made the file (MADE stays): the TempBook would find nothing to do
        self._events.put((_PRODUCER_DONE, slot, app_future))

    def temp_given_up(self, name: str) -> Future | None:
        """The AppFuture of the task that was to make temp `name`, if Parsl gave up on it."""
        slot = self._book.slot(name)
        return slot.app_future if slot.gave_up else None

    # ------------------------------------------------------------ launching

    def _declare_temp(self):
        # kept until no launch that read it may be tried again (see _release), so that
        # a consumer Parsl retries finds it still there instead of making tether remake it
        return self.manager.declare_temp(keep=True)

    def _launch(self, job: Job, temp_inputs: dict[str, Any], temp_outputs: dict[str, Any]):
        """Submit one job to tether (called by the TempBook, under its lock)."""
        call: _Call = job.data
        plan, m = call.plan, self.manager
        inputs = dict(temp_inputs)
        inputs.update({name: m.declare_file(path) for name, path in plan.file_inputs.items()})
        outputs = dict(temp_outputs)
        outputs.update({name: m.declare_file(path) for name, path in plan.file_outputs.items()})
        task = PythonTask(self._runner(call.func),
                          args=(plan.args, plan.kwargs, [s.sandbox for s in plan.streams], plan.directories),
                          inputs=inputs, outputs=outputs, **call.options)
        future = m.submit(task)
        call.held[future] = list(temp_inputs.values())
        with self._holds_lock:
            for f in temp_inputs.values():
                self._holds[f] = self._holds.get(f, 0) + 1
        future.add_done_callback(lambda f, job=job: self._events.put((_DONE, job, f)))
        return future

    def _release(self, files: list) -> None:
        """These launches are over for good: a temp none holds any more may be collected."""
        free = []
        with self._holds_lock:
            for f in files:
                left = self._holds.get(f, 0) - 1
                if left > 0:
                    self._holds[f] = left
                else:
                    self._holds.pop(f, None)
                    free.append(f)
        if self.manager is not None:
            for f in free:
                self.manager.remove(f)

    def _release_when_final(self, job: Job, files: list) -> None:
        """A failed launch keeps its inputs until Parsl stops trying its task again."""
        record = self._parsl_record(job)
        app = record.get("app_fu") if record is not None else None
        if app is None or app.done():
            self._release(files)
        else:
            app.add_done_callback(lambda _, files=files: self._events.put((_RELEASE, files)))

    def _runner(self, func: Callable) -> Callable:
        """run_app bound to the app function, made once per function so tether sends it once."""
        try:
            runner = self._runners.get(func)
            if runner is None:
                runner = self._runners[func] = partial(run_app, func)
            return runner
        except TypeError:  # not weakly referable
            return partial(run_app, func)

    # ------------------------------------------------------------ results

    def _collect(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            try:
                if event[0] == _DONE:
                    self._task_done(event[1], event[2])
                elif event[0] == _RELEASE:
                    self._release(event[1])
                else:
                    self._fail_all(self._book.producer_done(event[1], event[2]))
            except Exception:
                log.exception("%s: could not settle %r", self.label, event)

    def _task_done(self, job: Job, task: Future) -> None:
        call: _Call = job.data
        held = call.held.pop(task, [])
        exc = task.exception() if not task.cancelled() else RuntimeError("the tether task was cancelled")
        if exc is None:
            value, streams = task.result()
            self._release(held)
            if not self._book.finished(job, task, "ok").current:
                return
            self._write_streams(call.plan, streams)
            self._finish(job, value=value)
        elif isinstance(exc, DependencyFailed):
            self._release(held)  # it never ran; a launch again holds what it reads
            self._fail_all(self._book.finished(job, task, "dependency", exc))
        else:
            self._release_when_final(job, held)
            if not self._book.finished(job, task, "failed").current:
                return
            if isinstance(exc, AppFailure):
                self._write_streams(call.plan, exc.streams)
                try:
                    exc = exc.exception()
                except Exception as e:  # the app's exception cannot be rebuilt here
                    exc = e
            self._finish(job, exc=exc)

    def _write_streams(self, plan: CallPlan, captured: dict[str, bytes]) -> None:
        for s in plan.streams:
            data = captured.get(s.sandbox)
            if data is None:
                continue
            os.makedirs(os.path.dirname(s.path), exist_ok=True)
            with open(s.path, "ab" if s.append else "wb") as f:
                f.write(data)

    def _fail_all(self, outcome: Outcome) -> None:
        for failure in outcome.failures:
            if failure.slot is not None:
                exc = self._dependency_error(failure)
            elif isinstance(failure.error, DependencyFailed):
                exc = DependencyError([(failure.error, "a temp input")], self._parsl_task_id(failure.job))
            else:
                exc = failure.error
            self._finish(failure.job, exc=exc)

    def _finish(self, job: Job, value: Any = None, exc: BaseException | None = None) -> None:
        self._tasks.pop(job.id, None)
        _settle(job.data.future, value, exc)

    def _dependency_error(self, failure: Failure) -> DependencyError:
        slot: Slot = failure.slot  # type: ignore[assignment]
        app = slot.app_future
        cause = app.exception() if app is not None and app.done() else None
        if cause is None:
            cause = RuntimeError(f"temp file {slot.name!r} was never made: the task meant to make it "
                                 "finished without making it")
        producer = f"task {app.tid}" if app is not None and getattr(app, "tid", None) is not None else "its producer"
        return DependencyError([(cause, producer)], self._parsl_task_id(failure.job))

    def _parsl_task_id(self, job: Job) -> Any:
        record = self._parsl_record(job)
        return record["id"] if record is not None else None

    def _parsl_record(self, job: Job) -> dict | None:
        """The DataFlowKernel's record of the task a job runs, when it can be found.

        Parsl does not tell an executor which task it submits; the record is
        the one holding this job's Future, or the same `inputs` list object.
        Looked up only when a launch fails, newest tasks first.
        """
        if self.dfk is None:
            return None
        call: _Call = job.data
        for record in reversed(list(self.dfk.tasks.values())):
            if record.get("exec_fu") is call.future or (
                    call.inputs_list is not None and record["kwargs"].get("inputs") is call.inputs_list):
                return record
        return None

    # ------------------------------------------------------------ workers

    def _compose_worker_command(self) -> str:
        secret = str(self.manager.secret_file)
        if self.launch_cmd is not None:
            return self.launch_cmd.format(address=self.worker_address, secret_file=secret, block_id="{block_id}",
                                          label=self.label, worker_options=self.worker_options)
        if self.is_local:
            head = [f"PYTHONPATH={shlex.quote(os.pathsep.join(python_path()))}", shlex.quote(sys.executable),
                    "-m", "tether"]
        else:
            head = ["tether"]
        if self.worker_debug:   # HTEX's worker_debug: the worker logs at debug level
            head.append("-vv")
        words = head + ["worker", self.worker_address, "--secret-file", shlex.quote(secret),
                        "--name", shlex.quote(f"{self.label}-") + "{block_id}",
                        "--heartbeat", f"{self.heartbeat:g}"]
        if self.is_local:  # in Parsl's run directory, removed by the worker as it stops
            cache = os.path.join(os.path.abspath(self.run_dir), "tether-workers", self.label)
            words += ["--clean", "--cache-dir", shlex.quote(cache + os.sep) + "{block_id}"]
        # on a cluster node the worker keeps a slot of the node's per-user cache: the inputs it was
        # sent stay there for the next run (within the cache's budget)
        for flag, key in (("--cores", "cores"), ("--memory", "memory"), ("--disk", "disk")):
            value = self._offer[key]
            if value is not None:
                words += [flag, str(value)]
        if self.worker_options:
            words.append(self.worker_options)
        return " ".join(words)

    def _remember_local_workers(self) -> None:
        """Note the pids of the workers on this machine, to see them exit at shutdown."""
        if self.manager is not None and self.is_local:
            self._retired_pids.update(link.pid for link in list(self.manager.engine.links.values()) if link.pid)

    def _wait_for_local_workers(self, timeout: float = 15.0) -> None:
        procs = []
        for pid in self._retired_pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for p in alive:
            log.warning("%s: worker %s did not stop; killing it", self.label, p.pid)
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def _settle(future: Future, value: Any = None, exc: BaseException | None = None) -> None:
    """Give a Parsl future its outcome, unless something (bad state, shutdown) already did."""
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
    except InvalidStateError:
        pass
