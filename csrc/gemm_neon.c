/* gemm_neon.c -- aarch64 NEON micro-kernel: 8 x 12 tile, 24 q-register
 * accumulators. Per k: two 4-float loads of A (the 8 broadcast values), three
 * 4-float loads of B, 24 `fmla v.4s, v.4s, v.s[lane]` (FMA by element), so
 * 29 of the 32 vector registers are live. Edge tiles are specialised at
 * compile time (rows 1..8 x vectors 1..3) and read only round_up(nr, 4)
 * floats of a B row, as the driver's contract says; their results go through
 * the shared scalar epilogue. Every tile uses fused multiply-adds, so an
 * element is rounded the same way whether it lands in a full or an edge tile
 * (results do not depend on how threads cut C). aarch64 only: on other
 * machines this file compiles to nothing. Its speed has not been measured
 * (no aarch64 host here; correctness is checked under qemu, see
 * tools/aarch64_check.sh).
 */
#include "gemm_kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#define MR 8
#define NR 12

/* One k step of row i (lane l of A vector av) over nv B vectors. */
#define ROWFMA(i, av, l)                                                       \
    if (mrv > (i)) {                                                           \
        acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, l);                     \
        if (nv > 1) acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, l);         \
        if (nv > 2) acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, l);         \
    }

static inline __attribute__((always_inline)) void
tile(const int mrv, const int nv, int k, const float *a, const float *b,
     ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nr, const fnn_epi *ep)
{
    float32x4_t acc[MR][3];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 3; v++)
            acc[i][v] = vdupq_n_f32(0.0f);
    for (int p = 0; p < k; p++) {
        /* The packed A panel is MR floats per k whatever mr is (rows past mr
         * hold stale values that only feed accumulators never stored). */
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        const float32x4_t b0 = vld1q_f32(b);
        const float32x4_t b1 = nv > 1 ? vld1q_f32(b + 4) : b0;
        const float32x4_t b2 = nv > 2 ? vld1q_f32(b + 8) : b0;
        ROWFMA(0, a0, 0) ROWFMA(1, a0, 1) ROWFMA(2, a0, 2) ROWFMA(3, a0, 3)
        ROWFMA(4, a1, 0) ROWFMA(5, a1, 1) ROWFMA(6, a1, 2) ROWFMA(7, a1, 3)
        a += MR;
        b += ldb;
    }
    if (mrv == MR && nr == NR) {
        /* Full tile: the epilogue of fnn_gemm_store_tile in vectors, the same
         * operations in the same order (no contraction), so the same bits. */
        const float32x4_t alpha = vdupq_n_f32(ep->alpha), beta = vdupq_n_f32(ep->beta);
        const float32x4_t zero = vdupq_n_f32(0.0f);
        for (int i = 0; i < MR; i++) {
            float *ci = c + i * ldc;
            for (int v = 0; v < 3; v++) {
                float32x4_t x = vmulq_f32(alpha, acc[i][v]);
                if (ep->beta != 0.0f)
                    x = vaddq_f32(x, vmulq_f32(beta, vld1q_f32(ci + 4 * v)));
                if (ep->bias_mode == FNN_BIAS_COL)
                    x = vaddq_f32(x, vld1q_f32(ep->bias + 4 * v));
                else if (ep->bias_mode == FNN_BIAS_ROW)
                    x = vaddq_f32(x, vdupq_n_f32(ep->bias[i]));
                if (ep->relu)   /* v < 0 ? 0 : v, NaN kept, like the scalar path */
                    x = vbslq_f32(vcltq_f32(x, zero), zero, x);
                vst1q_f32(ci + 4 * v, x);
            }
        }
        return;
    }
    float t[MR * NR];
    for (int i = 0; i < mrv; i++)
        for (int v = 0; v < nv; v++)
            vst1q_f32(t + i * NR + 4 * v, acc[i][v]);
    fnn_gemm_store_tile(t, NR, c, ldc, mrv, nr, ep);
}

#define CASE(m, n) case (m) * 4 + (n): tile(m, n, k, a, b, ldb, c, ldc, nr, ep); break;
#define ROW(m) CASE(m, 1) CASE(m, 2) CASE(m, 3)

static void ukr_neon(int k, const float *a, const float *b, ptrdiff_t ldb,
                     float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    switch (mr * 4 + (nr + 3) / 4) {
    ROW(8) ROW(7) ROW(6) ROW(5) ROW(4) ROW(3) ROW(2) ROW(1)
    default: break;
    }
}

/* Small N, vectors along M (gemm.c's gemm_small, with the portable
 * fnn_small_dot_ref for an untransposed A): C rows [0, mr <= 8) x columns
 * [0, nj <= FNN_SMALL_COLS) of op(A)(i,p) = a[p*lda + i] times
 * op(B)(p,j) = b[p*rsb + j*csb]. Each element is one fused multiply-add
 * chain over p, as in tile() (the same bits); 8 x 12 accumulators in 24
 * registers. Rows past mr are never read. */
static inline __attribute__((always_inline)) void
tm_tile(const int nj, const int full, int mr, int k, const float *a, ptrdiff_t lda,
        const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    float32x4_t acc[FNN_SMALL_COLS][2];
    for (int j = 0; j < nj; j++)
        acc[j][0] = acc[j][1] = vdupq_n_f32(0.0f);
    for (int p = 0; p < k; p++) {
        float32x4_t a0, a1;
        if (full) {
            a0 = vld1q_f32(a);
            a1 = vld1q_f32(a + 4);
        } else {
            float t[8] = {0};
            memcpy(t, a, (size_t)mr * sizeof(float));
            a0 = vld1q_f32(t);
            a1 = vld1q_f32(t + 4);
        }
        for (int j = 0; j < nj; j++) {
            const float bj = b[j * csb];
            acc[j][0] = vfmaq_n_f32(acc[j][0], a0, bj);
            acc[j][1] = vfmaq_n_f32(acc[j][1], a1, bj);
        }
        a += lda;
        b += rsb;
    }
    float t[8][FNN_SMALL_COLS], col[8];
    for (int j = 0; j < nj; j++) {
        vst1q_f32(col, acc[j][0]);
        vst1q_f32(col + 4, acc[j][1]);
        for (int i = 0; i < mr; i++)
            t[i][j] = col[i];
    }
    fnn_gemm_store_tile(&t[0][0], FNN_SMALL_COLS, c, ldc, mr, nj, ep);
}

#define TM(n) case n:                                                          \
    if (mr == 8) tm_tile(n, 1, 8, kb, ap, lda, bp, rsb, csb, c, ldc, &e);      \
    else tm_tile(n, 0, mr, kb, ap, lda, bp, rsb, csb, c, ldc, &e);             \
    break;

/* K in blocks of kc, each through C with fnn_epi_block's epilogue. */
static void small_tm_neon(int mr, int nj, int k, int kc, const float *a, ptrdiff_t lda,
                          const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c,
                          ptrdiff_t ldc, const fnn_epi *ep)
{
    for (int p0 = 0; p0 < k; p0 += kc) {
        const int kb = k - p0 < kc ? k - p0 : kc;
        const float *ap = a + (ptrdiff_t)p0 * lda, *bp = b + (ptrdiff_t)p0 * rsb;
        const fnn_epi e = fnn_epi_block(ep, p0 == 0, p0 + kb == k);
        switch (nj) {
        TM(1) TM(2) TM(3) TM(4) TM(5) TM(6) TM(7) TM(8) TM(9) TM(10) TM(11)
        default: TM(12)
        }
    }
}
#undef TM

/* Blocks come from the cache model (gemm_blocking.c); these hand values are
 * unused, kept equal to what the model gives a Neoverse N1 (64 KiB 4-way L1,
 * 1 MiB 8-way L2, 32 MiB L3 shared by 64 cores). */
const fnn_gemm_arch fnn_gemm_neon = {MR, NR, 4, 336, 384, 576, ukr_neon, fnn_pack_t_ref, NULL,
                                     small_tm_neon, fnn_small_dot_ref, 8, FNN_SMALL_COLS,
                                     FNN_SMALL_DOT_ROWS};
#endif
