"""The live venue: a margin service's application core over a durable, hash-chained event log.

`Venue` (venue.py) takes commands, decides them against the folded state, appends them to the log
(group commit) and answers after the commit; its rooms, each with one job:

    commands.py         what a client asks the venue to do (the commands, their bodies)
    decide.py           one command against the venue state -> its effects (the margin rules)
    deposit_lane.py,    the common commands' fast paths (`VenueSettings` lanes), held equal to
    transfer_lane.py,   `decide` by their tests; lane_rules.py: what the lanes may take
    fill_lane.py
    state.py            the venue's state as a fold of its log (exact integer balances)
    monitor.py          the margin-call state machine over the long-lived `RiskEngine`
    liquidation_queue.py, adl_candidates.py   who is liquidated next, and who is deleveraged
    genesis.py          the log's first record (the venue's configuration)
    recovery.py         start-up from the log: verify, cut or refuse, restore, fold; the audit
    snapshot_writer.py, forked_encoding.py    paced snapshots, encoded off the writer's path
    key_filter.py, untracked.py               the idempotency keys: the log's filter, memory
    subscription.py     following the log as notifications
    settings.py         `VenueSettings`; views.py: what the venue answers with

The log's record format and the ports it is stored through are the engine's (`engine.journal`,
`engine.ports`); the file runs (`engine.margin_run`, ...) never import this package. This module
re-exports the contract: one import gives the API layer every name it needs.
"""

from crossmargin.engine.venue.commands import (
    AccrueInterest,
    CancelOrder,
    Command,
    Deposit,
    Fill,
    OpenAccount,
    PlaceOrder,
    RiskParameters,
    SetRiskParameters,
    SettleExpiry,
    SettleFunding,
    Transfer,
    UpdatePrices,
    Withdraw,
)
from crossmargin.engine.venue.genesis import Genesis
from crossmargin.engine.venue.settings import VenueSettings
from crossmargin.engine.venue.subscription import Subscription
from crossmargin.engine.venue.venue import (
    Outcome,
    Venue,
)
from crossmargin.engine.venue.views import (
    AccountView,
    Ack,
    LogAudit,
    LogEntry,
    Notification,
    ParameterPreview,
    PriceBoard,
    PriceState,
    RecoveryReport,
    WhatIfTrade,
    WholeBook,
)

__all__ = [
    "AccountView",
    "AccrueInterest",
    "Ack",
    "CancelOrder",
    "Command",
    "Deposit",
    "Fill",
    "Genesis",
    "LogAudit",
    "LogEntry",
    "Notification",
    "OpenAccount",
    "Outcome",
    "ParameterPreview",
    "PlaceOrder",
    "PriceBoard",
    "PriceState",
    "RecoveryReport",
    "RiskParameters",
    "SetRiskParameters",
    "SettleExpiry",
    "SettleFunding",
    "Subscription",
    "Transfer",
    "UpdatePrices",
    "Venue",
    "VenueSettings",
    "WhatIfTrade",
    "WholeBook",
    "Withdraw",
]
