"""The liquidation rules as values: margin-call statuses and their thresholds, liquidation
fill parameters, the loss-waterfall stages, and `coverage` (equity / MM).

Pure (no ledger import): the ledger (crossmargin.core.ledger) configures itself with these and
posts what they decide (ledger.liquidate); the dependency points one way, ledger -> liquidation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from crossmargin.core.checks import check_range
from crossmargin.core.liquidation.adl import adl_policy
from crossmargin.errors import InputError


class AccountStatus(IntEnum):
    """Margin-call states, in order of severity (liquidation.margin_call has the machine)."""

    HEALTHY = 0
    WARNING = 1
    MARGIN_CALL = 2
    LIQUIDATION = 3
    BANKRUPT = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginCallParams:
    """Coverage = equity / MM (inf without requirement). Levels, strictest last:
    HEALTHY ≥ warning_coverage > WARNING ≥ margin_call_coverage > MARGIN_CALL ≥ 1 > LIQUIDATION.
    Liquidation stops only at `exit_coverage` (> 1, Mango's liquidation-end health): hysteresis.
    A margin call not cured within `grace_ns` escalates to liquidation."""

    warning_coverage: float = 1.5
    margin_call_coverage: float = 1.2
    exit_coverage: float = 1.25
    grace_ns: int = 3_600 * 10**9

    def __post_init__(self) -> None:
        check_range(
            self.margin_call_coverage, low=1.0, high=self.warning_coverage, name="margin_call_coverage"
        )
        check_range(self.exit_coverage, low=1.0, high=100.0, name="exit_coverage", include_high=True)
        if self.exit_coverage <= 1.0:
            raise InputError("exit_coverage", "must be > 1 (stricter than maintenance)")
        if self.grace_ns < 0:
            raise InputError("grace_ns", f"must be >= 0, got {self.grace_ns!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LiquidationParams:
    """fee_rate: liquidation fee on closed notional, to the insurance fund. Fills at
    mark · (1 ∓ impact), impact = impact_bps/1e4 + slice notional / depth_usd (inf: none). slice_fraction:
    the close-out granularity (a slice is ceil(|q| · fraction) contracts)."""

    fee_rate: float = 0.005
    impact_bps: float = 10.0
    depth_usd: float = 10_000_000.0
    slice_fraction: float = 0.25

    def __post_init__(self) -> None:
        check_range(self.fee_rate, low=0.0, high=0.2, name="liquidation.fee_rate")
        check_range(self.impact_bps, low=0.0, high=5_000.0, name="liquidation.impact_bps")
        if not self.depth_usd >= 1.0:  # +inf allowed: no size impact
            raise InputError("liquidation.depth_usd", f"must be >= 1 (or inf), got {self.depth_usd!r}")
        check_range(self.slice_fraction, low=1e-6, high=1.0, name="liquidation.slice_fraction")


WATERFALL_STAGES = ("fee", "insurance", "backstop", "adl", "socialised_loss", "bad_debt")


@dataclass(frozen=True, slots=True, kw_only=True)
class WaterfallParams:
    """Stages in order (a subset of WATERFALL_STAGES ending with bad_debt); the insurance fund pays
    at most `insurance_cap_fraction[underlying]` (default 1) of its balance per bankruptcy in that
    market; `adl_policy` names a liquidation.adl policy; `seed` feeds random-start ADL."""

    stages: tuple[str, ...] = WATERFALL_STAGES
    insurance_cap_fraction: Mapping[str, float] = field(default_factory=dict)
    adl_policy: str = "queue"
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in WATERFALL_STAGES]
        if unknown:
            raise InputError("waterfall.stages", f"unknown stage {unknown[0]!r}")
        adl_policy(self.adl_policy)  # an unknown policy fails here, not at the first bankruptcy
        if not self.stages or self.stages[-1] != "bad_debt":
            raise InputError("waterfall.stages", "must end with bad_debt (a deficit is always recorded)")
        for market, cap in self.insurance_cap_fraction.items():
            check_range(cap, low=0.0, high=1.0, name=f"waterfall.insurance_cap_fraction[{market}]")


def coverage(equity_usd: float, maintenance_usd: float) -> float:
    """equity / MM; +inf without requirement (and equity >= 0), -inf when bankrupt with none."""
    if maintenance_usd <= 0.0:
        return float("inf") if equity_usd >= 0.0 else float("-inf")
    return equity_usd / maintenance_usd
