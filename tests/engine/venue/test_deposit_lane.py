"""The deposit lane writes what the generic path writes: two venues, lane on and off, fed the same
random command streams, keep the same log (record for record: bytes, hashes, postings), answer
every command alike (the same Ack or the same refusal) and fold to the same state digest."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossmargin.core.ledger.state import AccountStatus
from crossmargin.engine.journal import canonical_json
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import (
    Deposit,
    Fill,
    OpenAccount,
    UpdatePrices,
    Withdraw,
)
from crossmargin.engine.venue.commands import Command, body
from crossmargin.engine.venue.deposit_lane import deposit_body_json, deposit_record
from crossmargin.engine.venue.state import VenueState
from tests.adapters.sql.support import open_venue
from tests.engine.lanes import assert_same_runs, grouped_stream

TRADERS = ("basis-trader", "vol-seller", "directional", "near-liquidation")
# Accounts a deposit may name: the desk's traders, one opened in the stream, system accounts the
# generic path funds (or refuses), one that does not exist; assets: the desk's and an unknown one.
ACCOUNTS = (*TRADERS, "fresh", "@insurance", "@backstop", "@external", "ghost", "blåbær-ü")
ASSETS = ("USDC", "USDT", "BTC", "ETH", "DOGE")
AMOUNTS = st.one_of(
    st.integers(1, 10**12),
    st.sampled_from([0, -5, 2**63 - 1, 2**63, True, 1.5, "7"]),
)


def _deposit(key: str, draw: Any) -> Command:
    return Deposit(
        idempotency_key=key,
        account=draw(st.sampled_from(ACCOUNTS)),
        asset=draw(st.sampled_from(ASSETS)),
        amount_units=draw(AMOUNTS),
    )


@st.composite
def streams(draw: Any) -> list[list[Command]]:
    """Groups of commands (each group one submit_many, so one group commit or part of one):
    mostly deposits, with what changes whether the lane may take them (price moves that call
    accounts and back, fills, withdrawals, an account opened mid-stream) and repeated keys."""

    def one(key: str, draw: Any, sent: list[Command]) -> Command:
        roll = draw(st.integers(0, 19))
        if roll < 11:
            command = _deposit(key, draw)
        elif roll == 11:
            command = UpdatePrices(
                idempotency_key=key,
                index_prices={"BTC": draw(st.sampled_from([50_000.0, 70_000.0, 88_000.0, 95_000.0]))},
            )
        elif roll == 12:
            command = OpenAccount(idempotency_key=key, account="fresh")
        elif roll == 13:
            command = Withdraw(
                idempotency_key=key,
                account=draw(st.sampled_from(TRADERS)),
                asset="USDC",
                amount_units=draw(st.integers(1, 10**10)),
            )
        elif roll == 14:
            taker, maker = draw(st.permutations(TRADERS))[:2]
            command = Fill(
                idempotency_key=key,
                taker=taker,
                maker=maker,
                instrument="BTC-USDC-PERP",
                quantity=draw(st.sampled_from([-2, -1, 1, 2])),
                price=88_000.0,
            )
        elif sent:  # a retry: the same command again, or its key with another body
            again = draw(st.sampled_from(sent))
            command = again if roll < 18 else _deposit(again.idempotency_key, draw)
        else:
            command = _deposit(key, draw)
        return command

    return grouped_stream(draw, one, max_groups=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=streams())
def test_lane_and_generic_path_write_the_same_log(groups: list[list[Command]]) -> None:
    assert_same_runs(groups, "deposit_lane")


def test_lane_takes_healthy_deposits_and_leaves_the_rest() -> None:
    """The lane is the path taken (not merely equal to it): a deposit to a HEALTHY trader is the
    lane's record, the others it hands back (None) untouched."""
    venue = open_venue(MemoryEventStore())
    config = venue.config
    venue.close()
    healthy = TRADERS[0]
    folded = VenueState()
    folded.status = {t: AccountStatus.HEALTHY for t in TRADERS}
    taken = Deposit(idempotency_key="a", account=healthy, asset="USDC", amount_units=25)
    body_json = deposit_body_json(taken)
    assert body_json == canonical_json(body(taken))
    record = deposit_record(
        folded, config, taken, key="a", body_json=body_json, body_sha256="0" * 64, as_of_ns=7, actor="key-1"
    )
    assert record is not None and record.sequence == 1 and record.postings[0].amount_units == 25
    assert record.actor == "key-1" and b'"time_ns":7' in record.payload
    folded.status[healthy] = AccountStatus.WARNING
    for refused in (
        Deposit(idempotency_key="b", account=healthy, asset="USDC", amount_units=25),  # called
        Deposit(idempotency_key="c", account="ghost", asset="USDC", amount_units=25),
        Deposit(idempotency_key="d", account="@insurance", asset="USDC", amount_units=25),
        Deposit(idempotency_key="e", account=TRADERS[0], asset="DOGE", amount_units=25),
        Deposit(idempotency_key="f", account=TRADERS[0], asset="USDC", amount_units=True),
        Deposit(idempotency_key="g", account=TRADERS[0], asset="USDC", amount_units=2**63),
    ):
        assert (
            deposit_record(
                folded,
                config,
                refused,
                key="x",
                body_json=b"{}",
                body_sha256="0" * 64,
                as_of_ns=7,
                actor=None,
            )
            is None
        )
    assert folded.sequence == 0 and not folded.balances  # a record is not a fold


def test_a_run_of_healthy_deposits_takes_the_lane_and_writes_the_generic_bytes() -> None:
    """The property above on a fixed stream, with the lane's counter: the stream's deposits to
    healthy traders took the lane (so the equality is not between two generic runs)."""
    groups: list[list[Command]] = [
        [
            Deposit(idempotency_key=f"d{n}", account=TRADERS[n % 3], asset="USDC", amount_units=n + 1)
            for n in range(30)
        ]
    ]
    lane_venue, generic_venue = assert_same_runs(groups, "deposit_lane")
    assert lane_venue.stats()["lane_deposits"] == 30
    assert generic_venue.stats()["lane_deposits"] == 0


@pytest.mark.parametrize("amount", [True, 1.0, "5"])
def test_body_of_other_types_is_left_to_the_generic_encoder(amount: Any) -> None:
    command = Deposit(idempotency_key="k", account="a", asset="USDC", amount_units=amount)
    assert deposit_body_json(command) is None


def test_apply_deposit_is_apply_effects_of_a_deposit() -> None:
    """The lane's fold equals the generic fold of the same effects, including a balance that a
    deposit brings back to zero (a repaid borrowing: the entry is removed either way)."""
    for start in (-25, 0, 100):
        a, b = VenueState(), VenueState()
        for s in (a, b):
            s.balances[("t", "USDC")] = start
            s.balances[("@external", "USDC")] = -start
        a.apply_deposit("t", "USDC", 25, sequence=3, record_hash="h", as_of_ns=9)
        b.apply_effects(
            {
                "postings": [["@external", "t", "USDC", 25, "deposit"]],
                "records": [["deposit", "t", {"amount_units": 25, "asset": "USDC"}]],
                "time_ns": 9,
            },
            sequence=3,
            record_hash="h",
            as_of_ns=9,
        )
        assert a == b, start
