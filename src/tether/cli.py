"""The `tether` command: worker, status, demo, report, simulate, bench."""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import click

from . import __version__


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _credentials(secret_file, tls_mode, cert, key, ca):
    """The secret and the TLS settings a link to a manager needs, or a usage error naming the option."""
    from .wire.handshake import read_secret_file
    from .wire.tls import TlsConfig

    try:
        secret = read_secret_file(secret_file)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--secret-file")
    try:
        return secret, TlsConfig(secret, tls_mode, cert, key, ca)
    except ValueError as e:
        raise click.UsageError(str(e))


@click.group()
@click.version_option(__version__, message="tether %(version)s", help="Show tether's version and exit.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """tether: a data-aware workflow executor."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for handler in logging.root.handlers:  # libraries that set their own loggers' levels (parsl) stay quiet too
        handler.setLevel(level)


@main.command()
@click.argument("address")
@click.option("--cores", type=click.IntRange(min=1), default=None, help="Cores to offer [all].")
@click.option("--memory", type=click.IntRange(min=0), default=None, help="Memory to offer, MB [all].")
@click.option("--disk", type=click.IntRange(min=0), default=None, help="Disk to offer, MB [free space].")
@click.option("--gpus", type=click.IntRange(min=0), default=None,
              help="GPUs to offer; each task asking for some is given its own device ids in "
              "CUDA_VISIBLE_DEVICES [those `nvidia-smi -L` lists, 0 without it].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the cache and sandboxes [a free slot of this node's cache, kept between "
              "runs: $TETHER_CACHE_DIR, or $XDG_CACHE_HOME/tether/HOST, or ~/.cache/tether/HOST].")
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="File holding the manager's secret.")
@click.option("--name", default=None, help="Name to report [host-pid].")
@click.option("--clean/--keep-cache", default=False,
              help="Remove the whole cache directory (without --cache-dir: this worker's slot) at exit "
              "[keep content-named files for the next run].")
@click.option("--connect-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to keep trying to reach the manager.")
@click.option("--listen-host", default=None, help="Address for the peer transfer listener "
              "[the address this host uses to reach the manager].")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a cProfile of the worker's event loop to this file when it exits.")
@click.option("--heartbeat", type=click.FloatRange(min=0.2), default=30.0, show_default=True,
              help="Seconds without word from the manager after which the worker stops its tasks and leaves.")
@click.option("--tls", "tls_mode", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="TLS on links to the manager and to other workers: auto uses it for every link that leaves "
              "the host.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="This worker's certificate (PEM), with --tls-key and --tls-ca [TLS keyed by the secret].")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The private key of --tls-cert (PEM).")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The CA that signed the manager's and the other workers' certificates (PEM).")
@click.option("--owner-pid", type=int, default=None, hidden=True,
              help="A local worker's manager process: leave as soon as it ends.")
@click.option("--owner-dir", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True,
              help="The manager's run directory, removed if the manager's process ended without closing.")
@click.option("--cache-budget", type=click.IntRange(min=1), default=None, metavar="MB",
              help="MB the cache may hold before its least recently used inputs go [--disk].")
@click.option("--spare-interpreter/--no-spare-interpreter", "spare", default=True, show_default=True,
              help="Once Python tasks run, keep one more warm interpreter ready to replace one that dies.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Leave after this long with no task: the manager first copies the temps only this worker "
              "holds to workers that stay [never].")
def worker(address, cores, memory, disk, gpus, cache_dir, secret_file, name, clean, connect_timeout, listen_host,
           profile_path, heartbeat, tls_mode, tls_cert, tls_key, tls_ca, owner_pid, owner_dir, cache_budget, spare,
           idle_timeout):
    """Run a worker for the manager at ADDRESS (HOST:PORT).

    Exit status: 0 when the manager sent it away, 2 when it could not reach the
    manager, 3 when the secret was refused, 4 when it lost the manager, 5 when
    its cache directory could not be used.
    """
    import shutil

    import psutil

    from .wire.errors import AuthError
    from .worker.process import Worker
    from .worker.slots import CacheDirError, default_root, take_slot, usable_dir

    host, port = _address(address)
    secret, tls = _credentials(secret_file, tls_mode, tls_cert, tls_key, tls_ca)
    slot = None
    try:
        if cache_dir is None:   # the node's cache, so that the next run finds what this one was sent
            slot = take_slot(default_root())
            cache_dir = slot.path
        else:
            usable_dir(cache_dir)
    except CacheDirError as e:
        click.echo(f"tether worker: {e}", err=True)
        sys.exit(5)
    profiler = None
    status = 0
    try:
        w = Worker(host, port, secret, cores=cores or os.cpu_count() or 1,
                   memory=memory if memory is not None else psutil.virtual_memory().total // (1 << 20),
                   disk=disk if disk is not None else shutil.disk_usage(cache_dir).free // (1 << 20),
                   work_dir=cache_dir, name=name, clean=clean, connect_timeout=connect_timeout,
                   listen_host=listen_host, heartbeat=heartbeat, owner_pid=owner_pid, owner_dir=owner_dir,
                   tls=tls, spare_interpreters=1 if spare else 0, cache_budget=cache_budget,
                   idle_timeout=idle_timeout, gpus=gpus if gpus is not None else detect_gpus())
        if profile_path is not None:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        status = asyncio.run(w.run())
    except AuthError as e:
        click.echo(f"tether worker: {e}", err=True)
        status = 3
    except OSError as e:
        click.echo(f"tether worker: cannot reach the manager at {address}: {e}", err=True)
        status = 2
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        if slot is not None:   # the worker has cleaned up: the slot is free for the next
            slot.release()
    if status == 4:
        click.echo(f"tether worker: {w.exit_reason}", err=True)
    sys.exit(status)


def detect_gpus() -> int:
    """The GPUs `nvidia-smi -L` lists (one line each, "GPU 0: ..."); 0 where it is absent or fails."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@main.command()
@click.argument("address")
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="File holding the manager's secret.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (fields: see the README).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait for the manager's answer.")
@click.option("--tls", "tls_mode", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="TLS on the link to the manager: auto uses it unless ADDRESS is a loopback address.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A certificate (PEM) the manager's CA signed, with --tls-key and --tls-ca [TLS keyed by the "
              "secret].")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The private key of --tls-cert (PEM).")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The CA that signed the manager's certificate (PEM).")
def status(address, secret_file, as_json, timeout, tls_mode, tls_cert, tls_key, tls_ca):
    """Show the run of the manager at ADDRESS (HOST:PORT): workers, cores, tasks by state, groups,
    bytes moved, cache use.

    Exit status: 0 with the status printed, 1 when it could not be had.
    """
    import json

    from .status import StatusError, as_dict, query, render

    _address(address)
    secret, tls = _credentials(secret_file, tls_mode, tls_cert, tls_key, tls_ca)
    try:
        snapshot = query(address, secret, tls, timeout)
    except StatusError as e:
        click.echo(f"tether status: {e}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(as_dict(snapshot), indent=2))
    else:
        render(snapshot, address)


@main.command()
@click.option("--chains", type=click.IntRange(min=1), default=20, show_default=True,
              help="Chains of tasks, run side by side.")
@click.option("--length", type=click.IntRange(min=1), default=30, show_default=True,
              help="Tasks in each chain, each reading its predecessor's temp file.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Local workers to start.")
@click.option("--no-groups", is_flag=True, help="Turn task groups off, to compare.")
def demo(chains, length, workers, no_groups):
    """Run the seed's workflow: chains of tasks passing temp files, on local workers."""
    from .demo import run_demo

    run_demo(chains=chains, length=length, workers=workers, group_tasks=not no_groups)


@main.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML report to write (one file, opens without a network).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the timeline and cache use as a PNG (needs matplotlib).")
@click.option("--serve", metavar="[HOST:]PORT", default=None,
              help="Serve the live page and /metrics instead, following the log as the run writes it.")
def report(run, output, png, serve):
    """A run's report: RUN is a run directory (its transactions file) or a transaction log."""
    from .report.command import report_command

    sys.exit(report_command(run, output, png, serve))


@main.command()
@click.argument("trace")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Simulated workers.")
@click.option("--bandwidth", default="1gbit", show_default=True,
              help="Every link's rate, the manager's included: e.g. 1gbit, 10Gbit/s, 125MB/s.")
@click.option("--cores", type=click.IntRange(min=1), default=1, show_default=True, help="Cores a worker.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.001, show_default=True,
              help="Seconds a message takes each way.")
@click.option("--tasks", type=click.IntRange(min=1), default=None,
              help="Tasks: a recipe's instance of about this many, or copies of TRACE up to exactly this many "
              "(past 10,000, copies of a 10,000-task instance) [the trace's; 1,000 for a recipe].")
@click.option("--copies", type=click.IntRange(min=1), default=None, help="Independent copies of the workflow.")
@click.option("--time-scale", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Each task runs its traced run time times this.")
@click.option("--size-scale", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Each file is its traced size times this.")
@click.option("--overhead", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds added to each task's run: what starting and reporting a task costs a worker.")
@click.option("--placement", type=click.Choice(["graph", "groups", "none"]), default=None,
              help="The scheduler's placement: the whole graph, groups of dependent tasks, or none "
              "(no groups) [the scheduler's default].")
@click.option("--order", type=click.Choice(["critical", "depth", "breadth"]), default=None,
              help="The order in which ready work is placed [the scheduler's default].")
@click.option("--prune", default=None, metavar="K|none", help="Depth to which temps are pruned, or none "
              "[the scheduler's default].")
@click.option("--batch", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="The manager hands the scheduler what arrived within this many seconds at once.")
@click.option("--tick", type=click.FloatRange(min=0.001), default=0.25, show_default=True,
              help="Seconds between the manager's periodic ticks.")
@click.option("--random-state", "seed", type=int, default=1, show_default=True,
              help="Random state of the generator that makes a recipe's instance.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures here as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines (each tenth of the tasks settled) on stderr.")
def simulate(trace, workers, bandwidth, cores, latency, tasks, copies, time_scale, size_scale, overhead, placement,
             order, prune, batch, tick, seed, json_path, quiet):
    """Run the workflow TRACE on simulated workers: the real scheduler and worker logic on a virtual clock.

    TRACE is a WfFormat JSON file or a WfCommons recipe name (montage, epigenomics, 1000genome, blast, soykb,
    ...; needs the wfcommons package). Reports the makespan, the bytes moved, each worker's peak disk use and
    the time spent scheduling.
    """
    import json
    import time

    from .simrun import UNSET, Setup, parse_bandwidth, prepare, scheduler_options, simulate as run_simulation
    from .traces import TraceError

    try:
        rate = parse_bandwidth(bandwidth)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--bandwidth")
    depth: object = UNSET
    if prune is not None:
        if prune.lower() == "none":
            depth = None
        elif prune.isdigit():
            depth = int(prune)
        else:
            raise click.BadParameter(f"expected a depth (0, 1, ...) or none, got {prune!r}", param_hint="--prune")
    setup = Setup(workers, cores, rate, latency, overhead, time_scale, size_scale, placement,
                  order if order is not None else UNSET, depth, batch, tick)
    try:
        setup.check()
        for note in scheduler_options(setup)[1]:
            click.echo(f"tether simulate: this scheduler does not take {note} yet", err=True)
        work, n_copies, limit = prepare(trace, tasks, copies, seed)
        started = time.perf_counter()

        def progress(settled, now):
            click.echo(f"tether simulate: {settled:,} tasks settled, {now:,.0f} s simulated, "
                       f"{time.perf_counter() - started:,.0f} s wall", err=True)

        result = run_simulation(work, setup, n_copies, limit, progress if quiet is False else None)
    except TraceError as e:
        raise click.BadParameter(str(e), param_hint="TRACE")
    except ValueError as e:
        raise click.UsageError(str(e))
    r = result
    click.echo(f"{r.workflow}: {r.tasks:,} tasks ({r.copies} cop{'y' if r.copies == 1 else 'ies'}), "
               f"{workers} workers of {cores} core{'s' * (cores > 1)}, {bandwidth} links")
    click.echo(f"  completed         {r.completed:,} ({r.failed:,} failed)")
    click.echo(f"  makespan          {r.makespan_s:,.2f} s (simulated)")
    click.echo(f"  manager->worker   {r.bytes_manager_to_worker:,} B")
    click.echo(f"  worker->worker    {r.bytes_worker_to_worker:,} B")
    click.echo(f"  worker->manager   {r.bytes_worker_to_manager:,} B")
    click.echo(f"  peak disk/worker  {r.peak_disk_max:,} B max, {r.peak_disk_median:,} B median")
    click.echo(f"  scheduling        {r.scheduling_s:.2f} s, {r.scheduling_s_per_task * 1e6:.1f} us/task "
               f"({r.handles:,} calls; {r.scheduling_cpu_s:.2f} s CPU)")
    click.echo(f"  wall time         {r.wall_s:.1f} s ({r.cpu_s:.1f} s CPU), peak RSS {r.peak_rss_bytes / 1e9:.2f} GB")
    if json_path is not None:
        json_path.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    if r.failed:
        sys.exit(1)


# ---------------------------------------------------------------- benchmarks
# The benchmarks live beside the runtime, in the tether_bench package; each command imports it
# when it runs, so that nothing else here depends on it.


class _Size(click.ParamType):
    """A byte count such as 50MB, 1MiB, 4096: shown as SIZE in the help."""

    name = "size"
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper()
        number = text.rstrip("KMGIB")
        try:
            return int(float(number) * self.units[text[len(number):]])
        except (KeyError, ValueError):
            self.fail(f"expected a size such as 50MB, 1MiB or 4096, got {value!r}", param, ctx)


_size = _Size()


def _bench_options(f):
    """Options every benchmark takes."""
    f = click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write the report here (and its plot beside it, .png).")(f)
    f = click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write the plot here [beside --json].")(f)
    f = click.option("--quick", is_flag=True, help="A small run, as CI's smoke test does.")(f)
    f = click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
                     help="Workers of one core each, for every system.")(f)
    f = click.option("--rows", default="", help="Only these rows, comma-separated [all].")(f)
    f = click.option("--parsl-logging/--no-parsl-logging", default=True, show_default=True,
                     help="Parsl's debug log in its run directory (Parsl's default) for the Parsl rows.")(f)
    f = click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Run every row this many times, in rounds; each row reports its median run.")(f)
    f = click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where each row's temporary directory goes [the system's temp directory].")(f)
    return f


def _bench_run(name: str, build, *, json_path, plot_path, quick, workers, rows, work_dir, repeat, parsl_logging,
               manager=None, **kw) -> None:
    """Plan the rows with `build(options)`, run them, and exit non-zero if any failed."""
    from tether_bench import runner
    from tether_bench.plugins import PluginMissing

    if repeat % 2 == 0:
        raise click.UsageError(f"--repeat {repeat}: give an odd number of runs, so that each row's median is "
                               "one of its runs")
    options = runner.Options(workers=workers, quick=quick, work_root=work_dir, manager=manager, repeat=repeat,
                             parsl_logging=parsl_logging,
                             rows=tuple(r.strip() for r in rows.split(",") if r.strip()))
    try:
        parameters, plans = build(options)
    except PluginMissing as e:
        click.echo(f"tether bench {name}: {e}", err=True)
        sys.exit(2)
    except ValueError as e:
        raise click.UsageError(str(e))
    if plot_path is None and json_path is not None:
        plot_path = json_path.with_suffix(".png")
    parameters["repeat"] = repeat
    report = runner.run_benchmark(name, parameters, plans, json_path=json_path, plot_path=plot_path,
                                  work_root=work_dir, repeat=repeat, **kw)
    failed = runner.failed_rows(report)
    if failed:
        click.echo(f"tether bench {name}: row(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)


@main.group()
def bench() -> None:
    """Benchmarks run side by side with Parsl HTEX, Dask and the machine's floor."""


@bench.command()
@click.option("--chains", type=click.IntRange(min=1), default=20, show_default=True,
              help="Chains of tasks, run side by side.")
@click.option("--length", type=click.IntRange(min=1), default=30, show_default=True,
              help="Tasks in each chain.")
@click.option("--size", type=_size, default="0", help="Bytes each task adds to its file, e.g. 50MB [small files].")
@click.option("--emulate-cluster", is_flag=True, help="Workers in network namespaces behind rate-limited "
              "links (root only).")
@click.option("--rate", default="1gbit", show_default=True, help="Link rate with --emulate-cluster.")
@_bench_options
def chains(chains, length, size, emulate_cluster, rate, **common):
    """The seed's chains of tasks, each reading its predecessor's file."""
    import contextlib

    from tether_bench import chains as bench_chains
    from tether_bench.plugins import PluginMissing, emulated_cluster

    with contextlib.ExitStack() as stack:
        manager = None
        if emulate_cluster:
            try:
                manager = stack.enter_context(emulated_cluster(common["workers"], rate))
            except PluginMissing as e:
                click.echo(f"tether bench chains: {e}", err=True)
                sys.exit(2)
        _bench_run("chains", lambda o: bench_chains.plans(o, chains, length, size), manager=manager,
                   reference="floor", check_targets=bench_chains.check_targets, **common)



@bench.command()
@click.option("--batches", type=click.IntRange(min=1), default=4, show_default=True,
              help="Batches, each with an input file of its own.")
@click.option("--sequences", type=click.IntRange(min=1), default=10, show_default=True,
              help="Sequences (ligands) per batch.")
@click.option("--size", type=_size, default="0", help="Padding each step adds to its output, e.g. 1MB.")
@click.option("--receptor-size", type=_size, default="1MB", show_default=True,
              help="Size of each batch's input file, e.g. 1MB.")
@_bench_options
def parsldock(batches, sequences, size, receptor_size, **common):
    """Batches of 5-task sequences in which later steps read several earlier outputs (ParslDock's shape)."""
    from tether_bench import parsldock as bench_parsldock

    _bench_run("parsldock", lambda o: bench_parsldock.plans(o, batches, sequences, size, receptor_size),
               reference="floor", check_targets=bench_parsldock.check_targets, **common)



@bench.command()
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--time-scale", type=float, default=0.01, show_default=True,
              help="Each task sleeps its traced run time times this.")
@click.option("--size-scale", type=float, default=0.001, show_default=True,
              help="Each file is its traced size times this (1: sizes kept).")
@_bench_options
def replay(trace, time_scale, size_scale, **common):
    """Replay the real workflow trace TRACE (WfFormat JSON, e.g. from ../shared/workflows)."""
    from tether_bench import replay as bench_replay

    from .traces import TraceError, read_trace

    try:
        build = bench_replay.plans
        read_trace(trace)
    except TraceError as e:
        raise click.BadParameter(str(e), param_hint="TRACE")
    _bench_run("replay", lambda o: build(o, trace, time_scale, size_scale), reference="floor",
               check_targets=bench_replay.check_targets, **common)


@bench.command()
@click.option("--shapes", "shape_names", default="montage,epigenomics,1000genome,blast", show_default=True,
              help="Workflow shapes to run, comma-separated.")
@click.option("--time-scale", type=float, default=0.002, show_default=True,
              help="Each task sleeps its traced run time times this.")
@click.option("--bytes", "shape_bytes", type=_size, default="250MB", show_default=True,
              help="All files of a shape together (inputs, temps, finals), its traced sizes scaled to fit.")
@click.option("--traces", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of WfInstances traces [../shared/workflows beside the repository]; a shape "
              "without one is generated by its wfcommons recipe.")
@click.option("--rate", default="1gbit", show_default=True, help="Rate of each emulated link.")
@_bench_options
@click.pass_context
def shapes(ctx, shape_names, time_scale, shape_bytes, traces, rate, **common):
    """Montage, Epigenomics, 1000Genome and Blast on an emulated cluster of 4 one-core workers (root only;
    without root the cluster rows are skipped, saying why)."""
    import contextlib

    from tether_bench import shapes as bench_shapes
    from tether_bench.plugins import PluginMissing, load

    if ctx.get_parameter_source("workers") is click.core.ParameterSource.DEFAULT:
        common["workers"] = 4
    names = [s.strip() for s in shape_names.split(",") if s.strip()]
    with contextlib.ExitStack() as stack:
        cluster, reason = None, None
        try:
            cluster_module = load("cluster", "cluster emulation")
            reason = cluster_module.unavailable_reason()
            if reason is None:
                cluster = stack.enter_context(cluster_module.EmulatedCluster(common["workers"], rate=rate))
        except PluginMissing as e:
            reason = str(e)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--rate")
        _bench_run("shapes", lambda o: bench_shapes.plans(o, names, time_scale, shape_bytes, traces, cluster, reason),
                   reference=None, check_targets=bench_shapes.check_targets, columns=bench_shapes.COLUMNS,
                   plot_figures=bench_shapes.PLOT_FIGURES, **common)



@bench.command()
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--time-scale", type=float, default=0.01, show_default=True,
              help="Each task sleeps its traced run time times this.")
@click.option("--size-scale", type=float, default=0.001, show_default=True,
              help="Each file is its traced size times this.")
@_bench_options
def simcheck(trace, time_scale, size_scale, **common):
    """`tether simulate` against real runs of the trace TRACE (WfFormat JSON) at 4 and 8 local workers:
    makespan and bytes moved side by side, with the links and per-task overhead measured here first."""
    from tether_bench import simcheck as bench_simcheck
    from tether.traces import TraceError, load

    try:
        load(trace)
    except TraceError as e:
        raise click.BadParameter(str(e), param_hint="TRACE")
    _bench_run("simcheck", lambda o: bench_simcheck.plans(o, trace, time_scale, size_scale), reference=None,
               check_targets=bench_simcheck.check_targets, columns=bench_simcheck.COLUMNS,
               plot_figures=("makespan_ratio", "bytes_ratio"), **common)


@bench.command()
@click.option("--tasks", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="No-op tasks for the throughput rows.")
@click.option("--length", type=click.IntRange(min=2), default=200, show_default=True,
              help="Tasks in the chain rows.")
@click.option("--futures-length", type=click.IntRange(min=2), default=1_000, show_default=True,
              help="Calls in tether.Executor's chain of futures.")
@_bench_options
def noop(tasks, length, futures_length, **common):
    """No-op task throughput (as parsl-perf measures it) and the hop latency of a chain."""
    from tether_bench import noop as bench_noop

    _bench_run("noop", lambda o: bench_noop.plans(o, tasks, length, futures_length), reference=None,
               check_targets=bench_noop.check_targets,
               plot_figures=("tasks_per_s", "hop_latency_median_s"), **common)



@bench.command()
@click.option("--calls", type=click.IntRange(min=1), default=1_000, show_default=True,
              help="Calls in each row [40 with --quick].")
@click.option("--setup-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds the setup takes [0.05 with --quick].")
@_bench_options
def context(calls, setup_seconds, **common):
    """A slow setup kept on the workers (Executor(setup=...)) against one made in every call."""
    from tether_bench import context as bench_context

    _bench_run("context", lambda o: bench_context.plans(o, calls, setup_seconds), reference=None,
               check_targets=bench_context.check_targets, columns=bench_context.COLUMNS,
               plot_figures=("makespan_s", "tasks_per_s"), **common)


@bench.command()
@click.option("--tasks", type=click.IntRange(min=10), default=1_000_000, show_default=True,
              help="No-op tasks for each system but Dask [20,000 with --quick].")
@click.option("--dask-tasks", type=click.IntRange(min=10), default=100_000, show_default=True,
              help="No-op tasks for Dask, which is slow (at most --tasks) [2,000 with --quick].")
@click.option("--chain-tasks", type=click.IntRange(min=10), default=200_000, show_default=True,
              help="Tasks of the tether-chains row, in chains of 10 passing temps (at most --tasks) "
                   "[4,000 with --quick].")
@_bench_options
def longrun(tasks, dask_tasks, chain_tasks, **common):
    """A million no-op tasks in waves of 100,000: each wave's time and the submitting process's memory after it,
    for tether's Manager and Executor, a process pool and Dask; and chains passing temps through the Manager."""
    from tether_bench import longrun as bench_longrun

    _bench_run("longrun", lambda o: bench_longrun.plans(o, tasks, dask_tasks, chain_tasks), reference=None,
               check_targets=bench_longrun.check_targets, columns=bench_longrun.COLUMNS,
               plot_figures=("tasks_per_s", "rss_growth_bytes"), **common)


@bench.command()
@click.option("--tasks", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="No-op tasks for the throughput rows.")
@click.option("--size", type=_size, default="1GB", show_default=True,
              help="Bytes of the peer transfer, e.g. 1GB or 512MiB.")
@_bench_options
def wire(tasks, size, **common):
    """What TLS costs: no-op throughput and a peer transfer, with plain and encrypted links."""
    from tether_bench import wire as bench_wire

    _bench_run("wire", lambda o: bench_wire.plans(o, tasks, size), reference=None,
               check_targets=bench_wire.check_targets, plot_figures=("tasks_per_s", "transfer_s"), **common)


@bench.command()
@_bench_options
def scale(**common):
    """The scheduler core alone with simulated workers: time and memory per task as the graph grows."""
    from tether_bench import scale_plan

    _bench_run("scale", scale_plan.plans, reference=None, check_targets=scale_plan.check_targets,
               plot_figures=("seconds_per_task", "bytes_per_task"), **common)



@bench.command()
@click.option("--apps", default="", help="Only these TaPS apps, comma-separated [all]: synthetic-sequential, "
              "synthetic-diamond, synthetic-reduce, cholesky, mapreduce, failures-cholesky (tether, Dask and Ray only).")
@click.option("--systems", default="", help="Only these systems, comma-separated [all]: tether, process-pool, "
              "dask, ray, tether-cold, tether-spill (results kept in the workers' caches; failures-cholesky only by default).")
@_bench_options
def taps(apps, systems, **common):
    """TaPS applications on tether, a process pool, Dask and Ray (TaPS must be installed)."""
    from tether_bench import taps as bench_taps

    def split(text):
        return [x.strip() for x in text.split(",") if x.strip()] or None

    _bench_run("taps", lambda o: bench_taps.plans(o, split(apps), split(systems)), reference=None,
               check_targets=bench_taps.check_targets, **common)



@bench.command()
@click.option("--count", type=click.IntRange(min=0), default=1, show_default=True,
              help="Faults injected in each row, one after another.")
@click.option("--heartbeat", type=click.FloatRange(min=0.2), default=None,
              help="Seconds of silence after which a worker is declared lost [5; 2 with --quick].")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the choice of workers to hit.")
@_bench_options
def faults(count, heartbeat, seed, **common):
    """A workload fault-free, then with each fault injected for real: signals, a dying interpreter,
    a cut link and a full disk (the last two as root)."""
    from tether_bench import faults as bench_faults

    _bench_run("faults", lambda o: bench_faults.plans(o, count, heartbeat, seed), reference=None,
               check_targets=bench_faults.check_targets, plot_figures=("makespan_s", "time_to_notice_s"),
               columns=bench_faults.COLUMNS, **common)



@bench.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def markdown(reports):
    """Print REPORTS, files written with --json, as Markdown tables (as in BENCHMARKS.md)."""
    import json

    from tether_bench.markdown import render

    for path in reports:
        report = json.loads(path.read_text())
        click.echo(f"### {report['benchmark']} ({path.name})\n")
        click.echo(render(report))


if __name__ == "__main__":
    main()
