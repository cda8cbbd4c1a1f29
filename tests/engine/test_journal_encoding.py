"""The canonical bytes every record hash is taken over never change: the shared encoder writes
exactly what `json.dumps` with the canonical options writes, for any JSON value."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.engine.journal import canonical_json, canonical_json_pieces, chain_hash, record_head
from crossmargin.engine.venue.commands import body_digest

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(JSON)
def test_canonical_json_is_the_documented_dumps(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert canonical_json(value) == expected.encode()


@given(JSON, st.integers(min_value=1, max_value=4))
def test_canonical_json_in_pieces_is_canonical_json(value: Any, items_per_piece: int) -> None:
    """A snapshot is encoded in pieces (the GIL offered between them): their concatenation is the
    canonical bytes whatever the nesting and the piece size, and a long list comes in pieces of
    at most `items_per_piece` items."""
    pieces = list(canonical_json_pieces(value, items_per_piece))
    assert b"".join(pieces) == canonical_json(value)
    big = list(range(10 * items_per_piece + 1))
    chunked = list(canonical_json_pieces({"rows": big, "x": value}, items_per_piece))
    assert b"".join(chunked) == canonical_json({"rows": big, "x": value})
    rows = chunked[1 : chunked.index(b"]")]  # after '{"rows":', up to the list's closing bracket
    assert len(rows) == 11 and all(len(json.loads(b"[" + p[1:] + b"]")) <= items_per_piece for p in rows)


@pytest.mark.parametrize("bad", [math.nan, math.inf, {"x": [1.0, -math.inf]}])
def test_canonical_json_refuses_non_finite_numbers(bad: Any) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json(bad)


def test_the_reused_c_encoder_is_the_one_tested_here() -> None:
    """On CPython the property above runs through the encoder built once (journal._C_ENCODER);
    what it cannot encode is refused as json.dumps refuses it."""
    from crossmargin.engine import journal

    assert journal._C_ENCODER is not None
    with pytest.raises(TypeError, match="not JSON serializable"):
        canonical_json({"x": object()})
    assert canonical_json({"t": (1, "é")}) == '{"t":[1,"é"]}'.encode()


@given(
    sequence=st.integers(min_value=1, max_value=2**63 - 1),
    key=st.none() | st.text(max_size=130),
    kind=st.text(max_size=40),
    as_of_ns=st.integers(min_value=0, max_value=2**63 - 1),
    body_sha256=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    actor=st.none() | st.text(max_size=40),
)
def test_the_formatted_record_head_is_the_canonical_encoding_of_its_fields(
    sequence: int, key: str | None, kind: str, as_of_ns: int, body_sha256: str, actor: str | None
) -> None:
    """The writer formats each record's header by hand; the chain hash is over these bytes, so
    they must be canonical_json's for any key (quotes, backslashes, control and non-ASCII
    characters), kind and actor, with the actor field absent when there is none."""
    fields: dict[str, Any] = {
        "sequence": sequence,
        "idempotency_key": key,
        "kind": kind,
        "as_of_ns": as_of_ns,
        "body_sha256": body_sha256,
    }
    if actor is not None:
        fields["actor"] = actor
    head = record_head(
        sequence=sequence,
        idempotency_key=key,
        kind=kind,
        as_of_ns=as_of_ns,
        body_sha256=body_sha256,
        actor=actor,
    )
    assert head == canonical_json(fields)


@given(st.text(min_size=1, max_size=20), st.binary(max_size=300))
def test_body_digest_is_sha256_of_kind_newline_body(kind: str, body_json: bytes) -> None:
    """The idempotency digest every log record keeps (`body_sha256`): SHA-256 over the kind's
    UTF-8 bytes, a newline and the canonical body, however the bytes are assembled; a retried
    command is matched against logs written before by this value."""
    expected = hashlib.sha256(kind.encode() + b"\n" + body_json).hexdigest()
    assert body_digest(kind, body_json) == expected


def test_body_digest_of_a_deposit_is_the_logged_value() -> None:
    """A fixed deposit body's digest, as logs already hold it (a change of the scheme would make
    every old key a conflict)."""
    body = b'{"account":"basis-trader","amount_units":5,"asset":"USDC"}'
    assert body_digest("deposit", body) == "a7ad7914d7c90976af1b6e632470b8493ab2d87da4e4283b9a6f0f28ca53b909"


@given(st.text(max_size=64), st.binary(max_size=64), st.binary(max_size=400))
def test_chain_hash_is_the_record_hash_of_its_head(previous: str, head: bytes, payload: bytes) -> None:
    """`chain_hash` over a formatted head is `record_hash`'s newline-joined SHA-256."""
    expected = hashlib.sha256(previous.encode() + b"\n" + head + b"\n" + payload).hexdigest()
    assert chain_hash(previous, head, payload) == expected
