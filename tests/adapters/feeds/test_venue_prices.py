"""Oracle prices from the real NATS server (127.0.0.1:4222) into a live venue: good ("ok") prices
are coalesced into one UpdatePrices per interval; a held or stale price is not applied but the
venue is told (its price state says held or stale, with the source band); unknown symbols are
ignored. The messages use the oracle's own status words (engine.oracle_replay.STATUS_LABELS): the
feed once waited for "valid", a word the oracle never publishes, and applied nothing."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats
import pytest

from crossmargin.adapters.feeds.venue_prices import VenuePriceFeed
from crossmargin.core.oracle import PriceStatus
from crossmargin.engine.memory import MemoryEventStore
from crossmargin.engine.oracle_replay import STATUS_LABELS
from crossmargin.engine.venue import PriceState
from tests.adapters.feeds.test_oracle_nats import nats_server  # noqa: F401  (the fixture)
from tests.adapters.sql.support import open_venue

OK, HELD, STALE = (STATUS_LABELS[s] for s in (PriceStatus.VALID, PriceStatus.HELD, PriceStatus.STALE))


def _message(asset: str, price: float, status: str, as_of_ns: int, band: float = 0.0) -> bytes:
    message = {
        "asset": asset,
        "price_usd": price,
        "status": status,
        "as_of_ns": as_of_ns,
        "band_low_usd": price * (1.0 - band / 2),
        "band_high_usd": price * (1.0 + band / 2),
    }
    return json.dumps(message).encode()


async def _feed(
    server: str,
) -> tuple[dict[str, float], dict[str, float], VenuePriceFeed, int, dict[str, PriceState]]:
    venue = open_venue(MemoryEventStore())
    before = venue.prices()
    root = f"oracle{uuid.uuid4().hex[:8]}"
    feed = VenuePriceFeed(venue=venue, price_root=root)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(feed.run(server, interval_s=0.2, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), timeout=10)
    client = await nats.connect(server)
    t = 1_767_115_900_000_000_000
    await client.publish(f"{root}.BTC", _message("BTC", 87_000.0, OK, t))
    await client.publish(f"{root}.BTC", _message("BTC", 87_500.0, OK, t + 1, band=0.002))  # newest wins
    await client.publish(f"{root}.ETH", _message("ETH", 1_000.0, STALE, t))
    await client.publish(f"{root}.SOL", _message("SOL", 80.0, HELD, t, band=0.15))  # a -36 % move held
    await client.publish(f"{root}.DOGE", _message("DOGE", 0.1, OK, t))
    await client.flush()
    for _ in range(100):
        if feed.applied:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await client.close()
    after = venue.prices()
    states = venue.price_states()
    records = sum(1 for e in venue.log(1, 10_000) if e.kind == "update_prices")
    venue.close()
    return before, after, feed, records, states


def test_oracle_prices_reach_the_venue(nats_server: str) -> None:  # noqa: F811
    before, after, feed, records, states = asyncio.run(_feed(nats_server))
    assert after["BTC"] == 87_500.0
    assert states["BTC"].oracle == OK and states["BTC"].band_fraction == pytest.approx(0.002)
    # A stale or held oracle price is not applied; the venue says why.
    assert after["ETH"] == before["ETH"] and states["ETH"].status == "stale" and states["ETH"].oracle == STALE
    assert after["SOL"] == before["SOL"] and states["SOL"].status == "held"
    assert states["SOL"].band_fraction == pytest.approx(0.15)
    assert "DOGE" not in after
    assert feed.ignored == 3  # ETH and SOL not applied, DOGE unknown
    assert records == 1  # five messages, one venue update
