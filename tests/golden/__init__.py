"""Published venue examples. Each test cites its source; the tables live in data/*.json with a
"source" field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"


def load_golden(name: str) -> dict[str, Any]:
    """One golden JSON file from tests/golden/data; every file names its source URL."""
    data: dict[str, Any] = json.loads((DATA_DIR / name).read_text(encoding="utf-8"))
    assert data["source"].startswith("https://"), name
    return data
