"""Batched hashing: the native (OpenSSL through numba) and hashlib paths give hashlib's and hmac's
bytes exactly, and a tree built either way has the same root."""

from __future__ import annotations

import hashlib
import hmac
import itertools

import numpy as np
import pytest

from crossmargin.core.solvency import encoding, hashing
from crossmargin.core.solvency.merkle_sum import build_tree, exact_total
from crossmargin.errors import InputError

SECRET = bytes(range(32))
requires_native = pytest.mark.skipif(not hashing.native_available(), reason="no libcrypto to load")


def _messages(seed: int, rows: int) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 200, rows)  # 0 and lengths across SHA-256's 55/64-byte padding edges
    lengths[:4] = [0, 55, 56, 64]
    data = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    messages = [data[a:b].tobytes() for a, b in itertools.pairwise(offsets)]
    return messages, data, offsets


@pytest.mark.parametrize("native", [pytest.param(True, marks=requires_native), False])
def test_solvency_batched_sha256_is_hashlib_byte_for_byte(native):
    messages, data, offsets = _messages(1, 300)
    got = hashing.sha256_segments(data, offsets, native=native)
    assert [row.tobytes() for row in got] == [hashlib.sha256(m).digest() for m in messages]


@pytest.mark.parametrize("native", [pytest.param(True, marks=requires_native), False])
@pytest.mark.parametrize("key", [SECRET, b"k" * 16, bytes(range(64)), b"long" * 40])  # > a block: hashed
def test_solvency_batched_hmac_is_the_standard_librarys(native, key):
    messages, data, offsets = _messages(2, 120)
    got = hashing.hmac_sha256_segments(key, data, offsets, native=native)
    assert [row.tobytes() for row in got] == [hmac.new(key, m, hashlib.sha256).digest() for m in messages]


def test_solvency_concat_rows_packs_fixed_and_variable_fields():
    ids = encoding.encoded_ids(["a", "", "ünï", "bob"])
    fixed = np.arange(8, dtype=np.uint8).reshape(4, 2)
    buf, offsets = hashing.concat_rows(fixed, ids, fixed[:, :1])
    rows = [buf[a:b].tobytes() for a, b in itertools.pairwise(offsets)]
    assert rows == [
        b"\x00\x01a\x00",
        b"\x02\x03\x02",
        b"\x04\x05" + "ünï".encode() + b"\x04",
        b"\x06\x07bob\x06",
    ]


@requires_native
def test_solvency_tree_is_the_same_built_natively_or_through_hashlib(monkeypatch):
    ids = [f"user-{i}" for i in range(300)] + ["ünïcode-ïd"]
    amounts = np.random.default_rng(3).integers(0, 10**12, len(ids))
    monkeypatch.setattr(hashing, "BACKEND", "native")
    native = build_tree(asset="BTC", account_ids=ids, amount_units=amounts, secret=SECRET, min_height=10)
    monkeypatch.setattr(hashing, "BACKEND", "hashlib")
    plain = build_tree(asset="BTC", account_ids=ids, amount_units=amounts, secret=SECRET, min_height=10)
    for level in range(native.height + 1):
        np.testing.assert_array_equal(native.hashes[level], plain.hashes[level])
    # and the scalar layout (what an inclusion proof and the verifier use) gives the same leaves
    row = len(ids) - 1
    salt = encoding.salt_of(SECRET, "BTC", ids[row])
    leaf = encoding.leaf_hash(salt, encoding.sum_field(int(amounts[row])), ids[row])
    assert native.hashes[0][native.position[row]].tobytes() == leaf


@pytest.mark.parametrize("backend", [pytest.param("native", marks=requires_native), "hashlib"])
def test_solvency_duplicates_found_among_many_and_empty_books_build(monkeypatch, backend):
    monkeypatch.setattr(hashing, "BACKEND", backend)
    ids = [f"user-{i}" for i in range(2000)]
    ids[1500] = "user-17"
    with pytest.raises(InputError, match="duplicate account id 'user-17'"):
        build_tree(asset="BTC", account_ids=ids, amount_units=np.ones(2000, np.int64), secret=SECRET)
    empty = build_tree(asset="BTC", account_ids=[], amount_units=np.zeros(0, np.int64), secret=SECRET)
    assert empty.total_units == 0 and empty.height == 1


def test_solvency_exact_total_of_large_units():
    units = np.random.default_rng(5).integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    assert exact_total(units) == sum(units.tolist())  # far beyond 2**64: numpy's sum would wrap


@pytest.mark.parametrize("native", [pytest.param(True, marks=requires_native), False])
def test_solvency_batched_hashing_refuses_segments_outside_the_buffer(native):
    data = np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match="inside the buffer"):
        hashing.sha256_segments(data, np.array([0, 5, 11]), native=native)
    with pytest.raises(ValueError, match="inside the buffer"):
        hashing.digests(b"x", tail=(data, np.array([0, 6, 4])), native=native)
    with pytest.raises(ValueError, match=r"\(3, w\) byte matrix"):
        hashing.digests(b"x", np.zeros((3, 2), np.uint8), np.zeros((2, 2), np.uint8), native=native)
