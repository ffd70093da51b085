/* loss.c -- loss functions: forward (per-sample losses and their sum) and
 * backward (dL/dinput), the two fused into one pass when the caller asks.
 *
 * Determinism. Row losses (cross-entropy, NLL, multi-margin) work on (N,C)
 * rows; threads take contiguous row ranges and each row is computed the same
 * way whatever the thread count. Per-row losses are float64 and summed in row
 * order after the parallel region. Element-wise losses (MSE, BCE-with-logits)
 * sum float64 partials over a fixed partition of the flat array into
 * LOSS_BLOCK elements, combined in block order. Inner loops keep LANES
 * independent partial sums/maxima in small arrays, a form GCC vectorises
 * without reassociating anything (the build has no -ffast-math, and
 * -ffp-contract=off), so results are bitwise independent of the thread count
 * and of the vector width.
 *
 * ISA variants. The per-row/per-block bodies are plain C, instantiated three
 * times: portable (baseline SSE2 on x86-64), and with AVX2 / AVX-512 enabled
 * by function attribute (wider vectors for the same C, so the same results),
 * picked by fnn_get_isa() like the GEMM micro-kernels.
 *
 * Validation. Nothing is checked here. Instead every forward kernel makes a
 * NaN or infinity in its inputs, or a target outside its domain, show up as a
 * NaN/infinite total, and the Python caller inspects the inputs only then
 * (saving a pass over the data on every call).
 */
#include "fastnn.h"

/* Two code-generation options for this file, neither of which changes a
 * result. no-trapping-math: the selects below (clamps in exp_nonpos, masks)
 * only vectorise when GCC may assume FP exceptions are not observed (the
 * build keeps the default -ftrapping-math). no-wrapv: Python's build flags
 * add -fwrapv, under which GCC cannot prove x[j + l] contiguous and leaves
 * the lane loops scalar (5x slower); these kernels never overflow an index. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "no-wrapv")
#endif

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define LANES 16
#define LOSS_BLOCK 8192              /* elements per partial sum (MSE, BCE) */
#define ROW_THRESHOLD 16384.0        /* elements of work per extra thread */
#define ELEM_THRESHOLD 65536.0

#define AI static inline __attribute__((always_inline))

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define LOSS_X86 1
#define T_AVX2 __attribute__((target("avx2")))
#define T_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2")))
#endif

/* ------------------------------------------------------------ helpers -- */

AI float bits_f(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* Order-preserving map of a float's bits to int32 and back: integer max
 * reductions vectorise, float ones (a NaN-aware select) do not. */
AI int32_t flip_neg(int32_t b)           /* b ^ 0x7fffffff if b < 0 */
{
    const int32_t neg = (int32_t)((uint32_t)b >> 31);
    return b ^ (-neg & 0x7fffffff);
}

AI int32_t f_key(float v)
{
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return flip_neg(b);
}

AI float key_f(int32_t k)
{
    return bits_f(flip_neg(k));
}

/* exp(x) for x <= 0, to about 1 ulp; 0 below -87.33 (where exp(x) is under
 * FLT_MIN and would be flushed anyway). x = n ln2 + r with |r| <= ln2/2 and
 * exp(r) by its degree-7 Taylor polynomial (truncation < 6e-9 relative);
 * 2^n is built in the exponent field. Branch-free, so loops over it
 * vectorise. The clamp sends NaN to lo, so the float-to-int conversion is
 * always in range (NaN inputs are caught by the callers' checks instead). */
AI float exp_nonpos(float x)
{
    const float lo = -87.33f;
    float xc = x > lo ? x : lo;
    xc = xc < 0.0f ? xc : 0.0f;
    const float t = xc * 1.44269504088896341f + 12582912.0f; /* rint(x/ln2) + 1.5*2^23 */
    const float n = t - 12582912.0f;
    float r = xc - n * 0.693359375f;                  /* ln2 = hi + lo, hi has 9 bits */
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const float v = p * bits_f(((int32_t)n + 127) << 23);
    return x < lo ? 0.0f : v;
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3],
 * by the atanh series to s^19 (truncation < 1e-10 relative). */
AI float log1p_unit(float e)
{
    const float s = e / (2.0f + e);
    const float z = s * s;
    float p = 1.0f / 19.0f;
    p = p * z + 1.0f / 17.0f;
    p = p * z + 1.0f / 15.0f;
    p = p * z + 1.0f / 13.0f;
    p = p * z + 1.0f / 11.0f;
    p = p * z + 1.0f / 9.0f;
    p = p * z + 1.0f / 7.0f;
    p = p * z + 1.0f / 5.0f;
    p = p * z + 1.0f / 3.0f;
    p = p * z + 1.0f;
    return 2.0f * s * p;
}

/* Lane reductions in a fixed pairwise order (short dependency chains),
 * written out: as loops over a temporary array GCC went through memory. */
#if LANES != 16
#error "lsum_d / lsum_f are written for LANES == 16"
#endif
AI double lsum_d(const double *v)
{
    const double a0 = v[0] + v[8], a1 = v[1] + v[9], a2 = v[2] + v[10], a3 = v[3] + v[11];
    const double a4 = v[4] + v[12], a5 = v[5] + v[13], a6 = v[6] + v[14], a7 = v[7] + v[15];
    const double b0 = a0 + a4, b1 = a1 + a5, b2 = a2 + a6, b3 = a3 + a7;
    return (b0 + b2) + (b1 + b3);
}

AI float lsum_f(const float *v)
{
    const float a0 = v[0] + v[8], a1 = v[1] + v[9], a2 = v[2] + v[10], a3 = v[3] + v[11];
    const float a4 = v[4] + v[12], a5 = v[5] + v[13], a6 = v[6] + v[14], a7 = v[7] + v[15];
    const float b0 = a0 + a4, b1 = a1 + a5, b2 = a2 + a6, b3 = a3 + a7;
    return (b0 + b2) + (b1 + b3);
}

static double sum_in_order(const double *v, ptrdiff_t n)
{
    double s = 0.0;
    for (ptrdiff_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* Row helpers: LANES-wide chunks, then a scalar tail. */

AI void key_chunk(const float *x, int32_t *mx, int32_t *mn)
{
    for (int l = 0; l < LANES; l++) {
        const int32_t k = f_key(x[l]);
        mx[l] = k > mx[l] ? k : mx[l];
        mn[l] = k < mn[l] ? k : mn[l];
    }
}

/* Largest and smallest f_key over x[0..n), n >= 1. On the key scale
 * NaN(sign set) < -inf < -FLT_MAX <= ... < -0 (key -1) < +0 (key 0) < ...
 * <= FLT_MAX < inf < NaN, so the two keys answer "all finite?", "any
 * negative?" and "all in [0, 1]?" -- integer reductions, which vectorise
 * where float compares (NaN-aware selects) do not. */
AI void key_range(const float *x, ptrdiff_t n, int32_t *hi, int32_t *lo)
{
    int32_t mx[LANES], mn[LANES];
    for (int l = 0; l < LANES; l++) {
        mx[l] = INT32_MIN;
        mn[l] = INT32_MAX;
    }
    ptrdiff_t j = 0;
    for (; j + LANES <= n; j += LANES)
        key_chunk(x + j, mx, mn);
    int32_t h = mx[0], o = mn[0];
    for (; j < n; j++) {
        const int32_t k = f_key(x[j]);
        h = k > h ? k : h;
        o = k < o ? k : o;
    }
    for (int l = 1; l < LANES; l++) {
        h = mx[l] > h ? mx[l] : h;
        o = mn[l] < o ? mn[l] : o;
    }
    *hi = h;
    *lo = o;
}

#define KEY_FLT_MAX 0x7f7fffff              /* f_key(FLT_MAX) */
#define KEY_NEG_FLT_MAX (-0x7f7fffff - 1)   /* f_key(-FLT_MAX) */
#define KEY_NEG_ZERO (-1)                   /* f_key(-0.0f) */
#define KEY_ONE 0x3f800000                  /* f_key(1.0f) */

AI float nan_unless(int ok)
{
    return ok ? 0.0f : NAN;
}

/* Max of x[0..C) (C >= 1); *check = 0 if every x is finite, else NaN. */
AI float row_max_check(const float *x, int C, float *check)
{
    int32_t hi, lo;
    key_range(x, C, &hi, &lo);
    *check = nan_unless(hi <= KEY_FLT_MAX && lo >= KEY_NEG_FLT_MAX);
    return key_f(hi);
}

/* Sum of x*0 over x[0..n): 0 if every x is finite, else NaN (one float
 * accumulator: cheaper than key_range when the max is not needed). */
AI float finite_check(const float *x, ptrdiff_t n)
{
    float ck[LANES] = {0}, t = 0.0f;
    ptrdiff_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++)
            ck[l] += x[j + l] * 0.0f;
    for (; j < n; j++)
        t += x[j] * 0.0f;
    return lsum_f(ck) + t;
}

AI void exp_chunk(const float *x, float m, float *e, double *sv)
{
    for (int l = 0; l < LANES; l++) {
        const float v = exp_nonpos(x[l] - m);
        e[l] = v;
        sv[l] += (double)v;
    }
}

AI void exp_sum_chunk(const float *x, float m, double *sv)
{
    for (int l = 0; l < LANES; l++)
        sv[l] += (double)exp_nonpos(x[l] - m);
}

/* e[j] = exp(x[j] - m) (stored if e != NULL); returns sum_j e[j] in float64.
 * (One inner loop per loop nest, so GCC keeps the sums in registers.) */
AI double row_exp_sum(const float *x, int C, float m, float *e)
{
    double sv[LANES] = {0};
    int j = 0;
    if (e) {
        for (; j + LANES <= C; j += LANES)
            exp_chunk(x + j, m, e + j, sv);
    } else {
        for (; j + LANES <= C; j += LANES)
            exp_sum_chunk(x + j, m, sv);
    }
    double ts = 0.0;
    for (; j < C; j++) {
        const float v = exp_nonpos(x[j] - m);
        if (e) e[j] = v;
        ts += (double)v;
    }
    return lsum_d(sv) + ts;
}

/* e[j] = exp(x[j] - m), the same values row_exp_sum stores. */
AI void row_exp(const float *x, int C, float m, float *e)
{
    for (int j = 0; j < C; j++)
        e[j] = exp_nonpos(x[j] - m);
}

/* sum_j w[j] (x[j] - m) in float64 (w == NULL: all ones). */
AI double row_wdev_sum(const float *x, const float *w, int C, float m)
{
    double sv[LANES] = {0}, t = 0.0;
    const double md = m;
    int j = 0;
    if (w) {
        for (; j + LANES <= C; j += LANES)
            for (int l = 0; l < LANES; l++)
                sv[l] += (double)w[j + l] * ((double)x[j + l] - md);
        for (; j < C; j++)
            t += (double)w[j] * ((double)x[j] - md);
    } else {
        for (; j + LANES <= C; j += LANES)
            for (int l = 0; l < LANES; l++)
                sv[l] += (double)x[j + l] - md;
        for (; j < C; j++)
            t += (double)x[j] - md;
    }
    return lsum_d(sv) + t;
}

/* ------------------------------------------------------ the job record -- */

/* Everything one kernel call works on; each kernel uses some of the fields. */
typedef struct {
    int C;                   /* row length (classes; pos_weight period for BCE) */
    const float *x;          /* input */
    const int64_t *ti;       /* class-index targets (N) */
    const float *tf;         /* float targets: probabilities, MSE/BCE targets */
    const float *w;          /* class weight (C) / pos_weight (C), or NULL */
    double wsum;             /* sum_j w_j (C without weights) */
    float om, ec;            /* cross-entropy: 1 - smoothing, smoothing / C */
    double om_d, ec_d;       /* the same in float64, for the loss */
    int p;                   /* multi-margin exponent */
    double margin;
    double scale;            /* gradient scale */
    const float *rs;         /* per-row / per-element gradient scale, or NULL */
    float *grad;             /* (N,C) / (n), or NULL */
    float *eloss;            /* per-element loss (n), or NULL */
    float *rmax;             /* cross-entropy row maxima (N) */
    double *rcoef;           /* cross-entropy softmax coefficients (N) */
    double *rloss;           /* per-row losses (N) */
    int want_sum;            /* element-wise forward: return the loss sum */
} job;

/* A range body: rows or elements [lo, hi); element-wise bodies return their
 * float64 loss sum, row bodies store per-row losses and return 0. */
typedef double (*range_fn)(const job *J, ptrdiff_t lo, ptrdiff_t hi);

/* Instantiate body NAME##_body as NAME##_ref/_avx2/_avx512 and a picker. */
#ifdef LOSS_X86
#define ISA_VARIANTS(NAME)                                                      \
    static double NAME##_ref(const job *J, ptrdiff_t lo, ptrdiff_t hi)          \
    { return NAME##_body(J, lo, hi); }                                          \
    T_AVX2 static double NAME##_avx2(const job *J, ptrdiff_t lo, ptrdiff_t hi)  \
    { return NAME##_body(J, lo, hi); }                                          \
    T_AVX512 static double NAME##_avx512(const job *J, ptrdiff_t lo, ptrdiff_t hi) \
    { return NAME##_body(J, lo, hi); }                                          \
    static range_fn NAME##_pick(void)                                           \
    {                                                                           \
        switch (fnn_get_isa()) {                                                \
        case FNN_ISA_AVX512: return NAME##_avx512;                              \
        case FNN_ISA_AVX2: return NAME##_avx2;                                  \
        default: return NAME##_ref;                                             \
        }                                                                       \
    }
#else
#define ISA_VARIANTS(NAME)                                                      \
    static double NAME##_ref(const job *J, ptrdiff_t lo, ptrdiff_t hi)          \
    { return NAME##_body(J, lo, hi); }                                          \
    static range_fn NAME##_pick(void) { return NAME##_ref; }
#endif

/* ------------------------------------------------------------ drivers -- */

static inline void share(ptrdiff_t n, int nt, int t, ptrdiff_t *lo, ptrdiff_t *hi)
{
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* fn over rows [0, N), contiguous row ranges per thread. */
static void run_rows(ptrdiff_t N, double work, double threshold, range_fn fn, const job *J)
{
    int nt = fnn_threads_for(work, threshold);
    if (nt > N)
        nt = N > 0 ? (int)N : 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int me = 0, have = 1;
#ifdef _OPENMP
        me = omp_get_thread_num();
        have = omp_get_num_threads();   /* the runtime may give fewer than nt */
#endif
        unsigned s = fnn_ftz_enter();
        for (int t = me; t < nt; t += have) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            if (lo < hi)
                fn(J, lo, hi);
        }
        fnn_ftz_leave(s);
    }
}

/* fn over the fixed LOSS_BLOCK partition of n elements, blocks shared out to
 * threads; with total, the block sums are added in block order. */
static int run_blocks(ptrdiff_t n, range_fn fn, const job *J, double *total)
{
    const ptrdiff_t nb = (n + LOSS_BLOCK - 1) / LOSS_BLOCK;
    double stack[64];
    double *part = NULL;
    if (total) {
        part = nb <= 64 ? stack : (double *)malloc((size_t)nb * sizeof(double));
        if (!part)
            return FNN_ENOMEM;
    }
    int nt = fnn_threads_for((double)n, ELEM_THRESHOLD);
    if (nt > nb)
        nt = nb > 0 ? (int)nb : 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int me = 0, have = 1;
#ifdef _OPENMP
        me = omp_get_thread_num();
        have = omp_get_num_threads();
#endif
        unsigned s = fnn_ftz_enter();
        for (int t = me; t < nt; t += have) {
            ptrdiff_t lo, hi;
            share(nb, nt, t, &lo, &hi);
            for (ptrdiff_t b = lo; b < hi; b++) {
                const ptrdiff_t e0 = b * LOSS_BLOCK;
                const ptrdiff_t e1 = n - e0 < LOSS_BLOCK ? n : e0 + LOSS_BLOCK;
                const double v = fn(J, e0, e1);
                if (part)
                    part[b] = v;
            }
        }
        fnn_ftz_leave(s);
    }
    if (total) {
        *total = sum_in_order(part, nb);
        if (part != stack)
            free(part);
    }
    return FNN_OK;
}

/* ------------------------------------------------------ cross-entropy -- */

/* The target distribution of a row is q (sum S); the loss is
 * sum_j q_j (lse - x_j) = S log(sum_j e_j) - sum_j q_j (x_j - m), with
 * e_j = exp(x_j - m), m the row max; the gradient is scale (p_j S - q_j) =
 * e_j a - scale q_j with a = scale S / sum_j e_j (row_coef = S / sum e).
 *   class index y: q_j = om w_y [j == y] + ec w_j
 *   probabilities t: q_j = w_j (om t_j + ec)          (w_j = 1 without weight) */
static void ce_setup(job *J, int C, const float *weight, float smoothing)
{
    J->C = C;
    J->w = weight;
    J->om_d = 1.0 - (double)smoothing;
    J->ec_d = (double)smoothing / C;
    J->om = (float)J->om_d;
    J->ec = (float)J->ec_d;
    double ws = C;
    if (weight) {
        ws = 0.0;
        for (int j = 0; j < C; j++)
            ws += weight[j];
    }
    J->wsum = ws;
}

/* g[j] = e[j] a - sc q_j in place (g holds e on entry); class-index target. */
AI void ce_row_finish(const job *J, int64_t y, float a, float sc, float *g)
{
    const int C = J->C;
    const float wy = J->w ? J->w[y] : 1.0f;
    const float gy = g[y] * a - sc * (J->om * wy + J->ec * wy);
    if (J->ec != 0.0f) {
        const float sec = sc * J->ec;
        if (J->w)
            for (int j = 0; j < C; j++)
                g[j] = g[j] * a - sec * J->w[j];
        else
            for (int j = 0; j < C; j++)
                g[j] = g[j] * a - sec;
    } else {
        for (int j = 0; j < C; j++)
            g[j] = g[j] * a;
    }
    g[y] = gy;
}

AI double ce_fwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        float *g = J->grad ? J->grad + i * C : NULL;
        const int64_t y = J->ti[i];
        float check;
        const float m = row_max_check(x, C, &check);
        const double sum = row_exp_sum(x, C, m, g);
        const double lse = log(sum);
        const double wy = J->w ? (double)J->w[y] : 1.0;
        double S = J->om_d * wy;
        double loss = J->om_d * wy * (lse - ((double)x[y] - (double)m));
        if (J->ec_d != 0.0) {
            S += J->ec_d * J->wsum;
            loss += J->ec_d * (J->wsum * lse - row_wdev_sum(x, J->w, C, m));
        }
        const double coef = S / sum;
        J->rmax[i] = m;
        J->rcoef[i] = coef;
        J->rloss[i] = loss + (double)check;
        if (g)
            ce_row_finish(J, y, (float)(J->scale * coef), (float)J->scale, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_fwd)

AI double ce_bwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        float *g = J->grad + i * C;
        row_exp(x, C, J->rmax[i], g);
        const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
        ce_row_finish(J, J->ti[i], (float)(sc * J->rcoef[i]), (float)sc, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_bwd)

/* q_j = w_j (om t_j + ec); the has_w variants keep the loops branch-free. */
AI float prob_q(float om, float ec, const float *w, const float *t, int j, const int has_w)
{
    const float v = om * t[j] + ec;
    return has_w ? w[j] * v : v;
}

AI void prob_finish_w(const job *J, const float *t, float a, float sc, float *g,
                      const int has_w)
{
    const float om = J->om, ec = J->ec, *w = J->w;
    for (int j = 0; j < J->C; j++)
        g[j] = g[j] * a - sc * prob_q(om, ec, w, t, j, has_w);
}

AI void ce_prob_row_finish(const job *J, const float *t, float a, float sc, float *g)
{
    if (J->w)
        prob_finish_w(J, t, a, sc, g, 1);
    else
        prob_finish_w(J, t, a, sc, g, 0);
}

/* sum_j q_j (dev == 0) or sum_j q_j (x_j - m) (dev == 1), float64, one
 * accumulator per loop. */
AI double prob_sum_w(const job *J, const float *t, const float *x, float m, const int dev,
                     const int has_w)
{
    const float om = J->om, ec = J->ec, *w = J->w;
    const int C = J->C;
    const double md = m;
    double sv[LANES] = {0}, ts = 0.0;
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int l = 0; l < LANES; l++) {
            const double q = (double)prob_q(om, ec, w, t, j + l, has_w);
            sv[l] += dev ? q * ((double)x[j + l] - md) : q;
        }
    for (; j < C; j++) {
        const double q = (double)prob_q(om, ec, w, t, j, has_w);
        ts += dev ? q * ((double)x[j] - md) : q;
    }
    return lsum_d(sv) + ts;
}

AI double prob_sum(const job *J, const float *t, const float *x, float m, const int dev)
{
    return J->w ? prob_sum_w(J, t, x, m, dev, 1) : prob_sum_w(J, t, x, m, dev, 0);
}

AI double ce_prob_fwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C, *t = J->tf + i * C;
        float *g = J->grad ? J->grad + i * C : NULL;
        float check;
        const float m = row_max_check(x, C, &check);
        int32_t thi, tlo;                  /* targets: finite and >= 0 (or -0) */
        key_range(t, C, &thi, &tlo);
        const int t_ok = thi <= KEY_FLT_MAX && tlo >= KEY_NEG_ZERO;
        const double sum = row_exp_sum(x, C, m, g);
        const double S = prob_sum(J, t, x, m, 0);
        const double coef = S / sum;
        J->rmax[i] = m;
        J->rcoef[i] = coef;
        J->rloss[i] = S * log(sum) - prob_sum(J, t, x, m, 1) + (double)check
                      + (double)nan_unless(t_ok);
        if (g)
            ce_prob_row_finish(J, t, (float)(J->scale * coef), (float)J->scale, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_prob_fwd)

AI double ce_prob_bwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        float *g = J->grad + i * C;
        row_exp(x, C, J->rmax[i], g);
        const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
        ce_prob_row_finish(J, J->tf + i * C, (float)(sc * J->rcoef[i]), (float)sc, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_prob_bwd)

double fnn_cross_entropy_forward(int N, int C, const float *x, const int64_t *target,
                                 const float *weight, float smoothing, double scale,
                                 float *grad, float *row_max, double *row_coef,
                                 double *row_loss)
{
    job J = {0};
    ce_setup(&J, C, weight, smoothing);
    J.x = x;
    J.ti = target;
    J.scale = scale;
    J.grad = grad;
    J.rmax = row_max;
    J.rcoef = row_coef;
    J.rloss = row_loss;
    run_rows(N, (double)N * C, ROW_THRESHOLD, ce_fwd_pick(), &J);
    return sum_in_order(row_loss, N);
}

void fnn_cross_entropy_backward(int N, int C, const float *x, const int64_t *target,
                                const float *weight, float smoothing,
                                const float *row_max, const double *row_coef,
                                double scale, const float *row_scale, float *grad)
{
    job J = {0};
    ce_setup(&J, C, weight, smoothing);
    J.x = x;
    J.ti = target;
    J.scale = scale;
    J.rs = row_scale;
    J.grad = grad;
    J.rmax = (float *)row_max;      /* read only */
    J.rcoef = (double *)row_coef;   /* read only */
    run_rows(N, (double)N * C, ROW_THRESHOLD, ce_bwd_pick(), &J);
}

double fnn_cross_entropy_prob_forward(int N, int C, const float *x, const float *prob,
                                      const float *weight, float smoothing, double scale,
                                      float *grad, float *row_max, double *row_coef,
                                      double *row_loss)
{
    job J = {0};
    ce_setup(&J, C, weight, smoothing);
    J.x = x;
    J.tf = prob;
    J.scale = scale;
    J.grad = grad;
    J.rmax = row_max;
    J.rcoef = row_coef;
    J.rloss = row_loss;
    run_rows(N, (double)N * C, ROW_THRESHOLD, ce_prob_fwd_pick(), &J);
    return sum_in_order(row_loss, N);
}

void fnn_cross_entropy_prob_backward(int N, int C, const float *x, const float *prob,
                                     const float *weight, float smoothing,
                                     const float *row_max, const double *row_coef,
                                     double scale, const float *row_scale, float *grad)
{
    job J = {0};
    ce_setup(&J, C, weight, smoothing);
    J.x = x;
    J.tf = prob;
    J.scale = scale;
    J.rs = row_scale;
    J.grad = grad;
    J.rmax = (float *)row_max;
    J.rcoef = (double *)row_coef;
    run_rows(N, (double)N * C, ROW_THRESHOLD, ce_prob_bwd_pick(), &J);
}

/* ---------------------------------------------------------------- NLL -- */

/* row loss = -w_y x_y; gradient row = -sc w_y onehot(y). The forward also
 * reads the whole row, so a NaN anywhere in the input is reported. */
static double nll_body(const job *J, ptrdiff_t lo, ptrdiff_t hi, int fwd)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const int64_t y = J->ti[i];
        const float wy = J->w ? J->w[y] : 1.0f;
        if (fwd) {
            const float *x = J->x + i * C;
            J->rloss[i] = -(double)wy * (double)x[y] + (double)finite_check(x, C);
        }
        if (J->grad) {
            float *g = J->grad + i * C;
            const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
            memset(g, 0, (size_t)C * sizeof(float));
            g[y] = -((float)sc * wy);
        }
    }
    return 0.0;
}

static double nll_fwd(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return nll_body(J, lo, hi, 1);
}

static double nll_bwd(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return nll_body(J, lo, hi, 0);
}

double fnn_nll_forward(int N, int C, const float *x, const int64_t *target,
                       const float *weight, double scale, float *grad, double *row_loss)
{
    job J = {0};
    J.C = C;
    J.x = x;
    J.ti = target;
    J.w = weight;
    J.scale = scale;
    J.grad = grad;
    J.rloss = row_loss;
    run_rows(N, (double)N * C, ELEM_THRESHOLD, nll_fwd, &J);
    return sum_in_order(row_loss, N);
}

void fnn_nll_backward(int N, int C, const int64_t *target, const float *weight,
                      double scale, const float *row_scale, float *grad)
{
    job J = {0};
    J.C = C;
    J.ti = target;
    J.w = weight;
    J.scale = scale;
    J.rs = row_scale;
    J.grad = grad;
    run_rows(N, (double)N * C, ELEM_THRESHOLD, nll_bwd, &J);
}

/* ------------------------------------------------------- multi-margin -- */

/* Row loss w_y / C sum_{j != y} max(0, z_j)^p, z_j = margin - x_y + x_j in
 * float64. Gradient: sc w_y / C * (p == 1 ? 1 : 2 z_j) for j != y with
 * z_j > 0, and minus their sum at y. p and with_grad are constants in each
 * instantiation. */
/* The loops run over every j, y included (an index test in the loop stops
 * GCC vectorising it), and mm_row takes the y term out afterwards. One
 * accumulator per loop (two, or float and double lanes mixed, also stop it). */
AI double mm_hinge(double z, const int p)
{
    const double h = p == 1 ? z : z * z;
    return z > 0.0 ? h : 0.0;
}

AI double mm_grad_elem(double z, double c1, const int p)
{
    const double gj = p == 1 ? c1 : 2.0 * z * c1;
    return z > 0.0 ? gj : 0.0;
}

AI double mm_row(const job *J, const float *x, int64_t y, double sc, float *g, const int p,
                 const int with_grad)
{
    const int C = J->C;
    const float wy = J->w ? J->w[y] : 1.0f;
    const double base = J->margin - (double)x[y];
    const double zy = base + (double)x[y];          /* the y term, to take out */
    double sv[LANES] = {0}, ts = 0.0;
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int l = 0; l < LANES; l++)
            sv[l] += mm_hinge(base + (double)x[j + l], p);
    for (; j < C; j++)
        ts += mm_hinge(base + (double)x[j], p);
    if (with_grad) {
        const double c1 = sc * (double)wy / C;
        double gv[LANES] = {0}, tg = 0.0;
        for (j = 0; j + LANES <= C; j += LANES)
            for (int l = 0; l < LANES; l++) {
                const double gd = mm_grad_elem(base + (double)x[j + l], c1, p);
                g[j + l] = (float)gd;
                gv[l] += gd;
            }
        for (; j < C; j++) {
            const double gd = mm_grad_elem(base + (double)x[j], c1, p);
            g[j] = (float)gd;
            tg += gd;
        }
        g[y] = (float)-((lsum_d(gv) + tg) - mm_grad_elem(zy, c1, p));
    }
    const double s = (lsum_d(sv) + ts) - mm_hinge(zy, p);
    return (double)wy * s / C + (double)finite_check(x, C);
}

AI double mm_body_p(const job *J, ptrdiff_t lo, ptrdiff_t hi, const int p)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        const int64_t y = J->ti[i];
        const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
        const double v = J->grad ? mm_row(J, x, y, sc, J->grad + i * C, p, 1)
                                 : mm_row(J, x, y, sc, NULL, p, 0);
        if (J->rloss)
            J->rloss[i] = v;
    }
    return 0.0;
}

AI double mm_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return J->p == 1 ? mm_body_p(J, lo, hi, 1) : mm_body_p(J, lo, hi, 2);
}
ISA_VARIANTS(mm)

double fnn_multi_margin_forward(int N, int C, const float *x, const int64_t *target,
                                const float *weight, int p, float margin, double scale,
                                float *grad, double *row_loss)
{
    job J = {0};
    J.C = C;
    J.x = x;
    J.ti = target;
    J.w = weight;
    J.p = p;
    J.margin = margin;
    J.scale = scale;
    J.grad = grad;
    J.rloss = row_loss;
    run_rows(N, (double)N * C, ROW_THRESHOLD, mm_pick(), &J);
    return sum_in_order(row_loss, N);
}

void fnn_multi_margin_backward(int N, int C, const float *x, const int64_t *target,
                               const float *weight, int p, float margin, double scale,
                               const float *row_scale, float *grad)
{
    job J = {0};
    J.C = C;
    J.x = x;
    J.ti = target;
    J.w = weight;
    J.p = p;
    J.margin = margin;
    J.scale = scale;
    J.rs = row_scale;
    J.grad = grad;
    run_rows(N, (double)N * C, ROW_THRESHOLD, mm_pick(), &J);
}

/* ---------------------------------------------------------------- MSE -- */

/* Elements [lo, hi): returns sum (x - y)^2 (float64, differences taken in
 * float64 so nothing overflows); writes elem_loss and the gradient
 * 2 (x - y) scale [* es] when asked. */
AI double mse_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const float *x = J->x, *y = J->tf;
    double s = 0.0;
    if (J->want_sum) {
        double sv[LANES] = {0};
        ptrdiff_t k = lo;
        for (; k + LANES <= hi; k += LANES)
            for (int l = 0; l < LANES; l++) {
                const double d = (double)x[k + l] - (double)y[k + l];
                sv[l] += d * d;
            }
        double t = 0.0;
        for (; k < hi; k++) {
            const double d = (double)x[k] - (double)y[k];
            t += d * d;
        }
        s = lsum_d(sv) + t;
    }
    if (J->eloss)
        for (ptrdiff_t k = lo; k < hi; k++) {
            const double d = (double)x[k] - (double)y[k];
            J->eloss[k] = (float)(d * d);
        }
    if (J->grad) {
        const double s2 = 2.0 * J->scale;
        float *g = J->grad;
        if (J->rs)
            for (ptrdiff_t k = lo; k < hi; k++)
                g[k] = (float)(((double)x[k] - (double)y[k]) * (s2 * (double)J->rs[k]));
        else
            for (ptrdiff_t k = lo; k < hi; k++)
                g[k] = (float)(((double)x[k] - (double)y[k]) * s2);
    }
    return s;
}
ISA_VARIANTS(mse)

int fnn_mse_forward(ptrdiff_t n, const float *x, const float *y, double scale,
                    float *grad, float *elem_loss, double *total)
{
    job J = {0};
    J.x = x;
    J.tf = y;
    J.scale = scale;
    J.grad = grad;
    J.eloss = elem_loss;
    J.want_sum = 1;
    return run_blocks(n, mse_pick(), &J, total);
}

void fnn_mse_backward(ptrdiff_t n, const float *x, const float *y, double scale,
                      const float *elem_scale, float *grad)
{
    job J = {0};
    J.x = x;
    J.tf = y;
    J.scale = scale;
    J.rs = elem_scale;
    J.grad = grad;
    run_blocks(n, mse_pick(), &J, NULL);
}

/* ----------------------------------------------------- BCE with logits -- */

/* One element: returns its loss (float64) and its derivative in *d. With
 * e = exp(-|x|), pos_weight p, l = 1 + (p - 1) y:
 *   loss = max(x,0) - x y + log1p(e) + (p - 1) y (max(-x,0) + log1p(e))
 *        = (1 - y) x + l softplus(-x)
 *   d    = l sigmoid(x) - p y. */
AI double bce_elem(float xv, float yv, float p, float *d)
{
    const float ax = xv < 0.0f ? -xv : xv;
    const float e = exp_nonpos(-ax);
    const float lp = log1p_unit(e);
    const double sp_neg = (double)(xv < 0.0f ? -xv : 0.0f) + (double)lp;
    const float inv = 1.0f / (1.0f + e);
    const float sig = xv >= 0.0f ? inv : e * inv;
    const float lw = 1.0f + (p - 1.0f) * yv;
    *d = lw * sig - p * yv;
    return (double)(xv > 0.0f ? xv : 0.0f) - (double)xv * (double)yv + (double)lp
           + ((double)p - 1.0) * (double)yv * sp_neg;
}

/* A run of n elements sharing the pos_weight slice pw[0..n) (has_pw 0:
 * pos_weight 1). Returns the float64 loss sum if want_sum, NaN if an x is
 * not finite or a target is outside [0, 1] (checked on the f_key scale, in
 * separate passes: one accumulator per loop keeps the loss loop vectorised).
 * The flags are constants in each instantiation, so every loop is
 * branch-free. */
AI double bce_run(const float *restrict x, const float *restrict y,
                  const float *restrict pw, ptrdiff_t n, float sc, const float *restrict es,
                  float *restrict grad, float *restrict eloss, const int has_pw,
                  const int want_sum, const int want_grad, const int has_es,
                  const int want_eloss)
{
    double sv[LANES] = {0}, ts = 0.0;
    ptrdiff_t k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int l = 0; l < LANES; l++) {
            float d;
            const double v = bce_elem(x[k + l], y[k + l], has_pw ? pw[k + l] : 1.0f, &d);
            if (want_sum)
                sv[l] += v;
            if (want_eloss)
                eloss[k + l] = (float)v;
            if (want_grad)
                grad[k + l] = d * (has_es ? sc * es[k + l] : sc);
        }
    for (; k < n; k++) {
        float d;
        const double v = bce_elem(x[k], y[k], has_pw ? pw[k] : 1.0f, &d);
        if (want_sum)
            ts += v;
        if (want_eloss)
            eloss[k] = (float)v;
        if (want_grad)
            grad[k] = d * (has_es ? sc * es[k] : sc);
    }
    if (!want_sum || n == 0)
        return 0.0;
    int32_t xhi, xlo, yhi, ylo;
    key_range(x, n, &xhi, &xlo);
    key_range(y, n, &yhi, &ylo);
    const int ok = xhi <= KEY_FLT_MAX && xlo >= KEY_NEG_FLT_MAX && yhi <= KEY_ONE
                   && ylo >= KEY_NEG_ZERO;
    return ok ? lsum_d(sv) + ts : NAN;
}

/* Elements [lo, hi) in runs that do not cross a pos_weight period. Modes:
 * forward sum / sum + grad / sum + elem_loss; backward grad / grad * es. */
AI double bce_body_pw(const job *J, ptrdiff_t lo, ptrdiff_t hi, const int has_pw)
{
    const float sc = (float)J->scale;
    const int fwd = J->want_sum;
    double s = 0.0;
    ptrdiff_t k = lo;
    while (k < hi) {
        ptrdiff_t end = hi;
        const float *pw = NULL;
        if (has_pw) {
            const ptrdiff_t c = k % J->C;
            end = k - c + J->C < hi ? k - c + J->C : hi;
            pw = J->w + c;
        }
        const float *x = J->x + k, *y = J->tf + k;
        const ptrdiff_t n = end - k;
        float *g = J->grad ? J->grad + k : NULL;
        if (fwd) {
            if (J->eloss)
                s += bce_run(x, y, pw, n, sc, NULL, NULL, J->eloss + k, has_pw, 1, 0, 0, 1);
            else if (g)
                s += bce_run(x, y, pw, n, sc, NULL, g, NULL, has_pw, 1, 1, 0, 0);
            else
                s += bce_run(x, y, pw, n, sc, NULL, NULL, NULL, has_pw, 1, 0, 0, 0);
        } else if (J->rs) {
            bce_run(x, y, pw, n, sc, J->rs + k, g, NULL, has_pw, 0, 1, 1, 0);
        } else {
            bce_run(x, y, pw, n, sc, NULL, g, NULL, has_pw, 0, 1, 0, 0);
        }
        k = end;
    }
    return s;
}

AI double bce_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return J->w ? bce_body_pw(J, lo, hi, 1) : bce_body_pw(J, lo, hi, 0);
}
ISA_VARIANTS(bce)

int fnn_bce_logits_forward(ptrdiff_t n, const float *x, const float *y,
                           const float *pos_weight, ptrdiff_t C, double scale,
                           float *grad, float *elem_loss, double *total)
{
    job J = {0};
    J.C = (int)C;
    J.x = x;
    J.tf = y;
    J.w = pos_weight;
    J.scale = scale;
    J.grad = elem_loss ? NULL : grad;   /* at most one of the two (fastnn.h) */
    J.eloss = elem_loss;
    J.want_sum = 1;
    return run_blocks(n, bce_pick(), &J, total);
}

void fnn_bce_logits_backward(ptrdiff_t n, const float *x, const float *y,
                             const float *pos_weight, ptrdiff_t C, double scale,
                             const float *elem_scale, float *grad)
{
    job J = {0};
    J.C = (int)C;
    J.x = x;
    J.tf = y;
    J.w = pos_weight;
    J.scale = scale;
    J.rs = elem_scale;
    J.grad = grad;
    run_blocks(n, bce_pick(), &J, NULL);
}
