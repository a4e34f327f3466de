"""The systems a benchmark compares, each running a Workflow and returning a row.

Every runner takes the workflow, the worker count and a directory of its
own (removed by the caller), starts its system, waits until its workers
are ready, times the run from the first submission to the last result, checks
the final outputs and shuts everything it started down.
"""


class Unavailable(Exception):
    """A system that cannot run here (a package not installed, a branch not merged); the row is skipped."""


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
    }
