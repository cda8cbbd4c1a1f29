"""Book files: YAML/JSON documents, CSV/Parquet tables for large books."""

from crossmargin.adapters.files.loader import LoadedBook, book_json_schema, load_book

__all__ = ["LoadedBook", "book_json_schema", "load_book"]
