"""The store inserts records' and postings' tuples as they are: their field order is the tables'."""

from __future__ import annotations

from crossmargin.adapters.sql import store
from crossmargin.engine.journal import LogRecord, PostingRow


def test_posting_rows_are_in_the_postings_columns_order() -> None:
    renamed = {"ordinal": "idx"}  # the column's name predates the field's
    assert tuple(renamed.get(f, f) for f in PostingRow._fields) == store.POSTING_COLUMNS


def test_records_start_with_the_events_columns() -> None:
    assert LogRecord._fields[:8] == store.EVENT_COLUMNS[:8]
    assert store.EVENT_COLUMNS[8:] == ("actor",)


def test_binary_copy_types_are_the_tables_column_types() -> None:
    # Binary COPY sends each value in the type named here; a column whose schema type changed
    # without this list would be refused (or, for a same-width type, misread) by the server.
    import sqlalchemy as sa

    from crossmargin.adapters.sql import schema

    postgres = {sa.BigInteger: "int8", sa.Integer: "int4", sa.String: "text", sa.LargeBinary: "bytea"}
    for table, columns in (("events", store.EVENT_COLUMNS), ("postings", store.POSTING_COLUMNS)):
        defined = getattr(schema, table).c
        assert tuple(postgres[type(defined[c].type)] for c in columns) == store.COPY_TYPES[table]
