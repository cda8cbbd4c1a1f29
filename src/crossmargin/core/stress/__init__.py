"""Venue-wide stress maths, pure (numpy in, numpy out; no I/O, no clock).

impact       square-root price impact (and a depth curve) of liquidation flow
liquidation  one cascade round's rule per account: what to close, cash settled, collateral sold,
             deficits, all in exact integer units
waterfall    the venue's side of a round: insurance fund, then ADL (core.liquidation.adl policies),
             then bad debt, in exact integer units
historical   joint moves of a historical window from a price panel; the largest drawdown windows
reverse      bracketing root search for the smallest move that breaks a threshold

Orchestration (the engine's scenario pass, rounds, shards) is crossmargin.engine.stress.
"""
