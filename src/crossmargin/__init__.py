"""crossmargin: a multi-asset cross-margining risk engine for crypto derivatives.

The public API is the names below, all importable from `crossmargin`:

    loaded = crossmargin.load_book("examples/desk.yaml")
    run    = crossmargin.run_margin(loaded, model="portfolio", preset="deribit-pm")
    report = crossmargin.build_margin_report(run, levels=crossmargin.price_levels(run))

They load lazily (module `__getattr__`): `import crossmargin` imports no numpy, numba or
scipy, so `crossmargin --help` stays fast; the first use of a name imports its module. Before
anything imports numba, `_numba_cache` points numba's on-disk kernel cache at a user directory
when the package directory is not writable.

Layers: the pure risk core in `crossmargin.core`; adapters (files, feeds, history) in
`crossmargin.adapters`; orchestration and reports in `crossmargin.engine`; the command line in
`crossmargin.cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossmargin import _numba_cache
from crossmargin._lazy import lazy_names
from crossmargin.errors import (
    BookFileError,
    CrossMarginError,
    InputError,
    OracleError,
    PricingError,
    StaleOracleError,
    UntrustedOracleError,
)

_numba_cache.configure()

__version__ = "0.1.0"

# name → module that defines it; each is imported on first access.
_LAZY: dict[str, str] = {
    # loading a book
    "load_book": "crossmargin.adapters.files",
    "LoadedBook": "crossmargin.adapters.files",
    "Book": "crossmargin.core.book",
    "MarketState": "crossmargin.core.market",
    # models, parameters, presets
    "CrossMargin": "crossmargin.core.margin.cross",
    "CrossParams": "crossmargin.core.margin.cross",
    "IsolatedMargin": "crossmargin.core.margin.isolated",
    "PortfolioMargin": "crossmargin.core.margin.portfolio",
    "PortfolioParams": "crossmargin.core.margin.portfolio",
    "PortfolioSnapshot": "crossmargin.core.margin.portfolio",
    "WhatIf": "crossmargin.core.margin.portfolio",
    "portfolio_preset": "crossmargin.core.margin.presets",
    "with_tier_preset": "crossmargin.core.margin.presets",
    "PORTFOLIO_PRESETS": "crossmargin.core.margin.presets",
    "TIER_PRESETS": "crossmargin.core.margin.presets",
    "SensitivityMargin": "crossmargin.core.margin.sensitivity",
    "SensitivityParams": "crossmargin.core.margin.sensitivity",
    "VarMargin": "crossmargin.core.margin.var",
    "VarParams": "crossmargin.core.margin.var",
    "var_preset": "crossmargin.core.margin.var",
    "VAR_PRESETS": "crossmargin.core.margin.var",
    "var_model": "crossmargin.engine.var_run",
    # results
    "MarginResult": "crossmargin.core.margin.result",
    "Breakdown": "crossmargin.core.margin.result",
    "PriceLevels": "crossmargin.core.liquidation.prices",
    # runs and reports
    "MODELS": "crossmargin.engine.margin_run",
    "MarginRun": "crossmargin.engine.margin_run",
    "run_margin": "crossmargin.engine.margin_run",
    "price_levels": "crossmargin.engine.margin_run",
    "build_margin_report": "crossmargin.engine.margin_run",
    "margin_report": "crossmargin.engine.margin_run",
    "MarginReport": "crossmargin.engine.reports",
    "AccountReport": "crossmargin.engine.reports",
    "PositionReport": "crossmargin.engine.reports",
    "CollateralReport": "crossmargin.engine.reports",
    "AccountPriceLevels": "crossmargin.engine.reports",
    "to_json": "crossmargin.engine.reports",
    # the long-lived engine
    "RiskEngine": "crossmargin.engine.risk_engine",
    "PriceTick": "crossmargin.engine.risk_engine",
    "AccountUpdate": "crossmargin.engine.risk_engine",
    "Remargin": "crossmargin.engine.risk_engine",
}

__all__ = [  # the errors above, then every name of _LAZY (tests/test_public_api.py checks)
    "MODELS",
    "PORTFOLIO_PRESETS",
    "TIER_PRESETS",
    "VAR_PRESETS",
    "AccountPriceLevels",
    "AccountReport",
    "AccountUpdate",
    "Book",
    "BookFileError",
    "Breakdown",
    "CollateralReport",
    "CrossMargin",
    "CrossMarginError",
    "CrossParams",
    "InputError",
    "IsolatedMargin",
    "LoadedBook",
    "MarginReport",
    "MarginResult",
    "MarginRun",
    "MarketState",
    "OracleError",
    "PortfolioMargin",
    "PortfolioParams",
    "PortfolioSnapshot",
    "PositionReport",
    "PriceLevels",
    "PriceTick",
    "PricingError",
    "Remargin",
    "RiskEngine",
    "SensitivityMargin",
    "SensitivityParams",
    "StaleOracleError",
    "UntrustedOracleError",
    "VarMargin",
    "VarParams",
    "WhatIf",
    "build_margin_report",
    "load_book",
    "margin_report",
    "portfolio_preset",
    "price_levels",
    "run_margin",
    "to_json",
    "var_model",
    "var_preset",
    "with_tier_preset",
]

if TYPE_CHECKING:  # what mypy and IDEs see; at run time `__getattr__` imports on first use
    from crossmargin.adapters.files import LoadedBook, load_book
    from crossmargin.core.book import Book
    from crossmargin.core.liquidation.prices import PriceLevels
    from crossmargin.core.margin.cross import CrossMargin, CrossParams
    from crossmargin.core.margin.isolated import IsolatedMargin
    from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioParams, PortfolioSnapshot, WhatIf
    from crossmargin.core.margin.presets import (
        PORTFOLIO_PRESETS,
        TIER_PRESETS,
        portfolio_preset,
        with_tier_preset,
    )
    from crossmargin.core.margin.result import Breakdown, MarginResult
    from crossmargin.core.margin.sensitivity import SensitivityMargin, SensitivityParams
    from crossmargin.core.margin.var import VAR_PRESETS, VarMargin, VarParams, var_preset
    from crossmargin.core.market import MarketState
    from crossmargin.engine.margin_run import (
        MODELS,
        MarginRun,
        build_margin_report,
        margin_report,
        price_levels,
        run_margin,
    )
    from crossmargin.engine.reports import (
        AccountPriceLevels,
        AccountReport,
        CollateralReport,
        MarginReport,
        PositionReport,
        to_json,
    )
    from crossmargin.engine.risk_engine import AccountUpdate, PriceTick, Remargin, RiskEngine
    from crossmargin.engine.var_run import var_model


# Import a public name's module on first access (PEP 562), then keep the name here.
__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
