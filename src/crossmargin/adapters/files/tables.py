"""Positions and balances tables (CSV or Parquet) read columnar: Arrow in, numpy out.

A book of 1,000,000 accounts holds 10,000,000 position rows, so nothing here touches a row in
Python. Id columns (account, instrument, asset) stay Arrow dictionaries: Parquet's own
dictionary pages are read as they are (`read_dictionary`), CSV text is dictionary-encoded by
Arrow while parsing; a `TextColumn` is the concatenated dictionaries plus one int64 code per row.
Ids are then resolved per dictionary entry (a few per instrument, one per account and row group),
never per row, and the row codes gather the result.

Numbers are checked vectorised: integer or floating point columns only (`true` is not 1), within
the caller's bounds; blank/null stays NaN for the caller. Errors name the file, the column and the
first offending data row (1-based, header not counted), as `BookFileError(path, column, problem)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from crossmargin.adapters.arrow import bool_array, numpy_of
from crossmargin.adapters.files.documents import decode_utf8
from crossmargin.adapters.files.schema import MAGNITUDE_REASON
from crossmargin.errors import BookFileError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

TEXT_COLUMNS = frozenset({"account", "instrument", "asset"})
PARQUET_SUFFIXES = (".parquet", ".pq")
_NUMBER_TEXT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string)


@dataclass(frozen=True, slots=True)
class TextColumn:
    """An id column: `values` (Arrow strings, the concatenated per-chunk dictionaries, so a value
    may repeat) and `codes` (n_rows,), the entry of `values` each row holds; never null (a null
    or blank row is refused on reading)."""

    values: pa.Array
    codes: IntArray

    @property
    def n_rows(self) -> int:
        return int(self.codes.size)

    def used_values(self) -> pa.Array:
        """The distinct values some row holds (a Parquet dictionary may carry unused entries,
        e.g. a pandas categorical's unused categories)."""
        used = np.zeros(len(self.values), dtype=bool)
        used[self.codes] = True
        distinct: pa.Array = pc.unique(self.values.filter(bool_array(used)))
        return distinct


@dataclass(frozen=True, slots=True)
class Table:
    """A read table: id columns as `TextColumn`, number columns as float64 (NaN = blank)."""

    path: str
    text: Mapping[str, TextColumn]
    numbers: Mapping[str, FloatArray]

    @property
    def n_rows(self) -> int:
        first = next(iter(self.text.values()), None)
        if first is not None:
            return first.n_rows
        return int(next(iter(self.numbers.values())).size)


def read_table(
    path: Path,
    columns: tuple[str, ...],
    optional: tuple[str, ...] = (),
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> Table:
    """Read CSV or Parquet (`.parquet`, `.pq`) into a `Table` (module docstring).

    Id columns must not be empty; the other columns must be numbers (integer or floating point)
    and, where `bounds` names them, lie in [low, high] when given. CSV text must be UTF-8; a column
    may appear once; every column of `columns` must be there."""
    where = str(path)
    wanted = (*columns, *optional)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            schema = pq.read_schema(path)
            names = schema.names
            _check_names(where, names, columns)
            present = [c for c in wanted if c in names]
            dictionary = [c for c in present if c in TEXT_COLUMNS and _is_text(schema.field(c).type)]
            # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset and pandas (~1 s).
            table = pq.ParquetFile(path, read_dictionary=dictionary).read(columns=present)
        else:
            data = path.read_bytes()
            decode_utf8(data, where)  # header and cells: UTF-8, or an error naming the line
            text_type = pa.dictionary(pa.int32(), pa.string())
            table = pacsv.read_csv(
                pa.BufferReader(data),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: text_type for c in wanted if c in TEXT_COLUMNS},
                    strings_can_be_null=True,
                ),
            )
            _check_names(where, table.column_names, columns)
    except (OSError, pa.ArrowInvalid) as error:
        raise BookFileError(where, "file", f"cannot read table: {error}") from None
    present_names = table.column_names
    text: dict[str, TextColumn] = {}
    numbers: dict[str, FloatArray] = {}
    for name in (c for c in wanted if c in present_names):
        column = table.column(name)
        if name in TEXT_COLUMNS:
            text[name] = _text_column(column, where, name)
        else:
            numbers[name] = _number_column(column, where, name, (bounds or {}).get(name))
    return Table(path=where, text=text, numbers=numbers)


def _is_text(kind: pa.DataType) -> bool:
    return any(test(kind) for test in _TEXT_TYPES)


def _check_names(where: str, names: Sequence[str], columns: tuple[str, ...]) -> None:
    repeated = next((c for n, c in enumerate(names) if c in names[:n]), None)
    if repeated is not None:
        raise BookFileError(where, repeated, "column given more than once")
    missing = [c for c in columns if c not in names]
    if missing:
        raise BookFileError(where, missing[0], f"missing column (need {', '.join(columns)})")


def _text_column(column: pa.ChunkedArray, where: str, name: str) -> TextColumn:
    """Dictionaries and codes of an id column, chunk by chunk (no row-level Python)."""
    values: list[pa.Array] = []
    codes: list[IntArray] = []
    offset = 0
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            if not _is_text(chunk.type):
                chunk = chunk.cast(pa.string())  # numeric-looking ids stay ids: 1001 -> "1001"
            chunk = pc.dictionary_encode(chunk)
        dictionary = chunk.dictionary
        if not pa.types.is_string(dictionary.type):
            dictionary = dictionary.cast(pa.string())
        indices = chunk.indices
        index = numpy_of(indices, np.int64, null=-1)
        if indices.null_count == 0:  # the usual case: one pass, no mask (10 M rows at 1 M accounts)
            codes.append(index + offset if offset else index)
        else:
            codes.append(np.where(index >= 0, index + offset, -1))
        values.append(dictionary)
        offset += len(dictionary)
    all_codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    all_values = pa.concat_arrays(values) if values else pa.array([], pa.string())
    # Blank: empty after trimming, or null (NaN length). No `pc.equal(x, "")`: converting the
    # Python "" imports pandas (pyarrow's shim, ~0.7 s).
    length = numpy_of(pc.utf8_length(pc.utf8_trim_whitespace(all_values)), np.float64)
    blank_value = ~(length > 0.0)
    blank_row = all_codes < 0
    if np.any(blank_value):
        blank_row |= blank_value[np.maximum(all_codes, 0)]
    if np.any(blank_row):
        row = int(np.flatnonzero(blank_row)[0])
        raise BookFileError(where, name, f"has an empty value (data row {row + 1})")
    return TextColumn(values=all_values, codes=all_codes)


def _number_column(
    column: pa.ChunkedArray, where: str, name: str, bounds: tuple[float, float] | None
) -> FloatArray:
    numeric = (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_decimal(column.type)
        or pa.types.is_null(column.type)  # every row blank: NaN, checked by the caller
    )
    if not numeric:
        values = column.to_pylist()  # the error path only: find and show the first bad cell
        bad = next(
            (n for n, v in enumerate(values) if v is not None and not _NUMBER_TEXT.match(str(v))),
            next((n for n, v in enumerate(values) if v is not None), 0),
        )
        raise BookFileError(where, name, f"not a number: {values[bad]!r} (data row {bad + 1})")
    try:
        numbers = numpy_of(column, np.float64)
    except (pa.ArrowInvalid, ValueError, TypeError) as error:
        raise BookFileError(where, name, f"not numeric: {error}") from None
    low, high = bounds if bounds is not None else (-np.inf, np.inf)
    outside = ~np.isnan(numbers) & ((numbers < low) | (numbers > high))
    if np.any(outside):
        row = int(np.flatnonzero(outside)[0])
        raise BookFileError(
            where,
            name,
            f"must lie in [{low:g}, {high:g}], got {float(numbers[row])!r} (data row {row + 1}): "
            f"{MAGNITUDE_REASON}",
        )
    return numbers


def rows_of_small(column: TextColumn, index: Mapping[str, int], field: str, path: str) -> IntArray:
    """Rows (int64, one per table row) of the ids of a small table (instruments, assets): each
    dictionary entry looked up once in `index`; an unknown id is an error naming its first row."""
    entries = column.values.to_pylist()  # the dictionaries: a handful of entries per chunk
    mapped = np.fromiter((index.get(e, -1) for e in entries), dtype=np.int64, count=len(entries))
    return _gather(column, mapped, field, path)


def rows_of(column: TextColumn, ids: pa.Array, field: str, path: str) -> IntArray:
    """Rows (int64) of the ids of a large table (accounts) by position in `ids` (Arrow strings,
    distinct): one hash lookup per dictionary entry."""
    found = pc.index_in(column.values, value_set=ids)
    mapped = numpy_of(found, np.int64, null=-1)
    return _gather(column, mapped, field, path)


def _gather(column: TextColumn, mapped: IntArray, field: str, path: str) -> IntArray:
    rows = mapped[column.codes]
    if rows.size and rows.min() < 0:
        row = int(np.flatnonzero(rows < 0)[0])
        name = column.values[int(column.codes[row])].as_py()
        raise BookFileError(path, field, f"unknown {field} {name!r} (data row {row + 1})")
    result: IntArray = rows
    return result
