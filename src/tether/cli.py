"""The `tether` command: worker, demo, bench."""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import click


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """tether: a data-aware workflow executor."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@main.command()
@click.argument("address")
@click.option("--cores", type=click.IntRange(min=1), default=None, help="Cores to offer [all].")
@click.option("--memory", type=click.IntRange(min=0), default=None, help="Memory to offer, MB [all].")
@click.option("--disk", type=click.IntRange(min=0), default=None, help="Disk to offer, MB [free space].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the cache and sandboxes [a new temporary directory].")
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="File holding the manager's secret.")
@click.option("--name", default=None, help="Name to report [host-pid].")
@click.option("--clean/--keep-cache", default=False,
              help="Remove the whole cache directory at exit [keep content-named files for the next run].")
@click.option("--connect-timeout", type=float, default=60.0, show_default=True,
              help="Seconds to keep trying to reach the manager.")
@click.option("--listen-host", default=None, help="Address for the peer transfer listener "
              "[the address this host uses to reach the manager].")
def worker(address, cores, memory, disk, cache_dir, secret_file, name, clean, connect_timeout, listen_host):
    """Run a worker for the manager at ADDRESS (HOST:PORT)."""
    import shutil
    import tempfile

    import psutil

    from .protocol import AuthError, read_secret_file
    from .worker.process import Worker

    host, port = _address(address)
    try:
        secret = read_secret_file(secret_file)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--secret-file")
    if cache_dir is None:
        cache_dir = Path(tempfile.mkdtemp(prefix="tether-worker-"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    w = Worker(host, port, secret, cores=cores or os.cpu_count() or 1,
               memory=memory if memory is not None else psutil.virtual_memory().total // (1 << 20),
               disk=disk if disk is not None else shutil.disk_usage(cache_dir).free // (1 << 20),
               work_dir=cache_dir, name=name, clean=clean, connect_timeout=connect_timeout,
               listen_host=listen_host)
    try:
        asyncio.run(w.run())
    except AuthError as e:
        click.echo(f"tether worker: {e}", err=True)
        sys.exit(3)
    except OSError as e:
        click.echo(f"tether worker: cannot reach the manager at {address}: {e}", err=True)
        sys.exit(2)


@main.command()
@click.option("--chains", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--length", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--no-groups", is_flag=True, help="Turn task groups off, to compare.")
def demo(chains, length, workers, no_groups):
    """Run the seed's workflow: chains of tasks passing temp files, on local workers."""
    from .demo import run_demo

    run_demo(chains=chains, length=length, workers=workers, group_tasks=not no_groups)


if __name__ == "__main__":
    main()
