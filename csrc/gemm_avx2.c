/* gemm_avx2.c -- AVX2+FMA micro-kernel (6 x 16 tile, 12 ymm accumulators;
 * per k: two 8-float loads of B, six broadcasts of A, 12 FMAs) and the 8x8
 * transposing pack that the AVX2 and AVX-512 paths share. Compiled for AVX2
 * by function attribute only: reached only when cpu.c finds AVX2+FMA. */
#include "gemm_kernels.h"
#include "isa.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define MR 6
#define NR 16

/* Lanes [0, n) set, as a maskload mask. */
FNN_TARGET_AVX2 static inline __m256i lanes(int n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* Lanes [0, n) of x to p (n <= 0: nothing), in 4-, 2- and 1-float pieces
 * rather than a masked store: AMD's vmaskmovps stores are microcoded. A
 * transposing pack of 6-row panels with masked stores took 2.2-3.4 cycles
 * an element on a Zen 4, against 0.4-0.5 for 8-row panels with full ones. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
store_lanes(float *p, __m256 x, int n)
{
    if (n >= 8) {
        _mm256_storeu_ps(p, x);
        return;
    }
    __m128 h = _mm256_castps256_ps128(x);
    if (n >= 4) {
        _mm_storeu_ps(p, h);
        h = _mm256_extractf128_ps(x, 1);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)p, h);
        h = _mm_movehl_ps(h, h);
        p += 2;
        n -= 2;
    }
    if (n == 1)
        _mm_store_ss(p, h);
}

/* x = epilogue(acc) of row i of a tile, lanes [0, n) (m = lanes(n)),
 * stored to ci (ep->bias offset to the lanes' first column for
 * FNN_BIAS_COL): the order of operations of fnn_gemm_store_tile. The store
 * of every kernel in this file; plain (a constant): fnn_epi_plain(ep)
 * holds, only alpha applies. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
store_row(const int plain, __m256 x, float *ci, __m256i m, int n, int i, const fnn_epi *ep)
{
    x = _mm256_mul_ps(_mm256_set1_ps(ep->alpha), x);
    if (!plain) {
        if (ep->beta != 0.0f)
            x = _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(ep->beta),
                                               _mm256_maskload_ps(ci, m)));
        if (ep->bias_mode == FNN_BIAS_COL)
            x = _mm256_add_ps(x, _mm256_maskload_ps(ep->bias, m));
        else if (ep->bias_mode == FNN_BIAS_ROW)
            x = _mm256_add_ps(x, _mm256_set1_ps(ep->bias[i]));
        if (ep->relu)
            x = _mm256_max_ps(_mm256_setzero_ps(), x);
    }
    store_lanes(ci, x, n);
}

/* The mrv x nv accumulators of tile() through store_row. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
store_acc(const int plain, const int mrv, const int nv, __m256 acc[MR][2], float *c,
          ptrdiff_t ldc, int nr, const fnn_epi *ep)
{
    const int tail = nr - 8 * (nv - 1);           /* 1..8 lanes in the last vector */
    const __m256i mlast = lanes(tail), mall = lanes(8);
    _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) {
        const __m256i m = v == nv - 1 ? mlast : mall;
        fnn_epi e = *ep;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += 8 * v;
        _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
            store_row(plain, acc[i][v], c + i * ldc + 8 * v, m, v == nv - 1 ? tail : 8, i, &e);
    }
}

/* A tile of nv whole vectors a row (nv = 2: full width): store_acc's sums with
 * unmasked loads and stores, its tests once per tile instead of once per
 * row and vector (the masked loads, the lane-count branches of store_lanes
 * and the per-row tests of beta and bias took 2-6% of the large products'
 * time on a Zen 3: 1024^3, 2048^3, 256x1024x1024 NN, 128x1024x784 NT and
 * 1024x784x256 TN ran 0.94-0.98x the time with this, paired, 1 thread). The
 * K blocks of a large product store with alpha = 1 and beta = 0 (the first)
 * or 1 (the others); those skip the multiplies by 1, which are exact, so
 * every case gives store_row's bits. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
store_full(const int mrv, const int nv, __m256 acc[MR][2], float *c, ptrdiff_t ldc,
           const fnn_epi *ep)
{
    const __m256 al = _mm256_set1_ps(ep->alpha), be = _mm256_set1_ps(ep->beta);
    if (ep->bias_mode != FNN_BIAS_NONE || ep->relu) {
        store_acc(0, mrv, nv, acc, c, ldc, 8 * nv, ep);
    } else if (ep->beta == 0.0f) {
        _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++)
                _mm256_storeu_ps(c + i * ldc + 8 * v, _mm256_mul_ps(al, acc[i][v]));
    } else if (ep->alpha == 1.0f && ep->beta == 1.0f) {
        _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++)
                _mm256_storeu_ps(c + i * ldc + 8 * v,
                                 _mm256_add_ps(acc[i][v], _mm256_loadu_ps(c + i * ldc + 8 * v)));
    } else {
        _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++)
                _mm256_storeu_ps(c + i * ldc + 8 * v,
                                 _mm256_add_ps(_mm256_mul_ps(al, acc[i][v]),
                                               _mm256_mul_ps(be, _mm256_loadu_ps(c + i * ldc + 8 * v))));
    }
}

/* mrv rows x nv vectors (of 8 floats); the last vector stores nr - 8*(nv-1) lanes. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
tile(const int mrv, const int nv, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nr, const fnn_epi *ep)
{
    __m256 acc[MR][2];
    _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
        _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
            acc[i][v] = _mm256_setzero_ps();
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++) {
        __m256 bv[2];
        _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
            bv[v] = _mm256_loadu_ps(b + 8 * v);
        _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i * rsa);
            _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
                acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += csa;
        b += ldb;
    }
    if (nv == 2 && nr == 16) {
        store_full(mrv, 2, acc, c, ldc, ep);
        return;
    }
    if (fnn_epi_plain(ep))
        store_acc(1, mrv, nv, acc, c, ldc, nr, ep);
    else
        store_acc(0, mrv, nv, acc, c, ldc, nr, ep);
}

#define CASE(m, n) case (m) * 4 + (n): tile(m, n, k, a, rsa, csa, b, ldb, c, ldc, nr, ep); break;
#define ROW(m) CASE(m, 1) CASE(m, 2)

FNN_TARGET_AVX2 static void ukr_avx2(int k, const float *a, const float *b, ptrdiff_t ldb,
        float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    const ptrdiff_t rsa = 1, csa = MR;      /* packed A panel */
    switch (mr * 4 + (nr + 7) / 8) {
    ROW(6) ROW(5) ROW(4) ROW(3) ROW(2) ROW(1)
    default: break;
    }
}

/* A read in place: op(A)(i, p) at a[i*rsa + p*csa] (the small-N path, the
 * row kernel's partial panels). Not inlined: inlined into row_part beside
 * the 48-column tiles, GCC spilled accumulators of its loops to the stack. */
FNN_TARGET_AVX2 static __attribute__((noinline)) void
ukr_avx2_sa(int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t ldb,
            float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    switch (mr * 4 + (nr + 7) / 8) {
    ROW(6) ROW(5) ROW(4) ROW(3) ROW(2) ROW(1)
    default: break;
    }
}

/* A row of full tiles (fnn_ukr_row_fn). One call a row panel instead of one
 * a tile (of 256-320 k steps: the call, the shape dispatch and the driver's
 * loop around each had cost 4-5% of a 1024^3 product's samples): against
 * the build before, paired, Zen 2, 1 thread, 512^3-2048^3 0.98-0.99x the
 * time, training shapes 0.96-0.98x, TN 1024x1024x64 0.92x; 2 threads
 * 0.97-0.99x (NN 128x1024x256 1.01x, inside its spread). Same bits. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
row(int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t ldb,
    ptrdiff_t bstep, int nt, float *c, ptrdiff_t ldc, const fnn_epi *ep,
    const float *next_a, size_t next_bytes)
{
    fnn_epi e = *ep;
    for (int t = 0; t < nt; t++) {
        if (t + 1 < nt)
            fnn_prefetch_tile(c + NR, ldc, MR, NR);
        if (next_a)
            fnn_prefetch_share(next_a, next_bytes, t, nt);
        tile(MR, 2, k, a, rsa, csa, b, ldb, c, ldc, NR, &e);
        b += bstep;
        c += NR;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += NR;
    }
}

/* fnn_ukr_row_pack_fn: row()'s tiles with B loaded from op(B) and stored
 * to the packed panels (2 stores per 12 FMAs). Each k step reads a new row
 * of B, ldb apart and often on a new page, which the hardware prefetchers do
 * not follow: the kernel prefetches the line FNN_ROW_PACK_AHEAD rows ahead
 * (the next tile's first rows during a tile's last steps), into L2 (8 and
 * 24 rows ahead ran 64x3136x1024 NN 1.04-1.10x the time, 128 1.01x). */
FNN_TARGET_AVX2 static void ukr_row_pack_avx2(int k, const float *a, const float *b,
        ptrdiff_t ldb, int nt, float *bp, float *c, ptrdiff_t ldc, const fnn_epi *ep,
        const float *next_a, size_t next_bytes)
{
    fnn_epi e = *ep;
    const int d = k < FNN_ROW_PACK_AHEAD ? k : FNN_ROW_PACK_AHEAD;
    for (int p = 0; p < d; p++) {
        __builtin_prefetch(b + p * ldb, 0, 2);
        __builtin_prefetch(b + p * ldb + NR - 1, 0, 2);
    }
    for (int t = 0; t < nt; t++) {
        if (t + 1 < nt)
            fnn_prefetch_tile(c + NR, ldc, MR, NR);
        if (next_a)
            fnn_prefetch_share(next_a, next_bytes, t, nt);
        __m256 acc[MR][2];
        _Pragma("GCC unroll 8") for (int i = 0; i < MR; i++)
            acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        const float *ap = a, *bs = b;
        float *bd = bp;
        _Pragma("GCC unroll 4") for (int p = 0; p < k; p++) {
            const float *pf = p + d < k ? bs + d * ldb : b + NR + (ptrdiff_t)(p + d - k) * ldb;
            __builtin_prefetch(pf, 0, 2);
            __builtin_prefetch(pf + NR - 1, 0, 2);
            const __m256 b0 = _mm256_loadu_ps(bs), b1 = _mm256_loadu_ps(bs + 8);
            _mm256_storeu_ps(bd, b0);
            _mm256_storeu_ps(bd + 8, b1);
            _Pragma("GCC unroll 8") for (int i = 0; i < MR; i++) {
                const __m256 ai = _mm256_broadcast_ss(ap + i);
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
            ap += MR;
            bs += ldb;
            bd += NR;
        }
        store_full(MR, 2, acc, c, ldc, &e);
        b += NR;
        bp += (ptrdiff_t)k * NR;
        c += NR;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += NR;
    }
}

/* mrv rows x nv (3-6) vectors of 8 columns, vector v's B at bv[v] (each k
 * step ldb on), C's columns c .. c + 8 nv: the partial row panels' tiles.
 * A 16-column tile of one to four rows keeps 2-8 accumulators, fewer than
 * the FMA pipes' latency x width (5 x 2 on a Zen 2) needs: a 2-row tile of
 * k steps waits on its FMA chains, at ~40% of the peak. Wider tiles add
 * chains: 12 for two rows of 48 columns, three of 32 and four of 24 (six
 * for one row of 48). Up to three rows each k step broadcasts its A values
 * first and loads B a vector at a time (mrv + 1 + 12 registers: three rows
 * the other way round, nv + 1 + 12, spilled); four rows load B first and
 * broadcast A a row at a time (3 + 1 + 12). Against two rows of 32 and
 * three of 24 columns (paired, in one build, Zen 2, 1 thread): NN
 * 14x784x1024 0.981x the time, 20x1024x1024 and 128x784x1024 0.995x
 * (2 rows); 15x1024x1024 0.976-0.983x (3 rows); 2x1024x1024 (B in place)
 * 0.856x. Each element the same FMA chain as tile()'s, so the same bits. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
tile_wide(const int mrv, const int nv, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
          const float *const *bv, ptrdiff_t ldb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    __m256 acc[3][MR][2];             /* vector v of row i at acc[v / 2][i][v % 2] */
    _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++)
        _Pragma("GCC unroll 6") for (int v = 0; v < nv; v++)
            acc[v / 2][i][v % 2] = _mm256_setzero_ps();
    ptrdiff_t off = 0;
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++) {
        if (mrv <= 3) {
            __m256 ai[3];
            _Pragma("GCC unroll 3") for (int i = 0; i < mrv; i++)
                ai[i] = _mm256_broadcast_ss(a + i * rsa);
            _Pragma("GCC unroll 6") for (int v = 0; v < nv; v++) {
                const __m256 x = _mm256_loadu_ps(bv[v] + off);
                _Pragma("GCC unroll 3") for (int i = 0; i < mrv; i++)
                    acc[v / 2][i][v % 2] = _mm256_fmadd_ps(ai[i], x, acc[v / 2][i][v % 2]);
            }
        } else {
            __m256 x[6];
            _Pragma("GCC unroll 6") for (int v = 0; v < nv; v++)
                x[v] = _mm256_loadu_ps(bv[v] + off);
            _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++) {
                const __m256 ai = _mm256_broadcast_ss(a + i * rsa);
                _Pragma("GCC unroll 6") for (int v = 0; v < nv; v++)
                    acc[v / 2][i][v % 2] = _mm256_fmadd_ps(ai, x[v], acc[v / 2][i][v % 2]);
            }
        }
        a += csa;
        off += ldb;
    }
    fnn_epi e = *ep;
    _Pragma("GCC unroll 3") for (int u = 0; 2 * u < nv; u++) {
        store_full(mrv, nv - 2 * u < 2 ? nv - 2 * u : 2, acc[u], c + 16 * u, ldc, &e);
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += 16;
    }
}

/* Panels [t, t + np) of a partial row panel (mrv < MR rows) as tile_wide
 * tiles: np panels' 2 np vectors in one tile, or (four rows) three panels
 * as two tiles of three vectors. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
part_group(const int mrv, const int np, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
           const float *b, ptrdiff_t ldb, ptrdiff_t bstep, float *c, ptrdiff_t ldc,
           const fnn_epi *ep)
{
    const float *bv[6];
    for (int v = 0; v < 2 * np; v++)
        bv[v] = b + v / 2 * bstep + 8 * (v % 2);
    if (mrv == 4 && np == 3) {
        fnn_epi e2 = *ep;
        if (e2.bias_mode == FNN_BIAS_COL)
            e2.bias += 24;
        tile_wide(4, 3, k, a, rsa, csa, bv, ldb, c, ldc, ep);
        tile_wide(4, 3, k, a, rsa, csa, bv + 3, ldb, c + 24, ldc, &e2);
    } else {
        tile_wide(mrv, 2 * np, k, a, rsa, csa, bv, ldb, c, ldc, ep);
    }
}

/* A row of full-width tiles with mr < MR rows (the last row panel of an M
 * that is not a multiple of 6), np panels at a time in part_group's tiles:
 * 1-2 rows and 4 rows three panels at a time, 3 rows two (1-2 rows: two
 * left over go as one group); five rows and the tiles left over a tile at
 * a time. */
#define PART_STEP(m) ((m) == 3 ? 2 : 3)
FNN_TARGET_AVX2 static void row_part(int mr, int k, const float *a, ptrdiff_t rsa,
        ptrdiff_t csa, const float *b, ptrdiff_t ldb, ptrdiff_t bstep, int nt, float *c,
        ptrdiff_t ldc, const fnn_epi *ep)
{
    fnn_epi e = *ep;
    const int np = PART_STEP(mr);
    int t = 0;
    for (; mr < 5 && t + np <= nt; t += np) {
        for (int u = np; u < 2 * np && t + u < nt; u++)
            fnn_prefetch_tile(c + u * NR, ldc, mr, NR);
        switch (mr) {
        case 1: part_group(1, PART_STEP(1), k, a, rsa, csa, b, ldb, bstep, c, ldc, &e); break;
        case 2: part_group(2, PART_STEP(2), k, a, rsa, csa, b, ldb, bstep, c, ldc, &e); break;
        case 3: part_group(3, PART_STEP(3), k, a, rsa, csa, b, ldb, bstep, c, ldc, &e); break;
        default: part_group(4, PART_STEP(4), k, a, rsa, csa, b, ldb, bstep, c, ldc, &e); break;
        }
        b += np * bstep;
        c += np * NR;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += np * NR;
    }
    if (mr <= 2 && nt - t == 2) {
        if (mr == 1)
            part_group(1, 2, k, a, rsa, csa, b, ldb, bstep, c, ldc, &e);
        else
            part_group(2, 2, k, a, rsa, csa, b, ldb, bstep, c, ldc, &e);
        t = nt;
    }
    for (; t < nt; t++) {
        if (t + 1 < nt)
            fnn_prefetch_tile(c + NR, ldc, mr, NR);
        ukr_avx2_sa(k, a, rsa, csa, b, ldb, c, ldc, mr, NR, &e);
        b += bstep;
        c += NR;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += NR;
    }
}
#undef PART_STEP

FNN_TARGET_AVX2 static void ukr_row_avx2(int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
        const float *b, ptrdiff_t ldb, ptrdiff_t bstep, int nt, int mr, float *c,
        ptrdiff_t ldc, const fnn_epi *ep, const float *next_a, size_t next_bytes)
{
    if (mr < MR)
        row_part(mr, k, a, rsa, csa, b, ldb, bstep, nt, c, ldc, ep);
    else if (rsa == 1 && csa == MR)     /* a packed panel: constant strides */
        row(k, a, 1, MR, b, ldb, bstep, nt, c, ldc, ep, next_a, next_bytes);
    else
        row(k, a, rsa, csa, b, ldb, bstep, nt, c, ldc, ep, next_a, next_bytes);
}

/* fnn_pack_b_fn, gemm.c's pack order (four rows a step, the next four
 * rows' lines prefetched) with each step's eight vectors loaded before any
 * is stored: gemm.c's memcpy row copies, compiled for SSE2, load and store
 * 16 bytes at a time, interleaved. A block of B in L3 (256 x 256 of a
 * 1024-wide B) packed at 29-30 GB/s that way and 38-40 with this, on 1 and
 * on 2 threads (a C harness, Zen 2). In the products, two builds paired
 * (bench/ab_builds.py, 9 rounds): NN 64x1024x256 0.986x the time on 1
 * thread and 0.975x on 2, 64x1024x1024 0.989x / 0.970x; 128-256 x 1024 x
 * 1024, 1024^3, 2048^3 and TN 784x1024x256 0.985-1.010x (noise); the same
 * bits. */
FNN_TARGET_AVX2 static void pack_b_avx2(int kc, int full, const float *b, ptrdiff_t ldb,
                                        float *dst)
{
    for (int p = 0; p < kc; p += 4) {
        const int rows = kc - p < 4 ? kc - p : 4, ahead = p + 8 <= kc;
        for (int j = 0; j < full; j += NR) {
            float *d = dst + (ptrdiff_t)j * kc + (ptrdiff_t)p * NR;
            const float *s = b + p * ldb + j;
            if (ahead)
                for (int r = 4; r < 8; r++)
                    _mm_prefetch((const char *)(s + r * ldb), _MM_HINT_T0);
            if (rows == 4) {
                __m256 x[8];
                _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
                    x[2 * r] = _mm256_loadu_ps(s + r * ldb);
                    x[2 * r + 1] = _mm256_loadu_ps(s + r * ldb + 8);
                }
                _Pragma("GCC unroll 8") for (int v = 0; v < 8; v++)
                    _mm256_storeu_ps(d + 8 * v, x[v]);
            } else {
                for (int r = 0; r < rows; r++) {
                    _mm256_storeu_ps(d + r * NR, _mm256_loadu_ps(s + r * ldb));
                    _mm256_storeu_ps(d + r * NR + 8, _mm256_loadu_ps(s + r * ldb + 8));
                }
            }
        }
    }
}

/* r[j] lane i -> r[i] lane j (8 x 8 in registers). */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* r[i] (a tile's columns, lanes [0, n)) transposed in registers and
 * stored as rows off + i < off + rows of C, through store_row (a per-row
 * bias offset by off as well). */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
store_transposed(__m256 r[8], float *c, ptrdiff_t ldc, int off, int rows, int n,
                 const fnn_epi *ep)
{
    const __m256i m = lanes(n);
    transpose8(r);
    fnn_epi e = *ep;
    if (e.bias_mode == FNN_BIAS_ROW)
        e.bias += off;
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
        if (i < rows)
            store_row(0, r[i], c + (off + i) * ldc, m, n, i, &e);
}

/* pack_t's blocks of nrow <= 8 rows, nrow and full known at compile time:
 * full (nrow == ldd >= 4, e.g. the 6-row A panels) writes each column but
 * the last with one full store whose lanes past nrow the next column's
 * store overwrites -- its 8 columns are 8 * ldd contiguous floats -- and
 * otherwise a column in pieces (store_lanes). */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
pack_t_block(const int nrow, const int full, int k8, const float *src, ptrdiff_t lds,
             float *dst, int ldd)
{
    for (int p = 0; p < k8; p += 8) {
        __m256 r[8];
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
            r[i] = i < nrow ? _mm256_loadu_ps(src + i * lds + p) : _mm256_setzero_ps();
        transpose8(r);
        float *d = dst + (ptrdiff_t)p * ldd;
        _Pragma("GCC unroll 8") for (int q = 0; q < 7; q++)
            if (full)
                _mm256_storeu_ps(d + (ptrdiff_t)q * ldd, r[q]);
            else
                store_lanes(d + (ptrdiff_t)q * ldd, r[q], nrow);
        store_lanes(d + 7 * (ptrdiff_t)ldd, r[7], nrow);
    }
}

/* dst[p*ldd + i] = src[i*lds + p]: 8 rows x 8 columns per in-register
 * transpose, a block of fewer rows padded with zeros in registers. Each
 * block size its own loop: with the row count a run-time test on every
 * load and store, the loops branched 10-15 times a transpose and took
 * 1.2-1.4x the time (6- and 16-row panels of 256-320 k, Zen 2). */
FNN_TARGET_AVX2 void fnn_pack_t_avx2(int rows, int k, const float *src, ptrdiff_t lds,
                          float *dst, int ldd)
{
    const int k8 = k & ~7;
    for (int i0 = 0; i0 < rows; i0 += 8) {
        const int nrow = rows - i0 < 8 ? rows - i0 : 8;
        const float *s = src + (ptrdiff_t)i0 * lds;
        float *d = dst + i0;
        switch (nrow * 2 + (nrow == ldd && ldd >= 4)) {
#define PT(n) case 2 * (n): pack_t_block(n, 0, k8, s, lds, d, ldd); break; \
              case 2 * (n) + 1: pack_t_block(n, 1, k8, s, lds, d, ldd); break;
        PT(1) PT(2) PT(3) PT(4) PT(5) PT(6) PT(7) PT(8)
#undef PT
        default: break;
        }
        for (int i = 0; i < nrow; i++)
            for (int p = k8; p < k; p++)
                d[(ptrdiff_t)p * ldd + i] = s[i * lds + p];
    }
}

/* ------------------------------------------------ small N (<= 16 columns) --
 * As gemm_avx512.c's: vectors along M for a transposed A, dot products along
 * K otherwise; with 16 registers, up to 6 columns at a time (10 = 5 + 5). */

/* C rows [0, mr <= 16) x columns [0, nj <= 6) of op(A)(i,p) = a[p*lda + i]
 * and op(B)(p,j) = b[p*rsb + j*csb]: K in blocks of kc, each element one FMA
 * chain over a block (tile()'s bits), the blocks folded into tot as in
 * gemm_avx512.c's tm_tile, then one transposed store. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
tm_tile(const int nj, const int full, int mr, int k, int kc, const float *a, ptrdiff_t lda,
        const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    const __m256i m0 = lanes(mr), m1 = lanes(mr - 8), mj = lanes(nj);
    const __m256 alpha = _mm256_set1_ps(ep->alpha);
    __m256 acc[2][6], tot[2][6];
    _Pragma("GCC unroll 6") for (int j = 0; j < nj; j++)      /* (read only after a store) */
        tot[0][j] = tot[1][j] = _mm256_setzero_ps();
    if (ep->beta != 0.0f) {             /* beta C, its columns as vectors */
        const __m256 beta = _mm256_set1_ps(ep->beta);
        _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++) {
            __m256 r[8];
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
                r[i] = 8 * v + i < mr ? _mm256_maskload_ps(c + (8 * v + i) * ldc, mj)
                                      : _mm256_setzero_ps();
            transpose8(r);
            _Pragma("GCC unroll 6") for (int j = 0; j < nj; j++)
                tot[v][j] = _mm256_mul_ps(beta, r[j]);
        }
    }
    for (int p0 = 0; p0 < k; p0 += kc) {
        const int kb = k - p0 < kc ? k - p0 : kc;
        _Pragma("GCC unroll 6") for (int j = 0; j < nj; j++)
            acc[0][j] = acc[1][j] = _mm256_setzero_ps();
        _Pragma("GCC unroll 2") for (int p = 0; p < kb; p++) {
            __m256 a0 = full ? _mm256_loadu_ps(a) : _mm256_maskload_ps(a, m0);
            __m256 a1 = full ? _mm256_loadu_ps(a + 8) : _mm256_maskload_ps(a + 8, m1);
            _Pragma("GCC unroll 6") for (int j = 0; j < nj; j++) {
                __m256 bj = _mm256_broadcast_ss(b + j * csb);
                acc[0][j] = _mm256_fmadd_ps(a0, bj, acc[0][j]);
                acc[1][j] = _mm256_fmadd_ps(a1, bj, acc[1][j]);
            }
            a += lda;
            b += rsb;
        }
        const int add = p0 > 0 || ep->beta != 0.0f;
        _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++)
            _Pragma("GCC unroll 6") for (int j = 0; j < nj; j++) {
                __m256 x = _mm256_mul_ps(alpha, acc[v][j]);
                tot[v][j] = add ? _mm256_add_ps(x, tot[v][j]) : x;
            }
    }
    const fnn_epi out = {1.0f, 0.0f, ep->bias, ep->bias_mode, ep->relu};
    _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++) {
        if (8 * v >= mr)
            break;
        __m256 r[8];
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
            r[j] = j < nj ? tot[v][j] : _mm256_setzero_ps();
        store_transposed(r, c, ldc, 8 * v, mr - 8 * v, nj, &out);
    }
}

#define TM(n) case n: {                                                      \
        if (mr == 16) tm_tile(n, 1, 16, k, kc, a, lda, b, rsb, csb, c, ldc, ep); \
        else tm_tile(n, 0, mr, k, kc, a, lda, b, rsb, csb, c, ldc, ep);          \
    } break;

FNN_TARGET_AVX2 static void small_tm_avx2(int mr, int nj, int k, int kc, const float *a,
        ptrdiff_t lda, const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    switch (nj) {
    TM(1) TM(2) TM(3) TM(4) TM(5)
    default: TM(6)
    }
}
#undef TM

/* Lane j of the result = the sum of the 8 lanes of v[j], j < nj <= 8 (a
 * fixed tree: 128-bit halves, then pairs within them). */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) __m256
hsum8(const int nj, const __m256 *v)
{
    __m256 in[8], w[4], s[2];
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)     /* lane 4c+d <- in[2d+c] */
        in[2 * (j % 4) + j / 4] = j < nj ? v[j] : _mm256_setzero_ps();
    _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++)
        w[q] = _mm256_add_ps(_mm256_permute2f128_ps(in[2 * q], in[2 * q + 1], 0x20),
                             _mm256_permute2f128_ps(in[2 * q], in[2 * q + 1], 0x31));
    _Pragma("GCC unroll 2") for (int q = 0; q < 2; q++)
        s[q] = _mm256_add_ps(_mm256_shuffle_ps(w[2 * q], w[2 * q + 1], 0x44),
                             _mm256_shuffle_ps(w[2 * q], w[2 * q + 1], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(s[0], s[1], 0x88), _mm256_shuffle_ps(s[0], s[1], 0xDD));
}

/* C rows [0, ra <= 2) x columns [0, nj <= 6): dot products along K of
 * a[i*lda + p] and b[j*ldb + p], each summed across its 8 lanes (hsum8). */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
dot_tile(const int ra, const int nj, int k, const float *a, ptrdiff_t lda, const float *b,
         ptrdiff_t ldb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    __m256 acc[2][6];
    _Pragma("GCC unroll 2") for (int r = 0; r < ra; r++)
        _Pragma("GCC unroll 6") for (int j = 0; j < nj; j++)
            acc[r][j] = _mm256_setzero_ps();
#define DOT_STEP(LOAD)                                                        \
    do {                                                                      \
        __m256 av[2];                                                         \
        _Pragma("GCC unroll 2") for (int r = 0; r < ra; r++) {               \
            av[r] = LOAD(a + r * lda + p);                                    \
            __asm__("" : "+x"(av[r]));     /* one load, not one per FMA */    \
        }                                                                     \
        _Pragma("GCC unroll 6") for (int j = 0; j < nj; j++) {                \
            __m256 bv = LOAD(b + j * ldb + p);                                \
            __asm__("" : "+x"(bv));                                           \
            _Pragma("GCC unroll 2") for (int r = 0; r < ra; r++)              \
                acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);            \
        }                                                                     \
    } while (0)
    const int k8 = k & ~7;
    int p = 0;
    for (; p < k8; p += 8)
        DOT_STEP(_mm256_loadu_ps);
    if (k > k8) {
        const __m256i mk = lanes(k - k8);
#define MASKED(x) _mm256_maskload_ps((x), mk)
        DOT_STEP(MASKED);
#undef MASKED
    }
#undef DOT_STEP
    const __m256i mj = lanes(nj);
    _Pragma("GCC unroll 2") for (int r = 0; r < ra; r++)
        store_row(0, hsum8(nj, acc[r]), c + r * ldc, mj, nj, r, ep);
}

#define DOT(n) case n: {                                                     \
        if (ra == 1) dot_tile(1, n, k, a, lda, b, ldb, c, ldc, ep);             \
        else dot_tile(2, n, k, a, lda, b, ldb, c, ldc, ep);                     \
    } break;

FNN_TARGET_AVX2 static void small_dot_avx2(int ra, int nj, int k, const float *a,
        ptrdiff_t lda, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    switch (nj) {
    DOT(1) DOT(2) DOT(3) DOT(4) DOT(5)
    default: DOT(6)
    }
}
#undef DOT

/* ------------------------------------------------ small K (<= 16 rows of B) --
 * gemm_avx512.c's small-K kernel on 8-float vectors: 4 x 24 tiles (12
 * accumulators, 3 loads and 4 broadcasts per 12 FMAs) down 24-column
 * strips, both operands in place. Best of 2-6 rows x 2-4 vectors in a C
 * harness (Zen 4, K = 10): 1.11-1.38x the packed 6x16 path's speed, 6 x 16
 * itself in one call 1.03-1.26x. */
#define SK_ROWS 4
#define SK_VECS 3

FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
sk_tile(const int plain, const int mr, const int nv, int k, const float *a, ptrdiff_t rsa,
        ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, __m256i mlast,
        int tail, const fnn_epi *ep)
{
    __m256 acc[SK_ROWS][SK_VECS];
    _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++)
        _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
            acc[i][v] = _mm256_setzero_ps();
    for (int p = 0; p < k; p++) {
        __m256 bv[SK_VECS];
        _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm256_maskload_ps(b + 8 * v, mlast) : _mm256_loadu_ps(b + 8 * v);
        _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i * rsa);
            _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++)
                acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += csa;
        b += ldb;
    }
    _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) {
        fnn_epi e = *ep;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += 8 * v;
        _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++)
            store_row(plain, acc[i][v], c + i * ldc + 8 * v, v == nv - 1 ? mlast : lanes(8),
                      v == nv - 1 ? tail : 8, i, &e);
    }
}

/* One strip of columns (nv vectors, `tail` lanes in the last) down rows [0, m). */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
sk_strip(const int plain, const int nv, int m, int k, const float *a, ptrdiff_t rsa,
         ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int tail,
         const fnn_epi *ep)
{
    const __m256i mlast = lanes(tail);
    fnn_epi e = *ep;
    int i = 0;
    for (; i + SK_ROWS <= m; i += SK_ROWS) {
        e.bias = ep->bias_mode == FNN_BIAS_ROW ? ep->bias + i : ep->bias;
        sk_tile(plain, SK_ROWS, nv, k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc, mlast,
                tail, &e);
    }
    e.bias = ep->bias_mode == FNN_BIAS_ROW ? ep->bias + i : ep->bias;
    a += i * rsa;
    c += i * ldc;
    switch (m - i) {
    case 3: sk_tile(plain, 3, nv, k, a, rsa, csa, b, ldb, c, ldc, mlast, tail, &e); break;
    case 2: sk_tile(plain, 2, nv, k, a, rsa, csa, b, ldb, c, ldc, mlast, tail, &e); break;
    case 1: sk_tile(plain, 1, nv, k, a, rsa, csa, b, ldb, c, ldc, mlast, tail, &e); break;
    default: break;
    }
}

FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
sk_all(const int plain, int m, int n, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
       const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    for (int j = 0; j < n; j += 8 * SK_VECS) {
        const int nr = n - j < 8 * SK_VECS ? n - j : 8 * SK_VECS, nv = (nr + 7) / 8;
        const int tail = nr - 8 * (nv - 1);
        fnn_epi e = *ep;
        if (e.bias_mode == FNN_BIAS_COL)
            e.bias += j;
        switch (nv) {
        case 3: sk_strip(plain, 3, m, k, a, rsa, csa, b + j, ldb, c + j, ldc, tail, &e); break;
        case 2: sk_strip(plain, 2, m, k, a, rsa, csa, b + j, ldb, c + j, ldc, tail, &e); break;
        default: sk_strip(plain, 1, m, k, a, rsa, csa, b + j, ldb, c + j, ldc, tail, &e); break;
        }
    }
}

FNN_TARGET_AVX2 static void small_k_avx2(int m, int n, int k, const float *a, ptrdiff_t rsa,
        ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    if (fnn_epi_plain(ep))
        sk_all(1, m, n, k, a, rsa, csa, b, ldb, c, ldc, ep);
    else
        sk_all(0, m, n, k, a, rsa, csa, b, ldb, c, ldc, ep);
}

/* ------------------------------------------- convolution (indirect A) --
 * As gemm_avx512.c's conv_tile, 6 pixels x 16 channels (12 accumulators):
 * per k, 6 broadcasts from the padded image, 2 loads, 12 FMAs; stored
 * transposed (8 x 8 in registers) into the NCHW rows of the channels. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
conv_tile(const int nv, int k, const float *const *rows, const int *koff, const float *b,
          float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
    const float *r3 = rows[3], *r4 = rows[4], *r5 = rows[5];
    __m256 acc[6][2];
    _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++) {
        const int o = koff[p];
        __m256 bv[2];
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++)
            bv[v] = _mm256_loadu_ps(b + 8 * v);
        const float *av[6] = {r0 + o, r1 + o, r2 + o, r3 + o, r4 + o, r5 + o};
        _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) {
            __m256 ai = _mm256_broadcast_ss(av[i]);
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++)
                acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        b += 16;
    }
    if (ep->rows) {                     /* pixel-major, as accumulated */
        _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++)
            if (i < mr) {
                store_lanes(c + i * ldc, acc[i][0], nr);
                if (nv == 2)
                    store_lanes(c + i * ldc + 8, acc[i][1], nr - 8);
            }
        return;
    }
    _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) {
        __m256 r[8];
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
            r[i] = i < 6 ? acc[i][v] : _mm256_setzero_ps();
        /* row j: channel 8 v + j's pixels, lanes 0..5 */
        store_transposed(r, c, ldc, 8 * v, nr - 8 * v, mr, ep);
    }
}

FNN_TARGET_AVX2 static void conv_avx2(int k, const float *const *rows, const int *koff,
        const float *b, float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    if (nr > 8)
        conv_tile(2, k, rows, koff, b, c, ldc, mr, nr, ep);
    else
        conv_tile(1, k, rows, koff, b, c, ldc, mr, nr, ep);
}

/* KC: A micro-panel 6x256 (6 KB) in L1; NC: B block 256x1024 (1 MB) in L2. */
const fnn_gemm_arch fnn_gemm_avx2 = {MR, NR, 8, 256, 1536, 1024, ukr_avx2, fnn_pack_t_avx2, ukr_avx2_sa,
                                    small_tm_avx2, small_dot_avx2, 16, 6, 2,
                                    conv_avx2, 6, 16, 0, 0, small_k_avx2, SK_ROWS, 1, 1, 1, 192,
                                    ukr_row_avx2, ukr_row_pack_avx2, pack_b_avx2};
#endif
