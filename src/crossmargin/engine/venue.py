"""The margin service's application core: a live venue over a durable, hash-chained event log.

Contract (what the HTTP API and any other front end build on):

Commands (`engine.commands`: Deposit, Withdraw, Transfer, Fill, PlaceOrder, CancelOrder,
UpdatePrices, SetRiskParameters, OpenAccount), each with an idempotency key:

    future = venue.submit(command)          # thread-safe, returns concurrent.futures.Future[Ack]
    ack = venue.execute(command)            # the same, waiting: Ack(sequence, record_hash, ...)

  * An `Ack` is returned only after the command's record (and the records it caused: status
    changes are in it, liquidations follow it) is committed durably by the EventStore. Its
    `sequence` is the command's gap-free log sequence number.
  * A refused command raises `InputError(field, problem)` from `future.result()` and writes
    nothing; the same key may be retried.
  * The same key with the same body returns the original Ack (`duplicate=True`), however often;
    the same key with another body raises `IdempotencyConflict(key, sequence)`.
  * After a failed commit the venue stops (`VenueUnavailable`): its memory may be ahead of the
    log, so it serves nothing until restarted (`Venue.open` recovers from the log).
  * Commands arriving while a commit is in flight form the next group: one transaction (one
    fsync) per group (group commit), each acknowledged after that commit.

Queries (committed state only; a read waits for an in-flight commit):

    venue.account(id)           AccountView: balances (units), positions, equity/IM/MM/available,
                                open-order reservation, withdrawable units per asset, status
    venue.margin(id, model)     the account's MarginResult under any margin model
    venue.what_if(id, trades)   margin before and after hypothetical trades
    venue.explain(id)           per-position / per-asset contributions (core Breakdown)
    venue.insurance_fund()      units per asset of @insurance
    venue.log(from_sequence, limit)                     LogEntry values, in sequence order
    venue.preview_parameters(parameters)                 what a risk-parameter change would do
    venue.margin_at(id, sequence)                        margin as of a past sequence, with the
                                                         parameters then in force

Subscription (margin updates, status changes = calls and liquidations, liquidation fills, ADL,
waterfall stages), in sequence order, resumable:

    sub = venue.subscribe(from_sequence=0, account=None)  # None: the whole venue
    batch = sub.next(timeout_s=1.0)   # list[Notification], each after every one it depends on

Everything is a fold of the log (`engine.venue_state.VenueState.apply_effects`): a record holds
the command and what it did (postings in integer minor units, position changes, status changes,
audit records), so replay does no margin maths. Monitoring: an `UpdatePrices` re-margins only
the holders of what moved (the long-lived `RiskEngine`), runs the margin-call state machine on
them (vectorised, `engine.monitor`), then liquidates every account in liquidation through the
existing ledger (`core.ledger.apply` with `Liquidate`), each liquidation its own record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Names re-exported for the API layer: one import gives the whole contract.
from crossmargin.engine.commands import (
    CancelOrder,
    Command,
    Deposit,
    Fill,
    OpenAccount,
    PlaceOrder,
    RiskParameters,
    SetRiskParameters,
    Transfer,
    UpdatePrices,
    Withdraw,
)

__all__ = [
    "Ack",
    "AccountView",
    "CancelOrder",
    "Command",
    "Deposit",
    "Fill",
    "LogEntry",
    "Notification",
    "OpenAccount",
    "ParameterPreview",
    "PlaceOrder",
    "RecoveryReport",
    "RiskParameters",
    "SetRiskParameters",
    "Transfer",
    "UpdatePrices",
    "VenueSettings",
    "Withdraw",
    "WhatIfTrade",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """A committed command: its log `sequence` (gap-free, from 1), chain `record_hash`, `kind`,
    the venue time it was stamped with, and the sequences of the records it caused (liquidations).
    `duplicate`: this is the original Ack returned again for a repeated key."""

    sequence: int
    idempotency_key: str
    kind: str
    as_of_ns: int
    record_hash: str
    caused: tuple[int, ...] = ()
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueSettings:
    """Operating settings. `max_batch`: commands per group commit; `group_window_s`: how long
    the writer waits for more commands after the first of a group (0: only those already
    queued); `snapshot_every`: records between snapshots; `max_margin_jump_fraction`: a risk
    parameter change raising total IM by more than this is refused without override;
    `recover_to_verified_prefix`: on a log that fails verification, drop everything after the
    last verified record (saying so) instead of refusing to start; `verify_full_log`: check the
    whole hash chain at start-up, not only the records after the snapshot."""

    max_batch: int = 1024
    group_window_s: float = 0.0
    snapshot_every: int = 10_000
    max_margin_jump_fraction: float = 0.10
    recover_to_verified_prefix: bool = False
    verify_full_log: bool = True
    max_liquidation_rounds: int = 64


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
class LogEntry:
    """A log record as a reader sees it: the decoded payload ({"command": ..., "effects": ...})."""

    sequence: int
    kind: str
    idempotency_key: str | None
    as_of_ns: int
    record_hash: str
    payload: Mapping[str, Any]


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


class Subscription:
    """A cursor over the venue's notifications (`Venue.subscribe`): `next` returns the ones after
    the cursor, waiting up to `timeout_s` for a commit when there are none, and moves the cursor."""

    def next(self, *, timeout_s: float = 1.0, limit: int = 1000) -> list[Notification]:
        raise NotImplementedError

    @property
    def cursor(self) -> int:
        """The last sequence delivered (resume from it)."""
        raise NotImplementedError


class Venue:
    """The live venue (module docstring). Build with `Venue.open`; one per event log."""

    @classmethod
    def open(cls, *args: Any, **kwargs: Any) -> Venue:
        """open(store, genesis, *, clock, settings) -> Venue: verify the log, load the newest
        verified snapshot, fold the records after it, start the writer thread. `recovery`
        says what was found. Raises CorruptLogError (refuses to start) on a log that fails
        verification unless settings.recover_to_verified_prefix."""
        raise NotImplementedError

    def submit(self, command: Command) -> Any:
        raise NotImplementedError

    def execute(self, command: Command, *, timeout_s: float | None = None) -> Ack:
        raise NotImplementedError

    def account(self, account: str) -> AccountView:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the commits in flight, stop the writer, close the store."""
        raise NotImplementedError
