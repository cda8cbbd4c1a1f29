"""Collateral valuation: haircut by size tier, liability weight for borrowings, borrow interest.

Float64 throughout: this is risk math. Ledger balances (exact) are converted at the boundary.

For a balance b of asset k at price P:
    b >= 0:  value_usd = P * [value_below(t) + (1 - h_t) * (b - floor_t)],  t = tier holding b
    b <  0:  value_usd = P * w * b            (w = liability weight >= 1; a negative number)
The effective haircut of a long balance is 1 - value_usd / (b * P).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import AssetTable, check_balances
from crossmargin.core.checks import check_nonnegative

FloatArray = npt.NDArray[np.float64]

SECONDS_PER_YEAR = 365.0 * 24.0 * 3600.0


@dataclass(frozen=True, slots=True)
class CollateralValuation:
    """Per account and asset, shapes (n_accounts, n_assets): USD value after haircut (negative
    for borrowings, at liability weight) and effective haircut (0 for zero or negative balances)."""

    value_usd: FloatArray
    haircut: FloatArray

    @property
    def total_usd(self) -> FloatArray:
        """Haircut collateral value per account, shape (n_accounts,)."""
        total: FloatArray = self.value_usd.sum(axis=1)
        return total


def haircut_quantity(balances: FloatArray, assets: AssetTable) -> FloatArray:
    """Haircut-adjusted quantity of each non-negative balance (asset units), progressive tiers.

    Loops over the K assets (a handful), vectorised over accounts.
    """
    adjusted = np.zeros_like(balances)
    for k in range(assets.n_assets):
        held = np.maximum(balances[:, k], 0.0)
        floors = assets.tier_floor[k]
        tier = np.searchsorted(floors, held, side="right") - 1
        tier = np.clip(tier, 0, floors.size - 1)
        adjusted[:, k] = assets.tier_value_below[k, tier] + (1.0 - assets.tier_haircut[k, tier]) * (
            held - floors[tier]
        )
    return adjusted


def value_collateral(balances: FloatArray, assets: AssetTable, price_usd: FloatArray) -> CollateralValuation:
    """Value every balance of every account. balances: (n_accounts, n_assets) in asset units;
    price_usd: (n_assets,) USD per unit (the market state's `asset_prices(assets)`)."""
    check_balances(balances, assets)
    long_value = haircut_quantity(balances, assets) * price_usd
    short_value = np.minimum(balances, 0.0) * (price_usd * assets.liability_weight)
    value_usd = long_value + short_value
    gross = np.maximum(balances, 0.0) * price_usd
    with np.errstate(invalid="ignore", divide="ignore"):
        haircut = np.where(gross > 0.0, 1.0 - long_value / np.where(gross > 0.0, gross, 1.0), 0.0)
    return CollateralValuation(value_usd=value_usd, haircut=haircut)


def borrow_interest(balances: FloatArray, assets: AssetTable, *, elapsed_years: float) -> FloatArray:
    """Interest owed on borrowed balances over `elapsed_years`, asset units, shape like balances.

    Simple interest at the asset's APR on the borrowed amount: interest = -b * apr * t for b < 0
    (a positive number: what the borrower owes). Compounding happens by accruing often; the ledger
    (exact money) rounds each accrual against the borrower.
    """
    check_balances(balances, assets)
    check_nonnegative(elapsed_years, "elapsed_years")
    interest: FloatArray = -np.minimum(balances, 0.0) * assets.borrow_rate_apr * elapsed_years
    return interest


def accrue_borrow_interest(balances: FloatArray, assets: AssetTable, *, elapsed_years: float) -> FloatArray:
    """Balances after interest accrues on borrowings: b - interest (borrowings grow)."""
    accrued: FloatArray = balances - borrow_interest(balances, assets, elapsed_years=elapsed_years)
    return accrued
