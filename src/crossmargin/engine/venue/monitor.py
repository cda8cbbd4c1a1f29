"""Continuous monitoring: the long-lived RiskEngine over the whole venue plus the margin-call state
machine, vectorised over the accounts a price move re-margined.

`next_statuses` is `core.liquidation.margin_call.next_status` over arrays (tests hold the two
equal on random inputs): coverage = equity / MM, with the same thresholds, hysteresis and margin-
call deadline. A tick costs the RiskEngine's incremental re-margin (holders of what moved) plus
O(rows re-margined) numpy work; only the accounts whose status changed reach Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book, grown_rows
from crossmargin.core.liquidation.params import AccountStatus, MarginCallParams
from crossmargin.core.margin import CrossMargin, MarginModel
from crossmargin.core.market import MarketState
from crossmargin.engine.risk_engine import AccountUpdate, PriceTick, RiskEngine

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
StatusArray = npt.NDArray[np.int8]

NO_DEADLINE = -1  # deadline_ns entry of an account without a running margin call

HEALTHY = int(AccountStatus.HEALTHY)
WARNING = int(AccountStatus.WARNING)
MARGIN_CALL = int(AccountStatus.MARGIN_CALL)
LIQUIDATION = int(AccountStatus.LIQUIDATION)
BANKRUPT = int(AccountStatus.BANKRUPT)


def coverages(equity_usd: FloatArray, maintenance_usd: FloatArray) -> FloatArray:
    """equity / MM per account; +inf without requirement (equity ≥ 0), −inf bankrupt without one
    (`core.liquidation.params.coverage` over arrays)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = equity_usd / np.where(maintenance_usd > 0.0, maintenance_usd, 1.0)
    none = np.where(equity_usd >= 0.0, np.inf, -np.inf)
    out: FloatArray = np.where(maintenance_usd > 0.0, ratio, none)
    return out


def next_statuses(
    previous: StatusArray,
    *,
    coverage: FloatArray,
    now_ns: int,
    deadline_ns: IntArray,
    params: MarginCallParams,
) -> tuple[StatusArray, IntArray]:
    """(new status, new deadline or NO_DEADLINE) per account; the rules of `next_status`, in the
    same order of precedence (later assignments win, so they are written weakest first)."""
    status = np.full(previous.shape, HEALTHY, dtype=np.int8)
    deadline = np.full(previous.shape, NO_DEADLINE, dtype=np.int64)
    status[coverage < params.warning_coverage] = WARNING
    call = coverage < params.margin_call_coverage
    running = np.where(deadline_ns != NO_DEADLINE, deadline_ns, now_ns + params.grace_ns)
    expired = call & (now_ns >= running) & (previous == MARGIN_CALL)
    status[call] = MARGIN_CALL
    deadline[call] = running[call]
    status[expired] = LIQUIDATION
    deadline[expired] = NO_DEADLINE
    below = coverage < 1.0
    sticky = ((previous == LIQUIDATION) | (previous == BANKRUPT)) & (coverage < params.exit_coverage)
    status[below | sticky] = LIQUIDATION
    deadline[below | sticky] = NO_DEADLINE
    status[coverage <= 0.0] = BANKRUPT
    deadline[coverage <= 0.0] = NO_DEADLINE
    return status, deadline


def may_change(
    equity_usd: FloatArray,
    maintenance_usd: FloatArray,
    previous: StatusArray,
    deadline_ns: IntArray,
    params: MarginCallParams,
) -> IntArray:
    """Positions of the accounts `next_statuses` could move: all but the HEALTHY ones without a
    deadline whose coverage is surely ≥ T = max(warning, margin-call, 1) (those stay HEALTHY).
    equity < T·MM·(1 + 1e-9) is a superset of equity / MM < T (the factor covers the division's
    rounding; MM = 0 with equity < 0, coverage −inf, is in it)."""
    threshold = max(params.warning_coverage, params.margin_call_coverage, 1.0) * (1.0 + 1e-9)
    flags = (equity_usd < threshold * maintenance_usd) | (previous != HEALTHY) | (deadline_ns != NO_DEADLINE)
    rows: IntArray = np.flatnonzero(flags)
    return rows


@dataclass(frozen=True, slots=True)
class StatusChanges:
    """Accounts whose status (or deadline) changed: rows into the monitor's accounts, their new
    status and deadline (NO_DEADLINE: none) and the coverage that decided it."""

    rows: IntArray
    status: StatusArray
    deadline_ns: IntArray
    coverage: FloatArray
    previous: StatusArray


class Monitor:
    """The whole venue's margin, kept current, and every account's margin-call status.

    `statuses` and `deadlines` mirror the venue state (the venue writes every change it applies
    through `set_status`); `engine` is the RiskEngine (cross margin with the venue's parameters)."""

    def __init__(
        self,
        book: Book,
        market: MarketState,
        *,
        model: MarginModel | None = None,
        statuses: StatusArray | None = None,
        deadlines: IntArray | None = None,
    ) -> None:
        self.engine = RiskEngine(book, market, model if model is not None else CrossMargin())
        self.engine.index_holders()  # every tick needs it; built here, not in the first tick
        n = book.n_accounts
        self.account_ids: Sequence[str] = book.account_ids  # the book's own (AccountIds: no copy)
        if self.account_ids:  # the book's id index, built now rather than inside the first
            book.account_row(self.account_ids[0])  # tick after a sign-up (~0.25 s at 1M ids)
        self.row_of: dict[str, int] = {a: r for r, a in enumerate(self.account_ids)}
        self._buffers: dict[str, npt.NDArray[Any]] = {}  # status rows to grow into
        self.statuses: StatusArray = (
            np.zeros(n, dtype=np.int8) if statuses is None else np.asarray(statuses, dtype=np.int8).copy()
        )
        self.deadlines: IntArray = (
            np.full(n, NO_DEADLINE, dtype=np.int64)
            if deadlines is None
            else np.asarray(deadlines, np.int64).copy()
        )

    def add_accounts(self, account_ids: Sequence[str]) -> None:
        """Accounts just opened (nothing in them, healthy), after the others: the engine grows
        rather than being rebuilt (`RiskEngine.add_accounts`). Their rows come after the rows of
        accounts opened before the monitor was built, so `in_liquidation` breaks an exact tie in
        coverage by that order rather than by account id."""
        self.engine.add_accounts(account_ids)
        start = len(self.account_ids)
        self.account_ids = self.engine.account_ids  # the same ids, no copy and no fold
        self.row_of.update((a, start + k) for k, a in enumerate(account_ids))
        self._grow_status_rows(len(account_ids))
        self.statuses[start:] = HEALTHY
        self.deadlines[start:] = NO_DEADLINE

    def reserve_rows(self) -> None:
        """The engine's and the statuses' per-account arrays into growth buffers with room
        (`RiskEngine.reserve_rows`): the first sign-up then copies nothing."""
        self.engine.reserve_rows()
        self.account_ids = self.engine.account_ids
        self._grow_status_rows(0)

    def warm_up(self) -> None:
        """What a server does before it reports ready: the growth buffers reserved
        (`reserve_rows`) and every kernel build a tick can reach loaded (`RiskEngine.warm_up`),
        so that neither the first sign-up nor the first tick of a kind pays a one-time cost."""
        self.reserve_rows()
        self.engine.warm_up()

    def _grow_status_rows(self, n: int) -> None:
        """Statuses and deadlines with n rows after them (written by the caller), in buffers
        with room (`grown_rows`): no O(accounts) copy per growth."""
        self.statuses, self._buffers["statuses"] = grown_rows(
            self.statuses, n, self._buffers.get("statuses"), writeable=True
        )
        self.deadlines, self._buffers["deadlines"] = grown_rows(
            self.deadlines, n, self._buffers.get("deadlines"), writeable=True
        )

    def set_status(self, account: str, status: int, deadline_ns: int | None) -> None:
        row = self.row_of.get(account)
        if row is not None:
            self.statuses[row] = status
            self.deadlines[row] = NO_DEADLINE if deadline_ns is None else deadline_ns

    def on_account(self, update: AccountUpdate) -> None:
        self.engine.on_account(update)

    def on_accounts(self, updates: Sequence[AccountUpdate]) -> None:
        """`RiskEngine.on_accounts`: many accounts' new states in one batch."""
        self.engine.on_accounts(updates)

    def on_market(self, market: MarketState, *, now_ns: int, params: MarginCallParams) -> StatusChanges:
        """Re-margin the holders of what moved, then the state machine on them and on every
        margin call whose deadline has passed."""
        remargin = self.engine.on_market(market)
        due = np.flatnonzero((self.deadlines != NO_DEADLINE) & (self.deadlines <= now_ns))
        rows = np.union1d(remargin.account_rows, due) if due.size else remargin.account_rows
        return self.evaluate(rows, now_ns=now_ns, params=params)

    def on_tick(self, tick: PriceTick, *, now_ns: int, params: MarginCallParams) -> StatusChanges:
        """`RiskEngine.on_tick`, then the state machine on the re-margined accounts (and due calls)."""
        remargin = self.engine.on_tick(tick)
        due = np.flatnonzero((self.deadlines != NO_DEADLINE) & (self.deadlines <= now_ns))
        rows = np.union1d(remargin.account_rows, due) if due.size else remargin.account_rows
        return self.evaluate(rows, now_ns=now_ns, params=params)

    def apply(self, changes: StatusChanges) -> None:
        """Record the changes as the accounts' statuses (the venue does this through its fold)."""
        self.statuses[changes.rows] = changes.status
        self.deadlines[changes.rows] = changes.deadline_ns

    def evaluate(self, rows: IntArray, *, now_ns: int, params: MarginCallParams) -> StatusChanges:
        """The state machine on `rows` (sorted, unique), the changes it makes.

        Only the rows that can change (`may_change`) reach `next_statuses`: at 1M accounts after a
        full re-margin a few passes over the arrays instead of the state machine's ~20 and the
        gathers (issue 16's tick → calls latency)."""
        result = self.engine.result
        whole = rows.size == self.statuses.size  # sorted and unique: every row, in order
        equity = result.equity_usd if whole else result.equity_usd[rows]
        maintenance = result.maintenance_margin_usd if whole else result.maintenance_margin_usd[rows]
        previous = self.statuses if whole else self.statuses[rows]
        deadlines = self.deadlines if whole else self.deadlines[rows]
        screened = may_change(equity, maintenance, previous, deadlines, params)
        cover = coverages(equity[screened], maintenance[screened])
        before, running = previous[screened], deadlines[screened]
        status, deadline = next_statuses(
            before, coverage=cover, now_ns=now_ns, deadline_ns=running, params=params
        )
        changed = (status != before) | (deadline != running)
        picked = screened[changed]
        return StatusChanges(
            rows=picked if whole else rows[picked],
            status=status[changed],
            deadline_ns=deadline[changed],
            coverage=cover[changed],
            previous=before[changed],
        )

    def in_liquidation(self) -> IntArray:
        """Rows in liquidation or bankrupt, riskiest (lowest coverage) first."""
        rows = np.flatnonzero(self.statuses >= LIQUIDATION)
        result = self.engine.result
        cover = coverages(result.equity_usd[rows], result.maintenance_margin_usd[rows])
        order: IntArray = rows[np.lexsort((rows, cover))]
        return order


def account_update(
    account: str,
    positions: Mapping[str, tuple[int, float]],
    balances: Mapping[str, float],
) -> AccountUpdate:
    """An AccountUpdate from one account's positions {instrument: (contracts, entry)} and balances
    {asset: asset units, float: risk maths only}."""
    instruments: Sequence[str] = sorted(positions)
    return AccountUpdate(
        account_id=account,
        instrument_ids=instruments,
        quantity=[float(positions[i][0]) for i in instruments],
        entry_price=[positions[i][1] for i in instruments],
        balances=dict(balances),
    )
