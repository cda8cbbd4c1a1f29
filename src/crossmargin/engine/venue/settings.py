"""The venue's operating settings (`VenueSettings`): group commit, snapshots, recovery, price
staleness, the idempotency-key memory and the writer's fast lanes, each checked at construction."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from crossmargin.core.oracle.policy import OraclePolicy
from crossmargin.errors import InputError

SNAPSHOT_ENCODERS = ("fork", "thread")
VERIFY_ON_START = ("full", "since_snapshot")


def default_snapshot_encoder() -> str:
    """The snapshot encoder by default: "fork" on Linux, "thread" elsewhere (macOS's system
    libraries are not safe to use in the child of a multi-threaded process; Windows has no
    fork)."""
    return "fork" if sys.platform == "linux" and hasattr(os, "fork") else "thread"


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueSettings:
    """Operating settings. `max_batch`: commands per group commit; `group_window_s`: how long
    the writer waits for more commands after the first of a group (0: only those already
    queued); `snapshot_every`: records between snapshots (at least); `snapshot_busy_limit`: the
    largest share of time snapshots may take: after one that took T seconds (the writer's part,
    a fork or a copy, then the encoding, in the child or on the snapshot thread, and the write)
    the next waits at least T / snapshot_busy_limit seconds, so their
    cost stays a bounded share of the venue's time however large the state grows (None: one
    every `snapshot_every` records whatever it costs); `snapshot_encoder`: where a snapshot is
    sorted and encoded: "fork" (the default on Linux) in a forked child holding a copy-on-write
    image of the state (`engine.venue.forked_encoding`), on another CPU, so the writer and the
    committer never share the GIL with it; "thread": a detached copy on the venue's snapshot
    thread (the default elsewhere; the GIL shared for the encoding's duration);
    `snapshots_kept`: how many of the newest snapshots are kept (each a copy of the state: the
    older ones are dropped after each snapshot written and at start-up, when the snapshot
    recovered from is among the newest kept; those kept besides the newest are
    fallbacks should it fail its checksum); `max_margin_jump_fraction`: a risk
    parameter change raising total IM by more than this is refused without override;
    `recover_to_verified_prefix`: on a log that fails verification, drop everything after the
    last verified record (saying so) instead of refusing to start; `verify_on_start`: "full"
    verifies the whole chain before serving (O(log)), "since_snapshot" only the records after
    the newest snapshot that verifies, the earlier ones by an audit thread once serving
    (`engine.venue.recovery`, `Venue.log_audit`); `audit_busy_limit`: the largest share of time
    that audit may take (after a step that took T it rests T (1 / limit - 1)); `max_price_age_s`: an index
    price not set for longer than this is reported stale (`Venue.price_states`, GET /v1/prices;
    default: the oracle policy's margin rule, `core.oracle.policy`); `recent_keys`: how many
    committed idempotency keys the writer keeps in memory (the oldest half is dropped past it;
    an older key is found in the log, so a retry of any age is still recognised: the cache
    bounds memory, ~350 bytes a key, not what is remembered; the log is read only for keys that
    `engine.venue.key_filter.KeyFilter`, 2.5 bytes a key written, cannot rule out);
    `adl_candidates_from_monitor`: a liquidation reaching ADL ranks the market's opposite holders
    on the monitor's equity and holds only the winners (`engine.venue.adl_candidates`), False: holds
    and margins every candidate in the decision (the reference path, O(candidates) of Python
    per liquidation; the same decisions: tests/engine/test_liquidation_counterparties.py);
    `deposit_lane`: a deposit to a HEALTHY account is written directly (`engine.venue.deposit_lane`),
    False: every command takes the generic path (the reference; the same log byte for byte:
    tests/engine/venue/test_deposit_lane.py); `fill_lane`: a fill between two HEALTHY traders that
    stays so is decided on the fold directly (`engine.venue.fill_lane`), False: by the ledger on a
    sub-state (the reference; the same log: tests/engine/venue/test_fill_lane.py); `transfer_lane`: a
    transfer or withdrawal between HEALTHY traders that stay so is decided on the fold directly
    (`engine.venue.transfer_lane`), False: by the ledger on a sub-state (tests/engine/
    test_transfer_lane.py). By default the whole hash chain is verified at every start-up and a
    snapshot only saves the fold; with `verify_on_start="since_snapshot"` it also saves the
    verification of the records before it, audited once serving."""

    max_batch: int = 1024
    group_window_s: float = 0.0
    snapshot_every: int = 10_000
    snapshot_busy_limit: float | None = 0.02
    snapshot_encoder: str = field(default_factory=lambda: default_snapshot_encoder())
    snapshots_kept: int = 3
    max_margin_jump_fraction: float = 0.10
    recover_to_verified_prefix: bool = False
    verify_on_start: str = "full"
    audit_busy_limit: float = 0.1
    max_liquidation_rounds: int = 64
    max_price_age_s: float = OraclePolicy().margin.max_age_ns / 1e9
    recent_keys: int = 200_000
    adl_candidates_from_monitor: bool = True
    deposit_lane: bool = True
    fill_lane: bool = True
    transfer_lane: bool = True

    def __post_init__(self) -> None:
        every = self.snapshot_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InputError("snapshot_every", f"must be an integer >= 1, got {every!r}")
        limit = self.snapshot_busy_limit
        fraction = isinstance(limit, (int, float)) and not isinstance(limit, bool) and 0 < limit <= 1
        if limit is not None and not fraction:
            raise InputError("snapshot_busy_limit", f"must be a fraction in (0, 1] or None, got {limit!r}")
        encoder = self.snapshot_encoder
        if encoder not in SNAPSHOT_ENCODERS:
            raise InputError("snapshot_encoder", f"must be one of {SNAPSHOT_ENCODERS}, got {encoder!r}")
        if self.snapshot_encoder == "fork" and not hasattr(os, "fork"):
            raise InputError("snapshot_encoder", f"'fork' is not available on {sys.platform}: use 'thread'")
        if self.verify_on_start not in VERIFY_ON_START:
            raise InputError(
                "verify_on_start", f"must be one of {VERIFY_ON_START}, got {self.verify_on_start!r}"
            )
        audit = self.audit_busy_limit
        if isinstance(audit, bool) or not isinstance(audit, (int, float)) or not 0 < audit <= 1:
            raise InputError("audit_busy_limit", f"must be a fraction in (0, 1], got {audit!r}")
        kept = self.snapshots_kept
        if isinstance(kept, bool) or not isinstance(kept, int) or kept < 1:
            raise InputError("snapshots_kept", f"must be an integer >= 1, got {kept!r}")
        keys = self.recent_keys
        if isinstance(keys, bool) or not isinstance(keys, int) or keys < 2:
            raise InputError("recent_keys", f"must be an integer >= 2, got {self.recent_keys!r}")
