"""Names the command line's help texts show, without importing the engine.

`crossmargin --help` and `crossmargin margin --help` must not load numba, scipy or the margin
models just to list what `--model` and `--preset` accept. These tuples repeat the engine's names;
tests/cli/test_startup.py checks that each equals its source:

    MODELS                   crossmargin.engine.margin_run.MODELS
    PORTFOLIO_PRESET_NAMES   crossmargin.core.margin.presets.PORTFOLIO_PRESETS (keys)
    TIER_PRESET_NAMES        crossmargin.core.margin.presets.TIER_PRESETS (keys)
    VAR_PRESET_NAMES         crossmargin.core.margin.var.VAR_PRESETS (keys)
"""

from __future__ import annotations

MODELS = ("cross", "isolated", "portfolio", "sensitivity", "var")
PORTFOLIO_PRESET_NAMES = ("deribit-pm", "paradex-pm", "span", "crossmargin-multi")
TIER_PRESET_NAMES = ("binance", "hyperliquid")
VAR_PRESET_NAMES = (
    "hs-var99",
    "hs-var995",
    "hs-es975",
    "fhs-es975",
    "fhs-garch-es975",
    "mc-es975",
    "mc-gaussian-es975",
    "fhs-es975-floor",
)
