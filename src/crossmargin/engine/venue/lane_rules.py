"""What the lanes (`fill_lane`, `transfer_lane`) share: who a lane may take, the margin of a few
traders on the fold after a change, and the ledger's status refresh reduced to "stays HEALTHY".

Each is the generic path's own rule, called the way the ledger calls it, so a lane's effects are
the generic path's value for value (tests/engine/venue/test_fill_lane.py, test_transfer_lane.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crossmargin.core.ledger.postings import SYSTEM_ACCOUNTS
from crossmargin.core.ledger.state import (
    AccountStatus,
    LedgerConfig,
    Position,
    balance_amounts,
    coverage,
    held_rows,
    margin_of_rows,
    priced_market,
)
from crossmargin.core.liquidation.margin_call import next_status
from crossmargin.core.margin import MarginResult
from crossmargin.engine.venue.state import VenueState

_SYSTEM = frozenset(SYSTEM_ACCOUNTS)


def lane_trader(state: VenueState, account: Any) -> bool:
    """A trader (not a system account) a lane may take: HEALTHY, no margin-call deadline."""
    return (
        type(account) is str
        and account not in _SYSTEM
        and state.status.get(account) == AccountStatus.HEALTHY
        and account not in state.deadlines
    )


def held_now(state: VenueState, account: str) -> dict[str, Position]:
    """The account's positions on the fold, instrument -> position."""
    return {name: state.positions[(account, name)] for name in state.holdings.get(account, ())}


def margin_on_fold(
    state: VenueState,
    config: LedgerConfig,
    holdings: Sequence[Mapping[str, Position]],
    balances: Sequence[tuple[Mapping[tuple[str, str], int], str]],
) -> MarginResult:
    """Cross margin of one row per entry of `holdings` (its positions) and `balances` (a balance
    mapping and the trader whose balances it holds), in the fold's market: one few-accounts
    kernel call, as `risk_view` gathers and makes it. Rows are independent, so a row has the bits
    a `risk_view` of that trader alone on those balances and positions gives."""
    rows = np.array([balance_amounts(b, config, who) for b, who in balances], dtype=np.float64)
    return margin_of_rows(
        priced_market(state, config),
        config,
        held_rows(config, holdings),
        rows.reshape(len(balances), config.assets.n_assets),
    )


def stays_healthy(result: MarginResult, row: int, config: LedgerConfig, now_ns: int) -> bool:
    """The ledger's status refresh (`core.ledger.apply._refresh_statuses`) of a HEALTHY trader with
    no deadline whose margin is `result`'s row: True when it moves neither status nor deadline."""
    cover = coverage(float(result.equity_usd[row]), float(result.maintenance_margin_usd[row]))
    if result.bankrupt[row] and result.maintenance_margin_usd[row] > 0.0:
        cover = min(cover, 0.0)
    healthy = AccountStatus.HEALTHY
    move = next_status(healthy, coverage=cover, now_ns=now_ns, deadline_ns=None, params=config.margin_call)
    return move.status == healthy and move.deadline_ns is None
