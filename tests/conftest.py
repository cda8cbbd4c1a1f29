"""Shared test configuration.

Hypothesis runs without a deadline: tests never carry wall-clock limits (a slow CI machine or the
first numba compile must not turn into a failure). Counterexamples that hypothesis shrinks are
kept as explicit `@example` regressions in the property modules.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

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
