"""The ledger's shared priced market (`priced_market`): risk views at unchanged prices share one
revaluation, and any price, mark or configuration change gives the numbers of a fresh one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from crossmargin.adapters.files import load_book
from crossmargin.core.ledger.state import book_of, market_of, priced_market, risk_view
from crossmargin.core.margin import CrossMargin, CrossParams
from crossmargin.core.pricing import revalue
from crossmargin.engine.simulation import simulation_from_book

DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"


def _uncached_valuation(state, config):  # type: ignore[no-untyped-def]
    return revalue(config.instruments, market_of(state, config))


def test_views_at_unchanged_prices_share_one_revaluation_and_a_move_revalues() -> None:
    sim = simulation_from_book(load_book(DESK))
    config, state = sim.config, sim.state
    first = priced_market(state, config)
    assert priced_market(dataclasses.replace(state, prices=dict(state.prices)), config) is first
    with pytest.raises(ValueError, match="read-only"):
        first.valuation.unit_value_usd[0] = 0.0  # shared: nobody may move it

    moved = dataclasses.replace(state, prices={**state.prices, "BTC": state.prices["BTC"] * 0.9})
    after = priced_market(moved, config)
    assert after is not first
    fresh = _uncached_valuation(moved, config)
    assert np.array_equal(after.valuation.unit_value_usd, fresh.unit_value_usd, equal_nan=True)
    assert not np.array_equal(after.valuation.unit_value_usd, first.valuation.unit_value_usd, equal_nan=True)

    # The margin of a BTC holder follows the move exactly as an uncached view would compute it.
    traders = tuple(state.traders)
    before_im = risk_view(state, config, traders).result.initial_margin_usd
    after_im = risk_view(moved, config, traders).result.initial_margin_usd
    assert not np.array_equal(before_im, after_im)
    assert np.array_equal(risk_view(state, config, traders).result.initial_margin_usd, before_im)


def test_another_configuration_object_is_another_market() -> None:
    sim = simulation_from_book(load_book(DESK))
    config, state = sim.config, sim.state
    other = dataclasses.replace(config, rate=config.rate + 0.05)
    assert priced_market(state, other) is not priced_market(state, config)
    assert priced_market(state, other).market.rate == pytest.approx(config.rate + 0.05)


@pytest.mark.parametrize("preset", ["binance", "hyperliquid"])
def test_a_tier_preset_in_the_margin_parameters_margins_the_ledger_as_the_engine(preset: str) -> None:
    """`LedgerConfig.margin.tier_preset`: the ledger's risk view margins every trader on the
    preset's tiers, bit for bit the engine's `CrossMargin` with that preset on the same book (the
    view once read the book's own schedules while the liquidation close-out read the preset)."""
    sim = simulation_from_book(load_book(DESK))
    config, state = sim.config, sim.state
    tiered = dataclasses.replace(config, margin=CrossParams(tier_preset=preset))
    traders = tuple(state.traders)
    view = risk_view(state, tiered, traders)
    book = book_of(state, tiered, traders)
    engine = CrossMargin(CrossParams(tier_preset=preset)).evaluate(book, view.market)
    for name in ("initial_margin_usd", "maintenance_margin_usd", "equity_usd"):
        assert getattr(view.result, name).tobytes() == getattr(engine, name).tobytes(), name
    own = risk_view(state, config, traders).result.initial_margin_usd
    assert not np.array_equal(view.result.initial_margin_usd, own)  # the preset moved someone's IM
