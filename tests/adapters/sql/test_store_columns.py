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
