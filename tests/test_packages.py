"""The runtime and its benchmarks are packages side by side, and the runtime never needs the benchmarks.

Benchmarks and tools live beside the runtime (tether), not inside it: the
harness is tether_bench, and only the `tether bench` commands import it, when
they run.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tether

SRC = Path(tether.__file__).resolve().parents[1]   # the directory these tests import tether from

CHECK = textwrap.dedent("""
    import sys

    import tether, tether.cli, tether.manager.manager, tether.executor
    from tether.cli import main

    for args in (["--help"], ["bench", "--help"], ["bench", "noop", "--help"]):
        main(args, standalone_mode=False)
    assert "tether_bench" not in sys.modules, sorted(m for m in sys.modules if m.startswith("tether_bench"))

    import tether_bench.runner   # it is there to import, so the check above means something
    print("tether:", tether.__file__, file=sys.stderr)
    print("tether_bench:", tether_bench.__file__, file=sys.stderr)
""")


def test_runtime_does_not_import_the_benchmarks(tmp_path):
    """In a fresh interpreter: the runtime's modules and the command line's help leave tether_bench unloaded."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bench" in proc.stdout and "noop" in proc.stdout   # the help was printed, commands and all
    where = dict(line.split(": ", 1) for line in proc.stderr.splitlines() if line.startswith("tether"))
    assert Path(where["tether"]) == SRC / "tether" / "__init__.py"
    assert Path(where["tether_bench"]) == SRC / "tether_bench" / "__init__.py"   # beside tether, not in it


def _module_level_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import not inside a function: what runs when the module is imported."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.lineno, child.module))
            visit(child)

    visit(tree)
    return found


def test_no_runtime_module_imports_the_benchmarks_at_import_time():
    """Every module of tether, including those the subprocess above does not load (parsl, taps, report)."""
    offenders = []
    for path in sorted((SRC / "tether").rglob("*.py")):
        for line, module in _module_level_imports(ast.parse(path.read_text(), filename=str(path))):
            if module == "tether_bench" or module.startswith("tether_bench."):
                offenders.append(f"{path.relative_to(SRC)}:{line}: {module}")
    assert offenders == []
    cli = ast.parse((SRC / "tether" / "cli.py").read_text())
    lazy = [n for n in ast.walk(cli) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("tether_bench")]
    assert lazy, "the bench commands import tether_bench; this test should see them"
