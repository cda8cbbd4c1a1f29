"""The dashboard's browser assets are the pinned npm builds (frontend/package.json and its lock),
copied byte for byte by `npm run vendor` (frontend/README.md): a hand-edited or stale copy fails."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
COPIES = {
    "echarts": ROOT / "src" / "crossmargin" / "dashboard" / "static" / "vendor",
    "axe-core": ROOT / "tests" / "dashboard" / "vendor",
}


@pytest.mark.parametrize("package", sorted(COPIES))
def test_dashboard_vendored_asset_matches_the_pin(package: str) -> None:
    manifest = json.loads((COPIES[package] / f"{package}.manifest.json").read_text())
    declared = json.loads((FRONTEND / "package.json").read_text())
    pins = declared.get("dependencies", {}) | declared.get("devDependencies", {})
    locked = json.loads((FRONTEND / "package-lock.json").read_text())["packages"][f"node_modules/{package}"]
    assert pins[package] == manifest["version"] == locked["version"]  # exact pin, no range
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((COPIES[package] / name).read_bytes()).hexdigest() == digest, name


def test_dashboard_templates_load_nothing_from_another_origin() -> None:
    """No CDN at run time: every script and stylesheet a template names is served by the package."""
    templates = ROOT / "src" / "crossmargin" / "dashboard" / "templates"
    pages = sorted(templates.glob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, page.name
