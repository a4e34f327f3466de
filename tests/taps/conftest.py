"""TaPS is an optional part: these tests skip, saying why, where it is not installed."""
from __future__ import annotations

import pytest

pytest.importorskip("taps", reason="TaPS is not installed (pip install git+https://github.com/proxystore/taps; "
                    "CI installs it from ../shared/vendor)")
