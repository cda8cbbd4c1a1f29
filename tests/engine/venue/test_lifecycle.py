"""The contract lifecycle on the live venue: funding, borrow interest and expiry settlement are
decided by the ledger core's own events (the postings equal `core.ledger.apply`'s to the unit),
conserve every asset, are idempotent, reproduce by replay and recovery, close an expired
instrument for good, and refuse bad input naming the field."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from crossmargin.core.ledger import events as ledger_events
from crossmargin.core.ledger.apply import apply
from crossmargin.core.ledger.postings import FEES
from crossmargin.core.ledger.state import AccountStatus, LedgerConfig, LedgerState
from crossmargin.engine.memory import MemoryEventStore, SteppingClock
from crossmargin.engine.ports import EventStore
from crossmargin.engine.venue import (
    AccrueInterest,
    Fill,
    PlaceOrder,
    SettleExpiry,
    SettleFunding,
    UpdatePrices,
    Venue,
)
from crossmargin.errors import InputError
from tests.adapters.sql.support import connect, desk_genesis, replay

FUTURE = "BTC-27MAR26"
FUTURE_EXPIRY_NS = 1_774_598_400_000_000_000  # 27 Mar 2026 08:00 UTC (Deribit)
AFTER_EXPIRIES_NS = FUTURE_EXPIRY_NS + 1
ASSETS = ("USDC", "USDT", "BTC", "ETH")
HOUR_NS = 3_600 * 10**9


def open_at(store: EventStore, start_ns: int = AFTER_EXPIRIES_NS) -> Venue:
    return Venue.open(store, desk_genesis(), clock=SteppingClock(start_ns=start_ns, step_ns=1_000_000))


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def venue(store: MemoryEventStore) -> Any:
    with open_at(store) as v:
        yield v


def whole_ledger(venue: Venue, store: MemoryEventStore) -> tuple[LedgerState, LedgerConfig]:
    """Every account of the venue, traders and system accounts (the liquidator's book too), as one
    core LedgerState: the fold of the log, independent of the venue's sub-states."""
    folded = replay(store)
    config = venue.config
    ledger = folded.sub_state(folded.traders, config.assets.symbols)
    return dataclasses.replace(ledger, positions=dict(folded.positions)), config


def _effects(store: MemoryEventStore, sequence: int) -> dict[str, Any]:
    record = next(r for r in store.records if r.sequence == sequence)
    effects: dict[str, Any] = record.decoded()["effects"]
    return effects


def _conserved(venue: Venue) -> None:
    for asset in ASSETS:
        assert sum(venue.balances(asset).values()) == 0, asset


def test_funding_postings_equal_the_ledger_core_and_are_zero_sum(
    venue: Venue, store: MemoryEventStore
) -> None:
    rate = 0.0001  # 1 bp per 8 h
    before = {a: venue.balances("USDC").get(a, 0) for a in ("basis-trader", "@liquidator", FEES)}
    ledger, config = whole_ledger(venue, store)
    ack = venue.execute(SettleFunding(idempotency_key="f1", instrument="BTC-USDC-PERP", funding_rate=rate))
    expected = _core_postings_at(
        ledger,
        config,
        ledger_events.FundingPayment(instrument="BTC-USDC-PERP", rate=rate, as_of_ns=ack.as_of_ns),
    )
    effects = _effects(store, ack.sequence)
    assert effects["postings"] == expected
    # basis-trader is short 10 contracts of 1 BTC at the BTC index 88,528.93 (no perp mark set):
    # it receives 10 × 88,528.93 × 1e-4 = 88.528930 USDC, rounded down; the long (@liquidator)
    # pays 88.528931 rounded up (float product 88.52893000000001); the 1-unit residue goes to fees.
    after = venue.balances("USDC")
    assert after["basis-trader"] - before["basis-trader"] == 88_528_930
    assert after["@liquidator"] - before["@liquidator"] == -88_528_931
    assert after.get(FEES, 0) - before[FEES] == 1
    paid = sum(u for d, _c, _k, u, kind in expected if kind == "funding" and not d.startswith("@clearing"))
    received = sum(u for d, _c, _k, u, kind in expected if kind == "funding" and d == "@clearing")
    residue = sum(u for *_, u, kind in expected if kind == "funding_residue")
    assert paid == received + residue and 0 <= residue <= 2  # one unit of rounding per position
    _conserved(venue)


def _core_postings_at(ledger: Any, config: Any, event: ledger_events.Event) -> list[list[Any]]:
    applied = apply(ledger, event, config)
    return [[p.debit_account, p.credit_account, p.asset, p.amount_units, p.kind] for p in applied.postings]


def test_negative_funding_rate_makes_shorts_pay(venue: Venue, store: MemoryEventStore) -> None:
    before = venue.balances("USDC")["basis-trader"]
    venue.execute(SettleFunding(idempotency_key="f-", instrument="BTC-USDC-PERP", funding_rate=-0.0001))
    assert venue.balances("USDC")["basis-trader"] - before == -88_528_931  # the short pays, rounded up
    _conserved(venue)


def test_inverse_perpetual_funding_is_paid_in_coin(venue: Venue, store: MemoryEventStore) -> None:
    ledger, config = whole_ledger(venue, store)
    ack = venue.execute(SettleFunding(idempotency_key="fi", instrument="BTC-PERPETUAL", funding_rate=0.0001))
    expected = _core_postings_at(
        ledger,
        config,
        ledger_events.FundingPayment(instrument="BTC-PERPETUAL", rate=0.0001, as_of_ns=ack.as_of_ns),
    )
    effects = _effects(store, ack.sequence)
    assert effects["postings"] == expected
    # near-liquidation is long 60,000 × 10 USD contracts: pays 600,000 USD / 88,528.93 × 1e-4 BTC.
    owed = 60_000 * 10 / 88_528.93 * 1e-4
    paid = [u for d, _c, k, u, kind in expected if d == "near-liquidation" and kind == "funding"]
    assert k_of(expected, "near-liquidation") == "BTC"
    assert paid == [math.ceil(owed * 1e8)]
    _conserved(venue)


def k_of(postings: list[list[Any]], account: str) -> str:
    return next(str(k) for d, _c, k, _u, _kind in postings if d == account)


def _borrow(venue: Venue) -> None:
    """basis-trader buys back its 10 BTC-USDC-PERP short at 110,000 (entry 88,650): a realised loss
    of 213,500 USDC against 150,000 held leaves it borrowing 63,500 USDC (plus the taker fee)."""
    venue.execute(
        Fill(
            idempotency_key="close",
            taker="basis-trader",
            maker="vol-seller",
            instrument="BTC-USDC-PERP",
            quantity=10,
            price=110_000.0,
        )
    )


def test_borrow_interest_equals_the_ledger_core_and_goes_to_fees(
    venue: Venue, store: MemoryEventStore
) -> None:
    _borrow(venue)
    owed = venue.balances("USDC")["basis-trader"]
    assert owed < -63_500 * 10**6
    ledger, config = whole_ledger(venue, store)
    fees_before = venue.balances("USDC").get(FEES, 0)
    ack = venue.execute(AccrueInterest(idempotency_key="i-1h", elapsed_ns=HOUR_NS))
    expected = _core_postings_at(
        ledger, config, ledger_events.BorrowInterest(elapsed_ns=HOUR_NS, as_of_ns=ack.as_of_ns)
    )
    assert _effects(store, ack.sequence)["postings"] == expected
    # 9 % APR on the USDC borrowed for one hour of a 365-day year (ACT/365), rounded up to a
    # micro-USDC.
    interest = math.ceil(-owed / 1e6 * 0.09 * HOUR_NS / (365 * 24 * HOUR_NS) * 1e6)
    assert expected == [["basis-trader", FEES, "USDC", interest, "borrow_interest"]]
    assert venue.balances("USDC")["basis-trader"] == owed - interest
    assert venue.balances("USDC")[FEES] == fees_before + interest
    _conserved(venue)


def test_future_expiry_settles_at_the_price_and_closes_the_instrument(
    venue: Venue, store: MemoryEventStore
) -> None:
    ledger, config = whole_ledger(venue, store)
    btc_before = venue.balances("BTC")["basis-trader"]
    ack = venue.execute(SettleExpiry(idempotency_key="x", instrument=FUTURE, settlement_price=90_000.0))
    expected = _core_postings_at(
        ledger,
        config,
        ledger_events.Expiry(instrument=FUTURE, settlement_price=90_000.0, as_of_ns=ack.as_of_ns),
    )
    effects = _effects(store, ack.sequence)
    assert effects["postings"] == expected
    # Inverse future: short 45,000 × 10 USD at 90,100 settles 450,000 × (1/90,000 − 1/90,100) BTC
    # to the short = 0.00554938... BTC, rounded down for a payout.
    gain = -45_000 * 10 * (1 / 90_100 - 1 / 90_000)
    assert venue.balances("BTC")["basis-trader"] - btc_before == math.floor(gain * 1e8)
    assert FUTURE not in venue.account("basis-trader").positions
    assert effects["expired"] == [FUTURE]
    _conserved(venue)
    with pytest.raises(InputError) as fill:
        venue.execute(
            Fill(
                idempotency_key="late",
                taker="basis-trader",
                maker="vol-seller",
                instrument=FUTURE,
                quantity=1,
                price=90_000.0,
            )
        )
    assert fill.value.field == "fill.instrument" and "expired" in fill.value.problem
    with pytest.raises(InputError) as mark:
        venue.execute(UpdatePrices(idempotency_key="m", index_prices={}, mark_prices={FUTURE: 90_000.0}))
    assert mark.value.field == "prices.mark_prices" and "expired" in mark.value.problem
    with pytest.raises(InputError) as again:
        venue.execute(SettleExpiry(idempotency_key="x2", instrument=FUTURE, settlement_price=90_000.0))
    assert again.value.field == "settle_expiry.instrument" and "expired" in again.value.problem
    with pytest.raises(InputError) as order:
        venue.execute(
            PlaceOrder(
                idempotency_key="o",
                account="basis-trader",
                order_id="o",
                instrument=FUTURE,
                quantity=1,
                price=90_000.0,
            )
        )
    assert order.value.field == "place_order.instrument"


def test_option_expiry_pays_intrinsic_value_and_cancels_open_orders(
    venue: Venue, store: MemoryEventStore
) -> None:
    option = "ETH-30JAN26-3400-C"
    venue.execute(
        PlaceOrder(
            idempotency_key="o",
            account="directional",
            order_id="call",
            instrument=option,
            quantity=1,
            price=0.01,
        )
    )
    ledger, config = whole_ledger(venue, store)
    eth_before = venue.balances("ETH")["vol-seller"]
    ack = venue.execute(SettleExpiry(idempotency_key="x", instrument=option, settlement_price=3_600.0))
    expected = _core_postings_at(
        ledger,
        config,
        ledger_events.Expiry(instrument=option, settlement_price=3_600.0, as_of_ns=ack.as_of_ns),
    )
    effects = _effects(store, ack.sequence)
    assert effects["postings"] == expected
    # vol-seller is short 60 inverse calls of 1 ETH struck at 3,400: pays 60 × 200 / 3,600 ETH.
    assert venue.balances("ETH")["vol-seller"] - eth_before == -math.ceil(60 * 200 / 3_600 * 1e8)
    assert effects["orders"] == [["call", "directional", option, 0, 0.01]]
    assert venue.account("directional").open_orders == []
    assert venue.account("directional").reserved_usd == 0.0
    _conserved(venue)


def test_replay_and_recovery_reproduce_the_state_after_the_lifecycle(store: MemoryEventStore) -> None:
    with open_at(store) as venue:
        _borrow(venue)
        venue.execute(SettleFunding(idempotency_key="f", instrument="ETH-USDC-PERP", funding_rate=0.0003))
        venue.execute(AccrueInterest(idempotency_key="i", elapsed_ns=8 * HOUR_NS))
        venue.execute(SettleExpiry(idempotency_key="x", instrument=FUTURE, settlement_price=87_000.0))
        venue.execute(
            SettleExpiry(idempotency_key="o", instrument="BTC-30JAN26-80000-P", settlement_price=70_000.0)
        )
        duplicate = venue.execute(AccrueInterest(idempotency_key="i", elapsed_ns=8 * HOUR_NS))
        assert duplicate.duplicate
        digest = venue.state_digest()
        sequence = venue.last_sequence
        kinds = [r.kind for r in store.records]
    assert kinds.count("accrue_interest") == 1
    assert {"settle_funding", "accrue_interest", "settle_expiry"} <= set(kinds)
    assert replay(store).digest() == digest
    with open_at(store) as recovered:
        assert recovered.state_digest() == digest
        assert recovered.last_sequence == sequence
        assert recovered.recovery.problems == ()
        with pytest.raises(InputError):
            recovered.execute(
                Fill(
                    idempotency_key="late",
                    taker="basis-trader",
                    maker="vol-seller",
                    instrument=FUTURE,
                    quantity=1,
                    price=90_000.0,
                )
            )


@pytest.mark.parametrize(
    ("command", "field", "words"),
    [
        (
            SettleFunding(idempotency_key="b", instrument="NOPE", funding_rate=0.0001),
            "settle_funding.instrument",
            "unknown",
        ),
        (
            SettleFunding(idempotency_key="b", instrument=FUTURE, funding_rate=0.0001),
            "settle_funding.instrument",
            "not a perpetual",
        ),
        (
            SettleFunding(idempotency_key="b", instrument="BTC-USDC-PERP", funding_rate=math.nan),
            "settle_funding.funding_rate",
            "finite",
        ),
        (
            SettleFunding(idempotency_key="b", instrument="BTC-USDC-PERP", funding_rate=math.inf),
            "settle_funding.funding_rate",
            "finite",
        ),
        (
            SettleFunding(idempotency_key="b", instrument="BTC-USDC-PERP", funding_rate=1.5),
            "settle_funding.funding_rate",
            "< 1",
        ),
        (AccrueInterest(idempotency_key="b", elapsed_ns=0), "accrue_interest.elapsed_ns", "positive"),
        (AccrueInterest(idempotency_key="b", elapsed_ns=-5), "accrue_interest.elapsed_ns", "positive"),
        (AccrueInterest(idempotency_key="b", elapsed_ns=1.5), "accrue_interest.elapsed_ns", "integer"),  # type: ignore[arg-type]
        (
            SettleExpiry(idempotency_key="b", instrument="NOPE", settlement_price=1.0),
            "settle_expiry.instrument",
            "unknown",
        ),
        (
            SettleExpiry(idempotency_key="b", instrument="BTC-USDC-PERP", settlement_price=1.0),
            "settle_expiry.instrument",
            "does not expire",
        ),
        (
            SettleExpiry(idempotency_key="b", instrument=FUTURE, settlement_price=math.nan),
            "settle_expiry.settlement_price",
            "finite",
        ),
        (
            SettleExpiry(idempotency_key="b", instrument=FUTURE, settlement_price=0.0),
            "settle_expiry.settlement_price",
            "> 0",
        ),
        # 1/settle overflows float64: no integer amount (the inverse future pays 450,000 / settle).
        (
            SettleExpiry(idempotency_key="b", instrument=FUTURE, settlement_price=5e-324),
            "settle_expiry.settlement_price",
            "finite",
        ),
        # 450,000 / 1e-9 BTC: finite, but more units than a signed 64-bit posting holds.
        (
            SettleExpiry(idempotency_key="b", instrument=FUTURE, settlement_price=1e-9),
            "settle_expiry.settlement_price",
            "above",
        ),
    ],
)
def test_bad_lifecycle_input_is_refused_naming_the_field(
    venue: Venue, command: Any, field: str, words: str
) -> None:
    sequence, digest = venue.last_sequence, venue.state_digest()
    with pytest.raises(InputError) as refused:
        venue.execute(command)
    assert refused.value.field == field
    assert words in refused.value.problem
    assert (venue.last_sequence, venue.state_digest()) == (sequence, digest)


def test_expiry_before_the_instruments_expiry_time_is_refused(store: MemoryEventStore) -> None:
    with open_at(store, start_ns=FUTURE_EXPIRY_NS - HOUR_NS) as venue:
        with pytest.raises(InputError) as early:
            venue.execute(SettleExpiry(idempotency_key="x", instrument=FUTURE, settlement_price=90_000.0))
        assert early.value.field == "settle_expiry.instrument"
        assert f"expires at {FUTURE_EXPIRY_NS} ns" in early.value.problem
        assert venue.last_sequence == 1


def test_funding_that_breaks_an_account_liquidates_it_before_the_ack(
    venue: Venue, store: MemoryEventStore
) -> None:
    """near-liquidation (long 60,000 BTC-PERPETUAL contracts) paying a 30 % funding period falls
    into liquidation: the liquidation records follow the funding record, as after a price tick,
    and close its positions."""
    ack = venue.execute(SettleFunding(idempotency_key="f", instrument="BTC-PERPETUAL", funding_rate=0.3))
    later = [r for r in store.records if r.sequence > ack.sequence]
    assert later and {r.kind for r in later} == {"liquidation"}
    funding_status = {
        account: AccountStatus(status) for account, status, _ in _effects(store, ack.sequence)["status"]
    }
    assert funding_status["near-liquidation"] >= AccountStatus.LIQUIDATION
    assert venue.account("near-liquidation").positions == {}
    assert replay(store).digest() == venue.state_digest()
    _conserved(venue)


def test_recovery_from_sqlite_reproduces_the_lifecycle(tmp_path: Path) -> None:
    """The same on the durable SQLite log: reopened, the venue verifies the chain, folds the
    lifecycle records to the same digest, and still refuses the expired instrument."""
    db = (f"sqlite:///{tmp_path / 'venue.db'}", None)
    with open_at(connect(db)) as venue:
        venue.execute(SettleFunding(idempotency_key="f", instrument="SOL-USDC-PERP", funding_rate=-0.0002))
        venue.execute(SettleExpiry(idempotency_key="x", instrument=FUTURE, settlement_price=91_000.0))
        _borrow(venue)
        venue.execute(AccrueInterest(idempotency_key="i", elapsed_ns=HOUR_NS))
        digest, sequence = venue.state_digest(), venue.last_sequence
    with open_at(connect(db)) as recovered:
        assert (recovered.state_digest(), recovered.last_sequence) == (digest, sequence)
        assert recovered.recovery.problems == ()
        with pytest.raises(InputError) as late:
            recovered.execute(
                SettleExpiry(idempotency_key="x2", instrument=FUTURE, settlement_price=91_000.0)
            )
        assert "expired" in late.value.problem
