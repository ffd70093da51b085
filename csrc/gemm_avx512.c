/* gemm_avx512.c -- AVX-512 micro-kernel: 8 x 48 tile, 24 zmm accumulators.
 * Per k: three 16-float loads of B, eight broadcasts of A, 24 FMAs. Edge
 * tiles are specialised at compile time (rows 1..8 x vectors 1..3) and the
 * ragged right edge uses masked loads/stores, so no work is wasted on padding
 * and nothing outside C is touched. Compiled for AVX-512 by function
 * attribute only: reached only when cpu.c finds AVX-512. */
#include "gemm_kernels.h"
#include "isa.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define MR 8
#define NR 48

/* x = epilogue(acc) of row i of a tile, lanes under m, stored to ci (ep->bias
 * offset to the lanes' first column for FNN_BIAS_COL): the order of operations
 * of fnn_gemm_store_tile. The store of every kernel in this file; plain (a
 * constant): fnn_epi_plain(ep) holds, only alpha applies. (A third variant
 * for alpha = 1 without the multiply, paired on the K = 10 products, Zen 4:
 * 0.92-0.97x the time at N = 256, 1.05-1.07x at N = 1024, where C's stores
 * then come back to back; not kept.) */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
store_row(const int plain, __m512 x, float *ci, __mmask16 m, int i, const fnn_epi *ep)
{
    x = _mm512_mul_ps(_mm512_set1_ps(ep->alpha), x);
    if (!plain) {
        if (ep->beta != 0.0f)
            x = _mm512_add_ps(x, _mm512_mul_ps(_mm512_set1_ps(ep->beta),
                                               _mm512_maskz_loadu_ps(m, ci)));
        if (ep->bias_mode == FNN_BIAS_COL)
            x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, ep->bias));
        else if (ep->bias_mode == FNN_BIAS_ROW)
            x = _mm512_add_ps(x, _mm512_set1_ps(ep->bias[i]));
        if (ep->relu)
            x = _mm512_max_ps(_mm512_setzero_ps(), x);
    }
    _mm512_mask_storeu_ps(ci, m, x);
}

/* The mrv x nv accumulators of tile() through store_row. */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
store_acc(const int plain, const int mrv, const int nv, __m512 acc[MR][3], float *c,
          ptrdiff_t ldc, int nr, const fnn_epi *ep)
{
    const int tail = nr - 16 * (nv - 1);          /* 1..16 lanes in the last vector */
    const __mmask16 mlast = (__mmask16)((1u << tail) - 1u);
    _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) {
        const __mmask16 m = v == nv - 1 ? mlast : (__mmask16)0xFFFF;
        fnn_epi e = *ep;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += 16 * v;
        _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
            store_row(plain, acc[i][v], c + i * ldc + 16 * v, m, i, &e);
    }
}

FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
tile(const int mrv, const int nv, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nr, const fnn_epi *ep)
{
    __m512 acc[MR][3];
    _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
        _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
            acc[i][v] = _mm512_setzero_ps();
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++) {
        __m512 bv[3];
        _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
            bv[v] = _mm512_loadu_ps(b + 16 * v);
        _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++) {
            __m512 ai = _mm512_set1_ps(a[i * rsa]);
            _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += csa;
        b += ldb;
    }
    if (fnn_epi_plain(ep))
        store_acc(1, mrv, nv, acc, c, ldc, nr, ep);
    else
        store_acc(0, mrv, nv, acc, c, ldc, nr, ep);
}

#define CASE(m, n) case (m) * 4 + (n): tile(m, n, k, a, rsa, csa, b, ldb, c, ldc, nr, ep); break;
#define ROW(m) CASE(m, 1) CASE(m, 2) CASE(m, 3)

FNN_TARGET_AVX512 static void ukr_avx512(int k, const float *a, const float *b, ptrdiff_t ldb,
        float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    const ptrdiff_t rsa = 1, csa = MR;      /* packed A panel */
    switch (mr * 4 + (nr + 15) / 16) {
    ROW(8) ROW(7) ROW(6) ROW(5) ROW(4) ROW(3) ROW(2) ROW(1)
    default: break;
    }
}

/* A read in place: op(A)(i, p) at a[i*rsa + p*csa] (the small-N path). */
FNN_TARGET_AVX512 static void ukr_avx512_sa(int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
        const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int mr, int nr,
        const fnn_epi *ep)
{
    switch (mr * 4 + (nr + 15) / 16) {
    ROW(8) ROW(7) ROW(6) ROW(5) ROW(4) ROW(3) ROW(2) ROW(1)
    default: break;
    }
}

/* ------------------------------------------------ small N (<= 16 columns) --
 * The 8x48 tile spends 16-lane vectors on N = 10 (62% of the lanes) and one
 * broadcast per FMA. These two kernels put the vectors along M or K instead. */

/* r[j] lane i -> r[i] lane j (16 x 16 in registers). */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void transpose16(__m512 r[16])
{
    __m512 t[16];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4g+q], 128-bit block b: element 4b+q of rows 4g..4g+3 */
    _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
        r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) {
        __m512 s0 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88);
        __m512 u0 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xDD);
        __m512 s1 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
        __m512 u1 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xDD);
        t[q] = _mm512_shuffle_f32x4(s0, s1, 0x88);
        t[8 + q] = _mm512_shuffle_f32x4(s0, s1, 0xDD);
        t[4 + q] = _mm512_shuffle_f32x4(u0, u1, 0x88);
        t[12 + q] = _mm512_shuffle_f32x4(u0, u1, 0xDD);
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

/* r[i] (a tile's columns, lanes under m) transposed in registers and stored
 * as rows off + i < off + rows of C, through store_row (a per-row bias
 * offset by off as well). */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
store_transposed(__m512 r[16], float *c, ptrdiff_t ldc, int off, int rows, __mmask16 m,
                 const fnn_epi *ep)
{
    transpose16(r);
    fnn_epi e = *ep;
    if (e.bias_mode == FNN_BIAS_ROW)
        e.bias += off;
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
        if (i < rows)
            store_row(0, r[i], c + (off + i) * ldc, m, i, &e);
}

/* Vectors along M: C rows [0, mr <= 32) x columns [0, nj <= 12) of
 * op(A)(i,p) = a[p*lda + i] times op(B)(p,j) = b[p*rsb + j*csb]. Per k: two
 * loads of A, nj broadcasts, 2 nj FMAs -- every lane used. K in blocks of
 * kc, each element one FMA chain over a block's p from zero (tile()'s), each
 * block's sum folded into tot as fnn_epi_block's epilogue would fold it into
 * C (alpha times it, plus beta C on the first block, plus the earlier blocks
 * on the later ones); bias and ReLU on the way out, in one transposed store. */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
tm_tile(const int nj, int mr, int k, int kc, const float *a, ptrdiff_t lda, const float *b,
        ptrdiff_t rsb, ptrdiff_t csb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    const __mmask16 m0 = mr >= 16 ? 0xFFFF : (__mmask16)((1u << mr) - 1u);
    const __mmask16 m1 = mr >= 32 ? 0xFFFF : mr <= 16 ? 0 : (__mmask16)((1u << (mr - 16)) - 1u);
    const __mmask16 mj = (__mmask16)((1u << nj) - 1u);
    const __m512 alpha = _mm512_set1_ps(ep->alpha);
    __m512 acc[2][12], tot[2][12];
    _Pragma("GCC unroll 12") for (int j = 0; j < nj; j++)     /* (read only after a store) */
        tot[0][j] = tot[1][j] = _mm512_setzero_ps();
    if (ep->beta != 0.0f) {             /* beta C, its columns as vectors */
        const __m512 beta = _mm512_set1_ps(ep->beta);
        _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++) {
            __m512 r[16];
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
                r[i] = 16 * v + i < mr ? _mm512_maskz_loadu_ps(mj, c + (16 * v + i) * ldc)
                                       : _mm512_setzero_ps();
            transpose16(r);
            _Pragma("GCC unroll 12") for (int j = 0; j < nj; j++)
                tot[v][j] = _mm512_mul_ps(beta, r[j]);
        }
    }
    for (int p0 = 0; p0 < k; p0 += kc) {
        const int kb = k - p0 < kc ? k - p0 : kc;
        _Pragma("GCC unroll 12") for (int j = 0; j < nj; j++)
            acc[0][j] = acc[1][j] = _mm512_setzero_ps();
        _Pragma("GCC unroll 2") for (int p = 0; p < kb; p++) {
            __m512 a0 = _mm512_maskz_loadu_ps(m0, a), a1 = _mm512_maskz_loadu_ps(m1, a + 16);
            _Pragma("GCC unroll 12") for (int j = 0; j < nj; j++) {
                __m512 bj = _mm512_set1_ps(b[j * csb]);
                acc[0][j] = _mm512_fmadd_ps(a0, bj, acc[0][j]);
                acc[1][j] = _mm512_fmadd_ps(a1, bj, acc[1][j]);
            }
            a += lda;
            b += rsb;
        }
        const int add = p0 > 0 || ep->beta != 0.0f;
        _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++)
            _Pragma("GCC unroll 12") for (int j = 0; j < nj; j++) {
                __m512 x = _mm512_mul_ps(alpha, acc[v][j]);
                tot[v][j] = add ? _mm512_add_ps(x, tot[v][j]) : x;
            }
    }
    /* alpha 1 (exact) and beta 0: only bias and ReLU left */
    const fnn_epi out = {1.0f, 0.0f, ep->bias, ep->bias_mode, ep->relu};
    _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++) {
        if (16 * v >= mr)
            break;
        __m512 r[16];
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
            r[j] = j < nj ? tot[v][j] : _mm512_setzero_ps();
        store_transposed(r, c, ldc, 16 * v, mr - 16 * v, mj, &out);
    }
}

#define TM(n) case n: tm_tile(n, mr, k, kc, a, lda, b, rsb, csb, c, ldc, ep); break;

FNN_TARGET_AVX512 static void small_tm_avx512(int mr, int nj, int k, int kc, const float *a,
        ptrdiff_t lda, const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    switch (nj) {
    TM(1) TM(2) TM(3) TM(4) TM(5) TM(6) TM(7) TM(8) TM(9) TM(10) TM(11)
    default: TM(12)
    }
}
#undef TM

/* Lane j of the result = the sum of the 16 lanes of v[j], j < nj (a fixed
 * tree: 256-bit halves, 128-bit quarters, then pairs within them). */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) __m512
hsum16(const int nj, const __m512 *v)
{
    __m512 in[16], w[8], u[4], s[2];
    _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)   /* lane 4c+d <- in[4d+c] */
        in[4 * (j % 4) + j / 4] = j < nj ? v[j] : _mm512_setzero_ps();
    _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++)
        w[q] = _mm512_add_ps(_mm512_shuffle_f32x4(in[2 * q], in[2 * q + 1], 0x44),
                             _mm512_shuffle_f32x4(in[2 * q], in[2 * q + 1], 0xEE));
    _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++)
        u[q] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], 0xDD));
    _Pragma("GCC unroll 2") for (int q = 0; q < 2; q++)
        s[q] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * q], u[2 * q + 1], 0x44),
                             _mm512_shuffle_ps(u[2 * q], u[2 * q + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(s[0], s[1], 0x88), _mm512_shuffle_ps(s[0], s[1], 0xDD));
}

/* Dot products along K: C rows [0, ra <= 4) x columns [0, nj <= 12, or
 * nj <= 6 for ra > 2) of
 * op(A)(i,p) = a[i*lda + p] and op(B)(p,j) = b[j*ldb + p]. Per 16 k: ra + nj
 * loads, ra nj FMAs; each element then sums its 16 lanes (hsum16). A row's
 * sums do not depend on the rows beside it. */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
dot_tile(const int ra, const int nj, int k, const float *a, ptrdiff_t lda, const float *b,
         ptrdiff_t ldb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    __m512 acc[4][12];
    _Pragma("GCC unroll 4") for (int r = 0; r < ra; r++)
        _Pragma("GCC unroll 12") for (int j = 0; j < nj; j++)
            acc[r][j] = _mm512_setzero_ps();
#define DOT_STEP(m)                                                           \
    do {                                                                      \
        __m512 av[4];                                                         \
        _Pragma("GCC unroll 4") for (int r = 0; r < ra; r++) {               \
            av[r] = _mm512_maskz_loadu_ps(m, a + r * lda + p);                \
            __asm__("" : "+v"(av[r]));     /* one load, not one per FMA */    \
        }                                                                     \
        _Pragma("GCC unroll 12") for (int j = 0; j < nj; j++) {               \
            __m512 bv = _mm512_maskz_loadu_ps(m, b + j * ldb + p);            \
            __asm__("" : "+v"(bv));                                           \
            _Pragma("GCC unroll 4") for (int r = 0; r < ra; r++)              \
                acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);            \
        }                                                                     \
    } while (0)
    const int k16 = k & ~15;
    int p = 0;
    for (; p < k16; p += 16)
        DOT_STEP((__mmask16)0xFFFF);
    if (k > k16)
        DOT_STEP((__mmask16)((1u << (k - k16)) - 1u));
#undef DOT_STEP
    const __mmask16 mj = (__mmask16)((1u << nj) - 1u);
    _Pragma("GCC unroll 4") for (int r = 0; r < ra; r++)
        store_row(0, hsum16(nj, acc[r]), c + r * ldc, mj, r, ep);
}

#define DOT(n) case n: {                                                     \
        if (ra == 1) dot_tile(1, n, k, a, lda, b, ldb, c, ldc, ep);             \
        else if (ra == 2 || n > 6) {        /* over 6 wide: two rows */     \
            dot_tile(2, n, k, a, lda, b, ldb, c, ldc, ep);                      \
            if (ra > 2) {                                                       \
                fnn_epi e = *ep;                                                \
                e.bias += e.bias_mode == FNN_BIAS_ROW ? 2 : 0;                  \
                if (ra == 3)                                                    \
                    dot_tile(1, n, k, a + 2 * lda, lda, b, ldb, c + 2 * ldc, ldc, &e); \
                else                                                            \
                    dot_tile(2, n, k, a + 2 * lda, lda, b, ldb, c + 2 * ldc, ldc, &e); \
            }                                                                   \
        }                                                                       \
        else if (ra == 3) dot_tile(3, n, k, a, lda, b, ldb, c, ldc, ep);        \
        else dot_tile(4, n, k, a, lda, b, ldb, c, ldc, ep);                     \
    } break;

/* Two rows by up to 12 columns, or (small_dot_far_rows x _cols) four rows by
 * up to 6 where op(B) is larger than L1: N = 10 as two chunks of 5, a
 * chunk's rows of op(B) then coming from L1 for four rows of A instead of
 * all of op(B) from L2 for two. 64-256 x 10 x 1024 (B 40 KB) took
 * 0.82-0.86x the time on 1 and 2 threads (Zen 4, L1d 32 KB; paired);
 * where B fits L1 the two-row tile stays (x 256: 1.08-1.10x the time with
 * four rows; x 784, B 31 KB: 0.91-1.01x). On the Xeon (L1d 48 KB) the
 * four-row tile measured slower at K = 1024, B fitting L1 there (70 vs 116
 * GFLOP/s). Same sums either way: each element is its own dot product. */
FNN_TARGET_AVX512 static void small_dot_avx512(int ra, int nj, int k, const float *a,
        ptrdiff_t lda, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    switch (nj) {
    DOT(1) DOT(2) DOT(3) DOT(4) DOT(5) DOT(6) DOT(7) DOT(8) DOT(9) DOT(10) DOT(11)
    default: DOT(12)
    }
}
#undef DOT

/* ------------------------------------------------ small K (<= 16 rows of B) --
 * dX = dY W of a 10-class output layer: C (M x N) from K = 10 and both
 * operands read in place. At that depth a packed 8x48 tile is mostly
 * prologue and epilogue (pointer set-up, 24 stores) around 240 FMAs, and
 * packing A is all overhead; in one call over whole strips the 4 x 64 tile
 * (16 accumulators, 4 loads and 4 broadcasts per 16 FMAs) measured best of
 * 2-6 rows x 3-6 vectors (C harness against numpy's OpenBLAS, Zen 4: 4 x 64
 * 0.87-1.07x OpenBLAS's own small-matrix kernel, 8 x 48 in one call
 * 0.84-0.99x, the packed path 0.76-0.91x). Columns outside (a strip of
 * op(B), K x 64, stays in L1), rows inside. */
#define SK_ROWS 4
#define SK_VECS 4

FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
sk_tile(const int plain, const int mr, const int nv, int k, const float *a, ptrdiff_t rsa,
        ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, __mmask16 mlast,
        const fnn_epi *ep)
{
    __m512 acc[SK_ROWS][SK_VECS];
    _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++)
        _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++)
            acc[i][v] = _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        __m512 bv[SK_VECS];
        _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(mlast, b + 16 * v)
                                : _mm512_loadu_ps(b + 16 * v);
        _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(a[i * rsa]);
            _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += csa;
        b += ldb;
    }
    _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++) {
        fnn_epi e = *ep;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += 16 * v;
        _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++)
            store_row(plain, acc[i][v], c + i * ldc + 16 * v,
                      v == nv - 1 ? mlast : (__mmask16)0xFFFF, i, &e);
    }
}

/* One strip of columns (nv vectors, the last under mlast) down rows [0, m). */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
sk_strip(const int plain, const int nv, int m, int k, const float *a, ptrdiff_t rsa,
         ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
         __mmask16 mlast, const fnn_epi *ep)
{
    fnn_epi e = *ep;
    int i = 0;
    for (; i + SK_ROWS <= m; i += SK_ROWS) {
        e.bias = ep->bias_mode == FNN_BIAS_ROW ? ep->bias + i : ep->bias;
        sk_tile(plain, SK_ROWS, nv, k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc, mlast,
                &e);
    }
    e.bias = ep->bias_mode == FNN_BIAS_ROW ? ep->bias + i : ep->bias;
    a += i * rsa;
    c += i * ldc;
    switch (m - i) {
    case 3: sk_tile(plain, 3, nv, k, a, rsa, csa, b, ldb, c, ldc, mlast, &e); break;
    case 2: sk_tile(plain, 2, nv, k, a, rsa, csa, b, ldb, c, ldc, mlast, &e); break;
    case 1: sk_tile(plain, 1, nv, k, a, rsa, csa, b, ldb, c, ldc, mlast, &e); break;
    default: break;
    }
}

FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
sk_all(const int plain, int m, int n, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
       const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    for (int j = 0; j < n; j += 16 * SK_VECS) {
        const int nr = n - j < 16 * SK_VECS ? n - j : 16 * SK_VECS, nv = (nr + 15) / 16;
        const __mmask16 mlast = (__mmask16)((1u << (nr - 16 * (nv - 1))) - 1u);
        fnn_epi e = *ep;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += j;
        switch (nv) {
        case 4: sk_strip(plain, 4, m, k, a, rsa, csa, b + j, ldb, c + j, ldc, mlast, &e); break;
        case 3: sk_strip(plain, 3, m, k, a, rsa, csa, b + j, ldb, c + j, ldc, mlast, &e); break;
        case 2: sk_strip(plain, 2, m, k, a, rsa, csa, b + j, ldb, c + j, ldc, mlast, &e); break;
        default: sk_strip(plain, 1, m, k, a, rsa, csa, b + j, ldb, c + j, ldc, mlast, &e); break;
        }
    }
}

FNN_TARGET_AVX512 static void small_k_avx512(int m, int n, int k, const float *a,
        ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    if (fnn_epi_plain(ep))
        sk_all(1, m, n, k, a, rsa, csa, b, ldb, c, ldc, ep);
    else
        sk_all(0, m, n, k, a, rsa, csa, b, ldb, c, ldc, ep);
}

/* ------------------------------------------- convolution (indirect A) --
 * acc (8 output pixels x up to 32 channels) = sum_p rows[i][koff[p]] b[32 p + j]:
 * the pixels' taps read where they lie in a padded image (no im2col), the
 * weights packed 32 channels wide. Per k: 8 broadcasts, 2 loads, 16 FMAs.
 * Stored transposed, C[j ldc + i] (NCHW: a channel's pixels are a row). */
FNN_TARGET_AVX512 static inline __attribute__((always_inline)) void
conv_tile(const int nv, int k, const float *const *rows, const int *koff, const float *b,
          float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
    const float *r4 = rows[4], *r5 = rows[5], *r6 = rows[6], *r7 = rows[7];
    __m512 acc[8][2];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++) {
        const int o = koff[p];
        __m512 bv[2];
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++)
            bv[v] = _mm512_loadu_ps(b + 16 * v);
        const float av[8] = {r0[o], r1[o], r2[o], r3[o], r4[o], r5[o], r6[o], r7[o]};
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
            __m512 ai = _mm512_set1_ps(av[i]);
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        b += 32;
    }
    if (ep->rows) {                     /* pixel-major, as accumulated */
        const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFFu : (1u << nr) - 1u);
        const __mmask16 m1 = (__mmask16)(nr <= 16 ? 0u : nr >= 32 ? 0xFFFFu : (1u << (nr - 16)) - 1u);
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
            if (i < mr) {
                _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
                if (nv == 2)
                    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
            }
        return;
    }
    const __mmask16 mi = (__mmask16)((1u << mr) - 1u);
    _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) {
        __m512 r[16];
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
            r[i] = i < 8 ? acc[i][v] : _mm512_setzero_ps();
        /* row j: channel 16 v + j's pixels, lanes 0..7 */
        store_transposed(r, c, ldc, 16 * v, nr - 16 * v, mi, ep);
    }
}

FNN_TARGET_AVX512 static void conv_avx512(int k, const float *const *rows, const int *koff,
        const float *b, float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    if (nr > 16)
        conv_tile(2, k, rows, koff, b, c, ldc, mr, nr, ep);
    else
        conv_tile(1, k, rows, koff, b, c, ldc, mr, nr, ep);
}

/* KC: A micro-panel 8x384 (12 KB) stays in L1; NC: B block 384x672 (1 MB)
 * in the 2 MB L2; MC: A block 1536x384 (2.3 MB). With the k-loop unrolled by
 * 4, measured best of KC 256/384/512 x NC 480/672/960 on large squares. */
const fnn_gemm_arch fnn_gemm_avx512 = {MR, NR, 16, 384, 1536, 672, ukr_avx512, fnn_pack_t_avx2, ukr_avx512_sa,
                                      small_tm_avx512, small_dot_avx512, 32, 12, 2,
                                      conv_avx512, 8, 32, 4, 6, small_k_avx512, SK_ROWS, 0,
                                      0, 0, 256};
#endif
