"""The service's settings: one frozen value, built by `crossmargin serve` from its options and
environment (`CROSSMARGIN_DB`), passed to `create_app`. Nothing reads the environment later."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from crossmargin.engine.venue import VenueSettings
from crossmargin.service.limits import AdmissionLimits, RateLimits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Events per page of the event-log endpoint and per catch-up read of a resuming stream.
EVENTS_PAGE_LIMIT = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    """`database_url`: SQLAlchemy URL of the event log (SQLite file by default, or
    postgresql+psycopg://...), `schema` its PostgreSQL schema. `book`: the opening state loaded
    into an empty log. `admin_key_file`: where the first admin key is written (mode 0600) when
    the key table is empty. `venue`: the venue's operating settings (snapshots, groups, lanes)."""

    database_url: str
    book: Path
    admin_key_file: Path
    schema: str | None = None  # PostgreSQL only: the log's own schema (one per venue or test run)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    rate_limits: RateLimits = field(default_factory=RateLimits)
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    stream_wait_s: float = 1.0  # a stream's longest wait for a commit before it sends a checkpoint
    events_page_limit: int = EVENTS_PAGE_LIMIT
    venue: VenueSettings = field(default_factory=VenueSettings)
