"""The canonical bytes every record hash is taken over never change: the shared encoder writes
exactly what `json.dumps` with the canonical options writes, for any JSON value."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.engine.journal import canonical_json, record_head

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
