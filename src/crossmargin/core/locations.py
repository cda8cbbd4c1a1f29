"""Where collateral sits (chain, custodian, venue) and what moving it in time costs.

A location has a transfer delay (hours until a balance there can be sold on the venue), a
transfer cost (bps of the amount) and a failure probability over the liquidation horizon
(bridge hack, custodian insolvency). Only what can be mobilised before a liquidation must run
backs margin at full value; the rest is priced for the price risk of the wait:

    h_delay(k, l) = min(MAX_HAIRCUT, z · σ_k · sqrt(max(delay_l − horizon, 0) / 8760 h))
    factor(k, l)  = (1 − h_delay) · (1 − cost_l) · (1 − p_fail,l)

applied on top of the asset's own haircut schedule: value_k = haircut_value(balance_k) ·
Σ_l share_kl · factor(k, l). h_delay is the one-sided z-quantile of a lognormal-free, square-root-
of-time price move over the extra wait (the square-root-of-time rule of Basel's liquidity
horizons, BCBS d457 MAR33.12), so a longer delay never lowers the haircut. A location failure is
a stress scenario: its balances are frozen (cannot back margin within the horizon) or lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HOURS_PER_YEAR = 8760.0
MAX_HAIRCUT = 0.99
VENUE = "venue"  # the venue's own wallets: no delay, no cost, no failure risk of its own


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    name: str
    transfer_delay_hours: float = 0.0
    transfer_cost_bps: float = 0.0
    failure_probability: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise InputError("locations.name", "must not be empty")
        check_range(
            self.transfer_delay_hours,
            low=0.0,
            high=24.0 * 365,
            name=f"locations[{self.name}].transfer_delay_hours",
        )
        check_range(
            self.transfer_cost_bps,
            low=0.0,
            high=10_000.0,
            include_high=False,
            name=f"locations[{self.name}].transfer_cost_bps",
        )
        check_range(
            self.failure_probability,
            low=0.0,
            high=1.0,
            include_high=False,
            name=f"locations[{self.name}].failure_probability",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MobilisationParams:
    """`horizon_hours`: the liquidation horizon (collateral that arrives within it is as good as
    the venue's); `z`: one-sided quantile of the price move (2.33 ≈ 99 %)."""

    horizon_hours: float = 1.0
    z: float = 2.33

    def __post_init__(self) -> None:
        check_range(self.horizon_hours, low=0.0, high=24.0 * 365, name="mobilisation.horizon_hours")
        check_range(self.z, low=0.0, high=10.0, name="mobilisation.z")


def delay_haircut(
    delay_hours: npt.ArrayLike, volatility_annual: npt.ArrayLike, params: MobilisationParams
) -> FloatArray:
    """h_delay = min(0.99, z·σ·sqrt(max(delay − horizon, 0)/8760)); non-decreasing in delay."""
    extra_years = (
        np.maximum(np.asarray(delay_hours, dtype=np.float64) - params.horizon_hours, 0.0) / HOURS_PER_YEAR
    )
    haircut: FloatArray = np.minimum(
        params.z * np.asarray(volatility_annual, dtype=np.float64) * np.sqrt(extra_years), MAX_HAIRCUT
    )
    return haircut


@dataclass(frozen=True, slots=True)
class LocationTable:
    """L locations as arrays, `names[0]` always the venue itself."""

    names: tuple[str, ...]
    transfer_delay_hours: FloatArray
    transfer_cost: FloatArray  # fraction of the amount
    failure_probability: FloatArray

    @classmethod
    def from_locations(cls, locations: Sequence[Location]) -> LocationTable:
        rows = [Location(name=VENUE), *(loc for loc in locations if loc.name != VENUE)]
        names = tuple(loc.name for loc in rows)
        if len(set(names)) != len(names):
            raise InputError("locations.name", "duplicate location")
        return cls(
            names=names,
            transfer_delay_hours=np.array([loc.transfer_delay_hours for loc in rows]),
            transfer_cost=np.array([loc.transfer_cost_bps / 1e4 for loc in rows]),
            failure_probability=np.array([loc.failure_probability for loc in rows]),
        )

    def position(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError("location", f"unknown location {name!r}") from None

    def factors(self, volatility_annual: FloatArray, params: MobilisationParams) -> FloatArray:
        """(K, L) value factors: (1 − h_delay)(1 − cost)(1 − p_fail) per asset and location."""
        vol = np.asarray(volatility_annual, dtype=np.float64)[:, None]
        h = delay_haircut(self.transfer_delay_hours[None, :], vol, params)
        factor: FloatArray = (1.0 - h) * (1.0 - self.transfer_cost) * (1.0 - self.failure_probability)
        return factor


@dataclass(frozen=True, slots=True, kw_only=True)
class LocatedBalances:
    """Parts of accounts' positive balances held away from the venue, one row each: account
    row, asset column, location index (>= 1), amount in asset units (> 0). The rest of every
    balance is at the venue (location 0)."""

    account_row: IntArray
    asset: IntArray
    location: IntArray
    amount: FloatArray

    def away(self, shape: tuple[int, int], n_locations: int) -> FloatArray:
        """(A, K, L) amounts per account, asset and location (location 0 left at zero)."""
        cube = np.zeros((*shape, n_locations))
        np.add.at(cube, (self.account_row, self.asset, self.location), self.amount)
        return cube


def split_by_location(balances: FloatArray, located: LocatedBalances, n_locations: int) -> FloatArray:
    """(A, K, L) balances: the located parts where they are, the remainder at the venue (0).
    A located part larger than the account's positive balance is an error (no silent cap)."""
    cube = located.away(balances.shape, n_locations)
    away_total = cube.sum(axis=2)
    held = np.maximum(balances, 0.0)
    excess = away_total > held * (1 + 1e-12) + 1e-12
    if np.any(excess):
        row, k = np.argwhere(excess)[0]
        raise InputError(
            f"holdings[account {row}, asset {k}]",
            f"{away_total[row, k]} held away exceeds the balance {held[row, k]}",
        )
    cube[:, :, 0] = balances - away_total
    return cube


def mobilised_balances(cube: FloatArray, factors: FloatArray) -> FloatArray:
    """(A, K) balance-equivalents after location factors: Σ_l amount_akl · factor_kl for the
    held part (the venue's own row, factor 1, carries debts unchanged)."""
    mobilised: FloatArray = cube[:, :, 0] + np.einsum("akl,kl->ak", cube[:, :, 1:], factors[:, 1:])
    return mobilised


def failed_balances(cube: FloatArray, failed: Sequence[int]) -> FloatArray:
    """(A, K, L) with every balance at the `failed` locations removed (frozen or lost: neither
    can back margin within the horizon)."""
    stressed = cube.copy()
    stressed[:, :, list(failed)] = 0.0
    return stressed


def collateral_by_location(cube: FloatArray, price_usd: FloatArray) -> FloatArray:
    """(A, L) USD value of positive balances per account and location (before haircuts)."""
    value: FloatArray = np.einsum("akl,k->al", np.maximum(cube, 0.0), price_usd)
    return value


def volatility_for(
    assets: Sequence[str], volatility_annual: Mapping[str, float], default: float
) -> FloatArray:
    return np.array([volatility_annual.get(a, default) for a in assets], dtype=np.float64)
