"""Loaders for the shared historical market data (../shared/data or $CROSSMARGIN_DATA)."""

from crossmargin.adapters.history.deribit_chains import (
    ChainSnapshot,
    data_dir,
    list_snapshot_dates,
    load_chain,
    snapshot_path,
)
from crossmargin.adapters.history.strategies import (
    STRATEGIES,
    Leg,
    Strategy,
    calendar_spread,
    hedged_risk_reversal,
    short_strangle,
    strategy_book,
)

__all__ = [
    "STRATEGIES",
    "ChainSnapshot",
    "Leg",
    "Strategy",
    "calendar_spread",
    "data_dir",
    "hedged_risk_reversal",
    "list_snapshot_dates",
    "load_chain",
    "short_strangle",
    "snapshot_path",
    "strategy_book",
]
