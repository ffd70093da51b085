"""SGEMM (fastnn.ops.matmul over csrc/gemm*.c) against float64 numpy and the
C naive twin, on every instruction-set path this machine supports.

Shapes come from each path's own blocking (fastnn.info()['gemm_blocking']), so
edge tiles and cache-block boundaries are straddled whatever the lead tunes
them to. Two kinds of check:

* exact: small-integer operands with power-of-two alpha/beta, where every
  float32 partial sum is exact, so every kernel must reproduce numpy bit for
  bit (any indexing, packing or epilogue slip shows, with no tolerance);
* tolerance: standard-normal operands against float64, with the forward error
  bound of a float32 dot product, |err| <= 2u (K + 8) (|alpha||A||B| + |beta C|
  + |bias|), u = 2**-24.
"""
import itertools
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn._ext import _C

F32 = np.float32
U = 2.0 ** -24                   # unit roundoff of float32
TRANS = list(itertools.product([False, True], repeat=2))
TRANS_IDS = ["NN", "NT", "TN", "TT"]


# ------------------------------------------------------------------ helpers --

def blocking(isa):
    old = fastnn.get_isa()
    fastnn.set_isa(isa)
    try:
        return dict(fastnn.info()["gemm_blocking"])
    finally:
        fastnn.set_isa(old)


BLOCKING = {isa: blocking(isa) for isa in fastnn.available_isas()}


def operands(rng, M, N, K, ta, tb, ints=False):
    """a stored as (M,K) or (K,M) for trans_a, b as (K,N) or (N,K) for trans_b."""
    def draw(shape):
        if ints:
            return rng.integers(-3, 4, size=shape).astype(F32)
        return rng.standard_normal(shape).astype(F32)
    a = draw((K, M) if ta else (M, K))
    b = draw((N, K) if tb else (K, N))
    return a, b


def bias_array(rng, kind, M, N, ints=False):
    if kind is None:
        return None
    shape = {"col": (N,), "col2": (1, N), "row": (M, 1)}[kind]
    if ints:
        return rng.integers(-5, 6, size=shape).astype(F32)
    return rng.standard_normal(shape).astype(F32)


def reference(a, b, ta, tb, alpha=1.0, beta=0.0, c0=None, bias=None, relu=False):
    """(float64 result, per-element error bound for a float32 GEMM)."""
    A = np.asarray(a, np.float64)
    B = np.asarray(b, np.float64)
    A = A.T if ta else A
    B = B.T if tb else B
    K = A.shape[1]
    r = alpha * (A @ B)
    scale = abs(alpha) * (np.abs(A) @ np.abs(B))
    if beta != 0.0:
        r = r + beta * c0.astype(np.float64)
        scale = scale + abs(beta) * np.abs(c0.astype(np.float64))
    if bias is not None:
        bb = np.asarray(bias, np.float64)
        bb = bb.reshape(1, -1) if bb.ndim == 1 else bb      # (1, N) or (M, 1) broadcast
        r = r + bb
        scale = scale + np.abs(bb)
    if relu:
        r = np.maximum(r, 0.0)
    # 1e-35: products flushed to zero (FTZ) are off by < 1.2e-38 each.
    return r, 2 * U * (K + 8) * scale + 1e-35


def assert_close(got, want, tol, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= tol)               # NaN counts as bad
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements out of tolerance; first at "
            f"{idx}: got {got[idx]!r}, want {want[idx]!r}, |err| {err[idx]:.3g} > tol {tol[idx]:.3g}")


def assert_bits_equal(x, y, what):
    assert x.shape == y.shape and x.dtype == y.dtype == F32, what
    xb, yb = x.view(np.uint32), y.view(np.uint32)
    if not np.array_equal(xb, yb):
        idx = tuple(np.argwhere(xb != yb)[0])
        raise AssertionError(f"{what}: {int((xb != yb).sum())} elements differ; "
                             f"first at {idx}: {x[idx]!r} vs {y[idx]!r}")


def bias_mode(bias, M, N):
    if bias is None:
        return 0, None
    b = np.ascontiguousarray(bias)
    return (2 if b.shape == (M, 1) and b.shape != (1, N) else 1), b


def naive(a, b, ta, tb, M, N, K, alpha=1.0, beta=0.0, c0=None, bias=None, relu=False):
    """The C naive twin (float64 accumulation), called directly."""
    c = c0.copy() if beta != 0.0 else np.full((M, N), np.nan, F32)
    mode, barr = bias_mode(bias, M, N)
    _C.sgemm(ta, tb, M, N, K, alpha, a, b, beta, c, barr, mode, relu, naive=True)
    return c


# Epilogue variants (alpha, beta, bias kind, relu, out given when beta == 0).
# Power-of-two alpha/beta keep the integer data exact.
EPILOGUES = [
    (1.0, 0.0, None, False, False),
    (1.0, 0.0, "col", True, True),
    (-0.5, 1.0, "row", False, True),
    (2.0, -2.0, "col2", True, True),
    (1.0, 0.0, "row", True, False),
    (0.5, 0.0, "col", False, True),
    (-1.0, 0.5, None, True, True),
    (0.0, -1.0, "col", False, True),
    (1.0, 1.0, "col2", False, True),
    (-2.0, 0.0, "row", True, True),
]
ALL_EPILOGUES = [(al, be, bk, rl, og)
                 for al in (1.0, -0.5, 0.0) for be in (0.0, 1.0, -2.0)
                 for bk in (None, "col", "col2", "row") for rl in (False, True)
                 for og in ((False, True) if be == 0.0 else (True,))]


def run_matmul(rng, a, b, ta, tb, M, N, epi, ints=False):
    """Call ops.matmul with one epilogue variant; returns (result, kwargs used)."""
    alpha, beta, bkind, relu, out_given = epi
    c0 = None
    if beta != 0.0:
        c0 = (rng.integers(-4, 5, size=(M, N)) if ints else rng.standard_normal((M, N))).astype(F32)
    bias = bias_array(rng, bkind, M, N, ints)
    out = None
    if beta != 0.0:
        out = c0.copy()
    elif out_given:
        out = np.full((M, N), np.nan, F32)       # beta == 0: must not be read
    got = ops.matmul(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=out,
                     bias=bias, relu=relu)
    if out is not None:
        assert got is out
    assert got.shape == (M, N) and got.dtype == F32
    return got, dict(alpha=alpha, beta=beta, c0=c0, bias=bias, relu=relu)


def edge_sizes(r, extra=()):
    """1, 2, a prime, and r*k-1, r*k, r*k+1 for k = 1, 2, 3 (sorted, positive)."""
    s = {1, 2, 5, 7} | set(extra)
    for k in (1, 2, 3):
        s |= {r * k - 1, r * k, r * k + 1}
    return sorted(x for x in s if x >= 1)


# ------------------------------------------------------ edge tiles (exact) --

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_edge_tiles_exact(isa, ta, tb, threads, rng):
    """Every M around 1..3 micro-tile heights x every N around 1..3 tile widths
    (and the 8/16-float vector widths), a few K, cycling the epilogues;
    integer data, so the result must equal numpy exactly."""
    fastnn.set_isa(isa)
    fastnn.set_num_threads(threads)
    bl = BLOCKING[isa]
    Ms = edge_sizes(bl["mr"])
    Ns = edge_sizes(bl["nr"], extra=(7, 8, 9, 15, 16, 17, 31, 33))
    n = 0
    for K in (1, 3, 8, 17):
        for M in Ms:
            for N in Ns:
                a, b = operands(rng, M, N, K, ta, tb, ints=True)
                epi = EPILOGUES[n % len(EPILOGUES)]
                n += 1
                got, kw = run_matmul(rng, a, b, ta, tb, M, N, epi, ints=True)
                want, _ = reference(a, b, ta, tb, **kw)
                if not np.array_equal(got, want):
                    bad = np.argwhere(got != want)[0]
                    pytest.fail(f"{isa} {threads}T ta={ta} tb={tb} M={M} N={N} K={K} epilogue={epi}: "
                                f"{int((got != want).sum())} wrong, first at {tuple(bad)}: "
                                f"{got[tuple(bad)]} != {want[tuple(bad)]}")


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_all_epilogues_exact(isa, ta, tb, rng):
    """Every combination of alpha, beta, bias kind, relu and out-given on a
    full-tile and an edge-tile shape, exactly."""
    fastnn.set_isa(isa)
    bl = BLOCKING[isa]
    for M, N, K in ((bl["mr"], bl["nr"], 9), (bl["mr"] + 1, bl["nr"] + 3, 20), (3, 5, 1)):
        for epi in ALL_EPILOGUES:
            a, b = operands(rng, M, N, K, ta, tb, ints=True)
            got, kw = run_matmul(rng, a, b, ta, tb, M, N, epi, ints=True)
            want, _ = reference(a, b, ta, tb, **kw)
            np.testing.assert_array_equal(got, want, err_msg=f"{isa} M={M} N={N} K={K} {epi}")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_rows_of_full_tiles_exact(isa, ta, tb, threads, rng):
    """Rows of many full-width tiles (the AVX2 row kernel: a row panel's
    tiles in one call, A packed or read in place, B packed or in place) with
    an edge tile after them, on every epilogue (1 thread) or a cycle of them
    (2), over one and several K blocks: the per-column bias moves tile by
    tile, the later blocks add to C. The last row panel with 1-5 rows too
    (1, 2 and 4 rows run three tiles at a time, 4 as two of 24 columns, 3
    rows two at a time: 7 tiles leave one; 1 and 2 rows with 8 tiles leave
    two, which go as one). Integer data, so exactly numpy's."""
    fastnn.set_isa(isa)
    fastnn.set_num_threads(threads)
    bl = BLOCKING[isa]
    mr, nr, kc = bl["mr"], bl["nr"], bl["kc"]
    epis = ALL_EPILOGUES if threads == 1 else EPILOGUES
    shapes = [(2 * mr, 7 * nr, 40), (2 * mr, 7 * nr, kc + 3), (3 * mr + 2, 9 * nr + 5, 2 * kc + 1),
              (mr + 1, 8 * nr + 5, kc + 3)]
    shapes += [(2 * mr + r, 7 * nr, 40) for r in range(1, mr)] + [(2 * mr + 2, 8 * nr, 40)]
    for M, N, K in shapes:
        for epi in epis:
            a, b = operands(rng, M, N, K, ta, tb, ints=True)
            got, kw = run_matmul(rng, a, b, ta, tb, M, N, epi, ints=True)
            want, _ = reference(a, b, ta, tb, **kw)
            np.testing.assert_array_equal(got, want, err_msg=f"{isa} {threads}T M={M} N={N} "
                                                             f"K={K} {epi}")


@pytest.mark.parametrize("threads", [1, 2])
def test_b_packed_by_first_row_panel_same_bits(isa, threads, rng):
    """A row-major op(B) whose rows spread over L1's sets (N not a multiple
    of 128) is packed by each B block's first row panel while it computes
    with it (the AVX2 path's kernel_row_pack); the same B as a view with its
    rows 2048 floats apart is packed before the block instead. Both give the
    same bits and match float64: several K and N blocks, a last column
    panel of 5, a last row panel of 1 or 4 rows, each epilogue kind. (Up to
    2 MR rows B is read in place, not packed: not these shapes.)"""
    fastnn.set_isa(isa)
    fastnn.set_num_threads(threads)
    bl = BLOCKING[isa]
    mr, nr, kc, nc = bl["mr"], bl["nr"], bl["kc"], bl["nc"]
    N = min(2 * nc, 1900) + nr + 5
    for M, K in [(3 * mr, 2 * kc + 7), (3 * mr + 4, kc + 1), (2 * mr + 1, 70)]:
        a, b = operands(rng, M, N, K, False, False)
        wide = np.zeros((K, 2048), F32)
        wide[:, :N] = b
        for epi in EPILOGUES[:4]:
            seed = int(rng.integers(1 << 30))
            got, kw = run_matmul(np.random.default_rng(seed), a, b, False, False, M, N, epi)
            apart, _ = run_matmul(np.random.default_rng(seed), a, wide[:, :N], False, False,
                                  M, N, epi)
            what = f"{isa} {threads}T M={M} N={N} K={K} {epi}"
            assert_bits_equal(got, apart, what)
            want, tol = reference(a, b, False, False, **kw)
            assert_close(got, want, tol, what)


# ------------------------------------------------ cache blocks (tolerance) --

def block_cases():
    """(isa, M, N, K) straddling each cache block of each path."""
    cases = []
    for isa, bl in BLOCKING.items():
        mr, nr, kc, mc, nc = bl["mr"], bl["nr"], bl["kc"], bl["mc"], bl["nc"]
        shapes = [(2 * mr + 1, nr + 3, K) for K in (kc - 1, kc, kc + 1, 2 * kc - 1, 2 * kc + 1, 3 * kc + 1)]
        shapes += [(M, nr - 1, 9) for M in (mc - 1, mc, mc + 1, 2 * mc + mr + 1)]
        shapes += [(mr + 1, N, 9) for N in (nc - 1, nc, nc + 1, nc + nr + 1, 2 * nc + 1)]
        shapes += [(3 * mr - 1, 3 * nr + 1, kc + 1), (3 * mr + 1, 3 * nr - 1, 2 * kc),
                   (mc + 1, nc + 1, kc + 1), (13, 37, 101),
                   # B read in place below 64Ki floats of op(B), packed above
                   (mr + 1, 65536 // kc - 1, kc), (mr + 1, 65536 // kc + 1, kc)]
        for s in shapes:
            cases.append(pytest.param(isa, *s, id=f"{isa}-{s[0]}x{s[1]}x{s[2]}"))
    return cases


@pytest.mark.parametrize("isa_,M,N,K", block_cases())
def test_cache_blocks(isa_, M, N, K, rng):
    """Shapes straddling kc, mc, nc (and multiples of mr, nr), all four
    transpose combinations on 1 and 2 threads, epilogues cycled; against
    float64 and, where cheap, the C naive twin."""
    fastnn.set_isa(isa_)
    n = (M * 131 + N * 17 + K) % len(EPILOGUES)
    for (ta, tb), threads in itertools.product(TRANS, (1, 2)):
        fastnn.set_num_threads(threads)
        a, b = operands(rng, M, N, K, ta, tb)
        epi = EPILOGUES[n % len(EPILOGUES)]
        n += 1
        got, kw = run_matmul(rng, a, b, ta, tb, M, N, epi)
        want, tol = reference(a, b, ta, tb, **kw)
        what = f"{isa_} {threads}T ta={ta} tb={tb} M={M} N={N} K={K} epilogue={epi}"
        assert_close(got, want, tol, what)
        if M * N * K <= 2_000_000:
            assert_close(got, naive(a, b, ta, tb, M, N, K, **kw).astype(np.float64), tol,
                         what + " vs naive twin")


def test_naive_twin_matches_float64(rng):
    """The naive twin accumulates in float64 and rounds once: within one
    float32 rounding of numpy's float64 result."""
    for (ta, tb), epi, (M, N, K) in zip(itertools.cycle(TRANS), ALL_EPILOGUES,
                                        itertools.cycle([(1, 1, 1), (7, 13, 300), (33, 2, 0),
                                                         (16, 49, 17), (5, 64, 513)])):
        a, b = operands(rng, M, N, K, ta, tb)
        alpha, beta, bkind, relu, _ = epi
        c0 = rng.standard_normal((M, N)).astype(F32) if beta else None
        bias = bias_array(rng, bkind, M, N)
        got = naive(a, b, ta, tb, M, N, K, alpha, beta, c0, bias, relu)
        want, tol = reference(a, b, ta, tb, alpha, beta, c0, bias, relu)
        bound = U * np.abs(want) + 1e-9 * tol + 1e-38
        assert_close(got, want, bound, f"naive M={M} N={N} K={K} ta={ta} tb={tb} {epi}")


def test_odd_scales(isa, rng):
    """Operands spanning many binades and non-power-of-two alpha/beta."""
    fastnn.set_isa(isa)
    M, N, K = 29, 53, 300
    for ta, tb in TRANS:
        a, b = operands(rng, M, N, K, ta, tb)
        a *= np.exp2(rng.integers(-20, 20, size=a.shape)).astype(F32)
        b *= np.exp2(rng.integers(-20, 20, size=b.shape)).astype(F32)
        c0 = rng.standard_normal((M, N)).astype(F32) * 1e3
        out = c0.copy()
        bias = rng.standard_normal(N).astype(F32)
        got = ops.matmul(a, b, trans_a=ta, trans_b=tb, alpha=0.3, beta=-1.7, out=out,
                         bias=bias, relu=True)
        want, tol = reference(a, b, ta, tb, 0.3, -1.7, c0, bias, True)
        assert_close(got, want, tol, f"{isa} ta={ta} tb={tb}")


# --------------------------------------------------------- thread counts --

def thread_shapes(isa):
    bl = BLOCKING[isa]
    mr, nr, kc, mc, nc = bl["mr"], bl["nr"], bl["kc"], bl["mc"], bl["nc"]
    # every shape at or above the runtime's 2-thread threshold (fnn_threads_for:
    # 2 threads from 2*MNK >= 2 * parallel_flops_per_thread) on every host's
    # blocking (kc, nc follow the caches); K at and around block boundaries, so
    # a thread-dependent K blocking would show
    shapes = [(300, 500, 200), (mr + 1, 2 * nc + 7, 3 * kc + 1), (2 * mc + 3, nr - 1, kc + 9),
              (97, 61, 4 * kc + 3), (1, 4000, 600), (4000, 1, 600), (2 * mr + 1, 50 * nr + 5, 777),
              (200, 130, kc), (130, 200, 2 * kc), (61, 197, kc + 16), (150, 150, 3 * kc - 1),
              # column parts cut at vector width where panels split unevenly
              # (gemm.c's col_unit: 256 = 128 + 128, not 144 + 112, on AVX-512)
              (64, 256, 300), (48, 5 * nr + 3, 1500),
              # B rows 4 KB apart, all in one L1 set: packed (gemm.c's b_in_place)
              (256, 1024, 64),
              # split by columns with few columns a thread: op(A) packed once
              # and its panels shared by the threads (gemm.c's SHARE_A_COLS)
              (250, 253, 3 * kc + 5), (256, 256, 1024),
              # small N (the output layer) over three K blocks: the kernels'
              # own block fold, rows split across the threads
              (700, 10, 2 * kc + 5),
              # a last row panel of 3 rows in the row kernel's 32-column tiles
              # (4 rows in 24-column ones: 64, 130, 250, 256 rows above; 1 and
              # 2 rows in 48-column ones: 97, 200)
              (11 * mr + 3, 12 * nr, kc + 3)]
    two = fastnn.info()["parallel_flops_per_thread"]
    small = [s for s in shapes if s[0] * s[1] * s[2] < two]
    assert not small, f"shapes {small} run on one thread: they cannot show a thread dependence"
    return shapes


@pytest.fixture(params=[0, 1], ids=["near", "far"])
def pool_far(request):
    """Multi-thread kernels planned as if the threads shared an L3 (near:
    op(A) packed once and shared, column splits) or sat on different L3s
    (far: rows preferred, nothing shared); restored to the measured handoff."""
    _C.set_pool_far(request.param)
    yield request.param
    _C.set_pool_far(None)


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_bitwise_same_on_any_thread_count(isa, ta, tb, pool_far, rng):
    """The result does not depend on the thread count: 1, 2 (and, for some
    shapes, 3) threads give the same bits (K is never split), with and without
    a fused epilogue -- whichever split the threads' distance picks."""
    fastnn.set_isa(isa)
    for i, (M, N, K) in enumerate(thread_shapes(isa)):
        a, b = operands(rng, M, N, K, ta, tb)
        c0 = rng.standard_normal((M, N)).astype(F32)
        bias = rng.standard_normal((M, 1) if i % 2 else (N,)).astype(F32)
        results = []
        for threads in ((1, 2, 3) if i % 3 == 0 else (1, 2)):   # 3 > cores: oversubscribed, slow
            fastnn.set_num_threads(threads)
            plain = ops.matmul(a, b, trans_a=ta, trans_b=tb)
            fused = ops.matmul(a, b, trans_a=ta, trans_b=tb, alpha=0.7, beta=0.3,
                               out=c0.copy(), bias=bias, relu=True)
            results.append((threads, plain, fused))
        for threads, plain, fused in results[1:]:
            what = f"{isa} ta={ta} tb={tb} M={M} N={N} K={K}: 1 vs {threads} threads"
            assert_bits_equal(results[0][1], plain, what)
            assert_bits_equal(results[0][2], fused, what + " (fused epilogue)")
        want, tol = reference(a, b, ta, tb)
        assert_close(results[0][1], want, tol, f"{isa} ta={ta} tb={tb} M={M} N={N} K={K}")


def test_thread_handoff_measured_and_far_override():
    """info() reports the pool's handoff in ns (0 until measured); the
    override takes 0, 1 or None and nothing else."""
    fastnn.set_num_threads(2)
    a = np.ones((256, 512), F32)
    for _ in range(20):                    # back to back: the worker spins
        ops.matmul(a, a.T)
    ns = fastnn.info()["thread_handoff_ns"]
    assert isinstance(ns, float) and 0.0 <= ns < 5e4, ns
    for bad in (2, -1, 0.5, "far"):
        with pytest.raises(ValueError, match="mode"):
            _C.set_pool_far(bad)
    _C.set_pool_far(1)
    _C.set_pool_far(None)


def test_repeatable_and_threads_really_run(isa, rng):
    """Same call, same bits, every time; and 300x500x200 on 2 threads (where
    the kernel splits work) matches 1 thread."""
    fastnn.set_isa(isa)
    a, b = operands(rng, 300, 200, 500, False, False)
    fastnn.set_num_threads(2)
    assert fastnn.get_num_threads() == 2
    first = ops.matmul(a, b)
    for _ in range(3):
        assert_bits_equal(first, ops.matmul(a, b), f"{isa}: repeated call")
    fastnn.set_num_threads(1)
    assert_bits_equal(first, ops.matmul(a, b), f"{isa}: 2 vs 1 threads")


def test_concurrent_python_threads(isa, rng):
    """Several Python threads calling matmul at once (the GIL is released):
    per-thread packing buffers must not be shared, results stay bitwise equal
    to the sequential ones."""
    fastnn.set_isa(isa)
    fastnn.set_num_threads(2)
    bl = BLOCKING[isa]
    shapes = [(300, 200, 100), (bl["mr"] + 1, bl["nr"] * 5 + 1, 257), (131, 7, 600), (64, 64, 64)]
    jobs = []
    for i, (M, N, K) in enumerate(shapes * 2):
        ta, tb = TRANS[i % 4]
        a, b = operands(rng, M, N, K, ta, tb)
        jobs.append((a, b, ta, tb, ops.matmul(a, b, trans_a=ta, trans_b=tb)))
    errors = []

    def worker(k):
        try:
            for rep in range(6):
                a, b, ta, tb, want = jobs[(k + rep) % len(jobs)]
                got = ops.matmul(a, b, trans_a=ta, trans_b=tb)
                if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
                    errors.append(f"thread {k} job {(k + rep) % len(jobs)} differs")
        except Exception as e:          # pragma: no cover - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


# ------------------------------------------------- layouts and out windows --

@pytest.fixture
def spy_sgemm(monkeypatch):
    """Records the arrays ops.matmul hands to the C layer."""
    calls = []
    real = _C.sgemm

    def spy(*args, **kw):
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(ops._C, "sgemm", spy)
    return calls


@pytest.mark.parametrize("threads", [1, 2])
def test_strided_inputs_are_used_in_place(isa, threads, rng, spy_sgemm):
    """Row-strided slices, .T views (with the trans flags), reversed rows and
    broadcast rows reach the kernel without a copy and give the right answer."""
    fastnn.set_isa(isa)
    fastnn.set_num_threads(threads)
    big_a = rng.standard_normal((400, 300)).astype(F32)
    big_b = rng.standard_normal((350, 260)).astype(F32)
    cases = [
        # (a view, b view, trans_a, trans_b)
        (big_a[3:50, 7:90], big_b[11:94, 5:66], False, False),
        (big_a[3:50, 7:90].T, big_b[11:94, 5:66], True, False),      # op(a) = slice
        (big_a[3:50, 7:90], big_b[5:66, 11:94], False, True),
        (big_a[10:93, 1:48], big_b[20:81, 2:85], True, True),
        (big_a[::3, 1:200], big_b[2:201, ::1][:, 3:260], False, False),   # row step 3
        (big_a[399:100:-1, :128], big_b[:128, :97], False, False),   # negative row stride
        (big_a[:260, :290], big_b[::-1][:290, :250], False, False),
        (big_a[:300, :256], big_b[:300, 3:259], False, True),
        (big_a[:256, 1:300].T, big_b[3:259, :77], False, False),      # numpy's a.T @ b
        (big_a[:40, :250], big_b[:300, 3:253].T, False, False),       # numpy's a @ w.T
        (big_a[:250, :40].T, big_b[:40, :61].T, True, True),          # .T view + flag = slice
        (np.broadcast_to(big_a[5, :70], (40, 70)), big_b[:70, :33], False, False),
    ]
    big_bias = rng.standard_normal(400).astype(F32)
    for i, (a, b, ta, tb) in enumerate(cases):
        del spy_sgemm[:]
        bias = big_bias[:b.shape[0] if tb else b.shape[1]]
        got = ops.matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, relu=True)
        args = spy_sgemm[0]
        passed_a, passed_b = args[6], args[7]
        assert np.shares_memory(passed_a, big_a) and np.shares_memory(passed_b, big_b), \
            f"case {i}: an input was copied"
        want, tol = reference(a, b, ta, tb, bias=bias, relu=True)
        assert_close(got, want, tol, f"{isa} {threads}T strided case {i}")


SENTINEL = np.array([0x7FC0BEEF], dtype=np.uint32).view(F32)[0]   # a NaN with a payload


@pytest.mark.parametrize("threads", [1, 2])
def test_out_window_only_writes_inside(isa, threads, rng):
    """out as a strided slice of a larger array: the window gets the result,
    every element around it keeps its exact bits; beta != 0 reads the window."""
    fastnn.set_isa(isa)
    fastnn.set_num_threads(threads)
    bl = BLOCKING[isa]
    shapes = [(47, 83, 31), (bl["mr"] + 1, bl["nr"] + 1, 5), (1, 1, 1), (bl["mr"] - 1, 15, 3),
              (2 * bl["mr"] + 3, bl["nr"] - 1, bl["kc"] + 1), (200, 300, 150)]
    for (M, N, K), (ta, tb) in itertools.product(shapes, TRANS):
        a, b = operands(rng, M, N, K, ta, tb)
        for beta, bkind in ((0.0, "col"), (1.5, "row"), (0.0, None)):
            big = np.full((M + 7, N + 9), SENTINEL, F32)
            window = big[3:3 + M, 7:7 + N]
            c0 = None
            if beta != 0.0:
                c0 = rng.standard_normal((M, N)).astype(F32)
                window[...] = c0
            bias = bias_array(rng, bkind, M, N)
            got = ops.matmul(a, b, trans_a=ta, trans_b=tb, beta=beta, out=window,
                             bias=bias, relu=bkind == "row")
            assert got is window
            mask = np.ones(big.shape, bool)
            mask[3:3 + M, 7:7 + N] = False
            outside = big.view(np.uint32)[mask]
            assert (outside == SENTINEL.view(np.uint32)).all(), \
                f"{isa} {threads}T M={M} N={N} K={K} ta={ta} tb={tb} beta={beta}: wrote outside out"
            want, tol = reference(a, b, ta, tb, beta=beta, c0=c0, bias=bias, relu=bkind == "row")
            assert_close(window, want, tol, f"{isa} window M={M} N={N} K={K}")


def test_out_column_slices_and_single_rows(isa, rng):
    """out windows that are one column, one row, or the right edge of a wider array."""
    fastnn.set_isa(isa)
    big = np.full((40, 70), SENTINEL, F32)
    a, b = operands(rng, 40, 1, 13, False, False)
    ops.matmul(a, b, out=big[:, 69:70])
    want, tol = reference(a, b, False, False)
    assert_close(big[:, 69:70], want, tol, "column window")
    assert (big[:, :69].view(np.uint32) == SENTINEL.view(np.uint32)).all()
    a, b = operands(rng, 1, 70, 13, False, True)
    ops.matmul(a, b, trans_b=True, out=big[20:21])
    want, tol = reference(a, b, False, True)
    assert_close(big[20:21], want, tol, "row window")
    assert (big[21:, :69].view(np.uint32) == SENTINEL.view(np.uint32)).all()


def test_inputs_not_modified(isa, rng):
    fastnn.set_isa(isa)
    for ta, tb in TRANS:
        a, b = operands(rng, 37, 61, 300, ta, tb)
        bias = rng.standard_normal(61).astype(F32)
        saved = (a.copy(), b.copy(), bias.copy())
        ops.matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, relu=True)
        for x, y in zip((a, b, bias), saved):
            assert_bits_equal(x, y, "input changed")


def test_bias_aliasing_out_is_read_before_written(isa, rng):
    """A bias that is a view of out (e.g. its first row) holds the old values."""
    fastnn.set_isa(isa)
    a, b = operands(rng, 30, 50, 20, False, False)
    out = rng.standard_normal((30, 50)).astype(F32)
    bias_copy = out[0].copy()
    ops.matmul(a, b, out=out, bias=out[0])
    want, tol = reference(a, b, False, False, bias=bias_copy)
    assert_close(out, want, tol, f"{isa}: bias aliasing out")


# --------------------------------------------------- special values / sizes --

def test_beta_zero_ignores_nan_in_out(isa, rng):
    """beta == 0 never reads out: NaN and Inf already there do not leak, on the
    kernel path, the K == 0 path and the alpha == 0 path."""
    fastnn.set_isa(isa)
    bl = BLOCKING[isa]
    for M, N, K, alpha in ((bl["mr"] + 1, bl["nr"] + 1, 7, 1.0), (64, 64, 300, -2.0),
                           (5, 6, 0, 1.0), (5, 6, 4, 0.0)):
        a, b = operands(rng, M, N, K, False, False)
        for fill in (np.nan, np.inf, -np.inf):
            out = np.full((M, N), fill, F32)
            ops.matmul(a, b, alpha=alpha, out=out)
            want, tol = reference(a, b, False, False, alpha=alpha)
            assert_close(out, want, tol, f"{isa} M={M} N={N} K={K} alpha={alpha} fill={fill}")


def test_beta_without_out_raises():
    a = np.ones((2, 3), F32)
    b = np.ones((3, 4), F32)
    with pytest.raises(ValueError, match="beta"):
        ops.matmul(a, b, beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        ops.matmul(a, b, beta=-0.5)
    ops.matmul(a, b, beta=0.0)          # fine: nothing to scale


@pytest.mark.parametrize("relu", [False, True])
def test_k_zero_gives_beta_c_plus_bias(isa, relu, rng):
    fastnn.set_isa(isa)
    M, N = 9, 50
    for ta, tb in TRANS:
        a = np.empty((0, M) if ta else (M, 0), F32)
        b = np.empty((N, 0) if tb else (0, N), F32)
        np.testing.assert_array_equal(ops.matmul(a, b, trans_a=ta, trans_b=tb), np.zeros((M, N)))
        c0 = rng.standard_normal((M, N)).astype(F32)
        for bias in (rng.standard_normal(N).astype(F32), rng.standard_normal((M, 1)).astype(F32)):
            out = c0.copy()
            ops.matmul(a, b, trans_a=ta, trans_b=tb, alpha=3.0, beta=-0.5, out=out, bias=bias,
                       relu=relu)
            want = np.float32(-0.5) * c0 + bias
            if relu:
                want = np.maximum(want, 0)
            np.testing.assert_array_equal(out, want)
            got = ops.matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, relu=relu)
            np.testing.assert_array_equal(got, np.maximum(np.broadcast_to(bias, (M, N)), 0)
                                          if relu else np.broadcast_to(bias, (M, N)))


def test_empty_m_or_n(isa):
    fastnn.set_isa(isa)
    for M, N, K in ((0, 5, 3), (4, 0, 3), (0, 0, 3), (0, 5, 0), (0, 0, 0)):
        for ta, tb in TRANS:
            a = np.ones((K, M) if ta else (M, K), F32)
            b = np.ones((N, K) if tb else (K, N), F32)
            r = ops.matmul(a, b, trans_a=ta, trans_b=tb)
            assert r.shape == (M, N) and r.dtype == F32
            out = np.empty((M, N), F32)
            assert ops.matmul(a, b, trans_a=ta, trans_b=tb, beta=2.0, out=out,
                              bias=np.ones(N, F32), relu=True) is out


def test_nan_and_inf_propagate(isa, rng):
    """A NaN in row i of op(A) makes row i of C NaN (ReLU does not hide it);
    an Inf in column j of op(B) makes column j non-finite."""
    fastnn.set_isa(isa)
    bl = BLOCKING[isa]
    for M, N, K in ((bl["mr"] * 2 + 1, bl["nr"] * 2 + 1, 20), (3, 5, 300)):
        for ta, tb in TRANS:
            a, b = operands(rng, M, N, K, ta, tb)
            i, j, p = M - 1, N // 2, K // 3
            if ta:
                a[p, i] = np.nan
            else:
                a[i, p] = np.nan
            got = ops.matmul(a, b, trans_a=ta, trans_b=tb, relu=True)
            assert np.isnan(got[i]).all(), f"{isa} ta={ta} tb={tb}: NaN lost"
            assert np.isfinite(np.delete(got, i, axis=0)).all()
            a, b = operands(rng, M, N, K, ta, tb)
            if tb:
                b[j, p] = np.inf
            else:
                b[p, j] = np.inf
            got = ops.matmul(a, b, trans_a=ta, trans_b=tb)
            assert not np.isfinite(got[:, j]).any()
            assert np.isfinite(np.delete(got, j, axis=1)).all()


def test_lossless_conversions(isa, rng):
    """Small ints, bool, float16, big-endian float32 and nested lists are
    converted (exactly) and give the float32 result."""
    fastnn.set_isa(isa)
    a = rng.integers(-3, 4, size=(7, 20))
    b = rng.integers(-3, 4, size=(20, 9))
    want = (a @ b).astype(F32)
    for conv in (np.int8, np.int16, np.float16, np.dtype(">f4")):
        np.testing.assert_array_equal(ops.matmul(a.astype(conv), b.astype(conv)), want)
    np.testing.assert_array_equal(ops.matmul(a.tolist(), b.astype(F32)), want)
    np.testing.assert_array_equal(ops.matmul((a > 0), (b > 0).astype(F32)),
                                  ((a > 0).astype(F32) @ (b > 0).astype(F32)))


# ------------------------------------------------------------- bad inputs --

def good():
    return np.ones((4, 5), F32), np.ones((5, 6), F32)


def test_wrong_ndim_raises():
    a, b = good()
    for bad in (np.ones(5, F32), np.ones((2, 4, 5), F32), np.float32(1.0), np.ones((), F32)):
        with pytest.raises(ValueError, match=r"matmul: a must be 2-D"):
            ops.matmul(bad, b)
        with pytest.raises(ValueError, match=r"matmul: b must be 2-D"):
            ops.matmul(a, bad)


def test_mismatched_inner_dims_names_shapes():
    a = np.ones((4, 5), F32)
    b = np.ones((6, 7), F32)
    with pytest.raises(ValueError) as e:
        ops.matmul(a, b)
    msg = str(e.value)
    assert "(4, 5)" in msg and "(6, 7)" in msg, msg
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        ops.matmul(a, np.ones((5, 3), F32), trans_a=True)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        ops.matmul(a, np.ones((3, 4), F32), trans_b=True)
    ops.matmul(a, np.ones((3, 5), F32), trans_b=True)         # the consistent way is fine


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint64, np.longdouble])
def test_lossy_dtype_is_a_type_error_naming_the_argument(dtype):
    a, b = good()
    with pytest.raises(TypeError, match=r"matmul: a must be float32.*" + np.dtype(dtype).name):
        ops.matmul(a.astype(dtype), b)
    with pytest.raises(TypeError, match=r"matmul: b must be float32"):
        ops.matmul(a, b.astype(dtype))
    with pytest.raises(TypeError, match=r"matmul: bias must be float32"):
        ops.matmul(a, b, bias=np.ones(6, dtype))


@pytest.mark.parametrize("make", [
    lambda s: np.empty(s, dtype=object),
    lambda s: np.ones(s, dtype=np.complex64),
    lambda s: np.full(s, "x"),
    lambda s: np.full(s, b"x"),
    lambda s: np.zeros(s, dtype="datetime64[s]"),
    lambda s: np.zeros(s, dtype=[("x", F32)]),
], ids=["object", "complex", "str", "bytes", "datetime", "structured"])
def test_non_numeric_arrays_raise_type_error(make):
    a, b = good()
    with pytest.raises(TypeError, match="matmul: a"):
        ops.matmul(make(a.shape), b)
    with pytest.raises(TypeError, match="matmul: b"):
        ops.matmul(a, make(b.shape))


def test_non_array_inputs():
    a, b = good()
    with pytest.raises(TypeError, match="matmul: a"):
        ops.matmul("abc", b)
    with pytest.raises(TypeError, match="matmul: b"):
        ops.matmul(a, [["x"] * 6] * 5)
    with pytest.raises((TypeError, ValueError), match="matmul: a"):
        ops.matmul(None, b)


def test_bad_out_raises():
    a, b = good()
    with pytest.raises(ValueError, match="out has shape"):
        ops.matmul(a, b, out=np.empty((4, 7), F32))
    with pytest.raises(ValueError, match="out has shape"):
        ops.matmul(a, b, out=np.empty((24,), F32))
    with pytest.raises(TypeError, match="out must be float32"):
        ops.matmul(a, b, out=np.empty((4, 6), np.float64))
    with pytest.raises(TypeError, match="out must be a numpy array"):
        ops.matmul(a, b, out=[[0.0] * 6] * 4)
    ro = np.empty((4, 6), F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.matmul(a, b, out=ro)
    with pytest.raises(ValueError, match="read-only"):
        ops.matmul(a, b, out=np.broadcast_to(np.empty(6, F32), (4, 6)))
    with pytest.raises(ValueError, match="unit-stride"):
        ops.matmul(a, b, out=np.empty((4, 12), F32)[:, ::2])
    with pytest.raises(ValueError, match="unit-stride"):
        ops.matmul(a, b, out=np.empty((4, 6), F32, order="F"))
    with pytest.raises(ValueError, match="unit-stride"):
        ops.matmul(a, b, out=np.empty((4, 6), F32)[::-1])


def test_out_overlapping_inputs_raises():
    buf = np.ones((6, 20), F32)
    a = buf[:, :6]                       # (6, 6)
    b = np.ones((6, 6), F32)
    with pytest.raises(ValueError, match="overlap"):
        ops.matmul(a, b, out=buf[:, 3:9])
    with pytest.raises(ValueError, match="overlap"):
        ops.matmul(a, b, out=a)
    with pytest.raises(ValueError, match="overlap"):
        ops.matmul(b, a, trans_b=True, out=a)
    with pytest.raises(ValueError, match="overlap"):
        ops.matmul(b, a, out=buf[:, 5:11])
    with pytest.raises(ValueError, match="overlap"):
        ops.matmul(a.T, b, out=buf[:, 3:9])                      # a .T view (fast path)
    with pytest.raises(ValueError, match="overlap"):
        ops.matmul(b, a.T, out=buf[:, 5:11])
    np.testing.assert_array_equal(buf, np.ones((6, 20), F32))   # nothing written
    ops.matmul(a, b, out=buf[:, 6:12])                           # adjacent, not overlapping
    np.testing.assert_array_equal(buf[:, 6:12], np.full((6, 6), 6, F32))


def test_bad_bias_raises():
    a, b = good()                       # M=4, N=6
    for shape in ((4,), (5,), (6, 1), (1, 4), (4, 6), (2, 3), (1, 1, 6), ()):
        with pytest.raises(ValueError, match="bias has shape"):
            ops.matmul(a, b, bias=np.ones(shape, F32))
    for bias in (np.ones(6, F32), np.ones((1, 6), F32), np.ones((4, 1), F32), [1.0] * 6):
        ops.matmul(a, b, bias=bias)


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_non_finite_or_unrepresentable_scalars_raise(name):
    a, b = good()
    out = np.zeros((4, 6), F32)
    for v in (float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("inf"),
              1e39, -1e300):
        with pytest.raises(ValueError, match=f"{name} must be finite"):
            ops.matmul(a, b, out=out, **{name: v})
    for v in ("1", None, 1j, [1.0]):
        with pytest.raises(TypeError, match=name):
            ops.matmul(a, b, out=out, **{name: v})
    ops.matmul(a, b, out=out, **{name: np.float32(2.0)})
    ops.matmul(a, b, out=out, **{name: 3})
    ops.matmul(a, b, out=out, **{name: 3.0e38})


# ------------------------------------------------------------ aarch64 NEON --

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_aarch64_neon_kernel_under_qemu():
    """tools/aarch64_check.sh: cross-builds csrc/ for aarch64 (NEON 8x12
    kernel) and runs tools/gemm_check.c under qemu: every shape against the
    naive twin, 1 vs 2 threads bitwise, default and tiny blocking."""
    p = subprocess.run(["bash", os.path.join(ROOT, "tools", "aarch64_check.sh")],
                       capture_output=True, text=True, timeout=600)
    if p.returncode == 77:
        pytest.skip("aarch64 cross toolchain or qemu missing: " + p.stderr.strip())
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "kernel neon 8x12" in p.stdout, p.stdout
    assert "256 passed, 0 failed" in p.stdout, p.stdout


# ------------------------------------------------- caches and the blocking --

def test_cache_detection_sane():
    d = _C.cache_info()
    assert d["source"] in ("cpuid", "sysfs", "defaults")
    for lvl in ("l1d", "l2"):
        c = d[lvl]
        assert c["size"] > 0 and c["ways"] > 0 and c["line"] > 0 and c["shared"] > 0, d
        assert c["sets"] * c["ways"] * c["line"] == c["size"], d
    assert d["l1d"]["size"] < d["l2"]["size"]
    assert d["l3"]["size"] == 0 or d["l3"]["size"] >= d["l2"]["size"], d
    assert fastnn.info()["caches"] == d


def test_cpuid_and_sysfs_agree_where_both_exist():
    cpuid, sysfs = _C.cache_info("cpuid"), _C.cache_info("sysfs")
    if cpuid is None or sysfs is None:
        pytest.skip(f"only one source here (cpuid: {cpuid is not None}, sysfs: {sysfs is not None})")
    for lvl in ("l1d", "l2", "l3"):
        for k in ("size", "ways", "line"):
            if sysfs[lvl][k] and cpuid[lvl][k]:
                assert cpuid[lvl][k] == sysfs[lvl][k], (lvl, k, cpuid[lvl], sysfs[lvl])
    assert _C.cache_info()["l1d"]["size"] == cpuid["l1d"]["size"]


def test_sysfs_reader_on_a_described_tree(tmp_path):
    def level(idx, lvl, typ, size, ways, line, cpus):
        d = tmp_path / f"index{idx}"
        d.mkdir()
        for name, v in (("level", lvl), ("type", typ), ("size", size),
                        ("ways_of_associativity", ways), ("coherency_line_size", line),
                        ("shared_cpu_list", cpus)):
            (d / name).write_text(f"{v}\n")
    level(0, 1, "Data", "32K", 8, 64, "0-1")
    level(1, 1, "Instruction", "32K", 8, 64, "0-1")
    level(2, 2, "Unified", "512K", 8, 64, "0-1")
    level(3, 3, "Unified", "32M", 16, 64, "0-7,16-23")
    d = _C.cache_info("sysfs", root=str(tmp_path))
    assert d["l1d"] == {"size": 32768, "ways": 8, "line": 64, "sets": 64, "shared": 2}
    assert d["l2"]["size"] == 512 << 10 and d["l2"]["shared"] == 2
    assert d["l3"] == {"size": 32 << 20, "ways": 16, "line": 64, "sets": 32768, "shared": 16}
    assert _C.cache_info("sysfs", root=str(tmp_path / "none")) is None
    dflt = _C.cache_info("defaults")
    assert (dflt["l1d"]["size"], dflt["l2"]["size"], dflt["l3"]["size"]) == (32 << 10, 512 << 10, 8 << 20)
    with pytest.raises(ValueError, match="source"):
        _C.cache_info("bogus")


# (size, ways, line, logical CPUs sharing it)
ZEN3 = ((32 << 10, 8, 64, 2), (512 << 10, 8, 64, 2), (32 << 20, 16, 64, 16))
SKX = ((32 << 10, 8, 64, 2), (1 << 20, 16, 64, 2), (38_535_168, 11, 64, 56))
N1 = ((64 << 10, 4, 64, 1), (1 << 20, 8, 64, 1), (32 << 20, 16, 64, 64))
THIS_HOST = ((48 << 10, 12, 64, 1), (2 << 20, 16, 64, 1), (480 << 20, 16, 64, 2))


@pytest.mark.parametrize("caches,mr,nr,want", [
    # Zen 3, AVX2 6x16: KC = floor(7 / (1 + 6/16)) ways * 4 KiB / 64 B = 320;
    # NC = (8 - 1 - 1) ways * 64 KiB / (320 * 4) = 307 -> 304; L3 per core
    # 4 MiB (16 CPUs / 2 per core): MC = 13 ways * 256 KiB / 1280 -> 2658.
    (ZEN3, 6, 16, (320, 2658, 304)),
    (SKX, 8, 48, (128, 1024, 1776)),       # victim L3 < B block: MC from L2 / 2
    (THIS_HOST, 8, 48, (192, 4096, 2352)),
    (THIS_HOST, 6, 16, (512, 4092, 896)),
    (ZEN3, 8, 12, (336, 2528, 288)),         # the NEON tile on Zen 3's caches
    (N1, 8, 12, (336, 384, 576)),            # Neoverse N1: 64 KiB 4-way L1, 1 MiB L2
])
def test_blocking_model_on_described_machines(caches, mr, nr, want):
    kc, mc, nc = _C.gemm_block_model(*caches, mr, nr)
    assert (kc, mc, nc) == want
    assert kc % 8 == 0 and mc % mr == 0 and nc % nr == 0
    l1, l2, _ = caches
    # the A micro-panel and the streaming B micro-panel fit L1 (a way spare)
    assert (mr + nr) * kc * 4 <= l1[0] * (l1[1] - 1) // l1[1]
    # the packed B block fits L2 beside an A micro-panel
    assert kc * nc * 4 + mr * kc * 4 <= l2[0]


def test_blocking_model_without_l3_and_tiny_caches():
    kc, mc, nc = _C.gemm_block_model((64 << 10, 4, 64, 1), (1 << 20, 8, 64, 1), (0, 0, 0, 0), 8, 12)
    assert mc == (1 << 20) // 2 // (kc * 4) // 8 * 8     # no L3: half the L2
    kc, mc, nc = _C.gemm_block_model((4096, 2, 64, 1), (16384, 2, 64, 1), (0, 0, 0, 0), 6, 16)
    assert kc >= 64 and mc >= 6 * 8 and nc >= 4 * 16      # the lower bounds hold


def test_blocking_source_and_info():
    d = fastnn.info()
    assert d["gemm_blocking_source"] in ("model", "tuned", "FASTNN_GEMM_BLOCKING")
    assert d["gemm_kernel"].split()[0] in ("avx512", "avx2", "ref", "neon")
    if fastnn.get_isa() != "avx512":
        caches = d["caches"]
        model = _C.gemm_block_model(*[(caches[k]["size"], caches[k]["ways"], caches[k]["line"],
                                       caches[k]["shared"]) for k in ("l1d", "l2", "l3")],
                                    d["gemm_blocking"]["mr"], d["gemm_blocking"]["nr"])
        assert d["gemm_blocking_source"] == "model"
        assert model == tuple(d["gemm_blocking"][k] for k in ("kc", "mc", "nc"))


# Zen 2 (the session's host): L2 512 KiB of 8 ways (64 KiB each); model 320/4092/304
ZEN2 = ((32 << 10, 8, 64, 1), (512 << 10, 8, 64, 1), (16 << 20, 16, 64, 2))
SKX_NC4096 = 12 * (64 << 10) // (320 * 4) // 16 * 16        # the model: 320/408/704
SKX_NC16384 = 10 * (64 << 10) // (320 * 4) // 16 * 16


@pytest.mark.parametrize("caches,ldc,want", [
    (ZEN2, 4096, 192),      # 16 KiB rows: 12 rows put 3 lines in a set -> 8 - 3 - 1 = 4 ways
    (ZEN2, 2048, 256),      # 8 KiB rows: 2 a set -> 5 ways
    (ZEN2, 8192, 192),      # 6 a set: the floor, 2/3 of the model's 6 ways
    (ZEN2, 16384, 192),
    (ZEN2, 3072, 304),      # 12 KiB rows: a set every 16 rows -> the model's NC
    (ZEN2, 1024, 304),
    (ZEN2, 1000, 304),
    (ZEN2, 4100, 304),
    (ZEN3, 4096, 192),
    (SKX, 4096, SKX_NC4096),    # 16 ways of 64 KiB: 16 - 3 - 1 = 12 of them for B
    (SKX, 16384, SKX_NC16384),  # 12 a set: the floor, 2/3 of the model's 14 ways
])
def test_nc_far_on_described_machines(caches, ldc, want):
    _, _, nc = _C.gemm_block_model(*caches, 6, 16)
    got = _C.gemm_nc_far(*caches, 6, 16, ldc)
    assert got == want and got % 16 == 0 and got <= nc
    # blocks that are not the model's (tuned, FASTNN_GEMM_BLOCKING) are kept
    assert _C.gemm_nc_far(*caches, 6, 16, ldc, False) == nc


@pytest.mark.parametrize("threads", [1, 2])
def test_c_far_product_exact(isa, threads, rng):
    """C past half of L3 with rows 4096 floats apart (the narrower B block of
    fnn_gemm_nc_far) and N not a multiple of the block: integer data, so the
    result equals numpy's exactly, and 1 and 2 threads give the same bits."""
    fastnn.set_isa(isa)
    l3 = fastnn.info()["caches"]["l3"]["size"] or (8 << 20)
    M = min(l3 // (4096 * 4) + 7, 4096)      # each thread's half of C past L3 / 2
    for ta, tb in (TRANS[0], TRANS[3]):
        a, b = operands(rng, M, 4091, 37, ta, tb, ints=True)
        out = np.zeros((M, 4096), F32)[:, :4091]           # ldc 4096, N = 4091
        fastnn.set_num_threads(threads)
        ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out)
        want, _ = reference(a, b, ta, tb)
        np.testing.assert_array_equal(out, want)
        fastnn.set_num_threads(1)
        np.testing.assert_array_equal(ops.matmul(a, b, trans_a=ta, trans_b=tb), out)


def test_blocking_override_in_process(isa, rng):
    fastnn.set_isa(isa)
    bl = dict(fastnn.info()["gemm_blocking"])
    assert _C.set_gemm_blocking(16, 20, 30) == 0
    try:
        got = fastnn.info()["gemm_blocking"]
        assert fastnn.info()["gemm_blocking_source"] == "FASTNN_GEMM_BLOCKING"
        assert got["kc"] == 16 and got["mc"] == -(-20 // bl["mr"]) * bl["mr"]
        assert got["nc"] == -(-30 // bl["nr"]) * bl["nr"]
        for ta, tb in TRANS:                 # many KC/MC/NC blocks: still exact
            M, N, K = 3 * got["mc"] + 5, 2 * got["nc"] + 3, 5 * 16 + 7
            a, b = operands(rng, M, N, K, ta, tb, ints=True)
            want, _ = reference(a, b, ta, tb)
            np.testing.assert_array_equal(ops.matmul(a, b, trans_a=ta, trans_b=tb), want)
        for bad in ((7, 10, 10), (16, 0, 10), (16, 10, 0), (5000, 10, 10), (16, 20000, 10), (-1, -1, -1)):
            assert _C.set_gemm_blocking(*bad) == -1
        assert fastnn.info()["gemm_blocking"]["kc"] == 16      # unchanged by a bad value
    finally:
        _C.set_gemm_blocking(0, 0, 0)
    assert fastnn.info()["gemm_blocking"] == bl


def _env_python(code, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FASTNN_")}
    e.update(env)
    # the child imports the same fastnn as this process (a checkout's in-place
    # build, an installed package, tools/asan.sh's instrumented one)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    e["PYTHONPATH"] = pkg_parent + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.abspath(__file__)))


def test_fastnn_gemm_blocking_env():
    code = "import json, fastnn; d = fastnn.info(); print(json.dumps([d['gemm_blocking'], d['gemm_blocking_source']]))"
    p = _env_python(code, FASTNN_GEMM_BLOCKING="128,96,480", FASTNN_ISA="avx2"
                    if "avx2" in fastnn.available_isas() else "ref")
    assert p.returncode == 0, p.stderr
    bl, src = json.loads(p.stdout)
    assert (bl["kc"], src) == (128, "FASTNN_GEMM_BLOCKING")
    assert bl["mc"] == -(-96 // bl["mr"]) * bl["mr"] and bl["nc"] == -(-480 // bl["nr"]) * bl["nr"]
    for bad in ("1,2", "a,b,c", "4,100,100", "128,100,100,5", "128,-1,100"):
        p = _env_python("import fastnn", FASTNN_GEMM_BLOCKING=bad)
        assert p.returncode != 0 and "FASTNN_GEMM_BLOCKING" in p.stderr and repr(bad) in p.stderr, p.stderr


# ----------------------------------------------------------- small shapes --

SMALL = (1, 2, 5, 8, 9, 10, 16, 17)


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_small_shapes_against_float64(isa, ta, tb, rng):
    """M, N, K in 1..17 (the output layer's 10 classes, the small-N path that
    reads A in place, K <= 16, tiny batches), cycling the epilogues."""
    fastnn.set_isa(isa)
    for n, (M, N, K) in enumerate(itertools.product(SMALL, SMALL, (1, 3, 10, 16, 17))):
        if (M * 7 + N * 3 + K) % 3:              # a third of the grid, every size still seen
            continue
        a, b = operands(rng, M, N, K, ta, tb)
        got, kw = run_matmul(rng, a, b, ta, tb, M, N, ALL_EPILOGUES[n % len(ALL_EPILOGUES)])
        want, tol = reference(a, b, ta, tb, **kw)
        assert_close(got, want, tol, f"{isa} {M}x{N}x{K} ta={ta} tb={tb} {kw['alpha'], kw['beta']}")


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_output_layer_shapes_bitwise_on_1_and_2_threads(isa, ta, tb, rng):
    """Products of a 10-class output layer (N = 10 forward, K = 10 input grad,
    M = 10 weight grad) and a small batch: right, and the same bits on 1 and 2
    threads (big enough that 2 threads really run)."""
    fastnn.set_isa(isa)
    for M, N, K in ((512, 10, 512), (300, 10, 1000), (256, 12, 1024), (301, 7, 2048),
                    (256, 1024, 10), (128, 256, 10), (10, 1024, 256),
                    (16, 1024, 784), (32, 513, 300)):
        a, b = operands(rng, M, N, K, ta, tb)
        bias = rng.standard_normal(N).astype(F32)
        outs = []
        for t in (1, 2):
            fastnn.set_num_threads(t)
            outs.append(ops.matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, relu=True))
        want, tol = reference(a, b, ta, tb, bias=bias, relu=True)
        assert_close(outs[0], want, tol, f"{isa} {M}x{N}x{K}")
        assert_bits_equal(outs[0], outs[1], f"{isa} {M}x{N}x{K} 1 vs 2 threads")


def matmul_in_window(a, b, ta, tb, alpha, beta, c0, bias, relu, inputs, what):
    """ops.matmul into a view of a larger C (filled with 7.0 around it; NaN
    inside when beta == 0): near float64, nothing written outside M x N,
    and each (array, copy) of `inputs` untouched. Returns the result."""
    M, N = c0.shape
    big_c = np.full((M + 2, N + 7), 7.0, F32)
    out = big_c[1:M + 1, 3:N + 3]
    out[...] = c0 if beta != 0.0 else np.nan
    got = ops.matmul(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=out,
                     bias=bias, relu=relu)
    assert got is out
    want, tol = reference(a, b, ta, tb, alpha, beta, c0, bias, relu)
    assert_close(got, want, tol, what)
    inside = np.zeros(big_c.shape, bool)
    inside[1:M + 1, 3:N + 3] = True
    assert (big_c[~inside] == 7.0).all(), what + ": C written outside M x N"
    for x, x0 in inputs:
        assert_bits_equal(x, x0, what + ": an operand")
    return got


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_small_n_kernels_edges_and_strided_views(isa, ta, tb, rng):
    """The small-N kernels (N <= 16): every N from 1 to 16 (one and two column
    chunks), M on both sides of the 16- and 32-row tiles, K on both sides of
    the vector width and of a K block, every epilogue; operands and C as
    views into larger arrays (strides of 4 KB too, where rows share L1 sets),
    with C's columns beyond N and the operands untouched."""
    fastnn.set_isa(isa)
    kc = BLOCKING[isa]["kc"]
    n = 0
    for N in range(1, 17):
        for M, K in ((1, 1), (15, 7), (16, 16), (17, 17), (31, 9), (33, 1024),
                     (47, kc + 3), (65, 33)):
            n += 1
            if (N + M + K) % 2 and N not in (1, 10, 16):      # half the grid; key N always
                continue
            alpha, beta, bkind, relu, _ = ALL_EPILOGUES[n % len(ALL_EPILOGUES)]
            pad = 1024 - K if K < 1024 and n % 3 == 0 else 5    # rows 4 KB apart
            big_a = rng.standard_normal((K + 3, M + pad) if ta else (M + 3, K + pad)).astype(F32)
            big_b = rng.standard_normal((N + 3, K + pad) if tb else (K + 3, N + 5)).astype(F32)
            a = big_a[1:K + 1, 2:M + 2] if ta else big_a[1:M + 1, 2:K + 2]
            b = big_b[1:N + 1, 2:K + 2] if tb else big_b[1:K + 1, 2:N + 2]
            a0, b0 = big_a.copy(), big_b.copy()
            c0 = rng.standard_normal((M, N)).astype(F32)
            bias = bias_array(rng, bkind, M, N)
            what = f"{isa} {M}x{N}x{K} ta={ta} tb={tb} epilogue {alpha, beta, bkind, relu}"
            matmul_in_window(a, b, ta, tb, alpha, beta, c0, bias, relu,
                             ((big_a, a0), (big_b, b0)), what)


@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_small_k_kernel_edges_and_strided_views(isa, ta, tb, rng):
    """The small-K path (K <= 16: the output layer's dX = dY W; a transposed
    B copied row-major first, up to 64Ki floats of it): K from 1 to 16, M
    around its 4-row tile, N around its 64-column strip and the 16-float
    vector, every epilogue; operands and C
    as views into larger arrays (4 KB strides too), C untouched outside
    M x N, the operands untouched; near float64, and the general kernel's
    bits (the prepacked-B entry point keeps it; but for the few-rows dot
    kernel, see takes_dot_kernel) on 1 and 2 threads."""
    fastnn.set_isa(isa)
    n = 0
    for K in (1, 2, 9, 10, 16):
        for M, N in ((1, 17), (3, 64), (4, 65), (5, 127), (7, 129), (9, 48), (33, 300),
                     (130, 1024), (257, 200), (40, 4100 + 17 * K)):   # last: past the copy cap
            n += 1
            alpha, beta, bkind, relu, _ = ALL_EPILOGUES[(7 * n) % len(ALL_EPILOGUES)]
            pad = 1024 - (M if ta else K) if n % 3 == 0 else 3     # rows 4 KB apart
            big_a = rng.standard_normal((K + 2, M + pad) if ta else (M + 2, K + pad)).astype(F32)
            bpad = 1024 - (K if tb else N % 1024) if n % 4 == 0 else 5
            big_b = rng.standard_normal((N + 2, K + bpad) if tb else (K + 2, N + bpad)
                                        ).astype(F32)
            a = big_a[1:K + 1, 2:M + 2] if ta else big_a[1:M + 1, 2:K + 2]
            b = big_b[1:N + 1, 1:K + 1] if tb else big_b[1:K + 1, 1:N + 1]
            a0, b0 = big_a.copy(), big_b.copy()
            c0 = rng.standard_normal((M, N)).astype(F32)
            bias = bias_array(rng, bkind, M, N)
            what = f"{isa} {M}x{N}x{K} ta={ta} tb={tb} epilogue {alpha, beta, bkind, relu}"
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                got = matmul_in_window(a, b, ta, tb, alpha, beta, c0, bias, relu,
                                       ((big_a, a0), (big_b, b0)), what + f", {threads}T")
                packed = c0.copy()
                mode = {None: 0, "col": 1, "col2": 1, "row": 2}[bkind]
                bv = None if bias is None else np.ascontiguousarray(bias).reshape(-1)
                _C.sgemm(ta, tb, M, N, K, alpha, a, b, beta, packed, bv, mode, relu,
                         prepacked=True)
                assert_same_product(np.ascontiguousarray(got), packed, isa, ta, tb, M, N, K,
                                    what + f": vs the general kernel, {threads}T")


@pytest.mark.parametrize("shift", [0, 3, 200, 512, 700])
def test_small_k_b_and_c_at_one_page_offset(isa, shift, rng):
    """dX = dY W of a 1024-wide output layer with W (10, 1024) and dX in one
    array, C's rows `shift` floats past B's in the 4 KB page (0-200: every
    row of both in the same L1 sets, where the path copies W half a page
    away from C): near float64, the general kernel's bits, W and the array
    around C untouched, on 1 and 2 threads."""
    fastnn.set_isa(isa)
    K, N = 10, 1024
    for M in (37, 256):                          # 256: 5.2 Mflop, two threads' worth
        buf = np.full(K * N + shift + M * N + 64, 7.0, F32)
        b = buf[:K * N].reshape(K, N)
        b[...] = rng.standard_normal((K, N)).astype(F32)
        c = buf[K * N + shift:K * N + shift + M * N].reshape(M, N)
        assert (c.ctypes.data - b.ctypes.data) % 4096 == 4 * shift % 4096
        a = rng.standard_normal((M, K)).astype(F32)
        b0 = b.copy()
        want = a.astype(np.float64) @ b0
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            c[...] = np.nan
            assert ops.matmul(a, b, out=c) is c
            assert_close(c, want, 1e-5 * np.sqrt(K) * (np.abs(a) @ np.abs(b0) + 1),
                         f"{isa} M={M} shift={shift} {threads}T")
            packed = np.empty((M, N), F32)
            _C.sgemm(False, False, M, N, K, 1.0, a, b, 0.0, packed, None, 0, False,
                     prepacked=True)
            np.testing.assert_array_equal(c, packed)
            assert_bits_equal(b, b0, "W")
            assert (buf[K * N:K * N + shift] == 7.0).all() and (buf[K * N + shift + M * N:] == 7.0).all()


def test_small_k_nan_and_inf_propagate(isa, rng):
    """K = 10: a NaN in op(A) reaches exactly its row of C, an Inf in op(B)
    exactly its column (no lane, tile or transposed copy mixes them)."""
    fastnn.set_isa(isa)
    for ta, tb in TRANS:
        a, b = operands(rng, 37, 150, 10, ta, tb)
        A, B = (a.T if ta else a), (b.T if tb else b)
        A[5, 3] = np.nan
        B[7, 129] = np.inf
        got = ops.matmul(a, b, trans_a=ta, trans_b=tb)
        bad = ~np.isfinite(got)
        assert np.isnan(got[5]).all(), (isa, ta, tb)
        assert bad[:, 129].all(), (isa, ta, tb)
        bad[5] = False
        bad[:, 129] = False
        assert not bad.any(), (isa, ta, tb)


def test_small_n_nan_and_inf_propagate(isa, rng):
    """A NaN or an Inf in op(A) reaches exactly its row of C on every small-N
    kernel (no lane of a dot product or a transpose mixes rows)."""
    fastnn.set_isa(isa)
    for ta, tb in TRANS:
        a, b = operands(rng, 37, 10, 300, ta, tb)
        A = a.T if ta else a
        A[5, 17] = np.nan
        A[30, 299] = np.inf
        got = ops.matmul(a, b, trans_a=ta, trans_b=tb)
        rows = np.isnan(got).all(axis=1) | np.isinf(got).all(axis=1) | (
            ~np.isfinite(got)).all(axis=1)
        assert np.isnan(got[5]).all(), (isa, ta, tb)
        assert (~np.isfinite(got[30])).all(), (isa, ta, tb)
        assert rows.sum() == 2 and np.isfinite(np.delete(got, [5, 30], axis=0)).all(), (isa, ta, tb)


def test_few_rows_times_transposed_b_read_in_place(isa, rng):
    """y = x W^T with 1-4 rows, and 5-32 from K = 256 (inference at small
    batches; 33 rows and shorter K take the general path): the dot kernel
    over W's rows in place, the parts taking column chunks (of 6 with 4
    rows where the AVX-512 path takes 3 rows or more or W's rows crowd
    L1). Every epilogue; N around the 12- and
    6-column chunks and large enough for 2 threads; K around the vector
    width; views with rows 4 KB apart (every other shape); C untouched
    outside M x N; the same bits on 1 and 2 threads; a NaN in x reaches only
    its row."""
    fastnn.set_isa(isa)
    n = 0
    for M in (1, 2, 3, 4, 5, 17, 32, 33):
        for N, K in ((1, 1), (11, 15), (12, 16), (13, 17), (7, 1000), (100, 784),
                     (1029, 1030)):
            n += 1
            alpha, beta, bkind, relu, _ = ALL_EPILOGUES[n % len(ALL_EPILOGUES)]
            pad = 1024 - K if K < 1024 and n % 2 else 3
            big_a = rng.standard_normal((M + 2, K + 5)).astype(F32)
            big_b = rng.standard_normal((N + 2, K + pad)).astype(F32)
            a, b = big_a[1:M + 1, 2:K + 2], big_b[1:N + 1, 1:K + 1]
            c0 = rng.standard_normal((M, N)).astype(F32)
            bias = bias_array(rng, bkind, M, N)
            outs = []
            for t in (1, 2):
                fastnn.set_num_threads(t)
                big_c = np.full((M + 2, N + 7), 7.0, F32)
                out = big_c[1:M + 1, 3:N + 3]
                out[...] = c0 if beta != 0.0 else np.nan
                ops.matmul(a, b, trans_b=True, alpha=alpha, beta=beta, out=out, bias=bias,
                           relu=relu)
                inside = np.zeros(big_c.shape, bool)
                inside[1:M + 1, 3:N + 3] = True
                assert (big_c[~inside] == 7.0).all(), f"{isa} {M}x{N}x{K}: C written outside"
                outs.append(out.copy())
            want, tol = reference(a, b, False, True, alpha, beta, c0, bias, relu)
            what = f"{isa} {M}x{N}x{K} epilogue {alpha, beta, bkind, relu}"
            assert_close(outs[0], want, tol, what)
            assert_bits_equal(outs[0], outs[1], what + " 1 vs 2 threads")
    a = rng.standard_normal((3, 300)).astype(F32)
    a[1, 7] = np.nan
    got = ops.matmul(a, rng.standard_normal((50, 300)).astype(F32), trans_b=True)
    assert np.isnan(got[1]).all() and np.isfinite(got[[0, 2]]).all(), isa


def test_batch_times_transposed_weights_swapped(isa, rng):
    """y = x W^T for a batch of 33-256 rows (fewer from K = 256 take the dot
    kernel) against 2x as many or more rows of W, K >= 256 and >= 4 M, alpha
    1 and beta 0 (a layer's forward): the AVX2 path (up to 192 rows) and the
    AVX-512 path (up to 256) compute y^T = W x^T with W read in place and
    transpose it into y.
    Against float64; bit for bit against the usual path (beta = 1 on a zero
    C, which that path alone takes: acc + 0 is acc) with every bias kind and
    ReLU; on 1, 2 and 3 threads; out as a window of a larger array (C
    untouched outside); K not a multiple of the vector width, W's rows 4 KB
    apart; a NaN in x reaches only its row, one in W only its column."""
    fastnn.set_isa(isa)
    cases = [(33, 66, 256), (40, 300, 777), (64, 1024, 784), (97, 1000, 1030),
             (128, 256, 1024), (150, 333, 600), (192, 400, 768), (200, 401, 900),
             (256, 600, 1024)]
    for n, (M, N, K) in enumerate(cases):
        pad = 1024 - K if K < 1024 and n % 2 else 5
        big_a = rng.standard_normal((M + 2, K + 3)).astype(F32)
        big_w = rng.standard_normal((N + 1, K + pad)).astype(F32)
        x, w = big_a[1:M + 1, 1:K + 1], big_w[1:N + 1, :K]
        for bkind, relu in ((None, False), ("col", True), ("row", False), ("col2", False)):
            bias = bias_array(rng, bkind, M, N)
            what = f"{isa} {M}x{N}x{K} bias {bkind} relu {relu}"
            outs = []
            for t in (1, 2, 3):
                fastnn.set_num_threads(t)
                big_c = np.full((M + 2, N + 9), 7.0, F32)
                out = big_c[1:M + 1, 4:N + 4]
                out[...] = np.nan
                ops.matmul(x, w, trans_b=True, out=out, bias=bias, relu=relu)
                inside = np.zeros(big_c.shape, bool)
                inside[1:M + 1, 4:N + 4] = True
                assert (big_c[~inside] == 7.0).all(), what + ": C written outside"
                outs.append(out.copy())
            want, tol = reference(x, w, False, True, 1.0, 0.0, None, bias, relu)
            assert_close(outs[0], want, tol, what)
            usual = ops.matmul(x, w, trans_b=True, beta=1.0, out=np.zeros((M, N), F32),
                               bias=bias, relu=relu)
            assert_bits_equal(outs[0], usual, what + " vs the usual path")
            for o in outs[1:]:
                assert_bits_equal(outs[0], o, what + " 1 vs 2-3 threads")
    fastnn.set_num_threads(2)
    x = rng.standard_normal((64, 512)).astype(F32)
    w = rng.standard_normal((256, 512)).astype(F32)
    x[5, 9] = np.nan
    w[17, 300] = np.nan
    y = ops.matmul(x, w, trans_b=True)
    bad = np.zeros(y.shape, bool)
    bad[5, :] = bad[:, 17] = True
    assert np.isnan(y[bad]).all() and np.isfinite(y[~bad]).all(), isa


# ------------------------------------------------- op(B) packed beforehand --

def prepacked_cases():
    cases = []
    for isa, bl in BLOCKING.items():
        mr, nr, kc = bl["mr"], bl["nr"], bl["kc"]
        for s in ((1, 1, 1), (mr + 1, nr - 1, 5), (2 * mr + 3, 3 * nr + 5, kc + 7),
                  (64, 512, 128), (64, 128, 512), (3, 2 * nr, 2 * kc + 1), (mr * 9, 7, 33),
                  (37, 10, 2 * kc + 5)):
            cases.append(pytest.param(isa, *s, id=f"{isa}-{s[0]}x{s[1]}x{s[2]}"))
    return cases


def takes_dot_kernel(isa, ta, tb, M, N, K):
    """fnn_sgemm's small-N products with op(A) not transposed, and its
    products of at most 4 rows with op(B) = B^T (32 rows from K = 256),
    run on a dot-product kernel (vectors along K, a lane sum at the end) on
    every path; the
    packed-operand entry points keep the general kernel, so their bits
    differ there."""
    return not ta and (N <= 16 or (tb and (M <= 4 or (M <= 32 and K >= 256))))


def assert_same_product(got, want, isa, ta, tb, M, N, K, what):
    if takes_dot_kernel(isa, ta, tb, M, N, K):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(K), err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("isa_,M,N,K", prepacked_cases())
@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_prepacked_b_gives_the_same_bits(isa_, M, N, K, ta, tb, rng):
    """fnn_sgemm_pack_b + fnn_sgemm_pb (the recurrent layers' per-step
    product) against fnn_sgemm on the same operands: identical bits (but
    for fnn_sgemm's small-N dot kernel), with every epilogue part in play, on 1 and 2 threads; and near float64."""
    fastnn.set_isa(isa_)
    a, b = operands(rng, M, N, K, ta, tb, ints=False)
    bias = rng.standard_normal(N).astype(F32)
    c0 = rng.standard_normal((M, N)).astype(F32)
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        want, got = c0.copy(), c0.copy()
        _C.sgemm(ta, tb, M, N, K, 0.7, a, b, 0.25, want, bias, 1, True)
        _C.sgemm(ta, tb, M, N, K, 0.7, a, b, 0.25, got, bias, 1, True, prepacked=True)
        assert_same_product(got, want, isa_, ta, tb, M, N, K, f"{isa_} {threads}T {M}x{N}x{K}")
    ref = np.maximum(0.7 * (a.T if ta else a).astype(np.float64) @ (b.T if tb else b)
                     + 0.25 * c0 + bias, 0)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.sqrt(K))


@pytest.mark.parametrize("isa_,M,N,K", prepacked_cases() + [
    pytest.param(isa, 512, n, 1792, id=f"{isa}-512x{n}x1792-rnn-dW")
    for isa in BLOCKING for n in (28, 128)])
@pytest.mark.parametrize("ta,tb", TRANS, ids=TRANS_IDS)
def test_prepacked_a_gives_the_same_bits(isa_, M, N, K, ta, tb, rng):
    """fnn_sgemm_pack_a + fnn_sgemm_pa (the recurrent layers' dW = dG^T X from
    gate gradients written in the panel layout) against fnn_sgemm: identical
    bits (but for the small-N dot kernel) on 1 and 2 threads, near float64, and C untouched beyond M x N."""
    fastnn.set_isa(isa_)
    a, b = operands(rng, M, N, K, ta, tb, ints=False)
    c0 = rng.standard_normal((M, N + 3)).astype(F32)
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        want, got = c0.copy(), c0.copy()
        _C.sgemm(ta, tb, M, N, K, 0.7, a, b, 0.25, want[:, :N], None, 0, False)
        _C.sgemm(ta, tb, M, N, K, 0.7, a, b, 0.25, got[:, :N], None, 0, False, prepacked="a")
        assert_same_product(got, want, isa_, ta, tb, M, N, K, f"{isa_} {threads}T {M}x{N}x{K}")
    ref = 0.7 * (a.T if ta else a).astype(np.float64) @ (b.T if tb else b) + 0.25 * c0[:, :N]
    np.testing.assert_allclose(got[:, :N], ref, rtol=1e-4, atol=1e-4 * np.sqrt(K))
    np.testing.assert_array_equal(got[:, N:], c0[:, N:])


def test_prepacked_bad_arguments():
    a = np.ones((4, 3), F32)
    b = np.ones((3, 5), F32)
    c = np.zeros((4, 5), F32)
    with pytest.raises(ValueError, match="prepacked must be"):
        _C.sgemm(False, False, 4, 5, 3, 1.0, a, b, 0.0, c, None, 0, False, prepacked="c")
    with pytest.raises(ValueError, match="no bias and no ReLU"):
        _C.sgemm(False, False, 4, 5, 3, 1.0, a, b, 0.0, c, np.ones(5, F32), 1, False,
                 prepacked="a")


def test_plain_fast_path_takes_only_what_it_can_check(rng):
    """ops.matmul's C-checked fast path (_C.sgemm_plain) does the product for
    row-major float32 operands and a disjoint out, and declines (returns
    False, touching nothing) everything else, which the Python path then
    handles or explains."""
    a = rng.standard_normal((6, 5)).astype(F32)
    b = rng.standard_normal((5, 7)).astype(F32)
    out = np.full((6, 7), np.nan, F32)
    assert _C.sgemm_plain(a, b, False, False, 1.0, 0.0, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    out2 = np.empty_like(out)
    assert _C.sgemm_plain(at, bt, True, True, 1.0, 0.0, out2)
    np.testing.assert_array_equal(out2, ops.matmul(at, bt, trans_a=True, trans_b=True))
    # .T views (columns contiguous) are taken as their row-major base with
    # the flag flipped: the same bits as passing the base and the flag
    wide = rng.standard_normal((9, 12)).astype(F32)
    for va, vb, ta, tb, base in [
            (at.T, b, False, False, (at, b, True, False)),
            (a, bt.T, False, False, (a, bt, False, True)),
            (bt.T, at.T, True, True, (bt, at, False, False)),   # op(b.T) = b
            (wide[:5, 2:8].T, b, False, False, (wide[:5, 2:8], b, True, False))]:
        got = np.full((va.shape[1] if ta else va.shape[0], vb.shape[0] if tb else vb.shape[1]),
                      np.nan, F32)
        assert _C.sgemm_plain(va, vb, ta, tb, 1.0, 0.0, got)
        want = np.empty_like(got)
        assert _C.sgemm_plain(*base, 1.0, 0.0, want)
        np.testing.assert_array_equal(got, want)
    buf = np.zeros((6, 20), F32)
    declined = [
        (a.astype(np.float64), b, False, False, 1.0, 0.0, out),       # dtype
        (a[:, ::2], b[:3], False, False, 1.0, 0.0, out),               # strided columns
        (wide[:6, :10:2], b, False, False, 1.0, 0.0, out),             # no unit stride
        (wide[:5, :12:2].T, b, False, False, 1.0, 0.0, out),           # neither, as .T
        (a.T, b, False, False, 1.0, 0.0, out),                         # .T view: dims differ
        (a, b, False, False, 1.0, 0.0, np.empty((7, 6), F32).T),       # out a .T view
        (a, b, False, False, 2, 0.0, out),                             # int alpha
        (a, b, False, False, float("nan"), 0.0, out),                  # NaN alpha
        (a, b, False, False, 1.0, 1e39, out),                          # beta past float32
        (a, b[:4], False, False, 1.0, 0.0, out),                       # inner dims differ
        (a, b, False, False, 1.0, 0.0, out[:, :6]),                    # out shape
        (buf[:, :5], b, False, False, 1.0, 0.0, buf[:, 3:10]),         # out overlaps a
    ]
    ro = np.zeros((6, 7), F32)
    ro.flags.writeable = False
    declined.append((a, b, False, False, 1.0, 0.0, ro))                # read-only out
    for i, args in enumerate(declined):
        before = args[-1].copy()
        assert _C.sgemm_plain(*args) is False, i
        np.testing.assert_array_equal(args[-1], before)


# ------------------------------------------------ bias gradient (sum_rows) --

@pytest.mark.parametrize("n,c", [(1, 1), (3, 31), (7, 32), (7, 33), (64, 256), (128, 10),
                                 (1000, 130), (0, 5), (5, 0)])
def test_sum_rows_matches_float64(n, c, rng):
    x = rng.standard_normal((n, c)).astype(F32)
    want = x.astype(np.float64).sum(axis=0)
    got = np.full(c, np.nan, F32)
    _C.sum_rows(x, got, False)
    np.testing.assert_array_equal(got, want.astype(F32))      # float64 sum, rounded once
    start = rng.standard_normal(c).astype(F32)
    acc = start.copy()
    _C.sum_rows(x, acc, True)
    np.testing.assert_array_equal(acc, (start.astype(np.float64) + want).astype(F32))


def test_sum_rows_same_bits_on_any_thread_count(rng):
    # 700 x 1000: well above the 2-thread threshold (parallel_flops_per_thread)
    x = (rng.standard_normal((700, 1000)) * 1e3).astype(F32)
    outs = []
    for t in (1, 2, 3):
        fastnn.set_num_threads(t)
        o = np.empty(1000, F32)
        _C.sum_rows(x, o, False)
        outs.append(o)
    for o in outs[1:]:
        assert_bits_equal(o, outs[0], "sum_rows 1 vs more threads")


def test_sum_rows_rejects_bad_arguments():
    x = np.ones((4, 6), F32)
    with pytest.raises(TypeError, match="x"):
        _C.sum_rows(x.astype(np.float64), np.empty(6, F32), False)
    with pytest.raises(ValueError, match="x"):
        _C.sum_rows(np.ones((4, 12), F32)[:, ::2], np.empty(6, F32), False)
    with pytest.raises(ValueError, match="x"):
        _C.sum_rows(np.ones(6, F32), np.empty(6, F32), False)
    with pytest.raises(ValueError, match="out"):
        _C.sum_rows(x, np.empty(5, F32), False)
    with pytest.raises(TypeError, match="out"):
        _C.sum_rows(x, np.empty(6, np.float64), False)
    with pytest.raises(ValueError, match="out"):
        _C.sum_rows(x, x[1], False)                           # overlaps x
    ro = np.zeros(6, F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        _C.sum_rows(x, ro, False)
