"""The venue core on the in-memory store: open orders reserve IM, a price tick re-margins and
liquidates into the log, risk parameters are versioned (what-if, threshold, override, past
margins reproduce with the parameters then in force), the subscription resumes without gaps."""

from __future__ import annotations

import pytest

from crossmargin.core.ledger.postings import EXTERNAL
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import (
    CancelOrder,
    Deposit,
    Fill,
    PlaceOrder,
    RiskParameters,
    SetRiskParameters,
    UpdatePrices,
    Venue,
    Withdraw,
    WhatIfTrade,
)
from crossmargin.errors import InputError
from tests.adapters.sql.support import open_venue, replay


@pytest.fixture
def venue() -> Venue:
    return open_venue(MemoryEventStore())


def test_open_order_reserves_initial_margin_and_cancel_frees_it(venue: Venue) -> None:
    before = venue.account("directional")
    venue.execute(PlaceOrder(idempotency_key="o1", account="directional", order_id="A1", instrument="BTC-USDC-PERP", quantity=5, price=88_000.0))
    held = venue.account("directional")
    what_if = venue.what_if("directional", [WhatIfTrade(instrument="BTC-USDC-PERP", quantity=5, price=88_000.0)])
    expected = what_if["after"]["initial_margin_usd"] - what_if["before"]["initial_margin_usd"]
    assert held.reserved_usd == pytest.approx(expected, rel=1e-12)
    assert held.reserved_usd > 0
    assert held.available_usd == pytest.approx(before.available_usd - expected, rel=1e-9)
    # The reservation lowers what may be withdrawn, and a withdrawal of the old amount is refused.
    assert held.withdrawable_units["ETH"] < before.withdrawable_units["ETH"]
    with pytest.raises(InputError):
        venue.execute(Withdraw(idempotency_key="w", account="directional", asset="ETH", amount_units=before.withdrawable_units["ETH"]))
    venue.execute(CancelOrder(idempotency_key="c1", account="directional", order_id="A1"))
    freed = venue.account("directional")
    assert freed.reserved_usd == 0.0
    assert freed.available_usd == pytest.approx(before.available_usd, rel=1e-12)


def test_order_that_would_breach_im_is_refused(venue: Venue) -> None:
    with pytest.raises(InputError) as refused:
        venue.execute(PlaceOrder(idempotency_key="o1", account="directional", order_id="big", instrument="BTC-USDC-PERP", quantity=10_000, price=88_000.0))
    assert refused.value.field == "place_order.quantity"


def test_fill_against_an_order_consumes_it(venue: Venue) -> None:
    venue.execute(PlaceOrder(idempotency_key="o1", account="vol-seller", order_id="V1", instrument="BTC-USDC-PERP", quantity=-2, price=88_500.0))
    venue.execute(Fill(idempotency_key="f1", taker="directional", maker="vol-seller", instrument="BTC-USDC-PERP", quantity=2, price=88_500.0, order_id="V1"))
    assert venue.account("vol-seller").open_orders == []


def test_tick_calls_and_liquidates_into_the_log(venue: Venue) -> None:
    subscription = venue.subscribe(from_sequence=venue.last_sequence)
    ack = venue.execute(UpdatePrices(idempotency_key="p1", index_prices={"BTC": 60_000.0}))
    entries = venue.log(ack.sequence, 100)
    assert entries[0].kind == "update_prices"
    assert any(e.kind == "liquidation" for e in entries[1:])
    notes = subscription.next(timeout_s=1.0)
    kinds = [n.kind for n in notes]
    assert "status" in kinds and "liquidation_fill" in kinds
    assert [(n.sequence, n.index) for n in notes] == sorted((n.sequence, n.index) for n in notes)
    assert venue.state_digest() == replay(venue._store).digest()
    # Resuming from the middle delivers exactly what follows, no gap.
    middle = notes[len(notes) // 2].sequence
    resumed = venue.subscribe(from_sequence=middle - 1).next(timeout_s=0.1)
    assert resumed == [n for n in notes if n.sequence >= middle]


def test_risk_parameters_refused_above_threshold_then_overridden(venue: Venue) -> None:
    change = RiskParameters(margin={"option_margin": {"initial_rate": 0.30, "initial_floor_rate": 0.20, "maintenance_rate": 0.15}})
    preview = venue.preview_parameters(change)
    assert preview.margin_jump_fraction > venue.settings.max_margin_jump_fraction
    assert preview.refused_reason is not None
    before_seq = venue.last_sequence
    past = venue.margin_at("vol-seller", before_seq)
    with pytest.raises(InputError) as refused:
        venue.execute(SetRiskParameters(idempotency_key="r1", parameters=change))
    assert refused.value.field == "set_risk_parameters.override"
    assert venue.last_sequence == before_seq
    venue.execute(SetRiskParameters(idempotency_key="r2", parameters=change, override=True))
    now = venue.account("vol-seller")
    assert now.initial_margin_usd > past["initial_margin_usd"]
    # Past margins reproduce with the parameters then in force.
    assert venue.margin_at("vol-seller", before_seq) == past
    assert venue.margin_at("vol-seller", venue.last_sequence)["initial_margin_usd"] == pytest.approx(now.initial_margin_usd)


def test_withdrawable_is_what_a_withdrawal_accepts(venue: Venue) -> None:
    view = venue.account("directional")
    units = view.withdrawable_units["ETH"]
    assert 0 < units < view.balances_units["ETH"]  # IM binds before the balance does
    with pytest.raises(InputError):
        venue.execute(Withdraw(idempotency_key="w0", account="directional", asset="ETH", amount_units=units + 1))
    venue.execute(Withdraw(idempotency_key="w1", account="directional", asset="ETH", amount_units=units))
    assert venue.account("directional").available_usd >= 0.0
    assert sum(venue.balances("ETH").values()) == 0
    assert venue.balances("ETH")[EXTERNAL] < 0


def test_unknown_account_named_in_error(venue: Venue) -> None:
    with pytest.raises(InputError) as refused:
        venue.execute(Deposit(idempotency_key="d", account="nobody", asset="USDC", amount_units=1))
    assert refused.value.field == "deposit.account"


def test_deposit_fast_path_posts_what_the_ledger_posts(venue: Venue) -> None:
    """A deposit to a HEALTHY account skips the ledger's status refresh (it cannot change a
    status): its postings and the resulting state equal the ledger's own `apply`."""
    from crossmargin.core.ledger import events as ledger_events
    from crossmargin.core.ledger.apply import apply
    from crossmargin.engine.decide import decide

    state = venue._state
    config = venue.config
    fast = decide(state, config, Deposit(idempotency_key="x", account="basis-trader", asset="BTC", amount_units=123), state.time_ns)
    sub = state.sub_state(["basis-trader"], config.assets.symbols)
    core = apply(sub, ledger_events.Deposit(account="basis-trader", asset="BTC", amount_units=123, as_of_ns=state.time_ns), config)
    assert fast["postings"] == [[p.debit_account, p.credit_account, p.asset, p.amount_units, p.kind] for p in core.postings]
    assert core.state.status == sub.status
