"""A book file may carry the portfolio-margin parameters (issue 4: "the book file may carry the
portfolio parameters"): a preset, the maintenance fraction, a numeraire and add-on overrides;
and a tier table for cross margin. Bad values name the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossmargin.adapters.files import load_book
from crossmargin.core.margin.portfolio import PortfolioMargin
from crossmargin.engine.margin_run import run_margin
from crossmargin.errors import BookFileError

DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"


def _desk_with_model(tmp_path: Path, model: dict[str, Any]) -> Path:
    document = yaml.safe_load(DESK.read_text(encoding="utf-8"))
    document["model"] = {**document.get("model", {}), **model}
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_portfolio_block_selects_preset_and_overrides(tmp_path: Path) -> None:
    path = _desk_with_model(
        tmp_path,
        {
            "default": "portfolio",
            "portfolio": {
                "preset": "paradex-pm",
                "maintenance_fraction": 0.6,
                "addons": {"liquidity_usd": {"BTC": 5.0e8, "ETH": 2.0e8}, "concentration_coefficient": 0.1},
            },
        },
    )
    loaded = load_book(path)
    params = loaded.portfolio
    assert loaded.default_model == "portfolio"
    assert params.name == "paradex-pm"
    assert params.maintenance_fraction == 0.6
    assert params.addons.liquidity_usd == {"BTC": 5.0e8, "ETH": 2.0e8}
    assert params.addons.funding_periods == 1.0  # Paradex's own add-ons survive the override
    run = run_margin(loaded)
    assert (run.model, run.preset) == ("portfolio", "paradex-pm")
    # The override changes the number: concentration is charged on top of the plain preset.
    without = dataclasses.replace(
        params, addons=dataclasses.replace(params.addons, concentration_coefficient=0.0)
    )
    plain = PortfolioMargin(without).evaluate(loaded.book, loaded.market).initial_margin_usd
    assert (run.result.initial_margin_usd >= plain).all()
    assert (run.result.initial_margin_usd > plain).any()
    assert (run.result.maintenance_margin_usd <= run.result.initial_margin_usd).all()


def test_tier_preset_applies_under_cross(tmp_path: Path) -> None:
    loaded = load_book(_desk_with_model(tmp_path, {"tier_preset": "hyperliquid"}))
    tiered = run_margin(loaded, model="cross")
    plain = run_margin(load_book(DESK), model="cross")
    assert tiered.preset == "hyperliquid"
    assert (tiered.result.initial_margin_usd != plain.result.initial_margin_usd).any()


def test_unknown_preset_names_the_field(tmp_path: Path) -> None:
    path = _desk_with_model(tmp_path, {"portfolio": {"preset": "no-such-venue"}})
    with pytest.raises(BookFileError) as caught:
        load_book(path)
    assert "model.portfolio.preset" in str(caught.value)
    assert str(path) in str(caught.value)


def test_bad_addon_value_names_the_field(tmp_path: Path) -> None:
    path = _desk_with_model(tmp_path, {"portfolio": {"addons": {"depeg_move": 1.5}}})
    with pytest.raises(BookFileError) as caught:
        load_book(path)
    assert "depeg_move" in str(caught.value)
