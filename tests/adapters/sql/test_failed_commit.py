"""A commit the database refuses is never acknowledged: the venue stops serving (its memory may be
ahead of the log), and a restart recovers exactly the committed log."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from crossmargin.engine.venue import Deposit
from crossmargin.errors import VenueUnavailableError
from tests.adapters.sql.support import connect, open_venue, raw_engine, replay


def _rename(db: tuple[str, str | None], old: str, new: str) -> None:
    engine = raw_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))
    engine.dispose()


def test_failed_commit_is_not_acknowledged_and_recovers(db: tuple[str, str | None]) -> None:
    store = connect(db)
    venue = open_venue(store)
    acked = venue.execute(Deposit(idempotency_key="before", account="vol-seller", asset="USDC", amount_units=1))
    balance = venue.balances("USDC")["vol-seller"]
    _rename(db, "counter", "counter_moved")  # the next commit fails inside the database
    with pytest.raises(VenueUnavailableError):
        venue.execute(Deposit(idempotency_key="lost", account="vol-seller", asset="USDC", amount_units=5))
    with pytest.raises(VenueUnavailableError):
        venue.balances("USDC")  # no read of a state the log does not hold
    with pytest.raises(VenueUnavailableError):
        venue.execute(Deposit(idempotency_key="after", account="vol-seller", asset="USDC", amount_units=7))
    venue.close()
    _rename(db, "counter_moved", "counter")
    store = connect(db)
    with open_venue(store) as again:
        assert again.last_sequence == acked.sequence
        assert again.balances("USDC")["vol-seller"] == balance
        assert store.find_keys(["lost", "after"]) == {}
        assert again.state_digest() == replay(store).digest()
