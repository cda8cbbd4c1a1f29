"""Issue 14, the book file edge: every bad input refused through the CLI the same way.

Each test breaks the example book in one way and runs `crossmargin margin` on it: exit code 2,
`error: FILE: FIELD-or-LINE: problem` on stderr, no traceback, nothing on stdout and no file
written. The last test fuzzes the examples with hypothesis: every outcome is a result (exit 0) or
such a clean error (exit 2).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from crossmargin.cli.main import app
from tests.adapters.files.bad_books import DESK, DESK_CSV, EXAMPLES

runner = CliRunner()

DESK_TEXT = DESK.read_text(encoding="utf-8")
FUZZ_EXAMPLES = 60  # CI-friendly: about 0.3 s per example that computes a margin


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def _run(directory: Path, book: Path, command: tuple[str, ...] = ("margin",)) -> tuple[Result, str]:
    """Run the CLI on `book`; check that nothing was written to `directory`; return the result and
    its stderr with terminal wrapping undone."""
    before = _files(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy overflow warnings would leak
        result = runner.invoke(app, [*command, str(book)])
    assert _files(directory) == before, "a refused book wrote a file"
    return result, " ".join(result.stderr.split())


def assert_refused(directory: Path, book: Path, *, named: Path, field: str, problem: str) -> str:
    """Exit 2 with `error: NAMED: FIELD: ...problem...`, no traceback, no report, no file written."""
    result, message = _run(directory, book)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not a crash
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert message.startswith(f"error: {named}: {field}: "), message
    assert problem in message, message
    return message


def _desk_with(directory: Path, old: str, new: str, *, name: str = "book.yaml") -> Path:
    assert DESK_TEXT.count(old) == 1, old
    path = directory / name
    path.write_text(DESK_TEXT.replace(old, new), encoding="utf-8")
    return path


ETH_PERP_LINE = "{instrument: ETH-USDC-PERP, quantity: 150, entry_price: 2915.40}"


# ------------------------------------------------------------------ 1. duplicate keys


def test_duplicate_yaml_key_in_a_position_is_refused_not_last_wins(tmp_path: Path) -> None:
    """`quantity: -10` then `quantity: 10` would flip the position's sign."""
    book = _desk_with(
        tmp_path,
        ETH_PERP_LINE,
        "{instrument: ETH-USDC-PERP, quantity: -150, quantity: 150, entry_price: 2915.40}",
    )
    line = DESK_TEXT[: DESK_TEXT.index(ETH_PERP_LINE)].count("\n") + 1
    assert_refused(tmp_path, book, named=book, field=f"line {line}", problem="duplicate key 'quantity'")


def test_second_accounts_section_is_refused_not_replacing_every_account(tmp_path: Path) -> None:
    book = tmp_path / "book.yaml"
    book.write_text(DESK_TEXT + "\naccounts:\n  - id: someone-else\n", encoding="utf-8")
    first = DESK_TEXT.splitlines().index("accounts:") + 1
    second = len(DESK_TEXT.splitlines()) + 2
    assert_refused(
        tmp_path,
        book,
        named=book,
        field=f"line {second}",
        problem=f"duplicate key 'accounts' (first given on line {first})",
    )


def test_second_index_price_is_refused_not_replacing_the_first(tmp_path: Path) -> None:
    book = _desk_with(tmp_path, "    SOL: 125.00 ", "    BTC: 1.0\n    SOL: 125.00 ")
    line = (
        DESK_TEXT.splitlines().index(next(x for x in DESK_TEXT.splitlines() if x.startswith("    SOL: 125")))
        + 1
    )
    assert_refused(tmp_path, book, named=book, field=f"line {line}", problem="duplicate key 'BTC'")


def test_duplicate_json_key_is_refused_naming_the_key_and_line(tmp_path: Path) -> None:
    text = json.dumps(yaml.safe_load(DESK_TEXT), default=str, indent=1)
    old = '"quantity": 150,'
    assert text.count(old) == 1
    book = tmp_path / "book.json"
    book.write_text(text.replace(old, '"quantity": -150,\n' + old), encoding="utf-8")
    line = text[: text.index(old)].count("\n") + 2
    assert_refused(
        tmp_path,
        book,
        named=book,
        field=f"line {line}",
        problem=f"duplicate key 'quantity' (first given on line {line - 1})",
    )


# ------------------------------------------------------------------ 2. no type coercion


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        (
            "quantity: 150,",
            "quantity: true,",
            "accounts[directional].positions[0].quantity",
            "valid number (got True)",
        ),
        (
            "quantity: 150,",
            "quantity: '-10',",
            "accounts[directional].positions[0].quantity",
            "valid number (got '-10')",
        ),
        (
            "valuation_time: 2025-12-30T17:31:15Z",
            "valuation_time: 12345",
            "valuation_time",
            "ISO 8601 date-time string",
        ),
        (
            "valuation_time: 2025-12-30T17:31:15Z",
            "valuation_time: 2025-12-30",
            "valuation_time",
            "a date without a time",
        ),
        (
            "    initial_rate: 0.15\n",
            "    initial_rate: '0.15'\n",
            "model.option_margin.initial_rate",
            "valid number",
        ),
        ("    SOL: 125.00 ", "    SOL: '125' ", "market.index_prices.SOL", "valid number (got '125')"),
        ("quantity: 150,", "quantity: 010,", "line", "ambiguous number '010'"),
    ],
    ids=["bool-quantity", "text-quantity", "int-time", "date-only-time", "text-rate", "text-price", "octal"],
)
def test_coerced_types_are_refused(tmp_path: Path, old: str, new: str, field: str, problem: str) -> None:
    book = _desk_with(tmp_path, old, new)
    result, message = _run(tmp_path, book)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert message.startswith(f"error: {book}: {field}"), message
    assert problem in message, message


def test_type_errors_agree_with_the_json_schema(tmp_path: Path) -> None:
    """What `crossmargin schema` rejects the loader rejects: a JSON Schema "number" is neither a
    boolean nor a string, and a date-time is a string; the example satisfies both."""
    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    quantity = schema["$defs"]["PositionModel"]["properties"]["quantity"]
    assert quantity["type"] == "number"
    assert schema["properties"]["valuation_time"]["type"] == "string"
    assert schema["properties"]["valuation_time"]["format"] == "date-time"
    document = json.loads(json.dumps(yaml.safe_load(DESK_TEXT), default=lambda t: t.isoformat()))
    try:
        import jsonschema
    except ImportError:  # not a dependency; checked where it is installed
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(document, schema)
    for field, value in (("quantity", True), ("quantity", "-10"), ("valuation_time", 12345)):
        broken = json.loads(json.dumps(document))
        target = broken if field == "valuation_time" else broken["accounts"][2]["positions"][0]
        target[field] = value
        if jsonschema is not None:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(broken, schema)
        book = tmp_path / "book.json"
        book.write_text(json.dumps(broken), encoding="utf-8")
        result, message = _run(tmp_path, book)
        assert result.exit_code == 2, result.output
        assert message.startswith(
            f"error: {book}: {'accounts[directional].positions[0].' if field == 'quantity' else ''}{field}: "
        )
        book.unlink()


# ------------------------------------------------------------------ 3. errors, not tracebacks


def test_non_utf8_book_is_refused_naming_the_line(tmp_path: Path) -> None:
    book = tmp_path / "book.yaml"
    book.write_bytes(DESK_TEXT.encode() + "# caf\u00e9\n".encode("latin-1"))
    line = DESK_TEXT.count("\n") + 1
    assert_refused(tmp_path, book, named=book, field=f"line {line}", problem="not UTF-8: byte 0xe9")


def test_non_utf8_csv_is_refused_naming_the_line(tmp_path: Path) -> None:
    book = _csv_desk(tmp_path)
    positions = tmp_path / "desk_positions.csv"
    positions.write_bytes(positions.read_bytes() + "h\u00e9dger,BTC-PERPETUAL,1,\n".encode("latin-1"))
    assert_refused(tmp_path, book, named=positions, field="line 7", problem="not UTF-8")


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    book = tmp_path / "book.yaml"
    book.write_bytes(b"\xef\xbb\xbf" + DESK_TEXT.encode())
    result, _ = _run(tmp_path, book)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deeply_nested_book_is_refused_not_a_recursion_error(tmp_path: Path, suffix: str) -> None:
    book = tmp_path / f"book{suffix}"
    book.write_text('{"source": ' + "[" * 900 + "]" * 900 + "}", encoding="utf-8")
    assert_refused(tmp_path, book, named=book, field="line 1", problem="nested more than 64 levels")


def test_far_future_expiry_is_refused_not_an_overflow(tmp_path: Path) -> None:
    book = _desk_with(tmp_path, "expiry: 2026-03-27T08:00:00Z", "expiry: 9999-03-27T08:00:00Z")
    assert_refused(
        tmp_path, book, named=book, field="instruments[BTC-27MAR26].expiry", problem="int64 nanoseconds"
    )


def test_huge_index_price_is_refused_naming_the_book_field(tmp_path: Path) -> None:
    """1e308 overflowed inside the engine (numpy warnings, then `valuation.unit_value_usd`)."""
    book = _desk_with(tmp_path, "BTC: 88528.93 ", "BTC: 1.0e+308 ")
    message = assert_refused(
        tmp_path,
        book,
        named=book,
        field="market.index_prices.BTC",
        problem="must be at most 1e+12 (got 1e+308)",
    )
    assert "finite in float64" in message and "unit_value_usd" not in message


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("contract_size", "1.0e+300", "must be at most 1e+12"),
        ("strike", "1.0e-300", "must be at least 1e-12"),
    ],
)
def test_extreme_instrument_numbers_are_refused(tmp_path: Path, field: str, value: str, problem: str) -> None:
    line = (
        "  - {id: BTC-30JAN26-80000-P, kind: option, underlying: BTC, settlement: inverse, contract_size: 1,"
    )
    option = "     option_type: put, strike: 80000, expiry: 2026-01-30T08:00:00Z,"
    new = line.replace("contract_size: 1,", f"contract_size: {value},") if field == "contract_size" else line
    book = _desk_with(
        tmp_path,
        line + "\n" + option,
        new + "\n" + (option if field != "strike" else option.replace("80000", value)),
    )
    assert_refused(
        tmp_path, book, named=book, field=f"instruments[BTC-30JAN26-80000-P].{field}", problem=problem
    )


def test_huge_quantity_is_refused(tmp_path: Path) -> None:
    book = _desk_with(
        tmp_path, ETH_PERP_LINE, ETH_PERP_LINE.replace("quantity: 150", "quantity: 100000000000000000000")
    )
    assert_refused(
        tmp_path,
        book,
        named=book,
        field="accounts[directional].positions[0].quantity",
        problem="finite in float64",
    )


def test_tiny_delta_one_entry_price_is_refused(tmp_path: Path) -> None:
    """Inverse PnL divides by the entry price: 1e-300 would overflow."""
    old = "{instrument: BTC-27MAR26, quantity: -45000, entry_price: 90100.00}"
    book = _desk_with(tmp_path, old, old.replace("90100.00", "1.0e-300"))
    assert_refused(
        tmp_path,
        book,
        named=book,
        field="accounts[basis-trader].positions[2].entry_price",
        problem="must be > 0",
    )


def _csv_desk(directory: Path) -> Path:
    for name in ("desk_csv.yaml", "desk_positions.csv", "desk_balances.csv"):
        shutil.copy(EXAMPLES / name, directory / name)
    return directory / "desk_csv.yaml"


@pytest.mark.parametrize(
    ("table", "field", "problem"),
    [
        ("account,instrument,quantity\nhedger,BTC-PERPETUAL\n", "file", "Expected 3 columns, got 2"),
        (
            "account,instrument,quantity,entry_price\nhedger,BTC-PERPETUAL,1,ninety\n",
            "entry_price",
            "not a number: 'ninety'",
        ),
        ("account,instrument,quantity\nhedger,BTC-PERPETUAL,true\n", "quantity", "not a number: True"),
        ("account,instrument,quantity,quantity\nhedger,BTC-PERPETUAL,1,2\n", "quantity", "more than once"),
        (
            "account,instrument,quantity\nhedger,BTC-PERPETUAL,1e308\n",
            "quantity",
            "must lie in [-1e+15, 1e+15]",
        ),
        ("account,instrument,quantity,entry_price\nhedger,BTC-PERPETUAL,1,1e-300\n", "entry_price", "> 0"),
        ("", "file", "Empty CSV file"),
    ],
    ids=["ragged", "text-price", "bool-quantity", "repeated-column", "huge-quantity", "tiny-entry", "empty"],
)
def test_bad_positions_csv_is_refused_naming_the_column(
    tmp_path: Path, table: str, field: str, problem: str
) -> None:
    book = _csv_desk(tmp_path)
    positions = tmp_path / "desk_positions.csv"
    positions.write_text(table, encoding="utf-8")
    assert_refused(tmp_path, book, named=positions, field=field, problem=problem)


@pytest.mark.parametrize("name", ["desk_positions.csv", "desk_balances.csv"])
def test_header_only_csv_adds_nothing(tmp_path: Path, name: str) -> None:
    book = _csv_desk(tmp_path)
    table = tmp_path / name
    table.write_text(table.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    result, _ = _run(tmp_path, book)
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ 4. refused everywhere the same way

SOL_PERP = "  - id: SOL-USDC-PERP\n    kind: perpetual\n    underlying: SOL\n"


@pytest.mark.parametrize("command", ["margin", "simulate"])
def test_inverse_instrument_needs_its_coin_among_the_assets(tmp_path: Path, command: str) -> None:
    """margin used to price it and simulate to refuse it: now both refuse it at load."""
    book = _desk_with(tmp_path, SOL_PERP, SOL_PERP + "    settlement: inverse\n")
    prices = tmp_path / "path.csv"
    prices.write_text("time,BTC\n2025-12-30T18:00:00Z,88000\n", encoding="utf-8")
    args = ("simulate", "--prices", str(prices)) if command == "simulate" else ("margin",)
    result, message = _run(tmp_path, book, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert message.startswith(f"error: {book}: instruments[SOL-USDC-PERP].settlement: "), message
    assert "underlying coin 'SOL', which is not among the assets" in message


def test_implied_vol_above_the_solver_bracket_is_refused(tmp_path: Path) -> None:
    book = _desk_with(tmp_path, "implied_vol: 0.6235", "implied_vol: 1.0e+6")
    message = assert_refused(
        tmp_path,
        book,
        named=book,
        field="instruments[ETH-30JAN26-2600-P].implied_vol",
        problem="must be at most 20 (got 1000000.0)",
    )
    assert "implied-vol solver" in message


def test_spot_instrument_with_an_expiry_is_refused(tmp_path: Path) -> None:
    spot = "- {id: BTC-USDC, kind: spot, underlying: BTC}"
    book = _desk_with(tmp_path, spot, spot[:-1] + ", expiry: 2026-03-27T08:00:00Z}")
    assert_refused(
        tmp_path,
        book,
        named=book,
        field="instruments[BTC-USDC].expiry",
        problem="a spot instrument has no expiry",
    )


def test_perpetual_with_an_expiry_is_refused(tmp_path: Path) -> None:
    book = _desk_with(tmp_path, SOL_PERP, SOL_PERP + "    expiry: 2026-03-27T08:00:00Z\n")
    assert_refused(
        tmp_path,
        book,
        named=book,
        field="instruments[SOL-USDC-PERP].expiry",
        problem="a perpetual instrument has no expiry",
    )


def test_valuation_time_before_bitcoin_is_refused(tmp_path: Path) -> None:
    book = _desk_with(
        tmp_path, "valuation_time: 2025-12-30T17:31:15Z", "valuation_time: 1900-01-01T00:00:00Z"
    )
    assert_refused(tmp_path, book, named=book, field="valuation_time", problem="Bitcoin genesis block")


# ------------------------------------------------------------------ 5. fuzz

EXTREMES: tuple[Any, ...] = (
    0,
    0.0,
    -0.0,
    -1,
    1e308,
    -1e308,
    math.nan,
    math.inf,
    -math.inf,
    10**30,
    2**63,
    -(2**64),
    1e-300,
    True,
    False,
    None,
    "",
    "text",
    "-10",
    "2025-12-30T17:31:15Z",
    [],
    {},
    [1, 2],
    {"x": 1},
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and list indices) into a parsed document."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for n, child in enumerate(node):
            out += _paths(child, (*prefix, n))
    return out


def _mutate_document(document: Any, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    paths = _paths(document)
    path = draw(st.sampled_from(paths))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    action = draw(st.sampled_from(("extreme", "delete", "to-text", "to-list", "scale")))
    if action == "delete":
        del parent[key]
    elif action == "extreme":
        parent[key] = draw(st.sampled_from(EXTREMES))
    elif action == "to-text":
        parent[key] = str(parent[key])
    elif action == "to-list":
        parent[key] = [parent[key]]
    elif isinstance(parent[key], int | float) and not isinstance(parent[key], bool):
        parent[key] = parent[key] * draw(st.sampled_from((-1.0, 1e-9, 1e9, 1e300)))


def _mutate_text(data: bytes, draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    lines = data.split(b"\n")
    action = draw(st.sampled_from(("duplicate-line", "latin-1", "bom", "drop-line", "none")))
    n = draw(st.integers(0, max(len(lines) - 1, 0)))
    if action == "duplicate-line":
        lines.insert(n, lines[n])
    elif action == "drop-line":
        del lines[n]
    elif action == "latin-1":
        lines[n] = lines[n] + "\u00e9\u00b5".encode("latin-1")
    out = b"\n".join(lines)
    return b"\xef\xbb\xbf" + out if action == "bom" else out


def _mutate_csv(data: bytes, draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    rows = [r.split(",") for r in data.decode().strip("\n").split("\n")]
    r = draw(st.integers(0, len(rows) - 1))
    c = draw(st.integers(0, len(rows[r]) - 1))
    rows[r][c] = draw(
        st.sampled_from(("", "0", "-0.0", "1e308", "nan", "inf", "-inf", "true", "lots", "9" * 40, "1e-300"))
    )
    return _mutate_text("\n".join(",".join(row) for row in rows).encode() + b"\n", draw)


@st.composite
def fuzzed_books(draw: Callable[[st.SearchStrategy[Any]], Any]) -> dict[str, bytes]:
    """Files of a mutated example book: {file name: bytes}; the book itself is 'book.*'."""
    base = draw(st.sampled_from(("desk.yaml", "desk.json", "desk_csv.yaml")))
    source = DESK if base != "desk_csv.yaml" else DESK_CSV
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(0, 2))):
        _mutate_document(document, draw)
    if base == "desk.json":
        name, data = "book.json", json.dumps(document, default=str, indent=1).encode()
    else:
        name, data = "book.yaml", yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()
    files = {name: _mutate_text(data, draw)}
    if base == "desk_csv.yaml":
        for table in ("desk_positions.csv", "desk_balances.csv"):
            raw = (EXAMPLES / table).read_bytes()
            files[table] = _mutate_csv(raw, draw) if draw(st.booleans()) else raw
    return files


CLEAN_ERROR = re.compile(r"^error: \S+\.(yaml|json|csv): \S")


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=fuzzed_books())
def test_fuzzed_books_give_a_result_or_a_clean_error(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        book = next(directory / n for n in files if n.startswith("book."))
        result, message = _run(directory, book, ("margin", "--json"))
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.exception, message)
    if result.exit_code == 0:
        assert result.exception is None
        json.loads(result.stdout)  # a complete report
    else:
        assert isinstance(result.exception, SystemExit)
        assert CLEAN_ERROR.match(message), message
