"""A large group (one `Venue.submit_many`, one commit: PostgreSQL streams it with COPY) is stored
exactly as appended, verifies and replays to the venue's state; a group the database refuses is
never acknowledged and a restart recovers the committed log."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crossmargin.engine.journal import GENESIS_HASH, verify_chain
from crossmargin.engine.venue import Deposit, Transfer
from crossmargin.errors import VenueUnavailableError
from tests.adapters.sql.support import connect, open_venue, raw_engine, replay

GROUP = 192  # commands in one group: a commit of many rows of both tables


def _commands(tag: str) -> list[Deposit | Transfer]:
    out: list[Deposit | Transfer] = []
    for i in range(GROUP):
        if i % 3:
            out.append(
                Deposit(idempotency_key=f"{tag}-{i}", account="vol-seller", asset="USDC", amount_units=i + 1)
            )
        else:
            out.append(
                Transfer(
                    idempotency_key=f"{tag}-{i}",
                    from_account="vol-seller",
                    to_account="basis-trader",
                    asset="USDC",
                    amount_units=i + 1,
                )
            )
    return out


def test_a_large_group_is_stored_exactly_and_replays(db: tuple[str, str | None]) -> None:
    store = connect(db)
    with open_venue(store) as venue:
        commits = venue.stats()["batches"]
        futures = venue.submit_many(_commands("g"), actor="k1")
        acks = [f.result(timeout=120) for f in futures]
        assert venue.stats()["batches"] == commits + 1  # one commit for the whole group
        assert [a.sequence for a in acks] == list(range(acks[0].sequence, acks[0].sequence + GROUP))
        in_memory = venue.records(acks[0].sequence, GROUP)
        digest = venue.state_digest()
    stored = store.read(acks[0].sequence, GROUP)
    assert stored == in_memory  # every field, postings and actor included, byte for byte
    assert sum(len(r.postings) for r in stored) == GROUP
    head = store.read(1, acks[0].sequence - 1)
    assert verify_chain([*head, *stored], previous_hash=GENESIS_HASH, first_sequence=1) is None
    assert replay(store).digest() == digest


def test_a_refused_group_is_not_acknowledged_and_recovers(db: tuple[str, str | None]) -> None:
    store = connect(db)
    venue = open_venue(store)
    last = venue.execute(
        Deposit(idempotency_key="before", account="vol-seller", asset="USDC", amount_units=1)
    )
    engine = raw_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE postings RENAME TO postings_moved"))
    futures = venue.submit_many(_commands("lost"))
    for future in futures:
        with pytest.raises(VenueUnavailableError):
            future.result(timeout=120)
    venue.close()
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE postings_moved RENAME TO postings"))
    engine.dispose()
    store = connect(db)
    with open_venue(store) as again:
        assert again.last_sequence == last.sequence
        assert store.find_keys([f"lost-{i}" for i in range(GROUP)]) == {}
        assert again.state_digest() == replay(store).digest()
