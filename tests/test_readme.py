"""The README as a newcomer reads it: every Python example runs as written, every link stays here.

Each ```python block of README.md runs as a program of its own, in a fresh
interpreter, in an empty directory with an empty home. A block that cannot
run here (it needs a real cluster, say) is marked by an HTML comment on the
line before it:

    <!-- not run: needs a Slurm cluster -->

and the marked blocks are a short list, kept below, so a block is not
quietly left out.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import tether

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# The blocks that may be marked "not run", by the reason the mark gives: changing this list is a decision.
NOT_RUN = ["needs workers started by batch jobs on a cluster"]

BLOCK_TIMEOUT = 120   # seconds; a block that hangs fails instead of holding up the suite


@dataclass
class Block:
    line: int               # the line of the opening fence, counted from 1
    heading: str            # the section it is in
    code: str
    not_run: str | None     # the reason given by a "not run" mark, or None

    @property
    def name(self) -> str:
        words = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"line{self.line}-{words}"


FENCE = re.compile(r"^\s*```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->\s*$")


def python_blocks(text: str) -> list[Block]:
    """Every ```python block of a Markdown text, with its section and its "not run" mark."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = "top"
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith("```")), None)
        assert end is not None, f"README.md line {i + 1}: a code block that never ends"
        if fence.group(1) == "python":
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            mark = MARK.match(before)
            code = textwrap.dedent("\n".join(lines[i + 1:end]) + "\n")   # a block inside a list is indented
            blocks.append(Block(i + 1, heading, code, mark.group(1) if mark else None))
        i = end + 1
    return blocks


BLOCKS = python_blocks(README.read_text())


def test_the_parser_sees_marks_and_sections():
    text = ("# A\n\n```python\nprint(1)\n```\n\n## B\n<!-- not run: needs a cluster -->\n\n"
            "```python\nimport x\n```\n```sh\nls\n```\n- a list:\n\n  ```python\n  if 1:\n      pass\n  ```\n")
    blocks = python_blocks(text)
    assert [(b.line, b.heading, b.code, b.not_run) for b in blocks] == [
        (3, "A", "print(1)\n", None), (10, "B", "import x\n", "needs a cluster"),
        (18, "B", "if 1:\n    pass\n", None)]


def test_only_the_known_blocks_are_marked_not_run():
    assert [b.not_run for b in BLOCKS if b.not_run] == NOT_RUN
    assert len([b for b in BLOCKS if not b.not_run]) >= 4


def block_env(home: Path) -> dict[str, str]:
    """The test's environment, with the tether under test first on the path and an empty home."""
    env = dict(os.environ)
    src = str(Path(tether.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["HOME"] = str(home)
    env.pop("XDG_CACHE_HOME", None)
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_python_block_runs_as_written(block, tmp_path):
    if block.not_run:
        pytest.skip(f"README.md line {block.line} is marked not run: {block.not_run}")
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    program = tmp_path / f"readme_line{block.line}.py"
    program.write_text(block.code)
    try:
        run = subprocess.run([sys.executable, str(program)], cwd=work, env=block_env(home),
                             capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"README.md line {block.line} ({block.heading}) did not end within {BLOCK_TIMEOUT} s;"
                    f" its stderr:\n{e.stderr}")
    assert run.returncode == 0, (f"README.md line {block.line} ({block.heading}) exited {run.returncode};"
                                 f" its stderr:\n{run.stderr}\nits stdout:\n{run.stdout}")
    assert "Traceback" not in run.stderr, (f"README.md line {block.line} ({block.heading}) exited 0 but printed"
                                           f" a traceback:\n{run.stderr}")


# ------------------------------------------------------------------ links and words

LINK = re.compile(r"\[[^\]]*\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+\"[^\"]*\")?\s*\)")   # [text](target "title")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(?:<([^>]+)>|(\S+))", re.MULTILINE)            # [label]: target
HTML = re.compile(r"""\b(?:href|src)\s*=\s*(?:"([^"]+)"|'([^']+)')""", re.IGNORECASE)     # <a href="target">
EXTERNAL = re.compile(r"^(?:https?|mailto):", re.IGNORECASE)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def links(text: str) -> list[str]:
    return [m.group(1) or m.group(2) for pattern in (LINK, REFERENCE, HTML) for m in pattern.finditer(text)]


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown page's headings, made as GitHub makes them."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_anchors_are_made_as_github_makes_them():
    assert anchors("# The Executor: results that stay\n## A running manager, `tether status`\n") == {
        "the-executor-results-that-stay", "a-running-manager-tether-status"}


def test_link_finder_sees_every_kind_of_link():
    text = '[a](docs/x.md) [b](<y z.md>) [c](https://e.org "t")\n[d]: ../up.md\n<a href="w.md#s">w</a>'
    assert sorted(links(text)) == sorted(["docs/x.md", "y z.md", "https://e.org", "../up.md", "w.md#s"])


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository(page):
    wrong = []
    for target in links(page.read_text()):
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        if SCHEME.match(target):
            wrong.append(f"{target}: neither a web page nor a file of the repository")
        elif "../" in target or Path(path).is_absolute() or not resolved.is_relative_to(ROOT):
            wrong.append(f"{target}: points outside the repository")
        elif not resolved.exists():
            wrong.append(f"{target}: no such file in the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            wrong.append(f"{target}: {path} has no heading #{anchor}")
    assert not wrong, f"{page.relative_to(ROOT)}:\n" + "\n".join(wrong)


def test_readme_names_no_path_outside_the_repository():
    text = README.read_text()
    assert "../" not in text, [line for line in text.splitlines() if "../" in line]


REPO_PATH = re.compile(r"(?<![\w./-])(?:src|tests|examples|benchmarks|docs|\.ci)/[\w./-]*[\w/]")


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_it_names_in_the_repository_exist(page):
    """`examples/chains.py`, `tests/core/` and the like: a renamed file leaves no stale name behind."""
    missing = sorted({p for p in REPO_PATH.findall(page.read_text()) if not (ROOT / p).exists()})
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_design_notes_are_in_the_repository_and_linked():
    assert (DOCS / "design.md").is_file()
    assert "docs/design.md" in links(README.read_text())


def test_readme_speaks_of_the_project():
    """The README says what tether does, in its own words: no 'seed' of the project it came from."""
    for page in markdown_files():
        found = [f"{i}: {line}" for i, line in enumerate(page.read_text().splitlines(), 1) if "seed" in line.lower()]
        assert not found, f"{page.relative_to(ROOT)}:\n" + "\n".join(found)


def test_readme_names_declare_buffer_and_install():
    text = README.read_text()
    assert "declare_buffer" in text
    assert re.search(r"^## Install\s*$", text, re.MULTILINE)
    assert re.search(r"^## Concepts\s*$", text, re.MULTILINE)
