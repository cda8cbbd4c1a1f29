"""The venue core on the in-memory store: open orders reserve IM, a price tick re-margins and
liquidates into the log, risk parameters are versioned (what-if, threshold, override, past
margins reproduce with the parameters then in force), the subscription resumes without gaps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crossmargin.core.ledger.postings import EXTERNAL, INSURANCE
from crossmargin.core.ledger.state import AccountStatus, book_of, market_of
from crossmargin.core.margin import CrossMargin
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import (
    CancelOrder,
    Deposit,
    Fill,
    OpenAccount,
    PlaceOrder,
    RiskParameters,
    SetRiskParameters,
    UpdatePrices,
    Venue,
    WhatIfTrade,
    Withdraw,
)
from crossmargin.engine.venue.monitor import Monitor
from crossmargin.errors import InputError
from tests.adapters.sql.support import open_venue, replay


@pytest.fixture
def venue() -> Venue:
    return open_venue(MemoryEventStore())


def test_open_order_reserves_initial_margin_and_cancel_frees_it(venue: Venue) -> None:
    before = venue.account("directional")
    venue.execute(
        PlaceOrder(
            idempotency_key="o1",
            account="directional",
            order_id="A1",
            instrument="BTC-USDC-PERP",
            quantity=5,
            price=88_000.0,
        )
    )
    held = venue.account("directional")
    what_if = venue.what_if(
        "directional", [WhatIfTrade(instrument="BTC-USDC-PERP", quantity=5, price=88_000.0)]
    )
    expected = what_if["after"]["initial_margin_usd"] - what_if["before"]["initial_margin_usd"]
    assert held.reserved_usd == pytest.approx(expected, rel=1e-12)
    assert held.reserved_usd > 0
    assert held.available_usd == pytest.approx(before.available_usd - expected, rel=1e-9)
    # The reservation lowers what may be withdrawn, and a withdrawal of the old amount is refused.
    assert held.withdrawable_units["ETH"] < before.withdrawable_units["ETH"]
    with pytest.raises(InputError):
        venue.execute(
            Withdraw(
                idempotency_key="w",
                account="directional",
                asset="ETH",
                amount_units=before.withdrawable_units["ETH"],
            )
        )
    venue.execute(CancelOrder(idempotency_key="c1", account="directional", order_id="A1"))
    freed = venue.account("directional")
    assert freed.reserved_usd == 0.0
    assert freed.available_usd == pytest.approx(before.available_usd, rel=1e-12)


def test_order_that_would_breach_im_is_refused(venue: Venue) -> None:
    with pytest.raises(InputError) as refused:
        venue.execute(
            PlaceOrder(
                idempotency_key="o1",
                account="directional",
                order_id="big",
                instrument="BTC-USDC-PERP",
                quantity=10_000,
                price=88_000.0,
            )
        )
    assert refused.value.field == "place_order.quantity"


def test_fill_against_an_order_consumes_it(venue: Venue) -> None:
    venue.execute(
        PlaceOrder(
            idempotency_key="o1",
            account="vol-seller",
            order_id="V1",
            instrument="BTC-USDC-PERP",
            quantity=-2,
            price=88_500.0,
        )
    )
    venue.execute(
        Fill(
            idempotency_key="f1",
            taker="directional",
            maker="vol-seller",
            instrument="BTC-USDC-PERP",
            quantity=2,
            price=88_500.0,
            order_id="V1",
        )
    )
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
    change = RiskParameters(
        margin={"option_margin": {"initial_rate": 0.30, "initial_floor_rate": 0.20, "maintenance_rate": 0.15}}
    )
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
    assert venue.margin_at("vol-seller", venue.last_sequence)["initial_margin_usd"] == pytest.approx(
        now.initial_margin_usd
    )


def test_withdrawable_is_what_a_withdrawal_accepts(venue: Venue) -> None:
    view = venue.account("directional")
    units = view.withdrawable_units["ETH"]
    assert 0 < units < view.balances_units["ETH"]  # IM binds before the balance does
    with pytest.raises(InputError):
        venue.execute(
            Withdraw(idempotency_key="w0", account="directional", asset="ETH", amount_units=units + 1)
        )
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
    from crossmargin.engine.venue.decide import decide

    state = venue._state
    config = venue.config
    fast = decide(
        state,
        config,
        Deposit(idempotency_key="x", account="basis-trader", asset="BTC", amount_units=123),
        state.time_ns,
    )
    sub = state.sub_state(["basis-trader"], config.assets.symbols)
    core = apply(
        sub,
        ledger_events.Deposit(account="basis-trader", asset="BTC", amount_units=123, as_of_ns=state.time_ns),
        config,
    )
    assert fast["postings"] == [
        [p.debit_account, p.credit_account, p.asset, p.amount_units, p.kind] for p in core.postings
    ]
    assert core.state.status == sub.status


def test_payload_bytes_are_the_canonical_json_of_the_record(venue: Venue) -> None:
    """The hot path assembles a record's bytes from the body's; they equal canonical_json of the
    decoded payload, and the body hash equals `body_sha256` of the command."""
    from crossmargin.engine.journal import canonical_json
    from crossmargin.engine.venue.commands import body_sha256

    command = Deposit(idempotency_key="bytes", account="vol-seller", asset="USDC", amount_units=42)
    ack = venue.execute(command)
    record = venue.records(ack.sequence, 1)[0]
    assert record.payload == canonical_json(record.decoded())
    assert record.body_sha256 == body_sha256(command)
    assert record.decoded()["command"] == {"account": "vol-seller", "asset": "USDC", "amount_units": 42}


def test_monitor_sees_every_committed_command_before_a_tick(venue: Venue) -> None:
    """The whole-venue RiskEngine equals the ledger's own margin of each account after commands
    and ticks (accounts touched by commands are fed to it before the next tick)."""
    venue.execute(Deposit(idempotency_key="d1", account="vol-seller", asset="BTC", amount_units=10**8))
    venue.execute(Withdraw(idempotency_key="w1", account="basis-trader", asset="USDC", amount_units=10**10))
    venue.execute(UpdatePrices(idempotency_key="p0", index_prices={"BTC": 88_000.0}))  # bad debt
    venue.execute(Deposit(idempotency_key="d2", account="basis-trader", asset="BTC", amount_units=10**7))
    venue.execute(
        Fill(
            idempotency_key="f1",
            taker="directional",
            maker="vol-seller",
            instrument="ETH-USDC-PERP",
            quantity=3,
            price=2_980.0,
        )
    )
    venue.execute(UpdatePrices(idempotency_key="p1", index_prices={"ETH": 3_050.0}))
    monitor = venue._monitor
    assert monitor is not None
    result = monitor.engine.result
    for account in ("vol-seller", "basis-trader", "directional"):
        row = monitor.row_of[account]
        view = venue.account(account)
        assert float(result.equity_usd[row]) == pytest.approx(view.equity_usd, rel=1e-9)
        assert float(result.maintenance_margin_usd[row]) == pytest.approx(
            view.maintenance_margin_usd, rel=1e-9
        )


def test_accounts_opened_between_ticks_grow_the_monitor_not_rebuild_it(venue: Venue) -> None:
    """An OpenAccount adds an empty row to the running monitor (a rebuild cost the next tick
    O(accounts)); after the new accounts fund and trade and a tick, every account's figures and
    status equal those of a monitor built afresh from the state, bit for bit."""
    venue.execute(UpdatePrices(idempotency_key="p0", index_prices={"BTC": 88_400.0}))
    monitor = venue._monitor
    assert monitor is not None
    for name in ("zeta-new", "alpha-new"):  # one sorts after every trader, one before
        venue.execute(OpenAccount(idempotency_key=f"open-{name}", account=name))
        venue.execute(Deposit(idempotency_key=f"d-{name}", account=name, asset="USDC", amount_units=10**11))
    venue.execute(
        Fill(
            idempotency_key="f-new",
            taker="alpha-new",
            maker="zeta-new",
            instrument="BTC-USDC-PERP",
            quantity=2,
            price=88_400.0,
        )
    )
    venue.execute(UpdatePrices(idempotency_key="p1", index_prices={"BTC": 86_000.0}))
    assert venue._monitor is monitor  # grown, not rebuilt
    assert monitor.account_ids[-2:] == ("zeta-new", "alpha-new")
    state, config = venue._state, venue.config
    sub = state.sub_state(state.traders, config.assets.symbols)
    fresh = Monitor(book_of(sub, config), market_of(sub, config), model=CrossMargin(config.margin))
    mine = [monitor.row_of[a] for a in state.traders]
    theirs = [fresh.row_of[a] for a in state.traders]
    for name in ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "margin_ratio", "bankrupt"):
        np.testing.assert_array_equal(
            getattr(monitor.engine.result, name)[mine],
            getattr(fresh.engine.result, name)[theirs],
            err_msg=name,
        )
    assert [int(monitor.statuses[r]) for r in mine] == [int(state.status[a]) for a in state.traders]
    assert monitor.engine.result.initial_margin_usd[monitor.row_of["alpha-new"]] > 0.0


def test_monitor_statuses_follow_its_own_row_order(venue: Venue) -> None:
    """The monitor's book lists the traders sorted; the statuses and deadlines it starts from must
    be each account's own (a venue whose traders are not in sorted order once gave vol-seller
    near-liquidation's margin call)."""
    # The desk book opens with near-liquidation (last of four traders) in margin call.
    monitor = venue._ensure_monitor()
    assert list(monitor.account_ids) != list(venue._state.traders)  # the case that went wrong
    for account in monitor.account_ids:
        assert int(monitor.statuses[monitor.row_of[account]]) == int(venue._state.status[account])
    assert {int(s) for s in monitor.statuses} != {0}  # some account is in margin call: not vacuous


def test_whole_book_is_one_consistent_read_of_the_committed_venue(venue: Venue) -> None:
    """`whole_book` at one sequence: the engine's figures are each account's (as `account` reports
    it, to the kernel's rounding), statuses are the committed ones, the system balances the
    insurance fund's units, and the result arrays a copy (a later tick leaves an old read as it was)."""
    prices = venue.prices()
    venue.execute(UpdatePrices(idempotency_key="p1", index_prices={"BTC": prices["BTC"] * 0.95}))
    read = venue.whole_book()
    assert read.sequence == venue.last_sequence
    assert read.prices["BTC"].price_usd == prices["BTC"] * 0.95
    for row, account in enumerate(read.book.account_ids):
        view = venue.account(account)
        assert read.result.equity_usd[row] == pytest.approx(view.equity_usd, rel=1e-9)
        assert read.result.maintenance_margin_usd[row] == pytest.approx(view.maintenance_margin_usd, rel=1e-9)
        assert AccountStatus(int(read.status_code[row])).name.lower() == view.status
    fund = venue.insurance_fund()
    assert {k: read.system_units[(INSURANCE, k)] for k in fund} == fund
    equity = read.result.equity_usd.copy()
    venue.execute(UpdatePrices(idempotency_key="p2", index_prices={"BTC": prices["BTC"] * 0.90}))
    assert np.array_equal(read.result.equity_usd, equity)  # the old read is a frozen copy
    assert venue.whole_book().sequence > read.sequence


def test_price_states_say_when_each_price_was_quoted_and_whether_it_is_stale() -> None:
    """Each price carries the time of the record that set it (exact): an UpdatePrices' time, or
    the genesis record's for a price the venue opened with; past the venue's `max_price_age_s`
    without a quote it is stale."""
    venue = open_venue(MemoryEventStore(), max_price_age_s=0.5)
    opened = venue.whole_book().time_ns
    prices = venue.prices()
    venue.execute(UpdatePrices(idempotency_key="p1", index_prices={"BTC": prices["BTC"] * 1.01}))
    states = venue.price_states()
    btc, eth = states["BTC"], states["ETH"]
    assert btc.exact and btc.quoted_ns > opened and btc.price_usd == prices["BTC"] * 1.01
    assert eth.exact and eth.quoted_ns == opened and eth.price_usd == prices["ETH"]
    assert eth.age_s > btc.age_s >= 0.0  # the test clock steps 1 ms per reading
    assert btc.status == eth.status == "valid"  # well under 0.5 s of the stepping clock
    for n in range(600):  # 600 clock readings of 1 ms: past the 0.5 s limit
        venue.execute(UpdatePrices(idempotency_key=f"sol{n}", index_prices={"SOL": prices["SOL"] + n + 1}))
    states = venue.price_states()
    assert states["BTC"].status == "stale" and states["BTC"].age_s > 0.5
    assert states["SOL"].status == "valid"
    venue.close()


def test_the_oracle_s_word_on_a_price_is_kept_replayed_and_checked() -> None:
    """UpdatePrices carries the oracle's status word and source band per symbol, with or without a
    new price: a held SOL keeps its price and says held; the words survive a replay of the log
    (they are log effects); an unknown word or a negative band
    is refused naming the field."""
    store = MemoryEventStore()
    venue = open_venue(store)
    sol = venue.prices()["SOL"]
    prices = venue.prices()
    venue.execute(
        UpdatePrices(
            idempotency_key="held",
            index_prices={},
            oracle_status={"SOL": "held", "BTC": "ok"},
            oracle_band_fraction={"SOL": 0.15},
        )
    )
    states = venue.price_states()
    assert states["SOL"].status == "held" and states["SOL"].price_usd == sol
    assert states["SOL"].band_fraction == 0.15 and states["BTC"].oracle == "ok"
    assert venue.prices() == prices  # no price moved
    for field, command in (
        (
            "update_prices.oracle_status.SOL",
            UpdatePrices(idempotency_key="w", index_prices={}, oracle_status={"SOL": "valid"}),
        ),
        (
            "update_prices.oracle_band_fraction.SOL",
            UpdatePrices(idempotency_key="b", index_prices={}, oracle_band_fraction={"SOL": -0.1}),
        ),
        (
            "update_prices.oracle_status",
            UpdatePrices(idempotency_key="u", index_prices={}, oracle_status={"DOGE": "ok"}),
        ),
    ):
        with pytest.raises(InputError) as raised:
            venue.execute(command)
        assert raised.value.field == field
    venue.close()
    reopened = open_venue(store)
    again = reopened.price_states()
    assert again["SOL"].status == "held" and again["SOL"].band_fraction == 0.15
    reopened.close()


def test_a_detached_state_for_a_snapshot_keeps_price_times_and_the_oracle_s_word() -> None:
    """The snapshot thread encodes `VenueState.detached()`: it once left the price times out (the
    snapshot-off-the-writer and the price-times changes landed together), so a venue restarted
    from a snapshot said every price's age was unknown."""
    venue = open_venue(MemoryEventStore())
    venue.execute(
        UpdatePrices(idempotency_key="p", index_prices={"BTC": 90_000.0}, oracle_status={"ETH": "held"})
    )
    state = venue._state  # the fold itself: what the snapshot thread copies
    assert state.price_ns and state.oracle_status == {"ETH": "held"}
    assert state.detached().to_dict() == state.to_dict()
    venue.close()


@pytest.mark.parametrize(
    "command",
    [
        Fill(
            idempotency_key="f",
            taker="basis-trader",
            maker="vol-seller",
            instrument="BTC-USDC-PERP",
            quantity=1,
            price=90_000.0,
        ),
        Withdraw(idempotency_key="w", account="vol-seller", asset="USDC", amount_units=1_000),
    ],
    ids=["fill", "withdraw"],
)
def test_margin_rows_read_from_the_ledgers_own_view_equal_a_fresh_view(
    venue: Venue, command: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fill's or a withdrawal's margin rows reuse the view the ledger's status refresh took
    (`Applied.view`: the decision takes no view of its own); they equal, bit for bit, a risk view
    taken afresh on the final state."""
    from crossmargin.core.ledger.state import Position, risk_view
    from crossmargin.engine.venue import decide as decide_module

    def no_second_view(*args: object, **kwargs: object) -> None:
        raise AssertionError("the decision took a view the ledger had already taken")

    state, config = venue._state, venue.config
    with monkeypatch.context() as patch:
        patch.setattr(decide_module, "risk_view", no_second_view)
        effects = decide_module.decide(state, config, command, state.time_ns)  # type: ignore[arg-type]
    rows = effects["margin"]
    traders = [row[0] for row in rows]
    after = venue._state.sub_state(traders, config.assets.symbols)
    # The decision is pure: apply its postings to a copy of the traders' balances to get the
    # final state the rows describe, then margin it without any reuse.
    balances = dict(after.balances)
    for debit, credit, asset, units, _kind in effects["postings"]:
        for account, sign in ((debit, -1), (credit, 1)):
            if account in traders:
                balances[(account, asset)] = balances.get((account, asset), 0) + sign * units
    positions = dict(after.positions)
    for account, instrument, quantity, entry in effects.get("positions", ()):
        if account in traders:
            if quantity == 0:
                positions.pop((account, instrument), None)
            else:
                positions[(account, instrument)] = Position(quantity, entry)
    final = dataclasses.replace(after, balances={k: v for k, v in balances.items() if v}, positions=positions)
    fresh = risk_view(final, config, tuple(traders)).result
    assert [row[1:4] for row in rows] == [
        [
            float(fresh.equity_usd[n]),
            float(fresh.initial_margin_usd[n]),
            float(fresh.maintenance_margin_usd[n]),
        ]
        for n in range(len(traders))
    ]


def _resting(venue: Venue) -> None:
    """Risk-increasing resting orders: three of one size and one of another for `directional`,
    one for `basis-trader` (the maker of the fill below)."""
    orders = [
        ("directional", "D1", "BTC-USDC-PERP", 2),
        ("directional", "D2", "BTC-USDC-PERP", 2),
        ("directional", "D3", "BTC-USDC-PERP", 2),
        ("directional", "D4", "ETH-USDC-PERP", -3),
        ("basis-trader", "B1", "BTC-USDC-PERP", -2),
    ]
    for account, order_id, instrument, quantity in orders:
        price = 88_000.0 if instrument.startswith("BTC") else 3_000.0
        venue.execute(
            PlaceOrder(
                idempotency_key=f"rest-{order_id}",
                account=account,
                order_id=order_id,
                instrument=instrument,
                quantity=quantity,
                price=price,
            )
        )


@pytest.mark.parametrize(
    "command",
    [
        PlaceOrder(
            idempotency_key="p",
            account="directional",
            order_id="D5",
            instrument="BTC-USDC-PERP",
            quantity=2,
            price=87_900.0,
        ),
        Withdraw(idempotency_key="w", account="directional", asset="ETH", amount_units=10**6),
        Fill(
            idempotency_key="f",
            taker="directional",
            maker="basis-trader",
            instrument="BTC-USDC-PERP",
            quantity=1,
            price=88_000.0,
            order_id="B1",
        ),
    ],
    ids=["place_order", "withdraw", "fill_of_an_order"],
)
def test_a_decision_reserves_once_per_checked_trader_and_its_rows_say_what_the_venue_then_holds(
    venue: Venue, command: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reservation a check computes is the one its margin row reports (one kernel call per
    trader whose orders it reads, not one for the check and another for the row; a new order's
    margin and reservation share one), and the row equals, bit for bit, the equity, IM, MM and
    reservation the venue reports once the command is folded."""
    from crossmargin.engine.venue import decide as decide_module

    _resting(venue)
    calls: list[str] = []

    def counting(name: str) -> Callable[..., Any]:
        counted = getattr(decide_module, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return counted(*args, **kwargs)

        return call

    state, config = venue._state, venue.config
    with monkeypatch.context() as patch:
        for name in ("reserved_im_of", "margin_and_reserved"):  # a check's, a new order's
            patch.setattr(decide_module, name, counting(name))
        effects = decide_module.decide(state, config, command, state.time_ns)  # type: ignore[arg-type]
    rows = {row[0]: row[1:] for row in effects["margin"]}
    assert rows["directional"][3] > 0.0
    assert len(calls) == sum(1 for trader in rows if state.has_orders(trader))
    venue.settings = dataclasses.replace(venue.settings, fill_lane=False)  # the generic decision
    venue.execute(command)  # type: ignore[arg-type]
    views = {trader: venue.account(trader) for trader in rows}
    assert rows == {
        trader: [v.equity_usd, v.initial_margin_usd, v.maintenance_margin_usd, v.reserved_usd]
        for trader, v in views.items()
    }
