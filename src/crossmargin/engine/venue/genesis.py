"""A venue's first record (`Genesis`: its configuration by digest, label and opening effects)
and the digest that ties a log to the configuration it was written under (`config_digest`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin.core.ledger.postings import Posting
from crossmargin.core.ledger.state import AccountStatus, LedgerConfig, LedgerState
from crossmargin.engine.journal import canonical_json


def config_digest(config: LedgerConfig) -> str:
    """SHA-256 of what a log's meaning depends on: instruments, assets, decimals, quote asset,
    fee rates. A log is only ever replayed under the configuration it was written with."""
    table = config.instruments
    described = {
        "instruments": list(table.ids),
        "kind": [int(k) for k in table.kind],
        "underlying": [str(table.underlyings[int(u)]) for u in table.underlying_index],
        "contract_size": [float(x) for x in table.contract_size],
        "settlement": [int(x) for x in table.settlement],
        "strike": [float(x) if np.isfinite(x) else None for x in table.strike],
        "expiry_ns": [int(x) for x in table.expiry_ns],
        "assets": list(config.assets.symbols),
        "decimals": dict(config.decimals),
        "quote_asset": config.quote_asset,
        "taker_fee_rate": config.taker_fee_rate,
        "maker_fee_rate": config.maker_fee_rate,
    }
    return hashlib.sha256(canonical_json(described)).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    """The venue's first record: its configuration (by digest), label, and initial effects (open
    accounts, prices, imported balances and positions)."""

    label: str
    config: LedgerConfig
    effects: Mapping[str, Any]

    @classmethod
    def empty(
        cls, *, label: str, config: LedgerConfig, prices: Mapping[str, float], traders: Sequence[str] = ()
    ) -> Genesis:
        """No balances or positions: these traders, these index prices (every underlying and asset)."""
        state = LedgerState.open(config, tuple(traders), prices)  # validates ids and prices
        return cls(
            label=label,
            config=config,
            effects={"accounts": list(state.traders), "prices": dict(state.prices), "time_ns": state.time_ns},
        )

    @classmethod
    def from_ledger(
        cls, *, label: str, config: LedgerConfig, state: LedgerState, postings: Sequence[Posting]
    ) -> Genesis:
        """An imported ledger (e.g. `engine.simulation.simulation_from_book`): its accounts,
        prices, marks, the postings that funded it, positions and statuses."""
        return cls(
            label=label,
            config=config,
            effects={
                "accounts": list(state.traders),
                "prices": dict(state.prices),
                "marks": dict(state.marks),
                "postings": [
                    [p.debit_account, p.credit_account, p.asset, p.amount_units, p.kind] for p in postings
                ],
                "positions": sorted(
                    [a, i, p.quantity, p.entry_price] for (a, i), p in state.positions.items()
                ),
                "status": sorted(
                    [a, int(s), state.call_deadline_ns.get(a)]
                    for a, s in state.status.items()
                    if s != AccountStatus.HEALTHY or a in state.call_deadline_ns
                ),
                "time_ns": state.time_ns,
            },
        )
