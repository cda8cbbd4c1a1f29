"""Oracle prices from the real NATS server (127.0.0.1:4222) into a live venue: VALID prices are
coalesced into one UpdatePrices per interval; HELD/STALE prices and unknown symbols are ignored."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats

from crossmargin.adapters.feeds.venue_prices import VenuePriceFeed
from crossmargin.engine.memory import MemoryEventStore
from tests.adapters.feeds.test_oracle_nats import nats_server  # noqa: F401  (the fixture)
from tests.adapters.sql.support import open_venue


def _message(asset: str, price: float, status: str, as_of_ns: int) -> bytes:
    return json.dumps({"asset": asset, "price_usd": price, "status": status, "as_of_ns": as_of_ns}).encode()


async def _feed(server: str) -> tuple[dict[str, float], dict[str, float], VenuePriceFeed, int]:
    venue = open_venue(MemoryEventStore())
    before = venue.prices()
    root = f"oracle{uuid.uuid4().hex[:8]}"
    feed = VenuePriceFeed(venue=venue, price_root=root)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(feed.run(server, interval_s=0.2, stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), timeout=10)
    client = await nats.connect(server)
    t = 1_767_115_900_000_000_000
    await client.publish(f"{root}.BTC", _message("BTC", 87_000.0, "valid", t))
    await client.publish(f"{root}.BTC", _message("BTC", 87_500.0, "valid", t + 1))  # newest wins
    await client.publish(f"{root}.ETH", _message("ETH", 1_000.0, "stale", t))
    await client.publish(f"{root}.DOGE", _message("DOGE", 0.1, "valid", t))
    await client.flush()
    for _ in range(100):
        if feed.applied:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await client.close()
    after = venue.prices()
    records = sum(1 for e in venue.log(1, 10_000) if e.kind == "update_prices")
    venue.close()
    return before, after, feed, records


def test_oracle_prices_reach_the_venue(nats_server: str) -> None:  # noqa: F811
    before, after, feed, records = asyncio.run(_feed(nats_server))
    assert after["BTC"] == 87_500.0
    assert after["ETH"] == before["ETH"]  # a stale oracle price is not applied
    assert "DOGE" not in after
    assert feed.ignored == 2
    assert records == 1  # two BTC messages, one venue update
