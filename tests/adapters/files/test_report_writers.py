"""The columnar report writers hold the typed report's values: JSON (both layouts) parses to
`to_json(build_margin_report(run))`, the Parquet tables rebuild it, on the desk books under every
pooled and isolated model and on a seeded random Parquet book, in chunks of any size."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.adapters.files import load_book
from crossmargin.adapters.files.report_json import write_margin_json
from crossmargin.adapters.files.report_parquet import side_paths, write_margin_parquet
from crossmargin.engine.margin_run import MarginRun, build_margin_report, run_margin
from crossmargin.engine.report_columns import margin_columns
from crossmargin.engine.reports import AccountReport, PositionReport, to_json
from tests.adapters.files.bad_books import DESK, DESK_CSV
from tests.adapters.files.report_books import write_book

MODELS = ("cross", "isolated", "portfolio", "sensitivity")


def _json(run: MarginRun, *, indent: bool, rows_per_chunk: int) -> str:
    stream = io.BytesIO()
    write_margin_json(margin_columns(run), stream, indent=indent, rows_per_chunk=rows_per_chunk)
    return stream.getvalue().decode("utf-8")


@pytest.fixture(scope="module")
def random_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_book(tmp_path_factory.mktemp("random"), accounts=3_000, positions_per_account=5, seed=11)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("book", [DESK, DESK_CSV], ids=["desk", "desk_csv"])
def test_json_report_parses_to_the_typed_report(book: Path, model: str) -> None:
    run = run_margin(load_book(book), model=model)
    typed = to_json(build_margin_report(run))
    for indent in (True, False):
        for rows_per_chunk in (1, 5, 1_000):  # an account per chunk, a few, all at once
            assert json.loads(_json(run, indent=indent, rows_per_chunk=rows_per_chunk)) == typed


def test_indented_json_is_byte_for_byte_what_json_dumps_prints_for_the_desk() -> None:
    run = run_margin(load_book(DESK), model="isolated")  # isolated: the optional position key too
    typed = to_json(build_margin_report(run))
    expected = json.dumps(typed, indent=2, ensure_ascii=False) + "\n"
    assert _json(run, indent=True, rows_per_chunk=4) == expected


def test_compact_json_holds_one_account_per_line() -> None:
    run = run_margin(load_book(DESK))
    lines = _json(run, indent=False, rows_per_chunk=3).splitlines()
    accounts = [json.loads(line.rstrip(",")) for line in lines[1:-1]]
    assert [a["account_id"] for a in accounts] == list(run.loaded.book.account_ids)


def test_json_report_of_a_random_parquet_book_equals_the_typed_report(random_book: Path) -> None:
    run = run_margin(load_book(random_book))
    typed = to_json(build_margin_report(run))
    bankrupt = [a for a in typed["accounts"] if a["bankrupt"]]
    assert bankrupt and all(a["margin_ratio"] is None for a in bankrupt)  # nulls are exercised
    assert any(a["below_maintenance"] and not a["bankrupt"] for a in typed["accounts"])
    assert json.loads(_json(run, indent=False, rows_per_chunk=4_000)) == typed


def test_json_of_an_account_selection_keeps_the_request_order(random_book: Path) -> None:
    loaded = load_book(random_book)
    wanted = ["acct-0002999", "acct-0000000", "acct-0001234"]
    run = run_margin(loaded, account_ids=wanted)
    report = json.loads(_json(run, indent=True, rows_per_chunk=2))
    assert [a["account_id"] for a in report["accounts"]] == wanted
    assert report == to_json(build_margin_report(run))


def test_json_strings_are_escaped(tmp_path: Path) -> None:
    positions = tmp_path / "positions.csv"
    positions.write_text('account,instrument,quantity\n"quote "" back\\\\slash, é",BTC-PERPETUAL,3\n')
    book = tmp_path / "book.yaml"
    book.write_text(DESK_CSV.read_text().replace("desk_positions.csv", "positions.csv"))
    (tmp_path / "desk_balances.csv").write_text((DESK_CSV.parent / "desk_balances.csv").read_text())
    run = run_margin(load_book(book))
    ids = [a["account_id"] for a in json.loads(_json(run, indent=False, rows_per_chunk=2))["accounts"]]
    assert 'quote " back\\\\slash, é' in ids


def _rebuilt_from_parquet(path: Path) -> dict[str, Any]:
    """The JSON report's accounts rebuilt from the three tables (docs/cli.md layout)."""
    positions_path, collateral_path = side_paths(path)
    accounts = pq.read_table(path).to_pylist()
    positions = pq.read_table(positions_path).to_pylist()
    collateral = pq.read_table(collateral_path).to_pylist()
    rebuilt = []
    p = c = 0
    for account in accounts:
        n_positions, n_collateral = account.pop("n_positions"), account.pop("n_collateral")
        own_positions = positions[p : p + n_positions]
        own_collateral = collateral[c : c + n_collateral]
        p, c = p + n_positions, c + n_collateral
        assert all(row.pop("account_id") == account["account_id"] for row in own_positions + own_collateral)
        rebuilt.append({**account, "positions": own_positions, "collateral": own_collateral})
    assert p == len(positions) and c == len(collateral)
    return {"metadata": pq.read_schema(path).metadata, "accounts": rebuilt}


@pytest.mark.parametrize("model", ["cross", "isolated"])
def test_parquet_report_round_trips_to_the_typed_report(
    tmp_path: Path, random_book: Path, model: str
) -> None:
    for book in (DESK, random_book):
        run = run_margin(load_book(book), model=model)
        target = tmp_path / f"{model}.parquet"
        positions_path, collateral_path = side_paths(target)
        write_margin_parquet(margin_columns(run), (target, positions_path, collateral_path))
        rebuilt = _rebuilt_from_parquet(target)
        typed = to_json(build_margin_report(run))
        assert rebuilt["accounts"] == typed["accounts"]
        metadata = rebuilt["metadata"]
        assert metadata[b"crossmargin.model"] == model.encode()
        assert metadata[b"crossmargin.valuation_time"] == typed["valuation_time"].encode()
        assert metadata[b"crossmargin.book"] == str(book).encode()


def test_report_keys_follow_the_typed_report_fields() -> None:
    """The writers' key order is the dataclasses' field order (the JSON contract)."""
    from crossmargin.adapters.files import report_json

    account_fields = [
        f for f in AccountReport.__dataclass_fields__ if f not in ("positions", "collateral", "levels")
    ]
    assert list(report_json.ACCOUNT_KEYS) == account_fields
    assert [*report_json.POSITION_KEYS, report_json.ISOLATED_KEY] == list(PositionReport.__dataclass_fields__)


@settings(max_examples=25, deadline=None)
@given(rows_per_chunk=st.integers(min_value=1, max_value=40), indent=st.booleans())
def test_any_chunking_writes_the_same_json(rows_per_chunk: int, indent: bool) -> None:
    run = _DESK_CSV_RUN
    assert _json(run, indent=indent, rows_per_chunk=rows_per_chunk) == _json(
        run, indent=indent, rows_per_chunk=10**6
    )


_DESK_CSV_RUN = run_margin(load_book(DESK_CSV), model="portfolio")


def test_empty_selection_writes_an_empty_accounts_list() -> None:
    run = run_margin(load_book(DESK), account_ids=[])
    for indent in (True, False):
        assert json.loads(_json(run, indent=indent, rows_per_chunk=10))["accounts"] == []
    assert np.array_equal(run.breakdown.account_rows, np.zeros(0, dtype=np.int64))


class _FailingStream(io.BytesIO):
    """A stream whose write number `fail_at` (0-based) raises, as a full disk would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        if self.writes - 1 == self.fail_at:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.parametrize("fail_at", [2, 3, 5])
def test_a_failed_write_in_a_worker_stops_the_report_with_its_error(fail_at: int) -> None:
    """Chunks are assembled and written on worker threads: a write that fails there reaches the
    caller (no hang, no later chunk written after it)."""
    columns = margin_columns(_DESK_CSV_RUN)
    stream = _FailingStream(fail_at)
    with pytest.raises(OSError, match="No space left"):
        write_margin_json(columns, stream, indent=False, rows_per_chunk=1)
    assert stream.writes == fail_at + 1  # header, "[", chunks ...; nothing after the failed one
