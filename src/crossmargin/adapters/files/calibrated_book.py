"""A book file rewritten with calibrated risk parameters (`crossmargin calibrate --write-book`).

The source document is read as it is (`documents.read_document`, the loader's own parser) and
only these keys change, for every asset and underlying the calibration covers
(engine.calibration, docs/calibration.md):

  assets[s].haircut_tiers      the first tier's haircut becomes the calibrated static haircut h;
                               a larger balance's tier keeps its own haircut if above h, else h
                               (haircuts never decrease with size, docs/book-format.md)
  instruments[i].margin        futures and perpetuals on s: notional tiers, one per calibrated
                               tier (floor 0, then each tier's ceiling, whole USD), IM rate the
                               tier's covered rate (price loss + liquidation impact at its
                               ceiling), MM rate the calibrated MM rate (capped at the tier's IM);
                               without tiers (no volume data) the flat IM and MM rates. The old
                               schedule, and its rate_per_unit, are replaced.

Spot instruments, options (their own margin rule) and uncalibrated assets are left as they are;
relative `positions_file` / `balances_file` paths are rewritten relative to the new file. The
result is validated by the normal loader (`load_book`) before it is moved into place, and an
existing file is never overwritten.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crossmargin.adapters.files.documents import read_document
from crossmargin.adapters.files.loader import load_book
from crossmargin.adapters.files.staging import cannot_write
from crossmargin.core.calibration import AssetCalibration
from crossmargin.engine.calibration import CalibrationReport
from crossmargin.engine.inputs import LoadedBook
from crossmargin.errors import InputError

DELTA_ONE_KINDS = ("future", "perpetual")
TABLE_KEYS = ("positions_file", "balances_file")


@dataclass(frozen=True, slots=True)
class WrittenBook:
    """What `write_calibrated_book` changed: asset symbols and instrument ids, and the loaded book."""

    path: Path
    assets: tuple[str, ...]
    instruments: tuple[str, ...]
    loaded: LoadedBook


def write_calibrated_book(source: Path, out: Path, report: CalibrationReport) -> WrittenBook:
    """Write `source` with `report`'s parameters to `out` (module docstring). InputError("--write-book")
    if `out` exists or the rewritten book does not load; nothing is left behind then."""
    if out.exists():
        raise InputError("--write-book", f"{out} exists; refusing to overwrite it")
    raw = read_document(source)
    if not isinstance(raw, Mapping):
        raise InputError("--book", f"{source}: not a book document")
    document = copy.deepcopy(dict(raw))
    calibrated = {a.symbol: a for a in report.assets}
    assets = _rewrite_assets(document, calibrated)
    instruments = _rewrite_instruments(document, calibrated)
    _rebase_tables(document, source, out)
    text = _dump(document, out, _provenance(report, source))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix or ".yaml"
        )
    except OSError as error:
        raise cannot_write(out, error, "--write-book") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        loaded = load_book(temporary)  # the normal loader: a book it refuses is never written
        os.link(temporary, out)  # atomic, and fails if `out` appeared meanwhile (no overwrite)
    except FileExistsError:
        raise InputError("--write-book", f"{out} exists; refusing to overwrite it") from None
    except OSError as error:  # writable when checked before the calibration, not now
        raise cannot_write(out, error, "--write-book") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return WrittenBook(path=out, assets=assets, instruments=instruments, loaded=loaded)


def _rewrite_assets(document: dict[str, Any], calibrated: Mapping[str, AssetCalibration]) -> tuple[str, ...]:
    changed = []
    for asset in document.get("assets") or []:
        found = calibrated.get(str(asset.get("symbol"))) if isinstance(asset, dict) else None
        if found is None:
            continue
        h = float(found.haircut)
        tiers = asset.get("haircut_tiers") or [{"above": 0, "haircut": 0.0}]
        asset["haircut_tiers"] = [
            {**tier, "haircut": h if n == 0 else max(float(tier.get("haircut", 0.0)), h)}
            for n, tier in enumerate(tiers)
        ]
        changed.append(found.symbol)
    return tuple(changed)


def _rewrite_instruments(
    document: dict[str, Any], calibrated: Mapping[str, AssetCalibration]
) -> tuple[str, ...]:
    changed = []
    for instrument in document.get("instruments") or []:
        if not isinstance(instrument, dict) or instrument.get("kind") not in DELTA_ONE_KINDS:
            continue
        found = calibrated.get(str(instrument.get("underlying")))
        if found is None:
            continue
        instrument["margin"] = margin_schedule(found)
        changed.append(str(instrument.get("id")))
    return tuple(changed)


def margin_schedule(asset: AssetCalibration) -> dict[str, Any]:
    """The book's `margin:` mapping for a delta-one instrument on a calibrated asset."""
    mm = float(asset.maintenance_rate)
    if not asset.tiers:
        im = float(asset.initial_rate)
        return {"initial_rate": im, "maintenance_rate": min(mm, im)}
    floors = [0.0] + [round(t.ceiling_usd) for t in asset.tiers[:-1]]
    return {
        "tiers": [
            {
                "above_notional_usd": floor,
                "initial_rate": float(t.initial_rate),
                "maintenance_rate": min(mm, float(t.initial_rate)),
            }
            for floor, t in zip(floors, asset.tiers, strict=True)
        ]
    }


def _rebase_tables(document: dict[str, Any], source: Path, out: Path) -> None:
    """Relative table paths point at the same files from the new book's folder."""
    for key in TABLE_KEYS:
        value = document.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            target = (source.parent / value).resolve()
            document[key] = os.path.relpath(target, out.parent.resolve())


def _provenance(report: CalibrationReport, source: Path) -> str:
    p, w = report.params, report.windows
    symbols = ", ".join(a.symbol for a in report.assets) or "none"
    return (
        f"{source.name} with haircuts and delta-one IM/MM schedules of {symbols} from crossmargin "
        f"calibrate: {p.coverage * 100:g} % of {p.horizon_days}-day losses (MM {p.liquidation_days}-day), "
        f"fit {w.fit_first}..{w.fit_last}, test {w.test_first}..{w.test_last} (docs/calibration.md)"
    )


def _dump(document: dict[str, Any], out: Path, provenance: str) -> str:
    if out.suffix.lower() == ".json":  # JSON has no comments: the provenance stays in the CLI output
        return json.dumps(document, indent=2, default=str) + "\n"
    return f"# {provenance}\n" + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
