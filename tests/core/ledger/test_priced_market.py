"""The ledger's shared priced market (`priced_market`): risk views at unchanged prices share one
revaluation, and any price, mark or configuration change gives the numbers of a fresh one."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.adapters.files import load_book
from crossmargin.core.ledger.state import book_of, frozen_prices, market_of, priced_market, risk_view
from crossmargin.core.margin import CrossMargin, CrossParams
from crossmargin.core.pricing import revalue
from crossmargin.engine.simulation import simulation_from_book
from crossmargin.engine.venue.state import VenueState

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


def test_frozen_views_are_found_by_identity_and_cannot_change() -> None:
    """`frozen_prices` views (the venue's fold and its sub-states) are the memo's identity fast
    path: the key (O(marked instruments)) is not even built for them. They are read-only, so an
    entry found by identity is still its market; new views of the same values are the same
    market, known by the new views from then on."""
    sim = simulation_from_book(load_book(DESK))
    config, state = sim.config, sim.state
    frozen = dataclasses.replace(state, prices=frozen_prices(state.prices), marks=frozen_prices(state.marks))
    first = priced_market(frozen, config)
    assert first.views == (frozen.prices, frozen.marks)
    with pytest.raises(TypeError):
        frozen.prices["BTC"] = 1.0  # type: ignore[index]  # read-only: no entry can go stale

    assert priced_market(frozen, config) is first
    copy = dataclasses.replace(frozen, prices=frozen_prices(dict(frozen.prices)))
    assert priced_market(copy, config).market is first.market  # same values: the same market
    assert priced_market(copy, config).views == (copy.prices, frozen.marks)  # now known by identity
    moved = dataclasses.replace(frozen, prices=frozen_prices({**frozen.prices, "BTC": frozen.prices["BTC"] * 0.9}))
    assert priced_market(moved, config).market is not first.market

    class Counted(dict[str, float]):
        """Counts the key's builds (its items() calls)."""

        builds = 0

        def items(self):  # type: ignore[no-untyped-def, override]
            Counted.builds += 1
            return super().items()

    viewed = dataclasses.replace(state, prices=types.MappingProxyType(Counted(state.prices)), marks=frozen.marks)
    priced_market(viewed, config)  # unknown view: the key is built once (and the market found by it)
    built = Counted.builds
    assert priced_market(viewed, config).views == (viewed.prices, frozen.marks)
    assert Counted.builds == built  # known view: found by identity, no key built
    plain = dataclasses.replace(state, prices=Counted(state.prices))
    priced_market(plain, config)
    priced_market(plain, config)
    assert Counted.builds == built + 2  # a plain mapping is found by its values, every time


@settings(max_examples=40, deadline=None)
@given(
    moves=st.lists(
        st.tuples(st.sampled_from(["BTC", "ETH", "BTC-USDC-PERP", "ETH-USDC-PERP"]), st.floats(0.5, 2.0)),
        max_size=12,
    )
)
def test_the_fold_s_priced_market_is_never_stale(moves: list[tuple[str, float]]) -> None:
    """Through any sequence of price and mark effects folded by the venue's state (each a new
    view), the market the memo returns for the fold is the one its current values give: the same
    valuation as a market built afresh from plain copies of them."""
    sim = simulation_from_book(load_book(DESK))
    config = sim.config
    fold = VenueState(prices=frozen_prices(sim.state.prices), marks=frozen_prices(sim.state.marks))
    for name, factor in moves:
        priced_market(fold, config)  # the memo knows the views before the move
        if "-" in name:  # a mark
            mark = fold.marks.get(name, fold.prices[name[:3]]) * factor
            fold.apply_effects({"marks": {name: mark}}, sequence=0, record_hash="h")
        else:
            fold.apply_effects({"prices": {name: fold.prices[name] * factor}}, sequence=0, record_hash="h")
        got = priced_market(fold, config)
        assert got.views == (fold.prices, fold.marks)
        plain = dataclasses.replace(sim.state, prices=dict(fold.prices), marks=dict(fold.marks))
        fresh = _uncached_valuation(plain, config)
        assert np.array_equal(got.valuation.unit_value_usd, fresh.unit_value_usd, equal_nan=True)
