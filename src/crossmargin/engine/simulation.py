"""Simulation: run a price path (or any event stream) over a book through the exact ledger and
the liquidation engine, and keep the full audit trail.

One step = the event, then the risk cycle: every account in liquidation (or bankrupt) gets a
`Liquidate` event, riskiest first, until none is left (bounded rounds). Every accepted event,
posting and audit record is kept; a rejected event is kept as a record with its error, and the
state is unchanged by it. An `EventSink` given to the simulation receives each accepted event
as it is applied (the replayable event log); the price path comes in as values
(`engine.ports.PricePath`; a CSV file is read by `adapters.files.read_price_path`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossmargin.core.ledger.apply import apply
from crossmargin.core.ledger.events import Deposit, Event, Liquidate, PositionTransfer, PriceUpdate
from crossmargin.core.ledger.money import to_float, units_payout
from crossmargin.core.ledger.postings import BAD_DEBT, FEES, INSURANCE, Posting
from crossmargin.core.ledger.state import (
    AccountStatus,
    LedgerConfig,
    LedgerState,
    WaterfallParams,
    coverage,
    risk_view,
)
from crossmargin.core.ledger.transact import AuditRecord
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import EventSink, PricePath
from crossmargin.errors import InputError

STABLE_DECIMALS = 6
COIN_DECIMALS = 8


@dataclass(slots=True)
class Simulation:
    """A running simulation: the ledger state and everything that happened so far; `sink`, when
    given, receives each accepted event as it is applied."""

    config: LedgerConfig
    state: LedgerState
    events: list[Event] = field(default_factory=list)
    postings: list[Posting] = field(default_factory=list)
    records: list[AuditRecord] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    sink: EventSink | None = None

    def submit(self, event: Event) -> bool:
        """Apply one event; a rejection is recorded (and returns False), the state is kept."""
        try:
            applied = apply(self.state, event, self.config)
        except InputError as error:
            self.rejected.append(
                {"event": type(event).__name__, "field": error.field, "problem": error.problem}
            )
            return False
        self.state = applied.state
        self.events.append(event)
        if self.sink is not None:
            self.sink.append(event)
        self.postings.extend(applied.postings)
        self.records.extend(applied.records)
        return True

    def risk_cycle(self, as_of_ns: int, *, paused: Collection[str] = frozenset()) -> int:
        """Liquidate every account in liquidation, riskiest first, except the `paused` ones (an
        untrusted price behind them: `engine.priced_simulation`); returns how many ran."""
        ran = 0
        for _ in range(4 * max(len(self.state.traders), 1)):
            due = [
                t
                for t in self.state.traders
                if self.state.status[t] >= AccountStatus.LIQUIDATION and t not in paused
            ]
            if not due:
                break
            result = risk_view(self.state, self.config).result
            row = {t: n for n, t in enumerate(self.state.traders)}
            due.sort(
                key=lambda t: (
                    coverage(float(result.equity_usd[row[t]]), float(result.maintenance_margin_usd[row[t]])),
                    t,
                )
            )
            if not self.submit(Liquidate(account=due[0], as_of_ns=as_of_ns)):
                break
            ran += 1
        return ran

    def step(self, event: Event) -> bool:
        accepted = self.submit(event)
        self.risk_cycle(event.as_of_ns)
        return accepted


def default_decimals(symbol: str) -> int:
    """Stablecoins (symbol contains USD) 6 decimals, everything else 8 (BTC's satoshi)."""
    return STABLE_DECIMALS if "USD" in symbol.upper() else COIN_DECIMALS


def simulation_from_book(
    loaded: LoadedBook,
    *,
    adl_policy: str = "queue",
    waterfall: WaterfallParams | None = None,
    insurance_fund_usd: float = 0.0,
    sink: EventSink | None = None,
) -> Simulation:
    """Import a book: each account's balances as deposits (borrowings as negative balances are
    not importable: they start at zero), each position transferred in at its entry price
    against the liquidator; the insurance fund seeded with `insurance_fund_usd` of the quote
    asset. `sink` receives every accepted event, the import's own included."""
    book = loaded.book
    symbols = book.assets.symbols
    quote = next((s for s in symbols if "USD" in s.upper()), symbols[0])
    decimals = {s: default_decimals(s) for s in symbols}
    stages = waterfall or WaterfallParams(adl_policy=adl_policy)
    config = LedgerConfig(
        instruments=book.instruments,
        assets=book.assets,
        decimals=decimals,
        quote_asset=quote,
        valuation_ns=loaded.market.valuation_ns,
        implied_vols={
            book.instruments.ids[i]: float(v)
            for i, v in enumerate(loaded.market.implied_vol)
            if np.isfinite(v)
        },
        rate=loaded.market.rate,
        margin=loaded.params,
        waterfall=dataclasses.replace(stages, adl_policy=adl_policy),
    )
    prices = dict(zip(book.instruments.underlyings, loaded.market.index_price_usd.tolist(), strict=True))
    prices.update(zip(symbols, book.assets.price_usd.tolist(), strict=True))
    state = LedgerState.open(config, book.account_ids, prices)
    sim = Simulation(config=config, state=state, sink=sink)
    t = loaded.market.valuation_ns
    marks = {
        book.instruments.ids[i]: float(m)
        for i, m in enumerate(loaded.market.mark_price)
        if np.isfinite(m) and not book.instruments.is_option[i]
    }
    if marks:
        sim.submit(PriceUpdate(index_prices={}, mark_prices=marks, as_of_ns=t))
    for row, account in enumerate(book.account_ids):
        for k, symbol in enumerate(symbols):
            units = units_payout(float(book.balances[row, k]), decimals[symbol])
            if units > 0:
                sim.submit(Deposit(account=account, asset=symbol, amount_units=units, as_of_ns=t))
    owner = book.position_account
    for p in range(book.positions.data.size):
        sim.submit(
            PositionTransfer(
                account=book.account_ids[int(owner[p])],
                instrument=book.instruments.ids[int(book.positions.indices[p])],
                quantity=round(float(book.positions.data[p])),
                entry_price=float(book.entry_price[p]),
                as_of_ns=t,
            )
        )
    if insurance_fund_usd > 0.0:
        units = units_payout(insurance_fund_usd / prices[quote], decimals[quote])
        sim.submit(Deposit(account=INSURANCE, asset=quote, amount_units=units, as_of_ns=t))
    return sim


def run_price_path(sim: Simulation, path: PricePath) -> Simulation:
    """One `PriceUpdate` per step (as_of_ns, {symbol: index price USD}), each followed by the
    risk cycle; a step earlier than the ledger's time is applied at the ledger's time."""
    for as_of_ns, prices in path:
        sim.step(PriceUpdate(index_prices=prices, as_of_ns=max(as_of_ns, sim.state.time_ns)))
    return sim


def summary(sim: Simulation) -> dict[str, Any]:
    """What happened: counts, liquidations, fund and fees, ADL rounds (volume, haircuts,
    overshoot), socialised loss and bad debt, in asset amounts."""
    cfg = sim.config
    state = sim.state

    def amounts(account: str) -> dict[str, float]:
        return {
            k: to_float(state.balance(account, k), cfg.decimals[k])
            for k in cfg.assets.symbols
            if state.balance(account, k)
        }

    adl = [r.detail | {"account": r.account} for r in sim.records if r.kind == "adl"]
    return {
        "events": len(sim.events),
        "rejected": len(sim.rejected),
        "postings": len(sim.postings),
        "liquidation_fills": sum(1 for r in sim.records if r.kind == "liquidation_fill"),
        "liquidated_accounts": sorted({r.account for r in sim.records if r.kind == "liquidation_fill"}),
        "bankruptcies": sum(1 for r in sim.records if r.kind == "waterfall"),
        "insurance_fund": amounts(INSURANCE),
        "fees": amounts(FEES),
        "bad_debt": {k: -v for k, v in amounts(BAD_DEBT).items()},
        "socialised_loss_units": sum(
            int(r.detail["covered_units"]) for r in sim.records if r.kind == "socialised_loss"
        ),
        "adl": adl,
        "final_status": {t: state.status[t].name.lower() for t in state.traders},
        "state_digest": state.digest(),
    }


def posting_rows(postings: Sequence[Posting]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(p) for p in postings]


def record_rows(records: Sequence[AuditRecord]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in records]
