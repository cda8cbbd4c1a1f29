"""Who may see and do what. Every route states its rule by calling one of these; nothing else
decides access.

    rule                         holder                 risk    admin
    see_account(account)         own account only       yes     yes
    act_on_account(account)      own account only       no      yes    (deposits, withdrawals, orders)
    see_venue()                  no                     yes     yes    (all accounts, the whole log, stream)
    feed_venue()                 no                     yes     yes    (fills, prices: matcher, oracle)
    administer()                 no                     no      yes    (keys, risk parameters)

Refusals are 403 problems naming what was refused; a holder learns nothing about other accounts
(the refusal is the same whether the account exists or not).
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmargin.service.keys import Role
from crossmargin.service.problems import Problem


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: its key id, role, and account (holders only)."""

    key_id: str
    role: Role
    account: str | None


def _refuse(detail: str, field: str | None = None) -> Problem:
    return Problem(403, "forbidden", detail, field=field)


def see_account(principal: Principal, account: str, *, field: str = "path.account") -> None:
    if principal.role == Role.HOLDER and principal.account != account:
        raise _refuse("a holder key sees its own account only", field)


def act_on_account(principal: Principal, account: str, *, field: str = "path.account") -> None:
    if principal.role == Role.ADMIN:
        return
    if principal.role == Role.RISK:
        raise _refuse("a risk key does not move an account's money; use the holder's or an admin key", field)
    if principal.account != account:
        raise _refuse("a holder key acts on its own account only", field)


def see_venue(principal: Principal) -> None:
    if principal.role == Role.HOLDER:
        raise _refuse("the whole venue is visible to risk and admin keys only")


def feed_venue(principal: Principal) -> None:
    if principal.role == Role.HOLDER:
        raise _refuse("fills and prices come from the venue's systems (risk or admin keys)")


def administer(principal: Principal) -> None:
    if principal.role != Role.ADMIN:
        raise _refuse("admin keys only")
