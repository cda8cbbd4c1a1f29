"""In-memory implementations of every port in `engine.ports`: real implementations over Python
lists and numpy arrays, not mocks. Tests, notebooks and Dask workers (which receive their data
by value) drive the engine through these; the CLI drives it through the adapters.

    port                  in memory
    PriceHistorySource    ArrayPriceHistory.from_arrays(days=, symbols=, close_usd=)
    VolatilityFilter      GivenVolatility(volatility_daily=)       returns the vols it was given
    QuoteSource           ListQuoteFeed(assets=, sources=)          append quotes, read a table
    EventSink             ListEventSink()                           .events, in order
    Clock                 FixedClock(time_ns=), SteppingClock(start_ns=, step_ns=)
    PricePath             a list of (as_of_ns, {symbol: index USD})
    OpenInterestSource    GivenOpenInterest(panel=)                 returns the panel it was given
    FundingSource         GivenFunding(panel=)                      returns the panel it was given
    VolumeSource          GivenVolume(panel=)                       returns the panel it was given
    ImpliedVolSource      GivenImpliedVol(panel=)                   returns the panel it was given
    EventStore            MemoryEventStore()                        records and snapshots in lists
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.ledger.events import Event
from crossmargin.core.market_history import DailyPanel
from crossmargin.core.var.history import PriceHistory
from crossmargin.engine.inputs import QuoteTable
from crossmargin.engine.journal import LogRecord, Snapshot
from crossmargin.errors import InputError, StoreError

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "ArrayPriceHistory",
    "FixedClock",
    "GivenFunding",
    "GivenImpliedVol",
    "GivenOpenInterest",
    "GivenVolatility",
    "GivenVolume",
    "ListEventSink",
    "ListQuoteFeed",
    "MemoryEventStore",
    "Quote",
    "SteppingClock",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenOpenInterest:
    """Daily open interest held in memory (USD, `core.market_history.DailyPanel`)."""

    panel: DailyPanel

    def open_interest_history(self) -> DailyPanel:
        return self.panel


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenFunding:
    """Daily mean 8-hour funding rates held in memory (`core.market_history.DailyPanel`)."""

    panel: DailyPanel

    def funding_history(self) -> DailyPanel:
        return self.panel


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenVolume:
    """Daily traded volume held in memory (USD, `core.market_history.DailyPanel`)."""

    panel: DailyPanel

    def volume_history(self) -> DailyPanel:
        return self.panel


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenImpliedVol:
    """Daily implied volatility held in memory (annualised fraction, `DailyPanel`)."""

    panel: DailyPanel

    def implied_volatility_history(self) -> DailyPanel:
        return self.panel


@dataclass(frozen=True, slots=True, kw_only=True)
class ArrayPriceHistory:
    """Daily closes held in memory: days (T,) as ISO dates or datetime64[D], ascending; symbols
    (N,); close_usd (T, N), USD, NaN where a symbol has no close. Validated on construction
    (`core.var.history.PriceHistory`: strictly increasing days, prices > 0)."""

    history: PriceHistory

    @classmethod
    def from_arrays(
        cls, *, days: npt.ArrayLike, symbols: Sequence[str], close_usd: npt.ArrayLike
    ) -> ArrayPriceHistory:
        closes = np.asarray(close_usd, dtype=np.float64)
        day_array = np.asarray(days).astype("datetime64[D]")
        return cls(history=PriceHistory(days=day_array, symbols=tuple(symbols), close_usd=closes))

    def price_history(self) -> PriceHistory:
        return self.history


@dataclass(frozen=True, slots=True, kw_only=True)
class GivenVolatility:
    """A volatility filter that returns the forecasts it was given: volatility_daily either (F,)
    (one daily vol per factor, the same every day) or (T + 1, F) for exactly T returns. Daily
    standard deviations of log returns, > 0."""

    volatility_daily: FloatArray

    def __post_init__(self) -> None:
        vol = np.asarray(self.volatility_daily, dtype=np.float64)
        if vol.ndim not in (1, 2):
            raise InputError("volatility_daily", f"must be (F,) or (T+1, F), got shape {vol.shape}")
        if not np.all(np.isfinite(vol) & (vol > 0.0)):
            raise InputError("volatility_daily", "must be finite and > 0")

    def __call__(self, daily_log_returns: FloatArray) -> FloatArray:
        n_returns, n_factors = daily_log_returns.shape
        vol = np.asarray(self.volatility_daily, dtype=np.float64)
        if vol.ndim == 1:
            if vol.shape[0] != n_factors:
                raise InputError("volatility_daily", f"{vol.shape[0]} vols for {n_factors} factors")
            return np.tile(vol, (n_returns + 1, 1))
        if vol.shape != (n_returns + 1, n_factors):
            raise InputError(
                "volatility_daily", f"shape {vol.shape} != (T+1, F) = {(n_returns + 1, n_factors)}"
            )
        return vol.copy()


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """One source quote: time_ns (ns since the epoch, UTC), asset, source, price_usd (> 0), weight."""

    time_ns: int
    asset: str
    source: str
    price_usd: float
    weight: float = 1.0


@dataclass(slots=True, kw_only=True)
class ListQuoteFeed:
    """A list-backed quote feed: `append` quotes as they arrive, `quote_table` reads them all,
    sorted by time (stable: quotes of the same time keep their order). `assets` and `sources`
    fix the names' order (the oracle's asset order); empty: the sorted names seen."""

    assets: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    quotes: list[Quote] = field(default_factory=list)

    def append(self, quote: Quote) -> None:
        self.quotes.append(quote)

    def quote_table(self) -> QuoteTable:
        return QuoteTable.from_columns(
            time_ns=[q.time_ns for q in self.quotes],
            asset=[q.asset for q in self.quotes],
            source=[q.source for q in self.quotes],
            price_usd=[q.price_usd for q in self.quotes],
            weight=[q.weight for q in self.quotes],
            assets=self.assets or None,
            sources=self.sources or None,
        )


@dataclass(slots=True)
class ListEventSink:
    """Keeps every event it receives, in order (`events`)."""

    events: list[Event] = field(default_factory=list)

    def append(self, event: Event) -> None:
        self.events.append(event)


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedClock:
    """Always the same time, time_ns (ns since the epoch, UTC)."""

    time_ns: int

    def now_ns(self) -> int:
        return self.time_ns


@dataclass(slots=True, kw_only=True)
class SteppingClock:
    """start_ns on the first read, then step_ns (>= 0) later at every read."""

    start_ns: int
    step_ns: int
    reads: int = 0

    def __post_init__(self) -> None:
        if self.step_ns < 0:
            raise InputError("step_ns", f"must be >= 0 (a clock never goes back), got {self.step_ns}")

    def now_ns(self) -> int:
        moment = self.start_ns + self.reads * self.step_ns
        self.reads += 1
        return moment


@dataclass(slots=True)
class MemoryEventStore:
    """`engine.ports.EventStore` in process memory: durable as long as the process lives (tests,
    notebooks, what-if replays). Same rules as the SQL store: a batch must continue the counter,
    keys are unique, nothing is written when a batch is refused."""

    records: list[LogRecord] = field(default_factory=list)
    stored_snapshots: list[Snapshot] = field(default_factory=list)
    keys: dict[str, tuple[int, str]] = field(default_factory=dict)

    def append(self, records: Sequence[LogRecord]) -> None:
        expected = len(self.records) + 1
        batch_keys: set[str] = set()
        for n, record in enumerate(records):
            if record.sequence != expected + n:
                raise StoreError(f"record {record.sequence} does not continue the log at {expected + n}")
            key = record.idempotency_key
            if key is not None and (key in self.keys or key in batch_keys):
                raise StoreError(f"idempotency key {key!r} is already in the log")
            if key is not None:
                batch_keys.add(key)
        self.records.extend(records)
        for record in records:
            if record.idempotency_key is not None:
                self.keys[record.idempotency_key] = (record.sequence, record.body_sha256)

    def read(self, from_sequence: int, limit: int) -> list[LogRecord]:
        start = max(from_sequence, 1) - 1
        return self.records[start : start + max(limit, 0)]

    def idempotency_keys(self, from_sequence: int, limit: int) -> list[str]:
        return [r.idempotency_key for r in self.read(from_sequence, limit) if r.idempotency_key is not None]

    def last_sequence(self) -> int:
        return len(self.records)

    def find_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        return {k: self.keys[k] for k in keys if k in self.keys}

    def save_snapshot(self, snapshot: Snapshot, *, keep: int | None = None) -> None:
        self.stored_snapshots.append(snapshot)
        if keep is not None:
            self.keep_newest_snapshots(keep)

    def snapshots(self) -> Iterator[Snapshot]:
        return iter(sorted(self.stored_snapshots, key=lambda s: s.sequence, reverse=True))

    def keep_newest_snapshots(self, count: int) -> None:
        self.stored_snapshots = list(self.snapshots())[:count][::-1]

    def truncate_after(self, sequence: int) -> None:
        del self.records[sequence:]
        self.stored_snapshots = [s for s in self.stored_snapshots if s.sequence <= sequence]
        self.keys = {k: v for k, v in self.keys.items() if v[0] <= sequence}

    def close(self) -> None:
        return None
