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
from crossmargin.core.jit import kernel, prange

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


def haircut_units(balances: FloatArray, assets: AssetTable, *, serial: bool = False) -> FloatArray:
    """(A, K) each balance's haircut-adjusted units, so that its USD value is units x price:
    holdings through the progressive tiers, value_below(t) + (1 - h_t)·(b - floor_t) (the module
    formula without P), borrowings b·w. Price-free: a book computes it once (`Book.haircut_units`)
    and every pass over it multiplies by today's prices, where a tier search per balance per pass
    cost the whole-book kernels a third of their time. One fused pass (core.jit), parallel over
    accounts (`serial`: without threads, for a handful of accounts: `Kernel.serial`); the tiers
    as `haircut_quantity` finds them."""
    check_balances(balances, assets)
    out = np.empty_like(balances)
    units_kernel = _haircut_units_kernel.serial() if serial else _haircut_units_kernel
    units_kernel.for_work(3 * balances.size)(  # interpreted: ~3 us a balance
        np.ascontiguousarray(balances, dtype=np.float64),
        assets.liability_weight,
        assets.tier_floor,
        assets.tier_haircut,
        assets.tier_value_below,
        out,
    )
    return out


@kernel(parallel=True, nogil=True)
def _haircut_units_kernel(
    balances: np.ndarray,
    liability_weight: np.ndarray,
    hc_floor: np.ndarray,
    hc_haircut: np.ndarray,
    hc_below: np.ndarray,
    out: np.ndarray,
) -> None:
    for a in prange(balances.shape[0]):
        for k in range(balances.shape[1]):
            b = balances[a, k]
            if b < 0.0:
                out[a, k] = b * liability_weight[k]
                continue
            t = 0
            for c in range(1, hc_floor.shape[1]):
                if b >= hc_floor[k, c]:
                    t = c
            out[a, k] = hc_below[k, t] + (1.0 - hc_haircut[k, t]) * (b - hc_floor[k, t])


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
