"""adapters.arrow: Arrow columns to numpy and back without pyarrow's pandas shim. Values, nulls,
chunks and offsets equal what pyarrow's own conversion gives, and neither loading a Parquet book
nor writing the Parquet report imports pandas (0.6-0.9 s of a `margin` run)."""

from __future__ import annotations

import decimal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from crossmargin.adapters.arrow import bool_array, numeric_array, numpy_of, string_array
from crossmargin.adapters.files import load_book

ROOT = Path(__file__).resolve().parents[2]


def test_numbers_with_nulls_chunks_and_offsets_match_pyarrow() -> None:
    column = pa.chunked_array([pa.array([1, None, 3], pa.int32()).slice(1), pa.array([7], pa.int32())])
    np.testing.assert_array_equal(numpy_of(column, np.float64), [np.nan, 3.0, 7.0])
    np.testing.assert_array_equal(numpy_of(column, np.int64, null=-1), [-1, 3, 7])
    floats = pa.array([0.5, None, 2.5], pa.float64())
    np.testing.assert_array_equal(numpy_of(floats, np.float64), floats.to_numpy(zero_copy_only=False))
    money = pa.array([decimal.Decimal("1.25"), None])
    np.testing.assert_array_equal(numpy_of(money, np.float64), [1.25, np.nan])
    np.testing.assert_array_equal(numpy_of(pa.array([None, None]), np.float64), [np.nan, np.nan])
    assert numpy_of(pa.chunked_array([], pa.float64()), np.float64).size == 0


def test_booleans_are_unpacked_and_packed_bit_for_bit() -> None:
    mask = np.array([True, False, True, True, False, False, False, False, True, False])
    packed = bool_array(mask)
    assert packed.to_pylist() == mask.tolist()
    np.testing.assert_array_equal(numpy_of(packed.slice(3), bool), mask[3:])
    np.testing.assert_array_equal(numpy_of(pa.array([True, None, False]), bool), [True, False, False])


def test_strings_round_trip_utf8() -> None:
    values = ["basis-trader", "é-ü", "", "账户"]
    assert string_array(values).to_pylist() == values
    assert len(string_array([])) == 0


_SHAPE = hnp.array_shapes(max_dims=1, min_side=0, max_side=40)


@given(
    values=st.one_of(
        hnp.arrays(np.float64, _SHAPE, elements={"allow_nan": True, "allow_infinity": True}),
        hnp.arrays(st.sampled_from([np.int64, np.int32]), _SHAPE),
    ),
    step=st.integers(min_value=1, max_value=3),
)
def test_numeric_arrays_hold_numpys_values_and_nan_becomes_null(values: np.ndarray, step: int) -> None:
    strided = values[::step]  # a view with a stride: copied to contiguous first
    plain = numeric_array(strided)
    assert plain.type == pa.from_numpy_dtype(values.dtype) and plain.null_count == 0
    np.testing.assert_array_equal(np.asarray(plain.to_pylist(), dtype=values.dtype), strided)
    nulled = numeric_array(strided, nan_is_null=True).to_pylist()
    nan = np.isnan(strided) if values.dtype.kind == "f" else np.zeros(strided.size, dtype=bool)
    assert [v is None for v in nulled] == nan.tolist()
    np.testing.assert_array_equal(
        np.asarray([v for v in nulled if v is not None], dtype=values.dtype), strided[~nan]
    )


def test_numeric_arrays_share_numpys_buffer() -> None:
    values = np.arange(5.0)
    array = numeric_array(values)
    assert array.buffers()[1].address == values.ctypes.data


def test_loading_a_parquet_book_imports_no_pandas(tmp_path: Path) -> None:
    positions = pa.table(
        {
            "account": ["a1", "a1", "a2"],
            "instrument": ["BTC-USDC-PERP", "ETH-USDC-PERP", "BTC-USDC-PERP"],
            "quantity": [1.0, -2.0, 0.5],
            "entry_price": [None, 3000.0, None],
        }
    )
    balances = pa.table({"account": ["a1", "a2"], "asset": ["USDC", "USDC"], "balance": [10_000.0, 5_000.0]})
    pq.write_table(positions, tmp_path / "positions.parquet")
    pq.write_table(balances, tmp_path / "balances.parquet")
    desk = (ROOT / "examples" / "desk_csv.yaml").read_text(encoding="utf-8")
    book = tmp_path / "book.yaml"
    book.write_text(
        desk.replace("desk_positions.csv", "positions.parquet").replace(
            "desk_balances.csv", "balances.parquet"
        ),
        encoding="utf-8",
    )
    code = (
        "import sys; from crossmargin.adapters.files import load_book; "
        f"loaded = load_book({str(book)!r}); "
        "print(loaded.book.n_accounts, loaded.book.positions.nnz, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "3", "False"]  # the inline hedger, a1, a2


def test_the_parquet_report_command_imports_no_pandas(tmp_path: Path) -> None:
    out = tmp_path / "report.parquet"
    book = ROOT / "examples" / "desk_csv.yaml"
    code = "\n".join(
        [
            "import sys",
            "from crossmargin.cli.main import app",
            f"sys.argv = ['crossmargin', 'margin', {str(book)!r}, '--out', {str(out)!r}]",
            "try:",
            "    app()",
            "except SystemExit as stop:",
            "    assert not stop.code, stop.code",
            "print('pandas' in sys.modules)",
        ]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False"]
    assert pq.read_metadata(out).num_rows == load_book(book).book.n_accounts  # one row per account
