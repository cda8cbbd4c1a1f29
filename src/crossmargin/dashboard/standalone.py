"""A venue in memory for the dashboard: a book imported into the exact ledger, margined by the
ledger's long-lived risk engine (`engine.simulation`), moved by price updates through the same
ledger events and risk cycle (margin calls, liquidations, the loss waterfall) a simulation runs.

`BookVenue` is a `DashboardSource` (dashboard.source): what `crossmargin dashboard` serves on its
own and what the dashboard's browser tests run against. The margin service's venue is the other
source; this one keeps no log on disk (the sequence number is the count of accepted events).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import numpy as np

from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE
from crossmargin.dashboard.source import VenueView
from crossmargin.dashboard.stress import ledger_usd, price_update
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.simulation import Simulation, simulation_from_book
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
            ledger=lambda: (state, sim.config),
        )

    def move_prices(self, index_prices: Mapping[str, float], *, as_of_ns: int | None = None) -> int:
        """Index prices (USD) of underlyings or collateral assets, delta-one marks moved with them
        (`stress.price_update`): one ledger price update and its risk cycle. Returns the new
        sequence number; unknown symbols and bad prices are InputErrors naming them."""
        state = self._sim.state
        elapsed_ns = time.monotonic_ns() - self._started
        now = max(self._start_ns + elapsed_ns if as_of_ns is None else as_of_ns, state.time_ns)
        accepted = self._sim.step(price_update(state, self._sim.config, index_prices, as_of_ns=now))
        if not accepted:
            problem = self._sim.rejected[-1]
            raise InputError(str(problem["field"]), str(problem["problem"]))
        self._changed.set()
        return self.sequence

    async def wait_for_change(self, after: int) -> int:
        while self.sequence <= after:
            self._changed.clear()
            await self._changed.wait()
        return self.sequence
