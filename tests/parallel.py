"""How the suite runs in several processes (pytest-xdist: `python3 dev.py test` runs `-n N --dist loadgroup`).

Slow tests (marked `slow`) start first, so that none of them starts last and
holds up the end. A process takes each group whole, in the order of its
first test:

- the tests that make network namespaces (marked `root` or `netns`) form one
  group, so they run one at a time: each checks afterwards what is left of
  namespaces, and may not count another's;
- the slow tests of tests/bench form one: each runs whole systems (Parsl,
  Dask, process pools, tether) through a quick benchmark; several at once
  contend for the cores, and each then takes several times as long, so they
  run one after another while the other processes take the lighter tests;
- the tests of a module that share a fixture made once for the module (or
  class) form one, so that it is made once, not once in each process;
- every other test goes alone to whichever process is free.

xdist's own loadgroup scheduler learns each test's group from a suffix its
workers append to the test's id, which this version of pytest no longer
takes (its tests would be spread as if ungrouped). So here the workers write
each test's group to a file (TETHER_TEST_GROUPS), and the scheduler of the
controlling process reads it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

GROUPS_FILE = "TETHER_TEST_GROUPS"


def group_of(item: pytest.Item) -> str | None:
    """The group this test runs in, or None: alone."""
    if item.get_closest_marker("root") or item.get_closest_marker("netns"):
        return "netns"
    if item.get_closest_marker("slow") and item.nodeid.startswith("tests/bench/"):
        return "bench"
    if _shares_a_module_fixture(item):
        return item.nodeid.split("::", 1)[0]
    return None


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(d.scope in ("module", "class") and d.func.__module__.startswith("tests.")
                                    for defs in info.name2fixturedefs.values() for d in defs)


def configure(config: pytest.Config, made: list[str]) -> None:
    """In the controlling process of a parallel run: name the file its workers write the groups to."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        directory = tempfile.mkdtemp(prefix="tether-test-groups-")
        made.append(directory)
        os.environ[GROUPS_FILE] = str(Path(directory) / "groups.json")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker of a parallel run: slow tests first; each test's group written down."""
    if not hasattr(config, "workerinput"):   # a run in one process keeps the files' order
        return
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)   # stable
    path = os.environ.get(GROUPS_FILE)
    if path:   # every worker collects the same tests, so writes the same file
        groups = {item.nodeid: g for item in items if (g := group_of(item)) is not None}
        tmp = f"{path}.{config.workerinput['workerid']}"
        Path(tmp).write_text(json.dumps(groups))
        os.replace(tmp, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """For --dist loadgroup: xdist's scheduler by scope, the scopes being the groups above."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        _groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:   # first asked once every worker has collected, so has written it
                self._groups = json.loads(Path(os.environ[GROUPS_FILE]).read_text())
            return self._groups.get(nodeid, nodeid)

    config.option.loadscopereorder = False   # the collection's order (slow tests first) is the order to start in
    return GroupScheduling(config, log)
