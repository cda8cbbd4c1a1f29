"""What the venue answers with: a command's `Ack`, an account as of a sequence, prices with
their age, the whole book at one sequence, a parameter change's preview, log entries,
notifications, and how the venue came up. Immutable values; the venue builds them
(`engine.venue`), front ends serialise them (`service`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.ledger.state import LedgerConfig
from crossmargin.core.margin import MarginModel, MarginResult
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation


class Ack(NamedTuple):
    """A committed command: its log `sequence` (gap-free, from 1), chain `record_hash`, `kind`,
    the venue time it was stamped with. `duplicate`: this is the original Ack returned again for
    a repeated key (every other field equal to the original's). A named tuple, like the log's
    records: one per command on the writer's path, built in half a frozen dataclass's time."""

    sequence: int
    idempotency_key: str
    kind: str
    as_of_ns: int
    record_hash: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountView:
    """One account as of `sequence`. Balances in integer minor units per asset (borrowings < 0);
    positions {instrument: (contracts, entry price)}; margin numbers USD (float64 risk maths):
    equity, IM, MM, available = equity − IM − reserved_usd (IM that open orders reserve);
    withdrawable_units per asset: the most a Withdraw of that asset alone would accept now
    (0 while the account is under a margin call or the venue has bad debt)."""

    account: str
    sequence: int
    status: str
    balances_units: Mapping[str, int]
    positions: Mapping[str, tuple[int, float]]
    open_orders: Sequence[Mapping[str, Any]]
    equity_usd: float
    initial_margin_usd: float
    maintenance_margin_usd: float
    reserved_usd: float
    available_usd: float
    withdrawable_units: Mapping[str, int]
    margin_call_deadline_ns: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceState:
    """One index price as the venue holds it: `price_usd`; `quoted_ns`, when an `UpdatePrices`
    last named the symbol, or, for a price the venue has held since before it opened, the time of
    its last record (the quote is at least that old: `exact` False); `age_s` at the venue's clock;
    `oracle`: the oracle's last word on it ("ok", "held", "stale", "no_price"; "" if it never said)
    and `band_fraction` its accepted sources' band relative to the price (NaN: not told). status:
    "held" when the oracle's circuit breaker holds a move (the venue keeps its last price),
    "stale" when `age_s` > `max_age_s` (`VenueSettings.max_price_age_s`) or the oracle says its
    sources are stale or gone, else "valid". `adapters.feeds.venue_prices` sends the OK prices and
    the oracle's word on every other one."""

    symbol: str
    price_usd: float
    quoted_ns: int
    exact: bool
    age_s: float
    max_age_s: float
    status: str
    oracle: str = ""
    band_fraction: float = math.nan

    @classmethod
    def at(
        cls,
        symbol: str,
        price_usd: float,
        *,
        quoted_ns: int,
        exact: bool,
        now_ns: int,
        max_age_s: float,
        oracle: str = "",
        band_fraction: float = math.nan,
    ) -> PriceState:
        """The price's state at `now_ns` (class docstring)."""
        age_s = max(now_ns - quoted_ns, 0) / 1e9
        if oracle == "held":
            status = "held"
        elif age_s > max_age_s or oracle in ("stale", "no_price"):
            status = "stale"
        else:
            status = "valid"
        return cls(
            symbol=symbol,
            price_usd=float(price_usd),
            quoted_ns=quoted_ns,
            exact=exact,
            age_s=age_s,
            max_age_s=max_age_s,
            status=status,
            oracle=oracle,
            band_fraction=band_fraction,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WholeBook:
    """The whole venue at one committed sequence, read under the venue's lock (between two
    commits): the time of its last record, the ledger config with the risk parameters in force,
    the monitor's risk engine frozen (its immutable book, market, model and valuation, and a copy
    of its result arrays), each account's committed margin-call status (`AccountStatus` codes,
    int8, in `book.account_ids` order), the system accounts' balances (units per (account,
    asset)), and the index prices with their quote ages (`PriceState`)."""

    sequence: int
    time_ns: int
    config: LedgerConfig
    book: Book
    market: MarketState
    model: MarginModel
    result: MarginResult
    valuation: InstrumentValuation
    status_code: npt.NDArray[np.int8]
    system_units: Mapping[tuple[str, str], int]
    prices: Mapping[str, PriceState]


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatIfTrade:
    """A hypothetical trade of the account: `quantity` contracts (signed) of `instrument` at
    `price` (settlement units; None: today's mark)."""

    instrument: str
    quantity: int
    price: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParameterPreview:
    """What a risk-parameter change would do to the whole book now: total IM and MM before and
    after (USD), the relative IM jump, the accounts it would push under maintenance, and whether
    it would be refused without override (and why)."""

    initial_margin_before_usd: float
    initial_margin_after_usd: float
    maintenance_margin_before_usd: float
    maintenance_margin_after_usd: float
    margin_jump_fraction: float
    pushed_under_maintenance: tuple[str, ...]
    refused_reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceBoard:
    """The prices in force as of `sequence`: index prices USD by symbol (underlyings and collateral
    assets), delta-one marks by instrument, and `set_ns[name]`: the time of the record that last set
    each (absent: set before the venue kept price times, see `VenueState`); `time_ns`: the venue's
    clock at its last record."""

    sequence: int
    time_ns: int
    prices: Mapping[str, float]
    marks: Mapping[str, float]
    set_ns: Mapping[str, int]
    oracle_status: Mapping[str, str] = field(default_factory=dict)
    oracle_band_fraction: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    """A log record as a reader sees it: the decoded payload ({"command": ..., "effects": ...}) and
    who submitted the command (`actor`: an API key id; None for a derived record or an old one)."""

    sequence: int
    kind: str
    idempotency_key: str | None
    as_of_ns: int
    record_hash: str
    payload: Mapping[str, Any]
    actor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One emitted event: `kind` is "margin" (an account's new equity/IM/MM after a command),
    "status" (a margin-call state change: warning, margin_call, liquidation, bankrupt, healthy),
    or a liquidation record ("liquidation_fill", "collateral_sale", "waterfall", "adl", ...).
    Ordered by (sequence, index)."""

    sequence: int
    index: int
    kind: str
    account: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    """How the venue came up: the snapshot used (None: replayed from the start), records folded
    after it, the last sequence, and every problem found and what was done about it."""

    snapshot_sequence: int | None
    records_replayed: int
    last_sequence: int
    problems: tuple[str, ...] = field(default_factory=tuple)
    # verify_on_start="since_snapshot": the idempotency keys read from before the snapshot (those
    # after the key filter it carried), and that filter's `through` (0: none restored).
    keys_read: int = 0
    key_filter_through: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LogAudit:
    """The audit of the log before the snapshot a venue started from (`verify_on_start` =
    "since_snapshot"): `status` "not_needed" (the whole chain was verified at start-up),
    "running", "stopped" (the venue closed first), "verified" (records 1..`through` verify)
    or "failed" (`problem` says where and
    why; the venue's log is corrupt before its snapshot: its state, from the snapshot and the
    verified records after it, is not, but its history is, and a replay from the first record
    would refuse)."""

    status: str
    through: int
    problem: str | None = None
