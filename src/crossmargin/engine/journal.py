"""The venue's event log: records, their hash chain, snapshots. Pure (no I/O): stores persist
these values (`engine.ports.EventStore`), the venue folds them.

A `LogRecord` is one accepted command (or one event the risk cycle derived from it, such as a
liquidation) with everything it did (`payload`: the command body and its effects: postings,
position changes, status transitions, audit records). State is a fold of the effects, so replay
needs no margin maths and gives the same state bit for bit.

Sequence numbers are gap-free, from 1. Each record's hash covers the previous record's hash and
the record's canonical bytes:

    hash_n = SHA-256( hash_{n-1} ‖ canonical(sequence, idempotency_key, kind, as_of_ns,
                                             body_sha256[, actor]) ‖ payload ),   hash_0 = GENESIS_HASH

so a flipped byte, a swapped pair or a missing record breaks the chain from there on (the scheme
of Certificate Transparency's and git's hash chains; Crosby & Wallach, "Efficient Data
Structures for Tamper-Evident Logging", USENIX Security 2009). A snapshot carries the sequence and
chain hash it was taken at and the SHA-256 of its own bytes.

`actor` is who submitted the command (the service's API key id; None for a record the venue
derived, or one written before actors were recorded). It is inside the hash only when present,
so records written before it existed hash and verify exactly as they did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

GENESIS_HASH = "0" * 64


def command_payload(body_json: bytes, effects: dict[str, Any]) -> bytes:
    """canonical_json({"command": body, "effects": effects}) from the body's canonical bytes
    (sorted keys: "command" < "effects"; tests hold the two equal)."""
    return b'{"command":' + body_json + b',"effects":' + canonical_json(effects) + b"}"


# One encoder for every call (`json.dumps` with these options builds a new one each time, a third
# of its cost on a command's few fields); `encode` keeps no state between calls, so threads share it.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reused_c_encoder() -> Callable[[Any, int], Sequence[str]] | None:
    """CPython's C encoder for `_CANONICAL`'s options, built once. `JSONEncoder.encode` builds it
    again on every call (`iterencode`), over half the cost of encoding a command body (2.3 -> 1.0
    us). Without circular-reference markers: what is encoded here is parsed JSON and plain effects
    lists, never cyclic. None where this private constructor is absent or takes other arguments
    (another Python): `_CANONICAL.encode` then, the same bytes (tests hold both to json.dumps)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encoder: Callable[[Any, int], Sequence[str]] = make(
            None, _CANONICAL.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
        )
        if "".join(encoder({"b": [1, "x"], "a": None}, 0)) != '{"a":null,"b":[1,"x"]}':
            return None
    except TypeError:
        return None
    return encoder


_C_ENCODER = _reused_c_encoder()


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, no NaN: the bytes every hash is taken over (floats by repr,
    which round-trips float64 exactly); exactly `json.dumps(value, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()`."""
    if _C_ENCODER is not None:
        return "".join(_C_ENCODER(value, 0)).encode()
    return _CANONICAL.encode(value).encode()


def canonical_json_pieces(value: Any, items_per_piece: int) -> Iterator[bytes]:
    """`canonical_json(value)` in pieces whose concatenation is exactly it: a dict with str keys
    key by key (sorted, as json's sort_keys), a list of more than `items_per_piece` items that
    many at a time, anything else whole. For a caller that lets other threads run between pieces:
    one C encoder call over a large state never lets go of the GIL (a snapshot of 20,000 traders
    held it 20 ms, `engine.venue.snapshot_writer`)."""
    if isinstance(value, dict) and value and all(type(key) is str for key in value):
        for n, key in enumerate(sorted(value)):
            yield (b"," if n else b"{") + canonical_json(key) + b":"
            yield from canonical_json_pieces(value[key], items_per_piece)
        yield b"}"
    elif isinstance(value, list) and len(value) > items_per_piece:
        for start in range(0, len(value), items_per_piece):
            part = canonical_json(value[start : start + items_per_piece])
            yield (b"," if start else b"[") + part[1:-1]
        yield b"]"
    else:
        yield canonical_json(value)


# PostingRow and LogRecord are named tuples, not frozen dataclasses: as immutable, and built in a
# third of the time (a frozen dataclass sets each field through object.__setattr__; ~2.5 of the
# writer's ~20 us per deposit went to building these two, issue 16). Build them by keyword (the
# deposit lane builds its own positionally, on its hot path, held equal by its tests).
class PostingRow(NamedTuple):
    """One balanced movement of `amount_units` (> 0, integer minor units) of `asset` from
    `debit_account` to `credit_account`; `ordinal` orders the postings of one record (from 0;
    stored as `idx`)."""

    sequence: int
    ordinal: int
    debit_account: str
    credit_account: str
    asset: str
    amount_units: int
    kind: str


class LogRecord(NamedTuple):
    """One log entry. `idempotency_key` is the client's key for a command, None for an event the
    venue derived (a liquidation); `payload` is canonical JSON (`{"command": ..., "effects": ...}`);
    `postings` repeat the payload's postings as rows (a store keeps them queryable, in the same
    transaction); `actor`: who submitted the command (module docstring)."""

    sequence: int
    idempotency_key: str | None
    kind: str
    as_of_ns: int
    body_sha256: str
    payload: bytes
    previous_hash: str
    record_hash: str
    postings: tuple[PostingRow, ...] = ()
    actor: str | None = None

    def decoded(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.payload)
        return data


# A named tuple built by tuple.__new__ directly, its fields in order: the class's generated
# __new__ is a Python-level frame around the same call (0.31 -> 0.10 us), for the few built once
# per command on the writer's path (the deposit lane's record and posting, every Ack).
new_tuple = tuple.__new__


# A str as a JSON string without ASCII escaping, quotes included: the function the C encoder of
# `canonical_json` uses, for bytes formatted directly (record heads, the deposit lane).
json_string: Callable[[str], str] = json.encoder.encode_basestring


def record_head(
    *,
    sequence: int,
    idempotency_key: str | None,
    kind: str,
    as_of_ns: int,
    body_sha256: str,
    actor: str | None = None,
) -> bytes:
    """canonical_json of a record's header fields (sorted keys; `actor` only when present, so
    records written before it existed hash unchanged), formatted directly: the writer hashes one
    per event and the dict and encoder cost twice this (tests hold it equal to canonical_json)."""
    key = "null" if idempotency_key is None else json_string(idempotency_key)
    by = "" if actor is None else f'"actor":{json_string(actor)},'
    return (
        f'{{{by}"as_of_ns":{as_of_ns:d},"body_sha256":{json_string(body_sha256)},"idempotency_key":{key},'
        f'"kind":{json_string(kind)},"sequence":{sequence:d}}}'
    ).encode()


def record_hash(
    *,
    previous_hash: str,
    sequence: int,
    idempotency_key: str | None,
    kind: str,
    as_of_ns: int,
    body_sha256: str,
    payload: bytes,
    actor: str | None = None,
) -> str:
    """The chain hash of one record (module docstring)."""
    head = record_head(
        sequence=sequence,
        idempotency_key=idempotency_key,
        kind=kind,
        as_of_ns=as_of_ns,
        body_sha256=body_sha256,
        actor=actor,
    )
    return chain_hash(previous_hash, head, payload)


def chain_hash(previous_hash: str, head: bytes, payload: bytes) -> str:
    """SHA-256(previous ‖ head ‖ payload), newline-separated, as hex: `record_hash` from a head
    already formatted (`record_head`). One buffer, one call: four update() calls cost more than
    the copy (a record is ~0.3 KB)."""
    return hashlib.sha256(b"\n".join((previous_hash.encode(), head, payload))).hexdigest()


def make_record(
    *,
    previous_hash: str,
    sequence: int,
    idempotency_key: str | None,
    kind: str,
    as_of_ns: int,
    body_sha256: str,
    payload: dict[str, Any],
    raw: bytes | None = None,
    actor: str | None = None,
) -> LogRecord:
    """A chained record from its parts; the postings rows are taken from payload.effects.postings
    ([debit, credit, asset, units, kind] lists). `raw`, when given, is `canonical_json(payload)`
    already assembled by the caller (the hot path encodes a command's body once)."""
    raw = canonical_json(payload) if raw is None else raw
    postings = tuple(
        PostingRow(
            sequence=sequence,
            ordinal=n,
            debit_account=p[0],
            credit_account=p[1],
            asset=p[2],
            amount_units=int(p[3]),
            kind=p[4],
        )
        for n, p in enumerate(payload.get("effects", {}).get("postings", ()))
    )
    return LogRecord(
        sequence=sequence,
        idempotency_key=idempotency_key,
        kind=kind,
        as_of_ns=as_of_ns,
        body_sha256=body_sha256,
        payload=raw,
        previous_hash=previous_hash,
        record_hash=record_hash(
            previous_hash=previous_hash,
            sequence=sequence,
            idempotency_key=idempotency_key,
            kind=kind,
            as_of_ns=as_of_ns,
            body_sha256=body_sha256,
            payload=raw,
            actor=actor,
        ),
        postings=postings,
        actor=actor,
    )


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where verification stopped: the first record that does not belong (`sequence`) and why."""

    sequence: int
    reason: str


def verify_chain(
    records: Sequence[LogRecord],
    *,
    previous_hash: str,
    first_sequence: int,
    each_verified: Callable[[LogRecord, dict[str, Any]], None] | None = None,
) -> ChainBreak | None:
    """Check records continue the chain at `first_sequence` after `previous_hash`: consecutive
    sequence numbers, each record's stored previous hash, its own hash recomputed from its bytes,
    and its postings equal to its payload's. None when every record verifies. `each_verified`:
    called with each record verified and its decoded payload, in order (a caller that folds them
    decodes each once, and holds none)."""
    expected_sequence = first_sequence
    head = previous_hash
    for record in records:
        if record.sequence != expected_sequence:
            return ChainBreak(
                expected_sequence, f"record {record.sequence} found where {expected_sequence} belongs"
            )
        if record.previous_hash != head:
            return ChainBreak(record.sequence, "previous hash does not match the chain")
        recomputed = record_hash(
            previous_hash=head,
            sequence=record.sequence,
            idempotency_key=record.idempotency_key,
            kind=record.kind,
            as_of_ns=record.as_of_ns,
            body_sha256=record.body_sha256,
            payload=record.payload,
            actor=record.actor,
        )
        if recomputed != record.record_hash:
            return ChainBreak(record.sequence, "record hash does not match its bytes")
        try:
            payload = record.decoded()
        except ValueError:
            return ChainBreak(record.sequence, "payload is not JSON")
        problem = _postings_problem(record, payload)
        if problem:
            return ChainBreak(record.sequence, problem)
        if each_verified is not None:
            each_verified(record, payload)
        head = record.record_hash
        expected_sequence += 1
    return None


def _postings_problem(record: LogRecord, payload: Any) -> str | None:
    try:
        listed = payload.get("effects", {}).get("postings", [])
    except AttributeError:
        return "payload is not a JSON object"
    if len(listed) != len(record.postings):
        return "posting rows do not match the payload"
    for n, (row, p) in enumerate(zip(record.postings, listed, strict=True)):
        if (row.ordinal, row.debit_account, row.credit_account, row.asset, row.amount_units, row.kind) != (
            n,
            p[0],
            p[1],
            p[2],
            int(p[3]),
            p[4],
        ):
            return f"posting row {n} does not match the payload"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The folded state after record `sequence` (whose chain hash is `record_hash`), as canonical
    JSON `payload` with its SHA-256."""

    sequence: int
    record_hash: str
    payload: bytes
    payload_sha256: str

    @staticmethod
    def document(
        sequence: int, record_hash: str, state: dict[str, Any], key_filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What a snapshot's payload encodes (canonical JSON): the state and, when given, the
        venue's filter of the log's idempotency keys (`KeyFilterImage.to_dict`)."""
        document = {"sequence": sequence, "record_hash": record_hash, "state": state}
        if key_filter is not None:
            document["key_filter"] = key_filter
        return document

    @classmethod
    def of_payload(cls, *, sequence: int, record_hash: str, payload: bytes) -> Snapshot:
        """A snapshot of `payload`, the canonical JSON of `Snapshot.document(...)` (encoded in
        pieces by the venue's snapshot thread, `canonical_json_pieces`)."""
        return cls(
            sequence=sequence,
            record_hash=record_hash,
            payload=payload,
            payload_sha256=hashlib.sha256(payload).hexdigest(),
        )

    def verifies(self) -> bool:
        """Its bytes hash to its digest and name the sequence and chain hash it is stored under."""
        if hashlib.sha256(self.payload).hexdigest() != self.payload_sha256:
            return False
        try:
            data = json.loads(self.payload)
        except ValueError:
            return False
        return bool(data.get("sequence") == self.sequence and data.get("record_hash") == self.record_hash)

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = self.decoded()["state"]
        return data

    def decoded(self) -> dict[str, Any]:
        """The whole document (`document`)."""
        data: dict[str, Any] = json.loads(self.payload)
        return data
