"""The vector layout core.simd's intrinsics work in, as plain constants: the portfolio kernel and
its inputs size their arrays by these without importing numba (core.simd does)."""

LANES = 8  # float64 lanes per vector register block (one 64-byte cache line)
# The side stream's lanes: each is charged per |w| (w a position's signed size), except these.
SIDE_SHORT_LANE = 2  # per short contract, max(-w, 0): a charge on shorts only
SIDE_SIGNED_LANE = 5  # per signed contract, w: a flow either way (funding)
MAX_VECTORS = 4  # 32 partial sums a block: 4 zmm registers (8 ymm: summed in two passes, core.simd)
