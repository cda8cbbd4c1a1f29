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

from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.ledger.apply import apply
from crossmargin.core.ledger.events import Deposit, Event, Expiry, Liquidate, PositionTransfer, PriceUpdate
from crossmargin.core.ledger.money import to_float, units_payout
from crossmargin.core.ledger.postings import BAD_DEBT, FEES, INSURANCE, Posting
from crossmargin.core.ledger.state import (
    AccountStatus,
    LedgerConfig,
    LedgerState,
    WaterfallParams,
    coverage,
    market_of,
    risk_view,
)
from crossmargin.core.ledger.transact import AuditRecord
from crossmargin.core.margin import CrossMargin
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import EventSink, PricePath
from crossmargin.engine.risk_engine import AccountUpdate, RiskEngine
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
    # The ledger feeds a long-lived cross-margin engine (built on the first risk cycle): each
    # accepted event updates only the traders it touched, a price update only their holders.
    engine: RiskEngine | None = field(default=None, repr=False)

    def submit(self, event: Event) -> bool:
        """Apply one event; a rejection is recorded (and returns False), the state is kept."""
        try:
            applied = apply(self.state, event, self.config)
        except InputError as error:
            self.rejected.append(rejection(event, error))
            return False
        before = self.state
        self.state = applied.state
        if self.engine is not None:
            _feed(self.engine, before, self.state, self.config)
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
            result = self.risk_engine().result
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

    def risk_engine(self) -> RiskEngine:
        """The engine fed by this ledger, built from its state on first use."""
        if self.engine is None:
            view = risk_view(self.state, self.config)
            self.engine = RiskEngine(view.book, view.market, CrossMargin(self.config.margin))
        return self.engine

    def step(self, event: Event) -> bool:
        accepted = self.submit(event)
        self.risk_cycle(event.as_of_ns)
        return accepted


def rejection(event: Event, error: InputError) -> dict[str, Any]:
    """A refused event as the trail keeps it: its type, time, the account / instrument / asset it
    named (whichever it has) and the ledger's reason (field and problem)."""
    named = {
        key: getattr(event, key)
        for key in ("account", "instrument", "asset")
        if isinstance(getattr(event, key, None), str)
    }
    return {
        "event": type(event).__name__,
        "as_of_ns": event.as_of_ns,
        **named,
        "field": error.field,
        "problem": error.problem,
    }


def _touched_traders(before: LedgerState, after: LedgerState) -> list[str]:
    """Traders whose positions or balances differ between two ledger states (the ledger's maps are
    small dicts; an event touches a few accounts)."""
    touched: set[str] = set()
    for mapping_before, mapping_after in (
        (before.positions, after.positions),
        (before.balances, after.balances),
    ):
        if mapping_before is mapping_after:
            continue
        touched.update(k[0] for k, v in mapping_after.items() if mapping_before.get(k) != v)
        touched.update(k[0] for k in mapping_before if k not in mapping_after)
    return sorted(t for t in touched if t in after.status)


def account_update(state: LedgerState, config: LedgerConfig, trader: str) -> AccountUpdate:
    """One trader's positions and balances as the risk engine takes them (balances from exact
    minor units to float asset amounts: risk maths only, as `core.ledger.state.book_of`)."""
    held = [(i, p) for (a, i), p in state.positions.items() if a == trader]
    return AccountUpdate(
        account_id=trader,
        instrument_ids=[i for i, _ in held],
        quantity=[float(p.quantity) for _, p in held],
        entry_price=[p.entry_price for _, p in held],
        balances={
            k: to_float(units, config.decimals[k])
            for (a, k), units in state.balances.items()
            if a == trader and units
        },
    )


def _feed(engine: RiskEngine, before: LedgerState, after: LedgerState, config: LedgerConfig) -> None:
    """Bring the engine from `before` to `after`: new prices and marks (or an expiry) as a market
    update, then each touched trader's new positions and balances."""
    if after.prices != before.prices or after.marks != before.marks or after.expired != before.expired:
        engine.on_market(market_of(after, config))
    for trader in _touched_traders(before, after):
        engine.on_account(account_update(after, config, trader))


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
    prices.update(zip(symbols, loaded.market.asset_prices(book.assets).tolist(), strict=True))
    state = LedgerState.open(config, tuple(book.account_ids), prices)
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


def check_price_path(sim: Simulation, path: PricePath) -> None:
    """Refuse, before anything runs, a path the ledger would otherwise bend: a step not after the
    previous one or before the ledger's time, a symbol the book does not price, a price that is not
    finite and > 0. InputError names the step (`prices[n]`)."""
    known = set(sim.config.instruments.underlyings) | set(sim.config.assets.symbols)
    previous = sim.state.time_ns - 1
    for n, (as_of_ns, prices) in enumerate(path):
        if as_of_ns <= previous:
            limit = "the previous step" if n else f"the book's valuation time ({sim.state.time_ns} ns)"
            raise InputError(f"prices[{n}].as_of_ns", f"{as_of_ns} is not after {limit}")
        previous = as_of_ns
        for symbol, price in prices.items():
            if symbol not in known:
                names = ", ".join(sorted(known))
                raise InputError(
                    f"prices[{n}].{symbol}", f"not a symbol of the book (names are exact: {names})"
                )
            if not (np.isfinite(price) and price > 0.0):
                raise InputError(f"prices[{n}].{symbol}", f"must be finite and > 0, got {price!r}")


def expire_due(sim: Simulation, until_ns: int) -> int:
    """Settle every future and option whose expiry is at or before `until_ns` and not yet settled:
    one `Expiry` event each, at its expiry time, in expiry order, at the underlying's last index
    price the ledger has (the last price at or before the expiry: a path has no price at the
    expiry instant unless a step falls on it), each followed by the risk cycle. Returns how many."""
    table = sim.config.instruments
    dated = (table.kind == InstrumentKind.FUTURE) | (table.kind == InstrumentKind.OPTION)
    due = np.flatnonzero(dated & (table.expiry_ns <= until_ns))
    settled = 0
    for i in sorted(due.tolist(), key=lambda i: (int(table.expiry_ns[i]), table.ids[i])):
        instrument = table.ids[i]
        if instrument in sim.state.expired:
            continue
        as_of_ns = max(int(table.expiry_ns[i]), sim.state.time_ns)
        underlying = table.underlyings[int(table.underlying_index[i])]
        sim.step(
            Expiry(instrument=instrument, settlement_price=sim.state.prices[underlying], as_of_ns=as_of_ns)
        )
        settled += 1
    return settled


def run_price_path(sim: Simulation, path: PricePath) -> Simulation:
    """One `PriceUpdate` per step (as_of_ns, {symbol: index price USD}), each followed by the
    risk cycle; contracts expiring before a step are settled first (`expire_due`). The path is
    checked whole before the first step (`check_price_path`)."""
    steps = list(path)
    check_price_path(sim, steps)
    for as_of_ns, prices in steps:
        expire_due(sim, as_of_ns)
        sim.step(PriceUpdate(index_prices=prices, as_of_ns=as_of_ns))
    return sim


def summary(sim: Simulation) -> dict[str, Any]:
    """What happened: counts, every rejected event with its reason, liquidations, expiries (instrument
    -> settlement price USD), fund and fees, ADL rounds (volume, haircuts, overshoot), socialised
    loss and bad debt. Every amount is {asset: amount in asset units} or carries its `asset` (the
    exact minor units are in the audit records)."""
    cfg = sim.config
    state = sim.state

    def amounts(account: str) -> dict[str, float]:
        return {
            k: to_float(state.balance(account, k), cfg.decimals[k])
            for k in cfg.assets.symbols
            if state.balance(account, k)
        }

    def in_asset(asset: str, units: int) -> float:
        return to_float(units, cfg.decimals[asset])

    adl = [
        {
            "account": r.account,
            "policy": r.detail["policy"],
            "instrument": r.detail["instrument"],
            "asset": r.detail["asset"],
            "contracts": r.detail["contracts"],
            "notional_usd": r.detail["notional_usd"],
            "deficit": in_asset(r.detail["asset"], int(r.detail["deficit_units"])),
            "covered": in_asset(r.detail["asset"], int(r.detail["covered_units"])),
            "overshoot": in_asset(r.detail["asset"], int(r.detail["overshoot_units"])),
            "haircuts": {
                t: in_asset(r.detail["asset"], int(u)) for t, u in r.detail["haircut_units"].items()
            },
        }
        for r in sim.records
        if r.kind == "adl"
    ]
    socialised: dict[str, int] = {}
    for r in sim.records:
        if r.kind == "socialised_loss":
            asset = str(r.detail["asset"])
            socialised[asset] = socialised.get(asset, 0) + int(r.detail["covered_units"])
    return {
        "events": len(sim.events),
        "rejected": len(sim.rejected),
        "rejected_events": list(sim.rejected),
        "postings": len(sim.postings),
        "liquidation_fills": sum(1 for r in sim.records if r.kind == "liquidation_fill"),
        "liquidated_accounts": sorted({r.account for r in sim.records if r.kind == "liquidation_fill"}),
        "bankruptcies": sum(1 for r in sim.records if r.kind == "waterfall"),
        "expiries": {r.account: r.detail["settlement_price"] for r in sim.records if r.kind == "expiry"},
        "insurance_fund": amounts(INSURANCE),
        "fees": amounts(FEES),
        "bad_debt": {k: -v for k, v in amounts(BAD_DEBT).items()},
        "socialised_loss": {k: in_asset(k, v) for k, v in sorted(socialised.items())},
        "adl": adl,
        "final_status": {t: state.status[t].name.lower() for t in state.traders},
        "state_digest": state.digest(),
    }


def posting_rows(postings: Sequence[Posting]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(p) for p in postings]


def record_rows(records: Sequence[AuditRecord]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in records]
