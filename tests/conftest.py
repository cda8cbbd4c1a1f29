"""Shared test configuration: compiled kernels by default (below).

Hypothesis runs without a deadline: tests never carry wall-clock limits (a slow CI machine or the
first numba compile must not turn into a failure). Counterexamples that hypothesis shrinks are
kept as explicit `@example` regressions in the property modules.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The suite runs the compiled kernels (numba, the simd portfolio build) unless told otherwise, in
# this process and in the subprocesses it starts: its books are small, and under the default `auto`
# every kernel would run interpreted (core.jit), leaving the compiled builds untested. The
# interpreted path has its own tests (tests/core/test_jit.py, the three-build parity tests, the
# golden reports run both ways). CROSSMARGIN_KERNEL=auto pytest ... runs the suite as users do.
os.environ.setdefault("CROSSMARGIN_KERNEL", "simd")

settings.register_profile(
    "crossmargin",
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A longer hunt for counterexamples, on demand: pytest --hypothesis-profile=thorough tests/property
settings.register_profile("thorough", parent=settings.get_profile("crossmargin"), max_examples=1_000)
settings.load_profile("crossmargin")


def shared_data_dir(required: str = "prices_daily_yahoo.csv") -> Path:
    """../shared/data beside the checkout, or $CROSSMARGIN_DATA, holding a file that matches the
    glob `required`. Every test that reads the shared data comes through here: without it the
    test skips with the reason, except in CI (CI=true), where absence fails."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    data = Path(os.environ.get("CROSSMARGIN_DATA", default))
    if not any(path.is_file() for path in data.glob(required)):
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared market data ({required}) not found under {data} (CI=true)")
        pytest.skip(f"shared market data ({required}) not found under {data}; set CROSSMARGIN_DATA")
    return data
