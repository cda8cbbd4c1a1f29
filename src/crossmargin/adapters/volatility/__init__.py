"""Volatility filters that need a heavy third-party library (GARCH via `arch`)."""

from crossmargin.adapters.volatility.garch import GarchFilter

__all__ = ["GarchFilter"]
