/* norm.c -- batch normalisation and layer normalisation, forward and backward.
 *
 * Batch norm works on x (N, C, S): S = 1 for (N, C) input, L for (N, C, L),
 * H*W for (N, C, H, W). Statistics are per channel over N*S values, layer
 * norm's per row of x (R, D). Every statistic is accumulated in float64
 * lanes (reduce.h) around a shift (the first value of the channel or row),
 * so E[(x-k)^2] - E[x-k]^2 loses nothing to cancellation when the mean is
 * large against the spread.
 *
 * Threads and determinism: batch norm splits channels (each channel's sums
 * are taken by one thread, in a fixed order: segment by segment for S > 1,
 * row by row for S == 1), layer norm splits rows for the forward and dx, and
 * columns for dgamma/dbeta (each column summed over rows in row order by one
 * thread). No reduction dimension is ever split: the same bits on any thread
 * count. For S > 1 a channel's N*S values are read twice in a row (statistics,
 * then normalise), the second time from cache when the channel fits in L2
 * (128*28*28 floats = 392 KiB does).
 *
 * No scratch memory: the S == 1 and column paths keep at most CHUNK float64
 * accumulators per channel/column on the stack. */
#include "fastnn.h"
#include "isa.h"
#include "parallel.h"
#include "reduce.h"
#include "workspace.h"

#include <math.h>
#include <string.h>

typedef struct {
    ptrdiff_t N, C, S;          /* batch norm: x (N,C,S); layer norm: x (N rows, C cols) */
    const float *x, *dy, *gamma, *beta, *rmean, *rvar;
    float *y, *dx, *mean, *var, *invstd, *dgamma, *dbeta;
    double eps;
    int relu;                   /* batch norm: max(y, 0) fused (forward), its mask (backward) */
} norm_args;

#define CHUNK 64    /* channels (S == 1) or columns (layer norm) per accumulator block */

/* The float64 lane sums below are written with GCC vector types: lanes 0-7
 * and 8-15 of reduce.h's FNN_LANES are two 8-double vectors (GCC's own
 * vectorisation of these two-accumulator loops went scalar), the tail and the
 * pairwise combination are reduce.h's, so every ISA copy gives the same bits. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

FNN_INLINE v8f ld8f(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

FNN_INLINE v8d cvt8(v8f v)
{
    return __builtin_convertvector(v, v8d);
}

/* Lanes (a0 | a1) with the tail [i, n) of TERM(i) added from lane 0, summed. */
#define LANES_FINISH(a0, a1, i, n, TERM)                                        \
    ({                                                                          \
        double l_[FNN_LANES];                                                   \
        memcpy(l_, &(a0), sizeof(v8d));                                         \
        memcpy(l_ + 8, &(a1), sizeof(v8d));                                     \
        for (int j_ = 0; (i) < (n); (i)++, j_++)                                \
            l_[j_] += (TERM);                                                   \
        fnn_lanes_sum(l_);                                                      \
    })

/* Software prefetch of the line pf floats ahead (0: none). A channel's plane
 * in one sample is a short run (784 floats at 28 x 28), the next one C S
 * floats further: the hardware prefetchers restart on every run and a pass
 * over (N, C, S) ran at a third of the memory bandwidth. Each loop below
 * fetches the next sample's run, line by line, as it reads this one's. */
#define PF(p, pf, w) ((pf) != 0 ? __builtin_prefetch((p) + (pf), (w), 3) : (void)0)

/* Shifted moments of x[0..n): s += sum (x - k), s2 += sum (x - k)^2. */
FNN_INLINE void moments(const float *x, ptrdiff_t n, double k, double *s, double *s2,
                        ptrdiff_t pf)
{
    v8d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    ptrdiff_t i = 0;
    for (; i + FNN_LANES <= n; i += FNN_LANES) {
        PF(x + i, pf, 0);
        const v8d d0 = cvt8(ld8f(x + i)) - k, d1 = cvt8(ld8f(x + i + 8)) - k;
        a0 += d0;
        a1 += d1;
        b0 += d0 * d0;
        b1 += d1 * d1;
    }
    const ptrdiff_t t = i;
    *s += LANES_FINISH(a0, a1, i, n, (double)x[i] - k);
    i = t;
    *s2 += LANES_FINISH(b0, b1, i, n, ((double)x[i] - k) * ((double)x[i] - k));
}

/* sum dy and sum dy (x - m) over [0, n) (x - m in float, as dx uses it). */
FNN_INLINE void grad_sums(const float *x, const float *dy, ptrdiff_t n, float m, double *sg,
                          double *sgx, ptrdiff_t pf)
{
    v8d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    ptrdiff_t i = 0;
    for (; i + FNN_LANES <= n; i += FNN_LANES) {
        PF(x + i, pf, 0);
        PF(dy + i, pf, 0);
        const v8d g0 = cvt8(ld8f(dy + i)), g1 = cvt8(ld8f(dy + i + 8));
        a0 += g0;
        a1 += g1;
        b0 += g0 * cvt8(ld8f(x + i) - m);
        b1 += g1 * cvt8(ld8f(x + i + 8) - m);
    }
    const ptrdiff_t t = i;
    *sg += LANES_FINISH(a0, a1, i, n, (double)dy[i]);
    i = t;
    *sgx += LANES_FINISH(b0, b1, i, n, (double)dy[i] * (double)(x[i] - m));
}

/* Mean, biased variance and 1/sqrt(var + eps) from shifted sums over M values. */
FNN_INLINE void finish_stats(double k, double s, double s2, double M, double eps, float *mean,
                             float *var, float *invstd)
{
    const double d = s / M;
    double v = s2 / M - d * d;
    if (v < 0.0)
        v = 0.0;
    *mean = (float)(k + d);
    if (var)
        *var = (float)v;
    *invstd = (float)(1.0 / sqrt(v + eps));
}

/* ------------------------------------------------------------- batch norm -- */

/* Channel c's scale and shift, y = (x - mean) a + b, from its 1/sqrt(var +
 * eps) `is`: the training forward's, and its fused ReLU's mask in backward
 * (the same operations, so the same mask). */
FNN_INLINE void bn_affine(const norm_args *A, ptrdiff_t c, float is, float *a, float *b)
{
    *a = A->gamma ? A->gamma[c] * is : is;
    *b = A->beta ? A->beta[c] : 0.0f;
}

/* y = (x - mean) a + b over channels [c0, c1); a, b per channel. */
FNN_INLINE void bn_apply(const norm_args *A, ptrdiff_t c0, ptrdiff_t c1, const float *m,
                         const float *a, const float *b)
{
    const ptrdiff_t N = A->N, C = A->C, S = A->S;
    if (S == 1) {
        for (ptrdiff_t n = 0; n < N; n++) {
            const float *x = A->x + n * C;
            float *y = A->y + n * C;
            if (A->relu)
                for (ptrdiff_t c = c0; c < c1; c++) {
                    const float v = (x[c] - m[c - c0]) * a[c - c0] + b[c - c0];
                    y[c] = v < 0.0f ? 0.0f : v;          /* ReLU's rule: NaN stays */
                }
            else
                for (ptrdiff_t c = c0; c < c1; c++)
                    y[c] = (x[c] - m[c - c0]) * a[c - c0] + b[c - c0];
        }
        return;
    }
    for (ptrdiff_t c = c0; c < c1; c++) {
        const float mc = m[c - c0], ac = a[c - c0], bc = b[c - c0];
        for (ptrdiff_t n = 0; n < N; n++) {
            const float *x = A->x + (n * C + c) * S;
            float *y = A->y + (n * C + c) * S;
            for (ptrdiff_t i0 = 0; i0 < S; i0 += 16) {
                const ptrdiff_t i1 = i0 + 16 < S ? i0 + 16 : S;
                PF(y + i0, C * S, 1);
                if (A->relu)
                    for (ptrdiff_t i = i0; i < i1; i++) {
                        const float v = (x[i] - mc) * ac + bc;
                        y[i] = v < 0.0f ? 0.0f : v;
                    }
                else
                    for (ptrdiff_t i = i0; i < i1; i++)
                        y[i] = (x[i] - mc) * ac + bc;
            }
        }
    }
}

/* dy where the fused ReLU passed its input (the forward's y = (x - m) a + b
 * recomputed with the same operations, so the same mask), else 0: what
 * ReLU's backward hands batch norm, into g (n floats). */
FNN_INLINE const float *relu_masked(const float *x, const float *dy, ptrdiff_t n, float m,
                                    float a, float b, float *g, ptrdiff_t pf)
{
    for (ptrdiff_t i0 = 0; i0 < n; i0 += 16) {
        PF(x + i0, pf, 0);
        PF(dy + i0, pf, 0);
        const ptrdiff_t i1 = i0 + 16 < n ? i0 + 16 : n;
        for (ptrdiff_t i = i0; i < i1; i++) {
            const float v = (x[i] - m) * a + b;
            g[i] = v > 0.0f ? dy[i] : 0.0f;
        }
    }
    return g;
}

/* Sample n's dy as the backward indexes it -- channels [c0, c1) of its row
 * (S == 1, index c) or channel c0's plane (index 0..S) -- as it is, or with
 * the fused ReLU's mask applied into mdy (ra, rb: the forward's a, b from
 * channel c0 on). */
FNN_INLINE const float *dy_part(const norm_args *A, ptrdiff_t n, ptrdiff_t c0, ptrdiff_t c1,
                                const float *ra, const float *rb, float *mdy)
{
    if (A->S == 1) {
        const float *x = A->x + n * A->C, *dy = A->dy + n * A->C;
        if (!A->relu)
            return dy;
        for (ptrdiff_t c = c0; c < c1; c++)
            relu_masked(x + c, dy + c, 1, A->mean[c], ra[c - c0], rb[c - c0], mdy + c, 0);
        return mdy;
    }
    const ptrdiff_t off = (n * A->C + c0) * A->S;
    return A->relu ? relu_masked(A->x + off, A->dy + off, A->S, A->mean[c0], ra[0], rb[0], mdy,
                                  A->C * A->S)
                   : A->dy + off;
}

/* Training forward over channels [lo, hi), CHUNK at a time: statistics then
 * normalise (for S > 1 channel by channel, so the second read hits cache). */
FNN_INLINE int bn_fwd_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const norm_args *A = ctx;
    const ptrdiff_t N = A->N, C = A->C, S = A->S;
    const double M = (double)N * (double)S;
    float m[CHUNK], a[CHUNK], b[CHUNK];
    for (ptrdiff_t c0 = lo; c0 < hi; c0 += S == 1 ? CHUNK : 1) {
        const ptrdiff_t c1 = S == 1 && c0 + CHUNK < hi ? c0 + CHUNK : S == 1 ? hi : c0 + 1;
        double k[CHUNK], s[CHUNK] = {0}, s2[CHUNK] = {0};
        if (S == 1) {
            for (ptrdiff_t c = c0; c < c1; c++)
                k[c - c0] = A->x[c];
            for (ptrdiff_t n = 0; n < N; n++) {
                const float *x = A->x + n * C;
                for (ptrdiff_t c = c0; c < c1; c++) {
                    const double d = (double)x[c] - k[c - c0];
                    s[c - c0] += d;
                    s2[c - c0] += d * d;
                }
            }
        } else {
            k[0] = A->x[c0 * S];
            for (ptrdiff_t n = 0; n < N; n++)
                moments(A->x + (n * C + c0) * S, S, k[0], &s[0], &s2[0], C * S);
        }
        for (ptrdiff_t c = c0; c < c1; c++) {
            const ptrdiff_t j = c - c0;
            finish_stats(k[j], s[j], s2[j], M, A->eps, &A->mean[c], &A->var[c], &A->invstd[c]);
            m[j] = A->mean[c];
            bn_affine(A, c, A->invstd[c], &a[j], &b[j]);
        }
        bn_apply(A, c0, c1, m, a, b);
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(bn_fwd)

/* Eval forward with the running statistics: one pass. */
FNN_INLINE int bn_eval_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const norm_args *A = ctx;
    float m[CHUNK], a[CHUNK], b[CHUNK];
    for (ptrdiff_t c0 = lo; c0 < hi; c0 += CHUNK) {
        const ptrdiff_t c1 = c0 + CHUNK < hi ? c0 + CHUNK : hi;
        for (ptrdiff_t c = c0; c < c1; c++) {
            const float is = (float)(1.0 / sqrt((double)A->rvar[c] + A->eps));
            m[c - c0] = A->rmean[c];
            bn_affine(A, c, is, &a[c - c0], &b[c - c0]);
        }
        bn_apply(A, c0, c1, m, a, b);
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(bn_eval)

/* Backward over channels [lo, hi): pass 1 sums dy and dy (x - mean) per
 * channel (dbeta, dgamma); pass 2 writes
 * dx = gamma invstd (dy - sum dy / M - xhat sum(dy xhat) / M). */
FNN_INLINE int bn_bwd_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const norm_args *A = ctx;
    const ptrdiff_t N = A->N, C = A->C, S = A->S;
    const double M = (double)N * (double)S;
    /* the fused ReLU's masked dy: a row (S > 1), or a sample's channels */
    float *mdy = A->relu ? fnn_ws_thread(sizeof(float) * (S > 1 ? S : C)) : NULL;
    if (A->relu && !mdy)
        return FNN_ENOMEM;
    float ra[CHUNK], rb[CHUNK];                    /* the forward's a, b per channel */
    for (ptrdiff_t c0 = lo; c0 < hi; c0 += S == 1 ? CHUNK : 1) {
        const ptrdiff_t c1 = S == 1 && c0 + CHUNK < hi ? c0 + CHUNK : S == 1 ? hi : c0 + 1;
        double sg[CHUNK] = {0}, sgx[CHUNK] = {0};
        for (ptrdiff_t c = c0; A->relu && c < c1; c++)
            bn_affine(A, c, A->invstd[c], &ra[c - c0], &rb[c - c0]);
        if (S == 1) {
            for (ptrdiff_t n = 0; n < N; n++) {
                const float *x = A->x + n * C, *dy = dy_part(A, n, c0, c1, ra, rb, mdy);
                for (ptrdiff_t c = c0; c < c1; c++) {
                    sg[c - c0] += (double)dy[c];
                    sgx[c - c0] += (double)dy[c] * (double)(x[c] - A->mean[c]);
                }
            }
        } else {
            for (ptrdiff_t n = 0; n < N; n++) {
                const ptrdiff_t off = (n * C + c0) * S;
                grad_sums(A->x + off, dy_part(A, n, c0, c1, ra, rb, mdy), S, A->mean[c0],
                          &sg[0], &sgx[0], A->relu ? 0 : C * S);
            }
        }
        float ka[CHUNK], kb[CHUNK], kc[CHUNK];
        for (ptrdiff_t c = c0; c < c1; c++) {
            const ptrdiff_t j = c - c0;
            const double is = A->invstd[c], g = A->gamma ? A->gamma[c] : 1.0;
            A->dbeta[c] = (float)sg[j];
            A->dgamma[c] = (float)(sgx[j] * is);
            ka[j] = (float)(g * is);                       /* dx = ka dy + kb (x - m) + kc */
            kb[j] = (float)(-g * is * is * is * sgx[j] / M);
            kc[j] = (float)(-g * is * sg[j] / M);
        }
        if (!A->dx)
            continue;
        if (S == 1) {
            for (ptrdiff_t n = 0; n < N; n++) {
                const float *x = A->x + n * C, *dy = dy_part(A, n, c0, c1, ra, rb, mdy);
                float *dx = A->dx + n * C;
                for (ptrdiff_t c = c0; c < c1; c++) {
                    const ptrdiff_t j = c - c0;
                    dx[c] = ka[j] * dy[c] + (kb[j] * (x[c] - A->mean[c]) + kc[j]);
                }
            }
        } else {
            const float m = A->mean[c0];
            for (ptrdiff_t n = 0; n < N; n++) {
                const ptrdiff_t off = (n * C + c0) * S;
                const float *x = A->x + off, *dy = dy_part(A, n, c0, c1, ra, rb, mdy);
                float *dx = A->dx + off;
                for (ptrdiff_t i0 = 0; i0 < S; i0 += 16) {
                    const ptrdiff_t i1 = i0 + 16 < S ? i0 + 16 : S;
                    PF(dx + i0, C * S, 1);
                    for (ptrdiff_t i = i0; i < i1; i++)
                        dx[i] = ka[0] * dy[i] + (kb[0] * (x[i] - m) + kc[0]);
                }
            }
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(bn_bwd)

static int bn_run(int (*const *isa)(void *, ptrdiff_t, ptrdiff_t, int), norm_args *A,
                  double passes)
{
    const double work = (double)A->N * (double)A->C * (double)A->S * passes * FNN_COST_ELEM;
    return fnn_parallel_for(A->C, A->S == 1 ? CHUNK : 1, work, isa[fnn_get_isa()], A);
}

int fnn_batchnorm_forward(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x,
                          const float *gamma, const float *beta, double eps, float *y,
                          float *mean, float *var, float *invstd, int relu)
{
    norm_args A = {.N = N, .C = C, .S = S, .x = x, .gamma = gamma, .beta = beta, .eps = eps,
                   .y = y, .mean = mean, .var = var, .invstd = invstd, .relu = relu};
    return N * S > 0 ? bn_run(bn_fwd_isa, &A, 2.0) : FNN_OK;
}

int fnn_batchnorm_forward_eval(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x,
                               const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var,
                               double eps, float *y, int relu)
{
    norm_args A = {.N = N, .C = C, .S = S, .x = x, .gamma = gamma, .beta = beta, .eps = eps,
                   .y = y, .rmean = running_mean, .rvar = running_var, .relu = relu};
    return N * S > 0 ? bn_run(bn_eval_isa, &A, 1.0) : FNN_OK;
}

int fnn_batchnorm_backward(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x,
                           const float *dy, const float *mean, const float *invstd,
                           const float *gamma, const float *beta, int relu, float *dgamma,
                           float *dbeta, float *dx)
{
    norm_args A = {.N = N, .C = C, .S = S, .x = x, .dy = dy, .mean = (float *)mean,
                   .invstd = (float *)invstd, .gamma = gamma, .beta = beta, .dgamma = dgamma,
                   .dbeta = dbeta, .dx = dx, .relu = relu};
    return bn_run(bn_bwd_isa, &A, dx ? 2.5 : 1.0);
}

/* ------------------------------------------------------------- layer norm -- */

/* Rows [lo, hi): shifted moments, then y = (x - mean) rstd gamma + beta. */
FNN_INLINE int ln_fwd_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const norm_args *A = ctx;
    const ptrdiff_t D = A->C;
    const float *g = A->gamma, *b = A->beta;
    for (ptrdiff_t r = lo; r < hi; r++) {
        const float *x = A->x + r * D;
        float *y = A->y + r * D;
        double s = 0.0, s2 = 0.0;
        const double k = x[0];
        moments(x, D, k, &s, &s2, 0);
        float m, is;
        finish_stats(k, s, s2, (double)D, A->eps, &m, NULL, &is);
        if (A->mean) {
            A->mean[r] = m;
            A->invstd[r] = is;
        }
        if (g && b)
            for (ptrdiff_t i = 0; i < D; i++)
                y[i] = (x[i] - m) * is * g[i] + b[i];
        else
            for (ptrdiff_t i = 0; i < D; i++)
                y[i] = (x[i] - m) * is;
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(ln_fwd)

/* dx over rows [lo, hi): gy = dy gamma, xhat = (x - mean) rstd,
 * dx = rstd (gy - mean(gy) - xhat mean(gy xhat)). */
FNN_INLINE int ln_dx_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const norm_args *A = ctx;
    const ptrdiff_t D = A->C;
    const float *g = A->gamma;
    for (ptrdiff_t r = lo; r < hi; r++) {
        const float *x = A->x + r * D, *dy = A->dy + r * D;
        float *dx = A->dx + r * D;
        const float m = A->mean[r], is = A->invstd[r];
        v8d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
        ptrdiff_t i = 0;
        for (; i + FNN_LANES <= D; i += FNN_LANES) {
            v8f gy0 = ld8f(dy + i), gy1 = ld8f(dy + i + 8);
            if (g) {
                gy0 *= ld8f(g + i);
                gy1 *= ld8f(g + i + 8);
            }
            a0 += cvt8(gy0);
            a1 += cvt8(gy1);
            b0 += cvt8(gy0) * cvt8((ld8f(x + i) - m) * is);
            b1 += cvt8(gy1) * cvt8((ld8f(x + i + 8) - m) * is);
        }
        const ptrdiff_t t = i;
#define GY(I) (g ? dy[I] * g[I] : dy[I])
        const double sa = LANES_FINISH(a0, a1, i, D, (double)GY(i));
        i = t;
        const double sb = LANES_FINISH(b0, b1, i, D, (double)GY(i) * (double)((x[i] - m) * is));
#undef GY
        const float c1 = (float)(sa / (double)D);
        const float c2 = (float)(sb / (double)D);
        for (i = 0; i < D; i++) {
            const float gy = g ? dy[i] * g[i] : dy[i];
            dx[i] = is * (gy - c1 - (x[i] - m) * is * c2);
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(ln_dx)

/* dgamma, dbeta over columns [lo, hi): sums over all rows in row order. */
FNN_INLINE int ln_dw_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const norm_args *A = ctx;
    const ptrdiff_t R = A->N, D = A->C;
    for (ptrdiff_t c0 = lo; c0 < hi; c0 += CHUNK) {
        const ptrdiff_t w = c0 + CHUNK < hi ? CHUNK : hi - c0;
        double sg[CHUNK] = {0}, sb[CHUNK] = {0};
        for (ptrdiff_t r = 0; r < R; r++) {
            const float *x = A->x + r * D + c0, *dy = A->dy + r * D + c0;
            const float m = A->mean[r], is = A->invstd[r];
            for (ptrdiff_t j = 0; j < w; j++) {
                sb[j] += (double)dy[j];
                sg[j] += (double)dy[j] * (double)((x[j] - m) * is);
            }
        }
        for (ptrdiff_t j = 0; j < w; j++) {
            A->dgamma[c0 + j] = (float)sg[j];
            A->dbeta[c0 + j] = (float)sb[j];
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(ln_dw)

int fnn_layernorm_forward(ptrdiff_t R, ptrdiff_t D, const float *x, const float *gamma,
                          const float *beta, double eps, float *y, float *mean, float *rstd)
{
    norm_args A = {.N = R, .C = D, .x = x, .gamma = gamma, .beta = beta, .eps = eps, .y = y,
                   .mean = mean, .invstd = rstd};
    return fnn_parallel_for(R, 1, (double)R * (double)D * 2.0 * FNN_COST_ELEM,
                            FNN_ISA_PICK(ln_fwd), &A);
}

int fnn_layernorm_backward(ptrdiff_t R, ptrdiff_t D, const float *x, const float *dy,
                           const float *mean, const float *rstd, const float *gamma,
                           float *dgamma, float *dbeta, float *dx)
{
    norm_args A = {.N = R, .C = D, .x = x, .dy = dy, .mean = (float *)mean,
                   .invstd = (float *)rstd, .gamma = gamma, .dgamma = dgamma, .dbeta = dbeta,
                   .dx = dx};
    const double work = (double)R * (double)D * 2.0 * FNN_COST_ELEM;
    int st = FNN_OK;
    if (dx)
        st = fnn_parallel_for(R, 1, work, FNN_ISA_PICK(ln_dx), &A);
    if (dgamma && st == FNN_OK)
        st = fnn_parallel_for(D, CHUNK, work, FNN_ISA_PICK(ln_dw), &A);
    return st;
}

/* ------------------------------------------------------------ naive twins -- */

/* The formulas written out in float64, one element at a time, for the tests:
 * two-pass statistics (mean, then centred squares). */
void fnn_batchnorm_forward_naive(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x,
                                 const float *gamma, const float *beta, double eps, float *y,
                                 float *mean, float *var, float *invstd)
{
    const double M = (double)N * (double)S;
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = 0.0, q = 0.0;
        for (ptrdiff_t n = 0; n < N; n++)
            for (ptrdiff_t i = 0; i < S; i++)
                s += x[(n * C + c) * S + i];
        const double mu = s / M;
        for (ptrdiff_t n = 0; n < N; n++)
            for (ptrdiff_t i = 0; i < S; i++) {
                const double d = x[(n * C + c) * S + i] - mu;
                q += d * d;
            }
        const double v = q / M, is = 1.0 / sqrt(v + eps);
        const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
        mean[c] = (float)mu;
        var[c] = (float)v;
        invstd[c] = (float)is;
        for (ptrdiff_t n = 0; n < N; n++)
            for (ptrdiff_t i = 0; i < S; i++) {
                const ptrdiff_t o = (n * C + c) * S + i;
                y[o] = (float)((x[o] - mu) * is * g + b);
            }
    }
}

void fnn_batchnorm_backward_naive(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x,
                                  const float *dy, const float *mean, const float *invstd,
                                  const float *gamma, float *dgamma, float *dbeta, float *dx)
{
    const double M = (double)N * (double)S;
    for (ptrdiff_t c = 0; c < C; c++) {
        const double mu = mean[c], is = invstd[c], g = gamma ? gamma[c] : 1.0;
        double sg = 0.0, sgx = 0.0;
        for (ptrdiff_t n = 0; n < N; n++)
            for (ptrdiff_t i = 0; i < S; i++) {
                const ptrdiff_t o = (n * C + c) * S + i;
                sg += dy[o];
                sgx += dy[o] * (x[o] - mu) * is;
            }
        dbeta[c] = (float)sg;
        dgamma[c] = (float)sgx;
        if (dx)
            for (ptrdiff_t n = 0; n < N; n++)
                for (ptrdiff_t i = 0; i < S; i++) {
                    const ptrdiff_t o = (n * C + c) * S + i;
                    const double xh = (x[o] - mu) * is;
                    dx[o] = (float)(g * is * (dy[o] - sg / M - xh * sgx / M));
                }
    }
}

void fnn_layernorm_forward_naive(ptrdiff_t R, ptrdiff_t D, const float *x, const float *gamma,
                                 const float *beta, double eps, float *y, float *mean,
                                 float *rstd)
{
    float v;
    for (ptrdiff_t r = 0; r < R; r++)   /* a row is batch norm's one channel of D values */
        fnn_batchnorm_forward_naive(1, 1, D, x + r * D, NULL, NULL, eps, y + r * D, &mean[r],
                                    &v, &rstd[r]);
    for (ptrdiff_t r = 0; r < R; r++)
        for (ptrdiff_t i = 0; gamma && i < D; i++)
            y[r * D + i] = (float)((double)y[r * D + i] * gamma[i] + beta[i]);
}

void fnn_layernorm_backward_naive(ptrdiff_t R, ptrdiff_t D, const float *x, const float *dy,
                                  const float *mean, const float *rstd, const float *gamma,
                                  float *dgamma, float *dbeta, float *dx)
{
    for (ptrdiff_t i = 0; i < D; i++) {
        double sg = 0.0, sb = 0.0;
        for (ptrdiff_t r = 0; r < R; r++) {
            sb += dy[r * D + i];
            sg += dy[r * D + i] * ((double)x[r * D + i] - mean[r]) * rstd[r];
        }
        dgamma[i] = (float)sg;
        dbeta[i] = (float)sb;
    }
    for (ptrdiff_t r = 0; r < R; r++) {
        const double mu = mean[r], is = rstd[r];
        double a = 0.0, b = 0.0;
        for (ptrdiff_t i = 0; i < D; i++) {
            const double gy = (double)dy[r * D + i] * (gamma ? gamma[i] : 1.0);
            a += gy;
            b += gy * (x[r * D + i] - mu) * is;
        }
        for (ptrdiff_t i = 0; i < D; i++) {
            const double gy = (double)dy[r * D + i] * (gamma ? gamma[i] : 1.0);
            dx[r * D + i] = (float)(is * (gy - a / D - (x[r * D + i] - mu) * is * b / D));
        }
    }
}
