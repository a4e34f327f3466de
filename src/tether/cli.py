"""The `tether` command: worker, status, demo, report, bench."""
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
def worker(address, cores, memory, disk, cache_dir, secret_file, name, clean, connect_timeout, listen_host,
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
                   idle_timeout=idle_timeout)
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

    try:
        build = bench_replay.plans
        bench_replay.read_trace(trace)
    except bench_replay.TraceError as e:
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
