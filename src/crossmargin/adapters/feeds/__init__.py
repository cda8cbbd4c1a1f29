"""Price feeds around the oracle core: replay from quote files (CSV/Parquet, or built from the
shared daily history: `QuoteFile`, `DailyOhlcQuotes`, the engine's `QuoteSource` port) and a live
NATS subscriber on `prices.<source>.<asset>`. Both keep a QuoteBook of the latest quote per
(asset, source) and call the same `core.oracle.update` (`engine.oracle_replay`)."""

from crossmargin.adapters.feeds.quotes import (
    DailyOhlcQuotes,
    QuoteBook,
    QuoteFile,
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
    "DailyOhlcQuotes",
    "QuoteBook",
    "QuoteFile",
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
