"""Liquidation: margin-call state machine, partial liquidation planner, loss waterfall with
pluggable auto-deleveraging, and liquidation/bankruptcy prices (pure; see each module)."""
