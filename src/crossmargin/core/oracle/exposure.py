"""Which accounts a doubtful price touches, and by how much: every account's exposure to the
oracle's assets ("factors") as sparse products, never a loop over accounts.

A book's underlying u is priced by factor `underlying_factor[u]`, its collateral asset k by
`asset_factor[k]` (−1: not an oracle factor; the book's own price is used and trusted). With
Q the positions (accounts × instruments, CSR), B the balances (accounts × assets), P_I the
instrument → factor and P_K the asset → factor one-hot matrices:

    touched (A × F)   = |Q| @ P_I + |B| @ P_K                    > 0: the account holds or trades it
    delta_usd (A × F) = Q @ (δ·S ∘ P_I) + (B·price) @ P_K        net USD exposure per factor
    worst code (A,)   = Σ_{L ≥ 1} [touched @ (code ≥ L) > 0]     worst PriceStatus (codes best first)
    add-on USD (A,)   = |delta_usd| @ add-on                     oracle-uncertainty requirement

δ·S is each instrument's delta per contract times its underlying's index (USD per 100 % move).
The status uses what an account touches (a hedged BTC book still rests on the BTC price); the
add-on uses the net exposure (a hedged book loses nothing when the BTC price is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crossmargin.core.book import Book
from crossmargin.core.checks import check_finite
from crossmargin.core.collateral import haircut_quantity
from crossmargin.core.oracle.params import FloatArray, IntArray
from crossmargin.core.oracle.valuation import conservative_prices
from crossmargin.errors import InputError

Int8Array = npt.NDArray[np.int8]


def factor_index(names: tuple[str, ...], factors: tuple[str, ...]) -> IntArray:
    """Position of each name among the oracle's factors, −1 where the oracle does not price it."""
    where = {f: n for n, f in enumerate(factors)}
    return np.array([where.get(name, -1) for name in names], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Exposure:
    """Per account and factor (accounts × factors, CSR): `touched` (1.0 where the account holds
    the asset or trades an instrument on it) and `delta_usd` (net USD exposure)."""

    touched: sp.csr_array
    delta_usd: sp.csr_array


def _one_hot(factor: IntArray, n_factors: int, weight: FloatArray) -> sp.csr_array:
    """(len(factor) × n_factors) with weight[r] at (r, factor[r]); rows with factor −1 are empty."""
    rows = np.flatnonzero(factor >= 0)
    return sp.csr_array(
        (weight[rows], (rows, factor[rows])), shape=(factor.shape[0], n_factors), dtype=np.float64
    )


def account_exposure(
    book: Book,
    *,
    delta_per_contract_usd: FloatArray,
    underlying_factor: IntArray,
    asset_factor: IntArray,
    asset_price_usd: FloatArray,
    n_factors: int,
) -> Exposure:
    """Exposure of every account to every factor (module docstring). `delta_per_contract_usd`
    (n_instruments,): USD value change per contract for a 100 % move of its underlying;
    `asset_price_usd` (n_assets,): a collateral unit's USD value."""
    instruments = book.instruments
    if underlying_factor.shape != (len(instruments.underlyings),):
        raise InputError("underlying_factor", f"shape {underlying_factor.shape}, need one per underlying")
    if asset_factor.shape != (book.assets.n_assets,):
        raise InputError("asset_factor", f"shape {asset_factor.shape}, need one per asset")
    check_finite(delta_per_contract_usd, "delta_per_contract_usd")
    instrument_factor = underlying_factor[instruments.underlying_index]
    ones_instruments = np.ones(instruments.n_instruments)
    ones_assets = np.ones(book.assets.n_assets)
    positions = book.positions.to_scipy()
    balances = sp.csr_array(book.balances)
    touched = abs(positions) @ _one_hot(instrument_factor, n_factors, ones_instruments) + abs(
        balances
    ) @ _one_hot(asset_factor, n_factors, ones_assets)
    delta = positions @ _one_hot(instrument_factor, n_factors, delta_per_contract_usd) + balances @ _one_hot(
        asset_factor, n_factors, asset_price_usd
    )
    touched_flags = sp.csr_array(touched > 0.0, dtype=np.float64)
    return Exposure(touched=touched_flags, delta_usd=sp.csr_array(delta))


def worst_status(touched: sp.csr_array, status: Int8Array) -> Int8Array:
    """Worst status code per account over the factors it touches (0 when it touches none).
    Codes are ordered best first (PriceStatus), so worst = the number of levels L ≥ 1 for which
    some touched factor has code ≥ L: one sparse product per level."""
    codes = np.asarray(status, dtype=np.int64)
    worst = np.zeros(touched.shape[0], dtype=np.int8)
    for level in range(1, int(codes.max(initial=0)) + 1):  # a handful of status levels
        worst += (touched @ (codes >= level).astype(np.float64) > 0.0).astype(np.int8)
    return worst


def uncertainty_requirement_usd(delta_usd: sp.csr_array, addon: FloatArray) -> FloatArray:
    """Oracle-uncertainty requirement per account, USD: Σ_f |net exposure_f| · add-on_f."""
    check_finite(addon, "uncertainty_addon")
    requirement: FloatArray = np.asarray(abs(delta_usd) @ addon, dtype=np.float64)
    return requirement


def conservative_collateral_usd(
    balances: FloatArray,
    *,
    haircut_quantity_units: FloatArray,
    liability_weight: FloatArray,
    spot_usd: FloatArray,
    smoothed_usd: FloatArray,
) -> FloatArray:
    """Collateral value per account and asset (same shape as balances), USD, at the worse of
    spot and smoothed: holdings (after haircut, `haircut_quantity_units`) at min(spot, smoothed),
    borrowings at max(spot, smoothed) × liability weight. Equals `value_collateral` when the
    smoothed price is the spot price."""
    prices = conservative_prices(spot_usd=spot_usd, smoothed_usd=smoothed_usd)
    value: FloatArray = haircut_quantity_units * prices.asset_usd + np.minimum(balances, 0.0) * (
        prices.liability_usd * liability_weight
    )
    return value


def conservative_collateral_of(
    book: Book, *, balances: FloatArray, spot_usd: FloatArray, smoothed_usd: FloatArray
) -> FloatArray:
    """`conservative_collateral_usd` for rows of a book's balances at the spot prices (K,).
    Where the smoothed price is NaN (not an oracle factor) the spot price is used."""
    assets = book.assets
    smoothed = np.where(np.isfinite(smoothed_usd), smoothed_usd, spot_usd)
    return conservative_collateral_usd(
        balances,
        haircut_quantity_units=haircut_quantity(balances, assets),
        liability_weight=assets.liability_weight,
        spot_usd=spot_usd,
        smoothed_usd=smoothed,
    )
