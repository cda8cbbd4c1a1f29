"""The deposit lane: the commonest command, written in a few direct steps.

A deposit to a HEALTHY trader with no margin-call deadline only raises its equity, so the ledger
has nothing to refresh (`decide._deposit` already skips the status refresh for it). What is left
per event is its record's bytes, their hash and two balance updates, and the generic path pays
~4x that in machinery: an effects dict, its canonical JSON, `make_record`'s generic postings,
`VenueState.apply_effects`' generic fold. The lane writes the same record directly:

    payload  = {"command": body, "effects": {"postings": [["@external", account, asset, units,
                "deposit"]], "records": [["deposit", account, {"amount_units": units, "asset":
                asset}]], "time_ns": as_of_ns}}        (canonical JSON, formatted here)
    hash     = SHA-256(previous ‖ head ‖ payload)      (`journal.record_hash`, unchanged)
    fold     = balances[@external, asset] -= units; balances[account, asset] += units

byte for byte what the generic path writes (tests/engine/venue/test_deposit_lane.py runs two venues,
lane on and off, over random command streams: the same log, hash for hash, and the same state
digest). Whatever the lane does not take (a system account, an unknown, unhealthy or called
account, an unknown asset, an amount that is not a positive int) returns None and goes the
generic way, which decides or refuses it exactly as before: the lane never refuses anything.
"""

from __future__ import annotations

from crossmargin.core.ledger.postings import BACKSTOP, EXTERNAL, INSURANCE
from crossmargin.core.ledger.state import AccountStatus, LedgerConfig
from crossmargin.engine.journal import LogRecord, PostingRow, chain_hash, json_string, new_tuple, record_head
from crossmargin.engine.venue.commands import Deposit
from crossmargin.engine.venue.state import VenueState

# Postings are signed 64-bit integers in the store (decide.MAX_UNITS): a larger amount is refused
# by the generic path, so the lane leaves it there.
_MAX_UNITS = 2**63 - 1
_SYSTEM_FUNDED = frozenset({INSURANCE, BACKSTOP})  # decide.FUNDABLE: their own branch there
_EXTERNAL_JSON = json_string(EXTERNAL)


def deposit_body_json(command: Deposit) -> bytes | None:
    """`canonical_json(commands.body(command))` formatted directly; None unless the fields are a
    str, an int (not a bool) and a str, the only types whose JSON this writes (the generic
    encoder then)."""
    account, asset, units = command.account, command.asset, command.amount_units
    if type(account) is not str or type(asset) is not str or type(units) is not int:
        return None
    return deposit_body(account, asset, units)


def deposit_body(account: str, asset: str, units: int) -> bytes:
    """A deposit's canonical body (keys sorted: account, amount_units, asset)."""
    who, what = json_string(account), json_string(asset)
    return f'{{"account":{who},"amount_units":{units:d},"asset":{what}}}'.encode()


def deposit_payload(body_json: bytes, account: str, asset: str, units: int, as_of_ns: int) -> bytes:
    """A lane deposit's record payload: `journal.command_payload` of its body and effects (the
    posting, the audit record, the time), formatted directly."""
    who, what = json_string(account), json_string(asset)
    effects = (
        f'{{"postings":[[{_EXTERNAL_JSON},{who},{what},{units:d},"deposit"]],'
        f'"records":[["deposit",{who},{{"amount_units":{units:d},"asset":{what}}}]],"time_ns":{as_of_ns:d}}}'
    )
    return b'{"command":' + body_json + b',"effects":' + effects.encode() + b"}"


def deposit_record(
    state: VenueState,
    config: LedgerConfig,
    command: Deposit,
    *,
    key: str,
    body_json: bytes,
    body_sha256: str,
    as_of_ns: int,
    actor: str | None,
) -> LogRecord | None:
    """The deposit's record on `state` (the next sequence after its head), not yet folded
    (`VenueState.apply_deposit` does); None when the lane does not take it (module docstring).
    `key`, `body_json` and `body_sha256`: the command's checked idempotency key, canonical body
    and its digest (`venue._pending`)."""
    account, asset, units = command.account, command.asset, command.amount_units
    if (
        type(units) is not int
        or not 0 < units <= _MAX_UNITS
        or account in _SYSTEM_FUNDED
        or state.status.get(account) != AccountStatus.HEALTHY
        or account in state.deadlines
        or asset not in config.assets.index
    ):
        return None
    sequence = state.sequence + 1
    previous = state.head_hash
    payload = deposit_payload(body_json, account, asset, units, as_of_ns)
    head = record_head(
        sequence=sequence,
        idempotency_key=key,
        kind="deposit",
        as_of_ns=as_of_ns,
        body_sha256=body_sha256,
        actor=actor,
    )
    chained = chain_hash(previous, head, payload)  # = journal.record_hash of the same fields
    # In field order (the equality tests would see a slip): PostingRow(sequence, ordinal, debit,
    # credit, asset, units, kind), LogRecord(sequence, key, kind, as_of_ns, body_sha256, payload,
    # previous_hash, record_hash, postings, actor).
    posting = new_tuple(PostingRow, (sequence, 0, EXTERNAL, account, asset, units, "deposit"))
    fields = (sequence, key, "deposit", as_of_ns, body_sha256, payload, previous, chained, (posting,), actor)
    record: LogRecord = new_tuple(LogRecord, fields)
    return record
