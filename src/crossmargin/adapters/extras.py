"""Optional dependencies, imported when a command needs them (pyproject.toml's extras):

    var     arch        GARCH(1,1) volatility for the fhs-garch-* VaR presets (pulls pandas, statsmodels)
    charts  matplotlib  PNG charts of back-tests (`crossmargin backtest --out`)

Without the extra, the command stops with a MissingExtraError naming `pip install 'crossmargin[X]'`;
every other command runs on the core install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from crossmargin.errors import MissingExtraError


def import_extra(module: str, *, extra: str, purpose: str) -> ModuleType:
    """`module`, imported; MissingExtraError naming the pip extra when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(module.partition(".")[0], extra=extra, purpose=purpose) from error
