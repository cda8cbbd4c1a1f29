"""One margin run over the bundled example: the report contract, the accounts a user recognises,
and a hand computation of one account's equity from the YAML numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from crossmargin.adapters.files import LoadedBook, load_book
from crossmargin.engine.margin_run import MODELS, make_model, margin_report, price_levels, run_margin
from crossmargin.errors import InputError
from tests.engine.histories import desk_history

DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"
# The VaR model's daily closes, in memory (the other models ignore it); real history: tests/golden.
HISTORY = desk_history()

# Hand computations repeat the engine's float64 arithmetic in another order.
HAND_TOLERANCE = 1e-9

REPORT_KEYS = {"model", "preset", "valuation_time", "book", "accounts"}
ACCOUNT_KEYS = {
    "account_id",
    "equity_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
    "available_usd",
    "margin_ratio",
    "bankrupt",
    "below_maintenance",
    "collateral_value_usd",
    "positions",
    "collateral",
}
LEVEL_KEYS = {  # only with price_levels(run): an explicit stage
    "liquidation_price",
    "bankruptcy_price",
    "liquidation_price_below",
    "liquidation_price_above",
    "bankruptcy_price_below",
    "bankruptcy_price_above",
}
POSITION_KEYS = {
    "instrument_id",
    "quantity",
    "entry_price",
    "value_usd",
    "unrealised_pnl_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
}
COLLATERAL_KEYS = {"asset", "balance", "value_usd", "haircut"}


@pytest.fixture(scope="module")
def loaded() -> LoadedBook:
    return load_book(DESK)


def _accounts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["account_id"]: a for a in report["accounts"]}


@pytest.mark.parametrize("model", MODELS)
def test_report_keys_are_exactly_the_contract(loaded: LoadedBook, model: str) -> None:
    run = run_margin(
        loaded, model=model, history=HISTORY, account_ids=["near-liquidation"] if model == "var" else None
    )
    assert all(set(a) == ACCOUNT_KEYS for a in margin_report(run)["accounts"])
    report = margin_report(run, levels=price_levels(run))
    assert set(report) == REPORT_KEYS | ({"var_history"} if model == "var" else set())
    assert report["model"] == model
    assert report["valuation_time"] == "2025-12-30T17:31:15Z"
    assert report["book"] == str(DESK)
    assert [a["account_id"] for a in report["accounts"]] == (
        ["near-liquidation"] if model == "var" else list(loaded.book.account_ids)
    )
    position_keys = POSITION_KEYS | ({"isolated_equity_usd"} if model == "isolated" else set())
    for account in report["accounts"]:
        assert set(account) == ACCOUNT_KEYS | LEVEL_KEYS
        assert account["positions"]
        for position in account["positions"]:
            assert set(position) == position_keys
        for collateral in account["collateral"]:
            assert set(collateral) == COLLATERAL_KEYS
    # JSON-ready: plain types only, no NaN (null is used for a bankrupt account's ratio).
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report


@pytest.mark.parametrize("model", MODELS)
def test_position_contributions_sum_to_the_account_totals(loaded: LoadedBook, model: str) -> None:
    for account in margin_report(run_margin(loaded, model=model, history=HISTORY))["accounts"]:
        positions = account["positions"]
        assert sum(p["initial_margin_usd"] for p in positions) == pytest.approx(account["initial_margin_usd"])
        assert sum(p["maintenance_margin_usd"] for p in positions) == pytest.approx(
            account["maintenance_margin_usd"]
        )
        collateral = sum(c["value_usd"] for c in account["collateral"])
        assert collateral == pytest.approx(account["collateral_value_usd"])
        assert collateral + sum(p["value_usd"] for p in positions) == pytest.approx(account["equity_usd"])


def test_near_liquidation_is_close_to_but_not_at_liquidation(loaded: LoadedBook) -> None:
    account = _accounts(margin_report(run_margin(loaded)))["near-liquidation"]
    assert 0.85 < account["margin_ratio"] < 1.0
    assert account["margin_ratio"] == pytest.approx(account["maintenance_margin_usd"] / account["equity_usd"])
    assert not account["below_maintenance"] and not account["bankrupt"]
    assert account["available_usd"] < 0.0  # below initial margin: cannot open more


def test_the_other_example_accounts_are_healthy(loaded: LoadedBook) -> None:
    accounts = _accounts(margin_report(run_margin(loaded)))
    for account_id in ("basis-trader", "vol-seller", "directional"):
        assert accounts[account_id]["margin_ratio"] < 0.5, account_id
        assert accounts[account_id]["available_usd"] > 0.0, account_id
    assert accounts["basis-trader"]["margin_ratio"] < 0.01  # hedged
    directional = accounts["directional"]
    usdc = next(c for c in directional["collateral"] if c["asset"] == "USDC")
    assert usdc["balance"] == -40000.0
    assert usdc["value_usd"] == pytest.approx(-40000.0 * 1.02)  # liability weight 1.02


def test_basis_trader_equity_by_hand(loaded: LoadedBook) -> None:
    """Equity from the numbers in examples/desk.yaml, written out.

    S = BTC index 88,528.93 (market.index_prices.BTC); perpetual marks default to the index.
      USDC 150,000 at 1.00, haircut 0                                 = 150,000
      BTC 5.0 collateral, all in the first tier (below 10 BTC), 5 %   = 5.0 · S · 0.95
      BTC-USDC spot, +10 contracts of 1 BTC (full market value)       = 10 · S
      BTC-USDC-PERP linear, -10 at entry 88,650: q·cs·(M - E)         = -10 · 1 · (S - 88,650)
      BTC-27MAR26 inverse, -45,000 × 10 USD at entry 90,100, mark 89,559.35:
        q·cs·(1/E - 1/M) coin, × S to USD                           = -45,000·10·(1/90,100 - 1/89,559.35)·S
    """
    S = 88528.93
    usdc = 150000.0 * 1.0 * (1.0 - 0.0)
    btc_collateral = 5.0 * S * (1.0 - 0.05)
    spot = 10.0 * 1.0 * S
    perpetual = -10.0 * 1.0 * (S - 88650.0)
    future = -45000.0 * 10.0 * (1.0 / 90100.0 - 1.0 / 89559.35) * S
    equity = usdc + btc_collateral + spot + perpetual + future
    assert equity == pytest.approx(1_459_681.60, abs=0.01)  # the CLI's table shows this to the cent

    account = _accounts(margin_report(run_margin(loaded)))["basis-trader"]
    assert account["equity_usd"] == pytest.approx(equity, rel=HAND_TOLERANCE)
    assert account["collateral_value_usd"] == pytest.approx(usdc + btc_collateral, rel=HAND_TOLERANCE)
    values = {p["instrument_id"]: p["value_usd"] for p in account["positions"]}
    assert values["BTC-USDC"] == pytest.approx(spot, rel=HAND_TOLERANCE)
    assert values["BTC-USDC-PERP"] == pytest.approx(perpetual, rel=HAND_TOLERANCE)
    assert values["BTC-27MAR26"] == pytest.approx(future, rel=HAND_TOLERANCE)


def test_inverse_perpetual_margin_by_hand(loaded: LoadedBook) -> None:
    """BTC-PERPETUAL, +60,000 × 10 USD, mark = index S: notional = 600,000 USD, size = 600,000/S BTC.
    IM = notional · (2 % + 0.005 % · size), MM = notional · (1 % + 0.005 % · size)."""
    S = 88528.93
    notional = 60000 * 10.0
    size_btc = notional / S
    account = _accounts(margin_report(run_margin(loaded)))["near-liquidation"]
    perpetual = next(p for p in account["positions"] if p["instrument_id"] == "BTC-PERPETUAL")
    assert perpetual["initial_margin_usd"] == pytest.approx(notional * (0.02 + 0.00005 * size_btc))
    assert perpetual["maintenance_margin_usd"] == pytest.approx(notional * (0.01 + 0.00005 * size_btc))
    # Long from 94,250: PnL = q·cs·(1/E - 1/M)·S with M = S.
    assert perpetual["value_usd"] == pytest.approx(60000 * 10.0 * (1 / 94250.0 - 1 / S) * S)


def test_notional_tier_margin_by_hand(loaded: LoadedBook) -> None:
    """directional's ETH-USDC-PERP, +150 ETH at 2,978.73 = 446,809.5 USD, in the third tier
    (above 250,000: 1/50 = 2 % IM, 1 % MM). Deductions keep margin continuous at the floors:
      IM deduction = 50,000·(1/75 - 1/100) + 250,000·(1/50 - 1/75)
      MM deduction = 50,000·(0.0065 - 0.005) + 250,000·(0.01 - 0.0065)"""
    notional = 150 * 2978.73
    im = notional * (1 / 50) - (50000 * (1 / 75 - 1 / 100) + 250000 * (1 / 50 - 1 / 75))
    mm = notional * 0.01 - (50000 * (0.0065 - 0.005) + 250000 * (0.01 - 0.0065))
    account = _accounts(margin_report(run_margin(loaded)))["directional"]
    perpetual = next(p for p in account["positions"] if p["instrument_id"] == "ETH-USDC-PERP")
    assert perpetual["initial_margin_usd"] == pytest.approx(im, rel=HAND_TOLERANCE)
    assert perpetual["maintenance_margin_usd"] == pytest.approx(mm, rel=HAND_TOLERANCE)


def test_cross_and_isolated_see_the_same_money(loaded: LoadedBook) -> None:
    cross = _accounts(margin_report(run_margin(loaded, model="cross")))
    isolated = _accounts(margin_report(run_margin(loaded, model="isolated")))
    for account_id, account in cross.items():
        for key in ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "collateral_value_usd"):
            assert isolated[account_id][key] == pytest.approx(account[key]), (account_id, key)
        # No netting between positions: the worst position's ratio is at least the pooled one.
        assert isolated[account_id]["margin_ratio"] >= account["margin_ratio"] - 1e-12


def test_default_model_is_the_books(loaded: LoadedBook) -> None:
    assert run_margin(loaded).model == loaded.default_model == "cross"


def test_selected_accounts_only(loaded: LoadedBook) -> None:
    report = margin_report(run_margin(loaded, account_ids=["near-liquidation", "basis-trader"]))
    assert [a["account_id"] for a in report["accounts"]] == ["near-liquidation", "basis-trader"]
    full = _accounts(margin_report(run_margin(loaded)))
    for account in report["accounts"]:
        assert account == full[account["account_id"]]


def test_unknown_account_is_an_input_error(loaded: LoadedBook) -> None:
    with pytest.raises(InputError, match="unknown account 'nobody'"):
        run_margin(loaded, account_ids=["nobody"])


def test_unknown_model_is_an_input_error(loaded: LoadedBook) -> None:
    with pytest.raises(InputError, match="unknown model 'no-such-model'"):
        make_model("no-such-model", loaded)


def test_var_without_a_price_history_is_an_input_error_naming_it(loaded: LoadedBook) -> None:
    with pytest.raises(InputError, match=r"^history: no price history was given"):
        run_margin(loaded, model="var")


def test_bankrupt_account_reports_null_ratio(tmp_path: Path) -> None:
    text = DESK.read_text(encoding="utf-8").replace(
        "collateral: {USDT: 27500, BTC: 0.8}", "collateral: {USDT: 1000}"
    )
    assert text != DESK.read_text(encoding="utf-8")
    path = tmp_path / "bankrupt.yaml"
    path.write_text(text, encoding="utf-8")
    account = _accounts(margin_report(run_margin(load_book(path))))["near-liquidation"]
    assert account["equity_usd"] < 0.0
    assert account["bankrupt"] and account["below_maintenance"]
    assert account["margin_ratio"] is None
    assert not math.isnan(account["equity_usd"])
