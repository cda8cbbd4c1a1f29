"""Reverse stress: the smallest scale k ≥ 0 of a move direction at which a venue outcome crosses a
threshold (the insurance fund exhausted, bad debt above a limit).

The outcome g(k) (e.g. deficits − fund, or bad debt − limit) is evaluated by a forward stress and
is non-decreasing in k for the directions of interest, but it need not be continuous (an account
tips into bankruptcy, ADL steps). So: bracket the crossing by doubling k from `initial_scale`
until g ≥ 0, then Brent's method (scipy.optimize.brentq: Brent 1973, "Algorithms for Minimization
without Derivatives", ch. 4), which keeps a sign-changing bracket at every step and so converges to
a crossing within `tolerance` in k even at a jump.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scipy.optimize import brentq

from crossmargin.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class ReverseResult:
    """scale: the crossing, to `tolerance`; lower/upper: a bracket g(lower) < 0 ≤ g(upper) with
    upper − lower ≤ 2·tolerance (upper breaks the threshold); evaluations: forward stresses run."""

    scale: float
    lower: float
    upper: float
    evaluations: int
    found: bool


def smallest_breaking_scale(
    outcome: Callable[[float], float],
    *,
    initial_scale: float = 0.05,
    max_scale: float = 64.0,
    tolerance: float = 1e-4,
) -> ReverseResult:
    """Smallest k in (0, max_scale] with outcome(k) ≥ 0, bracketed then refined (module doc).
    `found` is False when even max_scale does not break it (scale = upper = max_scale)."""
    if not 0.0 < initial_scale <= max_scale:
        raise InputError("reverse.initial_scale", "must lie in (0, max_scale]")
    if not tolerance > 0.0:
        raise InputError("reverse.tolerance", "must be > 0")
    calls = 0

    def g(k: float) -> float:
        nonlocal calls
        calls += 1
        return outcome(k)

    if g(0.0) >= 0.0:
        return ReverseResult(scale=0.0, lower=0.0, upper=0.0, evaluations=calls, found=True)
    lower, upper = 0.0, initial_scale
    while g(upper) < 0.0:
        lower = upper
        if upper >= max_scale:
            return ReverseResult(
                scale=max_scale, lower=lower, upper=max_scale, evaluations=calls, found=False
            )
        upper = min(2.0 * upper, max_scale)

    # brentq wants f(a), f(b) of opposite signs and 0 excluded from the "breaking" side: shift by
    # a half so that g ≥ 0 maps to +, g < 0 to − even when g jumps straight to exactly 0.
    def signed(k: float) -> float:
        return 1.0 if g(k) >= 0.0 else -1.0

    root = float(brentq(signed, lower, upper, xtol=tolerance))
    # The crossing lies within tolerance of root: give a bracket whose upper end breaks it.
    low, high = max(lower, root - tolerance), min(upper, root + tolerance)
    if signed(high) < 0.0:
        high = upper
    if signed(low) >= 0.0:
        low = lower
    return ReverseResult(scale=high, lower=low, upper=high, evaluations=calls, found=True)
