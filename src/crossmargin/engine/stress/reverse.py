"""Reverse stress: the smallest scale of a shock that breaks the venue (`reverse_stress`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from crossmargin.core.margin import MarginModel
from crossmargin.core.stress.impact import NO_IMPACT, SquareRootImpact
from crossmargin.core.stress.reverse import ReverseResult, smallest_breaking_scale
from crossmargin.engine.stress.cascade import CascadeResult, Policy, run_cascade
from crossmargin.engine.stress.prepared import StressVenue
from crossmargin.engine.stress.shards import LocalShards
from crossmargin.engine.stress.shocks import Shock
from crossmargin.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class ReverseStress:
    """The smallest scale of `direction` that breaks the target, with the forward stresses just
    below (`holds`) and at (`breaks`) it."""

    direction: str
    target: str
    threshold_usd: float
    search: ReverseResult
    holds: CascadeResult
    breaks: CascadeResult


def reverse_stress(
    venue: StressVenue,
    model: MarginModel,
    direction: Shock,
    *,
    policy: Policy,
    insurance_fund_usd: float,
    target: str = "fund",
    threshold_usd: float = 0.0,
    impact: SquareRootImpact = NO_IMPACT,
    tolerance: float = 1e-3,
    max_scale: float = 16.0,
    n_shards: int = 1,
) -> ReverseStress:
    """Smallest k such that the forward stress (a cascade, with `impact`) of `direction.scaled(k)`
    exhausts the insurance fund (target "fund": deficits ≥ fund + fees collected) or leaves bad
    debt above `threshold_usd` (target "bad_debt"); core.stress.reverse does the bracketing."""
    if target not in ("fund", "bad_debt"):
        raise InputError("target", "must be 'fund' or 'bad_debt'")
    if not (math.isfinite(threshold_usd) and threshold_usd >= 0.0):
        raise InputError("threshold_usd", f"must be finite and >= 0, got {threshold_usd!r}")
    if not (math.isfinite(insurance_fund_usd) and insurance_fund_usd >= 0.0):
        raise InputError("insurance_fund_usd", f"must be finite and >= 0, got {insurance_fund_usd!r}")

    def forward(scale: float) -> CascadeResult:
        runner = LocalShards.of(venue, model, n_shards=n_shards)
        shock = direction.scaled(scale)
        return run_cascade(
            runner, venue, [shock], policy=policy, insurance_fund_usd=insurance_fund_usd, impact=impact
        )

    def outcome(scale: float) -> float:
        result = forward(scale)
        if target == "fund":
            fees = sum(r.fees_usd for r in result.rounds)
            return result.deficit_usd - (insurance_fund_usd + fees)
        return result.bad_debt_usd - threshold_usd

    search = smallest_breaking_scale(outcome, tolerance=tolerance, max_scale=max_scale)
    return ReverseStress(
        direction=direction.label,
        target=target,
        threshold_usd=threshold_usd,
        search=search,
        holds=forward(search.lower),
        breaks=forward(search.upper),
    )
