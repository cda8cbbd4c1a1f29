"""The margin-call state machine, with hysteresis (Mango's liquidation-end health).

    coverage = equity / MM          (+inf without requirement)

    BANKRUPT     equity <= 0 with exposure (coverage <= 0)
    LIQUIDATION  coverage < 1, or a margin call past its deadline; once in, it is left only when
                 coverage >= exit_coverage (> 1), so an account does not bounce in and out
    MARGIN_CALL  coverage < margin_call_coverage: reduce-only, deadline = entry + grace_ns,
                 top-up requested
    WARNING      coverage < warning_coverage
    HEALTHY      otherwise

Withdrawals are allowed only from HEALTHY and WARNING (and, venue-wide, not while bad debt is
unresolved: the ledger checks that).
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmargin.core.liquidation.params import AccountStatus, MarginCallParams


@dataclass(frozen=True, slots=True)
class Transition:
    status: AccountStatus
    deadline_ns: int | None
    reason: str


def next_status(
    previous: AccountStatus,
    *,
    coverage: float,
    now_ns: int,
    deadline_ns: int | None,
    params: MarginCallParams,
) -> Transition:
    """The status after an evaluation at `now_ns` (module docstring)."""
    if coverage <= 0.0:
        return Transition(AccountStatus.BANKRUPT, None, "equity at or below zero")
    if previous in (AccountStatus.LIQUIDATION, AccountStatus.BANKRUPT) and coverage < params.exit_coverage:
        return Transition(AccountStatus.LIQUIDATION, None, "below liquidation-exit coverage")
    if coverage < 1.0:
        return Transition(AccountStatus.LIQUIDATION, None, "equity below maintenance margin")
    if coverage < params.margin_call_coverage:
        deadline = deadline_ns if deadline_ns is not None else now_ns + params.grace_ns
        if now_ns >= deadline and previous == AccountStatus.MARGIN_CALL:
            return Transition(AccountStatus.LIQUIDATION, None, "margin call not met by its deadline")
        return Transition(AccountStatus.MARGIN_CALL, deadline, "below margin-call coverage: top up or reduce")
    if coverage < params.warning_coverage:
        return Transition(AccountStatus.WARNING, None, "below warning coverage")
    return Transition(AccountStatus.HEALTHY, None, "healthy")


def may_withdraw(status: AccountStatus) -> bool:
    return status in (AccountStatus.HEALTHY, AccountStatus.WARNING)


def reduce_only(status: AccountStatus) -> bool:
    return status >= AccountStatus.MARGIN_CALL
