"""Oracle prices into the live venue: subscribe to `oracle.<asset>` (what `NatsOracle` publishes,
`engine.oracle_replay.price_message`), keep the newest message per symbol the venue knows, and
submit them as one `UpdatePrices` every `interval_s`.

Coalescing: a burst of oracle messages becomes one venue update per interval (the venue
re-margins the holders once, not once per message). Only a price whose status is the oracle's good
word ("ok", `STATUS_LABELS[PriceStatus.VALID]`) is applied: a held, stale or unpriced asset keeps
the venue's last accepted price, as the oracle's policy pauses liquidations on it. Every message's
status and source band (relative to its price) go to the venue too (`oracle_status`,
`oracle_band_fraction`), so the venue can say why a price stopped moving. The idempotency key is
derived from what is sent and the newest `as_of_ns`, so a feed restarted over the same messages
does not apply them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field

import nats
from nats.aio.msg import Msg

from crossmargin.core.oracle import PriceStatus
from crossmargin.engine.journal import canonical_json
from crossmargin.engine.oracle_replay import STATUS_LABELS
from crossmargin.engine.venue import Ack, UpdatePrices, Venue
from crossmargin.errors import CrossMarginError

log = logging.getLogger("crossmargin.venue_prices")
GOOD = STATUS_LABELS[PriceStatus.VALID]  # the oracle's word for a price to use ("ok")
WORDS = frozenset(STATUS_LABELS.values())


@dataclass(slots=True)
class VenuePriceFeed:
    """Feeds one venue from the oracle's NATS subjects `<price_root>.<asset>`."""

    venue: Venue
    price_root: str = "oracle"
    pending: dict[str, float] = field(default_factory=dict)
    pending_status: dict[str, str] = field(default_factory=dict)
    pending_band: dict[str, float] = field(default_factory=dict)
    newest_ns: int = 0
    applied: int = 0
    ignored: int = 0
    symbols: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        config = self.venue.config
        self.symbols = frozenset(config.instruments.underlyings) | frozenset(config.assets.symbols)

    def on_message(self, subject: str, data: bytes) -> None:
        """Take one oracle message. Its status and band are kept for a symbol the venue knows; its
        price only when the status is GOOD. Unknown symbols, unknown words and malformed messages
        are counted in `ignored` and left out (a malformed one logged)."""
        try:
            message = json.loads(data)
            asset = str(message["asset"])
            price = message["price_usd"]
            status = str(message["status"])
            as_of_ns = int(message["as_of_ns"])
        except (ValueError, KeyError, TypeError):
            self.ignored += 1
            log.warning("malformed oracle message on %s", subject)
            return
        if asset not in self.symbols or status not in WORDS:
            self.ignored += 1
            return
        priced = isinstance(price, int | float) and math.isfinite(price) and price > 0.0
        self.pending_status[asset] = status
        band = _band_fraction(message, price) if priced else None
        if band is not None:
            self.pending_band[asset] = band
        if status == GOOD and priced:
            self.pending[asset] = float(price)
        else:
            self.pending.pop(asset, None)  # a later doubt withdraws an earlier price of this interval
            self.ignored += 1
        self.newest_ns = max(self.newest_ns, as_of_ns)

    async def flush(self) -> Ack | None:
        """Submit the pending prices as one UpdatePrices (None when there are none)."""
        if not self.pending and not self.pending_status:
            return None
        prices = dict(sorted(self.pending.items()))
        status = dict(sorted(self.pending_status.items()))
        band = dict(sorted(self.pending_band.items()))
        self.pending.clear()
        self.pending_status.clear()
        self.pending_band.clear()
        digest = hashlib.sha256(canonical_json([prices, status, band])).hexdigest()[:16]
        command = UpdatePrices(
            idempotency_key=f"oracle:{self.newest_ns}:{digest}",
            index_prices=prices,
            oracle_status=status,
            oracle_band_fraction=band,
        )
        try:
            ack = await asyncio.wrap_future(self.venue.submit(command))
        except CrossMarginError as error:
            log.warning("venue refused oracle prices %s: %s", prices, error)
            return None
        self.applied += 1
        return ack

    async def run(
        self,
        servers: str,
        *,
        interval_s: float,
        stop: asyncio.Event | None = None,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Subscribe, then flush every `interval_s` until `stop` is set (a last flush on the way out)."""
        client = await nats.connect(servers, connect_timeout=2, max_reconnect_attempts=3)

        async def received(msg: Msg) -> None:
            self.on_message(msg.subject, msg.data)

        try:
            await client.subscribe(f"{self.price_root}.*", cb=received)
            await client.flush()
            if ready is not None:
                ready.set()
            stop = stop or asyncio.Event()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval_s)
                await self.flush()
        finally:
            await client.drain()


def _band_fraction(message: dict[str, object], price: float) -> float | None:
    """(band_high_usd − band_low_usd) / price_usd, or None when the message has no band."""
    low, high = message.get("band_low_usd"), message.get("band_high_usd")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    width = float(high) - float(low)
    return width / price if math.isfinite(width) and width >= 0.0 else None
