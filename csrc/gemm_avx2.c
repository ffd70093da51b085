/* gemm_avx2.c -- AVX2+FMA micro-kernel: 6 x 16 tile, 12 ymm accumulators.
 * Per k: two 8-float loads of B, six broadcasts of A, 12 FMAs. Compiled for
 * AVX2 by function attribute only (reached only when cpu.c finds AVX2+FMA). */
#include "gemm_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define MR 6
#define NR 16
#define T256 __attribute__((target("avx2,fma")))

T256 static inline __attribute__((always_inline)) void
tile(const int mrv, int k, const float *a, const float *b, ptrdiff_t ldb,
     float *c, ptrdiff_t ldc, int nr, const fnn_epi *ep)
{
    __m256 c0[MR], c1[MR];
    for (int i = 0; i < mrv; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    for (int p = 0; p < k; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        for (int i = 0; i < mrv; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
        a += MR;
        b += ldb;
    }
    if (nr < NR) {
        float acc[MR * NR];
        for (int i = 0; i < mrv; i++) {
            _mm256_storeu_ps(acc + i * NR, c0[i]);
            _mm256_storeu_ps(acc + i * NR + 8, c1[i]);
        }
        fnn_gemm_store_tile(acc, NR, c, ldc, mrv, nr, ep);
        return;
    }
    const __m256 alpha = _mm256_set1_ps(ep->alpha), beta = _mm256_set1_ps(ep->beta);
    const __m256 zero = _mm256_setzero_ps();
    __m256 bc0 = zero, bc1 = zero;
    if (ep->bias_mode == FNN_BIAS_COL) {
        bc0 = _mm256_loadu_ps(ep->bias);
        bc1 = _mm256_loadu_ps(ep->bias + 8);
    }
    for (int i = 0; i < mrv; i++) {
        float *ci = c + i * ldc;
        __m256 v0 = _mm256_mul_ps(alpha, c0[i]), v1 = _mm256_mul_ps(alpha, c1[i]);
        if (ep->beta != 0.0f) {
            v0 = _mm256_add_ps(v0, _mm256_mul_ps(beta, _mm256_loadu_ps(ci)));
            v1 = _mm256_add_ps(v1, _mm256_mul_ps(beta, _mm256_loadu_ps(ci + 8)));
        }
        if (ep->bias_mode == FNN_BIAS_COL) {
            v0 = _mm256_add_ps(v0, bc0);
            v1 = _mm256_add_ps(v1, bc1);
        } else if (ep->bias_mode == FNN_BIAS_ROW) {
            __m256 br = _mm256_set1_ps(ep->bias[i]);
            v0 = _mm256_add_ps(v0, br);
            v1 = _mm256_add_ps(v1, br);
        }
        if (ep->relu) {
            v0 = _mm256_max_ps(zero, v0);
            v1 = _mm256_max_ps(zero, v1);
        }
        _mm256_storeu_ps(ci, v0);
        _mm256_storeu_ps(ci + 8, v1);
    }
}

#define ROWS(n) case n: tile(n, k, a, b, ldb, c, ldc, nr, ep); break;

T256 static void ukr_avx2(int k, const float *a, const float *b, ptrdiff_t ldb,
                          float *c, ptrdiff_t ldc, int mr, int nr,
                          const fnn_epi *ep)
{
    switch (mr) {
    ROWS(6) ROWS(5) ROWS(4) ROWS(3) ROWS(2) ROWS(1)
    default: break;
    }
}

/* KC: A micro-panel 6x256 (6 KB) in L1; NC: B block 256x1024 (1 MB) in L2. */
const fnn_gemm_arch fnn_gemm_avx2 = {MR, NR, 256, 1536, 1024, ukr_avx2};
#endif
