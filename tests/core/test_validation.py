"""Every bad input is refused at construction with an InputError whose `field` names it.

One test per bad input. A NaN or a negative price that slipped through would surface later as a
wrong margin number, never as an error, so each check is asserted at its entry point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.collateral import borrow_interest, value_collateral
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    OptionType,
    RateTier,
    Settlement,
)
from crossmargin.core.margin import OptionMarginParams
from crossmargin.core.market import MarketState
from crossmargin.errors import CrossMarginError, InputError
from tests.builders import NS_PER_DAY, VALUATION_NS, book_from_rows, usd_asset

NAN = math.nan

PERP = Instrument(id="BTC-PERP", kind=InstrumentKind.PERPETUAL, underlying="BTC")
CALL = Instrument(
    id="BTC-30D-60000-C",
    kind=InstrumentKind.OPTION,
    underlying="BTC",
    settlement=Settlement.INVERSE,
    expiry_ns=VALUATION_NS + 30 * NS_PER_DAY,
    strike=60_000.0,
    option_type=OptionType.CALL,
)
TABLE = InstrumentTable.from_instruments([PERP, CALL])
ASSETS = AssetTable.from_assets([usd_asset(), Asset(symbol="BTC")])


def raises_field(field: str, action: Callable[[], Any]) -> InputError:
    """Run `action`; it must raise InputError with .field == field, and the message must name it."""
    with pytest.raises(InputError) as caught:
        action()
    assert caught.value.field == field
    assert field in str(caught.value)
    assert isinstance(caught.value, CrossMarginError)
    return caught.value


def market(**overrides: Any) -> MarketState:
    arguments: dict[str, Any] = {
        "valuation_ns": VALUATION_NS,
        "index_prices": {"BTC": 60_000.0},
        "implied_vols": {CALL.id: 0.6},
    }
    arguments.update(overrides)
    return MarketState.build(TABLE, **arguments)


def book(
    *,
    quantity: Any = (1.0,),
    entry: Any = (60_000.0,),
    account_ids: Any = ("a",),
    instrument_index: Any = (0,),
    account_index: Any = (0,),
    balances: Any = None,
) -> Book:
    return Book.from_arrays(
        account_ids=account_ids,
        assets=ASSETS,
        instruments=TABLE,
        account_index=np.asarray(account_index),
        instrument_index=np.asarray(instrument_index),
        quantity=np.asarray(quantity, dtype=np.float64),
        entry_price=np.asarray(entry, dtype=np.float64),
        balances=np.zeros((len(account_ids), 2)) if balances is None else balances,
    )


def test_valid_inputs_build() -> None:
    """The fixtures themselves are valid, so each failure below is caused by its one change."""
    assert market().index_price_usd[0] == 60_000.0
    assert book().positions.nnz == 1


# --------------------------------------------------------------------------- prices


def test_nan_index_price() -> None:
    raises_field("market.index_prices", lambda: market(index_prices={"BTC": NAN}))


def test_infinite_index_price() -> None:
    raises_field("market.index_prices", lambda: market(index_prices={"BTC": math.inf}))


def test_negative_index_price() -> None:
    raises_field("market.index_prices", lambda: market(index_prices={"BTC": -60_000.0}))


def test_zero_index_price() -> None:
    raises_field("market.index_prices", lambda: market(index_prices={"BTC": 0.0}))


def test_missing_index_price_names_underlying() -> None:
    error = raises_field("market.index_prices", lambda: market(index_prices={"ETH": 3_000.0}))
    assert "'BTC'" in str(error)


def test_negative_mark_price() -> None:
    raises_field("market.mark_price", lambda: market(mark_prices={"BTC-PERP": -1.0}))


def test_infinite_mark_price() -> None:
    raises_field("market.mark_price", lambda: market(mark_prices={"BTC-PERP": math.inf}))


def test_nan_mark_price() -> None:
    raises_field("market.mark_price", lambda: market(mark_prices={"BTC-PERP": NAN}))


def test_nan_implied_vol() -> None:
    raises_field(
        "market.implied_vol", lambda: market(implied_vols={CALL.id: NAN}, mark_prices={CALL.id: 0.05})
    )


def test_nan_asset_price() -> None:
    raises_field(
        "assets[BTC].price_usd",
        lambda: market(asset_symbols=ASSETS.symbols, asset_prices={"USDC": 1.0, "BTC": NAN}),
    )


def test_negative_asset_price() -> None:
    raises_field(
        "assets[BTC].price_usd",
        lambda: market(asset_symbols=ASSETS.symbols, asset_prices={"USDC": 1.0, "BTC": -1.0}),
    )


def test_asset_price_and_index_price_that_disagree_are_refused_naming_both() -> None:
    error = raises_field(
        "assets[BTC].price_usd",
        lambda: market(asset_symbols=ASSETS.symbols, asset_prices={"USDC": 1.0, "BTC": 59_999.0}),
    )
    assert "market.index_prices.BTC" in str(error)


def test_an_asset_without_any_price_is_refused() -> None:
    raises_field("assets[USDC].price_usd", lambda: market(asset_symbols=ASSETS.symbols))


def test_a_market_priced_for_other_assets_is_refused() -> None:
    eth_only = AssetTable.from_assets([Asset(symbol="ETH")])
    priced = market(asset_symbols=ASSETS.symbols, asset_prices={"USDC": 1.0})
    raises_field("market.asset_prices", lambda: priced.asset_prices(eth_only))


def test_scenario_asset_prices_must_be_positive() -> None:
    priced = market(asset_symbols=ASSETS.symbols, asset_prices={"USDC": 1.0})
    raises_field("market.asset_prices", lambda: priced.with_asset_prices(np.array([1.0, NAN])))


def test_zero_mark_for_future_refused_by_revalue() -> None:
    from crossmargin.core.pricing import revalue

    raises_field(
        "instruments[BTC-PERP].mark_price", lambda: revalue(TABLE, market(mark_prices={"BTC-PERP": 0.0}))
    )


def test_nan_rate() -> None:
    raises_field("market.rate", lambda: market(rate=NAN))


# --------------------------------------------------------------------------- unknown names


def test_unknown_asset() -> None:
    error = raises_field("asset", lambda: ASSETS.position("DOGE"))
    assert "'DOGE'" in str(error)


def test_unknown_asset_in_balances() -> None:
    raises_field(
        "asset",
        lambda: book_from_rows(assets=[usd_asset()], instruments=TABLE, balances={"a": {"DOGE": 1.0}}),
    )


def test_unknown_instrument_in_market() -> None:
    error = raises_field("market.mark_price", lambda: market(mark_prices={"BTC-NOPE": 1.0}))
    assert "'BTC-NOPE'" in str(error)


def test_unknown_instrument_lookup() -> None:
    raises_field("instrument", lambda: TABLE.position("BTC-NOPE"))


def test_unknown_account_lookup() -> None:
    raises_field("account", lambda: book().account_row("nobody"))


def test_instrument_index_out_of_range() -> None:
    raises_field("positions.instrument", lambda: book(instrument_index=(2,)))


# --------------------------------------------------------------------------- expiry


@pytest.mark.parametrize("offset_ns", [0, -1, -NS_PER_DAY], ids=["at", "1ns-after", "1day-after"])
def test_expired_option(offset_ns: int) -> None:
    """An option expiring at or before the valuation time has no Black-76 value."""
    error = raises_field(
        f"instruments[{CALL.id}].expiry",
        lambda: market(valuation_ns=CALL.expiry_ns - offset_ns if offset_ns else CALL.expiry_ns),
    )
    assert "expired" in error.problem


def test_expired_future() -> None:
    future = Instrument(id="BTC-FUT", kind=InstrumentKind.FUTURE, underlying="BTC", expiry_ns=VALUATION_NS)
    table = InstrumentTable.from_instruments([future])
    raises_field(
        "instruments[BTC-FUT].expiry",
        lambda: MarketState.build(table, valuation_ns=VALUATION_NS, index_prices={"BTC": 1.0}),
    )


def test_option_without_expiry() -> None:
    raises_field(
        "instruments[X].expiry",
        lambda: Instrument(
            id="X", kind=InstrumentKind.OPTION, underlying="BTC", strike=1.0, option_type=OptionType.CALL
        ),
    )


def test_option_with_nonpositive_strike() -> None:
    raises_field(
        "instruments[X].strike",
        lambda: Instrument(
            id="X",
            kind=InstrumentKind.OPTION,
            underlying="BTC",
            expiry_ns=1,
            strike=0.0,
            option_type=OptionType.PUT,
        ),
    )


# --------------------------------------------------------------------------- duplicates


def test_duplicate_instrument_id() -> None:
    error = raises_field("instruments.id", lambda: InstrumentTable.from_instruments([PERP, CALL, PERP]))
    assert "'BTC-PERP'" in str(error)


def test_duplicate_asset_symbol() -> None:
    raises_field("assets.symbol", lambda: AssetTable.from_assets([usd_asset(), usd_asset()]))


def test_duplicate_account_id() -> None:
    error = raises_field("accounts.id", lambda: book(account_ids=("a", "b", "a"), account_index=(0,)))
    assert "'a'" in str(error)


def test_duplicate_position() -> None:
    error = raises_field(
        "positions",
        lambda: book(
            quantity=(1.0, 2.0), entry=(60_000.0, 61_000.0), instrument_index=(0, 0), account_index=(0, 0)
        ),
    )
    assert "'BTC-PERP'" in str(error)
    assert "'a'" in str(error)


# --------------------------------------------------------------------------- vols, haircuts, rates


@pytest.mark.parametrize("vol", [-0.2, 0.0])
def test_nonpositive_implied_vol(vol: float) -> None:
    raises_field("market.implied_vol", lambda: market(implied_vols={CALL.id: vol}))


def test_nonpositive_forward() -> None:
    raises_field("market.forward_price_usd", lambda: market(forward_prices={CALL.id: -1.0}))


@pytest.mark.parametrize("haircut", [-0.01, 1.0, 1.5, NAN])
def test_haircut_outside_unit_interval(haircut: float) -> None:
    raises_field("haircut_tiers.haircut", lambda: HaircutTier(above=0.0, haircut=haircut))


def test_haircut_tiers_must_not_decrease() -> None:
    raises_field(
        "assets[BTC].haircut_tiers",
        lambda: Asset(
            symbol="BTC",
            haircut_tiers=(HaircutTier(above=0.0, haircut=0.2), HaircutTier(above=10.0, haircut=0.1)),
        ),
    )


def test_haircut_tier_floors_must_increase() -> None:
    raises_field(
        "assets[BTC].haircut_tiers",
        lambda: Asset(
            symbol="BTC",
            haircut_tiers=(HaircutTier(above=0.0, haircut=0.1), HaircutTier(above=0.0, haircut=0.2)),
        ),
    )


def test_maintenance_rate_above_initial_rate() -> None:
    raises_field(
        "margin.maintenance_rate", lambda: MarginSchedule.flat(initial_rate=0.01, maintenance_rate=0.02)
    )


def test_option_maintenance_rate_above_floor() -> None:
    raises_field("option_margin.maintenance_rate", lambda: OptionMarginParams(maintenance_rate=0.2))


@pytest.mark.parametrize("rate_name", ["initial_rate", "maintenance_rate"])
def test_decreasing_tier_rates(rate_name: str) -> None:
    first = RateTier(above_notional_usd=0.0, initial_rate=0.02, maintenance_rate=0.01)
    if rate_name == "initial_rate":
        second = RateTier(above_notional_usd=1e6, initial_rate=0.015, maintenance_rate=0.01)
    else:
        second = RateTier(above_notional_usd=1e6, initial_rate=0.02, maintenance_rate=0.005)
    raises_field(f"margin.tiers.{rate_name}", lambda: MarginSchedule(tiers=(first, second)))


def test_tier_floors_must_increase() -> None:
    tier = RateTier(above_notional_usd=0.0, initial_rate=0.02, maintenance_rate=0.01)
    raises_field("margin.tiers", lambda: MarginSchedule(tiers=(tier, tier)))


def test_negative_rate_per_unit() -> None:
    raises_field(
        "margin.rate_per_unit",
        lambda: MarginSchedule.flat(initial_rate=0.02, maintenance_rate=0.01, rate_per_unit=-1e-5),
    )


# --------------------------------------------------------------------------- positions and balances


@pytest.mark.parametrize("quantity", [NAN, math.inf])
def test_nonfinite_quantity(quantity: float) -> None:
    raises_field("positions.quantity", lambda: book(quantity=(quantity,)))


@pytest.mark.parametrize("entry", [0.0, -60_000.0])
def test_nonpositive_entry_price_of_future(entry: float) -> None:
    """Inverse PnL divides by the entry price, so a delta-one entry must be > 0."""
    error = raises_field("positions[BTC-PERP].entry_price", lambda: book(entry=(entry,)))
    assert repr(entry) in str(error)


def test_negative_option_premium() -> None:
    raises_field(f"positions[{CALL.id}].entry_price", lambda: book(entry=(-0.01,), instrument_index=(1,)))


def test_zero_option_premium_is_accepted() -> None:
    """An option may be entered at a zero premium (e.g. received in a transfer)."""
    assert book(entry=(0.0,), instrument_index=(1,)).entry_price[0] == 0.0


def test_nan_entry_price() -> None:
    raises_field("positions.entry_price", lambda: book(entry=(NAN,)))


def test_misaligned_position_arrays() -> None:
    raises_field("positions", lambda: book(quantity=(1.0, 2.0)))


def test_nan_balance() -> None:
    raises_field("balances", lambda: book(balances=np.array([[NAN, 0.0]])))


def test_balance_matrix_shape() -> None:
    raises_field("balances", lambda: value_collateral(np.zeros((1, 3)), ASSETS, np.ones(2)))


def test_negative_accrual_period_for_interest() -> None:
    raises_field("elapsed_years", lambda: borrow_interest(np.zeros((1, 2)), ASSETS, elapsed_years=-1.0))


def test_a_market_whose_asset_price_and_index_price_disagree_is_refused() -> None:
    """One price per asset inside the engine too: a market moved by hand with BTC's collateral
    price off its index price is refused, naming the asset."""
    priced = market(asset_symbols=ASSETS.symbols, asset_prices={"USDC": 1.0})
    error = raises_field(
        "market.asset_prices.BTC", lambda: priced.with_asset_prices(np.array([1.0, 59_000.0]))
    )
    assert "60000" in str(error)


def test_moving_the_index_prices_moves_the_same_named_collateral() -> None:
    """`with_index_prices`: BTC's index at 66,000 takes BTC's collateral price along (one price
    per asset); USDC, not an underlying, keeps its own."""
    priced = market(asset_symbols=ASSETS.symbols, asset_prices={"USDC": 1.0})
    moved = priced.with_index_prices(priced.index_price_usd * 1.1)
    assert moved.asset_prices(ASSETS).tolist() == [1.0, 66_000.0]
    assert moved.index_price_usd.tolist() == (priced.index_price_usd * 1.1).tolist()
