"""What the engine reads and writes outside itself, as small protocols: one boundary, one job.

The engine imports only the core; everything else reaches it through these ports (or through the
value types of `engine.inputs`), passed in by the caller. Adapters implement them over files,
NATS, `arch`; `engine.memory` implements each of them over plain Python and numpy objects, for
tests, notebooks and Dask workers. (Hexagonal architecture, A. Cockburn, "Ports and Adapters",
2005; the protocols are `typing.Protocol`, checked structurally by mypy, PEP 544.)

    port                  carries                                               used by
    PriceHistorySource    daily closes per symbol, USD (T days x N symbols)     var_run, backtest, compare
    VolatilityFilter      daily log returns (T, F) -> volatility forecasts      var_run (filtered HS, GARCH)
    QuoteSource           timestamped source quotes (n_quotes,), time-sorted    priced_run (oracle prices)
    EventSink             every event a simulation accepted, in order           simulation, priced_simulation
    Clock                 the current time, ns since the epoch, UTC             a live risk cycle
    PricePath             (as_of_ns, {symbol: index USD}) steps, time order     simulation.run_price_path
    OpenInterestSource    daily open interest per symbol, USD (T x N)           crowding_backtest
    FundingSource         daily mean 8-hour funding rate per symbol (T x N)     crowding_backtest
    VolumeSource          daily traded volume per symbol, USD (T x N)           calibration (tier sizes)
    ImpliedVolSource      daily implied vol per symbol, annualised (T x N)      calibration (haircuts)
    EventStore            the venue's durable, hash-chained event log + snapshots venue

Every run of the engine is a pure function of what comes through these ports: the same
histories, quotes and price path give the same reports, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from crossmargin.engine.inputs import PricePathStep, QuoteTable

if TYPE_CHECKING:  # annotations only: a margin run that names these ports loads no ledger or log code
    from crossmargin.core.ledger.events import Event
    from crossmargin.core.market_history import DailyPanel
    from crossmargin.core.var.history import PriceHistory
    from crossmargin.engine.journal import LogRecord, Snapshot

FloatArray = npt.NDArray[np.float64]

__all__ = [
    "Clock",
    "EventSink",
    "EventStore",
    "FundingSource",
    "ImpliedVolSource",
    "OpenInterestSource",
    "PriceHistorySource",
    "PricePath",
    "QuoteSource",
    "VolatilityFilter",
    "VolumeSource",
]

# A simulated price path: (as_of_ns, {symbol: index price USD}) in time order. Any iterable is one
# (a list in memory, `adapters.files.price_path.read_price_path` from a CSV file).
PricePath = Iterable[PricePathStep]


@runtime_checkable
class PriceHistorySource(Protocol):
    """Daily closing prices of every symbol it knows.

    Returns a `core.var.history.PriceHistory`: days (T,) datetime64[D] ascending UTC calendar days,
    symbols (N,), close_usd (T, N) > 0, NaN where a symbol has no close that day. A close is
    stamped at the end of its UTC day; the VaR models cut the history at their valuation day
    themselves, so a source returns everything it has. May be called once per model: a source
    that reads a file caches it."""

    def price_history(self) -> PriceHistory: ...


@runtime_checkable
class VolatilityFilter(Protocol):
    """The volatility filter a VaR preset names beside the built-in EWMA (today: GARCH(1,1)).

    daily_log_returns (T, F), factors in columns, no NaN -> volatility forecasts (T + 1, F), daily
    standard deviations of log returns (not annualised, > 0): row t is the forecast for return t
    made with returns before t; row T forecasts the next, unseen day. Filtered historical
    simulation rescales return t by forecast[T] / forecast[t] (Barone-Adesi, Giannopoulos and
    Vosper, "VaR without correlations for portfolios of derivative securities", 1999)."""

    def __call__(self, daily_log_returns: FloatArray, /) -> FloatArray: ...


@runtime_checkable
class QuoteSource(Protocol):
    """A finite stream of source quotes (a recorded day, a generated scenario), read whole.

    Returns an `engine.inputs.QuoteTable` sorted by time: (n_quotes,) time_ns (ns since the epoch),
    asset and source indices into its names, price_usd > 0 and a weight. The oracle replays it
    (`engine.oracle_replay.replay`); an oracle-priced run keeps the last update."""

    def quote_table(self) -> QuoteTable: ...


@runtime_checkable
class EventSink(Protocol):
    """Receives every ledger event a simulation accepted, in the order applied (the event log).

    The events alone replay the run: postings, audit records and the final state are functions
    of them (`core.ledger.apply`), so a sink need not store those. Rejected events never reach
    the sink (they changed nothing). `append` must not fail on a valid event; a sink that writes
    somewhere slow buffers."""

    def append(self, event: Event) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """The current time, integer nanoseconds since the Unix epoch, UTC; never decreasing.

    The engine reads no clock of its own: every report is stamped with its inputs' times. A live
    risk cycle (the service, the NATS oracle's `clock_ns`) asks a Clock, so a test can fix it."""

    def now_ns(self) -> int: ...


@runtime_checkable
class OpenInterestSource(Protocol):
    """Daily open interest of every symbol it knows: a `core.market_history.DailyPanel` of USD
    (days ascending, NaN = no value). A day's value is its close (known at 24:00 UTC)."""

    def open_interest_history(self) -> DailyPanel: ...


@runtime_checkable
class FundingSource(Protocol):
    """Daily funding of every symbol's perpetual: a `DailyPanel` of the day's mean 8-hour rate
    (a fraction per 8 h; > 0: longs pay shorts), NaN where unknown."""

    def funding_history(self) -> DailyPanel: ...


@runtime_checkable
class VolumeSource(Protocol):
    """Daily traded volume of every symbol it knows, USD per UTC day (`DailyPanel`, NaN = none)."""

    def volume_history(self) -> DailyPanel: ...


@runtime_checkable
class ImpliedVolSource(Protocol):
    """Daily implied volatility (e.g. Deribit DVOL, 30-day), annualised as a fraction (0.55 = 55 %),
    per symbol (`DailyPanel`, NaN = none). The close of each day."""

    def implied_volatility_history(self) -> DailyPanel: ...


@runtime_checkable
class EventStore(Protocol):
    """The venue's durable event log (`engine.journal`): gap-free, hash-chained records with their
    postings, a counter row holding the last sequence, and state snapshots.

    `append(records)` writes the records (consecutive sequences continuing the log), their posting
    rows and the counter in ONE transaction and returns only once it is durable (fsync'd); it
    raises `StoreError` and writes nothing when the records do not continue the counter (another
    writer) or the commit fails. One writer per log: an adapter that can tell refuses a second.
    The venue acknowledges a command only after `append` returned.

    `read(from_sequence, limit)` returns stored records in sequence order as stored (the caller
    verifies the chain); `idempotency_keys(from_sequence, limit)` only the idempotency keys of
    those records (the ones that have one: a start-up that trusts a snapshot reads no more of
    the records before it, and of their keys only those the snapshot's key filter lacks);
    `last_sequence()` the counter row; `find_keys(keys)` the stored
    (sequence, body_sha256) of those idempotency keys that are in the log. `snapshots()` newest
    first, each payload read when the iteration reaches it (recovery stops at the first that
    verifies: one payload read, not all); `save_snapshot` is durable on return, and a log's
    writer may append meanwhile (a large payload is written in pieces, never holding the log's
    commits behind one long write); with `keep`, the snapshot is listed and every one but the
    newest `keep` unlisted at once (one transaction: a writer killed between the two never leaves
    more); `keep_newest_snapshots(count)` drops all but the newest `count` (the venue keeps a
    few: a state copy each). `truncate_after(sequence)`
    drops every record after `sequence` and every snapshot after it and sets the counter: recovery
    to a verified prefix, only when the operator asks for it."""

    def append(self, records: Sequence[LogRecord]) -> None: ...

    def read(self, from_sequence: int, limit: int) -> list[LogRecord]: ...

    def idempotency_keys(self, from_sequence: int, limit: int) -> list[str]: ...

    def last_sequence(self) -> int: ...

    def find_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]: ...

    def save_snapshot(self, snapshot: Snapshot, *, keep: int | None = None) -> None: ...

    def snapshots(self) -> Iterator[Snapshot]: ...

    def keep_newest_snapshots(self, count: int) -> None: ...

    def truncate_after(self, sequence: int) -> None: ...

    def close(self) -> None: ...
