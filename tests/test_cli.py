"""The command line as a newcomer meets it: help for everything, a version, extras that say how to
install them, and benchmarks that skip what is not installed.

A package "not installed" is made so in a child process by setting sys.modules[name] = None before
anything imports it: the import machinery then raises ImportError for it, as it does for a package
that is absent. Nothing is uninstalled.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import tether
from tether.cli import main

REPO = Path(__file__).resolve().parents[1]


def _commands(command: click.Command, path: tuple[str, ...] = ("tether",)):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_option_and_argument_of_every_command_is_explained():
    missing = []
    for path, command in _commands(main):
        ctx = click.Context(command, info_name=path[-1])
        text = command.get_help(ctx)
        for param in command.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            if isinstance(param, click.Option):
                if not (param.help or "").strip():
                    missing.append(f"{' '.join(path)} {param.opts[0]}: no help")
                metavar = param.make_metavar(ctx)
                if metavar.startswith("_") or "[_" in metavar:
                    missing.append(f"{' '.join(path)} {param.opts[0]}: metavar {metavar}")
            else:   # click's arguments take no help: the command's own text must name each one
                if param.human_readable_name not in text:
                    missing.append(f"{' '.join(path)} {param.human_readable_name}: not named in its help")
    assert not missing, "\n".join(missing)


def test_sizes_show_as_size_and_say_what_they_take():
    result = CliRunner().invoke(main, ["bench", "chains", "--help"])
    assert result.exit_code == 0
    assert "--size SIZE" in result.output and "e.g. 50MB" in result.output
    bad = CliRunner().invoke(main, ["bench", "chains", "--size", "lots"])
    assert bad.exit_code == 2 and "expected a size such as 50MB" in bad.output


def test_version():
    done = subprocess.run([sys.executable, "-m", "tether", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"tether {tether.__version__}"


def _without(modules: list[str], code: str, timeout: float = 280, cwd: Path | None = None):
    """Run code in a child interpreter in which `modules` cannot be imported."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_the_parsl_front_end_without_parsl_names_the_extra_to_install():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("parsl") for d in extras["parsl"])
    done = _without(["parsl"], "import tether.parsl")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tether.parsl needs Parsl, which is not installed")
    assert "pip install 'tether[parsl]'" in last and "pip install '.[parsl]'" in last
    done = _without(["parsl"], "import tether\ntry:\n    import tether.parsl\nexcept ImportError as e:\n"
                               "    print(e.name)")
    assert done.stdout.strip() == "parsl"


_BENCH = """
from tether.cli import main
sys.argv = ["tether", "bench", "chains", "--quick", "--workers", "1", "--chains", "2", "--length", "3",
            "--rows", ROWS, "--json", "report.json"]
main()
"""


def test_bench_skips_the_rows_whose_package_is_not_installed_and_draws_no_plot(tmp_path):
    done = _without(["parsl", "matplotlib"], _BENCH.replace("ROWS", repr("floor,parsl-htex,parsl-threads,tether-parsl")),
                    cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join((done.stdout + done.stderr).split())   # rich wraps long lines
    for row in ("parsl-htex", "parsl-threads", "tether-parsl"):
        assert f"SKIPPED {row}: parsl is not installed" in out
    assert "pip install 'tether[bench]'" in out   # the brackets are printed, not taken for markup
    assert "no plot written to report.png: matplotlib is not installed" in out
    assert "FAILED" not in out
    rows = {r["name"]: r for r in json.loads((tmp_path / "report.json").read_text())["rows"]}
    assert rows["floor"].get("correct") is True
    assert all(rows[r].get("skipped") for r in ("parsl-htex", "parsl-threads", "tether-parsl"))
    assert not (tmp_path / "report.png").exists()


def test_bench_fails_a_front_end_in_the_tree_that_does_not_import(tmp_path):
    pytest.importorskip("parsl")
    done = _without(["tether.parsl"], _BENCH.replace("ROWS", repr("tether-parsl")), cwd=tmp_path)
    assert done.returncode == 1
    out = " ".join((done.stdout + done.stderr).split())
    assert "FAILED tether-parsl" in out and "tether.parsl does not import" in out
