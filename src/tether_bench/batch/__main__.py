"""`python -m tether_bench.batch --spool DIR COMMAND ARGS...`: what each shim runs."""
from __future__ import annotations

import sys

from . import main

sys.exit(main(sys.argv[1:]))
