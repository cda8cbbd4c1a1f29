"""A venue's start-up from its log (`recover`): verify the hash chain, cut back to the verified
prefix or refuse, load the newest snapshot that verifies and matches the log, fold the records
after it, keep only the newest snapshots; and the audit of a chain's prefix (`audit_chain`).

Two ways to verify (`VenueSettings.verify_on_start`):
  "full"            every record from the first: hashes, links, postings. O(log): ~12 us a
                    record on SQLite (an Intel Xeon, family 6 model 167, bench/bench_restart.py),
                    so a log of 100 million records takes ~20 minutes to start.
  "since_snapshot"  the newest snapshot that verifies (its SHA-256 covers its sequence and chain
                    hash) and whose record is in the log with that hash and recomputes to it is
                    trusted; only the records after it are verified. Every key of the log must be
                    known to the writer's filter, or a retry of an old key would be applied
                    twice: the snapshot carries the filter's bits, exact through its record
                    (`KeyFilter.through`; its encoder hashes in the writer's memory of recent
                    keys), so no key before it is read; an image exact through less has the keys
                    of the records between read, and a snapshot without one (written before they
                    were kept) every key before it. O(records since the snapshot), whatever the
                    log's length (bench/bench_restart.py). The records before it are then
                    verified by the
                    venue's audit thread after start-up (`audit_chain`, `Venue.log_audit`),
                    paced to `VenueSettings.audit_busy_limit` of the time: it shares the GIL
                    with the writer (unpaced, the deposits served meanwhile ran at half the
                    rate, ack p99 46 against 8.5 ms). A break there is reported loudly, not
                    served around silently; so is a key of the log that the restored filter
                    lacks (`missing_key`).
"""

from __future__ import annotations

import binascii
import time
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

from crossmargin.engine.journal import GENESIS_HASH, ChainBreak, LogRecord, Snapshot, verify_chain
from crossmargin.engine.ports import EventStore
from crossmargin.engine.venue.key_filter import KeyFilter, KeyFilterImage
from crossmargin.engine.venue.settings import VenueSettings
from crossmargin.engine.venue.state import VenueState
from crossmargin.engine.venue.views import RecoveryReport
from crossmargin.errors import CorruptLogError, InputError

READ_PAGE = 5_000  # records read per query while verifying and folding
KEY_PAGE = 100_000  # idempotency keys read per query (a start that trusts a snapshot)


class _Start(NamedTuple):
    """Where folding starts: a trusted snapshot, its state, its place among the stored ones."""

    snapshot: Snapshot
    state: VenueState
    rank: int
    key_filter: dict[str, Any] | None  # the filter's image as the snapshot carries it, if it does


def recover(
    store: EventStore, digest: str, settings: VenueSettings, log_keys: KeyFilter
) -> tuple[VenueState, RecoveryReport]:
    """Verify (module docstring: from the first record or from a trusted snapshot), cut or
    refuse at a break, pick the newest snapshot inside the verified prefix that verifies and
    matches the log, fold the rest; keep the newest `settings.snapshots_kept` snapshots when the
    chosen one is among them. Every idempotency key of the log goes into `log_keys` (one past a
    break too: a false positive of the filter costs a lookup, never a wrong answer)."""
    problems: list[str] = []
    last = store.last_sequence()
    trusted: _Start | None = None
    keys_read = filter_through = 0
    if settings.verify_on_start == "since_snapshot":
        trusted = _newest_usable_snapshot(store, last, problems, self_check=True)
        if trusted is None and problems:
            problems.append("no snapshot could be trusted: the whole log verified from its first record")
    if trusted is None:
        previous, expected = GENESIS_HASH, 1
    else:
        previous, expected = trusted.snapshot.record_hash, trusted.snapshot.sequence + 1
        keys_read, filter_through = _keys_before(store, trusted, log_keys, problems)
    # A trusted snapshot's state takes the records after it as they are verified (one read and
    # one decode a record); otherwise the snapshot is chosen once the verified end is known.
    verified_end, folded = _verify_and_cut(
        store,
        previous,
        expected,
        last,
        settings,
        problems,
        log_keys.add,
        fold_into=None if trusted is None else trusted.state,
    )
    log_keys.add([], through=verified_end)  # every key of the log is in it now
    genesis = store.read(1, 1)
    genesis_digest = genesis[0].decoded().get("command", {}).get("config_digest") if genesis else None
    if not genesis or genesis[0].kind != "genesis" or genesis_digest != digest:
        raise InputError("config", "the event log was written under another venue configuration")
    start = trusted or _newest_usable_snapshot(store, verified_end, problems, self_check=False)
    if start is not None and start.rank < settings.snapshots_kept:
        # A run killed between writing a snapshot and pruning left one too many; prune now
        # unless that would drop the one chosen (newer ones that failed: kept as evidence).
        store.keep_newest_snapshots(settings.snapshots_kept)
    state = start.state if start is not None else VenueState()
    replayed = folded + _fold(store, state, verified_end)
    return state, RecoveryReport(
        snapshot_sequence=None if start is None else start.snapshot.sequence,
        records_replayed=replayed,
        last_sequence=state.sequence,
        problems=tuple(problems),
        keys_read=keys_read,
        key_filter_through=filter_through,
    )


def _keys_before(
    store: EventStore, start: _Start, log_keys: KeyFilter, problems: list[str]
) -> tuple[int, int]:
    """Every idempotency key of the records up to the trusted snapshot into `log_keys`: the
    filter's image the snapshot carries, then the keys of the records after its `through` read
    from the log (all of them without an image, or with one this build cannot use: said in
    `problems`). (How many keys were read, the restored image's `through`: 0 for none.)"""
    through = start.snapshot.sequence
    first = 1
    image = _image_of(start, problems)
    if image is not None:
        log_keys.restore(image)
        first = image.through + 1
    read = 0
    for page in range(first, through + 1, KEY_PAGE):
        last = min(page + KEY_PAGE - 1, through)
        keys = store.idempotency_keys(page, last - page + 1)
        log_keys.add(keys, through=last)
        read += len(keys)
    return read, 0 if image is None else image.through


def _image_of(start: _Start, problems: list[str]) -> KeyFilterImage | None:
    """The key filter's image the snapshot carries, if this build can use it; why not, said in
    `problems` (every key before the snapshot is then read from the log)."""
    image, why = _usable_image(start)
    if image is None:
        problems.append(f"snapshot at {start.snapshot.sequence}{why}: every key before it read from the log")
    return image


def _usable_image(start: _Start) -> tuple[KeyFilterImage | None, str]:
    if start.key_filter is None:
        return None, " carries no key filter"
    try:
        image = KeyFilterImage.from_dict(start.key_filter)
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error) as error:
        return None, f": its key filter cannot be used ({error})"
    if not 0 <= image.through <= start.snapshot.sequence:
        return None, f": its key filter claims keys through {image.through}"
    return image, ""


def missing_key(log_keys: KeyFilter, records: list[LogRecord], through: int) -> str | None:
    """The start-up audit's check of a restored key filter: a key of these records (those at or
    before `through`, the image's) that the bits do not hold, as a problem (None: all held)."""
    keyed = [r for r in records if r.sequence <= through and r.idempotency_key is not None]
    at = log_keys.missing([r.idempotency_key for r in keyed if r.idempotency_key is not None])
    if at is None:
        return None
    record = keyed[at]
    return (
        f"the snapshot's key filter lacks the key of record {record.sequence} "
        "(a retry of it would be applied again): restart with verify_on_start='full'"
    )


def audit_chain(
    store: EventStore,
    through: int,
    *,
    page: int,
    between_pages: Callable[[int, float], None],
    check: Callable[[list[LogRecord]], str | None] | None = None,
) -> ChainBreak | None:
    """Verify records 1..`through` (hashes, links, postings), `page` records at a time, calling
    `between_pages(last record verified, seconds the page took)` after each (the venue paces
    itself there); the first break, or None. `check`: a further test of each verified page (a
    problem it names is a break at the page's first record)."""
    previous, expected = GENESIS_HASH, 1
    while expected <= through:
        started = time.monotonic()
        records = store.read(expected, min(page, through - expected + 1))
        if not records:
            return ChainBreak(expected, f"the log ends at {expected - 1}, before {through}")
        broken = verify_chain(records, previous_hash=previous, first_sequence=expected)
        if broken is not None:
            return broken
        problem = None if check is None else check(records)
        if problem is not None:
            return ChainBreak(records[0].sequence, problem)
        previous, expected = records[-1].record_hash, records[-1].sequence + 1
        between_pages(records[-1].sequence, time.monotonic() - started)
    return None


def _self_check(record: LogRecord) -> ChainBreak | None:
    """The record's own hash from its bytes and its stored previous hash (not the link)."""
    return verify_chain([record], previous_hash=record.previous_hash, first_sequence=record.sequence)


def _verify_and_cut(
    store: EventStore,
    previous: str,
    expected: int,
    last: int,
    settings: VenueSettings,
    problems: list[str],
    keys_into: Callable[[list[str]], None],
    *,
    fold_into: VenueState | None = None,
) -> tuple[int, int]:
    """Verify the chain from `expected` (after `previous`) to its end; at a break (or a counter
    that disagrees with the records) refuse (CorruptLogError) or, when the settings say so, cut
    the log back to the verified prefix and say so. The keys read go to `keys_into`; with
    `fold_into` (the state after record `expected` - 1) each verified record up to the counter's
    `last` is folded into it as verified. (The verified end, records folded.)"""
    broken: ChainBreak | None = None
    folded = 0

    fold: Callable[[LogRecord, dict[str, Any]], None] | None = None
    if fold_into is not None:
        state: VenueState = fold_into

        def fold(record: LogRecord, payload: dict[str, Any]) -> None:
            nonlocal folded
            if record.sequence <= last:  # beyond it: not committed with the counter, cut below
                _apply(state, record, payload)
                folded += 1

    while True:
        page = store.read(expected, READ_PAGE)
        broken = verify_chain(page, previous_hash=previous, first_sequence=expected, each_verified=fold)
        keys_into([r.idempotency_key for r in page if r.idempotency_key is not None])
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
    return verified_end, folded


def _newest_usable_snapshot(
    store: EventStore, within: int, problems: list[str], *, self_check: bool
) -> _Start | None:
    """The newest snapshot at or before `within` that verifies, whose record is in the log with
    its hash, and whose state reads (None: fold from the first record); each one passed over
    is said in `problems`. `self_check`: the record must also recompute to that hash (its chain
    before it is not verified at start-up, so a flipped byte there is caught here instead)."""
    for rank, snap in enumerate(store.snapshots()):
        if snap.sequence > within:
            problems.append(
                f"snapshot at {snap.sequence} lies beyond the log verified or counted ({within}): not used"
            )
            continue
        if not snap.verifies():
            problems.append(f"snapshot at {snap.sequence} fails its checksum: not used")
            continue
        at = store.read(snap.sequence, 1)
        if not at or at[0].record_hash != snap.record_hash or (self_check and _self_check(at[0]) is not None):
            problems.append(f"snapshot at {snap.sequence} does not match the log's record: not used")
            continue
        try:
            document = snap.decoded()
            return _Start(snap, VenueState.from_dict(document["state"]), rank, document.get("key_filter"))
        except (KeyError, TypeError, ValueError) as error:
            problems.append(f"snapshot at {snap.sequence} cannot be read ({error}): not used")
    return None


def _fold(store: EventStore, state: VenueState, verified_end: int) -> int:
    """Apply the records after the state's sequence through `verified_end`; how many."""
    replayed = 0
    next_sequence = state.sequence + 1
    while next_sequence <= verified_end:
        page = store.read(next_sequence, min(READ_PAGE, verified_end - next_sequence + 1))
        for record in page:
            _apply(state, record, record.decoded())
        replayed += len(page)
        next_sequence += len(page)
    return replayed


def _apply(state: VenueState, record: LogRecord, payload: dict[str, Any]) -> None:
    state.apply_effects(
        payload["effects"], sequence=record.sequence, record_hash=record.record_hash, as_of_ns=record.as_of_ns
    )
