"""The margin service's application core: a live venue over a durable, hash-chained event log.

Contract (what the HTTP API and any other front end build on):

Commands (`engine.venue.commands`: Deposit, Withdraw, Transfer, Fill, PlaceOrder, CancelOrder,
UpdatePrices, SetRiskParameters, OpenAccount, and the contract lifecycle: SettleFunding,
AccrueInterest, SettleExpiry), each with an idempotency key:

    future = venue.submit(command)          # thread-safe, returns concurrent.futures.Future[Ack]
    ack = venue.execute(command)            # the same, waiting: Ack(sequence, record_hash, ...)
    venue.submit_with_callback(command, callback)   # no future: callback(Ack or refusal), once

  * An `Ack` is returned only after the command's record (and the records it caused: status
    changes are in it, liquidations follow it) is committed durably by the EventStore. Its
    `sequence` is the command's gap-free log sequence number.
  * A refused command raises `InputError(field, problem)` from `future.result()` and writes
    nothing; the same key may be retried.
  * The same key with the same body returns the original Ack (`duplicate=True`), however often;
    the same key with another body raises `IdempotencyConflictError(key, sequence)`.
  * After a failed commit the venue stops (`VenueUnavailableError`): its memory may be ahead of the
    log, so it serves nothing until restarted (`Venue.open` recovers from the log).
  * Commands arriving while a commit is in flight form the next group: one transaction (one
    fsync) per group (group commit), each acknowledged after that commit.
  * `venue.submit_many(commands)` queues a list that is never split across groups: each command
    keeps its own key and is decided or refused on its own, in order; the accepted ones share
    one commit. `venue.submit_batch(commands)` is the same with one future for the list, which
    resolves to each command's Ack or refusal, in order (the batch ingestion path,
    POST /v1/events/batch).

Queries (committed state only; a read waits for an in-flight commit):

    venue.account(id)           AccountView: balances (units), positions, equity/IM/MM/available,
                                open-order reservation, withdrawable units per asset, status
    venue.margin(id, model)     the account's MarginResult under any margin model
    venue.what_if(id, trades)   margin before and after hypothetical trades
    venue.explain(id)           per-position / per-asset contributions (core Breakdown)
    venue.insurance_fund()      units per asset of @insurance
    venue.price_states()        index prices with their quote age and status (stale past a limit)
    venue.whole_book()          the whole venue at one sequence: the monitor's engine frozen,
                                statuses, system balances, parameters in force, prices (WholeBook)
    venue.log(from_sequence, limit)                     LogEntry values, in sequence order
    venue.preview_parameters(parameters)                 what a risk-parameter change would do
    venue.margin_at(id, sequence)                        margin as of a past sequence, with the
                                                         parameters then in force
    venue.recovery, venue.log_audit(timeout_s=...)       how it came up (RecoveryReport) and the
                                                         audit of the log before its snapshot
                                                         (LogAudit; verify_on_start="since_snapshot")

Subscription (margin updates, status changes = calls and liquidations, liquidation fills, ADL,
waterfall stages), in sequence order, resumable:

    sub = venue.subscribe(from_sequence=0, account=None)  # None: the whole venue
    batch = sub.next(timeout_s=1.0)   # list[Notification], each after every one it depends on

Everything is a fold of the log (`engine.venue.state.VenueState.apply_effects`): a record holds
the command and what it did (postings in integer minor units, position changes, status changes,
audit records), so replay does no margin maths. Monitoring: an `UpdatePrices` re-margins only
the holders of what moved (the long-lived `RiskEngine`), runs the margin-call state machine on
them (vectorised, `engine.venue.monitor`), then liquidates every account in liquidation through the
existing ledger (`core.ledger.apply` with `Liquidate`), each liquidation its own record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE, LIQUIDATOR
from crossmargin.core.ledger.state import (
    AccountStatus,
    LedgerConfig,
    LedgerState,
    book_of,
    market_of,
    risk_view,
)
from crossmargin.core.ledger.transact import Tx
from crossmargin.core.liquidation.margin_call import may_withdraw
from crossmargin.core.margin import Breakdown, CrossMargin, MarginModel, MarginResult
from crossmargin.core.market import MarketState
from crossmargin.engine.journal import (
    GENESIS_HASH,
    LogRecord,
    canonical_json,
    command_payload,
    make_record,
    new_tuple,
)
from crossmargin.engine.ports import Clock, EventStore
from crossmargin.engine.venue.adl_candidates import AdlCandidates
from crossmargin.engine.venue.commands import (
    KIND_OF,
    AccrueInterest,
    Command,
    Deposit,
    Fill,
    RiskParameters,
    SetRiskParameters,
    SettleExpiry,
    SettleFunding,
    Transfer,
    UpdatePrices,
    Withdraw,
    body,
    body_digest,
    check_key,
    kind_of,
    non_finite_field,
)
from crossmargin.engine.venue.decide import Effects, decide, liquidation_effects, reserved_usd
from crossmargin.engine.venue.deposit_lane import deposit_body_json, deposit_record
from crossmargin.engine.venue.fill_lane import fill_effects
from crossmargin.engine.venue.genesis import Genesis, config_digest
from crossmargin.engine.venue.key_filter import KeyFilter
from crossmargin.engine.venue.liquidation_queue import LiquidationQueue
from crossmargin.engine.venue.monitor import LIQUIDATION, NO_DEADLINE, Monitor, account_update
from crossmargin.engine.venue.recovery import READ_PAGE, audit_chain, missing_key, recover
from crossmargin.engine.venue.settings import VenueSettings
from crossmargin.engine.venue.snapshot_writer import SnapshotWriter
from crossmargin.engine.venue.state import VenueState, merged_parameters, parameters_dict, with_parameters
from crossmargin.engine.venue.subscription import Subscription
from crossmargin.engine.venue.transfer_lane import transfer_effects, withdraw_effects
from crossmargin.engine.venue.untracked import KeptAnswer, RecentKeys, kept_answer
from crossmargin.engine.venue.views import (
    AccountView,
    Ack,
    LogAudit,
    LogEntry,
    ParameterPreview,
    PriceBoard,
    PriceState,
    RecoveryReport,
    WhatIfTrade,
    WholeBook,
)
from crossmargin.errors import (
    IdempotencyConflictError,
    InputError,
    VenueUnavailableError,
)

# ------------------------------------------------------------------------------------ the venue

_STOP = object()
# Accounts fed to the RiskEngine per step while the writer is idle (between command groups).
IDLE_FLUSH = 64
# Keys hashed into the log's key filter per step while the writer is idle (~0.2 ms a step).
IDLE_ABSORB = 512
# Committed records kept in memory for readers following the head of the log (subscriptions).
RECENT_RECORDS = 65_536
# Records verified per step of the start-up audit (~5 ms; the GIL held for a step at most).
AUDIT_PAGE = 500


class _AuditStoppedError(Exception):
    """The venue is closing: the audit thread stops where it is."""


class _FoldFailedError(Exception):
    """The fold or the monitor failed after a command was decided: the venue must stop."""


Outcome = Ack | BaseException  # one command's answer: its Ack or its refusal
# Told a command's answer once (`Venue.submit_with_callback`), on the thread that answers it.
Callback = Callable[[Outcome], None]


class _BatchAnswers:
    """The answers of one `submit_batch` list, in order, and the one future that resolves with
    them once the last is in. Every answer of a list is given on one thread (the submitter's
    for those refused before queueing, then the committer's, or the writer's at shutdown)."""

    __slots__ = ("answers", "future", "missing")

    def __init__(self, n: int) -> None:
        self.answers: list[Outcome | None] = [None] * n
        self.missing = n
        self.future: Future[list[Outcome]] = Future()

    def give(self, index: int, answer: Outcome) -> None:
        self.answers[index] = answer
        self.missing -= 1
        if self.missing == 0:
            with contextlib.suppress(InvalidStateError):  # cancelled by its client
                self.future.set_result(self.answers)  # type: ignore[arg-type]  # no None left


class _Slot(NamedTuple):
    """Where a command of a `submit_batch` list answers: its place in the list's answers (a
    named tuple: one per command, built in a fifth of a frozen dataclass's time)."""

    batch: _BatchAnswers
    position: int


# Where a command's answer goes: its future, its place in a `submit_batch` list, or a callback.
_Reply = Future[Ack] | _Slot | Callback


@dataclass(slots=True)
class _Pending:
    command: Command
    reply: _Reply
    key: str
    body_sha256: str
    body_json: bytes
    actor: str | None = None


# A decided group: each command's answer (Ack or refusal), the records, the new keys (their KeptAnswer).
_Decided = tuple[list[tuple[_Pending, Ack | BaseException]], list[LogRecord], dict[str, KeptAnswer]]


def _pending(command: Command, reply: _Reply, actor: str | None) -> _Pending:
    """A command checked and encoded for the writer (on the caller's thread); InputError if its
    type, key or body is not one the venue takes."""
    if type(command) not in KIND_OF:
        raise InputError("command", f"not a venue command: {type(command).__name__}")
    key = check_key(command.idempotency_key)
    if type(command) is Deposit and (direct := deposit_body_json(command)) is not None:
        return _Pending(command, reply, key, body_digest("deposit", direct), direct, actor)
    try:
        body_json = canonical_json(body(command))
    except ValueError:  # NaN or inf: no JSON form; the error names the field
        raise non_finite_field(command) or InputError("command", "not JSON-encodable") from None
    return _Pending(command, reply, key, body_digest(kind_of(command), body_json), body_json, actor)


class Venue:
    """The live venue (module docstring). Build with `Venue.open`; one per event log."""

    def __init__(
        self,
        *,
        store: EventStore,
        config: LedgerConfig,
        state: VenueState,
        clock: Clock,
        settings: VenueSettings,
        recovery: RecoveryReport,
        log_keys: KeyFilter,
    ) -> None:
        self._store = store
        self._base_config = config
        self._state = state
        self._clock = clock
        self.settings = settings
        self.recovery = recovery
        self._lock = threading.RLock()
        self._committed = threading.Condition(threading.Lock())
        self._committed_sequence = state.sequence
        # Groups decided (folded) and handed to the committer, not yet committed: 0 or 1, guarded
        # by _committed. A query waits for 0 (`_reading`): it sees only what the log holds.
        self._uncommitted = 0
        self._commits: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._recent: deque[LogRecord] = deque(maxlen=RECENT_RECORDS)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # C-level: ~1 us less per command
        self._failed: BaseException | None = None
        self._closed = False
        # Committed keys seen and their answers, where the cyclic collector never walks.
        self._keys = RecentKeys(settings.recent_keys)
        # Every key in the log that is not in _keys, approximately (and some that are): see
        # _decide_group and _remember.
        self._log_keys = log_keys
        self._monitor: Monitor | None = None
        self._opened: list[str] = []  # accounts opened since the monitor last grew
        self._dirty: set[str] = set()
        # A price with no recorded set time (held since before the venue kept them) counts from
        # the recovered state's time: its quote is at least that old.
        self._opened_ns = state.time_ns
        self._stats = {"commands": 0, "records": 0, "batches": 0, "rejected": 0, "last_tick_s": 0.0}
        self._stats.update(
            snapshots=0,
            snapshot_failures=0,
            snapshot_seconds=0.0,
            snapshot_writer_seconds=0.0,
            snapshot_fork_failures=0,
            key_lookups=0,
            lane_deposits=0,
            lane_fills=0,
            lane_transfers=0,
            lane_withdrawals=0,
        )
        self._config_in_force: tuple[int, LedgerConfig] | None = None  # (versions, config)
        self._snapshots = SnapshotWriter(
            store, settings, self._stats, last_sequence=recovery.snapshot_sequence or 0
        )
        self._committer = threading.Thread(target=self._commit_loop, name="venue-committer", daemon=True)
        self._committer.start()
        self._writer = threading.Thread(target=self._write_loop, name="venue-writer", daemon=True)
        self._writer.start()
        self._audit = LogAudit(status="not_needed", through=0)
        self._audited = 0  # the last record the start-up audit has verified (a running count)
        self._audit_done = threading.Event()
        self._audit_stop = threading.Event()
        self._auditor: threading.Thread | None = None
        if settings.verify_on_start == "since_snapshot" and recovery.snapshot_sequence:
            self._audit = LogAudit(status="running", through=recovery.snapshot_sequence)
            self._auditor = threading.Thread(target=self._audit_log, name="venue-audit", daemon=True)
            self._auditor.start()
        else:
            self._audit_done.set()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        store: EventStore,
        genesis: Genesis,
        *,
        clock: Clock,
        settings: VenueSettings | None = None,
    ) -> Venue:
        """Verify the whole log's hash chain, load the newest verified snapshot, fold the records
        after it, start the writer. An empty log gets the genesis record. A log that fails
        verification (flipped bytes, a swapped or missing record, a counter ahead of the records)
        raises CorruptLogError, or with `settings.recover_to_verified_prefix` is cut back to its
        last verified record; `venue.recovery.problems` says what was found and done."""
        settings = settings or VenueSettings()
        config = genesis.config
        digest = config_digest(config)
        if store.last_sequence() == 0 and not store.read(1, 1):
            payload = {
                "command": {"label": genesis.label, "config_digest": digest},
                "effects": dict(genesis.effects),
            }
            record = make_record(
                previous_hash=GENESIS_HASH,
                sequence=1,
                idempotency_key=None,
                kind="genesis",
                as_of_ns=int(genesis.effects.get("time_ns", config.valuation_ns)),
                body_sha256=hashlib.sha256(canonical_json(payload["command"])).hexdigest(),
                payload=payload,
            )
            store.append([record])
        log_keys = KeyFilter()
        state, report = recover(store, digest, settings, log_keys)
        return cls(
            store=store,
            config=config,
            state=state,
            clock=clock,
            settings=settings,
            recovery=report,
            log_keys=log_keys,
        )

    # -- commands --------------------------------------------------------------------------------

    def submit(self, command: Command, *, actor: str | None = None) -> Future[Ack]:
        """Queue a command; the future resolves to its Ack after commit (module docstring).
        `actor`: who submits it (an API key id), kept in its log record (`LogRecord.actor`).
        `submit_many` of one, without its lists (the one-event path of every client)."""
        future: Future[Ack] = Future()
        self._submit_one(command, future, actor)
        return future

    def submit_with_callback(self, command: Command, callback: Callback, *, actor: str | None = None) -> None:
        """`submit` without a future: `callback(answer)` is called once, with the command's Ack
        after its commit or with the exception that refused it (InputError,
        IdempotencyConflictError, VenueUnavailableError), on the thread that answers it: the
        committer's after a commit, the writer's when the venue stops with the command still
        queued, the caller's for a command refused before it is queued. For a client that only
        needs to be told: a `concurrent.futures.Future` (its condition, its done-callback,
        set_result) costs ~3.5 us of the ~28 a deposit costs one at a time
        (bench/bench_service.py). `callback` runs where every other command is answered: it must
        be quick and must not query the venue (as a done-callback must not); an exception from
        it is logged and ignored."""
        self._submit_one(command, callback, actor)

    def _submit_one(self, command: Command, reply: _Reply, actor: str | None) -> None:
        """One command to the writer, answered through `reply`; refused at once (on the caller's
        thread) when it is not one the venue takes."""
        try:
            self._enqueue(_pending(command, reply, actor))
        except InputError as error:
            _answer(reply, error)

    def submit_many(self, commands: Sequence[Command], *, actor: str | None = None) -> list[Future[Ack]]:
        """Queue commands that share one group commit: each keeps its own idempotency key, is
        decided (and refused, with its own InputError) on its own, in order, on the state the
        ones before it left; all accepted are written in one transaction (one fsync) and each
        future resolves after that commit. The writer never splits the list across groups (it may
        share the group with other commands queued at the same time)."""
        futures: list[Future[Ack]] = []
        pendings: list[_Pending] = []
        for command in commands:
            future: Future[Ack] = Future()
            futures.append(future)
            try:
                pendings.append(_pending(command, future, actor))
            except InputError as error:
                future.set_exception(error)
        if pendings:
            self._enqueue(pendings[0] if len(pendings) == 1 else pendings)
        return futures

    def submit_batch(self, commands: Sequence[Command], *, actor: str | None = None) -> Future[list[Outcome]]:
        """`submit_many` with one future for the whole list: it resolves, after the list's commit,
        to each command's answer in order (its Ack, or the exception that refused it: InputError,
        IdempotencyConflictError, VenueUnavailableError). The batch ingestion path: a future per
        command (its creation, its resolution, a callback each) cost ~3 us a command."""
        batch = _BatchAnswers(len(commands))
        pendings: list[_Pending] = []
        for index, command in enumerate(commands):
            try:
                pendings.append(_pending(command, new_tuple(_Slot, (batch, index)), actor))
            except InputError as error:
                batch.give(index, error)
        if pendings:
            self._enqueue(pendings)
        elif not commands:
            batch.future.set_result([])
        return batch.future

    def _enqueue(self, item: _Pending | list[_Pending]) -> None:
        """Hand checked commands to the writer (a list stays whole: one group), or refuse them
        all when the venue is closed or stopped."""
        if self._closed or self._failed is not None:
            for p in item if isinstance(item, list) else [item]:
                _answer(p.reply, VenueUnavailableError("the venue is not accepting commands"))
            return
        self._queue.put(item)

    def execute(self, command: Command, *, timeout_s: float | None = None, actor: str | None = None) -> Ack:
        return self.submit(command, actor=actor).result(timeout=timeout_s)

    # -- queries ---------------------------------------------------------------------------------

    @property
    def last_sequence(self) -> int:
        with self._committed:
            return self._committed_sequence

    def accounts(self) -> list[str]:
        with self._reading():
            self._check_serving()
            return list(self._state.traders)

    def account(self, account: str) -> AccountView:
        with self._reading():
            self._check_serving()
            state = self._state
            config = self.config
            if account not in state.status:
                raise InputError("account", f"unknown account {account!r}")
            sub = state.sub_state([account], config.assets.symbols)
            result = risk_view(sub, config, (account,)).result
            reserved = reserved_usd(state, config, account, sub)
            balances = {k: state.balances.get((account, k), 0) for k in config.assets.symbols}
            return AccountView(
                account=account,
                sequence=state.sequence,
                status=state.status[account].name.lower(),
                balances_units={k: v for k, v in balances.items() if v},
                positions={i: (p.quantity, p.entry_price) for i, p in state.positions_of(account).items()},
                open_orders=[
                    {
                        "order_id": o.order_id,
                        "instrument": o.instrument,
                        "quantity": o.quantity,
                        "price": o.price,
                    }
                    for o in state.orders_of(account)
                ],
                equity_usd=float(result.equity_usd[0]),
                initial_margin_usd=float(result.initial_margin_usd[0]),
                maintenance_margin_usd=float(result.maintenance_margin_usd[0]),
                reserved_usd=reserved,
                available_usd=float(result.available_usd[0]) - reserved,
                withdrawable_units={k: self._withdrawable(account, k, v) for k, v in balances.items()},
                margin_call_deadline_ns=state.deadlines.get(account),
            )

    def prices(self) -> dict[str, float]:
        """Index prices in force, USD by symbol (underlyings and collateral assets)."""
        with self._reading():
            self._check_serving()
            return dict(self._state.prices)

    def price_states(self) -> dict[str, PriceState]:
        """Index prices in force with their quote age and status (`PriceState`)."""
        with self._reading():
            self._check_serving()
            return self._price_states()

    def whole_book(self) -> WholeBook:
        """The whole venue at one committed sequence (`WholeBook`): O(accounts) copies under the
        lock (the result arrays and the statuses), for a consistent venue-wide picture."""
        with self._reading():
            self._check_serving()
            state = self._state
            config = self.config
            engine = self._ensure_monitor().engine
            result = engine.result
            copied = {
                f.name: np.array(getattr(result, f.name))
                for f in dataclasses.fields(result)
                if isinstance(getattr(result, f.name), np.ndarray)
            }
            ids = engine.book.account_ids
            return WholeBook(
                sequence=state.sequence,
                time_ns=state.time_ns,
                config=config,
                book=engine.book,
                market=engine.market,
                model=engine.model,
                result=dataclasses.replace(result, **copied),  # type: ignore[arg-type]
                valuation=engine.valuation,
                status_code=np.fromiter((int(state.status[a]) for a in ids), dtype=np.int8, count=len(ids)),
                system_units={
                    (a, k): int(state.balances.get((a, k), 0))
                    for a in (INSURANCE, BAD_DEBT)
                    for k in config.assets.symbols
                },
                prices=self._price_states(),
            )

    def _price_states(self) -> dict[str, PriceState]:
        now = max(self._clock.now_ns(), self._state.time_ns)
        quoted = self._state.price_ns  # durable: the time of the record that set each price
        oracle, band = self._state.oracle_status, self._state.oracle_band_fraction
        return {
            symbol: PriceState.at(
                symbol,
                price,
                quoted_ns=quoted.get(symbol, self._opened_ns),
                exact=symbol in quoted,
                now_ns=now,
                max_age_s=self.settings.max_price_age_s,
                oracle=oracle.get(symbol, ""),
                band_fraction=band.get(symbol, math.nan),
            )
            for symbol, price in self._state.prices.items()
        }

    def balances(self, asset: str) -> dict[str, int]:
        """Every account's balance of `asset` (traders and system accounts, units, non-zero), read
        at one committed sequence: a consistent cut (they sum to zero: double entry)."""
        with self._reading():
            self._check_serving()
            return {a: v for (a, k), v in self._state.balances.items() if k == asset and v}

    def price_board(self) -> PriceBoard:
        """Every price in force with the time it was set, at one committed sequence (`PriceBoard`)."""
        with self._reading():
            self._check_serving()
            state = self._state
            return PriceBoard(
                sequence=state.sequence,
                time_ns=state.time_ns,
                prices=dict(state.prices),
                marks=dict(state.marks),
                set_ns=dict(state.price_ns),
                oracle_status=dict(state.oracle_status),
                oracle_band_fraction=dict(state.oracle_band_fraction),
            )

    def ledger_snapshot(self) -> tuple[int, LedgerState, LedgerConfig]:
        """The whole ledger (every trader and system account) as a core LedgerState, with the
        config in force and the sequence it is as of: a consistent cut between two commits. The
        lock is held only for shallow copies of the fold's dictionaries (C-speed; their values are
        immutable); the LedgerState is assembled after it (what `VenueState.sub_state` of every
        trader gives), and a Book built from it (`book_of`) without blocking the writer."""
        with self._reading():
            self._check_serving()
            state = self._state
            config = self.config
            sequence, time_ns, postings_count = state.sequence, state.time_ns, state.postings_count
            traders, status, deadlines = list(state.traders), dict(state.status), dict(state.deadlines)
            balances, positions = dict(state.balances), dict(state.positions)
            prices, marks, expired = dict(state.prices), dict(state.marks), frozenset(state.expired)
        symbols = set(config.assets.symbols)
        ledger = LedgerState(
            traders=tuple(sorted(traders)),
            balances={k: v for k, v in balances.items() if v and k[1] in symbols},
            positions={k: p for k, p in positions.items() if k[0] in status},
            prices=prices,
            marks=marks,
            status=status,
            call_deadline_ns=deadlines,
            expired=expired,
            time_ns=time_ns,
            sequence=postings_count,
        )
        return sequence, ledger, config

    def _withdrawable(self, account: str, asset: str, held: int) -> int:
        """The largest amount a Withdraw of `asset` alone would accept now.

        Gated to 0 where the ledger gates withdrawals (status, bad debt). Otherwise the free margin
        after withdrawing x units, f(x) = available(x) − reserved, falls monotonically and
        piecewise linearly in x (haircut tiers), and a withdrawal is accepted exactly when
        f(x) ≥ 0 and x ≤ held: regula falsi on integer units keeps f(low) ≥ 0 > f(high) and
        takes a bisection step whenever the bracket fails to halve (a few risk views, not ~40
        ledger decisions). The answer is confirmed by the ledger's own decision."""
        state, config = self._state, self.config
        if held <= 0 or not may_withdraw(state.status[account]) or _bad_debt(state, config):
            return 0
        sub = state.sub_state([account], config.assets.symbols)
        reserved = reserved_usd(state, config, account, sub)

        def free_usd(units: int) -> float:
            balances = dict(sub.balances)
            balances[(account, asset)] = held - units
            after = dataclasses.replace(sub, balances=balances)
            return float(risk_view(after, config, (account,)).result.available_usd[0]) - reserved

        low, high = 0, held
        f_low, f_high = free_usd(low), free_usd(high)
        if f_high >= 0.0:
            return held if self._accepts(account, asset, held) else 0
        if f_low < 0.0:
            return 0
        bisect = False
        while high - low > 1:
            width = high - low
            # Interpolate where f crosses zero; bisect after a step that did not halve the bracket.
            x = low + width // 2 if bisect else low + int(width * (f_low / (f_low - f_high)))
            x = min(max(x, low + 1), high - 1)
            f_x = free_usd(x)
            if f_x >= 0.0:
                low, f_low = x, f_x
            else:
                high, f_high = x, f_x
            bisect = not bisect and (high - low) * 2 > width
        return low if low == 0 or self._accepts(account, asset, low) else 0

    def _accepts(self, account: str, asset: str, units: int) -> bool:
        state = self._state
        command = Withdraw(idempotency_key="-", account=account, asset=asset, amount_units=units)
        try:
            decide(state, self.config, command, state.time_ns)
        except InputError:
            return False
        return True

    def margin(self, account: str, model: MarginModel) -> dict[str, float]:
        """The account's margin under `model` (any core margin model) at today's state, USD."""
        with self._reading():
            self._check_serving()
            book, market = self._account_book(account)
            result = model.evaluate(book, market)
            return _result_row(result, 0)

    def what_if(self, account: str, trades: Sequence[WhatIfTrade]) -> dict[str, Any]:
        """Margin of the account before and after hypothetical trades (cross margin with the
        parameters in force; trades against the venue at `price`, default the mark, no fee)."""
        with self._reading():
            self._check_serving()
            config = self.config
            if account not in self._state.status:
                raise InputError("account", f"unknown account {account!r}")
            sub = self._state.sub_state([account], config.assets.symbols)
            before = risk_view(sub, config, (account,)).result
            tx = Tx(config, sub)
            for n, trade in enumerate(trades):
                table = config.instruments
                if trade.instrument not in table.index or trade.instrument in self._state.expired:
                    raise InputError(
                        f"trades[{n}].instrument", f"unknown or expired instrument {trade.instrument!r}"
                    )
                if (
                    isinstance(trade.quantity, bool)
                    or not isinstance(trade.quantity, int)
                    or trade.quantity == 0
                ):
                    raise InputError(f"trades[{n}].quantity", "must be a non-zero integer")
                if (
                    int(table.kind[table.index[trade.instrument]]) == InstrumentKind.OPTION
                    and trade.price is None
                ):
                    raise InputError(f"trades[{n}].price", "an option trade needs its premium")
                price = tx.mark(trade.instrument) if trade.price is None else float(trade.price)
                if not math.isfinite(price) or price < 0:
                    raise InputError(f"trades[{n}].price", "must be a finite number >= 0")
                tx.trade(account, LIQUIDATOR, trade.instrument, trade.quantity, price, "what_if")
            after = risk_view(tx.snapshot(), config, (account,)).result
            return {"before": _result_row(before, 0), "after": _result_row(after, 0)}

    def explain(self, account: str) -> Breakdown:
        """Per-position and per-collateral contributions to the account's cross margin."""
        with self._reading():
            self._check_serving()
            book, market = self._account_book(account)
            return CrossMargin(self.config.margin).breakdown(book, market, [0], None)

    def insurance_fund(self) -> dict[str, int]:
        """Units per asset held by the insurance fund (@insurance)."""
        with self._reading():
            self._check_serving()
            return {k: self._state.balances.get((INSURANCE, k), 0) for k in self.config.assets.symbols}

    def log(self, from_sequence: int, limit: int = 100) -> list[LogEntry]:
        """Committed records from `from_sequence` on (at most `limit`, ≤ 10,000)."""
        records = self.records(max(from_sequence, 1), min(max(limit, 0), 10_000))
        return [
            LogEntry(
                sequence=r.sequence,
                kind=r.kind,
                idempotency_key=r.idempotency_key,
                as_of_ns=r.as_of_ns,
                record_hash=r.record_hash,
                payload=r.decoded(),
                actor=r.actor,
            )
            for r in records
        ]

    def records(self, from_sequence: int, limit: int) -> list[LogRecord]:
        """Committed records only: never one a reader could see before its commit. The newest
        `RECENT_RECORDS` come from memory (subscribers following the head cost no query)."""
        with self._committed:
            upto = self._committed_sequence
            recent = self._recent
            first_recent = recent[0].sequence if recent else upto + 1
            if from_sequence > upto or limit <= 0:
                return []
            count = min(limit, upto - from_sequence + 1)
            if from_sequence >= first_recent:
                start = from_sequence - first_recent
                return [recent[i] for i in range(start, start + count)]
        return self._store.read(from_sequence, count)

    def subscribe(self, *, from_sequence: int = 0, account: str | None = None) -> Subscription:
        return Subscription(self, from_sequence=from_sequence, account=account)

    def wait_for(self, sequence: int, *, timeout_s: float) -> bool:
        """Wait until `sequence` is committed (True) or `timeout_s` passed (False)."""
        with self._committed:
            return self._committed.wait_for(lambda: self._committed_sequence >= sequence, timeout=timeout_s)

    def preview_parameters(self, parameters: RiskParameters) -> ParameterPreview:
        """What-if of a risk-parameter change over the whole book (`ParameterPreview`)."""
        with self._reading():
            self._check_serving()
            return self._preview(parameters)

    def margin_at(self, account: str, sequence: int) -> dict[str, float]:
        """The account's cross margin right after record `sequence`, with the prices and risk
        parameters then in force: the log replayed from the start into a fresh fold."""
        if not 1 <= sequence <= self.last_sequence:
            raise InputError("sequence", f"must lie in [1, {self.last_sequence}]")
        past = VenueState()
        next_sequence = 1
        while next_sequence <= sequence:
            page = self._store.read(next_sequence, min(READ_PAGE, sequence - next_sequence + 1))
            for record in page:
                past.apply_effects(
                    record.decoded()["effects"], sequence=record.sequence, record_hash=record.record_hash
                )
            next_sequence += len(page)
            if not page:
                break
        if account not in past.status:
            raise InputError("account", f"account {account!r} did not exist at sequence {sequence}")
        config = past.config_in_force(self._base_config)
        sub = past.sub_state([account], config.assets.symbols)
        return _result_row(risk_view(sub, config, (account,)).result, 0)

    def warm_up(self) -> None:
        """Run the margin cycle's kernels once without changing anything: the whole-book engine
        the first tick would build (every trader margined) and a ledger margin check (the
        serial kernels of withdrawals, transfers and fills), and the monitor's growth buffers and
        tick paths (`Monitor.warm_up`). A server calls it before it reports ready, so that loading
        compiled kernels (core.jit) and the first sign-up's copy are start-up time, not a
        request's or a tick's."""
        with self._reading():
            state = self._state
            if not state.traders:
                return
            # Growth buffers (the first sign-up copies nothing) and every build a tick reaches.
            self._ensure_monitor().warm_up()
            first = tuple(state.traders[:1])
            risk_view(state.sub_state(first, self.config.assets.symbols), self.config, first)

    def state_digest(self) -> str:
        with self._reading():
            return self._state.digest()

    def stats(self) -> dict[str, Any]:
        """Counters for metrics: commands committed, records, batches, rejected, queue depth, the
        last tick's margin-cycle seconds, accounts under maintenance (engine's view), idempotency
        keys looked up in the log, held in memory, and the bytes of the filter of the log's keys;
        the start-up audit's progress (`log_audit_running`, `log_audit_failed`: 0 or 1) and the
        last record it verified. Read as they stand, without the writer's lock: a scrape (and
        /readyz) runs on the service's event loop and must not wait for a commit;
        `last_sequence` is the committed one."""
        monitor = self._monitor
        out: dict[str, Any] = dict(self._stats)
        out["queue_depth"] = self._queue.qsize()
        out["keys_in_memory"] = len(self._keys)
        out["key_filter_bytes"] = self._log_keys.nbytes
        out["key_filter_waiting"] = self._log_keys.waiting
        out["last_sequence"] = self.last_sequence
        out["accounts_under_maintenance"] = (
            int(np.count_nonzero(monitor.statuses >= LIQUIDATION)) if monitor is not None else None
        )
        out["failed"] = None if self._failed is None else str(self._failed)
        audit = self._audit
        out["log_audit_running"] = int(audit.status == "running")
        out["log_audit_failed"] = int(audit.status == "failed")
        out["log_audit_verified_through"] = (
            None
            if audit.status == "not_needed"
            else audit.through
            if audit.status == "verified"
            else self._audited
        )
        return out

    @property
    def failure(self) -> str | None:
        """Why the venue stopped serving (a failed commit or fold; only a restart, which recovers
        from the log, undoes it), or None while it serves. Read without the lock, as `stats`."""
        failed = self._failed
        return None if failed is None else str(failed)

    @property
    def config(self) -> LedgerConfig:
        """The configuration in force, one object per parameter version (the ledger's risk
        views share a revaluation per configuration object and prices: a fresh object per call
        would revalue every instrument again after any risk-parameter change)."""
        versions = len(self._state.parameter_versions)
        cached = self._config_in_force
        if cached is None or cached[0] != versions:
            cached = (versions, self._state.config_in_force(self._base_config))
            self._config_in_force = cached
        return cached[1]

    # -- shutdown --------------------------------------------------------------------------------

    def log_audit(self, *, timeout_s: float | None = 0.0) -> LogAudit:
        """The audit of the log before the snapshot the venue started from (`LogAudit`),
        waiting up to `timeout_s` (None: until it is done) for it to finish."""
        self._audit_done.wait(timeout_s)
        return self._audit

    def _audit_log(self) -> None:
        """The audit thread (`verify_on_start` = "since_snapshot"): records 1..the start-up
        snapshot's, AUDIT_PAGE at a time, paced to `settings.audit_busy_limit` of the time. A
        break is logged as an error and kept in `log_audit()`; the venue goes on serving the
        state it verified."""
        through = self._audit.through

        limit = self.settings.audit_busy_limit

        def between_pages(verified: int, took_s: float) -> None:
            self._audited = verified
            # Paced: a page that took T, then a rest of T (1 / limit - 1); woken by close.
            if self._audit_stop.wait(took_s * (1.0 / limit - 1.0)):
                raise _AuditStoppedError

        problem: str | None = None
        started = time.monotonic()
        try:
            # The key filter restored from the snapshot is checked against the log's keys too.
            restored = self.recovery.key_filter_through
            broken = audit_chain(
                self._store,
                through,
                page=AUDIT_PAGE,
                between_pages=between_pages,
                check=(lambda records: missing_key(self._log_keys, records, restored)) if restored else None,
            )
            if broken is not None:
                problem = f"log failed verification at sequence {broken.sequence} ({broken.reason})"
        except _AuditStoppedError:
            self._audit = LogAudit(status="stopped", through=through)
            self._audit_done.set()
            return
        except Exception as error:  # a store that fails under the audit: said, not fatal
            problem = f"the audit could not read the log: {type(error).__name__}: {error}"
        if problem is None:
            self._audit = LogAudit(status="verified", through=through)
            logging.getLogger(__name__).info(
                "log audit: records 1..%d verified in %.1f s", through, time.monotonic() - started
            )
        else:
            self._audit = LogAudit(status="failed", through=through, problem=problem)
            logging.getLogger(__name__).error("log audit before snapshot %d: %s", through, problem)
        self._audit_done.set()

    def close(self) -> None:
        """Finish the commits in flight, stop the writer, write the snapshots it asked for,
        close the store."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join()
        self._commits.put(_STOP)  # after the writer's last group: every decided group commits
        self._committer.join()
        self._snapshots.close()
        self._audit_stop.set()
        if self._auditor is not None:
            self._auditor.join()
        self._store.close()

    def __enter__(self) -> Venue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals: the writer -------------------------------------------------------------------

    def _check_serving(self) -> None:
        if self._failed is not None:
            raise VenueUnavailableError(f"the venue stopped after a failed commit: {self._failed}")

    def _write_loop(self) -> None:
        try:
            self._write_groups()
        finally:
            # Whatever was queued behind the stop (a submit racing close) is refused, not lost.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                for p in item if isinstance(item, list) else [item]:
                    if isinstance(p, _Pending):
                        _answer(p.reply, VenueUnavailableError("the venue is shut down"))

    def _write_groups(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Pending] = []
            _add(batch, first)
            stop = False
            deadline = time.monotonic() + self.settings.group_window_s
            while len(batch) < self.settings.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                _add(batch, item)
            self._process(batch)
            if stop:
                return
            while self._queue.empty() and self._dirty and self._failed is None:
                with self._lock:
                    self._flush_dirty(IDLE_FLUSH)
            self._absorb_idle()

    def _absorb_idle(self) -> None:
        """Hash the keys memory let go into the log's key filter, IDLE_ABSORB at a time, while
        no command waits. The filter is the writer's alone (no lock). Between steps the GIL
        is offered: the committer, back from a commit, would otherwise wait for it behind the
        writer (CPython hands it over on request only after its 5 ms switch interval)."""
        while self._queue.empty() and self._log_keys.waiting and self._failed is None:
            self._log_keys.absorb(IDLE_ABSORB)
            time.sleep(0)

    def _process(self, batch: list[_Pending]) -> None:
        """Decide and fold one group, then hand it to the committer once the group before it is
        committed: deciding a group overlaps the commit (INSERTs and fsync, the GIL released) of
        the one before, and at most one group is ever ahead of the log. Every answer, a refusal
        or a duplicate's Ack included, is given by the committer in group order, after the
        commit of everything decided before it."""
        with self._lock:
            if self._failed is not None:
                for p in batch:
                    _answer(p.reply, VenueUnavailableError(str(self._failed)))
                return
            if self._snapshots.due(self._state.sequence):
                self._drain()  # a snapshot is of the committed state
                if self._failed is None:
                    self._snapshots.start(self._state, self._log_keys, self._keys.held)
            group = self._decide_group(batch)
            if group is None:
                return
            answers, records, keys = group
            self._remember(keys)  # the next group may repeat them before this one commits
            with self._committed:
                self._committed.wait_for(lambda: self._uncommitted == 0)
                self._uncommitted += 1
            self._commits.put((answers, records, len(keys)))

    def _remember(self, keys: dict[str, KeptAnswer]) -> None:
        """A decided group's keys into memory (if its commit fails the venue stops, so nothing is
        remembered that the log will not hold). The filter of the log's keys is asked only about
        keys not in memory, so a key enters it when it leaves memory (`RecentKeys.update` hands
        back the older half, a hundred thousand at a time, not one group at a time: ~1 us per
        command, issue 16)."""
        dropped = self._keys.update(keys)
        if dropped:
            # Still in the log: findable there once out of memory. Held exactly at once and
            # hashed into the filter while the writer is idle (`_absorb_idle`): at once, 100,000
            # keys stalled the writer 81-106 ms. A drop still waiting when the next comes (no
            # idle time since) is hashed in now, so at most one waits.
            self._log_keys.absorb()
            for half in dropped:  # a dropped half's index, kept as it is
                self._log_keys.add_later(half.keys, through=half.through)

    def _drain(self) -> None:
        """Wait until every decided group is committed (or refused)."""
        with self._committed:
            self._committed.wait_for(lambda: self._uncommitted == 0)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """The state lock, once the group in commit (if any) is committed: a query sees only what
        the log holds. Futures resolve on the committer thread, where such a wait would wait on
        itself: a query from a done-callback is refused (as on any executor's own thread)."""
        if threading.current_thread() is self._committer:
            raise RuntimeError("a venue query from a command's done-callback: run it on another thread")
        with self._lock:
            self._drain()
            yield

    def _commit_loop(self) -> None:
        """The committer: append each decided group (one transaction), then tell readers and
        answer its commands. After a failed commit nothing more is written: the fold is ahead of
        the log, every later group is refused and the venue stops serving (`_failed`)."""
        failure: BaseException | None = None
        while True:
            item = self._commits.get()
            if item is _STOP:
                return
            answers, records, commands = item
            if records and failure is None:
                try:
                    self._store.append(records)
                except BaseException as error:
                    failure = error
                    self._failed = error
            if failure is not None:
                refused = VenueUnavailableError(f"commit failed, not acknowledged: {failure}")
                answers, records = [(p, refused) for p, _ in answers], []
            self._commit_done(records, commands)
            for p, answer in answers:
                _answer(p.reply, answer)

    def _decide_group(self, batch: list[_Pending]) -> _Decided | None:
        """Each command's answer, in order: its Ack, the original Ack of a key seen before (in
        the log, in memory or earlier in this group), or its refusal; with the accepted
        commands' records (folded) and their new keys (`KeptAnswer`: body hash and Ack fields).
        None when the fold failed: the venue stops, every command of the batch refused."""
        held = self._keys.answers([p.key for p in batch])  # those in memory: nearly always none
        group_keys: dict[str, KeptAnswer] = {}
        records: list[LogRecord] = []
        # A key not in memory is looked up in the log only if the filter of the log's keys that
        # memory let go (and those found at start-up) cannot rule it out (a fresh key, nearly
        # always: no query per group).
        unseen = [p.key for p in batch if p.key not in held]
        maybe = [k for k, hit in zip(unseen, self._log_keys.may_hold(unseen), strict=True) if hit]
        stored = self._store.find_keys(maybe) if maybe else {}
        self._stats["key_lookups"] += len(maybe)
        answers: list[tuple[_Pending, Ack | BaseException]] = []
        lane = self.settings.deposit_lane
        for p in batch:
            known = held.get(p.key) or group_keys.get(p.key)
            if known is None and p.key in stored:
                known = self._stored_answer(stored[p.key][0])
            if known is not None:  # the same body: its first answer; another body: refused
                body_sha256, sequence, kind, as_of_ns, record_hash = known
                if body_sha256 == p.body_sha256:
                    answers.append((p, Ack(sequence, p.key, kind, as_of_ns, record_hash, duplicate=True)))
                else:
                    answers.append((p, IdempotencyConflictError(p.key, sequence)))
                continue
            try:
                now = max(self._clock.now_ns(), self._state.time_ns)  # one clock reading a command
                command = p.command
                direct = self._lane_deposit(p, command, now) if lane and type(command) is Deposit else None
                new = [direct] if direct is not None else self._decide_and_apply(p, now)
            except _FoldFailedError as failure:  # the fold moved and cannot be trusted: stop
                self._failed = failure.__cause__ or failure
                for q in batch:
                    _answer(q.reply, VenueUnavailableError(f"not acknowledged: {self._failed!r}"))
                return None
            except Exception as error:  # refused (InputError...) or a bug in a pure decision
                answers.append((p, error))
                self._stats["rejected"] += 1
                continue
            first = new[0]
            # Ack(sequence, idempotency_key, kind, as_of_ns, record_hash, duplicate), one a command.
            fields = (first.sequence, p.key, first.kind, first.as_of_ns, first.record_hash, False)
            ack: Ack = new_tuple(Ack, fields)
            records.extend(new)
            group_keys[p.key] = kept_answer(p.body_sha256, first)
            answers.append((p, ack))
        return answers, records, group_keys

    def _commit_done(self, records: list[LogRecord], commands: int) -> None:
        """After a group's commit (records empty: nothing was written): counters, readers told."""
        if records:
            self._stats["records"] += len(records)
            self._stats["batches"] += 1
            self._stats["commands"] += commands
        with self._committed:
            self._recent.extend(records)
            if records:
                self._committed_sequence = records[-1].sequence
            self._uncommitted -= 1
            self._committed.notify_all()

    def _stored_answer(self, sequence: int) -> KeptAnswer:
        """The answer of the logged command at `sequence` (a key out of memory), kept again."""
        record = self._store.read(sequence, 1)[0]
        answer = kept_answer(record.body_sha256, record)
        self._remember({str(record.idempotency_key): answer})
        return answer

    def _decide_and_apply(self, p: _Pending, now: int) -> list[LogRecord]:
        """Decide one command at venue time `now`, apply its record (and the liquidations it
        causes) to the fold; returns the records. Refusal: InputError, nothing applied."""
        state = self._state
        config = self.config
        command = p.command
        effects: Effects | None = None
        lane = ""
        if isinstance(command, Fill) and self.settings.fill_lane:
            effects, lane = fill_effects(state, config, command, now), "lane_fills"
        elif isinstance(command, Transfer) and self.settings.transfer_lane:
            effects, lane = transfer_effects(state, config, command, now), "lane_transfers"
        elif isinstance(command, Withdraw) and self.settings.transfer_lane:
            effects, lane = withdraw_effects(state, config, command, now), "lane_withdrawals"
        if effects is None:
            effects = decide(state, config, command, now)
        else:
            self._stats[lane] += 1
        kind = kind_of(command)
        if isinstance(command, SetRiskParameters):
            preview = self._preview(command.parameters)
            if preview.refused_reason is not None and not command.override:
                raise InputError(
                    "set_risk_parameters.override", f"refused without override: {preview.refused_reason}"
                )
            effects["records"] = [
                [
                    "risk_parameters",
                    "@venue",
                    {"preview": dataclasses.asdict(preview), "override": command.override},
                ]
            ]
        # Everything above is a pure decision (a refusal leaves nothing behind); from here on the
        # monitor and the fold move, so a failure is not a refusal but the end of this venue.
        try:
            monitored = isinstance(command, UpdatePrices | SetRiskParameters) and bool(state.traders)
            if monitored:
                self._monitor_cycle(effects, now)
            payload = {"command": None, "effects": effects}  # the body rides as bytes
            first = self._append_record(
                kind=kind,
                key=p.key,
                body_hash=p.body_sha256,
                as_of_ns=now,
                payload=payload,
                raw=command_payload(p.body_json, effects),
                actor=p.actor,
            )
            out = [first]
            # Funding, interest and an expiry's settlement move money: who they push into
            # liquidation is liquidated before the ack, as after a price update.
            lifecycle = isinstance(command, SettleFunding | AccrueInterest | SettleExpiry)
            if monitored or (lifecycle and bool(state.traders)):
                out.extend(self._liquidations(now))
        except BaseException as error:
            raise _FoldFailedError("applying a decided command failed") from error
        return out

    def _lane_deposit(self, p: _Pending, command: Deposit, now: int) -> LogRecord | None:
        """The deposit lane (`engine.venue.deposit_lane`): the record written and folded, or None (nothing
        done) for a deposit the lane leaves to the generic path."""
        state = self._state
        record = deposit_record(
            state,
            self.config,
            command,
            key=p.key,
            body_json=p.body_json,
            body_sha256=p.body_sha256,
            as_of_ns=now,
            actor=p.actor,
        )
        if record is None:
            return None
        try:
            state.apply_deposit(
                command.account, command.asset, command.amount_units, record.sequence, record.record_hash, now
            )
        except BaseException as error:  # the fold moved and cannot be trusted: stop
            raise _FoldFailedError("folding a deposit failed") from error
        if self._monitor is not None:  # re-margined at the monitor's next use
            self._dirty.add(command.account)
        self._stats["lane_deposits"] += 1
        return record

    def _append_record(
        self,
        *,
        kind: str,
        key: str | None,
        body_hash: str,
        as_of_ns: int,
        payload: dict[str, Any],
        raw: bytes | None = None,
        actor: str | None = None,
    ) -> LogRecord:
        state = self._state
        record = make_record(
            previous_hash=state.head_hash,
            sequence=state.sequence + 1,
            idempotency_key=key,
            kind=kind,
            as_of_ns=as_of_ns,
            body_sha256=body_hash,
            payload=payload,
            raw=raw,
            actor=actor,
        )
        effects = payload["effects"]
        state.apply_effects(
            effects, sequence=record.sequence, record_hash=record.record_hash, as_of_ns=as_of_ns
        )
        self._after_apply(effects)
        return record

    def _after_apply(self, effects: Mapping[str, Any]) -> None:
        """Keep the monitor in step: status changes now, touched accounts at the next tick."""
        if effects.get("accounts"):
            # New accounts hold nothing: the whole-book engine grows by their rows at its next
            # use (`_add_opened`; a rebuild cost the next tick O(accounts) of Python, seconds at
            # 1M accounts).
            if self._monitor is not None:
                self._opened.extend(effects["accounts"])
            return
        if self._monitor is None:
            return
        for account, status, deadline in effects.get("status", ()):
            self._monitor.set_status(account, status, deadline)
        self._dirty.update(a for a in moved_accounts(effects) if a in self._state.status)

    def _ensure_monitor(self) -> Monitor:
        state, config = self._state, self.config
        if self._monitor is None:
            sub = state.sub_state(state.traders, config.assets.symbols)
            book = book_of(sub, config)
            market = market_of(sub, config)
            self._monitor = Monitor(
                book,
                market,
                model=CrossMargin(config.margin),
                # In the monitor book's row order (sub_state sorts the traders), not the state's.
                statuses=np.array([int(state.status[a]) for a in book.account_ids], dtype=np.int8),
                deadlines=np.array(
                    [state.deadlines.get(a, NO_DEADLINE) for a in book.account_ids], dtype=np.int64
                ),
            )
            self._dirty.clear()
            self._opened.clear()
        self._flush_dirty(None)
        return self._monitor

    def _add_opened(self, monitor: Monitor) -> None:
        """The accounts opened since the monitor last grew, added in one step (a growth copies
        the engine's O(accounts) arrays once: per tick, not per sign-up), with the statuses the
        fold gave them meanwhile (`set_status` skips an account the monitor does not hold yet)."""
        if not self._opened:
            return
        opened, self._opened = self._opened, []
        monitor.add_accounts(opened)
        for account in opened:
            monitor.set_status(account, int(self._state.status[account]), self._state.deadlines.get(account))

    def _flush_dirty(self, limit: int | None) -> None:
        """Feed the accounts commands touched to the RiskEngine (`on_accounts`, one batch): all
        of them before a tick, or `limit` at a time while the writer is idle, so a tick after a
        burst of commands does not pay for the burst."""
        monitor = self._monitor
        if monitor is None:
            return
        self._add_opened(monitor)  # a dirty account may be new
        state, config = self._state, self.config
        count = len(self._dirty) if limit is None else min(limit, len(self._dirty))
        updates = []
        for _ in range(count):
            account = self._dirty.pop()
            positions = {i: (p.quantity, p.entry_price) for i, p in state.positions_of(account).items()}
            balances = {
                k: to_float(state.balances.get((account, k), 0), config.decimals[k])
                for k in config.assets.symbols
                if state.balances.get((account, k), 0)
            }
            updates.append(account_update(account, positions, balances))
        if updates:  # one batch: one book and one model call (`RiskEngine.on_accounts`)
            monitor.on_accounts(updates)

    def _monitor_cycle(self, effects: Effects, now: int) -> None:
        """Re-margin the holders of what moved (or, after a parameter change, everyone) and add
        the status changes to the record's effects."""
        started = time.perf_counter()
        state = self._state
        monitor = self._ensure_monitor()
        if "parameters" in effects:
            config = with_parameters(self._base_config, effects["parameters"])
            monitor.engine.use_model(CrossMargin(config.margin))
            rows = np.arange(len(monitor.account_ids), dtype=np.int64)
            changes = monitor.evaluate(rows, now_ns=now, params=config.margin_call)
        else:
            config = self.config
            prices = {**state.prices, **effects.get("prices", {})}
            marks = {**state.marks, **effects.get("marks", {})}
            view = LedgerState(
                traders=(),
                balances={},
                positions={},
                prices=prices,
                marks=marks,
                status={},
                call_deadline_ns={},
                expired=frozenset(state.expired),
                time_ns=now,
                sequence=0,
            )
            changes = monitor.on_market(
                market_of(view, config),
                now_ns=now,
                params=config.margin_call,
            )
        status_rows: list[list[Any]] = []
        records: list[list[Any]] = list(effects.get("records", ()))
        names = AccountStatus
        for r, s, d, cover, prev in zip(
            changes.rows.tolist(),
            changes.status.tolist(),
            changes.deadline_ns.tolist(),
            changes.coverage.tolist(),
            changes.previous.tolist(),
            strict=True,
        ):
            account = monitor.account_ids[r]
            deadline = None if d == NO_DEADLINE else d
            status_rows.append([account, s, deadline])
            if s != prev:
                records.append(
                    [
                        "status",
                        account,
                        {
                            "previous": names(prev).name.lower(),
                            "status": names(s).name.lower(),
                            "coverage": cover if math.isfinite(cover) else None,
                            "as_of_ns": now,
                            "deadline_ns": deadline,
                        },
                    ]
                )
        effects["status"] = status_rows
        effects["records"] = records
        self._stats["last_tick_s"] = time.perf_counter() - started

    def _liquidations(self, now: int) -> list[LogRecord]:
        """Liquidate every account in liquidation, riskiest first, each `Liquidate` its own record,
        until none is left (bounded rounds per account)."""
        out: list[LogRecord] = []
        attempts: dict[str, int] = {}
        rounds = self.settings.max_liquidation_rounds
        from_monitor = self.settings.adl_candidates_from_monitor
        candidates = AdlCandidates(self._state, self._equity_of) if from_monitor else None
        monitor = self._ensure_monitor()
        # Riskiest first, sorted once a round (a sort of every account in liquidation per pick
        # made a round quadratic in its liquidations).
        queue = LiquidationQueue(monitor)
        ids = monitor.account_ids
        while True:
            row = queue.pick(lambda r: attempts.get(ids[r], 0) < rounds)
            if row is None:
                return out
            account = ids[row]
            attempts[account] = attempts.get(account, 0) + 1
            try:
                effects = liquidation_effects(
                    self._state, self.config, account, now, candidates_of=candidates
                )
            except InputError:
                # The ledger's own view says it is not in liquidation (numerical edge between the
                # kernel and the reference path): the ledger decides; align the monitor.
                monitor.set_status(
                    account, int(self._state.status[account]), self._state.deadlines.get(account)
                )
                continue
            payload = {"command": {"account": account}, "effects": effects}
            body_hash = hashlib.sha256(canonical_json(payload["command"])).hexdigest()
            out.append(
                self._append_record(
                    kind="liquidation", key=None, body_hash=body_hash, as_of_ns=now, payload=payload
                )
            )
            moved = moved_accounts(effects)
            if candidates is not None:
                candidates.moved(moved)
            moved.update(r[0] for r in effects.get("status", ()))
            self._ensure_monitor()  # re-margins the moved accounts: their coverage is current
            queue.moved(monitor.row_of[a] for a in moved if a in monitor.row_of)

    def _equity_of(self, accounts: Sequence[str]) -> npt.NDArray[np.float64]:
        """The accounts' equity (USD) from the monitor's whole-book margin: ADL ranks its
        candidates on it (`decide.liquidation_effects`). `_liquidations` flushes the monitor
        before each decision, so it is the fold's state at the tick's prices: the bits the
        ledger's own risk view gives (the same fused cross kernel per account)."""
        monitor = self._ensure_monitor()
        row_of = monitor.row_of
        rows = np.fromiter((row_of.get(a, -1) for a in accounts), dtype=np.int64, count=len(accounts))
        equity: npt.NDArray[np.float64] = monitor.engine.result.equity_usd[rows]
        unknown = np.flatnonzero(rows < 0)
        if unknown.size:  # not expected (the monitor holds every trader): the ledger's own view
            names = tuple(accounts[int(k)] for k in unknown)
            sub = self._state.sub_state(names, self.config.assets.symbols)
            equity[unknown] = risk_view(sub, self.config, names).result.equity_usd
        return equity

    def _preview(self, parameters: RiskParameters) -> ParameterPreview:
        state = self._state
        current = (
            state.parameter_versions[-1][1]
            if state.parameter_versions
            else parameters_dict(self._base_config)
        )
        merged = merged_parameters(
            current,
            {
                "margin": parameters.margin,
                "margin_call": parameters.margin_call,
                "liquidation": parameters.liquidation,
            },
        )
        config = with_parameters(self._base_config, merged)
        monitor = self._ensure_monitor()
        engine = monitor.engine
        before = engine.result
        after = CrossMargin(config.margin).evaluate(engine.book, engine.market, engine.valuation)
        im_before = float(before.initial_margin_usd.sum())
        im_after = float(after.initial_margin_usd.sum())
        jump = (im_after - im_before) / im_before if im_before > 0 else (math.inf if im_after > 0 else 0.0)
        pushed = np.flatnonzero(after.below_maintenance & ~before.below_maintenance)
        names = tuple(monitor.account_ids[r] for r in pushed.tolist())
        reason = None
        if jump > self.settings.max_margin_jump_fraction:
            reason = f"total IM would rise by {jump:.1%}, above {self.settings.max_margin_jump_fraction:.1%}"
        elif names:
            reason = f"{len(names)} account(s) would fall under maintenance"
        return ParameterPreview(
            initial_margin_before_usd=im_before,
            initial_margin_after_usd=im_after,
            maintenance_margin_before_usd=float(before.maintenance_margin_usd.sum()),
            maintenance_margin_after_usd=float(after.maintenance_margin_usd.sum()),
            margin_jump_fraction=jump if math.isfinite(jump) else 1e300,
            pushed_under_maintenance=names,
            refused_reason=reason,
        )

    def _account_book(self, account: str) -> tuple[Book, MarketState]:
        config = self.config
        if account not in self._state.status:
            raise InputError("account", f"unknown account {account!r}")
        sub = self._state.sub_state([account], config.assets.symbols)
        return book_of(sub, config, (account,)), market_of(sub, config)


def moved_accounts(effects: Mapping[str, Any]) -> set[str]:
    """The accounts whose balances or positions a record's effects change (system accounts
    included): the ones to re-margin after it."""
    moved = {a for p in effects.get("postings", ()) for a in p[:2]}
    moved.update(r[0] for r in effects.get("positions", ()))
    return moved


def _answer(reply: _Reply, answer: Outcome) -> None:
    """Give a command its answer: resolve its future unless it is already done, fill its place in
    a `submit_batch` list, or call its callback. Nothing a client did may stop the thread
    answering everyone else: a client may cancel a future it no longer waits for
    (asyncio.wrap_future does when a request is dropped; setting it would raise), and a callback
    that raises is logged. The command itself stands either way (committed or refused as
    decided)."""
    if isinstance(reply, _Slot):
        reply.batch.give(reply.position, answer)
    elif isinstance(reply, Future):
        try:
            if isinstance(answer, Ack):
                reply.set_result(answer)
            else:
                reply.set_exception(answer)
        except InvalidStateError:
            pass
    else:
        try:
            reply(answer)
        except Exception:
            logging.getLogger(__name__).exception("a submit_with_callback callback raised (ignored)")


def _add(batch: list[_Pending], item: Any) -> None:
    """A queued item into the group: one command, or a `submit_many` list, whole."""
    if isinstance(item, list):
        batch.extend(item)
    else:
        batch.append(item)


def _bad_debt(state: VenueState, config: LedgerConfig) -> bool:
    return any(state.balances.get((BAD_DEBT, k), 0) < 0 for k in config.assets.symbols)


def _result_row(result: MarginResult, row: int) -> dict[str, float]:
    return {
        "equity_usd": float(result.equity_usd[row]),
        "initial_margin_usd": float(result.initial_margin_usd[row]),
        "maintenance_margin_usd": float(result.maintenance_margin_usd[row]),
        "available_usd": float(result.available_usd[row]),
        "collateral_value_usd": float(result.collateral_value_usd[row]),
        "position_value_usd": float(result.position_value_usd[row]),
    }
