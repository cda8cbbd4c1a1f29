"""Exact double-entry ledger: integer minor units per asset, events, pure `apply`.

money      the float64 -> minor-unit boundary (charges round up, payouts down)
postings   balanced postings and the system accounts
events     the event types and their dict form (event log)
state      LedgerConfig, LedgerState, the risk view (state -> Book, MarketState, margin)
transact   a transaction under construction (internal)
liquidate  the liquidation controller: close-out, collateral sale, loss waterfall, ADL postings
apply      apply(state, event, config) -> Applied(state, postings, records, view); replay
"""
