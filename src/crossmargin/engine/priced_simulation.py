"""A simulation driven by the oracle: each oracle update moves the ledger's prices, and each
action that rests on a price follows its own validity rule (`core.oracle.policy`).

One oracle step:
  1. the accepted prices (a stale or held asset keeps its last accepted price) → `PriceUpdate`;
  2. `liquidation_pauses`: the assets whose price fails the liquidate rule;
  3. the risk cycle, except for accounts that hold such an asset or trade an instrument on it
     (sparse: touched (accounts × assets) @ paused mask > 0); each of those gets a
     `liquidation_paused` audit record (asset, reason, age, status) and is liquidated at the
     first step whose prices are trusted again. Unexposed accounts are liquidated as usual.

Events submitted between steps are gated the same way (the ledger has no oracle hooks, so the
gate sits here, where events are applied): a `Withdrawal` needs the withdraw rule to pass for
the withdrawn asset and everything the account holds or trades (its IM check rests on them); a
`TradeFill` that opens or increases either side's position needs the open rule to pass for the
instrument's underlying (reducing trades are always allowed). A refused event is recorded in
`Simulation.rejected` with the asset and reason, and the state is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from crossmargin.core.ledger.events import Event, PriceUpdate, TradeFill, Withdrawal
from crossmargin.core.ledger.state import AccountStatus, book_of
from crossmargin.core.ledger.transact import AuditRecord
from crossmargin.core.oracle import (
    Action,
    LiquidationPaused,
    OraclePolicy,
    OracleUpdate,
    PriceStatus,
    Validity,
    liquidation_pauses,
    validity,
)
from crossmargin.core.oracle.exposure import account_exposure, factor_index
from crossmargin.core.oracle.params import NS_PER_MS
from crossmargin.engine.simulation import Simulation
from crossmargin.errors import InputError

PAUSE_RECORD = "liquidation_paused"


@dataclass(slots=True)
class PricedSimulation:
    """A `Simulation` whose prices come from the oracle's updates over `assets` (names aligned
    with the updates' arrays). `pauses`: every LiquidationPaused event raised, in order."""

    sim: Simulation
    assets: tuple[str, ...]
    policy: OraclePolicy = field(default_factory=OraclePolicy)
    update: OracleUpdate | None = None
    pauses: list[LiquidationPaused] = field(default_factory=list)
    current_pauses: tuple[LiquidationPaused, ...] = ()  # the last update's, in force until the next

    def _known(self) -> set[str]:
        config = self.sim.config
        return set(config.instruments.underlyings) | set(config.assets.symbols)

    def oracle_step(self, update: OracleUpdate) -> int:
        """Apply one oracle update (module docstring); returns how many liquidations ran."""
        if update.price_usd.shape[0] != len(self.assets):
            raise InputError(
                "update", f"{update.price_usd.shape[0]} assets, the simulation has {len(self.assets)}"
            )
        self.update = update
        as_of_ns = max(update.as_of_ns, self.sim.state.time_ns)
        known = self._known()
        prices = {
            name: float(update.price_usd[i])
            for i, name in enumerate(self.assets)
            if name in known and np.isfinite(update.price_usd[i]) and update.price_usd[i] > 0.0
        }
        if prices:
            self.sim.submit(PriceUpdate(index_prices=prices, as_of_ns=as_of_ns))
        pauses = liquidation_pauses(update, self.policy, asset_names=self.assets)
        self.pauses.extend(pauses)
        self.current_pauses = pauses
        return self.sim.risk_cycle(as_of_ns, paused=self._paused_accounts(pauses, as_of_ns))

    def _paused_accounts(self, pauses: tuple[LiquidationPaused, ...], as_of_ns: int) -> frozenset[str]:
        """Traders in liquidation touching a paused asset; one audit record per (trader, asset)."""
        if not pauses:
            return frozenset()
        state, config = self.sim.state, self.sim.config
        book = book_of(state, config)
        factors = tuple(p.asset for p in pauses)
        exposure = account_exposure(
            book,
            delta_per_contract_usd=np.zeros(book.instruments.n_instruments),
            underlying_factor=factor_index(book.instruments.underlyings, factors),
            asset_factor=factor_index(book.assets.symbols, factors),
            asset_price_usd=np.ones(book.assets.n_assets),  # only `touched` is read here
            n_factors=len(factors),
        )
        touched = exposure.touched.tocsr()
        due = np.array([int(state.status[t]) for t in state.traders]) >= int(AccountStatus.LIQUIDATION)
        rows = np.flatnonzero(due & (np.diff(touched.indptr) > 0))
        paused: set[str] = set()
        for row in rows.tolist():  # the few accounts held back, for their audit records
            trader = state.traders[row]
            paused.add(trader)
            for f in touched.indices[touched.indptr[row] : touched.indptr[row + 1]].tolist():
                p = pauses[f]
                self.sim.records.append(
                    AuditRecord(
                        sequence=state.sequence,
                        kind=PAUSE_RECORD,
                        account=trader,
                        detail={
                            "asset": p.asset,
                            "reason": p.reason,
                            "age_ms": p.age_ms,
                            "status": p.status,
                            "as_of_ns": as_of_ns,
                        },
                    )
                )
        return frozenset(paused)

    def submit(self, event: Event) -> bool:
        """Apply one event, first checking the oracle rule of a withdrawal or an opening trade."""
        refusal = self._refusal(event)
        if refusal is not None:
            field_name, problem = refusal
            self.sim.rejected.append({"event": type(event).__name__, "field": field_name, "problem": problem})
            return False
        return self.sim.submit(event)

    def step(self, event: Event) -> bool:
        """Submit one event, then the risk cycle under the last oracle update's pauses."""
        accepted = self.submit(event)
        as_of_ns = max(event.as_of_ns, self.sim.state.time_ns)
        self.sim.risk_cycle(as_of_ns, paused=self._paused_accounts(self.current_pauses, as_of_ns))
        return accepted

    def _refusal(self, event: Event) -> tuple[str, str] | None:
        if self.update is None:
            return None
        if isinstance(event, Withdrawal):
            assets = {event.asset} | self._touched_by(event.account)
            return self._first_invalid(Action.WITHDRAW, assets, "withdrawal.asset")
        if isinstance(event, TradeFill) and self._opens(event):
            config = self.sim.config
            i = config.instruments.index.get(event.instrument)
            if i is None:
                return None  # the ledger names the unknown instrument
            underlying = config.instruments.underlyings[int(config.instruments.underlying_index[i])]
            return self._first_invalid(Action.OPEN, {underlying}, "trade.instrument")
        return None

    def _touched_by(self, account: str) -> set[str]:
        state, config = self.sim.state, self.sim.config
        held = {asset for (who, asset), units in state.balances.items() if who == account and units}
        traded = {
            config.instruments.underlyings[
                int(config.instruments.underlying_index[config.instruments.index[i]])
            ]
            for (who, i), p in state.positions.items()
            if who == account and p.quantity
        }
        return held | traded

    def _opens(self, event: TradeFill) -> bool:
        positions = self.sim.state.positions
        for account, quantity in ((event.taker, event.quantity), (event.maker, -event.quantity)):
            held = positions.get((account, event.instrument))
            before = 0 if held is None else held.quantity
            if abs(before + quantity) > abs(before):
                return True
        return False

    def _first_invalid(self, action: Action, names: set[str], field_name: str) -> tuple[str, str] | None:
        assert self.update is not None
        codes = validity(self.update, self.policy.rule(action))
        where = factor_index(tuple(sorted(names)), self.assets)
        for name, f in zip(sorted(names), where.tolist(), strict=True):
            if f >= 0 and codes[f] != Validity.VALID:
                age_ms = float(self.update.age_ns[f]) / NS_PER_MS
                reason = Validity(int(codes[f])).name.lower()
                status = PriceStatus(int(self.update.status[f])).name.lower()
                return field_name, (
                    f"{action.value} refused: the {name} price is not valid ({reason}, status {status}, "
                    f"age {age_ms:,.0f} ms)"
                )
        return None


def run_oracle_path(psim: PricedSimulation, updates: Iterable[OracleUpdate]) -> PricedSimulation:
    """Feed a sequence of oracle updates (e.g. `replay` steps' `.update`) through the simulation."""
    for update in updates:
        psim.oracle_step(update)
    return psim
