"""Liquidation rules and maths, pure and independent of the ledger (the ledger imports this
package, never the reverse; an import-linter contract holds it).

params        AccountStatus, MarginCallParams, LiquidationParams, WaterfallParams, coverage
margin_call   the margin-call state machine with hysteresis
adl           auto-deleveraging policies (who gives up how many contracts)
prices        liquidation and bankruptcy prices (cross margin, closed form and roots)
model_prices  liquidation prices under any margin model
roots         bracketing root finder for the price gaps

The controller that posts a liquidation to the ledger is crossmargin.core.ledger.liquidate.
"""
