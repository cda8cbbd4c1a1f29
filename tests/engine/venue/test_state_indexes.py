"""The fold's per-account indexes (positions by `holdings`, open orders by `account_orders`, their
sizes counted by `order_sizes`) always describe exactly what the fold holds, through any sequence
of effects and a snapshot round trip, so a command reads one account's positions and orders
without walking the venue's."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crossmargin.adapters.clock import SystemClock
from crossmargin.core.ledger.postings import LIQUIDATOR, SYSTEM_ACCOUNTS
from crossmargin.core.ledger.state import Position
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Venue, VenueSettings
from crossmargin.engine.venue.decide import _sub
from crossmargin.engine.venue.state import Order, VenueState
from tests.adapters.sql.support import desk_genesis

ACCOUNTS = ["a", "b", "c"]
ORDER_EFFECTS = st.lists(
    st.tuples(
        st.sampled_from(["o1", "o2", "o3", "o4"]),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(["BTC-PERP", "ETH-PERP"]),
        st.integers(min_value=-3, max_value=3),
    ),
    max_size=40,
)


def _orders_by_account(state: VenueState) -> dict[str, dict[str, Order]]:
    out: dict[str, dict[str, Order]] = {}
    for order in state.orders.values():
        out.setdefault(order.account, {})[order.order_id] = order
    return out


def _sizes_by_account(state: VenueState) -> dict[str, Counter[tuple[str, int]]]:
    """Each account's open orders counted by size (instrument, contracts), walked."""
    out: dict[str, Counter[tuple[str, int]]] = {}
    for order in state.orders.values():
        out.setdefault(order.account, Counter())[(order.instrument, order.quantity)] += 1
    return out


POSITION_EFFECTS = st.lists(
    st.tuples(
        st.sampled_from([*ACCOUNTS, LIQUIDATOR]),
        st.sampled_from(["BTC-PERP", "ETH-PERP", "SOL-PERP"]),
        st.integers(min_value=-2, max_value=2),
    ),
    max_size=40,
)


# An open order keeps its account and instrument (the venue refuses a second order of one id).
ORDER_OF = {
    "o1": ("a", "BTC-PERP"),
    "o2": ("b", "BTC-PERP"),
    "o3": ("a", "ETH-PERP"),
    "o4": ("c", "BTC-PERP"),
}
ORDER_CHANGES = st.lists(
    st.tuples(st.sampled_from(sorted(ORDER_OF)), st.integers(min_value=-3, max_value=3)), max_size=40
)


@given(POSITION_EFFECTS, ORDER_CHANGES)
def test_the_instrument_indexes_are_the_positions_and_orders_grouped_by_instrument(
    positions: list[tuple[str, str, int]], orders: list[tuple[str, int]]
) -> None:
    """Holders and orders of an instrument without a walk over the venue: the same sets (and, for
    orders, the same order) as filtering every position and order."""
    state = VenueState()
    state.apply_effects({"accounts": ACCOUNTS}, sequence=1, record_hash="h")
    for sequence, (account, instrument, quantity) in enumerate(positions, start=2):
        state.apply_effects(
            {"positions": [[account, instrument, quantity, 100.0]]}, sequence=sequence, record_hash="h"
        )
    for sequence, (order_id, quantity) in enumerate(orders, start=len(positions) + 2):
        account, instrument = ORDER_OF[order_id]
        state.apply_effects(
            {"orders": [[order_id, account, instrument, quantity, 100.0]]}, sequence=sequence, record_hash="h"
        )
    for copy in (state, VenueState.from_dict(state.to_dict())):
        for instrument in ("BTC-PERP", "ETH-PERP", "SOL-PERP"):
            walked = {a for (a, i) in copy.positions if i == instrument and a in copy.status}
            assert copy.holders_of([instrument]) == walked
            assert copy.orders_on(instrument) == [
                o for o in copy.orders.values() if o.instrument == instrument
            ]
        assert copy.holders_of(["BTC-PERP", "SOL-PERP"]) == copy.holders_of(["BTC-PERP"]) | copy.holders_of(
            ["SOL-PERP"]
        )
        assert all(holders for holders in copy.instrument_holders.values())  # no empty sets kept


@given(ORDER_EFFECTS)
def test_the_order_index_is_the_orders_grouped_by_account(effects: list[tuple[str, str, str, int]]) -> None:
    state = VenueState()
    for sequence, (order_id, account, instrument, quantity) in enumerate(effects, start=1):
        order: list[Any] = [order_id, account, instrument, quantity, 100.0]
        trial = {a: state.order_sizes_after(a, [order]) for a in ACCOUNTS}  # what the fold will count
        state.apply_effects({"orders": [order]}, sequence=sequence, record_hash="h")
        assert state.account_orders == _orders_by_account(state)
        assert state.order_sizes == _sizes_by_account(state)  # no zero count, no empty account
        assert trial == {a: state.order_sizes_of(a) for a in ACCOUNTS}
    for account in ACCOUNTS:
        expected = sorted(
            (o for o in state.orders.values() if o.account == account), key=lambda o: o.order_id
        )
        assert state.orders_of(account) == expected
        assert state.has_orders(account) == bool(expected)
    restored = VenueState.from_dict(state.to_dict())
    assert restored.account_orders == state.account_orders
    assert restored.order_sizes == state.order_sizes


def test_a_command_s_sub_state_carries_every_system_position_and_only_its_traders() -> None:
    """`_sub` finds the system accounts' positions (the liquidator's book) through the holdings
    index: the same positions the walk over every position of the venue found."""
    with Venue.open(
        MemoryEventStore(), desk_genesis(), clock=SystemClock(), settings=VenueSettings()
    ) as venue:
        state, config = venue._state, venue.config
        trader = state.traders[0]
        for n, (account, instrument) in enumerate(
            [(LIQUIDATOR, "BTC-USDC-PERP"), (LIQUIDATOR, "ETH-USDC-PERP"), (trader, "ETH-USDC-PERP")]
        ):
            state.apply_effects(
                {"positions": [[account, instrument, n + 1, 1_000.0 * (n + 1)]]},
                sequence=state.sequence + 1,
                record_hash=state.head_hash,
            )
        sub = _sub(state, config, [trader])
        walked = {
            key: p for key, p in state.positions.items() if key[0] == trader or key[0] in SYSTEM_ACCOUNTS
        }
        assert sub.positions == walked
        assert sub.positions[(LIQUIDATOR, "ETH-USDC-PERP")] == Position(2, 2_000.0)
        assert all(a == trader or a.startswith("@") for a, _ in sub.positions)
