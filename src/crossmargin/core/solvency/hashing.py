"""Batched SHA-256 and HMAC-SHA256: every message of a tree level hashed in one call.

A Merkle-sum tree makes one hash per leaf and one per parent; through `hashlib` that is one
Python call per hash (~0.6 µs idle, 1-2 µs on a loaded machine), several times the cost of the
compression function itself (SHA-256 with the x86 SHA extensions: ~0.1 µs for a parent's 81
bytes). Here a numba loop calls OpenSSL's `SHA256_Init/Update/Final` (the libcrypto `hashlib`
itself is built on, so the same SHA-256 code, SHA-NI included) over a packed byte buffer: one call
from Python per level, no Python object per hash. Measured in `bench/bench_solvency.py`.

Messages are segments of one byte buffer: message i = buf[offsets[i] : offsets[i + 1]]
(fixed-width rows are offsets = w·arange(m + 1)). HMAC-SHA256 (RFC 2104,
https://www.rfc-editor.org/rfc/rfc2104) hashes the key's inner and outer pads once and copies
those two SHA-256 states per message.

The output is plain SHA-256 / HMAC-SHA256, byte for byte `hashlib` / `hmac`'s (tested), so the
standalone verifier needs nothing but the standard library. Where libcrypto cannot be loaded
(or for small trees, until a batch of `NATIVE_MIN_ROWS` comes: numba's one-time load of
~0.5-1 s would cost more than it saves) the same functions loop over `hashlib`.

Summa (https://github.com/summa-dev/summa-solvency; v1 hashes nodes with Poseidon, for its SNARK
circuits) and DAPOL+ (https://github.com/silversixpence-crypto/dapol, `src/hasher.rs`: one BLAKE3
hasher per node) build their trees in Rust, where a hash is a function call; this is the same
shape from Python. SHA-256 stays the hash so the standalone verifier needs only `hashlib`; the
`blake3` package hashes one message at a time (threads only help within one long message), so it
would not remove the per-call cost that dominates a tree of 81-byte nodes.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import itertools
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

ByteArray = npt.NDArray[np.uint8]
OffsetArray = npt.NDArray[np.int64]

DIGEST_BYTES = 32
BLOCK_BYTES = 64
CTX_WORDS = 16  # u64 words: 128 bytes >= sizeof(SHA256_CTX) (112 in OpenSSL 1.1 and 3.x)
NATIVE_MIN_ROWS = 1 << 16
# "auto": native from the first batch of NATIVE_MIN_ROWS on, then for every batch (numba's load
# is paid once per process); "native" / "hashlib" force one path (tests, the bench's A/B).
BACKEND = "auto"
_loaded: set[str] = set()
_LIBCRYPTO_NAMES = {
    "linux": ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"),
    "darwin": ("libcrypto.3.dylib", "libcrypto.1.1.dylib", "libcrypto.dylib"),
    "win32": ("libcrypto-3-x64.dll", "libcrypto-3.dll", "libcrypto-1_1-x64.dll"),
}


@numba.njit(nogil=True, cache=True)
def _sha256_segments(  # pragma: no cover - compiled
    buf: Any, offsets: Any, out: Any, ctx: Any, init: Any, update: Any, final: Any
) -> None:
    base, dst, state = buf.ctypes.data, out.ctypes.data, ctx.ctypes.data
    for i in range(offsets.shape[0] - 1):
        init(state)
        update(state, base + offsets[i], offsets[i + 1] - offsets[i])
        final(dst + DIGEST_BYTES * i, state)


@numba.njit(nogil=True, cache=True)
def _concat_digests(  # pragma: no cover - compiled
    prefix: Any,
    first: Any,
    second: Any,
    tail: Any,
    tail_offsets: Any,
    out: Any,
    ctx: Any,
    keyed: bool,
    inner: Any,
    outer: Any,
    init: Any,
    update: Any,
    final: Any,
) -> None:
    """Row i: SHA-256 (or, keyed, HMAC from the pad states `inner`/`outer`: SHA256_CTX bytes
    after one 64-byte block) of prefix ‖ first[i] ‖ second[i] ‖ tail[tail_offsets[i]:[i + 1]]."""
    state, dst = ctx.ctypes.data, out.ctypes.data
    w1, w2 = first.shape[1], second.shape[1]
    p1, p2, p3 = first.ctypes.data, second.ctypes.data, tail.ctypes.data
    for i in range(out.shape[0]):
        if keyed:
            for w in range(CTX_WORDS):  # a word loop: numba's slice copy costs ~0.3 µs here
                ctx[w] = inner[w]
        else:
            init(state)
        update(state, prefix.ctypes.data, prefix.shape[0])
        update(state, p1 + w1 * i, w1)
        update(state, p2 + w2 * i, w2)
        update(state, p3 + tail_offsets[i], tail_offsets[i + 1] - tail_offsets[i])
        final(dst + DIGEST_BYTES * i, state)
        if keyed:
            for w in range(CTX_WORDS):
                ctx[w] = outer[w]
            update(state, dst + DIGEST_BYTES * i, DIGEST_BYTES)
            final(dst + DIGEST_BYTES * i, state)


@cache
def _libcrypto() -> tuple[Any, Any, Any] | None:
    """OpenSSL's SHA256_Init/Update/Final, or None. Pointers are passed as size_t (same width
    and calling convention as a pointer on every 64-bit ABI numba targets)."""
    size = ctypes.c_size_t
    for name in _LIBCRYPTO_NAMES.get(sys.platform, ("libcrypto.so.3",)):
        try:
            lib = ctypes.CDLL(name)
            functions = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
        except (OSError, AttributeError):
            continue
        for function, args in zip(functions, ([size], [size, size, size], [size, size]), strict=True):
            function.argtypes, function.restype = args, ctypes.c_int
        return functions
    return None


def native_available() -> bool:
    return _libcrypto() is not None


def _use_native(rows: int, native: bool | None) -> bool:
    if native is None:
        native = BACKEND == "native" or (BACKEND == "auto" and (rows >= NATIVE_MIN_ROWS or bool(_loaded)))
    if native and native_available():
        _loaded.add("numba")
        return True
    return False


def _check_segments(buf: ByteArray, offsets: OffsetArray, rows: int) -> None:
    """The native loop reads without bounds checks: every segment must lie inside `buf`."""
    if offsets.shape != (rows + 1,):
        raise ValueError(f"offsets must have {rows + 1} entries, got shape {offsets.shape}")
    if rows and (offsets[0] < 0 or offsets[-1] > buf.size or np.any(np.diff(offsets) < 0)):
        raise ValueError("offsets must be non-decreasing and inside the buffer")


def fixed_offsets(rows: int, width: int) -> OffsetArray:
    offsets: OffsetArray = np.arange(rows + 1, dtype=np.int64) * width
    return offsets


def sha256_segments(buf: ByteArray, offsets: OffsetArray, *, native: bool | None = None) -> ByteArray:
    """SHA-256 of each segment buf[offsets[i]:offsets[i+1]], shape (len(offsets) - 1, 32)."""
    rows = offsets.shape[0] - 1
    data = np.ascontiguousarray(buf, dtype=np.uint8).reshape(-1)
    _check_segments(data, offsets, rows)
    if _use_native(rows, native):
        init, update, final = _libcrypto()  # type: ignore[misc]
        out = np.empty((rows, DIGEST_BYTES), dtype=np.uint8)
        _sha256_segments(data, np.ascontiguousarray(offsets, np.int64), out, _ctx(), init, update, final)
        return out
    return _hashlib_segments(data, offsets, None)


def sha256_rows(messages: ByteArray, *, native: bool | None = None) -> ByteArray:
    """SHA-256 of every row of an (m, w) byte matrix, shape (m, 32)."""
    m, width = messages.shape
    return sha256_segments(messages, fixed_offsets(m, width), native=native)


def digests(
    prefix: bytes,
    *fixed: ByteArray,
    tail: tuple[ByteArray, OffsetArray] | None = None,
    key: bytes | None = None,
    native: bool | None = None,
) -> ByteArray:
    """Row i: SHA-256, or with `key` HMAC-SHA256, of prefix ‖ fixed[0][i] ‖ fixed[1][i] ‖ tail
    segment i: the fields stay in their own arrays (no packed copy of the messages). At most two
    fixed-width (m, w) byte matrices; `tail` a (buf, offsets) pair of variable-length fields."""
    if len(fixed) > 2:
        raise ValueError("at most two fixed-width fields")
    rows = fixed[0].shape[0] if fixed else tail[1].shape[0] - 1  # type: ignore[index]
    if any(f.ndim != 2 or f.shape[0] != rows for f in fixed):
        raise ValueError(f"every fixed field must be an ({rows}, w) byte matrix")
    if tail is not None:
        _check_segments(tail[0].reshape(-1), tail[1], rows)
    if not _use_native(rows, native):
        parts: list[ByteArray | tuple[ByteArray, OffsetArray]] = [
            np.broadcast_to(np.frombuffer(prefix, np.uint8), (rows, len(prefix))),
            *fixed,
        ]
        buf, offsets = concat_rows(*parts, *([tail] if tail is not None else []))
        return _hashlib_segments(buf, offsets, key)
    init, update, final = _libcrypto()  # type: ignore[misc]
    empty = np.empty((rows, 0), dtype=np.uint8)
    first, second = (np.ascontiguousarray(f, np.uint8) for f in (*fixed, empty, empty)[:2])
    tail_buf, tail_offsets = tail if tail is not None else (empty.reshape(-1), np.zeros(rows + 1, np.int64))
    keyed = key is not None
    inner, outer = (
        (_pad_state(key, 0x36, init, update), _pad_state(key, 0x5C, init, update))
        if key is not None
        else (_ctx(), _ctx())
    )
    out = np.empty((rows, DIGEST_BYTES), dtype=np.uint8)
    _concat_digests(
        np.frombuffer(prefix, np.uint8) if prefix else np.zeros(0, np.uint8),
        first,
        second,
        np.ascontiguousarray(tail_buf, np.uint8),
        np.ascontiguousarray(tail_offsets, np.int64),
        out,
        _ctx(),
        keyed,
        inner,
        outer,
        init,
        update,
        final,
    )
    return out


def hmac_sha256_segments(
    key: bytes, buf: ByteArray, offsets: OffsetArray, *, native: bool | None = None
) -> ByteArray:
    """HMAC-SHA256(key, segment) for each segment, shape (len(offsets) - 1, 32)."""
    return digests(b"", tail=(buf, offsets), key=key, native=native)


def _hashlib_segments(buf: ByteArray, offsets: OffsetArray, key: bytes | None) -> ByteArray:
    view, bounds = memoryview(np.ascontiguousarray(buf).reshape(-1).tobytes()), offsets.tolist()
    pairs = itertools.pairwise(bounds)
    if key is None:
        sha256 = hashlib.sha256
        return _stack([sha256(view[a:b]).digest() for a, b in pairs])
    mac = hmac.new(key, digestmod=hashlib.sha256)
    out = []
    for a, b in pairs:
        h = mac.copy()
        h.update(view[a:b])
        out.append(h.digest())
    return _stack(out)


def _ctx() -> npt.NDArray[np.uint64]:
    return np.zeros(CTX_WORDS, dtype=np.uint64)


def _pad_state(key: bytes, pad: int, init: Any, update: Any) -> npt.NDArray[np.uint64]:
    """The SHA256_CTX after hashing one block K' ⊕ pad (K' the key, hashed if longer than a
    block, zero-padded to 64 bytes)."""
    block = hashlib.sha256(key).digest() if len(key) > BLOCK_BYTES else key
    padded = np.frombuffer(block.ljust(BLOCK_BYTES, b"\x00"), dtype=np.uint8) ^ np.uint8(pad)
    state = _ctx()
    init(state.ctypes.data)
    update(state.ctypes.data, padded.ctypes.data, BLOCK_BYTES)
    return state


def _stack(digests: Sequence[bytes]) -> ByteArray:
    return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), DIGEST_BYTES)


def concat_rows(*parts: ByteArray | tuple[ByteArray, OffsetArray]) -> tuple[ByteArray, OffsetArray]:
    """Message i = the concatenation of part i of each argument: an (m, w) byte matrix (a
    fixed-width field per row) or a (buf, offsets) pair (a variable-length field per row).
    Returns the packed (buf, offsets), assembled with numpy scatters (no loop over rows)."""
    widths = []
    for part in parts:
        if isinstance(part, tuple):
            widths.append(np.diff(part[1]))
        else:
            widths.append(np.full(part.shape[0], part.shape[1], dtype=np.int64))
    lengths = np.sum(widths, axis=0)
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.empty(int(offsets[-1]), dtype=np.uint8)
    start = offsets[:-1].copy()  # where the next field of each row goes
    for part, width in zip(parts, widths, strict=True):
        if isinstance(part, tuple):
            segment, segment_offsets = part
            total = int(segment_offsets[-1] - segment_offsets[0])
            shift = np.repeat(start - segment_offsets[:-1], width)  # per byte: destination - source
            source = np.arange(int(segment_offsets[0]), int(segment_offsets[0]) + total)
            buf[source + shift] = segment[source]
        elif part.shape[1]:
            buf[start[:, None] + np.arange(part.shape[1])] = part
        start += width
    return buf, offsets
