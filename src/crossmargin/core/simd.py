"""Scenario reductions with their partial sums held in vector registers (numba intrinsics).

`weighted_row_sum`, a sparse row times a dense block:

    out[c : c + 8·V]  (+)=  Σ_{p in [start, stop)} weight[p] · scale[i] · rows[row_of[i], c : c + 8·V]
    with i = index[p]; row_of = scale = None means the identity and ones

This is the inner loop of every scenario reduction: an account's P&L in S scenarios is its
positions' weights times their instruments' scenario rows. `row_of`/`scale` let many instruments
share one row (every delta-one contract on an underlying is a multiple of that underlying's
move), which keeps the rows the kernel touches small enough to stay in cache. Written in numba as
`for s in range(S): pnl[s] += w * rows[i, s]`, the partial sums live in memory, and each position
must wait for the previous one's stores to come back (a store-to-load round trip per position).
Here the 8·V sums are V `<8 x double>` SSA values carried around the loop in registers, updated by a
vector multiply and add, and stored once at the end. Two sets of sums (even and odd positions)
halve the chain of dependent additions again. Without AVX-512 (16 ymm registers, an <8 x double>
taking two) a 4-vector block is summed in two passes over the positions, two vectors each
(`host_vectors_per_pass`): the same bits, no spilled sums. `bench/bench_simd.py` times the scenario pass both
ways on the 1M-account bench book, interleaved in one process: 106.8 -> 53.8 ms (2.0x), same
worst loss to 8e-14. With
prefetch_ahead > 0 it also prefetches the row of the position that many places later (clamped to
the index array, so across account boundaries too): the rows are gathered at random, and the hint
keeps more cache misses in flight.

`two_stream_row_sum` adds a second stream (an account's balances) and a side stream (its
positions' add-ons) in the same loops; `two_stream_row_sum_worst` then also reduces the sums,
still in registers, to the worst scenario and the capped depeg loss, so that an account whose
scenarios fit one block is never stored and reloaded (6 ms of the portfolio kernel's 41 on the
bench book). `first_worst` finds the worst scenario of a stored block.

No bounds checks: callers guarantee `rows` is C-contiguous float64 with at least c + 8·V
columns, `out` is contiguous float64 with at least c + 8·V elements, every index[p] is a valid
position in row_of and scale, and every row_of entry a valid row. V is 1..4; `accumulate` and
`prefetch_ahead` must be compile-time constants, and so must V for `weighted_row_sum` (the
two-stream sums also take V at run time: one specialised loop per count behind a switch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from crossmargin.core.simd_layout import LANES, MAX_VECTORS, SIDE_SHORT_LANE, SIDE_SIGNED_LANE


def _int_vector(t: Any) -> bool:
    return isinstance(t, types.Array) and t.ndim == 1 and isinstance(t.dtype, types.Integer)


def _float_vector(t: Any) -> bool:
    return isinstance(t, types.Array) and t.ndim == 1 and t.dtype == types.float64


def _float_matrix(t: Any) -> bool:
    """C-contiguous 2-D float64 (callers guarantee at least LANES columns)."""
    return isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" and t.dtype == types.float64


def _prefetch(builder: Any, pointer: Any) -> None:
    """llvm.prefetch: read, keep in all cache levels, data cache."""
    i8_ptr = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = _llvm_function(builder, ir.FunctionType(ir.VoidType(), [i8_ptr, i32, i32, i32]), "llvm.prefetch.p0")
    builder.call(
        fn, [builder.bitcast(pointer, i8_ptr), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
    )


def _llvm_function(builder: Any, signature: Any, name: str) -> Any:
    """Declare (once per module) an LLVM intrinsic function."""
    return cgutils.get_or_insert_function(builder.module, signature, name)  # type: ignore[no-untyped-call]


def _load_index(builder: Any, array_data: Any, position: Any) -> Any:
    value = builder.load(builder.gep(array_data, [position]))
    return value if value.type.width == 64 else builder.sext(value, ir.IntType(64))


@dataclass(frozen=True)
class _Stream:
    """One (index, weight, [row_of, scale], rows) stream of a row sum, as LLVM values."""

    index: Any  # data pointer
    index_last: Any  # len(index) - 1, i64
    weight: Any
    row_of: Any | None
    scale: Any | None
    rows_base: Any  # address of rows[0, col], i64
    row_stride: Any  # bytes, i64
    start: Any
    stop: Any


@dataclass(frozen=True)
class _SideStream:
    """Per position p of the first stream, also side_multiplier(side_weight[p]) ⊙ side_rows[i]
    into one extra <8 x double> sum (i = index[p]; see `_two_stream_row_sum`)."""

    weight: Any  # data pointer
    rows_base: Any  # address of side_rows[0, 0], i64
    row_stride: Any  # bytes, i64


def _stream(context: Any, builder: Any, types_: Any, values: Any, col_offset: Any) -> _Stream:
    """From (index, weight, start, stop, row_of, scale, rows) arguments."""
    index_t, weight_t, _, _, row_of_t, scale_t, rows_t = types_
    index_arr = context.make_array(index_t)(context, builder, values[0])
    rows_arr = context.make_array(rows_t)(context, builder, values[6])
    mapped = row_of_t is not types.none
    return _Stream(
        index=index_arr.data,
        index_last=builder.sub(builder.extract_value(index_arr.shape, 0), ir.Constant(ir.IntType(64), 1)),
        weight=context.make_array(weight_t)(context, builder, values[1]).data,
        row_of=context.make_array(row_of_t)(context, builder, values[4]).data if mapped else None,
        scale=context.make_array(scale_t)(context, builder, values[5]).data if mapped else None,
        rows_base=builder.add(builder.ptrtoint(rows_arr.data, ir.IntType(64)), col_offset),
        row_stride=builder.extract_value(rows_arr.strides, 0),
        start=values[2],
        stop=values[3],
    )


def _side_sign_lanes(builder: Any) -> Any:
    """The module constant [2 x <8 x double>] with side_multiplier(w) = w ⊙ lanes[signbit(w)]:
    sign bit clear, 1 on every lane but 0 on SIDE_SHORT_LANE (w = |w|, max(-w, 0) = 0); set, -1
    on every lane but 1 on SIDE_SIGNED_LANE (-w = |w| = max(-w, 0)). Multiplying by ±1 or 0 is
    exact, so these are the same numbers as |w|, max(-w, 0) and w for every finite w (an
    infinite one would give NaN on the short lane; Book refuses non-finite quantities)."""
    name = "crossmargin_side_sign_lanes"
    existing = builder.module.globals.get(name)
    if existing is not None:
        return existing
    vec = ir.VectorType(ir.DoubleType(), LANES)
    nonnegative = [0.0 if k == SIDE_SHORT_LANE else 1.0 for k in range(LANES)]
    negative = [1.0 if k == SIDE_SIGNED_LANE else -1.0 for k in range(LANES)]
    value = ir.Constant(ir.ArrayType(vec, 2), [ir.Constant(vec, nonnegative), ir.Constant(vec, negative)])
    return cgutils.global_constant(builder.module, name, value)  # type: ignore[no-untyped-call]


def _emit_sums(
    builder: Any,
    stream: _Stream,
    initial: list[Any],
    ahead: int,
    side: _SideStream | None = None,
) -> list[Any]:
    """Emit the loop Σ_p weight[p]·scale[i]·rows[row_of[i]] over the stream, starting from the
    `initial` vectors; returns the final vectors (valid in the block the builder is left in).
    With a side stream, the last of `initial` (and of the result) is the side sum.

    Two sets of sums, even and odd positions, so that consecutive positions do not wait on each
    other's additions; a last odd position goes to the first set, then the sets add up."""
    i64 = ir.IntType(64)
    n_row = len(initial) - (side is not None)  # row vectors; the side sum (if any) is one more
    vec = ir.VectorType(ir.DoubleType(), LANES)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

    def broadcast(w: Any) -> Any:
        w_vec = builder.insert_element(ir.Constant(vec, ir.Undefined), w, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(w_vec, ir.Constant(vec, ir.Undefined), splat)

    def side_term(position: Any, i: Any) -> Any:
        """side_multiplier(side_weight[p]) ⊙ side_rows[i], the multiplier as w ⊙ lanes[signbit(w)]
        (`_side_sign_lanes`): one multiply where a compare, a negation, an absolute value and
        three blends were (0.7-1.8 ms of the portfolio kernel's ~44 on an AVX-512 Xeon, where
        512-bit arithmetic has two ports), the same bits."""
        assert side is not None
        w = builder.load(builder.gep(side.weight, [position]))
        negative = builder.lshr(builder.bitcast(w, i64), ir.Constant(i64, 63))
        sign_lanes = builder.gep(_side_sign_lanes(builder), [ir.Constant(i64, 0), negative])
        lanes = builder.load(sign_lanes, align=64)
        multiplier = builder.fmul(broadcast(w), lanes)
        address = builder.add(side.rows_base, builder.mul(i, side.row_stride))
        return builder.fmul(multiplier, builder.load(_vector_at(builder, address, 0), align=8))

    def row_address(position: Any) -> tuple[Any, Any]:
        """(address of the block in rows, index value) for this position."""
        i = _load_index(builder, stream.index, position)
        r = _load_index(builder, stream.row_of, i) if stream.row_of is not None else i
        return builder.add(stream.rows_base, builder.mul(r, stream.row_stride)), i

    def add_position(position: Any, sums: list[Any]) -> list[Any]:
        row, i = row_address(position)
        w = builder.load(builder.gep(stream.weight, [position]))
        if stream.scale is not None:
            w = builder.fmul(w, builder.load(builder.gep(stream.scale, [i])))
        w_vec = broadcast(w)
        if ahead:
            later = builder.add(position, ir.Constant(i64, ahead))
            later = builder.select(
                builder.icmp_signed("<", later, stream.index_last), later, stream.index_last
            )
            later_row, later_i = row_address(later)
            for v in range(n_row):
                _prefetch(builder, _vector_at(builder, later_row, v))
            if side is not None:
                later_side = builder.add(side.rows_base, builder.mul(later_i, side.row_stride))
                _prefetch(builder, _vector_at(builder, later_side, 0))
        # fmul then fadd, not a fused multiply-add: with two roundings, w·x + (-w)·x is exactly
        # 0, so a perfect hedge nets to exactly nothing.
        new = [
            builder.fadd(sums[v], builder.fmul(w_vec, builder.load(_vector_at(builder, row, v), align=8)))
            for v in range(n_row)
        ]
        if side is not None:
            new.append(builder.fadd(sums[n_row], side_term(position, i)))
        return new

    n_sums = len(initial)
    zero = _zero_sums(n_sums)
    entry = builder.block
    head = builder.append_basic_block("wrs.head")
    body = builder.append_basic_block("wrs.body")
    tail = builder.append_basic_block("wrs.tail")
    odd = builder.append_basic_block("wrs.odd")
    done = builder.append_basic_block("wrs.done")
    builder.branch(head)
    with builder.goto_block(head):
        p = builder.phi(i64)
        even_sums = [builder.phi(vec) for _ in range(n_sums)]
        odd_sums = [builder.phi(vec) for _ in range(n_sums)]
        p.add_incoming(stream.start, entry)
        for a, init in zip(even_sums, initial, strict=True):
            a.add_incoming(init, entry)
        for b, z in zip(odd_sums, zero, strict=True):
            b.add_incoming(z, entry)
        next_p = builder.add(p, ir.Constant(i64, 1))
        builder.cbranch(builder.icmp_signed("<", next_p, stream.stop), body, tail)
    with builder.goto_block(body):
        new_even = add_position(p, even_sums)
        new_odd = add_position(next_p, odd_sums)
        p.add_incoming(builder.add(p, ir.Constant(i64, 2)), builder.block)
        for phi, new in zip(even_sums + odd_sums, new_even + new_odd, strict=True):
            phi.add_incoming(new, builder.block)
        builder.branch(head)
    with builder.goto_block(tail):
        builder.cbranch(builder.icmp_signed("<", p, stream.stop), odd, done)
    with builder.goto_block(odd):
        last_even = add_position(p, even_sums)
        builder.branch(done)
    builder.position_at_end(done)
    merged = [builder.phi(vec) for _ in range(n_sums)]
    for v in range(n_sums):
        merged[v].add_incoming(even_sums[v], tail)
        merged[v].add_incoming(last_even[v], odd)
    return [builder.fadd(merged[v], odd_sums[v]) for v in range(n_sums)]


def host_vectors_per_pass() -> int:
    """Row vectors (<8 x double>) summed per loop over a stream, so that both sets of sums and
    the side sum stay in registers: all 4 with AVX-512 (32 zmm: 10 for sums), 2 without (16 ymm,
    an <8 x double> taking two: 4 vectors in two sets plus the side sum were 20 ymm, spilled on
    every position). numba keys its disk cache on the host's CPU name and features, so a build
    made for one answer is never loaded where the other holds."""
    return MAX_VECTORS if llvm_binding.get_host_cpu_features().get("avx512f", False) else 2


# Read by the intrinsics' code generation, when a kernel calling them is compiled: a bench or a
# test may set it before compiling a build of its own (bench/bench_simd.py compares them).
VECTORS_PER_PASS = host_vectors_per_pass()


def _emit_sums_by_pass(
    builder: Any,
    stream: _Stream,
    initial: list[Any],
    ahead: int,
    side: _SideStream | None = None,
) -> list[Any]:
    """`_emit_sums` over the row vectors in passes of VECTORS_PER_PASS (`host_vectors_per_pass`),
    each over its own columns of the rows, in the same order of additions per column: the same
    bits whatever the pass width. The side sum (last of `initial`, if any) rides with the first."""
    n_row = len(initial) - (side is not None)
    per_pass = VECTORS_PER_PASS
    if n_row <= per_pass:
        return _emit_sums(builder, stream, initial, ahead, side)
    rows: list[Any] = []
    side_sums: list[Any] = initial[n_row:]
    for v0 in range(0, n_row, per_pass):
        v1 = min(v0 + per_pass, n_row)
        offset = ir.Constant(ir.IntType(64), 64 * v0)  # bytes: v0 vectors of 8 doubles
        columns = replace(stream, rows_base=builder.add(stream.rows_base, offset))
        if v0 == 0:
            got = _emit_sums(builder, columns, initial[v0:v1] + side_sums, ahead, side)
            side_sums = got[v1 - v0 :]
        else:
            got = _emit_sums(builder, columns, initial[v0:v1], ahead)
        rows += got[: v1 - v0]
    return rows + side_sums


def _stream_types_ok(index: Any, weight: Any, row_of: Any, scale: Any, rows: Any) -> bool:
    mapped = row_of is not types.none
    if mapped and not (_int_vector(row_of) and _float_vector(scale)):
        return False
    if not mapped and scale is not types.none:
        return False
    return (
        _int_vector(index)
        and _float_vector(weight)
        and isinstance(rows, types.Array)
        and rows.ndim == 2
        and rows.layout == "C"
        and rows.dtype == types.float64
    )


def _stream_signature(index: Any, weight: Any, row_of: Any, scale: Any, rows: Any) -> tuple[Any, ...]:
    """Argument types of one stream: (index, weight, start, stop, row_of, scale, rows)."""
    return (index, weight, types.intp, types.intp, row_of, scale, rows)


def _prefetch_ok(prefetch_ahead: Any) -> bool:
    return isinstance(prefetch_ahead, types.IntegerLiteral) and prefetch_ahead.literal_value >= 0


def _literals_ok(n_vectors: Any, prefetch_ahead: Any) -> bool:
    return (
        isinstance(n_vectors, types.IntegerLiteral)
        and 1 <= n_vectors.literal_value <= MAX_VECTORS
        and _prefetch_ok(prefetch_ahead)
    )


def _out_block(context: Any, builder: Any, out_type: Any, out_value: Any, col: Any) -> tuple[Any, Any]:
    """(byte offset of column `col`, address of out[col]) as i64."""
    i64 = ir.IntType(64)
    col_offset = builder.mul(col, ir.Constant(i64, 8))
    out_arr = context.make_array(out_type)(context, builder, out_value)
    return col_offset, builder.add(builder.ptrtoint(out_arr.data, i64), col_offset)


def _vector_at(builder: Any, base: Any, v: int) -> Any:
    """Pointer to the v-th <8 x double> block from address `base`."""
    address = builder.add(base, ir.Constant(ir.IntType(64), 64 * v))
    return builder.inttoptr(address, ir.VectorType(ir.DoubleType(), LANES).as_pointer())


def _zero_sums(n_vec: int) -> list[Any]:
    return [ir.Constant(ir.VectorType(ir.DoubleType(), LANES), [0.0] * LANES) for _ in range(n_vec)]


def _store_sums(builder: Any, out_base: Any, sums: list[Any]) -> None:
    for v, value in enumerate(sums):
        builder.store(value, _vector_at(builder, out_base, v), align=8)


def _weighted_row_sum(
    typingctx: Any,
    index: Any,
    weight: Any,
    start: Any,
    stop: Any,
    row_of: Any,
    scale: Any,
    rows: Any,
    col0: Any,
    out: Any,
    n_vectors: Any,
    accumulate: Any,
    prefetch_ahead: Any,
) -> Any:
    """See the module docstring. accumulate=False overwrites out's block, True adds to it."""
    if not (_stream_types_ok(index, weight, row_of, scale, rows) and _float_vector(out)):
        return None
    if not (_literals_ok(n_vectors, prefetch_ahead) and isinstance(accumulate, types.BooleanLiteral)):
        return None
    n_vec = int(n_vectors.literal_value)
    add_to_out = bool(accumulate.literal_value)
    ahead = int(prefetch_ahead.literal_value)
    sig = types.void(
        *_stream_signature(index, weight, row_of, scale, rows),
        types.intp,
        out,
        n_vectors,
        accumulate,
        prefetch_ahead,
    )

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        col_offset, out_base = _out_block(context, builder, signature.args[8], args[8], args[7])
        if add_to_out:
            initial = [builder.load(_vector_at(builder, out_base, v), align=8) for v in range(n_vec)]
        else:
            initial = _zero_sums(n_vec)
        stream = _stream(context, builder, signature.args[:7], args[:7], col_offset)
        _store_sums(builder, out_base, _emit_sums_by_pass(builder, stream, initial, ahead))
        return context.get_dummy_value()

    return sig, codegen


_TWO_STREAM_DOC = """weighted_row_sum over a first (mapped or not) stream, then over a second unmapped one,
    stored once: out[block] = Σ_a ... + Σ_b weight_b·rows_b[index_b] (an account's positions,
    then its balances, without storing and reloading the sums in between).

    Side stream (side_weight, side_rows, side_initial, side_out all arrays, or all None): in the
    same loop, over the first stream's positions [start, side_stop) (start <= side_stop <= stop),
        side_out[0:8] = side_initial[side_initial_row, 0:8]
                        + Σ_p side_multiplier(side_weight[p]) ⊙ side_rows[index[p], 0:8]
        side_multiplier(w) = |w| on every lane, but max(-w, 0) on SIDE_SHORT_LANE, w on SIDE_SIGNED_LANE
    (the initial row is read as one vector: copied into side_out lane by lane first, the vector
    load would wait for eight scalar stores it cannot forward from, 3 ms on the bench book)
    (side_rows (n_index, >= 8), C order: a row per instrument). The portfolio kernel sums the
    add-ons of positions alone in their underlying this way: they are |q|, the short quantity or
    q times a per-contract charge (see margin.portfolio.KernelInputs). One row per instrument
    rather than one per sign: half the cache footprint (320 KB on the bench book), 2-3 ms of the
    kernel's 38."""


def _two_stream_types(
    index: Any,
    weight: Any,
    row_of: Any,
    scale: Any,
    rows: Any,
    index_b: Any,
    weight_b: Any,
    rows_b: Any,
    out: Any,
    n_vectors: Any,
    prefetch_ahead: Any,
    side_weight: Any,
    side_stop: Any,
    side_rows: Any,
    side_initial: Any,
    side_initial_row: Any,
    side_out: Any,
) -> tuple[Any, ...] | None:
    """The argument types of a valid `two_stream_row_sum` call, else None."""
    if not _stream_types_ok(index, weight, row_of, scale, rows):
        return None
    if not (_stream_types_ok(index_b, weight_b, types.none, types.none, rows_b) and _float_vector(out)):
        return None
    if isinstance(n_vectors, types.IntegerLiteral):
        if not _literals_ok(n_vectors, prefetch_ahead):
            return None
        vectors_type: Any = n_vectors
    elif isinstance(n_vectors, types.Integer) and _prefetch_ok(prefetch_ahead):
        vectors_type = types.intp  # known at run time: one specialised loop per count
    else:
        return None
    with_side = side_weight is not types.none
    if with_side:
        if not (_stream_types_ok(index, side_weight, types.none, types.none, side_rows)):
            return None
        if not (_float_vector(side_out) and isinstance(side_stop, types.Integer)):
            return None
        if not (_float_matrix(side_initial) and isinstance(side_initial_row, types.Integer)):
            return None
    elif not (side_rows is types.none and side_initial is types.none and side_out is types.none):
        return None
    return (
        *_stream_signature(index, weight, row_of, scale, rows),
        index_b,
        weight_b,
        types.intp,
        types.intp,
        rows_b,
        types.intp,
        out,
        vectors_type,
        prefetch_ahead,
        side_weight,
        types.intp if with_side else side_stop,
        side_rows,
        side_initial,
        types.intp if with_side else side_initial_row,
        side_out,
    )


def _for_each_count(
    builder: Any, n_vectors_type: Any, n_vectors: Any, emit: Callable[[int], list[Any]]
) -> list[Any]:
    """emit(n) for the literal vector count n, or, for a count known only at run time, a switch
    over one specialised copy per count (values outside 1..MAX_VECTORS take the 1-vector copy),
    whose results (scalars) meet in phis."""
    if isinstance(n_vectors_type, types.IntegerLiteral):
        return emit(int(n_vectors_type.literal_value))
    merge = builder.append_basic_block("nv.merge")
    blocks = [builder.append_basic_block(f"nv.{n}") for n in range(1, MAX_VECTORS + 1)]
    switch = builder.switch(n_vectors, blocks[0])
    for n, block in enumerate(blocks[1:], start=2):
        switch.add_case(ir.Constant(n_vectors.type, n), block)
    ends = []
    for n, block in enumerate(blocks, start=1):
        builder.position_at_end(block)
        results = emit(n)
        ends.append((builder.block, results))
        builder.branch(merge)
    builder.position_at_end(merge)
    merged = []
    for k, value in enumerate(ends[0][1]):
        phi = builder.phi(value.type)
        for block, results in ends:
            phi.add_incoming(results[k], block)
        merged.append(phi)
    return merged


def _two_stream_codegen(
    context: Any, builder: Any, arg_types: Any, args: Any, n_vec: int, store: bool = True
) -> list[Any]:
    """Emit `two_stream_row_sum` (its 22 arguments, typed by `_two_stream_types`) for n_vec
    vectors: stores the side sums and (if `store`) the block, and returns the block's sums as
    vectors (valid where the builder is left)."""
    ahead = int(arg_types[15].literal_value)
    col_offset, out_base = _out_block(context, builder, arg_types[13], args[13], args[12])
    first = _stream(context, builder, arg_types[:7], args[:7], col_offset)
    second_types = (*arg_types[7:9], types.intp, types.intp, types.none, types.none, arg_types[11])
    second_values = (*args[7:11], None, None, args[11])
    second = _stream(context, builder, second_types, second_values, col_offset)
    sums = _zero_sums(n_vec)
    if arg_types[16] is not types.none:
        side_rows_arr = context.make_array(arg_types[18])(context, builder, args[18])
        side = _SideStream(
            weight=context.make_array(arg_types[16])(context, builder, args[16]).data,
            rows_base=builder.ptrtoint(side_rows_arr.data, ir.IntType(64)),
            row_stride=builder.extract_value(side_rows_arr.strides, 0),
        )
        initial_arr = context.make_array(arg_types[19])(context, builder, args[19])
        initial_row = builder.add(
            builder.ptrtoint(initial_arr.data, ir.IntType(64)),
            builder.mul(args[20], builder.extract_value(initial_arr.strides, 0)),
        )
        side_sum = builder.load(_vector_at(builder, initial_row, 0), align=8)
        zero = ir.Constant(ir.IntType(64), 0)
        _, side_base = _out_block(context, builder, arg_types[21], args[21], zero)
        split = args[17]
        sums = _emit_sums_by_pass(builder, replace(first, stop=split), [*sums, side_sum], ahead, side)
        _store_sums(builder, side_base, sums[n_vec:])
        first = replace(first, start=split)
        sums = sums[:n_vec]
    sums = _emit_sums_by_pass(builder, first, sums, ahead)
    sums = _emit_sums_by_pass(builder, second, sums, 0)
    if store:
        _store_sums(builder, out_base, sums)
    return sums


def _two_stream_row_sum(
    typingctx: Any,
    index: Any,
    weight: Any,
    start: Any,
    stop: Any,
    row_of: Any,
    scale: Any,
    rows: Any,
    index_b: Any,
    weight_b: Any,
    start_b: Any,
    stop_b: Any,
    rows_b: Any,
    col0: Any,
    out: Any,
    n_vectors: Any,
    prefetch_ahead: Any,
    side_weight: Any,
    side_stop: Any,
    side_rows: Any,
    side_initial: Any,
    side_initial_row: Any,
    side_out: Any,
) -> Any:
    arg_types = _two_stream_types(
        index, weight, row_of, scale, rows, index_b, weight_b, rows_b, out, n_vectors, prefetch_ahead,
        side_weight, side_stop, side_rows, side_initial, side_initial_row, side_out,
    )  # fmt: skip
    if arg_types is None:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        def emit(n_vec: int) -> list[Any]:
            _two_stream_codegen(context, builder, signature.args, args, n_vec)
            return []

        _for_each_count(builder, signature.args[14], args[14], emit)
        return context.get_dummy_value()

    return types.void(*arg_types), codegen


_two_stream_row_sum.__doc__ = _TWO_STREAM_DOC


def _two_stream_row_sum_worst(
    typingctx: Any,
    index: Any,
    weight: Any,
    start: Any,
    stop: Any,
    row_of: Any,
    scale: Any,
    rows: Any,
    index_b: Any,
    weight_b: Any,
    start_b: Any,
    stop_b: Any,
    rows_b: Any,
    col0: Any,
    out: Any,
    n_vectors: Any,
    prefetch_ahead: Any,
    side_weight: Any,
    side_stop: Any,
    side_rows: Any,
    side_initial: Any,
    side_initial_row: Any,
    side_out: Any,
    worst: Any,
) -> Any:
    """`two_stream_row_sum` over the whole scenario row (col0 = 0, 8·n_vectors >= n_scen), then,
    on the sums still in registers, the worst grid scenario and the capped depeg loss:

        worst = (loss_weight, offset, n_grid, n_scen, depeg_cap)   (float64 arrays of >= 8·V)
        loss_s = -loss_weight[s]·pnl[s] - offset[s]
        arg    = first s in [0, n_grid) with the largest loss (0 if none: n_grid = 0 or all NaN)
        grid   = max(loss_arg, 0)   (0 if n_grid = 0)
        depeg  = max(0, max_{s in [n_grid, n_scen)} min(loss_s, depeg_cap·grid)), 0 if start = stop

    returned as (arg, grid, depeg): the same numbers as `first_worst` on the stored block and the
    depeg loop written in numba (the portfolio kernel's single-group path), without reloading the
    32 sums, and with the maxima as vector max trees rather than a loop of compares."""
    arg_types = _two_stream_types(
        index, weight, row_of, scale, rows, index_b, weight_b, rows_b, out, n_vectors, prefetch_ahead,
        side_weight, side_stop, side_rows, side_initial, side_initial_row, side_out,
    )  # fmt: skip
    if arg_types is None or not isinstance(worst, types.BaseTuple) or len(worst) != 5:
        return None
    worst_types: tuple[Any, ...] = tuple(worst.types)  # type: ignore[attr-defined]
    loss_weight, offset, n_grid, n_scen, cap = worst_types
    if not (_float_vector(loss_weight) and _float_vector(offset)):
        return None
    if not (isinstance(n_grid, types.Integer) and isinstance(n_scen, types.Integer) and cap == types.float64):
        return None
    result = types.Tuple((types.intp, types.float64, types.float64))  # type: ignore[no-untyped-call]

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fields = [builder.extract_value(args[22], k) for k in range(5)]
        loss_weight, offset = (
            context.make_array(worst_types[k])(context, builder, fields[k]).data for k in range(2)
        )
        n_grid_v = context.cast(builder, fields[2], worst_types[2], types.intp)
        n_scen_v = context.cast(builder, fields[3], worst_types[3], types.intp)
        has_positions = builder.icmp_signed("<", args[2], args[3])

        def emit(n_vec: int) -> list[Any]:
            # The block is not stored: the caller wants only the three numbers.
            sums = _two_stream_codegen(context, builder, signature.args, args, n_vec, store=False)
            return list(
                _emit_worst(builder, sums, loss_weight, offset, n_grid_v, n_scen_v, fields[4], has_positions)
            )

        values = _for_each_count(builder, signature.args[14], args[14], emit)
        return context.make_tuple(builder, result, values)

    return result(*arg_types, worst), codegen


def _emit_worst(
    builder: Any,
    sums: list[Any],
    loss_weight: Any,
    offset: Any,
    n_grid: Any,
    n_scen: Any,
    cap_rate: Any,
    has_positions: Any,
) -> tuple[Any, Any, Any]:
    """(arg, grid, depeg) of `two_stream_row_sum_worst` from the block's sums."""
    i1 = ir.IntType(1)
    i32 = ir.IntType(32)
    i64 = ir.IntType(64)
    f64 = ir.DoubleType()
    vec = ir.VectorType(f64, LANES)
    ivec = ir.VectorType(i64, LANES)
    splat0 = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)

    def splat(value: Any, vector_type: Any) -> Any:
        one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(i32, 0))
        return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined), splat0)

    def larger(x: Any, y: Any) -> Any:
        """x if x > y else y: one vmaxpd (no NaN fix-up, unlike llvm.maxnum)."""
        return builder.select(builder.fcmp_ordered(">", x, y), x, y)

    def across(v: Any) -> Any:
        """The largest lane, halving the vector with shuffles."""
        width = LANES
        while width > 1:
            width //= 2
            halves = [ir.Constant(ir.VectorType(i32, width), list(range(k, k + width))) for k in (0, width)]
            v = larger(*(builder.shuffle_vector(v, v, half) for half in halves))
        return builder.extract_element(v, ir.Constant(i32, 0))

    def tree(vectors: list[Any]) -> Any:
        """Lane-wise largest of the vectors, as a balanced tree (no serial chain)."""
        while len(vectors) > 1:
            pairs = range(0, len(vectors) - 1, 2)
            vectors = [larger(vectors[k], vectors[k + 1]) for k in pairs] + vectors[len(vectors) & ~1 :]
        return vectors[0]

    vec_ptr = vec.as_pointer()
    minus_inf = ir.Constant(vec, [float("-inf")] * LANES)
    zero_vec = ir.Constant(vec, [0.0] * LANES)
    grid_end = splat(n_grid, ivec)
    scen_end = splat(n_scen, ivec)
    losses, grid_losses, valid_depeg = [], [], []
    for v, total in enumerate(sums):
        w, o = (
            builder.load(builder.bitcast(builder.gep(a, [ir.Constant(i64, LANES * v)]), vec_ptr), align=8)
            for a in (loss_weight, offset)
        )
        loss = builder.fsub(builder.fneg(builder.fmul(w, total)), o)
        lane = ir.Constant(ivec, list(range(LANES * v, LANES * (v + 1))))
        in_grid = builder.icmp_signed("<", lane, grid_end)
        losses.append(loss)
        # As first_worst: a NaN loss is never the worst (nor -inf, the start of its running max).
        counted = builder.and_(in_grid, builder.fcmp_ordered(">", loss, minus_inf))
        grid_losses.append(builder.select(counted, loss, minus_inf))
        valid_depeg.append(builder.and_(builder.not_(in_grid), builder.icmp_signed("<", lane, scen_end)))
    best = across(tree(grid_losses))
    # First lane holding the maximum: the compare masks as one bit field, then its lowest set bit.
    best_vec = splat(best, vec)
    bits = [builder.bitcast(builder.fcmp_ordered("==", g, best_vec), ir.IntType(LANES)) for g in grid_losses]
    field = ir.Constant(i64, 0)
    for v, b in enumerate(bits):
        field = builder.or_(field, builder.shl(builder.zext(b, i64), ir.Constant(i64, LANES * v)))
    cttz = _llvm_function(builder, ir.FunctionType(i64, [i64, i1]), "llvm.cttz.i64")
    first = builder.call(cttz, [field, ir.Constant(i1, 0)])
    found = builder.fcmp_ordered(">", best, ir.Constant(f64, float("-inf")))
    arg = builder.select(found, first, ir.Constant(i64, 0))
    grid = builder.select(builder.fcmp_ordered(">", best, ir.Constant(f64, 0.0)), best, ir.Constant(f64, 0.0))
    cap = splat(builder.fmul(cap_rate, grid), vec)
    capped = [
        builder.select(ok, builder.select(builder.fcmp_ordered("<", loss, cap), loss, cap), zero_vec)
        for loss, ok in zip(losses, valid_depeg, strict=True)
    ]
    depeg = larger(across(tree(capped)), ir.Constant(f64, 0.0))
    depeg = builder.select(has_positions, depeg, ir.Constant(f64, 0.0))
    return arg, grid, depeg


# The typing function above takes numba's typing context first; callers (inside njit code) pass
# only the real arguments, so the public names are typed loosely.
weighted_row_sum: Any = intrinsic(_weighted_row_sum)
two_stream_row_sum: Any = intrinsic(_two_stream_row_sum)
two_stream_row_sum_worst: Any = intrinsic(_two_stream_row_sum_worst)


def _first_worst(typingctx: Any, pnl: Any, weight: Any, offset: Any, n: Any) -> Any:
    """Typing of `first_worst` (see there)."""
    for array in (pnl, weight, offset):
        if not (isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.float64):
            return None
    sig = types.intp(pnl, weight, offset, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arrays = [context.make_array(signature.args[k])(context, builder, args[k]).data for k in range(3)]
        n_v = args[3]
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        vec = ir.VectorType(ir.DoubleType(), LANES)
        vec_ptr = vec.as_pointer()
        lane = ir.Constant(ir.VectorType(i64, LANES), list(range(LANES)))
        minus_inf = ir.Constant(vec, [float("-inf")] * LANES)
        splat0 = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
        undef_vec = ir.Constant(vec, ir.Undefined)
        undef_i64 = ir.Constant(ir.VectorType(i64, LANES), ir.Undefined)

        def splat(value: Any, undef: Any) -> Any:
            one = builder.insert_element(undef, value, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, undef, splat0)

        def block_loss(base: Any) -> tuple[Any, Any, Any]:
            """(losses, scenario indices, index < n) of lanes base..base+7 (lanes >= n read padding)."""
            p, w, o = (
                builder.load(builder.bitcast(builder.gep(a, [base]), vec_ptr), align=8) for a in arrays
            )
            loss = builder.fsub(builder.fneg(builder.fmul(w, p)), o)
            index = builder.add(splat(base, undef_i64), lane)
            valid = builder.icmp_signed("<", index, splat(n_v, undef_i64))
            return loss, index, valid

        reduce_max = _llvm_function(
            builder, ir.FunctionType(ir.DoubleType(), [vec]), "llvm.vector.reduce.fmax.v8f64"
        )
        reduce_min = _llvm_function(
            builder, ir.FunctionType(i64, [ir.VectorType(i64, LANES)]), "llvm.vector.reduce.smin.v8i64"
        )
        step = ir.Constant(i64, LANES)
        zero = ir.Constant(i64, 0)
        big = ir.Constant(ir.VectorType(i64, LANES), [2**62] * LANES)
        # One pass: per lane, the largest loss so far and the first scenario reaching it.
        entry = builder.block
        head = builder.append_basic_block("fw.head")
        body = builder.append_basic_block("fw.body")
        done = builder.append_basic_block("fw.done")
        builder.branch(head)
        with builder.goto_block(head):
            base = builder.phi(i64)
            running = builder.phi(vec)
            running_at = builder.phi(ir.VectorType(i64, LANES))
            base.add_incoming(zero, entry)
            running.add_incoming(minus_inf, entry)
            running_at.add_incoming(big, entry)
            builder.cbranch(builder.icmp_signed("<", base, n_v), body, done)
        with builder.goto_block(body):
            loss, index, valid = block_loss(base)
            bigger = builder.and_(builder.fcmp_ordered(">", loss, running), valid)
            base.add_incoming(builder.add(base, step), builder.block)
            running.add_incoming(builder.select(bigger, loss, running), builder.block)
            running_at.add_incoming(builder.select(bigger, index, running_at), builder.block)
            builder.branch(head)
        builder.position_at_end(done)
        # Across lanes: the largest loss, then the smallest scenario index holding it.
        best = builder.call(reduce_max, [running])
        holds = builder.fcmp_ordered("==", running, splat(best, undef_vec))
        first = builder.call(reduce_min, [builder.select(holds, running_at, big)])
        found = builder.icmp_signed("<", first, ir.Constant(i64, 2**62))
        return builder.select(found, first, zero)

    return sig, codegen


# first_worst(pnl, weight, offset, n) -> s: the first s in [0, n) with the largest loss
# -weight[s]·pnl[s] - offset[s] (0 when n == 0 or every loss is NaN), in one pass of vector blocks:
# per lane the running maximum and the first scenario reaching it (strict >), then across lanes
# the maximum and the smallest scenario holding it. No data-dependent branch and no serial chain
# of comparisons (bench/bench_simd.py times it against the scalar loop, within the scenario pass).
# The three arrays must hold whole blocks (at least n rounded up to LANES elements); lanes past n
# are masked out.
first_worst: Any = intrinsic(_first_worst)
