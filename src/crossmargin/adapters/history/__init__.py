"""Loaders for the shared historical market data (../shared/data or $CROSSMARGIN_DATA)."""

from typing import TYPE_CHECKING

from crossmargin._lazy import lazy_names

# Imported on first use: `crossmargin margin` reads the price history module only, not the option
# chains and strategy books (start-up).
_LAZY: dict[str, str] = {
    "ChainSnapshot": "crossmargin.adapters.history.deribit_chains",
    "data_dir": "crossmargin.adapters.history.deribit_chains",
    "list_snapshot_dates": "crossmargin.adapters.history.deribit_chains",
    "load_chain": "crossmargin.adapters.history.deribit_chains",
    "snapshot_path": "crossmargin.adapters.history.deribit_chains",
    "STRATEGIES": "crossmargin.adapters.history.strategies",
    "Leg": "crossmargin.adapters.history.strategies",
    "Strategy": "crossmargin.adapters.history.strategies",
    "calendar_spread": "crossmargin.adapters.history.strategies",
    "hedged_risk_reversal": "crossmargin.adapters.history.strategies",
    "short_strangle": "crossmargin.adapters.history.strategies",
    "strategy_book": "crossmargin.adapters.history.strategies",
}

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
