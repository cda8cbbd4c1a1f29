"""An oracle-driven simulation: BTC's sources go silent while ETH falls 10 %. Two accounts are
equally under water on a long ETH perp; alice's collateral is BTC, carol's USDC. Carol is
liquidated at once; alice's liquidation pauses (LiquidationPaused in the audit trail) while the
BTC price is stale and runs once BTC is quoted again. Withdrawals and opening trades follow their
own validity rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crossmargin.adapters.eventlog import write_table
from crossmargin.core.ledger.events import TradeFill, Withdrawal
from crossmargin.core.ledger.state import AccountStatus
from crossmargin.core.oracle import NS_PER_SECOND, OracleParams, OracleUpdate
from crossmargin.engine.memory import ListEventSink, ListQuoteFeed, Quote
from crossmargin.engine.oracle_replay import replay
from crossmargin.engine.priced_simulation import PAUSE_RECORD, PricedSimulation
from crossmargin.engine.simulation import Simulation, record_rows
from tests.ledger_venue import BTC, USDC, VALUATION_NS, open_venue, venue_config

SOURCES = ("a", "b", "c", "d", "e")
T0 = VALUATION_NS + NS_PER_SECOND


def _updates() -> list[OracleUpdate]:
    """t0: BTC 40,000 and ETH 2,000; +30 s: ETH 1,800 only (BTC's quotes are 30 s old: stale);
    +40 s: both quoted again."""
    rows = [
        (0, {"BTC": 40_000.0, "ETH": 2_000.0}),
        (30, {"ETH": 1_800.0}),
        (40, {"BTC": 40_000.0, "ETH": 1_800.0}),
    ]
    feed = ListQuoteFeed(assets=("BTC", "ETH"))  # the engine's in-memory QuoteSource
    for second, quotes in rows:
        for asset, price in quotes.items():
            for source in SOURCES:
                feed.append(
                    Quote(time_ns=T0 + second * NS_PER_SECOND, asset=asset, source=source, price_usd=price)
                )
    table = feed.quote_table()
    return [step.update for step in replay(table, params=OracleParams())]


def _venue(sink: ListEventSink | None = None) -> PricedSimulation:
    config = venue_config()
    # alice: 0.06 BTC (95 % counts: 2,280 USD); carol: 2,280 USDC. Both buy 10 ETH-PERP at 2,000
    # (IM 10 % = 2,000); at 1,800 equity = 280 < MM 5 % · 18,000 = 900: in liquidation.
    state = open_venue(
        config,
        ["alice", "carol", "bob", "dave"],
        {
            "alice": {"BTC": 6 * BTC // 100},
            "carol": {"USDC": 2_280 * USDC},
            "bob": {"USDC": 10**6 * USDC},
            "dave": {"USDC": 10**6 * USDC},  # a bystander who trades later
        },
    )
    sim = Simulation(config=config, state=state, sink=sink)
    for taker in ("alice", "carol"):
        assert sim.submit(
            TradeFill(
                taker=taker,
                maker="bob",
                instrument="ETH-PERP",
                quantity=10,
                price=2_000.0,
                as_of_ns=VALUATION_NS,
            )
        ), sim.rejected
    return PricedSimulation(sim=sim, assets=("BTC", "ETH"))


def _liquidated(psim: PricedSimulation) -> set[str]:
    return {r.account for r in psim.sim.records if r.kind == "liquidation_fill"}


def test_oracle_liquidation_pauses_while_the_collateral_price_is_stale(tmp_path: Path) -> None:
    psim = _venue()
    first, stale, fresh = _updates()
    psim.oracle_step(first)
    assert _liquidated(psim) == set()

    psim.oracle_step(stale)
    assert _liquidated(psim) == {"carol"}  # unexposed to BTC: liquidated normally
    assert psim.sim.state.status["alice"] == AccountStatus.LIQUIDATION
    assert psim.sim.state.positions[("alice", "ETH-PERP")].quantity == 10
    paused = [r for r in psim.sim.records if r.kind == PAUSE_RECORD]
    assert [(r.account, r.detail["asset"], r.detail["reason"], r.detail["status"]) for r in paused] == [
        ("alice", "BTC", "stale", "stale")
    ]
    assert paused[0].detail["age_ms"] == 30_000.0
    assert [p.asset for p in psim.pauses] == ["BTC"]

    # An ordinary event between oracle updates keeps the pause in force.
    psim.step(Withdrawal(account="bob", asset="USDC", amount_units=USDC, as_of_ns=psim.sim.state.time_ns))
    assert _liquidated(psim) == {"carol"}

    psim.oracle_step(fresh)  # BTC trusted again
    assert _liquidated(psim) == {"alice", "carol"}
    assert psim.sim.state.positions[("alice", "ETH-PERP")].quantity < 10
    assert sum(1 for r in psim.sim.records if r.kind == PAUSE_RECORD) == 2  # the update, the withdrawal

    # The audit trail, pauses included, goes through the event-log adapter.
    write_table(tmp_path / "records.csv", record_rows(psim.sim.records))
    assert PAUSE_RECORD in (tmp_path / "records.csv").read_text()


def test_oracle_without_pauses_both_are_liquidated_at_once() -> None:
    psim = _venue()
    first, _, fresh = _updates()
    psim.oracle_step(first)
    psim.oracle_step(fresh)  # straight to the step where BTC is quoted
    assert _liquidated(psim) == {"alice", "carol"}
    assert not any(r.kind == PAUSE_RECORD for r in psim.sim.records)


def test_oracle_withdrawal_and_opening_trade_follow_their_rules() -> None:
    psim = _venue()
    first, stale, fresh = _updates()
    psim.oracle_step(first)
    psim.oracle_step(stale)
    as_of = psim.sim.state.time_ns
    # bob holds USDC and trades ETH (valid): his withdrawal passes; alice's BTC is stale.
    assert psim.submit(Withdrawal(account="bob", asset="USDC", amount_units=USDC, as_of_ns=as_of))
    assert not psim.submit(Withdrawal(account="alice", asset="BTC", amount_units=1, as_of_ns=as_of))
    assert psim.sim.rejected[-1]["field"] == "withdrawal.asset"
    assert "BTC" in psim.sim.rejected[-1]["problem"] and "stale" in psim.sim.rejected[-1]["problem"]
    # Opening a BTC position on a stale price is refused, and accepted once BTC is quoted again.
    opening = TradeFill(
        taker="bob", maker="dave", instrument="BTC-PERP", quantity=1, price=40_000.0, as_of_ns=as_of
    )
    assert not psim.submit(opening)
    assert psim.sim.rejected[-1]["field"] == "trade.instrument"
    psim.oracle_step(fresh)
    assert psim.submit(dataclasses.replace(opening, as_of_ns=psim.sim.state.time_ns))


def test_the_event_sink_gets_every_accepted_event_and_no_refused_one() -> None:
    sink = ListEventSink()
    psim = _venue(sink)
    first, stale, _ = _updates()
    psim.oracle_step(first)
    psim.oracle_step(stale)
    as_of = psim.sim.state.time_ns
    refused = Withdrawal(account="alice", asset="BTC", amount_units=1, as_of_ns=as_of)
    assert not psim.submit(refused)
    assert sink.events == psim.sim.events  # trades, price updates, carol's liquidation, in order
    assert refused not in sink.events
    assert sum(1 for e in sink.events if type(e).__name__ == "Liquidate") >= 1
