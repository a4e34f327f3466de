#!/usr/bin/env python3
"""Project entry point for a fresh machine: needs only Python 3.11+.

    python3 dev.py demo      # create .venv if needed, install, run the seed workflow
    python3 dev.py test      # create .venv if needed, install, run the test suite
    python3 dev.py bench ... # run `tether bench ...` inside the environment

The environment is rebuilt when pyproject.toml changes (a stamp file keeps
the hash of the last install). Where ../shared/vendor/ beside the repository
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
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["-e", f"{ROOT}[{EXTRAS}]"], check=True)
    if taps is not None:
        print(f"installing TaPS from {taps.name} ...", flush=True)
        env = dict(os.environ, SETUPTOOLS_SCM_PRETEND_VERSION=taps_version(taps))
        subprocess.run(pip + [str(taps)], check=True, env=env)
    STAMP.write_text(wanted)
    return py


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
        args = [str(py), "-m", "pytest", *rest]
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
