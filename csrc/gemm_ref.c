/* gemm_ref.c -- portable C micro-kernel (any CPU; the compiler vectorises it
 * for the baseline ISA) and the naive triple-loop twin used by the tests. */
#include "gemm_kernels.h"

#include <string.h>

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

/* Small N, vectors along M (gemm.c's gemm_small; the ref and NEON paths
 * share fnn_small_dot_ref for an untransposed A): C rows [0, mr <= TM_ROWS)
 * x columns [0, nj) of op(A)(i,p) = a[p*lda + i] times
 * op(B)(p,j) = b[p*rsb + j*csb]. Each element
 * is acc + a*b over p in order, as in ukr_ref (the same bits as the general
 * path). In GCC vectors of 4 floats (one SSE or NEON register; GCC lowers
 * wider generic vectors through the stack on SSE2, and 8-float ones here
 * ran 0.56-0.60x this speed: TN/TT 64-256 x 10 x 256-1024, paired, Zen 4),
 * columns in groups of at most TM_COLS, each a
 * compile-time constant: 5 x 2 accumulators, the 8 A values and a B value
 * stay in 13 registers even on a 16-register ISA. */
#define TM_ROWS 8
#define TM_COLS 5
typedef float v4f __attribute__((vector_size(16)));

/* p[0, n) into lo, hi (n <= 8, zeros past n, nothing read past p + n);
 * full (a constant): n == 8, with copies of constant size the compiler
 * inlines. */
static inline __attribute__((always_inline)) void
load8(v4f *lo, v4f *hi, const float *p, const int full, int n)
{
    *lo = *hi = (v4f){0};
    if (full) {
        memcpy(lo, p, sizeof *lo);
        memcpy(hi, p + 4, sizeof *hi);
    } else {
        memcpy(lo, p, (size_t)(n < 4 ? n : 4) * sizeof(float));
        if (n > 4)
            memcpy(hi, p + 4, (size_t)(n - 4) * sizeof(float));
    }
}

static inline __attribute__((always_inline)) void
tm_tile(const int nj, const int rows, int k, const float *a, ptrdiff_t lda, const float *b,
        ptrdiff_t rsb, ptrdiff_t csb, float *c, ptrdiff_t ldc, const fnn_epi *ep)
{
    v4f acc[TM_COLS][2];
    for (int j = 0; j < nj; j++)
        acc[j][0] = acc[j][1] = (v4f){0};
    for (int p = 0; p < k; p++) {
        v4f a0, a1;
        load8(&a0, &a1, a, rows == TM_ROWS, rows);      /* never past row mr */
        for (int j = 0; j < nj; j++) {
            const float bj = b[j * csb];
            acc[j][0] += a0 * bj;
            acc[j][1] += a1 * bj;
        }
        a += lda;
        b += rsb;
    }
    float t[TM_ROWS][TM_COLS];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < nj; j++)
            t[i][j] = acc[j][i / 4][i % 4];
    fnn_gemm_store_tile(&t[0][0], TM_COLS, c, ldc, rows, nj, ep);
}

#define TM(n) case n:                                                           \
    if (mr == TM_ROWS)                                                          \
        tm_tile(n, TM_ROWS, kb, ap, lda, bp + j0 * csb, rsb, csb, c + j0, ldc, &e); \
    else                                                                        \
        tm_tile(n, mr, kb, ap, lda, bp + j0 * csb, rsb, csb, c + j0, ldc, &e);     \
    break;

/* K in blocks of kc, each through C with fnn_epi_block's epilogue. */
static void small_tm_ref(int mr, int nj, int k, int kc, const float *a, ptrdiff_t lda,
                         const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c, ptrdiff_t ldc,
                         const fnn_epi *ep)
{
    const int groups = (nj + TM_COLS - 1) / TM_COLS;
    for (int p0 = 0; p0 < k; p0 += kc) {
        const int kb = k - p0 < kc ? k - p0 : kc;
        const float *ap = a + (ptrdiff_t)p0 * lda, *bp = b + (ptrdiff_t)p0 * rsb;
        const fnn_epi eb = fnn_epi_block(ep, p0 == 0, p0 + kb == k);
        for (int g = 0, j0 = 0; g < groups; g++) {
            const int n = (nj - j0) / (groups - g);    /* 10 = 5 + 5, 12 = 4 + 4 + 4 */
            fnn_epi e = eb;
            if (e.bias_mode == FNN_BIAS_COL)
                e.bias += j0;
            switch (n) {
            TM(1) TM(2) TM(3) TM(4)
            default: TM(5)
            }
            j0 += n;
        }
    }
}
#undef TM

/* Small K (gemm.c's gemm_small_k): all of C (m x n) with both operands in
 * place, 4 x 8 tiles down 8-column strips of op(B), in GCC vectors of 4
 * floats (the width of SSE and NEON: wider generic vectors are lowered
 * through the stack on SSE2), 8 accumulators and a B row in 10 registers.
 * Each element is acc + a*b over p in order, as in ukr_ref: the same bits
 * as the general path. K = 10 products ran 1.35-1.5x its speed (64-256 x
 * 256-1024, all transposes, one thread, paired, Zen 4). Not shared with the
 * NEON path, whose general kernel fuses the multiply-add: different bits. */
#define SK_ROWS 4

static inline __attribute__((always_inline)) void
sk_tile(const int rows, const int full, int nr, int k, const float *a, ptrdiff_t rsa,
        ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
        const fnn_epi *ep)
{
    v4f acc[SK_ROWS][2];
    for (int i = 0; i < rows; i++)
        acc[i][0] = acc[i][1] = (v4f){0};
    for (int p = 0; p < k; p++) {
        v4f b0, b1;
        load8(&b0, &b1, b, full, nr);                   /* never past column n */
        for (int i = 0; i < rows; i++) {
            const float ai = a[i * rsa];
            acc[i][0] += ai * b0;
            acc[i][1] += ai * b1;
        }
        a += csa;
        b += ldb;
    }
    float t[SK_ROWS][8];
    for (int i = 0; i < rows; i++)
        for (int q = 0; q < 4; q++)
            t[i][q] = acc[i][0][q], t[i][4 + q] = acc[i][1][q];
    fnn_gemm_store_tile(&t[0][0], 8, c, ldc, rows, nr, ep);
}

static void small_k_ref(int m, int n, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                        const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                        const fnn_epi *ep)
{
    for (int j = 0; j < n; j += 8) {
        const int nr = n - j < 8 ? n - j : 8;
        fnn_epi e = *ep;
        int i = 0;
        for (; i < m; i += SK_ROWS) {
            const float *ai = a + i * rsa;
            float *ci = c + i * ldc + j;
            e.bias = ep->bias_mode == FNN_BIAS_ROW ? ep->bias + i
                   : ep->bias_mode == FNN_BIAS_COL ? ep->bias + j : NULL;
            if (m - i >= SK_ROWS && nr == 8)
                sk_tile(SK_ROWS, 1, 8, k, ai, rsa, csa, b + j, ldb, ci, ldc, &e);
            else
                switch (m - i) {
                case 1: sk_tile(1, 0, nr, k, ai, rsa, csa, b + j, ldb, ci, ldc, &e); break;
                case 2: sk_tile(2, 0, nr, k, ai, rsa, csa, b + j, ldb, ci, ldc, &e); break;
                case 3: sk_tile(3, 0, nr, k, ai, rsa, csa, b + j, ldb, ci, ldc, &e); break;
                default: sk_tile(SK_ROWS, 0, nr, k, ai, rsa, csa, b + j, ldb, ci, ldc, &e);
                }
        }
    }
}

const fnn_gemm_arch fnn_gemm_ref = {MR, NR, NR, 256, 512, 1024, ukr_ref, fnn_pack_t_ref, NULL,
                                    small_tm_ref, fnn_small_dot_ref, TM_ROWS,
                                    FNN_SMALL_COLS, FNN_SMALL_DOT_ROWS, NULL, 0, 0, 0, 0,
                                    small_k_ref, SK_ROWS, 0};

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
