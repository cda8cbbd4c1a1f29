"""The strict document reader (adapters/files/documents.py) and the strict schema: what the file
says or an error naming the line or field; what YAML and JSON readers accept leniently is refused
unless the book format documents it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossmargin.adapters.files import load_book
from crossmargin.adapters.files.documents import MAX_NESTING_DEPTH, read_document
from crossmargin.adapters.files.schema import EARLIEST_TIME, LATEST_TIME, MAX_IMPLIED_VOL
from crossmargin.core.pricing import IMPLIED_VOL_HIGH
from crossmargin.errors import BookFileError
from tests.adapters.files.bad_books import DESK, desk, write_book


def _read(tmp_path: Path, text: str, suffix: str = ".yaml") -> object:
    path = tmp_path / f"doc{suffix}"
    path.write_text(text, encoding="utf-8")
    return read_document(path)


def _refused(tmp_path: Path, text: str, suffix: str = ".yaml") -> BookFileError:
    with pytest.raises(BookFileError) as raised:
        _read(tmp_path, text, suffix)
    return raised.value


def test_yaml_duplicate_key_names_the_key_and_both_lines(tmp_path: Path) -> None:
    error = _refused(tmp_path, "a:\n  q: -10\n  b: 1\n  q: 10\n")
    assert error.field == "line 4"
    assert "duplicate key 'q' (first given on line 2)" in error.problem


def test_json_duplicate_key_names_the_key_and_both_lines(tmp_path: Path) -> None:
    error = _refused(tmp_path, '{"a": {"q": -10,\n "b": {"q": 1},\n "q": 10}}', ".json")
    assert error.field == "line 3"
    assert "duplicate key 'q' (first given on line 1)" in error.problem


def test_json_without_duplicates_reads_as_json_loads(tmp_path: Path) -> None:
    text = json.dumps(desk(), default=str, indent=2)
    assert _read(tmp_path, text, ".json") == json.loads(text)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    """`<<: *defaults` then an explicit key is YAML's documented override, not a duplicate."""
    document = _read(tmp_path, "d: &d {a: 1, b: 2}\ne:\n  <<: *d\n  b: 3\n")
    assert document == {"d": {"a": 1, "b": 2}, "e": {"a": 1, "b": 3}}


@pytest.mark.parametrize("text", ["q: 010", "q: 1:30", "q: -0017", "q: 1:30.5"])
def test_ambiguous_yaml_11_numbers_are_refused(tmp_path: Path, text: str) -> None:
    error = _refused(tmp_path, text)
    assert error.field == "line 1" and "ambiguous number" in error.problem


@pytest.mark.parametrize(
    ("text", "value"), [("q: 1e6", 1e6), ("q: -2E-4", -2e-4), ("q: 0", 0), ("q: 10", 10)]
)
def test_yaml_12_numbers_read_as_numbers(tmp_path: Path, text: str, value: float) -> None:
    """`1e6` is a number to YAML 1.2 and JSON (and to editors validating with the schema)."""
    assert _read(tmp_path, text) == {"q": value}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_nesting_is_bounded(tmp_path: Path, suffix: str) -> None:
    fine = "[" * MAX_NESTING_DEPTH + "]" * MAX_NESTING_DEPTH
    assert _read(tmp_path, fine, suffix) is not None
    deep = "[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1)
    assert "nested more than" in _refused(tmp_path, deep, suffix).problem


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_byte_order_mark_is_skipped(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"doc{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}')
    assert read_document(path) == {"a": 1}


def test_non_utf8_byte_is_refused_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(BookFileError) as raised:
        read_document(path)
    assert raised.value.field == "line 2"
    assert raised.value.problem.startswith("not UTF-8: byte 0xe9 at column 7")


def test_json_integer_beyond_pythons_digit_limit_is_a_clean_error(tmp_path: Path) -> None:
    error = _refused(tmp_path, '{"q": ' + "9" * 5000 + "}", ".json")
    assert error.field == "file" and "malformed json" in error.problem


# ------------------------------------------------------------------ strict schema via load_book


def test_json_book_with_iso_string_times_loads(tmp_path: Path) -> None:
    path = tmp_path / "desk.json"
    path.write_text(json.dumps(desk(), default=lambda t: t.isoformat()), encoding="utf-8")
    assert load_book(path).market.valuation_ns == load_book(DESK).market.valuation_ns


def test_quoted_iso_time_in_yaml_loads_like_a_timestamp(tmp_path: Path) -> None:
    book = desk()
    book["valuation_time"] = "2025-12-30T17:31:15Z"  # safe_dump quotes it: a string
    assert load_book(write_book(tmp_path, book)).market.valuation_ns == load_book(DESK).market.valuation_ns


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (12345, "not int 12345"),
        (1.7e9, "not float"),
        (True, "not bool"),
        ("12345", "not an ISO 8601 date-time: '12345'"),
        ("yesterday", "not an ISO 8601 date-time"),
    ],
)
def test_a_time_is_never_a_number(tmp_path: Path, value: object, problem: str) -> None:
    book = desk()
    book["valuation_time"] = value
    with pytest.raises(BookFileError) as raised:
        load_book(write_book(tmp_path, book))
    assert raised.value.field == "valuation_time" and problem in raised.value.problem


def test_time_bounds_are_the_bitcoin_genesis_block_and_2200() -> None:
    assert datetime(2009, 1, 3, 18, 15, 5, tzinfo=UTC) == EARLIEST_TIME
    assert LATEST_TIME.year == 2200
    # Both inside int64 nanoseconds (1677-09-21 .. 2262-04-11).
    assert -(2**63) < int(EARLIEST_TIME.timestamp()) * 10**9 < int(LATEST_TIME.timestamp()) * 10**9 < 2**63


def test_implied_vol_bound_is_the_solvers_bracket() -> None:
    assert MAX_IMPLIED_VOL == IMPLIED_VOL_HIGH


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("long_premium_as_margin", 1, "model.option_margin.long_premium_as_margin"),
        ("long_premium_as_margin", "yes", "model.option_margin.long_premium_as_margin"),
        ("initial_rate", "0.15", "model.option_margin.initial_rate"),
    ],
)
def test_flags_and_rates_are_not_coerced(tmp_path: Path, key: str, value: object, field: str) -> None:
    book = desk()
    book["model"]["option_margin"][key] = value
    with pytest.raises(BookFileError) as raised:
        load_book(write_book(tmp_path, book))
    assert raised.value.field == field


def test_integer_quantities_and_prices_still_load(tmp_path: Path) -> None:
    """Strict mode takes an integer where a number is due (JSON Schema: an integer is a number)."""
    book = desk()
    book["accounts"][2]["positions"][0]["entry_price"] = 2915
    assert load_book(write_book(tmp_path, book)).book.positions.nnz == load_book(DESK).book.positions.nnz


def test_examples_round_trip_through_safe_dump(tmp_path: Path) -> None:
    """The bad-book cases write books with yaml.safe_dump: the unbroken example must load so."""
    path = write_book(tmp_path, yaml.safe_load(DESK.read_text(encoding="utf-8")))
    assert load_book(path).book.account_ids == load_book(DESK).book.account_ids


def test_funding_rate_is_bounded_naming_the_reason(tmp_path: Path) -> None:
    """1e308 overflowed the portfolio model's funding add-on (periods × rate × notional)."""
    book = desk()
    next(i for i in book["instruments"] if i["id"] == "BTC-PERPETUAL")["funding_rate_8h"] = 1e308
    with pytest.raises(BookFileError) as raised:
        load_book(write_book(tmp_path, book))
    assert raised.value.field == "instruments[BTC-PERPETUAL].funding_rate_8h"
    assert "must be at most 0.5" in raised.value.problem and "funding cap" in raised.value.problem


def test_max_leverage_below_one_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """It was reported as the derived `margin.initial_rate` (1 / 1e-300), a key the book lacks."""
    book = desk()
    perp = next(i for i in book["instruments"] if i["id"] == "BTC-USDC-PERP")
    perp["margin"]["tiers"][0]["max_leverage"] = 1e-300
    with pytest.raises(BookFileError) as raised:
        load_book(write_book(tmp_path, book))
    assert raised.value.field == "instruments[BTC-USDC-PERP].margin.tiers[0].max_leverage"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nine anchors, each ten aliases of the one before: 2.3e8 nodes once expanded (the schema
    check would walk them all; main hung). Refused from the composed node graph, at once."""
    lines = ['lol0: &a0 ["lol"]']
    lines += [f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    error = _refused(tmp_path, "\n".join(lines) + "\n")
    assert error.field == "line 1"
    assert "aliases expand the document to 234,567,910 nodes from 20 written" in error.problem
    assert "alias bomb" in error.problem


def test_a_shared_tier_schedule_through_an_alias_still_loads(tmp_path: Path) -> None:
    """The intended use of anchors: one schedule written once, used by many instruments."""
    tiers = "[{above_notional_usd: 0, initial_rate: 0.02, maintenance_rate: 0.01}]"
    items = "\n".join(f"  - {{id: i{n}, tiers: *tiers}}" for n in range(200))
    document = _read(tmp_path, f"schedule: &tiers {tiers}\ninstruments:\n{items}\n")
    assert isinstance(document, dict)
    assert len(document["instruments"]) == 200
    assert document["instruments"][199]["tiers"][0]["initial_rate"] == 0.02


_LAUGHS = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 10)}]\n" for n in range(8)
)
YAML_CASES = {
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "merge override": "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n",
    "octal": "q: 010\n",
    "sexagesimal": "q: 1:30\n",
    "exponent float": "q: [1e6, -2E-4, 0.5, .inf, 0x1A]\n",
    "deep": "[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1),
    "unclosed flow": "a: [1, 2\nb: 3\n",
    "tab indent": "a:\n\t- 1\n",
    "bad indent": "a:\n  b: 1\n c: 2\n",
    "billion laughs": _LAUGHS,
    "timestamps and text": "t: 2025-01-01T00:00:00Z\nd: 2025-01-01\ns: 'x: y'\nn: ~\nb: yes\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "control character": "a: \x07\n",
}


def _outcome(path: Path, *, libyaml: bool) -> tuple[Any, ...]:
    try:
        return ("document", read_document(path, libyaml=libyaml))
    except BookFileError as error:
        return ("refused", error.field, error.problem)


@pytest.mark.parametrize("name", sorted(YAML_CASES))
def test_libyaml_events_read_a_document_as_the_pure_python_parser(tmp_path: Path, name: str) -> None:
    """The C scanner and parser (StrictCYamlLoader) feed the same composer and checks: the same
    document, or the same refusal at the same line, in the same words (a syntax error is
    reported by the pure-Python parser, whose message quotes the lines)."""
    path = tmp_path / "book.yaml"
    path.write_text(YAML_CASES[name], encoding="utf-8")
    assert _outcome(path, libyaml=True) == _outcome(path, libyaml=False)


@pytest.mark.parametrize("path", sorted(DESK.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_libyaml_events_read_every_example_as_the_pure_python_parser(path: Path) -> None:
    document = _outcome(path, libyaml=True)
    assert document[0] == "document"
    assert document == _outcome(path, libyaml=False)
