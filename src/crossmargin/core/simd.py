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
vector multiply and add, and stored once at the end: on the 1M-account bench book this halved the
P&L pass (41.7 -> 20.5 ms, 2 threads, same run). Two sets of sums (even and odd positions) halve
the chain of dependent additions again (whole kernel 98 -> 83 ms, best of 60, same run). With
prefetch_ahead > 0 it also prefetches the row of the position that many places later (clamped to
the index array, so across account boundaries too): the rows are gathered at random, and the hint
keeps more cache misses in flight.

`first_worst` (below) finds the worst scenario of an account in vector blocks.

No bounds checks: callers guarantee `rows` is C-contiguous float64 with at least c + 8·V
columns, `out` is contiguous float64 with at least c + 8·V elements, every index[p] is a valid
position in row_of and scale, and every row_of entry a valid row. V (1..4), `accumulate` and
`prefetch_ahead` must be compile-time constants.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8  # float64 lanes per vector register block (one 64-byte cache line)
MAX_VECTORS = 4  # 32 partial sums: 4 zmm (or 8 ymm) registers, leaving room for the row loads


def _int_vector(t: Any) -> bool:
    return isinstance(t, types.Array) and t.ndim == 1 and isinstance(t.dtype, types.Integer)


def _float_vector(t: Any) -> bool:
    return isinstance(t, types.Array) and t.ndim == 1 and t.dtype == types.float64


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
    mapped = row_of is not types.none
    if mapped and not (_int_vector(row_of) and _float_vector(scale)):
        return None
    if not mapped and scale is not types.none:
        return None
    if not (_int_vector(index) and _float_vector(weight)):
        return None
    if not (
        isinstance(rows, types.Array)
        and rows.ndim == 2
        and rows.layout == "C"
        and rows.dtype == types.float64
    ):
        return None
    if not _float_vector(out):
        return None
    if not isinstance(n_vectors, types.IntegerLiteral) or not 1 <= n_vectors.literal_value <= MAX_VECTORS:
        return None
    if not isinstance(accumulate, types.BooleanLiteral):
        return None
    if not isinstance(prefetch_ahead, types.IntegerLiteral) or prefetch_ahead.literal_value < 0:
        return None
    n_vec = int(n_vectors.literal_value)
    add_to_out = bool(accumulate.literal_value)
    ahead = int(prefetch_ahead.literal_value)
    sig = types.void(
        index,
        weight,
        types.intp,
        types.intp,
        row_of,
        scale,
        rows,
        types.intp,
        out,
        n_vectors,
        accumulate,
        prefetch_ahead,
    )

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arg_types = signature.args
        index_arr = context.make_array(arg_types[0])(context, builder, args[0])
        weight_arr = context.make_array(arg_types[1])(context, builder, args[1])
        if mapped:
            row_of_data = context.make_array(arg_types[4])(context, builder, args[4]).data
            scale_data = context.make_array(arg_types[5])(context, builder, args[5]).data
        rows_arr = context.make_array(arg_types[6])(context, builder, args[6])
        out_arr = context.make_array(arg_types[8])(context, builder, args[8])
        start_v, stop_v, col0_v = args[2], args[3], args[7]
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.DoubleType(), LANES)
        vec_ptr = vec.as_pointer()
        splat = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        row_stride = builder.extract_value(rows_arr.strides, 0)  # bytes
        col_offset = builder.mul(col0_v, ir.Constant(i64, 8))
        rows_base = builder.add(builder.ptrtoint(rows_arr.data, i64), col_offset)
        out_base = builder.add(builder.ptrtoint(out_arr.data, i64), col_offset)
        last = builder.sub(builder.extract_value(index_arr.shape, 0), ir.Constant(i64, 1))

        def block_ptr(base: Any, v: int) -> Any:
            return builder.inttoptr(builder.add(base, ir.Constant(i64, 64 * v)), vec_ptr)

        def row_address(position: Any) -> tuple[Any, Any]:
            """(address of the block in rows, instrument) for this position."""
            i = _load_index(builder, index_arr.data, position)
            r = _load_index(builder, row_of_data, i) if mapped else i
            return builder.add(rows_base, builder.mul(r, row_stride)), i

        if add_to_out:
            initial = [builder.load(block_ptr(out_base, v), align=8) for v in range(n_vec)]
        else:
            initial = [ir.Constant(vec, [0.0] * LANES) for _ in range(n_vec)]

        def splat_weight(position: Any, i: Any) -> Any:
            w = builder.load(builder.gep(weight_arr.data, [position]))
            if mapped:
                w = builder.fmul(w, builder.load(builder.gep(scale_data, [i])))
            w_vec = builder.insert_element(ir.Constant(vec, ir.Undefined), w, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(w_vec, ir.Constant(vec, ir.Undefined), splat)

        def add_position(position: Any, sums: list[Any]) -> list[Any]:
            row, i = row_address(position)
            w_vec = splat_weight(position, i)
            if ahead:
                later = builder.add(position, ir.Constant(i64, ahead))
                later = builder.select(builder.icmp_signed("<", later, last), later, last)
                later_row, _ = row_address(later)
                for v in range(n_vec):
                    _prefetch(builder, block_ptr(later_row, v))
            # fmul then fadd, not a fused multiply-add: with two roundings, w·x + (-w)·x is exactly
            # 0, so a perfect hedge nets to exactly nothing.
            return [
                builder.fadd(sums[v], builder.fmul(w_vec, builder.load(block_ptr(row, v), align=8)))
                for v in range(n_vec)
            ]

        zero = [ir.Constant(vec, [0.0] * LANES) for _ in range(n_vec)]
        # Two sets of sums, even and odd positions, so that consecutive positions do not wait on
        # each other's additions; a last odd position goes to the first set, then the sets add up.
        entry = builder.block
        head = builder.append_basic_block("wrs.head")
        body = builder.append_basic_block("wrs.body")
        tail = builder.append_basic_block("wrs.tail")
        odd = builder.append_basic_block("wrs.odd")
        done = builder.append_basic_block("wrs.done")
        builder.branch(head)
        with builder.goto_block(head):
            p = builder.phi(i64)
            even_sums = [builder.phi(vec) for _ in range(n_vec)]
            odd_sums = [builder.phi(vec) for _ in range(n_vec)]
            p.add_incoming(start_v, entry)
            for a, init in zip(even_sums, initial, strict=True):
                a.add_incoming(init, entry)
            for b, z in zip(odd_sums, zero, strict=True):
                b.add_incoming(z, entry)
            next_p = builder.add(p, ir.Constant(i64, 1))
            builder.cbranch(builder.icmp_signed("<", next_p, stop_v), body, tail)
        with builder.goto_block(body):
            new_even = add_position(p, even_sums)
            new_odd = add_position(next_p, odd_sums)
            p.add_incoming(builder.add(p, ir.Constant(i64, 2)), builder.block)
            for phi, new in zip(even_sums + odd_sums, new_even + new_odd, strict=True):
                phi.add_incoming(new, builder.block)
            builder.branch(head)
        with builder.goto_block(tail):
            builder.cbranch(builder.icmp_signed("<", p, stop_v), odd, done)
        with builder.goto_block(odd):
            last_even = add_position(p, even_sums)
            builder.branch(done)
        builder.position_at_end(done)
        merged = [builder.phi(vec) for _ in range(n_vec)]
        for v in range(n_vec):
            merged[v].add_incoming(even_sums[v], tail)
            merged[v].add_incoming(last_even[v], odd)
        for v in range(n_vec):
            builder.store(builder.fadd(merged[v], odd_sums[v]), block_ptr(out_base, v), align=8)
        return context.get_dummy_value()

    return sig, codegen


# The typing function above takes numba's typing context first; callers (inside njit code) pass
# only the real arguments, so the public names are typed loosely.
weighted_row_sum: Any = intrinsic(_weighted_row_sum)


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
# the maximum and the smallest scenario holding it. No data-dependent branch: a scalar max/argmax
# chain cost ~20 ms of the 1M-account kernel. The three arrays must hold whole blocks (at least n
# rounded up to LANES elements); lanes past n are masked out.
first_worst: Any = intrinsic(_first_worst)
