"""Book files: the bundled examples load, bad books fail whole with file + field + problem, and
positions/balances tables (CSV, Parquet) load to the same margins as the inline YAML."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from crossmargin.adapters.files import book_json_schema, load_book
from crossmargin.core.instruments import InstrumentKind, Settlement
from crossmargin.engine.margin_run import margin_report, run_margin
from crossmargin.errors import BookFileError
from tests.adapters.files.bad_books import BAD_BOOKS, DESK, DESK_CSV, BadBook, desk, write_book

# Report values recomputed from a different file layout may differ by summation order only.
RELATIVE_TOLERANCE = 1e-12

SNAPSHOT_TIME = "2025-12-30T17:31:15Z"


# --------------------------------------------------------------------------- the examples


def test_desk_example_loads_with_the_documented_accounts_and_instruments() -> None:
    loaded = load_book(DESK)
    book = loaded.book
    assert book.account_ids == ("basis-trader", "vol-seller", "directional", "near-liquidation")
    assert set(book.assets.symbols) == {"USDC", "USDT", "BTC", "ETH"}
    assert set(book.instruments.underlyings) == {"BTC", "ETH", "SOL"}
    kinds = {InstrumentKind(int(k)) for k in book.instruments.kind}
    assert kinds == set(InstrumentKind)  # spot, perpetual, future, option
    assert loaded.default_model == "cross"
    assert loaded.source is not None and SNAPSHOT_TIME in loaded.source
    assert loaded.market.valuation_ns == 1_767_115_875 * 10**9  # 2025-12-30T17:31:15Z


def test_desk_example_uses_deribit_conventions_for_inverse_instruments() -> None:
    loaded = load_book(DESK)
    table = loaded.book.instruments
    perpetual = table.index["BTC-PERPETUAL"]
    assert table.settlement[perpetual] == Settlement.INVERSE
    assert table.contract_size[perpetual] == 10.0  # USD face
    assert table.rate_per_unit[perpetual] == pytest.approx(0.00005)  # 0.005 % per BTC
    option = table.index["BTC-30JAN26-80000-P"]
    assert table.settlement[option] == Settlement.INVERSE
    # Snapshot row BTC-30JAN26-80000-P: mark_price_coin 0.01407575, mark_iv 0.4437, forward 88,911.04.
    assert loaded.market.mark_price[option] == 0.01407575
    assert loaded.market.implied_vol[option] == 0.4437
    assert loaded.market.forward_price_usd[option] == 88911.04


@pytest.mark.data
def test_desk_option_rows_are_copied_from_the_deribit_snapshot() -> None:
    """Every option in the example matches its row in the shared snapshot (../shared/data or
    $CROSSMARGIN_DATA); skipped when the data is absent, except in CI, where absence fails."""
    default = Path(__file__).resolve().parents[4] / "shared" / "data"
    data = Path(os.environ.get("CROSSMARGIN_DATA", default))
    files = [data / "options_deribit_btc_20251230.csv", data / "options_deribit_eth_20251230.csv"]
    if not all(f.exists() for f in files):
        if os.environ.get("CI") == "true":
            pytest.fail(f"snapshot files not found under {data} (CI=true)")
        pytest.skip(f"snapshot files not found under {data}")

    rows = {r["instrument"]: r for f in files for r in csv.DictReader(f.open(encoding="utf-8"))}
    options = [i for i in desk()["instruments"] if i["kind"] == "option"]
    assert options
    for option in options:
        row = rows[option["id"]]
        assert row["snapshot_time"] == SNAPSHOT_TIME
        assert option["mark_price"] == float(row["mark_price_coin"])
        assert option["implied_vol"] == float(row["mark_iv"])
        assert option["forward_price"] == float(row["forward_price_usd"])
        assert option["strike"] == float(row["strike_usd"])
        assert option["option_type"] == row["option_type"]


def test_omitted_entry_price_defaults_to_todays_mark_in_settlement_units() -> None:
    run = run_margin(load_book(DESK), account_ids=["vol-seller"])
    report = margin_report(run)
    (account,) = report["accounts"]
    sold_at_mark = next(p for p in account["positions"] if p["instrument_id"] == "ETH-30JAN26-3400-C")
    assert sold_at_mark["entry_price"] == pytest.approx(0.02204, rel=1e-12)  # coin, the mark
    assert sold_at_mark["unrealised_pnl_usd"] == pytest.approx(0.0, abs=1e-6)


def test_csv_example_loads_accounts_from_the_tables() -> None:
    loaded = load_book(DESK_CSV)
    # The inline account first, then the accounts that only the tables name, sorted.
    assert loaded.book.account_ids == ("hedger", "perp-trader", "put-seller")
    hedger = loaded.book.account_row("hedger")
    usdc, btc = loaded.book.assets.index["USDC"], loaded.book.assets.index["BTC"]
    assert loaded.book.balances[hedger, usdc] == 50000.0  # inline collateral
    assert loaded.book.balances[hedger, btc] == 2.25  # desk_balances.csv
    assert loaded.book.positions.nnz == 5


def test_json_book_loads_like_yaml(tmp_path: Path) -> None:
    path = tmp_path / "desk.json"
    path.write_text(json.dumps(desk(), default=str), encoding="utf-8")
    from_json = margin_report(run_margin(load_book(path)))
    from_yaml = margin_report(run_margin(load_book(DESK)))
    assert _by_account(from_json) == _by_account(from_yaml)


def test_json_schema_lists_the_top_level_sections() -> None:
    schema = book_json_schema()
    assert {"assets", "instruments", "market", "accounts", "valuation_time"} <= set(schema["properties"])
    assert set(schema["required"]) == {"valuation_time", "assets", "market"}
    json.dumps(schema)  # serialisable as is


# --------------------------------------------------------------------------- bad books


@pytest.mark.parametrize("case", BAD_BOOKS, ids=[c.name for c in BAD_BOOKS])
def test_bad_book_raises_naming_file_field_and_problem(case: BadBook, tmp_path: Path) -> None:
    book_path, named_path = case.write(tmp_path)
    with pytest.raises(BookFileError) as raised:
        load_book(book_path)
    error = raised.value
    assert error.path == str(named_path)
    assert error.field == case.field
    assert case.problem in error.problem
    message = str(error)
    assert str(named_path) in message and case.field in message


def test_missing_file_is_a_book_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(BookFileError, match="cannot read") as raised:
        load_book(missing)
    assert raised.value.path == str(missing)
    assert raised.value.field == "file"


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(BookFileError, match="top level must be a mapping"):
        load_book(path)


# --------------------------------------------------------------------------- tables == inline


def _split_desk() -> tuple[dict[str, Any], dict[str, list[Any]], dict[str, list[Any]]]:
    """The desk book without inline accounts, and its positions and balances as columns."""
    book = desk()
    positions: dict[str, list[Any]] = {"account": [], "instrument": [], "quantity": [], "entry_price": []}
    balances: dict[str, list[Any]] = {"account": [], "asset": [], "balance": []}
    for account in book.pop("accounts"):
        for position in account.get("positions", []):
            positions["account"].append(account["id"])
            positions["instrument"].append(position["instrument"])
            positions["quantity"].append(float(position["quantity"]))
            positions["entry_price"].append(position.get("entry_price"))  # None = blank = today's mark
        for symbol, amount in account.get("collateral", {}).items():
            balances["account"].append(account["id"])
            balances["asset"].append(symbol)
            balances["balance"].append(float(amount))
    assert None in positions["entry_price"]  # the blank-entry path is exercised
    return book, positions, balances


def _write_csv(path: Path, columns: dict[str, list[Any]]) -> None:
    names = list(columns)
    lines = [",".join(names)]
    for row in zip(*(columns[n] for n in names), strict=True):
        lines.append(",".join("" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _by_account(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Report accounts keyed by id, positions keyed by instrument, without the book path."""
    out = {}
    for account in report["accounts"]:
        item = dict(account)
        item["positions"] = {p["instrument_id"]: p for p in account["positions"]}
        item["collateral"] = {c["asset"]: c for c in account["collateral"]}
        out[account["account_id"]] = item
    return out


def _assert_same_margins(left: dict[str, Any], right: dict[str, Any]) -> None:
    a, b = _by_account(left), _by_account(right)
    assert a.keys() == b.keys()
    for account_id in a:
        for key in (
            "equity_usd",
            "initial_margin_usd",
            "maintenance_margin_usd",
            "available_usd",
            "margin_ratio",
            "collateral_value_usd",
        ):
            expected = b[account_id][key]
            assert a[account_id][key] == pytest.approx(expected, rel=RELATIVE_TOLERANCE), (account_id, key)
        assert a[account_id]["positions"].keys() == b[account_id]["positions"].keys()
        for instrument_id, position in a[account_id]["positions"].items():
            other = b[account_id]["positions"][instrument_id]
            assert position.keys() == other.keys()
            for key in position.keys() - {"instrument_id"}:
                assert position[key] == pytest.approx(other[key], rel=RELATIVE_TOLERANCE), (
                    account_id,
                    instrument_id,
                    key,
                )
        assert a[account_id]["collateral"].keys() == b[account_id]["collateral"].keys()
        for symbol, item in a[account_id]["collateral"].items():
            other = b[account_id]["collateral"][symbol]
            assert item["balance"] == other["balance"]
            assert item["value_usd"] == pytest.approx(other["value_usd"], rel=RELATIVE_TOLERANCE)
            assert item["haircut"] == pytest.approx(other["haircut"], rel=RELATIVE_TOLERANCE)


@pytest.mark.parametrize("model", ["cross", "isolated"])
def test_csv_positions_and_balances_give_the_inline_margins(tmp_path: Path, model: str) -> None:
    book, positions, balances = _split_desk()
    _write_csv(tmp_path / "positions.csv", positions)
    _write_csv(tmp_path / "balances.csv", balances)
    book["positions_file"] = "positions.csv"  # relative to the book file
    book["balances_file"] = "balances.csv"
    from_tables = margin_report(run_margin(load_book(write_book(tmp_path, book)), model=model))
    inline = margin_report(run_margin(load_book(DESK), model=model))
    _assert_same_margins(from_tables, inline)


@pytest.mark.parametrize("model", ["cross", "isolated"])
def test_parquet_positions_and_balances_give_the_inline_margins(tmp_path: Path, model: str) -> None:
    book, positions, balances = _split_desk()
    pq.write_table(
        pa.table(
            {
                "account": pa.array(positions["account"], pa.string()),
                "instrument": pa.array(positions["instrument"], pa.string()),
                "quantity": pa.array(positions["quantity"], pa.float64()),
                "entry_price": pa.array(
                    positions["entry_price"], pa.float64()
                ),  # None -> null -> today's mark
            }
        ),
        tmp_path / "positions.parquet",
    )
    pq.write_table(pa.table(balances), tmp_path / "balances.parquet")
    book["positions_file"] = "positions.parquet"
    book["balances_file"] = "balances.parquet"
    from_tables = margin_report(run_margin(load_book(write_book(tmp_path, book)), model=model))
    inline = margin_report(run_margin(load_book(DESK), model=model))
    _assert_same_margins(from_tables, inline)


def test_table_rows_add_to_inline_accounts(tmp_path: Path) -> None:
    """An account may keep collateral inline and take positions (and more collateral) from tables."""
    book, positions, balances = _split_desk()
    book["accounts"] = [{"id": "basis-trader", "collateral": {"USDC": 150000}}]
    keep = [
        n
        for n, (a, s) in enumerate(zip(balances["account"], balances["asset"], strict=True))
        if not (a == "basis-trader" and s == "USDC")
    ]
    balances = {k: [v[n] for n in keep] for k, v in balances.items()}
    _write_csv(tmp_path / "positions.csv", positions)
    _write_csv(tmp_path / "balances.csv", balances)
    book["positions_file"] = "positions.csv"
    book["balances_file"] = "balances.csv"
    from_tables = margin_report(run_margin(load_book(write_book(tmp_path, book))))
    _assert_same_margins(from_tables, margin_report(run_margin(load_book(DESK))))


def test_numeric_looking_ids_in_tables_stay_ids(tmp_path: Path) -> None:
    book = desk()
    book["accounts"] = []
    positions = "account,instrument,quantity\n1001,BTC-USDC-PERP,1\n"
    (tmp_path / "positions.csv").write_text(positions, encoding="utf-8")
    (tmp_path / "balances.csv").write_text("account,asset,balance\n1001,USDC,5000\n", encoding="utf-8")
    book["positions_file"] = "positions.csv"
    book["balances_file"] = "balances.csv"
    loaded = load_book(write_book(tmp_path, book))
    assert loaded.book.account_ids == ("1001",)
    assert loaded.book.balances[0, loaded.book.assets.index["USDC"]] == 5000.0


def test_header_only_positions_table_adds_nothing(tmp_path: Path) -> None:
    book = desk()
    (tmp_path / "positions.csv").write_text("account,instrument,quantity\n", encoding="utf-8")
    book["positions_file"] = "positions.csv"
    loaded = load_book(write_book(tmp_path, book))
    assert loaded.book.positions.nnz == load_book(DESK).book.positions.nnz


def test_inline_isolated_collateral_is_carried_to_the_book(tmp_path: Path) -> None:
    book = desk()
    directional = next(a for a in book["accounts"] if a["id"] == "directional")
    directional["positions"][0]["isolated_collateral"] = {"ETH": 20.0}
    loaded = load_book(write_book(tmp_path, book))
    assert loaded.book.isolated_collateral is not None
    assert float(np.sum(loaded.book.isolated_collateral[:, loaded.book.assets.index["ETH"]])) == 20.0
    report = margin_report(run_margin(loaded, model="isolated", account_ids=["directional"]))
    assert all(math.isfinite(p["isolated_equity_usd"]) for p in report["accounts"][0]["positions"])


def test_isolated_collateral_with_tables_is_refused(tmp_path: Path) -> None:
    book = desk()
    book["accounts"][0]["positions"][0]["isolated_collateral"] = {"USDC": 1.0}
    (tmp_path / "positions.csv").write_text("account,instrument,quantity\n", encoding="utf-8")
    book["positions_file"] = "positions.csv"
    with pytest.raises(BookFileError, match="isolated_collateral"):
        load_book(write_book(tmp_path, book))


def test_example_yaml_is_plain_yaml() -> None:
    """The examples parse with any YAML reader (no tags, no anchors needed)."""
    for path in (DESK, DESK_CSV):
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict)
