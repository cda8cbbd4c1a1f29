"""Price feeds around the oracle core: replay from quote files (CSV/Parquet, or built from the
shared daily history) and a live NATS subscriber on `prices.<source>.<asset>`. Both keep a
QuoteBook of the latest quote per (asset, source) and call the same `core.oracle.update`."""

from crossmargin.adapters.feeds.quotes import (
    QuoteBook,
    QuoteFileError,
    QuoteTable,
    daily_ohlc_quotes,
    default_data_dir,
    load_quotes,
    to_ns,
    write_quotes,
)
from crossmargin.adapters.feeds.replay import ReplayStep, param_table, replay

__all__ = [
    "QuoteBook",
    "QuoteFileError",
    "QuoteTable",
    "ReplayStep",
    "daily_ohlc_quotes",
    "default_data_dir",
    "load_quotes",
    "param_table",
    "replay",
    "to_ns",
    "write_quotes",
]
