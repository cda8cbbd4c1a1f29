"""A transaction under construction: copies of the state's maps, the postings so far and the
audit records. Internal to `apply`: every event builds one Tx from the old state and commits it
into a new state, so the input state is never touched (a rejected event leaves nothing behind).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crossmargin.core.instruments import InstrumentKind, InstrumentTable
from crossmargin.core.ledger.counterparties import Counterparties, TradersOf
from crossmargin.core.ledger.money import units_charge, units_signed_pnl
from crossmargin.core.ledger.postings import CLEARING, FEES, Posting
from crossmargin.core.ledger.state import (
    AccountStatus,
    LedgerConfig,
    LedgerState,
    Position,
    RiskView,
    priced_market,
    risk_view,
)
from crossmargin.core.market import MarketState


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One state change worth reading: a status transition, a liquidation slice, a waterfall
    stage, an ADL report. `detail` is JSON-ready."""

    sequence: int
    kind: str
    account: str
    detail: dict[str, Any]


@dataclass(slots=True)
class Tx:
    config: LedgerConfig
    state: LedgerState
    balances: dict[tuple[str, str], int] = field(init=False)
    positions: dict[tuple[str, str], Position] = field(init=False)
    # Shared with `state` and replaced, never changed in place, when a price update or an expiry
    # moves them (copy on write): a transaction is O(1) in the market's width, and a snapshot
    # keeps the state's read-only views, which `priced_market` knows by identity.
    prices: Mapping[str, float] = field(init=False)
    marks: Mapping[str, float] = field(init=False)
    status: dict[str, AccountStatus] = field(init=False)
    deadlines: dict[str, int] = field(init=False)
    expired: set[str] = field(init=False)
    postings: list[Posting] = field(default_factory=list)
    records: list[AuditRecord] = field(default_factory=list)
    # ADL candidates held outside `state`, by market, and where their state is to be found
    # (core.ledger.counterparties).
    counterparties: Mapping[str, Counterparties] = field(default_factory=dict)
    traders_of: TradersOf | None = None
    # The traders the transaction holds: `state`'s and those `hold` took in since.
    traders: tuple[str, ...] = field(init=False)
    sequence: int = 0
    time_ns: int = 0

    def __post_init__(self) -> None:
        s = self.state
        self.traders = s.traders
        self.balances = dict(s.balances)
        self.positions = dict(s.positions)
        self.prices = s.prices
        self.marks = s.marks
        self.status = dict(s.status)
        self.deadlines = dict(s.call_deadline_ns)
        self.expired = set(s.expired)
        self.sequence = s.sequence
        self.time_ns = s.time_ns

    # ------------------------------------------------------------------ money
    def post(self, debit: str, credit: str, asset: str, units: int, kind: str) -> None:
        """Move `units` (>= 0; zero posts nothing) of `asset` from debit to credit."""
        if units == 0:
            return
        if units < 0:
            debit, credit, units = credit, debit, -units
        self.sequence += 1
        self.postings.append(
            Posting(
                sequence=self.sequence,
                debit_account=debit,
                credit_account=credit,
                asset=asset,
                amount_units=units,
                kind=kind,
            )
        )
        self.balances[(debit, asset)] = self.balances.get((debit, asset), 0) - units
        self.balances[(credit, asset)] = self.balances.get((credit, asset), 0) + units

    def hold(self, traders: frozenset[str]) -> None:
        """Take in traders the transaction does not hold, their state from `traders_of` (as it is
        outside: nothing here has moved them). The traders stay in id order, as a state holding
        them from the start would have them: the result is that state's."""
        assert self.traders_of is not None
        new = traders - set(self.traders)
        if not new:
            return
        outside = self.traders_of(frozenset(new))
        self.balances.update({k: v for k, v in outside.balances.items() if k[0] in new})
        self.positions.update({k: p for k, p in outside.positions.items() if k[0] in new})
        self.status.update({a: outside.status[a] for a in new})
        self.deadlines.update({a: d for a, d in outside.call_deadline_ns.items() if a in new})
        self.traders = tuple(sorted({*self.traders, *new}))

    def balance(self, account: str, asset: str) -> int:
        return self.balances.get((account, asset), 0)

    def record(self, kind: str, account: str, **detail: Any) -> None:
        self.records.append(AuditRecord(sequence=self.sequence, kind=kind, account=account, detail=detail))

    # ------------------------------------------------------------------ risk
    def snapshot(self) -> LedgerState:
        return LedgerState(
            traders=self.traders,
            balances={k: v for k, v in self.balances.items() if v != 0},
            positions=dict(self.positions),
            prices=self.prices,
            marks=self.marks,
            status=dict(self.status),
            call_deadline_ns=dict(self.deadlines),
            expired=frozenset(self.expired),
            time_ns=self.time_ns,
            sequence=self.sequence,
        )

    def view(self, traders: tuple[str, ...] | None = None) -> RiskView:
        return risk_view(self.snapshot(), self.config, traders)

    def market(self) -> MarketState:
        """The market of the transaction's prices, marks and expiries (shared, read-only)."""
        return priced_market(self.snapshot(), self.config).market

    def mark(self, instrument: str) -> float:
        """Delta-one mark (the underlying's index when none was given), USD."""
        i = self.config.instruments.index[instrument]
        underlying = self.config.instruments.underlyings[self.config.instruments.underlying_index[i]]
        return self.marks.get(instrument, self.prices[underlying])

    # ------------------------------------------------------------------ trading
    def trade(
        self, account: str, counterparty: str, instrument: str, quantity: int, price: float, kind: str
    ) -> None:
        """`account` trades `quantity` (signed) with `counterparty` at `price`; both sides'
        positions move and realise PnL (delta-one, against @clearing) or exchange the premium
        (options, between the two)."""
        table = self.config.instruments
        i = table.index[instrument]
        asset = self.config.settlement_asset(i)
        decimals = self.config.decimals[asset]
        cs = float(table.contract_size[i])
        if int(table.kind[i]) == InstrumentKind.OPTION:
            premium = units_charge(abs(quantity) * cs * price, decimals, name="fill.price")
            payer, payee = (account, counterparty) if quantity > 0 else (counterparty, account)
            self.post(payer, payee, asset, premium, f"{kind}:premium")
        for who, q in ((account, quantity), (counterparty, -quantity)):
            realised = self.move_position(who, i, instrument, q, price)
            if realised != 0.0:
                self.post(CLEARING, who, asset, units_signed_pnl(realised, decimals), f"{kind}:realised_pnl")

    def move_position(self, account: str, i: int, instrument: str, dq: int, price: float) -> float:
        """Open, close or flip; returns the realised PnL of a delta-one close (settlement units)."""
        old = self.positions.get((account, instrument))
        q1, entry, realised = position_after(self.config.instruments, i, old, dq, price)
        if q1 == 0:
            self.positions.pop((account, instrument), None)
        else:
            self.positions[(account, instrument)] = Position(q1, entry)
        return realised

    def fee_units(self, instrument: str, quantity: int, price: float, rate: float) -> tuple[str, int]:
        """A fee at `rate` on the traded USD notional, in settlement units, rounded up."""
        return fee_units(self.config, self.prices, instrument, quantity, price, rate)

    def charge_fee(self, account: str, asset: str, units: int, to: str = FEES, kind: str = "fee") -> int:
        self.post(account, to, asset, units, kind)
        return units

    def commit(self) -> LedgerState:
        return self.snapshot()


def position_after(
    table: InstrumentTable, i: int, old: Position | None, dq: int, price: float
) -> tuple[int, float, float]:
    """(contracts, entry price, realised PnL in settlement units) of a position `old` (None: flat)
    in instrument `i` after trading `dq` contracts at `price`: an open or an add averages the
    entry (by notional, 1/E-weighted for inverse instruments), a reduction keeps it and realises
    the closed part's PnL (delta-one only: q·size·(P − E), or q·size·(1/E − 1/P) inverse), a flip
    opens the rest at `price`."""
    inverse = bool(table.reciprocal_entry[i])
    option = int(table.kind[i]) == InstrumentKind.OPTION
    cs = float(table.contract_size[i])
    q0, e0 = (old.quantity, old.entry_price) if old else (0, price)
    q1 = q0 + dq
    realised = 0.0
    if q0 == 0 or (q0 > 0) == (dq > 0):
        total = abs(q0) + abs(dq)
        if inverse:
            entry = total / (abs(q0) / e0 + abs(dq) / price)
        else:
            entry = (abs(q0) * e0 + abs(dq) * price) / total
    else:
        closed = math.copysign(min(abs(dq), abs(q0)), q0)
        if not option:
            realised = closed * cs * ((1.0 / e0 - 1.0 / price) if inverse else (price - e0))
        entry = price if abs(dq) > abs(q0) else e0
    return q1, entry, realised


def fee_units(
    config: LedgerConfig,
    prices: Mapping[str, float],
    instrument: str,
    quantity: int,
    price: float,
    rate: float,
) -> tuple[str, int]:
    """(settlement asset, units) of a fee at `rate` on a trade's notional in settlement units,
    rounded up (`units_charge`): |q|·size·P linear, |q|·size/P inverse, an option's |q|·size
    underlyings (or coins, inverse) at the index in `prices`."""
    table = config.instruments
    i = table.index[instrument]
    asset = config.settlement_asset(i)
    cs = float(table.contract_size[i])
    underlying = table.underlyings[table.underlying_index[i]]
    if int(table.kind[i]) == InstrumentKind.OPTION:
        notional_settlement = abs(quantity) * cs * (1.0 if table.is_inverse[i] else prices[underlying])
    elif table.reciprocal_entry[i]:
        notional_settlement = abs(quantity) * cs / price
    else:
        notional_settlement = abs(quantity) * cs * price
    return asset, units_charge(rate * notional_settlement, config.decimals[asset], name="fee")
