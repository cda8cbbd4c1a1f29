"""The transfer lane writes what the generic path writes: two venues, lane on and off, fed the
same random command streams (transfers and withdrawals of every size, to and from every desk
trader, the system accounts and unknown ones; price moves that call accounts; resting orders
that reserve margin; fills that move positions; deposits; bad fields), keep the same log byte for
byte, answer every command alike and fold to the same state digest."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Fill, PlaceOrder, Transfer, Withdraw
from crossmargin.engine.venue.commands import Command
from crossmargin.engine.venue.decide import decide
from crossmargin.engine.venue.transfer_lane import transfer_effects, withdraw_effects
from crossmargin.errors import InputError
from tests.adapters.sql.support import open_venue
from tests.engine.lanes import assert_same_runs, grouped_stream, price_move, top_up

TRADERS = ("basis-trader", "vol-seller", "directional", "near-liquidation")
ACCOUNTS = st.sampled_from([*TRADERS, *TRADERS, "ghost", "@insurance", "@bad_debt"])
ASSETS = st.sampled_from(["USDC", "USDC", "USDC", "BTC", "ETH", "DOGE", 7])
# Minor units: from one unit to more than any desk balance, and what the lane must leave alone.
UNITS = st.one_of(
    st.integers(1, 10**13),
    st.sampled_from([0, -5, True, 1.5, 2**63, 10**30]),
)


def _transfer(key: str, draw: Any) -> Command:
    sender, receiver = draw(st.permutations(TRADERS))[:2]
    return Transfer(
        idempotency_key=key,
        from_account=draw(st.sampled_from([sender, sender, sender, "ghost", "@insurance"])),
        to_account=draw(st.sampled_from([receiver, receiver, receiver, sender, "@bad_debt"])),
        asset=draw(ASSETS),
        amount_units=draw(UNITS),
    )


def _withdraw(key: str, draw: Any) -> Command:
    return Withdraw(idempotency_key=key, account=draw(ACCOUNTS), asset=draw(ASSETS), amount_units=draw(UNITS))


@st.composite
def streams(draw: Any) -> list[list[Command]]:
    """Groups of commands (each one submit_many): mostly transfers and withdrawals, with what
    changes whether the lane may take them (price moves, resting orders, fills) and retried keys."""

    def one(key: str, draw: Any, sent: list[Command]) -> Command:
        roll = draw(st.integers(0, 19))
        command: Command
        if roll < 7:
            command = _transfer(key, draw)
        elif roll < 12:
            command = _withdraw(key, draw)
        elif roll == 12:
            command = price_move(key, draw)
        elif roll == 13:
            command = PlaceOrder(
                idempotency_key=key,
                account=draw(st.sampled_from(TRADERS)),
                order_id=draw(st.sampled_from(["o1", "o2"])),
                instrument="BTC-USDC-PERP",
                quantity=draw(st.sampled_from([-30, -3, 1, 3, 30])),
                price=88_000.0,
            )
        elif roll == 14:
            taker, maker = draw(st.permutations(TRADERS))[:2]
            command = Fill(
                idempotency_key=key,
                taker=taker,
                maker=maker,
                instrument="BTC-USDC-PERP",
                quantity=draw(st.integers(-20, 20)),
                price=88_000.0,
            )
        elif roll == 15:
            command = top_up(key, draw, TRADERS)
        elif sent:  # a retry: the same command again
            command = draw(st.sampled_from(sent))
        else:
            command = _transfer(key, draw)
        return command

    return grouped_stream(draw, one, max_groups=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=streams())
def test_lane_and_generic_path_write_the_same_log(groups: list[list[Command]]) -> None:
    assert_same_runs(groups, "transfer_lane")


def test_a_run_of_transfers_and_withdrawals_takes_the_lane_and_writes_the_generic_bytes() -> None:
    """The property on a fixed stream with the lane's counters: transfers both ways and
    withdrawals by traders holding positions (options among them) took the lane (so the equality
    is not between two generic runs); a transfer of more than the sender holds went the generic
    way and was refused there."""
    moves: list[Command] = []
    for n in range(12):
        a, b = TRADERS[n % 2], TRADERS[1 - n % 2]  # both hold USDC and positions
        moves.append(
            Transfer(
                idempotency_key=f"t{n}",
                from_account=a,
                to_account=b,
                asset="USDC",
                amount_units=10**6 * (n + 1),
            )
        )
        moves.append(Withdraw(idempotency_key=f"w{n}", account=b, asset="USDC", amount_units=10**5 * (n + 1)))
    too_much = Transfer(
        idempotency_key="too-much",
        from_account=TRADERS[0],
        to_account=TRADERS[1],
        asset="USDC",
        amount_units=10**18,
    )
    lane_venue, generic_venue = assert_same_runs([moves, [too_much]], "transfer_lane")
    assert lane_venue.stats()["lane_transfers"] == 12
    assert lane_venue.stats()["lane_withdrawals"] == 12
    assert generic_venue.stats()["lane_transfers"] == 0 == generic_venue.stats()["lane_withdrawals"]
    assert lane_venue.stats()["rejected"] == 1 == generic_venue.stats()["rejected"]


def test_the_lane_leaves_what_it_does_not_take_untouched() -> None:
    """None (the generic path's) for a self-transfer, a system or unknown account, an unknown
    asset, a bool or float amount, more than the balance, a trader under a margin-call deadline,
    bad debt outstanding, a clock going back; the state is only read."""
    venue = open_venue(MemoryEventStore())
    try:
        state, config = venue._state, venue.config
        now = state.time_ns + 1
        plain = Transfer(
            idempotency_key="a",
            from_account=TRADERS[0],
            to_account=TRADERS[1],
            asset="USDC",
            amount_units=100,
        )
        out = Withdraw(idempotency_key="b", account=TRADERS[0], asset="USDC", amount_units=100)
        digest = venue.state_digest()
        assert transfer_effects(state, config, plain, now) == decide(state, config, plain, now)
        assert withdraw_effects(state, config, out, now) == decide(state, config, out, now)
        for other in (
            dataclasses.replace(plain, to_account=TRADERS[0]),
            dataclasses.replace(plain, from_account="@insurance"),
            dataclasses.replace(plain, to_account="ghost"),
            dataclasses.replace(plain, asset="DOGE"),
            dataclasses.replace(plain, amount_units=True),
            dataclasses.replace(plain, amount_units=100.0),
            dataclasses.replace(plain, amount_units=10**30),
        ):
            assert transfer_effects(state, config, other, now) is None
        assert transfer_effects(state, config, plain, state.time_ns - 1) is None
        assert withdraw_effects(state, config, dataclasses.replace(out, amount_units=0), now) is None
        assert venue.state_digest() == digest
        called = dataclasses.replace(state, deadlines={TRADERS[1]: now + 10})
        assert transfer_effects(called, config, plain, now) is None
        owing = dataclasses.replace(state, balances={**state.balances, ("@bad_debt", "USDC"): -1})
        assert transfer_effects(owing, config, plain, now) is None
        assert withdraw_effects(owing, config, out, now) is None
        with pytest.raises(InputError, match="bad debt"):
            decide(owing, config, out, now)
    finally:
        venue.close()


def _largest(accepted: Any) -> int:
    """The largest q >= 0 with `accepted(q)` (true up to it, false above): doubling, then
    bisection."""
    low, high = 0, 1
    while accepted(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if accepted(middle) else (low, middle)
    return low


@pytest.mark.parametrize("kind", ["withdraw", "transfer"])
def test_the_largest_amount_the_generic_path_accepts_is_the_lanes_last(kind: str) -> None:
    """At the margin boundary: for every HEALTHY desk trader and asset it holds, the largest
    amount the generic path accepts (found by bisection) takes the lane with the generic effects
    and one unit more is left to the generic refusal. Where initial margin binds before the
    balance does (asserted to happen), this holds the lane's own IM and status checks to the
    ledger's."""
    venue = open_venue(MemoryEventStore())
    try:
        state, config = venue._state, venue.config
        now = state.time_ns + 1
        margin_bound = 0
        for sender in (t for t in TRADERS if state.status[t] == 0 and t not in state.deadlines):
            receiver = next(t for t in TRADERS if t != sender)
            for asset in (a for a in config.assets.symbols if state.balances.get((sender, a), 0) > 0):

                def command(
                    units: int, sender: str = sender, receiver: str = receiver, asset: str = asset
                ) -> Command:
                    key = f"{sender}-{asset}-{units}"
                    if kind == "withdraw":
                        return Withdraw(idempotency_key=key, account=sender, asset=asset, amount_units=units)
                    return Transfer(
                        idempotency_key=key,
                        from_account=sender,
                        to_account=receiver,
                        asset=asset,
                        amount_units=units,
                    )

                def accepted(units: int, command: Any = command) -> bool:
                    try:
                        decide(state, config, command(units), now)
                    except InputError:
                        return False
                    return True

                def lane(units: int, command: Any = command) -> dict[str, Any] | None:
                    c = command(units)
                    if isinstance(c, Withdraw):
                        return withdraw_effects(state, config, c, now)
                    return transfer_effects(state, config, c, now)

                last = _largest(accepted)
                assert last > 0
                assert lane(last) == decide(state, config, command(last), now)
                assert lane(last + 1) is None
                margin_bound += last < state.balances[(sender, asset)]
        assert margin_bound > 0
    finally:
        venue.close()


def test_a_withdrawal_past_the_reservation_is_left_to_the_generic_refusal() -> None:
    """A trader whose resting order reserves most of its free margin: a withdrawal the IM check
    alone would pass is handed back by the lane's reservation check and refused by the generic
    path, naming the reservation."""
    venue = open_venue(MemoryEventStore())
    try:
        trader = TRADERS[1]
        venue.execute(
            PlaceOrder(
                idempotency_key="o",
                account=trader,
                order_id="big",
                instrument="ETH-USDC-PERP",
                quantity=_largest_order(venue, trader),
                price=3_000.0,
            )
        )
        state, config = venue._state, venue.config
        now = state.time_ns + 1
        balance = state.balances[(trader, "USDC")]
        out = Withdraw(idempotency_key="w", account=trader, asset="USDC", amount_units=balance // 2)
        with pytest.raises(InputError, match="reservation"):
            decide(state, config, out, now)
        assert withdraw_effects(state, config, out, now) is None
    finally:
        venue.close()


def _largest_order(venue: Any, trader: str) -> int:
    state, config = venue._state, venue.config
    now = state.time_ns + 1

    def accepted(q: int) -> bool:
        order = PlaceOrder(
            idempotency_key=f"o{q}",
            account=trader,
            order_id="big",
            instrument="ETH-USDC-PERP",
            quantity=q,
            price=3_000.0,
        )
        try:
            decide(state, config, order, now)
        except InputError:
            return False
        return True

    return _largest(accepted)
