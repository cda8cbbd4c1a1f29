"""Conservation of every asset across random venue command sequences (hypothesis): after every
command the balances of all accounts (traders and system accounts) sum to zero per asset (double
entry: what entered the venue is minus the outside world's balance), every posting moves a
positive integer amount, and the fold of the log equals the venue's state bit for bit."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import (
    CancelOrder,
    Deposit,
    Fill,
    PlaceOrder,
    Transfer,
    UpdatePrices,
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
        trader, trader, asset, units,
    ),
    st.builds(
        lambda a, b, q, p: ("fill", dict(taker=a, maker=b, instrument="BTC-USDC-PERP", quantity=q, price=p)),
        trader, trader, st.integers(-20, 20), st.floats(60_000.0, 120_000.0),
    ),
    st.builds(
        lambda a, q, p: ("order", dict(account=a, instrument="ETH-USDC-PERP", quantity=q, price=p)),
        trader, st.integers(-50, 50), st.floats(2_000.0, 4_000.0),
    ),
    st.builds(lambda f: ("prices", dict(index_prices={"BTC": 88_528.93 * f, "ETH": 2_978.73 * f})), st.floats(0.6, 1.4)),
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
def test_conservation_of_every_asset(sequence: list[tuple[str, dict[str, object]]], data: st.DataObject) -> None:
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
                venue.execute(CancelOrder(idempotency_key=f"cancel-{order_id}", account=account, order_id=order_id))
            for k in ASSETS:
                assert sum(venue.balances(k).values()) == 0, k
        for record in store.records:
            assert all(p.amount_units > 0 for p in record.postings)
        assert venue.state_digest() == replay(store).digest()
