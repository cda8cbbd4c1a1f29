"""Per-account exposure to oracle assets: worse-of collateral by hand, worst status over what an
account touches, the uncertainty requirement from net exposure."""

from __future__ import annotations

import numpy as np
import pytest

from crossmargin.core.assets import Asset, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.instruments import Instrument, InstrumentKind, MarginSchedule
from crossmargin.core.oracle import PriceStatus
from crossmargin.core.oracle.exposure import (
    account_exposure,
    conservative_collateral_usd,
    factor_index,
    uncertainty_requirement_usd,
    worst_status,
)
from tests.builders import book_from_rows

FLAT = MarginSchedule.flat(initial_rate=0.10, maintenance_rate=0.05)
ASSET_USD = np.array([1.0, 100.0, 50.0])  # USDC, BTC, ETH: _book's collateral prices


def _book() -> Book:
    return book_from_rows(
        assets=[
            Asset(symbol="USDC"),
            Asset(symbol="BTC", haircut_tiers=(HaircutTier(above=0.0, haircut=0.1),)),
            Asset(symbol="ETH", liability_weight=1.1),
        ],
        instruments=[
            Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC", margin=FLAT),
            Instrument(id="SOL-PERP", kind=InstrumentKind.PERPETUAL, underlying="SOL", margin=FLAT),
        ],
        balances={
            "btc-holder": {"BTC": 10.0},
            "eth-borrower": {"USDC": 1000.0, "ETH": -5.0},
            "hedged": {"BTC": 2.0},
            "sol-trader": {"USDC": 500.0},
            "cash": {"USDC": 100.0},
        },
        positions=[("hedged", "BTC-PERP", -2.0, 100.0), ("sol-trader", "SOL-PERP", 3.0, 20.0)],
    )


def test_oracle_worse_of_collateral_by_hand() -> None:
    balances = np.array([[10.0, -5.0]])
    haircut_quantity = np.array([[9.0, 0.0]])  # 10 units at a 10 % haircut
    weight = np.array([1.0, 1.1])
    value = conservative_collateral_usd(
        balances,
        haircut_quantity_units=haircut_quantity,
        liability_weight=weight,
        spot_usd=np.array([100.0, 50.0]),
        smoothed_usd=np.array([90.0, 60.0]),
    )
    # Held: 9 × min(100, 90) = 810 (spot would give 900); owed: −5 × 1.1 × max(50, 60) = −330 (−275).
    np.testing.assert_allclose(value, [[810.0, -330.0]], rtol=0, atol=1e-12)
    at_spot = conservative_collateral_usd(
        balances,
        haircut_quantity_units=haircut_quantity,
        liability_weight=weight,
        spot_usd=np.array([100.0, 50.0]),
        smoothed_usd=np.array([110.0, 40.0]),
    )
    np.testing.assert_allclose(at_spot, [[900.0, -275.0]], rtol=0, atol=1e-12)


def test_oracle_worst_status_only_on_accounts_touching_the_asset() -> None:
    book = _book()
    factors = ("BTC", "ETH", "SOL")
    exposure = account_exposure(
        book,
        delta_per_contract_usd=np.array([100.0, 20.0]),
        underlying_factor=factor_index(book.instruments.underlyings, factors),
        asset_factor=factor_index(book.assets.symbols, factors),
        asset_price_usd=ASSET_USD,
        n_factors=3,
    )
    status = np.array([PriceStatus.VALID, PriceStatus.HELD, PriceStatus.STALE], dtype=np.int8)
    worst = worst_status(exposure.touched, status)
    assert worst.tolist() == [
        PriceStatus.VALID,  # btc-holder
        PriceStatus.HELD,  # eth-borrower: a liability counts
        PriceStatus.VALID,  # hedged: BTC only
        PriceStatus.STALE,  # sol-trader: through the SOL perp's underlying
        PriceStatus.VALID,  # cash: USDC is not an oracle factor
    ]
    # The hedged account touches BTC but its net exposure is 2 × 100 − 2 × 100 = 0.
    np.testing.assert_allclose(
        exposure.delta_usd.toarray(),
        np.array([[1000.0, 0, 0], [0, -250.0, 0], [0, 0, 0], [0, 0, 60.0], [0, 0, 0]]),
        atol=1e-12,
    )
    assert exposure.touched.toarray()[2].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("spread", [0.001, 0.01, 0.05])
def test_oracle_uncertainty_requirement_is_net_exposure_times_addon(spread: float) -> None:
    book = _book()
    factors = ("BTC", "ETH", "SOL")
    exposure = account_exposure(
        book,
        delta_per_contract_usd=np.array([100.0, 20.0]),
        underlying_factor=factor_index(book.instruments.underlyings, factors),
        asset_factor=factor_index(book.assets.symbols, factors),
        asset_price_usd=ASSET_USD,
        n_factors=3,
    )
    addon = np.array([spread, 2 * spread, 0.0])
    requirement = uncertainty_requirement_usd(exposure.delta_usd, addon)
    np.testing.assert_allclose(requirement, [1000.0 * spread, 250.0 * 2 * spread, 0.0, 0.0, 0.0], atol=1e-12)
