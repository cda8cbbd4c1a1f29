"""Book files: YAML/JSON documents, CSV/Parquet tables for large books; price path CSVs."""

from crossmargin.adapters.files.loader import book_json_schema, load_book
from crossmargin.adapters.files.price_path import read_price_path
from crossmargin.engine.inputs import LoadedBook  # the engine's value type; kept importable here

__all__ = ["LoadedBook", "book_json_schema", "load_book", "read_price_path"]
