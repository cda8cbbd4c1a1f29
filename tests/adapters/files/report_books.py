"""Books for the report-writer tests: the bundled desks, and the seeded Parquet book of
bench/pipeline_book.py (random sizes, signs and entry prices; healthy, below-maintenance and
bankrupt accounts; ~30 % blank entry prices)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))

from pipeline_book import write_book  # noqa: E402  (bench/ is not a package)

__all__ = ["ROOT", "write_book"]
