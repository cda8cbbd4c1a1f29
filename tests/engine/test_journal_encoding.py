"""The canonical bytes every record hash is taken over never change: the shared encoder writes
exactly what `json.dumps` with the canonical options writes, for any JSON value."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.engine.journal import canonical_json

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
