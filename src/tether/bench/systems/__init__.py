"""The systems a benchmark compares, each running a Workflow and returning a row.

Every runner takes the workflow, the worker count and a directory of its
own (removed by the caller), starts its system, waits until its workers
are ready, times the run from the first submission to the last result, checks
the final outputs and shuts everything it started down.
"""


class Unavailable(Exception):
    """A system that cannot run here (a package not installed, a branch not merged); the row is skipped."""
