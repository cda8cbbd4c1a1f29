"""A venue in memory for the dashboard: a book imported into the exact ledger, margined by the
ledger's long-lived risk engine (`engine.simulation`), moved by price updates through the same
ledger events and risk cycle (margin calls, liquidations, the loss waterfall) a simulation runs.

`BookVenue` is a `DashboardSource` (dashboard.source): what `crossmargin dashboard` serves on its
own and what the dashboard's browser tests run against. The margin service's venue is the other
source; this one keeps no log on disk (the sequence number is the count of accepted events).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping

import numpy as np

from crossmargin.core.ledger.events import PriceUpdate
from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE
from crossmargin.core.ledger.state import LedgerConfig, LedgerState
from crossmargin.dashboard.source import VenueView
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.simulation import Simulation, simulation_from_book
from crossmargin.engine.venue import PriceState, VenueSettings
from crossmargin.errors import InputError

DEFAULT_INSURANCE_FUND_USD = 1_000_000.0


class BookVenue:
    """The bundled (or any) book as a live venue: `move_prices` is the oracle's tick."""

    def __init__(
        self,
        loaded: LoadedBook,
        *,
        insurance_fund_usd: float = DEFAULT_INSURANCE_FUND_USD,
        history: PriceHistorySource | None = None,
    ) -> None:
        self._loaded = loaded
        self._history = history
        self._sim = simulation_from_book(loaded, insurance_fund_usd=insurance_fund_usd)
        self._sim.risk_engine()
        self._changed = asyncio.Event()
        # The venue's clock starts at the book's valuation time and runs with the wall clock: a
        # book priced in the past is not aged past its options' expiries by its first tick.
        self._start_ns = loaded.market.valuation_ns
        self._started = time.monotonic_ns()
        # When each index price was last quoted: the book's prices at its valuation time.
        self._quoted_ns = dict.fromkeys(self._sim.state.prices, self._start_ns)
        self._max_price_age_s = VenueSettings().max_price_age_s

    @property
    def simulation(self) -> Simulation:
        return self._sim

    @property
    def sequence(self) -> int:
        return len(self._sim.events)

    def view(self) -> VenueView:
        sim = self._sim
        state = sim.state
        engine = sim.risk_engine()
        fund = ledger_usd(state, sim.config, INSURANCE)
        bad_debt = -ledger_usd(state, sim.config, BAD_DEBT) + 0.0  # + 0.0: no "-0.00" on the page
        return VenueView(
            sequence=self.sequence,
            as_of_ns=state.time_ns,
            engine=engine,
            loaded=self._loaded,
            # The in-memory ledger keeps statuses in a dict: one pass over its (small) book.
            status_code=np.fromiter(
                (state.status[a] for a in engine.book.account_ids),
                dtype=np.int8,
                count=engine.book.n_accounts,
            ),
            insurance_fund_usd=fund,
            bad_debt_usd=bad_debt,
            withdrawals_gated_reason=(
                f"unresolved bad debt of {bad_debt:,.2f} USD: every withdrawal waits until it is covered"
                if bad_debt > 0.0
                else None
            ),
            history=self._history,
            prices=self.price_states,
        )

    def now_ns(self) -> int:
        """The venue's clock: the book's valuation time plus the wall-clock time since start."""
        return self._start_ns + time.monotonic_ns() - self._started

    def price_states(self) -> tuple[PriceState, ...]:
        """Each index price with its quote age at the venue's clock (`engine.venue.PriceState`)."""
        state = self._sim.state
        now = max(self.now_ns(), state.time_ns)
        return tuple(
            PriceState.at(
                symbol,
                state.prices[symbol],
                quoted_ns=self._quoted_ns[symbol],
                exact=True,
                now_ns=now,
                max_age_s=self._max_price_age_s,
            )
            for symbol in sorted(state.prices)
        )

    def move_prices(self, index_prices: Mapping[str, float], *, as_of_ns: int | None = None) -> int:
        """Index prices (USD) of underlyings or collateral assets, delta-one marks moved with them
        (`price_update`): one ledger price update and its risk cycle. Returns the new sequence
        number; unknown symbols and bad prices are InputErrors naming them."""
        state = self._sim.state
        now = max(self.now_ns() if as_of_ns is None else as_of_ns, state.time_ns)
        accepted = self._sim.step(price_update(state, self._sim.config, index_prices, as_of_ns=now))
        if not accepted:
            problem = self._sim.rejected[-1]
            raise InputError(str(problem["field"]), str(problem["problem"]))
        self._quoted_ns.update(dict.fromkeys(index_prices, now))
        self._changed.set()
        return self.sequence

    async def wait_for_change(self, after: int) -> int:
        while self.sequence <= after:
            self._changed.clear()
            await self._changed.wait()
        return self.sequence


def price_update(
    state: LedgerState, config: LedgerConfig, index_prices: Mapping[str, float], *, as_of_ns: int
) -> PriceUpdate:
    """A ledger price update: the index prices, and every delta-one mark on a moved underlying
    moved by the same factor (the basis kept), as an oracle publishing both would."""
    table = config.instruments
    marks: dict[str, float] = {}
    for symbol, price in index_prices.items():
        if symbol not in state.prices:
            raise InputError(f"prices[{symbol}]", "not an underlying or collateral asset of the venue")
        if not (isinstance(price, int | float) and 0.0 < price < math.inf):
            raise InputError(f"prices[{symbol}]", f"must be a positive finite USD price, got {price!r}")
        factor = float(price) / state.prices[symbol]
        for instrument, mark in state.marks.items():
            i = table.position(instrument)
            if table.underlyings[int(table.underlying_index[i])] == symbol:
                marks[instrument] = mark * factor
    return PriceUpdate(index_prices=dict(index_prices), mark_prices=marks, as_of_ns=as_of_ns)


def ledger_usd(state: LedgerState, config: LedgerConfig, account: str) -> float:
    """An account's balances at the state's prices, USD (display: exact units converted once)."""
    return sum(
        to_float(units, config.decimals[asset]) * state.prices[asset]
        for (holder, asset), units in state.balances.items()
        if holder == account
    )
