"""The systems a benchmark compares, each running a Workflow and returning a row.

Every runner takes the workflow, the worker count and a directory of its
own (removed by the caller), starts its system, waits until its workers
are ready, times the run from the first submission to the last result, checks
the final outputs and shuts everything it started down.
"""


class Unavailable(Exception):
    """A system that cannot run here (a package not installed, a branch not merged); the row is skipped."""


# how to install each optional package a row may need (those of no extra are installed by their own name)
INSTALL = {"parsl": "pip install 'tether[bench]'", "dask": "pip install 'tether[bench]'",
           "distributed": "pip install 'tether[bench]'", "matplotlib": "pip install 'tether[bench]'"}


def not_installed(error: ImportError) -> Unavailable | None:
    """The Unavailable for an import that failed because a package outside the tree is not installed
    at all; None for anything else (tether's own front ends, in the tree, that fail to import, or a
    package that is installed but broken), which fails its row."""
    import importlib.util

    top = (getattr(error, "name", None) or "").partition(".")[0]
    if not top or top in ("tether", "tether_bench"):
        return None
    try:
        if importlib.util.find_spec(top) is not None:
            return None
    except (ImportError, ValueError):
        pass
    how = INSTALL.get(top, f"pip install {top}")
    return Unavailable(f"{top} is not installed ({how})")


def workflow_runners(wf, workers: int, options) -> dict:
    """The rows every workflow benchmark can run, by name: (its directory, advance) -> row.

    The tether-native rows run on options.manager when it is given (an
    emulated cluster), else on local workers.
    """
    from functools import partial

    from . import dask_shared, floor, parsl_htex, parsl_threads, tether_native, tether_parsl

    native = partial(tether_native.run, wf, workers, manager=options.manager)
    return {
        "floor": partial(floor.run, wf, workers),
        "parsl-threads": partial(parsl_threads.run, wf, workers, parsl_logging=options.parsl_logging),
        "parsl-htex": partial(parsl_htex.run, wf, workers, parsl_logging=options.parsl_logging),
        "dask": partial(dask_shared.run, wf, workers),
        "tether-parsl": partial(tether_parsl.run, wf, workers, parsl_logging=options.parsl_logging),
        "tether-parsl-slurm": partial(tether_parsl.run, wf, workers, name="tether-parsl-slurm",
                                      parsl_logging=options.parsl_logging, batch="slurm"),
        "tether-native": native,
        "tether-native-nogroup": partial(native, name="tether-native-nogroup", group_tasks=False),
        "tether-native-notemp": partial(native, name="tether-native-notemp", temps=False),
        "tether-native-memo": partial(tether_native.memo_rows, wf, workers),
    }
