"""What each action may do with a doubtful price: a validity rule per action (after Drift v2's
`OracleValidity` and `is_oracle_valid_for_action`, programs/drift/src/math/oracle.rs).

Every asset's price gets one validity code per update, by severity (first that applies):

    NO_PRICE   never had an accepted price
    HELD       the circuit breaker holds a large move for confirmation
    STALE      too few live sources this update (the last good price is reported with its age)
    TOO_OLD    age of the price > the action's max_age_ns
    TOO_WIDE   band width / price > the action's max_band_fraction (sources disagree)
    VALID

An action's rule says which of these it tolerates. Defaults (docs/oracle.md, the policy table):

    action     max age   max band   held   stale   why
    open        5 s       1 %       no     no      a trader must not pick off a stale or held price
    withdraw   10 s       2 %       no     no      money that leaves cannot be clawed back (Mango)
    liquidate  30 s       5 %       no     no      a slightly older price beats bad debt; never a doubted move
    margin     120 s     10 %       yes    yes     always computed; marked untrusted outside the rule

The age of a price is now − the time of the newest quote behind it, so a VALID price built from
8-second-old quotes fails the 5-second rule for opening trades.

Liquidations pause for an asset whose price fails the liquidate rule; `liquidation_pauses`
returns the events for the engine to log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import numpy as np
import numpy.typing as npt

from crossmargin.core.oracle.aggregate import BoolArray
from crossmargin.core.oracle.params import NS_PER_MS, NS_PER_SECOND
from crossmargin.core.oracle.state import OracleUpdate, PriceStatus
from crossmargin.errors import InputError, StaleOracleError, UntrustedOracleError

Int8Array = npt.NDArray[np.int8]


class Action(StrEnum):
    OPEN = "open"
    WITHDRAW = "withdraw"
    LIQUIDATE = "liquidate"
    MARGIN = "margin"


class Validity(IntEnum):
    """Why a price fails an action's rule, most severe first; VALID passes."""

    NO_PRICE = 0
    HELD = 1
    STALE = 2
    TOO_OLD = 3
    TOO_WIDE = 4
    VALID = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidityRule:
    """What one action tolerates: the price's age, the relative band width, held and stale prices."""

    max_age_ns: int
    max_band_fraction: float
    allow_held: bool = False
    allow_stale: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_age_ns, int) or self.max_age_ns <= 0:
            raise InputError("max_age_ns", f"must be a positive int of nanoseconds, got {self.max_age_ns!r}")
        if not self.max_band_fraction > 0.0:
            raise InputError("max_band_fraction", f"must be > 0, got {self.max_band_fraction!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class OraclePolicy:
    """One ValidityRule per action (defaults: the table in the module docstring)."""

    open: ValidityRule = field(
        default_factory=lambda: ValidityRule(max_age_ns=5 * NS_PER_SECOND, max_band_fraction=0.01)
    )
    withdraw: ValidityRule = field(
        default_factory=lambda: ValidityRule(max_age_ns=10 * NS_PER_SECOND, max_band_fraction=0.02)
    )
    liquidate: ValidityRule = field(
        default_factory=lambda: ValidityRule(max_age_ns=30 * NS_PER_SECOND, max_band_fraction=0.05)
    )
    margin: ValidityRule = field(
        default_factory=lambda: ValidityRule(
            max_age_ns=120 * NS_PER_SECOND, max_band_fraction=0.10, allow_held=True, allow_stale=True
        )
    )

    def rule(self, action: Action) -> ValidityRule:
        rule: ValidityRule = getattr(self, Action(action).value)
        return rule


def validity(update: OracleUpdate, rule: ValidityRule) -> Int8Array:
    """Validity code per asset (n_assets,) of an update's prices under one rule."""
    status = update.status
    with np.errstate(invalid="ignore", divide="ignore"):
        band_fraction = (update.band_high_usd - update.band_low_usd) / update.price_usd
    code = np.full(status.shape, Validity.VALID, dtype=np.int8)
    # Assign from least to most severe so the most severe reason wins.
    code[~(band_fraction <= rule.max_band_fraction)] = Validity.TOO_WIDE
    code[update.age_ns > rule.max_age_ns] = Validity.TOO_OLD
    if not rule.allow_stale:
        code[status == PriceStatus.STALE] = Validity.STALE
    if not rule.allow_held:
        code[status == PriceStatus.HELD] = Validity.HELD
    code[status == PriceStatus.NO_PRICE] = Validity.NO_PRICE
    return code


def valid_for(action: Action, update: OracleUpdate, policy: OraclePolicy) -> BoolArray:
    """Mask per asset (n_assets,): may `action` use this price?"""
    mask: BoolArray = validity(update, policy.rule(action)) == Validity.VALID
    return mask


@dataclass(frozen=True, slots=True)
class LiquidationPaused:
    """Event: liquidations involving `asset` are paused at `as_of_ns` because of `reason`."""

    asset: str
    as_of_ns: int
    reason: str
    age_ms: float
    status: str


def liquidation_pauses(
    update: OracleUpdate, policy: OraclePolicy, *, asset_names: tuple[str, ...]
) -> tuple[LiquidationPaused, ...]:
    """One LiquidationPaused event per asset whose price fails the liquidate rule."""
    if len(asset_names) != update.price_usd.shape[0]:
        raise InputError("asset_names", f"{len(asset_names)} names for {update.price_usd.shape[0]} assets")
    codes = validity(update, policy.liquidate)
    return tuple(
        LiquidationPaused(
            asset=asset_names[i],
            as_of_ns=update.as_of_ns,
            reason=Validity(int(codes[i])).name.lower(),
            age_ms=float(update.age_ns[i]) / NS_PER_MS,
            status=PriceStatus(int(update.status[i])).name.lower(),
        )
        for i in np.flatnonzero(codes != Validity.VALID)
    )


def require_valid(
    action: Action, update: OracleUpdate, policy: OraclePolicy, *, asset_index: int, asset_name: str
) -> float:
    """The price of one asset for `action`, or raise: StaleOracleError when too old or stale,
    UntrustedOracleError when held, without price or with too wide a band."""
    rule = policy.rule(action)
    code = Validity(int(validity(update, rule)[asset_index]))
    age_ms = float(update.age_ns[asset_index]) / NS_PER_MS
    if code in (Validity.TOO_OLD, Validity.STALE):
        raise StaleOracleError(asset_name, age_ms=age_ms, limit_ms=rule.max_age_ns / NS_PER_MS)
    if code != Validity.VALID:
        raise UntrustedOracleError(asset_name, action=str(action), reason=code.name.lower())
    return float(update.price_usd[asset_index])
