"""Conservation of every asset across random venue command sequences (hypothesis): after every
command the balances of all accounts (traders and system accounts) sum to zero per asset (double
entry: what entered the venue is minus the outside world's balance), every posting moves a
positive integer amount, and the fold of the log equals the venue's state bit for bit; with the
contract lifecycle (funding, borrow interest, expiry settlement) mixed in as well."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmargin.engine.memory import MemoryEventStore, SteppingClock
from crossmargin.engine.venue import (
    AccrueInterest,
    CancelOrder,
    Deposit,
    Fill,
    PlaceOrder,
    SettleExpiry,
    SettleFunding,
    Transfer,
    UpdatePrices,
    Venue,
    Withdraw,
)
from crossmargin.errors import CrossMarginError
from tests.adapters.sql.support import desk_genesis, open_venue, replay

TRADERS = ("basis-trader", "vol-seller", "directional", "near-liquidation")
ASSETS = ("USDC", "USDT", "BTC", "ETH")
units = st.integers(min_value=1, max_value=5 * 10**10)
trader = st.sampled_from(TRADERS)
asset = st.sampled_from(ASSETS)

commands = st.one_of(
    st.builds(lambda a, k, u: ("deposit", dict(account=a, asset=k, amount_units=u)), trader, asset, units),
    st.builds(lambda a, k, u: ("withdraw", dict(account=a, asset=k, amount_units=u)), trader, asset, units),
    st.builds(
        lambda a, b, k, u: ("transfer", dict(from_account=a, to_account=b, asset=k, amount_units=u)),
        trader,
        trader,
        asset,
        units,
    ),
    st.builds(
        lambda a, b, q, p: ("fill", dict(taker=a, maker=b, instrument="BTC-USDC-PERP", quantity=q, price=p)),
        trader,
        trader,
        st.integers(-20, 20),
        st.floats(60_000.0, 120_000.0),
    ),
    st.builds(
        lambda a, q, p: ("order", dict(account=a, instrument="ETH-USDC-PERP", quantity=q, price=p)),
        trader,
        st.integers(-50, 50),
        st.floats(2_000.0, 4_000.0),
    ),
    st.builds(
        lambda f: ("prices", dict(index_prices={"BTC": 88_528.93 * f, "ETH": 2_978.73 * f})),
        st.floats(0.6, 1.4),
    ),
)


def _build(kind: str, fields: dict[str, object], n: int) -> object:
    key = f"k{n}"
    if kind == "deposit":
        return Deposit(idempotency_key=key, **fields)  # type: ignore[arg-type]
    if kind == "withdraw":
        return Withdraw(idempotency_key=key, **fields)  # type: ignore[arg-type]
    if kind == "transfer":
        return Transfer(idempotency_key=key, **fields)  # type: ignore[arg-type]
    if kind == "fill":
        return Fill(idempotency_key=key, **fields)  # type: ignore[arg-type]
    if kind == "order":
        return PlaceOrder(idempotency_key=key, order_id=f"o{n}", **fields)  # type: ignore[arg-type]
    return UpdatePrices(idempotency_key=key, **fields)  # type: ignore[arg-type]


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands, min_size=1, max_size=12), st.data())
def test_conservation_of_every_asset(
    sequence: list[tuple[str, dict[str, object]]], data: st.DataObject
) -> None:
    desk_genesis()
    store = MemoryEventStore()
    with open_venue(store) as venue:
        placed: list[tuple[str, str]] = []
        for n, (kind, fields) in enumerate(sequence):
            command = _build(kind, fields, n)
            try:
                venue.execute(command)  # type: ignore[arg-type]
                if kind == "order":
                    placed.append((str(fields["account"]), f"o{n}"))
            except CrossMarginError:
                pass  # refused: nothing written
            if placed and data.draw(st.booleans()):
                account, order_id = placed.pop()
                venue.execute(
                    CancelOrder(idempotency_key=f"cancel-{order_id}", account=account, order_id=order_id)
                )
            for k in ASSETS:
                assert sum(venue.balances(k).values()) == 0, k
        for record in store.records:
            assert all(p.amount_units > 0 for p in record.postings)
        assert venue.state_digest() == replay(store).digest()


# The contract lifecycle (issue 16): funding on the perpetuals, borrow interest, and the
# settlement of the dated future and the options, on a venue whose clock is past their expiries.
EXPIRING = ("BTC-27MAR26", "BTC-30JAN26-80000-P", "BTC-30JAN26-100000-C", "ETH-30JAN26-3400-C")
AFTER_EXPIRIES_NS = 1_774_598_400_000_000_001  # BTC-27MAR26 expires 27 Mar 2026 08:00 UTC
lifecycle = st.one_of(
    st.builds(
        lambda i, r: ("funding", dict(instrument=i, funding_rate=r)),
        st.sampled_from(("BTC-USDC-PERP", "ETH-USDC-PERP", "SOL-USDC-PERP", "BTC-PERPETUAL")),
        st.floats(-0.01, 0.01),
    ),
    st.builds(lambda e: ("interest", dict(elapsed_ns=e)), st.integers(1, 30 * 24 * 3_600 * 10**9)),
    st.builds(
        lambda i, f: ("expiry", dict(instrument=i, settlement_price=f)),
        st.sampled_from(EXPIRING),
        st.floats(1_000.0, 150_000.0),
    ),
)


def _build_lifecycle(kind: str, fields: dict[str, object], n: int) -> object:
    key = f"k{n}"
    if kind == "funding":
        return SettleFunding(idempotency_key=key, **fields)  # type: ignore[arg-type]
    if kind == "interest":
        return AccrueInterest(idempotency_key=key, **fields)  # type: ignore[arg-type]
    if kind == "expiry":
        return SettleExpiry(idempotency_key=key, **fields)  # type: ignore[arg-type]
    return _build(kind, fields, n)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(commands, lifecycle), min_size=1, max_size=12))
def test_conservation_with_funding_interest_and_expiry(sequence: list[tuple[str, dict[str, object]]]) -> None:
    """Every asset sums to zero after each command, funding and expiry included; every posting
    is a positive integer; the replayed fold equals the venue; a settled instrument is closed."""
    store = MemoryEventStore()
    clock = SteppingClock(start_ns=AFTER_EXPIRIES_NS, step_ns=1_000_000)
    with Venue.open(store, desk_genesis(), clock=clock) as venue:
        for n, (kind, fields) in enumerate(sequence):
            # A refusal (a second expiry, a withdrawal too large...) writes nothing.
            with contextlib.suppress(CrossMarginError):
                venue.execute(_build_lifecycle(kind, fields, n))  # type: ignore[arg-type]
            for k in ASSETS:
                assert sum(venue.balances(k).values()) == 0, k
        for record in store.records:
            assert all(p.amount_units > 0 for p in record.postings)
        folded = replay(store)
        assert venue.state_digest() == folded.digest()
        assert not any(i in folded.expired for _, i in folded.positions)
