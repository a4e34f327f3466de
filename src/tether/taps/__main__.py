"""`python -m tether.taps ...`: TaPS's command line (`python -m taps.run ...`) with the tether executor."""
from __future__ import annotations

import sys

from taps.run.main import main

from . import plugin  # noqa: F401  (registers the executor before TaPS parses its arguments)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
