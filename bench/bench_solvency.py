"""Proof-of-liabilities, range-proof and private-margin benchmark.

    python bench/bench_solvency.py [--accounts 1000000] [--assets 5] [--workers 2]
                                   [--hidden-accounts 1024] [--mpc-accounts 4]
                                   [--mpc-preset deribit-pm] [--only-mpc]

0. A/B, one process, --ab-accounts accounts x --assets assets, interleaved asset by asset: the
   build before batching (`legacy_build`: one hashlib call per hash) against `build_tree` (one
   native call per level), and the floors: (hash calls the build makes) x (one hashlib SHA-256
   call on an 81-byte message), and x (one SHA-256 of the batched native call).
1. Merkle-sum trees: --accounts accounts x --assets assets (exact u64 units), one tree per asset,
   built in --workers processes; compared with the hashlib floor.
2. Per-user inclusion proofs: JSON size, generation and verification time (standalone verifier),
   sums in the clear; and with hidden sums (Pedersen commitments, tree of --hidden-accounts)
   with and without the 64-bit range proofs.
3. Private margin: a three-party MPyC run (-M3, localhost) on --mpc-accounts random accounts of
   the example desk (options included), cross margin and the --mpc-preset portfolio requirement
   (default deribit-pm) on the shares; seconds per account against the same formulas in
   plaintext and against the engine's per-account cost. --only-mpc runs this section alone.

Anchors (their hardware, not this machine): Summa v1 (PSE, github.com/summa-dev/summa-solvency,
2^20 users: tree 24.5 s on 32 cores, inclusion proof 403 ms, verify 4 ms, 1.6 KB; a zk-SNARK
proof hiding sibling sums); DAPOL+ (Ji & Chalkias 2021, github.com/silversixpence-crypto/dapol:
4.5 KB and 0.39 s per inclusion proof at height 32, aggregated Bulletproofs). The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from crossmargin import verifier
from crossmargin.core.solvency import hashing, merkle_sum
from machine import cpu_model

SECRET = bytes(range(32))


def hash_floor_seconds(n: int = 200_000) -> float:
    """Seconds per hashlib SHA-256 call on an 81-byte message (a parent's), best of 3."""
    data = memoryview(np.random.default_rng(0).integers(0, 256, n * 81, dtype=np.uint8).tobytes())
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, n * 81, 81):
            hashlib.sha256(data[i : i + 81]).digest()
        best = min(best, time.perf_counter() - start)
    return float(best / n)


def legacy_build(asset: str, ids: list[str], amounts: np.ndarray, secret: bytes) -> bytes:
    """The build before batching (commit 06db938), kept here as the A/B baseline: per account a
    keyed-BLAKE2b salt and a SHA-256 leaf, per parent a SHA-256, one hashlib call each (over
    slices of one numpy buffer per level). Same tree shape and permutation; returns the root."""
    height = merkle_sum.tree_height(len(ids), 0)
    order = merkle_sum.leaf_positions(secret, asset, height=height)
    capacity = 1 << height
    leaves = np.empty((capacity, 32), dtype=np.uint8)
    sums = np.zeros(capacity, dtype=np.uint64)
    key_prefix = b"salt" + asset.encode() + b"\x00"
    blake2b, sha256 = hashlib.blake2b, hashlib.sha256
    amount_bytes = amounts.astype(">u8").tobytes()
    digests = b"".join(
        [
            sha256(
                b"\x00"
                + blake2b(key_prefix + encoded, key=secret, digest_size=32).digest()
                + amount_bytes[8 * row : 8 * row + 8]
                + encoded
            ).digest()
            for row, encoded in enumerate(a.encode() for a in ids)
        ]
    )
    leaves[order[: len(ids)]] = np.frombuffer(digests, np.uint8).reshape(-1, 32)
    sums[order[: len(ids)]] = amounts
    padding = order[len(ids) :]
    pad_prefix = b"pad" + asset.encode() + b"\x00"
    fill = b"".join(
        [
            sha256(
                b"\x00"
                + blake2b(pad_prefix + p.to_bytes(8, "big"), key=secret, digest_size=32).digest()
                + bytes(8)
            ).digest()
            for p in padding.tolist()
        ]
    )
    leaves[padding] = np.frombuffer(fill, np.uint8).reshape(-1, 32)
    hashes = leaves
    for _ in range(height):
        m = hashes.shape[0] // 2
        message = np.empty((m, 81), dtype=np.uint8)
        message[:, 0] = 1
        message[:, 1:33] = hashes[0::2]
        message[:, 33:41] = sums[0::2].astype(">u8").view(np.uint8).reshape(m, 8)
        message[:, 41:73] = hashes[1::2]
        message[:, 73:] = sums[1::2].astype(">u8").view(np.uint8).reshape(m, 8)
        view = memoryview(message.tobytes())
        hashes = np.frombuffer(
            b"".join([sha256(view[i : i + 81]).digest() for i in range(0, m * 81, 81)]), np.uint8
        ).reshape(m, 32)
        sums = sums[0::2] + sums[1::2]
    root: bytes = hashes[0].tobytes()
    return root


def native_hash_seconds(n: int = 200_000) -> float:
    """Seconds per SHA-256 of an 81-byte message in the batched native call, best of 3."""
    messages = np.random.default_rng(0).integers(0, 256, (n, 81), dtype=np.uint8)
    hashing.sha256_rows(messages[:2], native=True)  # numba's one-time load, not timed
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        hashing.sha256_rows(messages, native=True)
        best = min(best, time.perf_counter() - start)
    return float(best / n)


def bench_ab(n_accounts: int, n_assets: int) -> dict[str, object]:
    """Before (per-hash hashlib, `legacy_build`) and after (`merkle_sum.build_tree`), the same
    accounts, one process, interleaved asset by asset so load on the machine hits both alike."""
    ids = [f"acct-{i:07d}" for i in range(n_accounts)]
    hashing.sha256_rows(np.zeros((2, 81), np.uint8), native=True)  # numba's one-time load, not timed
    before, after, before_cpu, after_cpu = [], [], [], []
    for k in range(n_assets):
        amounts = np.random.default_rng(k).integers(0, 10**12, n_accounts, dtype=np.int64)
        start, cpu = time.perf_counter(), time.process_time()
        legacy_build(f"ASSET{k}", ids, amounts, SECRET)
        before.append(time.perf_counter() - start)
        before_cpu.append(time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
        tree = merkle_sum.build_tree(asset=f"ASSET{k}", account_ids=ids, amount_units=amounts, secret=SECRET)
        after.append(time.perf_counter() - start)
        after_cpu.append(time.process_time() - cpu)
        assert tree.total_units == sum(amounts.tolist())
    height = merkle_sum.tree_height(n_accounts, 0)
    calls = n_assets * (2 * n_accounts + 2 * ((1 << height) - n_accounts) + (1 << height) - 1)
    return {
        "accounts": n_accounts,
        "assets": n_assets,
        "height": height,
        "hash_calls": calls,
        "before_seconds": float(np.sum(before)),
        "after_seconds": float(np.sum(after)),
        "speedup": float(np.sum(before) / np.sum(after)),
        "before_cpu_seconds": float(np.sum(before_cpu)),  # CPU time: robust to the shared cores
        "after_cpu_seconds": float(np.sum(after_cpu)),
        "speedup_cpu": float(np.sum(before_cpu) / np.sum(after_cpu)),
    }


def _build(args: tuple[str, int, int]) -> tuple[str, float, int, int, float]:
    asset, n_accounts, seed = args
    amounts = np.random.default_rng(seed).integers(0, 10**12, n_accounts, dtype=np.int64)
    ids = [f"acct-{i:07d}" for i in range(n_accounts)]
    start, cpu = time.perf_counter(), time.process_time()
    tree = merkle_sum.build_tree(asset=asset, account_ids=ids, amount_units=amounts, secret=SECRET)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert tree.total_units == sum(amounts.tolist())
    return asset, seconds, tree.height, tree.total_units, cpu


def bench_trees(n_accounts: int, n_assets: int, workers: int) -> dict[str, object]:
    assets = [f"ASSET{k}" for k in range(n_assets)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        built = list(pool.map(_build, [(a, n_accounts, k) for k, a in enumerate(assets)]))
    wall = time.perf_counter() - start
    height = built[0][2]
    calls = n_assets * (
        2 * n_accounts + 2 * ((1 << height) - n_accounts) + (1 << height) - 1
    )  # salts+leaves, padding fillers+leaves, parents
    return {
        "accounts": n_accounts,
        "assets": n_assets,
        "workers": workers,
        "height": height,
        "build_seconds_wall": wall,
        "build_seconds_per_asset": [b[1] for b in built],
        "build_cpu_seconds_per_asset": [b[4] for b in built],  # wall >> CPU: the cores are shared
        "hash_calls": calls,
    }


def bench_plain_proofs(n_accounts: int, samples: int = 200) -> dict[str, float]:
    amounts = np.random.default_rng(7).integers(0, 10**12, n_accounts, dtype=np.int64)
    ids = [f"acct-{i:07d}" for i in range(n_accounts)]
    tree = merkle_sum.build_tree(asset="BTC", account_ids=ids, amount_units=amounts, secret=SECRET)
    roots = {"assets": {"BTC": tree.root()}}
    chosen = np.random.default_rng(1).choice(n_accounts, samples, replace=False)
    start = time.perf_counter()
    tree.row(ids[0])  # the id -> row index, built on the first lookup (once per loaded tree)
    index_seconds = time.perf_counter() - start
    start = time.perf_counter()
    proofs = [merkle_sum.inclusion_proof(tree, account_id=ids[i], secret=SECRET) for i in chosen]
    generate = (time.perf_counter() - start) / samples
    start = time.perf_counter()
    assert all(verifier.verify_inclusion(p, roots).valid for p in proofs)
    verify = (time.perf_counter() - start) / samples
    size = float(np.mean([len(json.dumps(p)) for p in proofs]))
    return {
        "height": tree.height,
        "bytes": size,
        "index_seconds": index_seconds,
        "generate_ms": 1e3 * generate,
        "verify_ms": 1e3 * verify,
    }


def bench_hidden(n_accounts: int, samples: int = 3) -> dict[str, object]:
    from crossmargin.core.solvency import committed

    amounts = np.random.default_rng(3).integers(0, 10**12, n_accounts, dtype=np.int64)
    ids = [f"acct-{i:07d}" for i in range(n_accounts)]
    start = time.perf_counter()
    tree = committed.build_committed_tree(asset="BTC", account_ids=ids, amount_units=amounts, secret=SECRET)
    build = time.perf_counter() - start
    out: dict[str, object] = {
        "accounts": n_accounts,
        "height": tree.height,
        "build_seconds": build,
        "build_ms_per_leaf": 1e3 * build / (1 << tree.height),
    }
    for label, with_range in (("without_range_proofs", False), ("with_range_proofs", True)):
        gen, ver, size = [], [], []
        for i in range(samples):
            start = time.perf_counter()
            proof = committed.inclusion_proof(
                tree, account_id=ids[i], secret=SECRET, with_range_proofs=with_range
            )
            gen.append(time.perf_counter() - start)
            if not with_range:  # the verifier requires range proofs: check the rest by hand
                size.append(len(json.dumps(proof)))
                continue
            start = time.perf_counter()
            assert verifier.verify_inclusion(proof, tree.root()).valid
            ver.append(time.perf_counter() - start)
            size.append(len(json.dumps(proof)))
        out[label] = {
            "generate_ms": 1e3 * float(np.mean(gen)),
            "verify_ms": 1e3 * float(np.mean(ver)) if ver else None,
            "json_bytes": float(np.mean(size)),
            "binary_bytes_estimate": None,
        }
    n_proofs = tree.height + 1
    out["with_range_proofs"]["binary_bytes_estimate"] = n_proofs * (5126 + 33 + 32) + 32 * 3  # type: ignore[index]
    out["without_range_proofs"]["binary_bytes_estimate"] = n_proofs * (33 + 32) + 32 * 3  # type: ignore[index]
    return out


def bench_mpc(n_accounts: int, preset: str) -> dict[str, float | int | str]:
    """Three-party margin checks (cross + the preset's portfolio requirement) on random accounts
    of the example desk (options, inverse and linear delta-one, tiered schedules) against the
    same formulas in plaintext (numpy, one account) and the engine (cross and portfolio margin
    over a 20,000-account book of the same kind, per account)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.adapters.mpc.test_private_margin import random_book

    from crossmargin.adapters.mpc import run_parties
    from crossmargin.core.margin.cross import CrossMargin
    from crossmargin.core.margin.portfolio import PortfolioMargin
    from crossmargin.core.margin.presets import portfolio_preset
    from crossmargin.engine.private_margin import account_secrets, plaintext_margin, public_data

    params = portfolio_preset(preset)
    book, market = random_book(11, n_accounts=n_accounts)
    public = public_data(book, market, params)
    accounts = [account_secrets(book, row) for row in range(book.n_accounts)]
    seconds: dict[bool, list[float]] = {False: [], True: []}  # per account, in-session
    walls: dict[bool, list[float]] = {False: [], True: []}
    alone: list[float] = []
    for _ in range(2):  # A/B interleaved: random bits by two parties' inputs (default) or by PRSS
        for prss in (False, True):
            with tempfile.TemporaryDirectory() as workdir:
                result = run_parties(public, accounts, Path(workdir), prss=prss)
            seconds[prss] += [a["seconds"] for a in result["accounts"]]
            walls[prss].append(float(result["wall_seconds"]))
        for account in accounts[:2]:  # and the batch against one account per session
            with tempfile.TemporaryDirectory() as workdir:
                alone.append(run_parties(public, [account], Path(workdir))["accounts"][0]["seconds"])
    per_account = float(np.median(seconds[False]))
    start = time.perf_counter()
    for n in range(200):
        plaintext_margin(public, accounts[n % len(accounts)])
    plain = (time.perf_counter() - start) / 200
    big, big_market = random_book(12, n_accounts=20_000)
    model = PortfolioMargin(params)
    model.evaluate(big, big_market)  # compile and cache the kernel first
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        CrossMargin().evaluate(big, big_market)
        model.evaluate(big, big_market)
        runs.append(time.perf_counter() - start)
    engine = float(np.median(runs)) / big.n_accounts
    return {
        "preset": preset,
        "accounts": len(accounts),
        "instruments": book.instruments.n_instruments,
        "options": int(book.instruments.is_option.sum()),
        "scenarios": int(public.loss_coef_usd.shape[0]),
        "mpc_seconds_per_account": per_account,
        "mpc_prss_seconds_per_account": float(np.median(seconds[True])),
        "mpc_one_account_per_session_seconds": float(np.median(alone)),
        "mpc_wall_seconds": float(np.median(walls[False])),
        "mpc_prss_wall_seconds": float(np.median(walls[True])),
        "plaintext_seconds_per_account": plain,
        "engine_seconds_per_account": engine,
        "slowdown_vs_plaintext": per_account / plain,
        "slowdown_vs_engine": per_account / engine,
    }


def print_mpc(mpc: dict[str, float | int | str]) -> None:
    print(
        f"private margin (3 parties, {mpc['preset']}, {mpc['instruments']} instruments of which "
        f"{mpc['options']} options, {mpc['scenarios']} scenarios): {mpc['mpc_seconds_per_account']:.2f} s "
        f"per account (batch of {mpc['accounts']}, median of 2; interleaved: with PRSS random bits "
        f"{mpc['mpc_prss_seconds_per_account']:.2f} s, one account per session "
        f"{mpc['mpc_one_account_per_session_seconds']:.2f} s) vs the same formulas in plaintext "
        f"{float(mpc['plaintext_seconds_per_account']) * 1e6:.0f} µs (x{mpc['slowdown_vs_plaintext']:,.0f}) "
        f"vs the engine's cross + portfolio margin {float(mpc['engine_seconds_per_account']) * 1e6:.2f} "
        f"µs/account on 20,000 accounts (x{mpc['slowdown_vs_engine']:,.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--assets", type=int, default=5)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--ab-accounts", type=int, default=100_000)
    parser.add_argument("--hidden-accounts", type=int, default=1024)
    parser.add_argument("--mpc-accounts", type=int, default=4)
    parser.add_argument("--mpc-preset", default="deribit-pm")
    parser.add_argument("--only-mpc", action="store_true", help="section 3 alone")
    args = parser.parse_args()
    if args.only_mpc:
        mpc = bench_mpc(args.mpc_accounts, args.mpc_preset)
        print_mpc(mpc)
        print(json.dumps({"cpu": cpu_model(), "load_average": os.getloadavg()[0], "mpc": mpc}))
        return
    print(f"crossmargin bench_solvency · CPU {cpu_model()} · {os.cpu_count()} cores (shared)")
    floor = hash_floor_seconds()
    print(f"floor: one hashlib SHA-256 call on 81 bytes = {floor * 1e6:.3f} µs")
    native = native_hash_seconds()
    ab = bench_ab(args.ab_accounts, args.assets)
    ab_floor = ab["hash_calls"] * floor  # type: ignore[operator]
    ab_native_floor = ab["hash_calls"] * native  # type: ignore[operator]
    print(
        f"A/B trees, {args.ab_accounts:,} accounts x {args.assets} assets, one process: before (hashlib per "
        f"hash) {ab['before_seconds']:.2f} s, after (batched native) {ab['after_seconds']:.2f} s, "
        f"x{ab['speedup']:.1f} (CPU {ab['before_cpu_seconds']:.2f} -> {ab['after_cpu_seconds']:.2f} s, "
        f"x{ab['speedup_cpu']:.1f}); floor {ab['hash_calls']:,} calls x hashlib {ab_floor:.2f} s, "
        f"x native {native * 1e6:.3f} µs = {ab_native_floor:.2f} s"
    )
    trees = bench_trees(args.accounts, args.assets, args.workers)
    floor_seconds = trees["hash_calls"] * floor / args.workers  # type: ignore[operator]
    cpu: list[float] = trees["build_cpu_seconds_per_asset"]  # type: ignore[assignment]
    print(
        f"trees: {args.accounts:,} accounts x {args.assets} assets (height {trees['height']}), "
        f"{trees['build_seconds_wall']:.1f} s wall on {args.workers} workers (CPU per asset "
        f"{min(cpu):.1f}-{max(cpu):.1f} s); floor "
        f"{trees['hash_calls']:,} hash calls = {floor_seconds:.1f} s  [Summa v1: 2^20 users 24.5 s on 32 cores]"
    )
    plain = bench_plain_proofs(min(args.accounts, 1 << 20))
    print(
        f"inclusion (sums in clear, height {plain['height']}): {plain['bytes'] / 1024:.1f} KB JSON, "
        f"generate {plain['generate_ms']:.3f} ms, verify {plain['verify_ms']:.3f} ms  "
        "[Summa v1: 1.6 KB, 403 ms, 4 ms]"
    )
    hidden = bench_hidden(args.hidden_accounts)
    with_rp, without_rp = hidden["with_range_proofs"], hidden["without_range_proofs"]
    print(
        f"hidden sums ({args.hidden_accounts} accounts, height {hidden['height']}): build "
        f"{hidden['build_ms_per_leaf']:.3f} ms/leaf; proof with range proofs "
        f"{with_rp['binary_bytes_estimate'] / 1024:.1f} KB binary ({with_rp['json_bytes'] / 1024:.1f} KB JSON), "  # type: ignore[index]
        f"generate {with_rp['generate_ms']:.0f} ms, verify {with_rp['verify_ms']:.0f} ms; without: "  # type: ignore[index]
        f"{without_rp['binary_bytes_estimate'] / 1024:.2f} KB, generate {without_rp['generate_ms']:.2f} ms  "  # type: ignore[index]
        "[DAPOL+: 4.5 KB, 0.39 s per proof at height 32]"
    )
    mpc = bench_mpc(args.mpc_accounts, args.mpc_preset)
    print_mpc(mpc)
    print(
        json.dumps(
            {
                "cpu": cpu_model(),
                "load_average": os.getloadavg()[0],
                "hash_floor_us": floor * 1e6,
                "native_hash_us": native * 1e6,
                "ab": ab | {"hashlib_floor_seconds": ab_floor, "native_floor_seconds": ab_native_floor},
                "trees": trees,
                "tree_floor_seconds": floor_seconds,
                "inclusion_plain": plain,
                "inclusion_hidden": hidden,
                "mpc": mpc,
                "anchors": {
                    "summa_v1": {
                        "users": 2**20,
                        "build_s_32_cores": 24.5,
                        "proof_ms": 403,
                        "verify_ms": 4,
                        "kb": 1.6,
                    },
                    "dapol_plus": {"height": 32, "kb": 4.5, "proof_s": 0.39},
                },
            }
        )
    )


if __name__ == "__main__":
    main()
