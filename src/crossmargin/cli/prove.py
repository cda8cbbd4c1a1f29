"""crossmargin prove liabilities | inclusion | solvency, and crossmargin verify.

  prove liabilities BOOK --out DIR [--events LOG] [--hidden]   roots + totals per asset (public
                                                               roots.json) and the private trees
  prove inclusion --dir DIR --account ID [--asset A]           the account's paths, JSON
  prove solvency --dir DIR --book BOOK --custody FILE          reserves against liabilities
  verify PROOF --roots ROOTS                                   a path against a published root

`verify` runs `crossmargin.verifier`, the standalone module a user can copy and run alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from crossmargin.cli.render import fail
from crossmargin.errors import CrossMarginError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Proofs of liabilities and solvency.")


def _decimals(items: list[str]) -> dict[str, int]:
    chosen = {}
    for item in items:
        symbol, _, digits = item.partition("=")
        if not symbol or not digits.isdigit():
            raise InputError("--decimals", f"expected SYMBOL=DIGITS, got {item!r}")
        chosen[symbol] = int(digits)
    return chosen


@app.command("liabilities")
def liabilities(
    book: Annotated[
        Path, typer.Argument(help="Book file (YAML or JSON): its balances, or with --events its ledger")
    ],
    out: Annotated[Path, typer.Option(help="Directory for roots.json (public) and private/ (the venue's)")],
    events: Annotated[
        Path | None,
        typer.Option(help="A ledger's events.jsonl (crossmargin simulate --out): prove its exact balances"),
    ] = None,
    decimals: Annotated[
        list[str] | None, typer.Option(help="SYMBOL=DIGITS minor units (default: 6 for *USD*, else 8)")
    ] = None,
    secret_file: Annotated[Path | None, typer.Option(help="Hex secret (default: a new random one)")] = None,
    min_height: Annotated[
        int, typer.Option(help="Pad to at least 2**N leaves (hides the account count)")
    ] = 0,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="Hide sums: Pedersen commitments + range proofs")
    ] = False,
) -> None:
    """Build one Merkle-sum tree per asset; publish roots and totals."""
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.proofs import new_secret, read_secret, write_proof_dir
    from crossmargin.engine.solvency import build_trees, liabilities_of_book, liabilities_of_ledger

    try:
        loaded = load_book(book)
        chosen = _decimals(decimals or [])
        if events is None:
            owed = liabilities_of_book(loaded.book, chosen)
            source = {"book": str(book)}
        else:
            if chosen:
                raise InputError("--decimals", "a ledger's units are its own: --decimals applies to books")
            state, config = _replay(loaded, events)
            owed = liabilities_of_ledger(state, config)
            source = {"book": str(book), "ledger": str(events), "ledger_digest": state.digest()}
        secret = read_secret(secret_file) if secret_file else new_secret()
        trees = build_trees(owed, secret=secret, min_height=min_height, hidden=hidden)
        roots = write_proof_dir(
            out,
            trees=trees,
            decimals=dict(zip(owed.assets, owed.decimals, strict=True)),
            secret=secret,
            statement={"statement": "liabilities per asset, exact minor units", **source},
        )
    except CrossMarginError as error:
        fail(error)
    sys.stdout.write(json.dumps(roots, indent=2) + "\n")


def _replay(loaded: Any, events: Path) -> tuple[Any, Any]:
    """The ledger state after `events` (written by `crossmargin simulate --out` from this book:
    the log holds the import's deposits and transfers too), with the book's ledger config."""
    from crossmargin.adapters.eventlog import read_events
    from crossmargin.core.ledger.apply import replay
    from crossmargin.core.ledger.state import LedgerState
    from crossmargin.engine.simulation import simulation_from_book

    config = simulation_from_book(loaded).config  # the configuration the simulation ran with
    book = loaded.book
    prices = dict(zip(book.instruments.underlyings, loaded.market.index_price_usd.tolist(), strict=True))
    prices.update(zip(book.assets.symbols, loaded.market.asset_prices(book.assets).tolist(), strict=True))
    start = LedgerState.open(config, book.account_ids, prices)
    return replay(start, read_events(events), config), config


@app.command("inclusion")
def inclusion(
    directory: Annotated[Path, typer.Option("--dir", help="The directory `prove liabilities` wrote")],
    account: Annotated[str, typer.Option(help="Account id")],
    asset: Annotated[
        list[str] | None, typer.Option(help="Asset (default: every asset; with --book always every asset)")
    ] = None,
    no_range_proofs: Annotated[
        bool, typer.Option("--no-range-proofs", help="Hidden trees: leave out the range proofs")
    ] = False,
    book: Annotated[
        Path | None,
        typer.Option(
            help="The book: add a zero-knowledge proof that haircut collateral covers debt, bound to"
            " the account's leaf in every asset's published root"
        ),
    ] = None,
) -> None:
    """Print the account's inclusion proofs (one per asset) as JSON."""
    from crossmargin.adapters.proofs import PRIVATE, ROOTS, SECRET, read_roots, read_secret, read_tree
    from crossmargin.core.solvency import merkle_sum
    from crossmargin.core.solvency.encoding import BUNDLE_FORMAT
    from crossmargin.core.solvency.merkle_sum import MerkleSumTree

    try:
        roots = read_roots(directory / ROOTS)
        secret = read_secret(directory / PRIVATE / SECRET)
        # a debt-cover proof is bound to the account's leaf in every asset's tree: all of them
        chosen = list(roots["assets"]) if book is not None or not asset else asset
        trees = {symbol: read_tree(directory, symbol) for symbol in chosen}
        proofs = []
        for tree in trees.values():
            if isinstance(tree, MerkleSumTree):
                proofs.append(merkle_sum.inclusion_proof(tree, account_id=account, secret=secret))
            else:
                from crossmargin.core.solvency import committed

                proofs.append(
                    committed.inclusion_proof(
                        tree, account_id=account, secret=secret, with_range_proofs=not no_range_proofs
                    )
                )
        bundle: dict[str, Any] = {"format": BUNDLE_FORMAT, "account": account, "proofs": proofs}
        if book is not None:
            bundle["debt_cover"] = _debt_cover(book, account, secret, trees, roots)
    except CrossMarginError as error:
        fail(error)
    sys.stdout.write(json.dumps(bundle, indent=1) + "\n")


def _debt_cover(
    book: Path, account: str, secret: bytes, trees: dict[str, Any], roots: dict[str, Any]
) -> dict[str, Any]:
    """The account's debt-cover proof, bound to its leaf and the published root of every asset;
    refused if the book's balances are not the proven leaves (another book than the proof's)."""
    from crossmargin.adapters.files import load_book
    from crossmargin.core.solvency.committed import BoundLeaf, debt_cover_proof
    from crossmargin.engine.solvency import collateral_and_debt_micro_usd, liabilities_of_book

    file_book = load_book(book)
    loaded = file_book.book
    decimals = {a: int(r["decimals"]) for a, r in roots["assets"].items()}
    owed = liabilities_of_book(loaded, decimals)
    row = owed.account_ids.index(account) if account in owed.account_ids else -1
    if row < 0:
        raise InputError("--account", f"no account {account!r} in {book}")
    bound = []
    for asset, tree in trees.items():
        k = owed.assets.index(asset) if asset in owed.assets else -1
        proven = _leaf_units(tree, account)
        held = int(owed.units[row, k]) if k >= 0 else 0
        if held != proven:
            raise InputError(
                "--book",
                f"{account}'s {asset} liability in {book} is {held} units, the proven leaf {proven}:"
                " not the book the proofs were built from",
            )
        debt = int(owed.debt_units[row, k]) if k >= 0 else 0
        bound.append(
            BoundLeaf(
                asset=asset,
                root_hash=bytes.fromhex(roots["assets"][asset]["root_hash"]),
                leaf_hash=tree.leaf_hash_of(account),
                debt_units=debt,
            )
        )
    collateral, debt_usd = collateral_and_debt_micro_usd(loaded, file_book.market, account)
    return debt_cover_proof(
        secret, account_id=account, collateral_micro_usd=collateral, debt_micro_usd=debt_usd, bound=bound
    )


def _leaf_units(tree: Any, account: str) -> int:
    from crossmargin.core.solvency.merkle_sum import MerkleSumTree

    if isinstance(tree, MerkleSumTree):
        return int(tree.sums[0][tree.position[tree.row(account)]])
    return int(tree.values[0][int(tree.position[tree.index[account]])]) if account in tree.index else -1


@app.command("solvency")
def solvency(
    directory: Annotated[Path, typer.Option("--dir", help="The directory `prove liabilities` wrote")],
    book: Annotated[Path, typer.Option(help="The book (asset prices and haircut schedules)")],
    custody: Annotated[Path, typer.Option(help="Custody file: locations and reserves (docs/solvency.md)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Reserves per asset and location against the published liabilities: coverage per asset
    and an overall ratio with the engine's haircuts."""
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.proofs import ROOTS, read_roots
    from crossmargin.adapters.proofs.custody import read_custody
    from crossmargin.cli.solvency_render import render_solvency
    from crossmargin.engine.custody import solvency_of

    try:
        loaded = load_book(book)
        roots = read_roots(directory / ROOTS)
        plan = read_custody(custody, loaded.book)
        report = solvency_of(roots, plan, loaded.book, loaded.market)
    except CrossMarginError as error:
        fail(error)
    render_solvency(report, as_json=as_json)


@app.command("custody")
def custody_command(
    book: Annotated[Path, typer.Argument(help="Book file (YAML or JSON)")],
    custody: Annotated[Path, typer.Option(help="Custody file: locations and holdings (docs/solvency.md)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Per account: collateral USD by location, equity after mobilisation haircuts, and equity
    under each location's failure (cross margin)."""
    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.proofs.custody import read_custody
    from crossmargin.cli.solvency_render import render_custody
    from crossmargin.core.margin.cross import CrossMargin
    from crossmargin.engine.custody import location_report

    try:
        loaded = load_book(book)
        plan = read_custody(custody, loaded.book)
        report = location_report(loaded.book, loaded.market, plan, CrossMargin())
    except CrossMarginError as error:
        fail(error)
    render_custody(report, as_json=as_json)


def verify(
    proof: Annotated[Path, typer.Argument(help="Proof JSON (one proof, or `prove inclusion`'s bundle)")],
    roots: Annotated[Path, typer.Option(help="The venue's published roots.json")],
) -> None:
    """Check inclusion proofs against published roots (standalone verifier, no other data)."""
    from crossmargin import verifier

    try:
        document = json.loads(proof.read_text(encoding="utf-8"))
        published = json.loads(roots.read_text(encoding="utf-8"))
        if isinstance(document, dict) and ("proofs" in document or "format" not in document):
            verdicts = verifier.verify_bundle(document, published)
        else:
            verdicts = [verifier.verify_inclusion(document, published)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.stderr.write(f"error: {proof}: {error}\n")
        raise typer.Exit(2) from None
    for v in verdicts:
        sys.stdout.write(
            json.dumps(
                {
                    "valid": v.valid,
                    "asset": v.asset,
                    "account": v.account,
                    "amount_units": v.amount_units,
                    "reason": v.reason,
                }
            )
            + "\n"
        )
    if not all(v.valid for v in verdicts):
        raise typer.Exit(1)
