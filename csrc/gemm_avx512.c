/* gemm_avx512.c -- AVX-512 micro-kernel: 12 x 32 tile, 24 zmm accumulators.
 * Per k: two 16-float loads of B, twelve broadcasts of A, 24 FMAs. Compiled
 * for AVX-512 by function attribute only, so the library runs anywhere and
 * this code is reached only when cpu.c finds AVX-512. */
#include "gemm_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define MR 12
#define NR 32
#define T512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,avx2")))

T512 static inline __attribute__((always_inline)) void
tile(const int mrv, int k, const float *a, const float *b, ptrdiff_t ldb,
     float *c, ptrdiff_t ldc, int nr, const fnn_epi *ep)
{
    __m512 c0[MR], c1[MR];
    for (int i = 0; i < mrv; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        for (int i = 0; i < mrv; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
        a += MR;
        b += ldb;
    }
    if (nr < NR) {   /* right edge: through the shared scalar epilogue */
        float acc[MR * NR];
        for (int i = 0; i < mrv; i++) {
            _mm512_storeu_ps(acc + i * NR, c0[i]);
            _mm512_storeu_ps(acc + i * NR + 16, c1[i]);
        }
        fnn_gemm_store_tile(acc, NR, c, ldc, mrv, nr, ep);
        return;
    }
    const __m512 alpha = _mm512_set1_ps(ep->alpha), beta = _mm512_set1_ps(ep->beta);
    const __m512 zero = _mm512_setzero_ps();
    __m512 bc0 = zero, bc1 = zero;
    if (ep->bias_mode == FNN_BIAS_COL) {
        bc0 = _mm512_loadu_ps(ep->bias);
        bc1 = _mm512_loadu_ps(ep->bias + 16);
    }
    for (int i = 0; i < mrv; i++) {
        float *ci = c + i * ldc;
        __m512 v0 = _mm512_mul_ps(alpha, c0[i]), v1 = _mm512_mul_ps(alpha, c1[i]);
        if (ep->beta != 0.0f) {
            v0 = _mm512_add_ps(v0, _mm512_mul_ps(beta, _mm512_loadu_ps(ci)));
            v1 = _mm512_add_ps(v1, _mm512_mul_ps(beta, _mm512_loadu_ps(ci + 16)));
        }
        if (ep->bias_mode == FNN_BIAS_COL) {
            v0 = _mm512_add_ps(v0, bc0);
            v1 = _mm512_add_ps(v1, bc1);
        } else if (ep->bias_mode == FNN_BIAS_ROW) {
            __m512 br = _mm512_set1_ps(ep->bias[i]);
            v0 = _mm512_add_ps(v0, br);
            v1 = _mm512_add_ps(v1, br);
        }
        if (ep->relu) {
            v0 = _mm512_max_ps(zero, v0);  /* NaN in v stays NaN */
            v1 = _mm512_max_ps(zero, v1);
        }
        _mm512_storeu_ps(ci, v0);
        _mm512_storeu_ps(ci + 16, v1);
    }
}

#define ROWS(n) case n: tile(n, k, a, b, ldb, c, ldc, nr, ep); break;

T512 static void ukr_avx512(int k, const float *a, const float *b, ptrdiff_t ldb,
                            float *c, ptrdiff_t ldc, int mr, int nr,
                            const fnn_epi *ep)
{
    switch (mr) {
    ROWS(12) ROWS(11) ROWS(10) ROWS(9) ROWS(8) ROWS(7)
    ROWS(6) ROWS(5) ROWS(4) ROWS(3) ROWS(2) ROWS(1)
    default: break;
    }
}

/* KC: A micro-panel 12x384 (18 KB) in L1; NC: B block 384x640 (960 KB) in L2. */
const fnn_gemm_arch fnn_gemm_avx512 = {MR, NR, 384, 1536, 640, ukr_avx512};
#endif
