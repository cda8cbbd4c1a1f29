"""Live oracle over NATS: subscribe to `prices.<source>.<asset>`, update the core on a timer,
publish every asset's price to `oracle.<asset>` and liquidation pauses to `oracle.events`.

A quote message is JSON {"price_usd": 101.5, "time_ns": 1700000000000000000, "weight": 2.0}
(time_ns and weight optional: receive time and 1), or a bare number (the price). The published
price is JSON with the keys of `price_message` (`engine.oracle_replay`).

The clock is the adapter's (`clock_ns`, default time.time_ns); the core only sees the times.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from crossmargin.core.oracle import (
    OraclePolicy,
    OracleState,
    OracleUpdate,
    ParamTable,
    liquidation_pauses,
    update,
)
from crossmargin.engine.oracle_replay import QuoteBook, price_message

log = logging.getLogger("crossmargin.oracle")


async def _log_connection_error(error: Exception) -> None:
    """One line per connection error (nats-py's default logs each with its traceback)."""
    log.warning("nats: %s", error or type(error).__name__)


QUOTE_ROOT = "prices"
PRICE_ROOT = "oracle"


def parse_quote(data: bytes, *, received_ns: int) -> tuple[float, int, float] | None:
    """(price_usd, time_ns, weight) of a quote message, None when it cannot be read."""
    try:
        body: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(body, int | float) and not isinstance(body, bool):
        return float(body), received_ns, 1.0
    if not isinstance(body, dict):
        return None
    price = body.get("price_usd", body.get("price"))
    stamp = body.get("time_ns", received_ns)
    weight = body.get("weight", 1.0)
    if not isinstance(price, int | float) or not isinstance(weight, int | float):
        return None
    if not isinstance(stamp, int):
        return None
    return float(price), int(stamp), float(weight)


@dataclass
class NatsOracle:
    """The live oracle: a QuoteBook filled by NATS messages, the core updated every tick."""

    assets: tuple[str, ...]
    sources: tuple[str, ...]
    params: ParamTable
    policy: OraclePolicy = field(default_factory=OraclePolicy)
    clock_ns: Callable[[], int] = time.time_ns
    quote_root: str = QUOTE_ROOT
    price_root: str = PRICE_ROOT
    received: int = 0
    ignored: int = 0
    updates: int = 0
    state: OracleState = field(init=False)
    book: QuoteBook = field(init=False)

    def __post_init__(self) -> None:
        self.book = QuoteBook(self.assets, self.sources)
        self.state = OracleState.initial(len(self.assets), as_of_ns=self.clock_ns())

    async def _on_quote(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        quote = parse_quote(msg.data, received_ns=self.clock_ns())
        if len(parts) != 3 or quote is None:
            self.ignored += 1
            return
        price, stamp, weight = quote
        if self.book.put(parts[2], parts[1], price_usd=price, time_ns=stamp, weight=weight):
            self.received += 1
        else:
            self.ignored += 1

    async def tick(self, client: Client) -> OracleUpdate:
        """One core update from the book, published."""
        now_ns = max(self.clock_ns(), self.state.as_of_ns)
        self.state, result = update(self.state, self.book.snapshot(), now_ns=now_ns, params=self.params)
        self.updates += 1
        for i, asset in enumerate(self.assets):
            payload = json.dumps(price_message(i, asset, result)).encode()
            await client.publish(f"{self.price_root}.{asset}", payload)
        for event in liquidation_pauses(result, self.policy, asset_names=self.assets):
            log.warning(
                "liquidations paused for %s: %s (age %.0f ms)", event.asset, event.reason, event.age_ms
            )
            body = {"event": "liquidation_paused", **dataclasses.asdict(event)}
            await client.publish(f"{self.price_root}.events", json.dumps(body).encode())
        return result

    async def run(
        self,
        servers: str,
        *,
        tick_ns: int,
        duration_s: float | None = None,
        stop: asyncio.Event | None = None,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Subscribe, then update every tick_ns until `stop` is set or duration_s has passed."""
        client = await nats.connect(
            servers, connect_timeout=2, max_reconnect_attempts=3, error_cb=_log_connection_error
        )
        try:
            await client.subscribe(f"{self.quote_root}.*.*", cb=self._on_quote)
            await client.flush()
            if ready is not None:
                ready.set()
            loop = asyncio.get_running_loop()
            deadline = None if duration_s is None else loop.time() + duration_s
            stop = stop or asyncio.Event()
            while not stop.is_set() and (deadline is None or loop.time() < deadline):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=tick_ns / 1e9)
                await self.tick(client)
                await client.flush()
        finally:
            await client.drain()
