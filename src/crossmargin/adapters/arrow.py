"""Arrow columns to numpy without `to_numpy`.

pyarrow's `Array.to_numpy` / `ChunkedArray.to_numpy` import pandas on first use (pyarrow's pandas
shim), 0.6-0.9 s of a `crossmargin margin BOOK` run on a 2-core EPYC whether or not pandas is ever
needed. A fixed-width column with no nulls is already a numpy-compatible buffer: `np.frombuffer`
views it (zero copy per chunk), and the chunks are concatenated. Nulls are filled first (NaN for
numbers), booleans (bit-packed in Arrow) are cast to uint8.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc


def numpy_of(
    column: pa.Array | pa.ChunkedArray, dtype: npt.DTypeLike, *, null: float | None = None
) -> npt.NDArray[Any]:
    """`column` as a numpy array of `dtype` (a new array, or a read-only view of Arrow's buffer
    when the types agree, there is one chunk and no null). Integer, floating, decimal and boolean
    columns; a null becomes `null`, by default NaN (a floating `dtype`) or 0 / False."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    kind = np.dtype(dtype)
    fill = null if null is not None else (np.nan if kind.kind == "f" else 0)
    parts = [_chunk(chunk, kind, fill) for chunk in chunks]
    if not parts:
        return np.zeros(0, dtype=dtype)
    out: npt.NDArray[Any] = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return out


def _chunk(chunk: pa.Array, dtype: np.dtype[Any], fill: float) -> npt.NDArray[Any]:
    # No Python scalars here (fill_null(nan), equal(x, "")): converting one imports pandas too.
    if pa.types.is_boolean(chunk.type):
        chunk = pc.cast(chunk, pa.uint8())  # bit-packed in Arrow
    elif not (pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type)):
        # Decimals, the all-null type: as float64 (safe=False: an integer beyond 2**53 rounds, as
        # numpy's own conversion does).
        chunk = pc.cast(chunk, pa.float64(), safe=False)
    if chunk.null_count == len(chunk):
        return np.full(len(chunk), fill, dtype=dtype)
    values = _view(chunk).astype(dtype, copy=False)
    if chunk.null_count:
        valid = _view(pc.cast(pc.is_valid(chunk), pa.uint8())).astype(bool)
        values = values.copy()
        values[~valid] = fill
    return values


def _view(chunk: pa.Array) -> npt.NDArray[Any]:
    """The values buffer of a fixed-width chunk as numpy, zero copy (read-only)."""
    native = np.dtype(_NATIVE[str(chunk.type)])
    return np.frombuffer(
        chunk.buffers()[1], dtype=native, count=len(chunk), offset=chunk.offset * native.itemsize
    )


_NATIVE = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "halffloat": np.float16,
    "float": np.float32,
    "double": np.float64,
}


def string_array(values: Sequence[str]) -> pa.StringArray:
    """An Arrow string array of `values` built from its UTF-8 bytes and offsets (`pa.array` on
    Python objects imports pandas first, to ask whether they are pandas objects)."""
    encoded = [value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    data = b"".join(encoded)
    array: pa.StringArray = pa.StringArray.from_buffers(
        len(encoded), pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)
    )
    return array


def bool_array(mask: npt.NDArray[np.bool_]) -> pa.BooleanArray:
    """An Arrow boolean array of a numpy mask, bit-packed here (`pa.array(mask)` imports pandas)."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    array: pa.BooleanArray = pa.Array.from_buffers(pa.bool_(), int(mask.size), [None, pa.py_buffer(bits)])
    return array


def numeric_array(values: npt.NDArray[Any], *, nan_is_null: bool = False) -> pa.Array:
    """An Arrow array of a 1-D numpy integer or floating array, sharing its buffer (zero copy;
    `pa.array(values)` imports pandas). `nan_is_null`: NaN entries become nulls (a validity
    bitmap beside the unchanged values)."""
    contiguous = np.ascontiguousarray(values)
    kind = pa.from_numpy_dtype(contiguous.dtype)
    validity = None
    if nan_is_null and contiguous.dtype.kind == "f":
        valid = ~np.isnan(contiguous)
        if not valid.all():
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    array: pa.Array = pa.Array.from_buffers(kind, int(contiguous.size), [validity, pa.py_buffer(contiguous)])
    return array
