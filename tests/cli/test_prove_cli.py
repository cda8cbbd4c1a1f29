"""crossmargin prove liabilities | inclusion | solvency | custody, and crossmargin verify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from crossmargin.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
DESK = ROOT / "examples" / "desk.yaml"
CUSTODY = ROOT / "examples" / "custody.yaml"
VERIFIER = ROOT / "src" / "crossmargin" / "verifier.py"


def _prove(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "published"
    result = runner.invoke(app, ["prove", "liabilities", str(DESK), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out


def test_solvency_cli_publishes_exact_totals_and_every_path_verifies(tmp_path):
    out = _prove(tmp_path, "--min-height", "5")
    roots = json.loads((out / "roots.json").read_text())
    # desk.yaml: USDC 150,000 + 100,000 held (the 40,000 borrowed is a debt, not a liability);
    # BTC 5.0 + 4.0 + 0.8; ETH 60 + 50; USDT 27,500
    assert {a: r["total_units"] for a, r in roots["assets"].items()} == {
        "USDC": 250_000 * 10**6,
        "USDT": 27_500 * 10**6,
        "BTC": 980_000_000,
        "ETH": 110 * 10**8,
    }
    assert all(r["height"] == 5 for r in roots["assets"].values())
    assert "secret" not in (out / "roots.json").read_text()
    for account in ("basis-trader", "vol-seller", "directional", "near-liquidation"):
        proof = runner.invoke(app, ["prove", "inclusion", "--dir", str(out), "--account", account])
        assert proof.exit_code == 0, proof.output
        path = tmp_path / f"{account}.json"
        path.write_text(proof.output)
        checked = runner.invoke(app, ["verify", str(path), "--roots", str(out / "roots.json")])
        assert checked.exit_code == 0, checked.output
        assert checked.output.count('"valid": true') == 4


def test_solvency_standalone_verifier_script_rejects_a_tampered_amount(tmp_path):
    out = _prove(tmp_path)
    bundle = json.loads(
        runner.invoke(
            app, ["prove", "inclusion", "--dir", str(out), "--account", "directional", "--asset", "ETH"]
        ).output
    )
    proof = bundle["proofs"][0]
    assert proof["amount_units"] == 50 * 10**8
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(proof))
    bad.write_text(json.dumps(proof | {"amount_units": 51 * 10**8}))
    # run as a copied file with no crossmargin on the path: it needs nothing of the package
    run = [sys.executable, "-I", str(VERIFIER)]
    assert subprocess.run([*run, str(good), str(out / "roots.json")], capture_output=True).returncode == 0
    rejected = subprocess.run([*run, str(bad), str(out / "roots.json")], capture_output=True, text=True)
    assert rejected.returncode == 1 and '"valid": false' in rejected.stdout


def test_solvency_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    result = runner.invoke(
        app, ["prove", "liabilities", str(DESK), "--out", str(tmp_path / "x"), "--decimals", "BTC=eight"]
    )
    assert result.exit_code == 2 and "--decimals" in result.output
    assert not (tmp_path / "x").exists()
    out = _prove(tmp_path)
    missing = runner.invoke(app, ["prove", "inclusion", "--dir", str(out), "--account", "nobody"])
    assert missing.exit_code == 2 and "nobody" in missing.output
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert runner.invoke(app, ["verify", str(garbage), "--roots", str(out / "roots.json")]).exit_code == 2


def test_solvency_cli_report_against_custody_reserves(tmp_path):
    out = _prove(tmp_path)
    result = runner.invoke(
        app,
        ["prove", "solvency", "--dir", str(out), "--book", str(DESK), "--custody", str(CUSTODY), "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    coverage = {a["asset"]: a["coverage"] for a in report["assets"]}
    assert coverage["BTC"] == 1_000_000_000 / 980_000_000
    assert coverage["ETH"] == 80 / 110
    assert report["shortfall_assets"] == ["ETH"]


def test_cross_chain_cli_custody_report(tmp_path):
    result = runner.invoke(app, ["prove", "custody", str(DESK), "--custody", str(CUSTODY), "--json"])
    assert result.exit_code == 0, result.output
    accounts = {a["account"]: a for a in json.loads(result.output)["accounts"]}
    directional = accounts["directional"]
    assert directional["collateral_usd_by_location"]["arbitrum-bridge"] == 20 * 2978.73
    assert (
        directional["failure_equity_usd"]["arbitrum-bridge"]
        < directional["mobilised_equity_usd"]
        < directional["equity_usd"]
    )
    bad = tmp_path / "custody.yaml"
    bad.write_text("holdings:\n  - {account: ghost, asset: BTC, location: venue, amount: 1}\n")
    failed = runner.invoke(app, ["prove", "custody", str(DESK), "--custody", str(bad)])
    assert failed.exit_code == 2 and "ghost" in failed.output


def test_solvency_cli_ledger_events_prove_the_ledgers_units(tmp_path):
    prices = tmp_path / "path.csv"
    prices.write_text("time,BTC,ETH\n2025-12-30T18:31:15Z,80000,2500\n")
    sim = runner.invoke(app, ["simulate", str(DESK), "--prices", str(prices), "--out", str(tmp_path / "sim")])
    assert sim.exit_code == 0, sim.output
    out = _prove(tmp_path, "--events", str(tmp_path / "sim" / "events.jsonl"))
    roots = json.loads((out / "roots.json").read_text())
    assert "ledger_digest" in roots
    # the simulation imports deposits rounded down: 9.8 BTC in total, exact
    assert roots["assets"]["BTC"]["total_units"] <= 980_000_000


def test_solvency_worked_example_root_is_reproducible(tmp_path):
    """docs/solvency.md's worked example: the same secret gives the published ETH root."""
    secret = tmp_path / "secret.hex"
    secret.write_text("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n")
    out = _prove(tmp_path, "--secret-file", str(secret), "--min-height", "4")
    eth = json.loads((out / "roots.json").read_text())["assets"]["ETH"]
    assert eth["root_hash"] == "c830b6578953393b600a4e0d81033bb2d15e3994d4de68664cd6280c50ec5615"
    assert eth["total_units"] == 11_000_000_000


def test_range_proof_cli_debt_cover_for_a_borrower(tmp_path):
    """desk.yaml's `directional` borrowed 40,000 USDC against 50 ETH: its proof shows the
    haircut ETH covers the weighted debt without showing either to anyone else."""
    out = _prove(tmp_path)
    result = runner.invoke(
        app,
        [
            "prove",
            "inclusion",
            "--dir",
            str(out),
            "--account",
            "directional",
            "--asset",
            "USDC",
            "--book",
            str(DESK),
        ],
    )
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.output)
    assert bundle["format"] == "crossmargin-proof-bundle-v2"
    assert bundle["debt_cover"]["debt"]["micro_usd"] == 40_000 * 1.02 * 10**6  # liability weight 1.02
    # bound to every asset's leaf, so every asset's proof is in the bundle despite --asset
    assert [p["asset"] for p in bundle["proofs"]] == ["USDC", "USDT", "BTC", "ETH"]
    bound = {e["asset"]: e for e in bundle["debt_cover"]["liabilities"]}
    assert bound["USDC"]["debt_units"] == 40_000 * 10**6 and bound["ETH"]["debt_units"] == 0
    path = tmp_path / "directional.json"
    path.write_text(result.output)
    roots = out / "roots.json"
    checked = runner.invoke(app, ["verify", str(path), "--roots", str(roots)])
    assert checked.exit_code == 0, checked.output
    assert "haircut collateral covers debt, bound to the published roots" in checked.output
    # the standalone script checks the bundle too, and names a tampered debt
    script = [sys.executable, "-I", str(VERIFIER)]
    assert subprocess.run([*script, str(path), str(roots)], capture_output=True).returncode == 0
    bound["USDC"]["debt_units"] = 0  # the borrowing left out of the statement
    path.write_text(json.dumps(bundle))
    rejected = subprocess.run([*script, str(path), str(roots)], capture_output=True, text=True)
    assert rejected.returncode == 1
    assert "range proof does not hold for these roots, leaves and debts" in rejected.stdout
    # an unknown version is refused with its name, exit 2
    path.write_text(json.dumps(bundle | {"format": "crossmargin-proof-bundle-v9"}))
    refused = runner.invoke(app, ["verify", str(path), "--roots", str(roots)])
    assert (
        refused.exit_code == 2
        and "unknown proof bundle format 'crossmargin-proof-bundle-v9'" in refused.output
    )


def test_range_proof_cli_debt_cover_refuses_another_book(tmp_path):
    """The cover values the book's balances: a book whose balances are not the proven leaves
    (here vol-seller's ETH changed) is refused rather than proven against the wrong leaves."""
    out = _prove(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(DESK.read_text().replace("{BTC: 4.0, ETH: 60.0,", "{BTC: 4.0, ETH: 61.0,", 1))
    assert other.read_text() != DESK.read_text()
    result = runner.invoke(
        app, ["prove", "inclusion", "--dir", str(out), "--account", "vol-seller", "--book", str(other)]
    )
    assert result.exit_code == 2
    assert "not the book the proofs were built from" in result.output


def test_solvency_cli_refuses_to_overwrite_a_foreign_directory(tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    result = runner.invoke(app, ["prove", "liabilities", str(DESK), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not a proof directory" in result.output
    assert keep.read_text() == "mine"
    out = _prove(tmp_path / "again")  # a previous proof directory is replaced whole
    _prove(tmp_path / "again")
    assert (out / "roots.json").is_file()
