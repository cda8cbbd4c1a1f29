"""A venue's start-up from its log: verify the whole hash chain, cut back to the verified prefix
or refuse, load the newest snapshot that verifies and matches the log, fold the records after it,
and keep only the newest snapshots (`recover`)."""

from __future__ import annotations

from crossmargin.engine.journal import GENESIS_HASH, ChainBreak, LogRecord, Snapshot, verify_chain
from crossmargin.engine.key_filter import KeyFilter
from crossmargin.engine.ports import EventStore
from crossmargin.engine.venue_settings import VenueSettings
from crossmargin.engine.venue_state import VenueState
from crossmargin.engine.venue_views import RecoveryReport
from crossmargin.errors import CorruptLogError, InputError

READ_PAGE = 5_000  # records read per query while verifying and folding


def recover(
    store: EventStore, digest: str, settings: VenueSettings, log_keys: KeyFilter
) -> tuple[VenueState, RecoveryReport]:
    """Verify the chain from record 1 (hash only), cut or refuse at a break, pick the newest
    snapshot inside the verified prefix that verifies and matches the log, fold the rest; keep
    the newest `settings.snapshots_kept` snapshots when the chosen one is among them.
    Every idempotency key read goes into `log_keys` (one past a break too: a false positive of
    the filter costs a lookup, never a wrong answer)."""
    problems: list[str] = []
    last = store.last_sequence()
    previous, expected = GENESIS_HASH, 1
    broken: ChainBreak | None = None
    first_record: LogRecord | None = None
    while True:
        page = store.read(expected, READ_PAGE)
        if first_record is None and page:
            first_record = page[0]
        broken = verify_chain(page, previous_hash=previous, first_sequence=expected)
        log_keys.add([r.idempotency_key for r in page if r.idempotency_key is not None])
        if broken is not None or not page:
            break
        previous, expected = page[-1].record_hash, page[-1].sequence + 1
    verified_end = broken.sequence - 1 if broken is not None else expected - 1
    if broken is None and verified_end < last:
        broken = ChainBreak(
            verified_end + 1, f"the counter says {last} records, the log ends at {verified_end}"
        )
    elif broken is None and verified_end > last:
        broken = ChainBreak(last + 1, f"records after the counter's {last}: not committed together")
        verified_end = last
    if broken is not None:
        if not settings.recover_to_verified_prefix or verified_end < 1:
            raise CorruptLogError(broken.sequence, broken.reason)
        store.truncate_after(verified_end)
        problems.append(
            f"log failed verification at sequence {broken.sequence} ({broken.reason}): "
            f"recovered to the verified prefix 1..{verified_end}; later records dropped"
        )
    assert first_record is not None
    genesis_digest = first_record.decoded().get("command", {}).get("config_digest")
    if first_record.kind != "genesis" or genesis_digest != digest:
        raise InputError("config", "the event log was written under another venue configuration")
    state = VenueState()
    chosen: Snapshot | None = None
    for rank, snap in enumerate(store.snapshots()):
        if snap.sequence > verified_end:
            problems.append(f"snapshot at {snap.sequence} lies beyond the verified log: not used")
            continue
        if not snap.verifies():
            problems.append(f"snapshot at {snap.sequence} fails its checksum: not used")
            continue
        at = store.read(snap.sequence, 1)
        if not at or at[0].record_hash != snap.record_hash:
            problems.append(f"snapshot at {snap.sequence} does not match the log's record: not used")
            continue
        try:
            state = VenueState.from_dict(snap.state())
        except (KeyError, TypeError, ValueError) as error:
            problems.append(f"snapshot at {snap.sequence} cannot be read ({error}): not used")
            state = VenueState()
            continue
        chosen = snap
        if rank < settings.snapshots_kept:
            # A run killed between writing a snapshot and pruning left one too many; prune now
            # unless that would drop the one just chosen (newer ones failed: kept as evidence).
            store.keep_newest_snapshots(settings.snapshots_kept)
        break
    replayed = 0
    next_sequence = state.sequence + 1
    while next_sequence <= verified_end:
        page = store.read(next_sequence, min(READ_PAGE, verified_end - next_sequence + 1))
        for record in page:
            state.apply_effects(
                record.decoded()["effects"],
                sequence=record.sequence,
                record_hash=record.record_hash,
                as_of_ns=record.as_of_ns,
            )
        replayed += len(page)
        next_sequence += len(page)
    return state, RecoveryReport(
        snapshot_sequence=None if chosen is None else chosen.sequence,
        records_replayed=replayed,
        last_sequence=state.sequence,
        problems=tuple(problems),
    )
