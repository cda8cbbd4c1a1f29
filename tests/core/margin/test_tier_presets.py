"""Tier presets are parameters of the cross and isolated models (core.margin.tier_presets): the
book keeps its own schedules, the model margins linear perpetuals on the venue's table."""

from __future__ import annotations

import pytest

from crossmargin.adapters.files import load_book
from crossmargin.core.margin import CrossMargin, CrossParams, IsolatedMargin
from crossmargin.core.margin.tier_presets import TIER_PRESETS, tier_preset_table, with_tier_preset
from crossmargin.errors import InputError
from tests.adapters.files.bad_books import DESK


@pytest.mark.parametrize("name", sorted(TIER_PRESETS))
def test_a_tier_preset_in_the_model_equals_the_preset_applied_to_the_book(name: str) -> None:
    loaded = load_book(DESK)
    for model, plain in (
        (CrossMargin(CrossParams(tier_preset=name)), CrossMargin()),
        (IsolatedMargin(CrossParams(tier_preset=name)), IsolatedMargin()),
    ):
        by_parameter = model.evaluate(loaded.book, loaded.market)
        by_book = plain.evaluate(with_tier_preset(loaded.book, name), loaded.market)
        assert by_parameter.initial_margin_usd.tolist() == by_book.initial_margin_usd.tolist()
        assert by_parameter.maintenance_margin_usd.tolist() == by_book.maintenance_margin_usd.tolist()
    # And it changes the requirement of an account holding a linear perpetual (the basis trader).
    own = CrossMargin().evaluate(loaded.book, loaded.market).initial_margin_usd
    preset = CrossMargin(CrossParams(tier_preset=name)).evaluate(loaded.book, loaded.market).initial_margin_usd
    assert (own != preset).any()


def test_the_preset_table_is_derived_once_per_instrument_table() -> None:
    table = load_book(DESK).book.instruments
    first = tier_preset_table(table, "binance")
    assert tier_preset_table(table, "binance") is first
    assert tier_preset_table(table, "hyperliquid") is not first


def test_an_unknown_tier_preset_is_refused_naming_the_choices() -> None:
    with pytest.raises(InputError) as caught:
        CrossParams(tier_preset="okx")
    assert caught.value.field == "preset" and "binance" in str(caught.value)
