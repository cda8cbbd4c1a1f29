"""Following the venue's log as notifications (`Subscription`, `notifications_of`): margin rows
and audit records (status changes, liquidation fills, ADL, waterfall stages), in sequence order,
resumable from any sequence."""

from __future__ import annotations

from typing import Protocol

from crossmargin.engine.journal import LogRecord
from crossmargin.engine.venue.views import Notification


class FollowedLog(Protocol):
    """What a subscription reads: a wait for a committed sequence, and committed records
    (`engine.venue.Venue`)."""

    def wait_for(self, sequence: int, *, timeout_s: float) -> bool: ...

    def records(self, from_sequence: int, limit: int) -> list[LogRecord]: ...


class Subscription:
    """A cursor over the venue's notifications (`Venue.subscribe`): `next` returns the ones after
    the cursor, waiting up to `timeout_s` for a commit when there are none, and moves the cursor."""

    def __init__(self, venue: FollowedLog, *, from_sequence: int, account: str | None) -> None:
        self._venue = venue
        self._cursor = from_sequence
        self._account = account

    @property
    def cursor(self) -> int:
        """The last sequence delivered (resume from it)."""
        return self._cursor

    def next(self, *, timeout_s: float = 1.0, limit: int = 1000) -> list[Notification]:
        self._venue.wait_for(self._cursor + 1, timeout_s=timeout_s)
        records = self._venue.records(self._cursor + 1, limit)
        out: list[Notification] = []
        for record in records:
            out.extend(n for n in notifications_of(record) if self._account in (None, n.account))
            self._cursor = record.sequence
        return out


def notifications_of(record: LogRecord) -> list[Notification]:
    """What subscribers see of one record: margin rows, then audit records, in record order."""
    effects = record.decoded().get("effects", {})
    out: list[Notification] = []
    for account, equity, im, mm, reserved in effects.get("margin", ()):
        out.append(
            Notification(
                sequence=record.sequence,
                index=len(out),
                kind="margin",
                account=account,
                detail={
                    "equity_usd": equity,
                    "initial_margin_usd": im,
                    "maintenance_margin_usd": mm,
                    "reserved_usd": reserved,
                    "available_usd": equity - im - reserved,
                },
            )
        )
    for kind, account, detail in effects.get("records", ()):
        out.append(
            Notification(sequence=record.sequence, index=len(out), kind=kind, account=account, detail=detail)
        )
    return out
