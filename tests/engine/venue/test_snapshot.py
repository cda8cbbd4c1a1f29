"""`Venue.ledger_snapshot` (what POST /v1/stress reads) and `Venue.price_board` (GET /v1/prices)."""

from __future__ import annotations

from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.venue import Deposit, Fill, UpdatePrices
from tests.adapters.sql.support import START_NS, open_venue


def test_ledger_snapshot_is_every_trader_as_sub_state_gives_it() -> None:
    with open_venue(MemoryEventStore()) as venue:
        venue.execute(
            Deposit(idempotency_key="d", account="vol-seller", asset="USDC", amount_units=7_000_000)
        )
        venue.execute(
            Fill(
                idempotency_key="f",
                taker="basis-trader",
                maker="directional",
                instrument="BTC-USDC-PERP",
                quantity=1,
                price=88_000.0,
            )
        )
        venue.execute(UpdatePrices(idempotency_key="p", index_prices={"BTC": 80_000.0}))
        sequence, ledger, config = venue.ledger_snapshot()
        state = venue._state
        assert sequence == venue.last_sequence == state.sequence
        assert ledger == state.sub_state(state.traders, config.assets.symbols)
        assert ledger.prices["BTC"] == 80_000.0


def test_price_board_times_are_the_records_that_set_them() -> None:
    with open_venue(MemoryEventStore()) as venue:
        before = venue.price_board()
        # a command first: the stepping clock moves on, so the update's time differs from genesis
        venue.execute(Deposit(idempotency_key="d", account="vol-seller", asset="USDC", amount_units=1))
        ack = venue.execute(
            UpdatePrices(
                idempotency_key="p", index_prices={"ETH": 3_000.0}, mark_prices={"BTC-27MAR26": 90_000.0}
            )
        )
        after = venue.price_board()
    genesis_ns = before.set_ns["BTC"]
    assert set(before.set_ns) == set(before.prices) | set(before.marks)
    assert set(before.set_ns.values()) == {genesis_ns}  # the opening book's prices: the genesis record
    assert genesis_ns <= START_NS
    assert after.prices["ETH"] == 3_000.0 and after.set_ns["ETH"] == ack.as_of_ns > genesis_ns
    assert after.marks["BTC-27MAR26"] == 90_000.0 and after.set_ns["BTC-27MAR26"] == ack.as_of_ns
    assert after.set_ns["BTC"] == genesis_ns and after.sequence == ack.sequence
