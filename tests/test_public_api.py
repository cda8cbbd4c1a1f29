"""The public API: every name `crossmargin.__all__` promises resolves, `import crossmargin` stays
light (no numba: checked in a fresh subprocess), the README's Python example runs as written,
and the report serializer keeps its rules (null for non-finite, omitted and inlined fields)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import crossmargin
from crossmargin.engine.reports import INLINE_OMIT_NONE, OMIT_NONE, to_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", crossmargin.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(crossmargin, name) is not None


def test_all_has_no_duplicates_and_unknown_names_raise() -> None:
    assert len(crossmargin.__all__) == len(set(crossmargin.__all__))
    with pytest.raises(AttributeError, match="no_such_name"):
        crossmargin.no_such_name  # noqa: B018


def test_import_crossmargin_imports_no_numba() -> None:
    code = (
        "import sys, json, crossmargin; "
        "print(json.dumps([m for m in ('numba', 'numpy', 'scipy', 'pyarrow') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_readme_python_example_runs_and_imports_only_from_crossmargin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    source = code.group(1)
    for line in source.splitlines():
        if line.startswith(("import ", "from ")):
            assert re.match(r"(import crossmargin|from crossmargin import )", line), line
    monkeypatch.chdir(ROOT)
    exec(compile(source, "README.md", "exec"), {})


def test_readme_what_if_instrument_is_the_one_its_comment_names() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API") :]
    named = re.search(r"instrument (\d+) \(([A-Z0-9-]+)\)", section)
    assert named is not None, "the what-if comment names the instrument index and id"
    loaded = crossmargin.load_book(ROOT / "examples" / "desk.yaml")
    assert loaded.book.instruments.ids[int(named.group(1))] == named.group(2)


# ---- the serializer ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Inner:
    price_usd: float
    extra: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outer:
    name: str
    ratio: float | None
    items: tuple[_Inner, ...]
    by_underlying: dict[str, float | None]
    inlined: _Inner | None = field(default=None, metadata=INLINE_OMIT_NONE)


def test_to_json_rules() -> None:
    report = _Outer(
        name="a",
        ratio=math.nan,
        items=(_Inner(price_usd=math.inf), _Inner(price_usd=1.5, extra="x")),
        by_underlying={"BTC": np.float64(2.0), "ETH": None},  # type: ignore[dict-item]
        inlined=_Inner(price_usd=3.0),
    )
    assert to_json(report) == {
        "name": "a",
        "ratio": None,  # NaN → null
        "items": [{"price_usd": None}, {"price_usd": 1.5, "extra": "x"}],
        "by_underlying": {"BTC": 2.0, "ETH": None},
        "price_usd": 3.0,  # inlined into the parent
    }
    assert "price_usd" not in to_json(_Outer(name="b", ratio=1.0, items=(), by_underlying={}))
    json.dumps(to_json(report), allow_nan=False)


def test_to_json_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="no JSON form"):
        to_json(object())


def test_typed_report_serializes_to_the_cli_json() -> None:
    loaded = crossmargin.load_book(ROOT / "examples" / "desk.yaml")
    run = crossmargin.run_margin(loaded, account_ids=["near-liquidation"])
    report = crossmargin.build_margin_report(run)
    assert isinstance(report, crossmargin.MarginReport)
    (account,) = report.accounts
    assert isinstance(account, crossmargin.AccountReport) and account.levels is None
    assert crossmargin.to_json(report) == crossmargin.margin_report(run)
    leveled = crossmargin.build_margin_report(run, levels=crossmargin.price_levels(run))
    assert leveled.accounts[0].levels is not None
    assert leveled.accounts[0].levels.liquidation_price["BTC"] is not None
