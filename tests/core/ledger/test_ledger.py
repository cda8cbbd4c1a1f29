"""The exact ledger: rounding boundary, bad input, funding, withdrawals, margin calls, replay."""

from __future__ import annotations

import math

import pytest

from crossmargin.core.ledger.apply import apply, replay
from crossmargin.core.ledger.events import (
    Deposit,
    FundingPayment,
    MarginCheck,
    PriceUpdate,
    TradeFill,
    Withdrawal,
)
from crossmargin.core.ledger.money import units_charge, units_payout, units_signed_pnl
from crossmargin.core.ledger.postings import CLEARING, FEES, balance_deltas
from crossmargin.core.ledger.state import AccountStatus, MarginCallParams, risk_view
from crossmargin.errors import InputError
from tests.ledger_venue import USDC, VALUATION_NS, open_venue, venue_config


def test_rounding_boundary_is_against_the_trader() -> None:
    assert units_charge(0.1, 6) == 100_001 or units_charge(0.1, 6) == 100_000  # 0.1 is not exact
    assert units_charge(1.0000001, 6) == 1_000_001
    assert units_payout(1.0000009, 6) == 1_000_000
    assert units_signed_pnl(-1.0000001, 6) == -1_000_001
    assert units_signed_pnl(1.0000009, 6) == 1_000_000
    with pytest.raises(InputError, match="amount"):
        units_charge(math.nan, 6)


def _venue():  # type: ignore[no-untyped-def]
    config = venue_config()
    state = open_venue(
        config, ["alice", "bob"], {"alice": {"USDC": 10_000 * USDC}, "bob": {"USDC": 10_000 * USDC}}
    )
    return config, state


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (Deposit(account="mallory", asset="USDC", amount_units=1, as_of_ns=VALUATION_NS), "deposit.account"),
        (
            Deposit(account="alice", asset="USDC", amount_units=-5, as_of_ns=VALUATION_NS),
            "deposit.amount_units",
        ),
        (Deposit(account="alice", asset="DOGE", amount_units=5, as_of_ns=VALUATION_NS), "deposit.asset"),
        (
            Withdrawal(account="alice", asset="USDC", amount_units=10_001 * USDC, as_of_ns=VALUATION_NS),
            "withdrawal.amount_units",
        ),
        (
            TradeFill(
                taker="alice",
                maker="bob",
                instrument="BTC-PERP",
                quantity=1,
                price=math.nan,
                as_of_ns=VALUATION_NS,
            ),
            "fill.price",
        ),
        (
            TradeFill(
                taker="alice",
                maker="zed",
                instrument="BTC-PERP",
                quantity=1,
                price=4e4,
                as_of_ns=VALUATION_NS,
            ),
            "fill.maker",
        ),
        (PriceUpdate(index_prices={"BTC": math.inf}, as_of_ns=VALUATION_NS), "prices.index_prices[BTC]"),
        (FundingPayment(instrument="BTC-FUT", rate=0.001, as_of_ns=VALUATION_NS), "funding.instrument"),
        (MarginCheck(as_of_ns=VALUATION_NS - 1), "as_of_ns"),
    ],
)
def test_bad_input_names_the_field_and_leaves_the_state_untouched(event, field) -> None:  # type: ignore[no-untyped-def]
    config, state = _venue()
    digest = state.digest()
    with pytest.raises(InputError) as error:
        apply(state, event, config)
    assert error.value.field == field
    assert state.digest() == digest


def test_withdrawal_below_initial_margin_is_refused() -> None:
    config, state = _venue()
    # 2 BTC long at 40,000: IM 10 % of 80,000 = 8,000 USD; alice holds 10,000 - fee 40.
    state = apply(
        state,
        TradeFill(
            taker="alice",
            maker="bob",
            instrument="BTC-PERP",
            quantity=2,
            price=40_000.0,
            as_of_ns=VALUATION_NS,
        ),
        config,
    ).state
    ok = apply(
        state,
        Withdrawal(account="alice", asset="USDC", amount_units=1_000 * USDC, as_of_ns=VALUATION_NS),
        config,
    )
    assert ok.state.balance("alice", "USDC") == (10_000 - 40 - 1_000) * USDC
    with pytest.raises(InputError, match="below initial margin") as error:
        apply(
            ok.state,
            Withdrawal(account="alice", asset="USDC", amount_units=1_000 * USDC, as_of_ns=VALUATION_NS),
            config,
        )
    assert error.value.field == "withdrawal.amount_units"


def test_funding_is_zero_sum() -> None:
    config, state = _venue()
    state = open_venue(config, ["a", "b", "c"], {t: {"USDC": 50_000 * USDC, "BTC": 10**8} for t in "abc"})
    for taker, maker, instrument, q in (
        ("a", "b", "BTC-PERP", 3),
        ("c", "b", "BTC-PERP", 1),
        ("a", "c", "BTC-INV", 777),
    ):
        state = apply(
            state,
            TradeFill(
                taker=taker,
                maker=maker,
                instrument=instrument,
                quantity=q,
                price=40_123.0,
                as_of_ns=VALUATION_NS,
            ),
            config,
        ).state
    for instrument in ("BTC-PERP", "BTC-INV"):
        applied = apply(
            state, FundingPayment(instrument=instrument, rate=0.000123457, as_of_ns=VALUATION_NS), config
        )
        deltas = balance_deltas(applied.postings)
        asset = "USDC" if instrument == "BTC-PERP" else "BTC"
        traders = sum(v for (a, k), v in deltas.items() if k == asset and not a.startswith("@"))
        residue = deltas.get((FEES, asset), 0)
        assert traders + residue == 0 and 0 <= residue <= 3
        assert deltas.get((CLEARING, asset), 0) == 0
        longs = sum(v for (a, k), v in deltas.items() if k == asset and v < 0 and not a.startswith("@"))
        assert longs < 0  # rate > 0: longs paid


def test_margin_call_hysteresis_and_deadline() -> None:
    params = MarginCallParams(
        warning_coverage=1.5, margin_call_coverage=1.2, exit_coverage=1.25, grace_ns=100
    )
    config = venue_config(margin_call=params)
    state = open_venue(
        config, ["alice", "bob"], {"alice": {"USDC": 8_100 * USDC}, "bob": {"USDC": 100_000 * USDC}}
    )
    state = apply(
        state,
        TradeFill(
            taker="alice",
            maker="bob",
            instrument="BTC-PERP",
            quantity=2,
            price=40_000.0,
            as_of_ns=VALUATION_NS,
        ),
        config,
    ).state
    # Equity 8,060 vs MM 4,000 (coverage 2.0): healthy. At 38,500: equity 5,060, MM 3,850: 1.31 warning.
    seen = []
    for t, price in enumerate((38_500.0, 38_200.0, 37_800.0, 38_100.0, 38_300.0), start=1):
        state = apply(
            state, PriceUpdate(index_prices={"BTC": price}, as_of_ns=VALUATION_NS + t), config
        ).state
        seen.append(state.status["alice"])
    # 38,200: 4,460 / 3,820 = 1.17 margin call; 37,800: 3,660 / 3,780 < 1 liquidation; 38,100: 1.12 > 1
    # but < exit 1.25: stays in liquidation (hysteresis); 38,300: 4,660 / 3,830 = 1.22 still below exit.
    assert seen == [
        AccountStatus.WARNING,
        AccountStatus.MARGIN_CALL,
        AccountStatus.LIQUIDATION,
        AccountStatus.LIQUIDATION,
        AccountStatus.LIQUIDATION,
    ]
    state = apply(
        state, PriceUpdate(index_prices={"BTC": 38_700.0}, as_of_ns=VALUATION_NS + 10), config
    ).state
    assert state.status["alice"] == AccountStatus.WARNING  # 5,460 / 3,870 = 1.41 >= exit
    # A margin call not cured by its deadline escalates.
    state = apply(
        state, PriceUpdate(index_prices={"BTC": 38_200.0}, as_of_ns=VALUATION_NS + 20), config
    ).state
    assert state.status["alice"] == AccountStatus.MARGIN_CALL
    assert state.call_deadline_ns["alice"] == VALUATION_NS + 120
    with pytest.raises(InputError, match="reduce-only"):
        apply(
            state,
            TradeFill(
                taker="alice",
                maker="bob",
                instrument="BTC-PERP",
                quantity=1,
                price=38_200.0,
                as_of_ns=VALUATION_NS + 21,
            ),
            config,
        )
    with pytest.raises(InputError, match="gated"):
        apply(
            state,
            Withdrawal(account="alice", asset="USDC", amount_units=1, as_of_ns=VALUATION_NS + 21),
            config,
        )
    late = apply(state, MarginCheck(as_of_ns=VALUATION_NS + 120), config)
    assert late.state.status["alice"] == AccountStatus.LIQUIDATION
    assert late.records[-1].detail["reason"] == "margin call not met by its deadline"


def test_replay_is_bit_for_bit() -> None:
    config, state = _venue()
    events = [
        TradeFill(
            taker="alice",
            maker="bob",
            instrument="BTC-INV",
            quantity=1234,
            price=40_001.5,
            as_of_ns=VALUATION_NS,
        ),
        PriceUpdate(index_prices={"BTC": 39_000.123}, as_of_ns=VALUATION_NS + 1),
        FundingPayment(instrument="BTC-INV", rate=-0.0003, as_of_ns=VALUATION_NS + 2),
        TradeFill(
            taker="bob",
            maker="alice",
            instrument="BTC-INV",
            quantity=2000,
            price=39_100.0,
            as_of_ns=VALUATION_NS + 3,
        ),
    ]
    assert replay(state, events, config).digest() == replay(state, events, config).digest()
    flipped = replay(state, events, config)
    assert flipped.positions[("alice", "BTC-INV")].quantity == -766  # 1234 long, sold 2000: flipped short


def test_a_checked_fill_or_withdrawal_refreshes_statuses_from_its_final_state() -> None:
    """A fill's or withdrawal's margin check views every trader on the final state (fees and
    the withdrawal posted) and the status refresh reads that view: it equals a fresh risk view of
    the new state, bit for bit."""
    config, state = _venue()
    events = [
        TradeFill(
            taker="alice",
            maker="bob",
            instrument="BTC-PERP",
            quantity=1,
            price=40_000.0,
            as_of_ns=VALUATION_NS,
        ),
        Withdrawal(account="alice", asset="USDC", amount_units=1_500 * USDC, as_of_ns=VALUATION_NS),
        TradeFill(
            taker="bob",
            maker="alice",
            instrument="BTC-PERP",
            quantity=-1,
            price=40_000.0,
            as_of_ns=VALUATION_NS,
        ),
    ]
    for event in events:
        applied = apply(state, event, config)
        fresh = risk_view(applied.state, config).result
        assert applied.view is not None
        for name in ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "available_usd"):
            assert getattr(applied.view.result, name).tobytes() == getattr(fresh, name).tobytes(), name
        state = applied.state
