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
    const __m512 alpha = _mm512_set1_ps(ep->alpha), beta = _mm512_set1_ps(ep->beta);
    const __m512 zero = _mm512_setzero_ps();
    const int tail = nr - 16 * (nv - 1);          /* 1..16 lanes in the last vector */
    const __mmask16 mlast = (__mmask16)((1u << tail) - 1u);
    _Pragma("GCC unroll 8") for (int i = 0; i < mrv; i++) {
        float *ci = c + i * ldc;
        _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? mlast : (__mmask16)0xFFFF;
            __m512 x = _mm512_mul_ps(alpha, acc[i][v]);
            if (ep->beta != 0.0f)
                x = _mm512_add_ps(x, _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(m, ci + 16 * v)));
            if (ep->bias_mode == FNN_BIAS_COL)
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, ep->bias + 16 * v));
            else if (ep->bias_mode == FNN_BIAS_ROW)
                x = _mm512_add_ps(x, _mm512_set1_ps(ep->bias[i]));
            if (ep->relu)
                x = _mm512_max_ps(zero, x);       /* NaN in x stays NaN */
            _mm512_mask_storeu_ps(ci + 16 * v, m, x);
        }
    }
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

/* KC: A micro-panel 8x384 (12 KB) stays in L1; NC: B block 384x672 (1 MB)
 * in the 2 MB L2; MC: A block 1536x384 (2.3 MB). With the k-loop unrolled by
 * 4, measured best of KC 256/384/512 x NC 480/672/960 on large squares. */
const fnn_gemm_arch fnn_gemm_avx512 = {MR, NR, 16, 384, 1536, 672, ukr_avx512, fnn_pack_t_avx2, ukr_avx512_sa};
#endif
