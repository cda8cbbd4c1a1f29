"""What a doubtful price does to valuation: conservative collateral prices and the
oracle-uncertainty haircut add-on.

Conservative prices (Drift's and Mango's answer to a pumped collateral price, Mango Markets,
October 2022): an asset held is valued at min(spot, smoothed), an asset owed (a liability) at
max(spot, smoothed). A sudden pump therefore raises no borrowing power until the smoothed price
has followed it, and a sudden dump of a borrowed asset lowers no liability at once.

Uncertainty add-on, a fraction added to the asset's haircut:

    add-on = min(cap, spread_multiplier · (high − low) / (2 · price)
                      + staleness_per_second · max(0, age − grace) / 1 s)

Source disagreement (the half-width of the accepted band, relative) and staleness each widen the
haircut; an asset without a price gets the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossmargin.core.checks import check_finite
from crossmargin.core.oracle.params import NS_PER_SECOND, FloatArray, IntArray, ParamTable


@dataclass(frozen=True, slots=True)
class ConservativePrices:
    """Per asset (n_assets,), USD: the price for holdings (the lower) and for liabilities (the higher)."""

    asset_usd: FloatArray
    liability_usd: FloatArray


def conservative_prices(*, spot_usd: FloatArray, smoothed_usd: FloatArray) -> ConservativePrices:
    """Holdings at min(spot, smoothed), liabilities at max(spot, smoothed); NaN stays NaN."""
    spot = np.asarray(spot_usd, dtype=np.float64)
    smoothed = np.asarray(smoothed_usd, dtype=np.float64)
    # np.minimum propagates NaN: an asset without a price has no value, never a silent zero.
    return ConservativePrices(asset_usd=np.minimum(spot, smoothed), liability_usd=np.maximum(spot, smoothed))


def value_balances_usd(balance: FloatArray, *, spot_usd: FloatArray, smoothed_usd: FloatArray) -> FloatArray:
    """Balances (accounts × assets, signed units) valued conservatively, USD, same shape:
    positive balances at the holdings price, negative at the liability price."""
    check_finite(balance, "balance")
    prices = conservative_prices(spot_usd=spot_usd, smoothed_usd=smoothed_usd)
    return np.where(balance >= 0.0, balance * prices.asset_usd, balance * prices.liability_usd)


def uncertainty_addon(
    *,
    price_usd: FloatArray,
    band_low_usd: FloatArray,
    band_high_usd: FloatArray,
    age_ns: IntArray,
    params: ParamTable,
) -> FloatArray:
    """Haircut add-on per asset, a fraction in [0, cap] (formula in the module docstring)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        half_spread = 0.5 * (band_high_usd - band_low_usd) / price_usd
    stale_seconds = np.maximum(0, age_ns - params.staleness_grace_ns) / NS_PER_SECOND
    addon = params.spread_multiplier * half_spread + params.staleness_per_second * stale_seconds
    addon = np.where(np.isfinite(addon), addon, params.max_uncertainty_addon)
    return np.clip(addon, 0.0, params.max_uncertainty_addon)


def widened_haircut(haircut: FloatArray, addon: FloatArray) -> FloatArray:
    """Haircut plus the uncertainty add-on, capped at 1 (an asset never counts negatively)."""
    return np.minimum(1.0, np.asarray(haircut, dtype=np.float64) + addon)
