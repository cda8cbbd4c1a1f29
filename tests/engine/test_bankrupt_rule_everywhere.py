"""Issue 14: one bankrupt rule on every path. Equity that is zero in exact arithmetic can come out
of float64 as a few ulps above zero (6.65 USDC against a 1-SOL long perp entered at 58.32 and marked
at 51.67: 6.65 + (51.67 - 58.32) = +1.8e-15). Every margin model calls that account bankrupt
(equity <= EQUITY_ZERO_TOLERANCE x gross value); the ledger's risk view, its status machine and the
oracle-priced run must say the same, not "liquidation" with a margin ratio of 1e13."""

from __future__ import annotations

from pathlib import Path

import yaml

from crossmargin.adapters.files import load_book
from crossmargin.core.ledger.state import AccountStatus, risk_view
from crossmargin.engine.inputs import QuoteTable
from crossmargin.engine.margin_run import run_margin
from crossmargin.engine.priced_run import run_priced_margin, snapshot_from_quotes
from crossmargin.engine.simulation import simulation_from_book

BOOK = {
    "valuation_time": "2025-12-30T17:31:15Z",
    "market": {"index_prices": {"SOL": 51.67}},
    "assets": [{"symbol": "USDC", "price_usd": 1.0}, {"symbol": "SOL"}],
    "instruments": [
        {
            "id": "SOL-USDC-PERP",
            "kind": "perpetual",
            "underlying": "SOL",
            "contract_size": 1,
            "margin": {"initial_rate": 0.1, "maintenance_rate": 0.05},
        }
    ],
    "accounts": [
        {
            "id": "edge",
            "collateral": {"USDC": 6.65},
            "positions": [{"instrument": "SOL-USDC-PERP", "quantity": 1, "entry_price": 58.32}],
        }
    ],
}


def _book(tmp_path: Path) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(BOOK), encoding="utf-8")
    return path


def test_the_example_sits_a_few_ulps_above_zero(tmp_path: Path) -> None:
    result = run_margin(load_book(_book(tmp_path))).result
    assert 0.0 < float(result.equity_usd[0]) < 1e-14  # the rounding the rule exists for
    assert bool(result.bankrupt[0])


def test_the_ledger_calls_it_bankrupt_as_the_margin_models_do(tmp_path: Path) -> None:
    sim = simulation_from_book(load_book(_book(tmp_path)))
    assert bool(risk_view(sim.state, sim.config).result.bankrupt[0])
    assert sim.state.status["edge"] == AccountStatus.BANKRUPT


def test_the_oracle_priced_run_calls_it_bankrupt(tmp_path: Path) -> None:
    loaded = load_book(_book(tmp_path))
    at = loaded.market.valuation_ns
    table = QuoteTable.from_columns(
        time_ns=[at] * 3, asset=["SOL"] * 3, source=["a", "b", "c"], price_usd=[51.67] * 3
    )
    for model in ("cross", "isolated"):
        priced = run_priced_margin(loaded, snapshot_from_quotes(table, as_of_ns=at), model=model)
        assert bool(priced.run.result.bankrupt[0]), model
