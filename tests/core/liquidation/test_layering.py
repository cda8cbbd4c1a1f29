"""The liquidation rules stand alone: importing them loads no ledger module (the ledger depends on
liquidation, never the reverse; pyproject's import-linter contract states the same statically),
and the names the ledger re-exports are the liquidation package's own objects."""

from __future__ import annotations

import subprocess
import sys

from crossmargin.core.ledger import state
from crossmargin.core.liquidation import params

LIQUIDATION_MODULES = ("params", "margin_call", "adl", "prices", "model_prices", "roots")


def test_liquidation_modules_load_without_the_ledger() -> None:
    imports = "; ".join(f"import crossmargin.core.liquidation.{m}" for m in LIQUIDATION_MODULES)
    probe = f"import sys; {imports}; print(sorted(m for m in sys.modules if m.startswith('crossmargin.core.ledger')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_ledger_state_reexports_the_liquidation_rules() -> None:
    assert state.AccountStatus is params.AccountStatus
    assert state.MarginCallParams is params.MarginCallParams
    assert state.LiquidationParams is params.LiquidationParams
    assert state.WaterfallParams is params.WaterfallParams
    assert state.WATERFALL_STAGES is params.WATERFALL_STAGES
    assert state.coverage is params.coverage
