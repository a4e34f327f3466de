#!/usr/bin/env python3
"""Project entry point for a fresh machine: needs only Python 3.11+.

    python3 dev.py demo      # create .venv if needed, install, run the seed workflow
    python3 dev.py test      # create .venv if needed, install, run the test suite
    python3 dev.py bench ... # run `tether bench ...` inside the environment

The environment is rebuilt when pyproject.toml changes (a stamp file keeps
the hash of the last install). It is installed with uv where uv can be had
(from PyPI, into the environment): it fetches and installs in parallel, in a
fraction of pip's time; pip does it where uv cannot. The tests run in
several processes (pytest-xdist; see tests/parallel.py) unless the command
line says how many (-n 0: one process). Where ../shared/vendor/ beside the repository
holds a TaPS source archive (taps-VERSION.tar.gz; TaPS is not on PyPI), it is
installed too, so that the tests of the TaPS plugin run; the archive is part
of the stamp.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".tether-installed"
EXTRAS = "dev,bench"
VENDOR = ROOT.parent / "shared" / "vendor"


def vendored_taps() -> Path | None:
    """The TaPS source archive in ../shared/vendor (the last by name, if several), or None."""
    archives = sorted(VENDOR.glob("taps-*.tar.gz")) if VENDOR.is_dir() else []
    return archives[-1] if archives else None


def taps_version(archive: Path) -> str:
    """The version in the archive's name: setuptools-scm cannot read it from a tarball without git."""
    return archive.name[len("taps-"):-len(".tar.gz")]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_env() -> Path:
    if sys.version_info < (3, 11):
        sys.exit(f"tether needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode())
    taps = vendored_taps()
    if taps is not None:
        stamp.update(taps.name.encode() + taps.read_bytes())
    wanted = stamp.hexdigest()
    py = venv_python()
    if py.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return py
    if not py.exists():
        print(f"creating {VENV.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing tether and its dependencies ...", flush=True)
    install = uv_install(py) or pip_install(py)
    install(["-e", f"{ROOT}[{EXTRAS}]"])
    if taps is not None:
        print(f"installing TaPS from {taps.name} ...", flush=True)
        install([str(taps)], env=dict(os.environ, SETUPTOOLS_SCM_PRETEND_VERSION=taps_version(taps)))
    STAMP.write_text(wanted)
    return py


def pip_install(py: Path):
    """pip, brought up to date first: installs what it is given into the environment."""
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    return lambda args, env=None: subprocess.run(pip + args, check=True, env=env)


def uv_install(py: Path):
    """uv, installed into the environment by its pip, or None where that fails (no index, say).

    An install that uv starts and cannot finish is done again by pip."""
    done = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "uv"])
    if done.returncode != 0:
        print("uv could not be installed: installing with pip", flush=True)
        return None
    uv = [str(py), "-m", "uv", "pip", "install", "--python", str(py), "-q"]

    def install(args: list[str], env: dict[str, str] | None = None) -> None:
        env = dict(env or os.environ, UV_LINK_MODE="copy")   # the cache may be on another file system
        if subprocess.run(uv + args, env=env).returncode != 0:
            print("uv could not install it: installing with pip", flush=True)
            pip_install(py)(args, env)
    return install


def parallel(args: list[str]) -> list[str]:
    """pytest-xdist's options: a process more than there are cores (the tests wait on subprocesses
    and sockets much of the time), at most 8; none when the arguments say how many already."""
    if any(a in ("-n", "--numprocesses", "--dist") or a.startswith(("-n", "--numprocesses=", "--dist="))
           or a == "no:xdist" for a in args):
        return []
    return ["-n", str(min((os.cpu_count() or 1) + 1, 8)), "--dist", "loadgroup"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    py = ensure_env()
    env = dict(os.environ)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if command == "demo":
        args = [str(py), "-m", "tether", "demo", *rest]
    elif command == "test":
        args = [str(py), "-m", "pytest", *parallel(rest), *rest]
    elif command == "bench":
        args = [str(py), "-m", "tether", "bench", *rest]
    elif command == "env":
        return 0
    else:
        print(f"unknown command {command!r}; use demo, test, bench or env", file=sys.stderr)
        return 2
    return subprocess.call(args, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
