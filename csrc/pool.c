/* pool.c -- max and average pooling (1-D is H = 1) over N*C planes.
 *
 * Each fnn_parallel_for part owns whole planes, forward and backward, so the
 * backward scatter is race-free and sums in a fixed order: the same bits on
 * any thread count. Window rules (fastnn.h, fnn_pool2d) are torch's.
 */
#include "isa.h"
#include "parallel.h"

#include <math.h>
#include <string.h>

typedef struct {
    const fnn_pool2d *s;
    const float *x, *dy;
    float *y, *dx;
    int32_t *idx;
    const int32_t *cidx;
    const float *ym;      /* max backward: route dy only where ym > 0 (NULL: always) */
} pool_args;

/* Window of output (oh, ow): rows [*h0, *h1), columns [*w0, *w1) clipped to
 * the plane (average pooling), and its divisor. */
static void avg_window(const fnn_pool2d *s, int oh, int ow, int *h0, int *h1, int *w0, int *w1,
                       int *div)
{
    if (s->mode == FNN_POOL_ADAPTIVE) {
        *h0 = (int)((long long)oh * s->H / s->Ho);
        *h1 = (int)(((long long)(oh + 1) * s->H + s->Ho - 1) / s->Ho);
        *w0 = (int)((long long)ow * s->W / s->Wo);
        *w1 = (int)(((long long)(ow + 1) * s->W + s->Wo - 1) / s->Wo);
        *div = (*h1 - *h0) * (*w1 - *w0);
    } else {
        int a = oh * s->sh - s->ph, b = ow * s->sw - s->pw;
        int ae = a + s->kh < s->H + s->ph ? a + s->kh : s->H + s->ph;
        int be = b + s->kw < s->W + s->pw ? b + s->kw : s->W + s->pw;
        int padded = (ae - a) * (be - b);
        *h0 = a > 0 ? a : 0;
        *w0 = b > 0 ? b : 0;
        *h1 = ae < s->H ? ae : s->H;
        *w1 = be < s->W ? be : s->W;
        *div = s->mode == FNN_POOL_AVG_INCL ? padded : (*h1 - *h0) * (*w1 - *w0);
    }
    if (s->divisor > 0)
        *div = s->divisor;
}

FNN_INLINE int avg_fwd_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const pool_args *A = ctx;
    const fnn_pool2d *s = A->s;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    for (ptrdiff_t q = lo; q < hi; q++) {
        const float *x = A->x + q * HW;
        float *y = A->y + q * P;
        for (int oh = 0; oh < s->Ho; oh++)
            for (int ow = 0; ow < s->Wo; ow++) {
                int h0, h1, w0, w1, div;
                avg_window(s, oh, ow, &h0, &h1, &w0, &w1, &div);
                float t = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        t += x[(ptrdiff_t)ih * s->W + iw];
                y[(ptrdiff_t)oh * s->Wo + ow] = div > 0 ? t / (float)div : NAN;
            }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(avg_fwd)

FNN_INLINE int avg_bwd_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const pool_args *A = ctx;
    const fnn_pool2d *s = A->s;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    for (ptrdiff_t q = lo; q < hi; q++) {
        float *dx = A->dx + q * HW;
        const float *dy = A->dy + q * P;
        memset(dx, 0, sizeof(float) * HW);
        for (int oh = 0; oh < s->Ho; oh++)
            for (int ow = 0; ow < s->Wo; ow++) {
                int h0, h1, w0, w1, div;
                avg_window(s, oh, ow, &h0, &h1, &w0, &w1, &div);
                float g = dy[(ptrdiff_t)oh * s->Wo + ow] / (float)div;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        dx[(ptrdiff_t)ih * s->W + iw] += g;
            }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(avg_bwd)

/* torch's rule: the first tap inside the plane starts as the maximum at
 * -inf; a later tap replaces it when greater or NaN. */
/* A row of outputs at a time: for each tap (i, j) in window order, one loop
 * over the output columns whose tap lies inside the plane, a select with no
 * branch (the compiler vectorises it; a per-window branch mispredicts every
 * other tap on real data). */
FNN_INLINE int max_fwd_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const pool_args *A = ctx;
    const int H = A->s->H, W = A->s->W, Ho = A->s->Ho, Wo = A->s->Wo, kh = A->s->kh,
              kw = A->s->kw, sh = A->s->sh, sw = A->s->sw, ph = A->s->ph, pw = A->s->pw,
              dh = A->s->dh, dw = A->s->dw;
    const ptrdiff_t HW = (ptrdiff_t)H * W, P = (ptrdiff_t)Ho * Wo;
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 && dw == 1
        && 2 * Ho <= H && 2 * Wo <= W) {
        /* the common 2x2 stride-2 case, every window inside the plane: the
         * four taps in one loop over a row (a, b above c, d) */
        for (ptrdiff_t q = lo; q < hi; q++)
            for (int oh = 0; oh < Ho; oh++) {
                const float *restrict r0 = A->x + q * HW + (ptrdiff_t)2 * oh * W, *restrict r1 = r0 + W;
                float *restrict yr = A->y + q * P + (ptrdiff_t)oh * Wo;
                int32_t *restrict ir = A->idx + q * P + (ptrdiff_t)oh * Wo;
                const int32_t at = 2 * oh * W;
                for (int ow = 0; ow < Wo; ow++) {
                    float m = r0[2 * ow], v;
                    int32_t k = at + 2 * ow, take;
                    v = r0[2 * ow + 1];
                    take = (v > m) | (v != v);
                    m = take ? v : m;
                    k = take ? at + 2 * ow + 1 : k;
                    v = r1[2 * ow];
                    take = (v > m) | (v != v);
                    m = take ? v : m;
                    k = take ? at + W + 2 * ow : k;
                    v = r1[2 * ow + 1];
                    take = (v > m) | (v != v);
                    m = take ? v : m;
                    k = take ? at + W + 2 * ow + 1 : k;
                    yr[ow] = m;
                    ir[ow] = k;
                }
            }
        return FNN_OK;
    }
    for (ptrdiff_t q = lo; q < hi; q++) {
        const float *x = A->x + q * HW;
        for (int oh = 0; oh < Ho; oh++) {
            float *restrict yr = A->y + q * P + (ptrdiff_t)oh * Wo;
            int32_t *restrict ir = A->idx + q * P + (ptrdiff_t)oh * Wo;
            int h0 = oh * sh - ph, h1 = h0 + (kh - 1) * dh + 1;
            if (h1 > H)
                h1 = H;
            while (h0 < 0)
                h0 += dh;
            for (int ow = 0; ow < Wo; ow++) {     /* the first tap inside, if any */
                int w0 = ow * sw - pw, w1 = w0 + (kw - 1) * dw + 1;
                if (w1 > W)
                    w1 = W;
                while (w0 < 0)
                    w0 += dw;
                yr[ow] = -INFINITY;
                ir[ow] = h0 < h1 && w0 < w1 ? (int32_t)(h0 * W + w0) : -1;
            }
            for (int i = 0; i < kh; i++) {
                int ih = oh * sh - ph + i * dh;
                if (ih < 0 || ih >= H)
                    continue;
                for (int j = 0; j < kw; j++) {
                    int off = j * dw - pw, a, e;
                    fnn_inside_cols(off, sw, W, Wo, &a, &e);
                    const float *restrict xr = x + (ptrdiff_t)ih * W + off;
                    const int32_t at = ih * W + off;
                    for (int ow = a; ow < e; ow++) {
                        float v = xr[(ptrdiff_t)ow * sw];
                        int take = (v > yr[ow]) | (v != v);
                        yr[ow] = take ? v : yr[ow];
                        ir[ow] = take ? at + ow * sw : ir[ow];
                    }
                }
            }
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(max_fwd)

#ifdef FNN_MULTI_ISA
#include <immintrin.h>

/* The 2x2 stride-2 windows of an even plane (H = 2 Ho, W = 2 Wo) on
 * AVX-512: an output row of 14 or 7 (28 -> 14 -> 7 px) is shorter than the
 * vectorised loop of max_fwd_body's 2x2 case, which then ran scalar. Here 16
 * windows per masked step: each row pair deinterleaved into its even and odd
 * columns, then torch's rule as there (a later tap wins when greater or NaN),
 * so the same values and indices. */
static int max2_even(const fnn_pool2d *s)
{
    return s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->ph == 0 && s->pw == 0
           && s->dh == 1 && s->dw == 1 && s->H == 2 * s->Ho && s->W == 2 * s->Wo;
}

static const int32_t EVEN[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};

FNN_TARGET_AVX512 static int max2_fwd_avx512(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const pool_args *A = ctx;
    const int W = A->s->W, Ho = A->s->Ho, Wo = A->s->Wo;
    const ptrdiff_t HW = (ptrdiff_t)A->s->H * W, P = (ptrdiff_t)Ho * Wo;
    const __m512i ev = _mm512_loadu_si512(EVEN), od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i lane2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                               11, 12, 13, 14, 15), 1);
    for (ptrdiff_t q = lo; q < hi; q++)
        for (int oh = 0; oh < Ho; oh++) {
            const float *r0 = A->x + q * HW + (ptrdiff_t)2 * oh * W, *r1 = r0 + W;
            float *yr = A->y + q * P + (ptrdiff_t)oh * Wo;
            int32_t *ir = A->idx + q * P + (ptrdiff_t)oh * Wo;
            for (int ow = 0; ow < Wo; ow += 16) {
                const int n = Wo - ow < 16 ? Wo - ow : 16;
                const __mmask16 m = (__mmask16)((1u << n) - 1u);
                const __mmask16 m0 = (__mmask16)(n >= 8 ? 0xFFFF : (1u << 2 * n) - 1u);
                const __mmask16 m1 = (__mmask16)(n <= 8 ? 0 : (1u << 2 * (n - 8)) - 1u);
                __m512 t0 = _mm512_maskz_loadu_ps(m0, r0 + 2 * ow);
                __m512 t1 = _mm512_maskz_loadu_ps(m1, r0 + 2 * ow + 16);
                __m512 u0 = _mm512_maskz_loadu_ps(m0, r1 + 2 * ow);
                __m512 u1 = _mm512_maskz_loadu_ps(m1, r1 + 2 * ow + 16);
                __m512 v[4] = {_mm512_permutex2var_ps(t0, ev, t1), _mm512_permutex2var_ps(t0, od, t1),
                               _mm512_permutex2var_ps(u0, ev, u1), _mm512_permutex2var_ps(u0, od, u1)};
                const __m512i k0 = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * ow), lane2);
                const __m512i koff[4] = {k0, _mm512_add_epi32(k0, _mm512_set1_epi32(1)),
                                         _mm512_add_epi32(k0, _mm512_set1_epi32(W)),
                                         _mm512_add_epi32(k0, _mm512_set1_epi32(W + 1))};
                __m512 mx = v[0];
                __m512i k = koff[0];
                for (int t = 1; t < 4; t++) {
                    __mmask16 take = _mm512_cmp_ps_mask(v[t], mx, _CMP_GT_OQ)
                                     | _mm512_cmp_ps_mask(v[t], v[t], _CMP_UNORD_Q);
                    mx = _mm512_mask_mov_ps(mx, take, v[t]);
                    k = _mm512_mask_mov_epi32(k, take, koff[t]);
                }
                _mm512_mask_storeu_ps(yr + ow, m, mx);
                _mm512_mask_storeu_epi32(ir + ow, m, k);
            }
        }
    return FNN_OK;
}

/* Backward of the same windows: each input is written once, dy where it
 * was its window's maximum and 0 elsewhere (no memset, no scatter). */
FNN_TARGET_AVX512 static int max2_bwd_avx512(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const pool_args *A = ctx;
    const int W = A->s->W, Ho = A->s->Ho, Wo = A->s->Wo;
    const ptrdiff_t HW = (ptrdiff_t)A->s->H * W, P = (ptrdiff_t)Ho * Wo;
    const __m512i lo8 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi8 = _mm512_add_epi32(lo8, _mm512_set1_epi32(8));
    const __m512i lane2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                               11, 12, 13, 14, 15), 1);
    for (ptrdiff_t q = lo; q < hi; q++)
        for (int oh = 0; oh < Ho; oh++) {
            float *d0 = A->dx + q * HW + (ptrdiff_t)2 * oh * W, *d1 = d0 + W;
            const float *dyr = A->dy + q * P + (ptrdiff_t)oh * Wo;
            const int32_t *ir = A->cidx + q * P + (ptrdiff_t)oh * Wo;
            for (int ow = 0; ow < Wo; ow += 16) {
                const int n = Wo - ow < 16 ? Wo - ow : 16;
                const __mmask16 m = (__mmask16)((1u << n) - 1u);
                const __mmask16 m0 = (__mmask16)(n >= 8 ? 0xFFFF : (1u << 2 * n) - 1u);
                const __mmask16 m1 = (__mmask16)(n <= 8 ? 0 : (1u << 2 * (n - 8)) - 1u);
                __m512 g = _mm512_maskz_loadu_ps(m, dyr + ow);
                if (A->ym)
                    g = _mm512_maskz_mov_ps(_mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(
                                                m, A->ym + q * P + (ptrdiff_t)oh * Wo + ow),
                                            _mm512_setzero_ps(), _CMP_GT_OQ), g);
                const __m512i k = _mm512_maskz_loadu_epi32(m, ir + ow);
                const __m512i k0 = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * ow), lane2);
                __m512 a = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(k, k0), g);
                __m512 b = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(k, _mm512_add_epi32(k0, _mm512_set1_epi32(1))), g);
                __m512 c = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(k, _mm512_add_epi32(k0, _mm512_set1_epi32(W))), g);
                __m512 e = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(k, _mm512_add_epi32(k0, _mm512_set1_epi32(W + 1))), g);
                _mm512_mask_storeu_ps(d0 + 2 * ow, m0, _mm512_permutex2var_ps(a, lo8, b));
                _mm512_mask_storeu_ps(d0 + 2 * ow + 16, m1, _mm512_permutex2var_ps(a, hi8, b));
                _mm512_mask_storeu_ps(d1 + 2 * ow, m0, _mm512_permutex2var_ps(c, lo8, e));
                _mm512_mask_storeu_ps(d1 + 2 * ow + 16, m1, _mm512_permutex2var_ps(c, hi8, e));
            }
        }
    return FNN_OK;
}
#endif

static int max_bwd(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const pool_args *A = ctx;
    const fnn_pool2d *s = A->s;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    for (ptrdiff_t q = lo; q < hi; q++) {
        float *dx = A->dx + q * HW;
        const float *dy = A->dy + q * P;
        const int32_t *idx = A->cidx + q * P;
        const float *ym = A->ym ? A->ym + q * P : NULL;
        memset(dx, 0, sizeof(float) * HW);
        for (ptrdiff_t p = 0; p < P; p++)
            if (idx[p] >= 0)
                dx[idx[p]] += !ym || ym[p] > 0.0f ? dy[p] : 0.0f;
    }
    return FNN_OK;
}

/* Work of one plane in flop equivalents: every output reads its window. */
static double plane_cost(const fnn_pool2d *s, ptrdiff_t P)
{
    double taps = s->mode == FNN_POOL_ADAPTIVE
                      ? (double)s->H * s->W / ((double)s->Ho * s->Wo) + 1.0
                      : (double)s->kh * s->kw;
    return (double)P * s->Ho * s->Wo * (taps + 1.0) * FNN_COST_ELEM / 4
           + (double)P * s->H * s->W * FNN_COST_ELEM / 4;
}

void fnn_maxpool2d_forward(ptrdiff_t P, const fnn_pool2d *s, const float *x, float *y,
                           int32_t *idx)
{
    pool_args A = {s, x, NULL, y, NULL, idx, NULL};
#ifdef FNN_MULTI_ISA
    if (fnn_get_isa() == FNN_ISA_AVX512 && max2_even(s)) {
        fnn_parallel_for(P, 1, plane_cost(s, P), max2_fwd_avx512, &A);
        return;
    }
#endif
    fnn_parallel_for(P, 1, plane_cost(s, P), FNN_ISA_PICK(max_fwd), &A);
}

void fnn_maxpool2d_backward(ptrdiff_t P, const fnn_pool2d *s, const int32_t *idx,
                            const float *dy, const float *ymask, float *dx)
{
    pool_args A = {s, NULL, dy, NULL, dx, NULL, idx, ymask};
#ifdef FNN_MULTI_ISA
    if (fnn_get_isa() == FNN_ISA_AVX512 && max2_even(s)) {
        fnn_parallel_for(P, 1, plane_cost(s, P) / 2, max2_bwd_avx512, &A);
        return;
    }
#endif
    fnn_parallel_for(P, 1, plane_cost(s, P) / 2, max_bwd, &A);
}

void fnn_avgpool2d_forward(ptrdiff_t P, const fnn_pool2d *s, const float *x, float *y)
{
    pool_args A = {s, x, NULL, y, NULL, NULL, NULL};
    fnn_parallel_for(P, 1, plane_cost(s, P), FNN_ISA_PICK(avg_fwd), &A);
}

void fnn_avgpool2d_backward(ptrdiff_t P, const fnn_pool2d *s, const float *dy, float *dx)
{
    pool_args A = {s, NULL, dy, NULL, dx, NULL, NULL};
    fnn_parallel_for(P, 1, plane_cost(s, P), FNN_ISA_PICK(avg_bwd), &A);
}
