/* gemm_ref.c -- portable C micro-kernel (any CPU; the compiler vectorises it
 * for the baseline ISA) and the naive triple-loop twin used by the tests. */
#include "gemm_kernels.h"

#define MR 4
#define NR 8

static void ukr_ref(int k, const float *a, const float *b, ptrdiff_t ldb,
                    float *c, ptrdiff_t ldc, int mr, int nr, const fnn_epi *ep)
{
    float acc[MR][NR] = {{0}};
    for (int p = 0; p < k; p++) {
        for (int i = 0; i < MR; i++) {
            float ai = i < mr ? a[i] : 0.0f;
            for (int j = 0; j < NR; j++)
                acc[i][j] += ai * b[j];
        }
        a += MR;
        b += ldb;
    }
    fnn_gemm_store_tile(&acc[0][0], NR, c, ldc, mr, nr, ep);
}

/* Dot products along K (the few-row path, op(B)^T rows read in place):
 * each element in 16 partial sums (lane q takes p = q mod 16), added
 * pairwise at the end, so the compiler vectorises the k loop. */
void fnn_small_dot_ref(int ra, int nj, int k, const float *a, ptrdiff_t lda, const float *b,
                       ptrdiff_t ldb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    float acc[FNN_SMALL_DOT_ROWS][FNN_SMALL_COLS];
    for (int i = 0; i < ra; i++)
        for (int j = 0; j < nj; j++) {
            const float *ai = a + i * lda, *bj = b + j * ldb;
            float l[16] = {0};
            int p = 0;
            for (; p + 16 <= k; p += 16)
                for (int q = 0; q < 16; q++)
                    l[q] += ai[p + q] * bj[p + q];
            for (int q = 0; p + q < k; q++)
                l[q] += ai[p + q] * bj[p + q];
            for (int w = 8; w > 0; w /= 2)
                for (int q = 0; q < w; q++)
                    l[q] += l[q + w];
            acc[i][j] = l[0];
        }
    fnn_gemm_store_tile(&acc[0][0], FNN_SMALL_COLS, c, ldc, ra, nj, ep);
}

const fnn_gemm_arch fnn_gemm_ref = {MR, NR, NR, 256, 512, 1024, ukr_ref, fnn_pack_t_ref, NULL,
                                    NULL, fnn_small_dot_ref, 0, FNN_SMALL_COLS,
                                    FNN_SMALL_DOT_ROWS};

void fnn_sgemm_naive(int trans_a, int trans_b, int M, int N, int K,
                     float alpha, const float *A, ptrdiff_t lda,
                     const float *B, ptrdiff_t ldb, float beta, float *C,
                     ptrdiff_t ldc, const float *bias, int bias_mode, int relu)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int p = 0; p < K; p++) {
                double x = trans_a ? A[(ptrdiff_t)p * lda + i] : A[(ptrdiff_t)i * lda + p];
                double y = trans_b ? B[(ptrdiff_t)j * ldb + p] : B[(ptrdiff_t)p * ldb + j];
                s += x * y;
            }
            double v = alpha * s;
            if (beta != 0.0f)
                v += (double)beta * C[(ptrdiff_t)i * ldc + j];
            if (bias_mode == FNN_BIAS_COL)
                v += bias[j];
            else if (bias_mode == FNN_BIAS_ROW)
                v += bias[i];
            if (relu && v < 0.0)
                v = 0.0;
            C[(ptrdiff_t)i * ldc + j] = (float)v;
        }
}
