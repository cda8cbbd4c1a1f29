"""Byte assembly of the JSON margin report: one numba pass per chunk of accounts.

The writer (`report_json`) renders every column of a chunk as one JSON array with orjson
(`[1.5,-0.25,null,...]`, `["acct-1","acct-2"]`, `[true,false]`: shortest round-trip floats, NaN
as null, strings escaped per RFC 8259), and the few ids of a small table (instruments, assets) as
JSON strings once. This kernel then walks the accounts in order and copies, for each field, the
next value of its column array (a cursor per column: values are consumed in the order they were
rendered) between constant templates (keys, brackets, separators, indentation). Nothing per value
is allocated; the cost is one read of the rendered columns and one write of the output.

Template table layout (rows of `templates`): the structural pieces `ACCOUNT_FIRST` ..
`ITEM_CLOSE` below, then one key per account field, per position field and per collateral field,
each key template carrying its own leading separator and indentation.
"""

from __future__ import annotations

import numpy as np

from crossmargin.core.jit import kernel

ACCOUNT_FIRST = 0  # before the first account of the report
ACCOUNT_NEXT = 1  # before every other account (the comma)
ACCOUNT_OPEN = 2
ACCOUNT_CLOSE = 3
POSITIONS_KEY = 4
COLLATERAL_KEY = 5
EMPTY_LIST = 6
LIST_OPEN = 7
LIST_CLOSE = 8
ITEM_FIRST = 9  # opening an object inside a list: first, then the others
ITEM_NEXT = 10
ITEM_CLOSE = 11
N_STRUCTURE = 12

_QUOTE = 34
_BACKSLASH = 92
_COMMA = 44
_CLOSE_BRACKET = 93


@kernel(nogil=True, inline="always")
def _put(out: np.ndarray, o: int, buffer: np.ndarray, start: int, stop: int) -> int:
    # A byte loop: the pieces are short (5-25 bytes), and numba's slice assignment checks the two
    # arrays for overlap first (30 % slower over the whole report, bench_pipeline.py).
    for i in range(start, stop):
        out[o] = buffer[i]
        o += 1
    return o


@kernel(nogil=True, inline="always")
def _template(out: np.ndarray, o: int, templates: np.ndarray, bounds: np.ndarray, t: int) -> int:
    return _put(out, o, templates, bounds[t], bounds[t + 1])


@kernel(nogil=True, inline="always")
def _next_value(out: np.ndarray, o: int, columns: np.ndarray, cursor: np.ndarray, c: int) -> int:
    """Copy the next value of rendered column `c` (a JSON string, number or literal) and move its
    cursor past the following separator. A number or literal is copied while it is scanned (one
    pass); a string is scanned for its closing quote (escapes skipped), then copied."""
    p = cursor[c]
    b = columns[p]
    if b == _QUOTE:
        start = p
        p += 1
        while columns[p] != _QUOTE:
            p += 2 if columns[p] == _BACKSLASH else 1
        p += 1
        cursor[c] = p + 1
        return _put(out, o, columns, start, p)
    while b != _COMMA and b != _CLOSE_BRACKET:
        out[o] = b
        o += 1
        p += 1
        b = columns[p]
    cursor[c] = p + 1
    return o


@kernel(nogil=True)
def _objects(
    out: np.ndarray,
    o: int,
    n_items: int,
    first_item: int,
    fields: np.ndarray,
    first_key: int,
    codes: np.ndarray,
    columns: np.ndarray,
    cursor: np.ndarray,
    templates: np.ndarray,
    bounds: np.ndarray,
    names: np.ndarray,
    name_bounds: np.ndarray,
) -> int:
    """A list of `n_items` objects; field f is column `fields[f]`, or (-1) the name `codes[item]`."""
    if n_items == 0:
        return _template(out, o, templates, bounds, EMPTY_LIST)
    o = _template(out, o, templates, bounds, LIST_OPEN)
    for j in range(n_items):
        o = _template(out, o, templates, bounds, ITEM_FIRST if j == 0 else ITEM_NEXT)
        for f in range(fields.shape[0]):
            o = _template(out, o, templates, bounds, first_key + f)
            if fields[f] < 0:
                code = codes[first_item + j]
                o = _put(out, o, names, name_bounds[code], name_bounds[code + 1])
            else:
                o = _next_value(out, o, columns, cursor, fields[f])
        o = _template(out, o, templates, bounds, ITEM_CLOSE)
    return _template(out, o, templates, bounds, LIST_CLOSE)


@kernel(nogil=True)
def render_accounts(
    out: np.ndarray,
    columns: np.ndarray,
    cursor: np.ndarray,
    templates: np.ndarray,
    bounds: np.ndarray,
    names: np.ndarray,
    name_bounds: np.ndarray,
    account_fields: np.ndarray,
    position_fields: np.ndarray,
    collateral_fields: np.ndarray,
    position_names: np.ndarray,
    collateral_names: np.ndarray,
    position_count: np.ndarray,
    collateral_count: np.ndarray,
    first_account_of_report: bool,
) -> int:
    """Write the chunk's accounts into `out` (large enough: the caller's bound); return the
    number of bytes written. `bounds[t]:bounds[t + 1]` is template t in `templates`, likewise
    `name_bounds` for the JSON-quoted names (instrument ids, then asset symbols) in `names`."""
    o = 0
    position = 0
    collateral = 0
    position_key = N_STRUCTURE + account_fields.shape[0]
    collateral_key = position_key + position_fields.shape[0]
    for a in range(position_count.shape[0]):
        first = first_account_of_report and a == 0
        o = _template(out, o, templates, bounds, ACCOUNT_FIRST if first else ACCOUNT_NEXT)
        o = _template(out, o, templates, bounds, ACCOUNT_OPEN)
        for f in range(account_fields.shape[0]):
            o = _template(out, o, templates, bounds, N_STRUCTURE + f)
            o = _next_value(out, o, columns, cursor, account_fields[f])
        o = _template(out, o, templates, bounds, POSITIONS_KEY)
        o = _objects(
            out,
            o,
            position_count[a],
            position,
            position_fields,
            position_key,
            position_names,
            columns,
            cursor,
            templates,
            bounds,
            names,
            name_bounds,
        )
        position += position_count[a]
        o = _template(out, o, templates, bounds, COLLATERAL_KEY)
        o = _objects(
            out,
            o,
            collateral_count[a],
            collateral,
            collateral_fields,
            collateral_key,
            collateral_names,
            columns,
            cursor,
            templates,
            bounds,
            names,
            name_bounds,
        )
        collateral += collateral_count[a]
        o = _template(out, o, templates, bounds, ACCOUNT_CLOSE)
    return o
