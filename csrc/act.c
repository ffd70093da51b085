/* act.c -- activation functions, forward and backward.
 *
 * Elementwise kernels treat their arrays as n contiguous floats (any tensor
 * shape, flattened); softmax/log-softmax work row by row over the last axis;
 * maxout reduces groups of `pieces` consecutive floats.
 *
 * The transcendental functions are our own branch-free float32 versions
 * (exp, expm1, log1p, tanh and the normal CDF below), written as plain
 * arithmetic on floats and their bit patterns so that the compiler vectorises
 * every loop. libm's scalar erff/tanhf/log1pf cost 15-45 ns per element here
 * and would make GELU or Softplus 20x slower than ReLU. Their accuracy is
 * tested in tests/test_activation.py against float64 references over dense
 * grids (fnn_act_mathfn below exposes them for that).
 *
 * Each loop body is compiled three times, for the baseline (SSE2), AVX2 and
 * AVX-512 (function attributes, chosen with fnn_get_isa()). The build uses
 * -ffp-contract=off and no -ffast-math, so every path performs the same IEEE
 * operations in the same order: results are bitwise identical across ISA
 * paths and thread counts (elementwise work needs no reduction; row
 * reductions use fixed lanes combined in a fixed order, one row per thread).
 */
/* GCC will not if-convert a float compare-and-select under the default
 * -ftrapping-math when the target lacks quiet ordered compares (SSE2): every
 * select below would stay a branch. We never read the FP exception flags,
 * and the values computed are the same. (Clang ignores FP exceptions by
 * default.) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "fastnn.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define ACT_MULTI_ISA 1
#define T_AVX2 __attribute__((target("avx2,fma")))
#if defined(__clang__)
#define T_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#else
#define T_AVX512 \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")))
#endif
#endif

/* ------------------------------------------------- float32 math, vectorisable -- */

static ALWAYS_INLINE uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static ALWAYS_INLINE float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define LOG2E 1.44269502f
#define LN2_HI 0.693359375f          /* 9 significant bits: n * LN2_HI is exact */
#define LN2_LO -2.12194440e-4f       /* ln 2 - LN2_HI */
#define RSHIFT 12582912.0f           /* 1.5 * 2^23: x + RSHIFT rounds x to an integer */

/* expm1(r) = r + r^2 P(r) on |r| <= 0.35, relative error 1.4e-8 (minimax fit). */
static ALWAYS_INLINE float em_poly(float r)
{
    float p = 0.00138823967f;
    p = p * r + 0.00836717337f;
    p = p * r + 0.0416672193f;
    p = p * r + 0.16666539f;
    p = p * r + 0.49999997f;
    return r + (r * r) * p;
}

/* Results below 2^-126 (e^-87.3) are subnormal, and the kernels run with
 * flush-to-zero: they return 0 instead (one scale step, no gradual underflow). */
#define EXP_MIN_ARG -87.6f          /* round(x log2 e) >= -126 above this */

/* e^(hi + lo) for hi + lo <= 0 (or NaN), |lo| small: the argument is
 * reduced as (hi - n ln2) + lo so that hi may carry an exact large part. */
static ALWAYS_INLINE float exp_neg2(float hi, float lo)
{
    int tiny = hi < EXP_MIN_ARG;                /* false for NaN; hi = -inf takes
                                                 * an inf or NaN lo with it */
    hi = tiny ? 0.0f : hi;
    lo = tiny ? 0.0f : lo;
    float t = (hi + lo) * LOG2E + RSHIFT;
    float n = t - RSHIFT;                       /* round((hi+lo) log2 e), in [-126, 0] */
    int32_t ni = (int32_t)(f2u(t) - f2u(RSHIFT));
    float r = hi - n * LN2_HI;
    r = r + lo;
    r = r - n * LN2_LO;
    float p = 1.0f + em_poly(r);
    float y = p * u2f(((uint32_t)ni + 127u) << 23);
    return tiny ? 0.0f : y;
}

/* e^x for x <= 0 (or NaN). */
static ALWAYS_INLINE float exp_neg(float x)
{
    int tiny = x < EXP_MIN_ARG;
    x = tiny ? 0.0f : x;
    float t = x * LOG2E + RSHIFT;
    float n = t - RSHIFT;
    int32_t ni = (int32_t)(f2u(t) - f2u(RSHIFT));
    float r = x - n * LN2_HI;
    r = r - n * LN2_LO;
    float p = 1.0f + em_poly(r);
    float y = p * u2f(((uint32_t)ni + 127u) << 23);
    return tiny ? 0.0f : y;
}

/* e^x - 1 for x <= 0 (or NaN), accurate near 0: 2^n expm1(r) + (2^n - 1). */
static ALWAYS_INLINE float expm1_neg(float x)
{
    x = x < -30.0f ? -30.0f : x;                /* expm1(-30) rounds to -1 */
    float t = x * LOG2E + RSHIFT;
    float n = t - RSHIFT;                       /* in [-44, 0] */
    int32_t ni = (int32_t)(f2u(t) - f2u(RSHIFT));
    float r = x - n * LN2_HI;
    r = r - n * LN2_LO;
    float s = u2f(((uint32_t)ni + 127u) << 23);
    return s * em_poly(r) + (s - 1.0f);
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3],
 * = 2s + s^3 L(s^2), L a minimax fit (relative error 4.5e-9). */
static ALWAYS_INLINE float log1p_01(float e)
{
    float s = e / (2.0f + e);
    float s2 = s * s;
    float p = 0.280119836f;
    p = p * s2 + 0.280018061f;
    p = p * s2 + 0.400215268f;
    p = p * s2 + 0.666664183f;
    return 2.0f * s + (s * s2) * p;
}

/* tanh(x) = sign(x) * -m / (2 + m), m = expm1(-2|x|): no cancellation near
 * 0, exactly +-1 for |x| > 9.1. */
static ALWAYS_INLINE float tanh_v(float x)
{
    float m = expm1_neg(-2.0f * fabsf(x));
    return copysignf(-m / (2.0f + m), x);
}

/* 1 / (1 + e^-x), from e^-|x| so nothing overflows. */
static ALWAYS_INLINE float sigmoid_v(float x)
{
    float e = exp_neg(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;               /* NaN: e * s = NaN */
}

/* e^(-x^2/2) with x^2 split exactly: x = h + l, h with 12 significant bits,
 * so h^2 / 2 is exact and the rest is small. */
static ALWAYS_INLINE float gauss_v(float a /* |x| */)
{
    float h = u2f(f2u(a) & 0xFFFFF000u);
    float l = a - h;
    float hi = -0.5f * (h * h);
    float lo = -0.5f * (l * (a + h));
    return exp_neg2(hi, lo);
}

/* Mills-type ratio R(a) = Phi(-a) e^(a^2/2) for a >= 0: a rational minimax
 * fit with positive coefficients on [0, 14] (relative error 5.5e-9). */
static ALWAYS_INLINE float mills_v(float a)
{
    a = a > 16.0f ? 16.0f : a;                  /* beyond 14, e^(-a^2/2) is 0 */
    float p = 0.00407701731f;
    p = p * a + 0.040368855f;
    p = p * a + 0.182451323f;
    p = p * a + 0.437237442f;
    p = p * a + 0.5f;
    float q = 0.010219438f;
    q = q * a + 0.101196527f;
    q = q * a + 0.467401236f;
    q = q * a + 1.19924819f;
    q = q * a + 1.67235982f;
    q = q * a + 1.0f;
    return p / q;
}

#define INV_SQRT_2PI 0.398942280f

/* Standard normal CDF Phi(x) and, through *pdf, the density phi(x). The lower
 * tail Phi(-|x|) = e^(-x^2/2) R(|x|) keeps its relative accuracy down to the
 * underflow threshold (x ~ -14); Phi(x) = 1 - Phi(-x) above 0. */
static ALWAYS_INLINE float ncdf_v(float x, float *pdf)
{
    float a = fabsf(x);
    float g = gauss_v(a);
    float q = g * mills_v(a);
    *pdf = g * INV_SQRT_2PI;
    return x < 0.0f ? q : 1.0f - q;             /* NaN: 1 - NaN */
}

/* ----------------------------------------------------- dispatch and threads -- */

typedef struct {
    const float *x;     /* forward input, or the array backward tests on */
    const float *y;     /* forward output (backward) */
    const float *dy;    /* gradient of the output (backward) */
    float *out;         /* y (forward) or dx (backward) */
    int32_t *idx;       /* maxout argmax */
    float a, b;         /* scalar parameters */
    ptrdiff_t cols;     /* row length (softmax), pieces (maxout) */
    int fn;             /* fnn_act_mathfn selector */
} act_args;

typedef void (*chunk_fn)(const act_args *A, ptrdiff_t lo, ptrdiff_t hi);

/* name##_body(A, lo, hi) compiled for each instruction-set path. */
#ifdef ACT_MULTI_ISA
#define CLONES(name)                                                            \
    static void name##_ref(const act_args *A, ptrdiff_t lo, ptrdiff_t hi)      \
    { name##_body(A, lo, hi); }                                                 \
    T_AVX2 static void name##_avx2(const act_args *A, ptrdiff_t lo, ptrdiff_t hi) \
    { name##_body(A, lo, hi); }                                                 \
    T_AVX512 static void name##_avx512(const act_args *A, ptrdiff_t lo, ptrdiff_t hi) \
    { name##_body(A, lo, hi); }                                                 \
    static const chunk_fn name##_fns[3] = {name##_ref, name##_avx2, name##_avx512};
#else
#define CLONES(name)                                                            \
    static void name##_ref(const act_args *A, ptrdiff_t lo, ptrdiff_t hi)      \
    { name##_body(A, lo, hi); }                                                 \
    static const chunk_fn name##_fns[3] = {name##_ref, name##_ref, name##_ref};
#endif

/* Below this much work per thread (in units of one ReLU element), one thread. */
#define ACT_THRESHOLD 32768.0

/* Split [0, n) units into equal static ranges (multiples of `align` units)
 * over the threads; `cost` is the work of one unit. */
static void run(const chunk_fn *fns, const act_args *A, ptrdiff_t n, double cost,
                ptrdiff_t align)
{
    if (n <= 0)
        return;
    chunk_fn f = fns[fnn_get_isa()];
    int nt = fnn_threads_for((double)n * cost, ACT_THRESHOLD);
    if (nt <= 1) {
        unsigned s = fnn_ftz_enter();
        f(A, 0, n);
        fnn_ftz_leave(s);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        ptrdiff_t have = omp_get_num_threads(), me = omp_get_thread_num();
        ptrdiff_t step = (n + have - 1) / have;
        step = (step + align - 1) / align * align;
        ptrdiff_t lo = me * step < n ? me * step : n;
        ptrdiff_t hi = lo + step < n ? lo + step : n;
        if (lo < hi) {
            unsigned s = fnn_ftz_enter();
            f(A, lo, hi);
            fnn_ftz_leave(s);
        }
    }
#endif
}

#define ELEM_ALIGN 16   /* elements: thread ranges start on a 64-byte boundary */

/* out[i] = EXPR(v) with v = x[i]; out may be x itself (in place). */
#define MAP_X(EXPR)                                                             \
    do {                                                                        \
        if (A->out == A->x) {                                                   \
            float *io = A->out;                                                 \
            for (ptrdiff_t i = lo; i < hi; i++) {                               \
                float v = io[i];                                                \
                io[i] = (EXPR);                                                 \
            }                                                                   \
        } else {                                                                \
            const float *restrict xs = A->x;                                    \
            float *restrict o = A->out;                                         \
            for (ptrdiff_t i = lo; i < hi; i++) {                               \
                float v = xs[i];                                                \
                o[i] = (EXPR);                                                  \
            }                                                                   \
        }                                                                       \
    } while (0)

/* out[i] = EXPR(v, g) with v = x[i] (the cached array), g = dy[i]; out may be
 * dy itself. */
#define MAP_XG(EXPR)                                                            \
    do {                                                                        \
        const float *restrict xs = A->x;                                        \
        if (A->out == A->dy) {                                                  \
            float *restrict io = A->out;                                        \
            for (ptrdiff_t i = lo; i < hi; i++) {                               \
                float v = xs[i], g = io[i];                                     \
                io[i] = (EXPR);                                                 \
            }                                                                   \
        } else {                                                                \
            const float *restrict gs = A->dy;                                   \
            float *restrict o = A->out;                                         \
            for (ptrdiff_t i = lo; i < hi; i++) {                               \
                float v = xs[i], g = gs[i];                                     \
                o[i] = (EXPR);                                                  \
            }                                                                   \
        }                                                                       \
    } while (0)

#define ELEMENTWISE(name, MAP, EXPR)                                            \
    static ALWAYS_INLINE void name##_body(const act_args *A, ptrdiff_t lo, ptrdiff_t hi) \
    {                                                                           \
        const float pa = A->a, pb = A->b;                                       \
        (void)pa;                                                               \
        (void)pb;                                                               \
        MAP(EXPR);                                                              \
    }                                                                           \
    CLONES(name)

/* ------------------------------------------------------ elementwise kernels -- */

/* Each expression below is written with v the input element (x in forward;
 * the cached array in backward), g the output gradient, pa/pb the parameters. */

ELEMENTWISE(relu_fwd, MAP_X, v < 0.0f ? 0.0f : v)                 /* NaN -> NaN */
ELEMENTWISE(relu_bwd, MAP_XG, v > 0.0f ? g : 0.0f)                /* v = y */

ELEMENTWISE(leaky_fwd, MAP_X, v > 0.0f ? v : v * pa)
ELEMENTWISE(leaky_bwd, MAP_XG, v > 0.0f ? g : g * pa)             /* v = x, or y if pa >= 0 */

ELEMENTWISE(sigmoid_fwd, MAP_X, sigmoid_v(v))
ELEMENTWISE(sigmoid_bwd, MAP_XG, (g * v) * (1.0f - v))            /* v = y */

ELEMENTWISE(tanh_fwd, MAP_X, tanh_v(v))
ELEMENTWISE(tanh_bwd, MAP_XG, g * (1.0f - v * v))                 /* v = y */

/* hardtanh: pa = min_val, pb = max_val; v = x or y (same open interval). */
ELEMENTWISE(hardtanh_fwd, MAP_X, v < pa ? pa : (v > pb ? pb : v))
ELEMENTWISE(hardtanh_bwd, MAP_XG, (v > pa && v < pb) ? g : 0.0f)

/* softplus: pa = beta, pb = threshold. (max(z, 0) + log1p(e^-|z|)) / beta. */
static ALWAYS_INLINE float softplus_v(float v, float beta, float threshold)
{
    float z = v * beta;
    float l = log1p_01(exp_neg(-fabsf(z)));
    float y = ((z > 0.0f ? z : 0.0f) + l) / beta;
    return z > threshold ? v : y;
}
ELEMENTWISE(softplus_fwd, MAP_X, softplus_v(v, pa, pb))
ELEMENTWISE(softplus_bwd, MAP_XG, v * pa > pb ? g : g * sigmoid_v(v * pa))   /* v = x */

/* GELU, exact: x Phi(x); d/dx = Phi(x) + x phi(x). */
static ALWAYS_INLINE float gelu_v(float v)
{
    float pdf;
    return v * ncdf_v(v, &pdf);
}
static ALWAYS_INLINE float gelu_grad_v(float v)
{
    float pdf;
    float cdf = ncdf_v(v, &pdf);
    return cdf + v * pdf;
}
ELEMENTWISE(gelu_fwd, MAP_X, gelu_v(v))
ELEMENTWISE(gelu_bwd, MAP_XG, g * gelu_grad_v(v))                 /* v = x */

/* GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = k (x + c x^3), computed
 * as x sigmoid(2u) (the same function) so the negative tail keeps its
 * relative accuracy instead of cancelling in 1 + tanh(u). */
#define GELU_K 0.797884561f         /* sqrt(2 / pi) */
#define GELU_C 0.044715f
static ALWAYS_INLINE float gelu_tanh_v(float v)
{
    float a = 2.0f * (GELU_K * (v + GELU_C * (v * v * v)));
    return v * sigmoid_v(a);
}
/* d/dx = s + x s (1 - s) 2k (1 + 3c x^2), s = sigmoid(2u); 1 - s comes from
 * the same e^-|2u| so it does not cancel either. */
static ALWAYS_INLINE float gelu_tanh_grad_v(float v)
{
    float a = 2.0f * (GELU_K * (v + GELU_C * (v * v * v)));
    float e = exp_neg(-fabsf(a));
    float r = 1.0f / (1.0f + e);
    float s = a >= 0.0f ? r : e * r;
    float sc = a >= 0.0f ? e * r : r;           /* 1 - s */
    /* s (1 - s) is exactly 0 beyond |x| ~ 10; clamping keeps x^2 finite there
     * so 0 * inf cannot make a NaN. */
    float c = v < -100.0f ? -100.0f : (v > 100.0f ? 100.0f : v);
    float inner = (2.0f * GELU_K) * (1.0f + (3.0f * GELU_C) * (c * c));
    return s + ((c * s) * sc) * inner;
}
ELEMENTWISE(gelu_tanh_fwd, MAP_X, gelu_tanh_v(v))
ELEMENTWISE(gelu_tanh_bwd, MAP_XG, g * gelu_tanh_grad_v(v))       /* v = x */

/* ELU: alpha (e^x - 1) for x <= 0. */
ELEMENTWISE(elu_fwd, MAP_X, v > 0.0f ? v : pa * expm1_neg(v))

/* ELU backward: test the sign on A->x (x, or y when alpha >= 0), slope from y:
 * alpha e^x = y + alpha. */
static ALWAYS_INLINE void elu_bwd_body(const act_args *A, ptrdiff_t lo, ptrdiff_t hi)
{
    const float alpha = A->a;
    const float *r = A->x, *y = A->y, *dy = A->dy;
    float *dx = A->out;
    if (dx == dy) {
        const float *restrict rr = r, *restrict yr = y;
        float *restrict io = dx;
        for (ptrdiff_t i = lo; i < hi; i++) {
            float g = io[i], s = g * (yr[i] + alpha);
            io[i] = rr[i] > 0.0f ? g : s;
        }
    } else {
        const float *restrict rr = r, *restrict yr = y, *restrict gs = dy;
        float *restrict o = dx;
        for (ptrdiff_t i = lo; i < hi; i++) {
            float g = gs[i], s = g * (yr[i] + alpha);
            o[i] = rr[i] > 0.0f ? g : s;
        }
    }
}
CLONES(elu_bwd)

/* ----------------------------------------------------- row kernels (softmax) -- */

/* Row reductions keep independent lanes (so the loops vectorise without
 * reassociating anything) combined in a fixed order at the end: MLANES floats
 * for the max, SLANES doubles for sums. Enough lanes to hide the add/max
 * latency with 512-bit vectors; the answer does not depend on the ISA path. */
#define MLANES 64
#define SLANES 32

/* Largest element (NaNs are skipped; a NaN still poisons the row sum). */
static ALWAYS_INLINE float row_max(const float *restrict x, ptrdiff_t n)
{
    float m[MLANES];
    for (int j = 0; j < MLANES; j++)
        m[j] = -INFINITY;
    ptrdiff_t i = 0;
    for (; i + MLANES <= n; i += MLANES)
        for (int j = 0; j < MLANES; j++)
            m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (int j = 0; i < n; i++, j++)
        m[j] = x[i] > m[j] ? x[i] : m[j];
    for (int w = MLANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            m[j] = m[j + w] > m[j] ? m[j + w] : m[j];
    return m[0];
}

/* Pairwise combination of the lanes, in a fixed order. */
static ALWAYS_INLINE double combine(double *a)
{
    for (int w = SLANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            a[j] = a[j] + a[j + w];
    return a[0];
}

/* sum(a) in float64, fixed lanes and order. */
static ALWAYS_INLINE double row_sum(const float *restrict a, ptrdiff_t n)
{
    double acc[SLANES] = {0};
    ptrdiff_t i = 0;
    for (; i + SLANES <= n; i += SLANES)
        for (int j = 0; j < SLANES; j++)
            acc[j] += (double)a[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += (double)a[i];
    return combine(acc);
}

/* sum(a * b) in float64 (products exact), fixed lanes and order. */
static ALWAYS_INLINE double row_dot(const float *restrict a, const float *restrict b, ptrdiff_t n)
{
    double acc[SLANES] = {0};
    ptrdiff_t i = 0;
    for (; i + SLANES <= n; i += SLANES)
        for (int j = 0; j < SLANES; j++)
            acc[j] += (double)a[i + j] * (double)b[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += (double)a[i] * (double)b[i];
    return combine(acc);
}

static ALWAYS_INLINE void softmax_fwd_body(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *restrict x = A->x + r * n;
        float *restrict y = A->out + r * n;
        const float m = row_max(x, n);
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = exp_neg(x[i] - m);
        const float inv = (float)(1.0 / row_sum(y, n));
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = y[i] * inv;
    }
}
CLONES(softmax_fwd)

static ALWAYS_INLINE void log_softmax_fwd_body(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *restrict x = A->x + r * n;
        float *restrict y = A->out + r * n;
        const float m = row_max(x, n);
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = exp_neg(x[i] - m);           /* scratch: the row's exponentials */
        const float lse = (float)log(row_sum(y, n));
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = (x[i] - m) - lse;
    }
}
CLONES(log_softmax_fwd)

/* dx = y (dy - sum(dy y)) */
static ALWAYS_INLINE void softmax_bwd_body(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *restrict y = A->y + r * n;
        const float *restrict g = A->dy + r * n;
        float *restrict dx = A->out + r * n;
        const float d = (float)row_dot(g, y, n);
        for (ptrdiff_t i = 0; i < n; i++)
            dx[i] = y[i] * (g[i] - d);
    }
}
CLONES(softmax_bwd)

/* dx = dy - e^y sum(dy) */
static ALWAYS_INLINE void log_softmax_bwd_body(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *restrict y = A->y + r * n;
        const float *restrict g = A->dy + r * n;
        float *restrict dx = A->out + r * n;
        const float s = (float)row_sum(g, n);
        for (ptrdiff_t i = 0; i < n; i++)
            dx[i] = g[i] - exp_neg(y[i]) * s;
    }
}
CLONES(log_softmax_bwd)

/* ------------------------------------------------------------------ maxout -- */

static ALWAYS_INLINE void maxout_fwd_body(const act_args *A, ptrdiff_t g0, ptrdiff_t g1)
{
    const ptrdiff_t p = A->cols;
    const float *restrict x = A->x;
    float *restrict y = A->out;
    int32_t *restrict idx = A->idx;
    for (ptrdiff_t g = g0; g < g1; g++) {
        const float *xg = x + g * p;
        float best = xg[0];
        int32_t k = 0;
        for (ptrdiff_t j = 1; j < p; j++) {
            float v = xg[j];
            /* strictly larger wins (ties go to the first); the first NaN wins
             * and stays */
            if (best == best && !(v <= best)) {
                best = v;
                k = (int32_t)j;
            }
        }
        y[g] = best;
        idx[g] = k;
    }
}
CLONES(maxout_fwd)

static ALWAYS_INLINE void maxout_bwd_body(const act_args *A, ptrdiff_t g0, ptrdiff_t g1)
{
    const ptrdiff_t p = A->cols;
    const float *restrict dy = A->dy;
    const int32_t *restrict idx = A->idx;
    float *restrict dx = A->out;
    for (ptrdiff_t g = g0; g < g1; g++) {
        const float d = dy[g];
        const int32_t k = idx[g];
        float *dg = dx + g * p;
        for (ptrdiff_t j = 0; j < p; j++)
            dg[j] = j == k ? d : 0.0f;
    }
}
CLONES(maxout_bwd)

/* ----------------------------------------------------------- test access -- */

static ALWAYS_INLINE void mathfn_body(const act_args *A, ptrdiff_t lo, ptrdiff_t hi)
{
    const float *restrict x = A->x;
    float *restrict y = A->out;
    float pdf;
    switch (A->fn) {
    case 0: for (ptrdiff_t i = lo; i < hi; i++) y[i] = exp_neg(x[i]); break;
    case 1: for (ptrdiff_t i = lo; i < hi; i++) y[i] = expm1_neg(x[i]); break;
    case 2: for (ptrdiff_t i = lo; i < hi; i++) y[i] = log1p_01(x[i]); break;
    case 3: for (ptrdiff_t i = lo; i < hi; i++) y[i] = tanh_v(x[i]); break;
    case 4: for (ptrdiff_t i = lo; i < hi; i++) y[i] = ncdf_v(x[i], &pdf); break;
    case 5: for (ptrdiff_t i = lo; i < hi; i++) { ncdf_v(x[i], &pdf); y[i] = pdf; } break;
    case 6: for (ptrdiff_t i = lo; i < hi; i++) y[i] = sigmoid_v(x[i]); break;
    default: break;
    }
}
CLONES(mathfn)

/* ------------------------------------------------------------- public API -- */

/* Relative work of one element, in ReLU elements (for the thread decision). */
#define COST_CHEAP 1.0
#define COST_EXP 6.0
#define COST_GELU 12.0

void fnn_relu_forward(ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(relu_fwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_relu_backward(ptrdiff_t n, const float *y, const float *dy, float *dx)
{
    act_args A = {.x = y, .dy = dy, .out = dx};
    run(relu_bwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_leaky_relu_forward(ptrdiff_t n, float negative_slope, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = negative_slope};
    run(leaky_fwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_leaky_relu_backward(ptrdiff_t n, float negative_slope, const float *ref,
                             const float *dy, float *dx)
{
    act_args A = {.x = ref, .dy = dy, .out = dx, .a = negative_slope};
    run(leaky_bwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_sigmoid_forward(ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(sigmoid_fwd_fns, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_sigmoid_backward(ptrdiff_t n, const float *y, const float *dy, float *dx)
{
    act_args A = {.x = y, .dy = dy, .out = dx};
    run(sigmoid_bwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_tanh_forward(ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(tanh_fwd_fns, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_tanh_backward(ptrdiff_t n, const float *y, const float *dy, float *dx)
{
    act_args A = {.x = y, .dy = dy, .out = dx};
    run(tanh_bwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_softplus_forward(ptrdiff_t n, float beta, float threshold, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = beta, .b = threshold};
    run(softplus_fwd_fns, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_softplus_backward(ptrdiff_t n, float beta, float threshold, const float *x,
                           const float *dy, float *dx)
{
    act_args A = {.x = x, .dy = dy, .out = dx, .a = beta, .b = threshold};
    run(softplus_bwd_fns, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_hardtanh_forward(ptrdiff_t n, float min_val, float max_val, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = min_val, .b = max_val};
    run(hardtanh_fwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_hardtanh_backward(ptrdiff_t n, float min_val, float max_val, const float *ref,
                           const float *dy, float *dx)
{
    act_args A = {.x = ref, .dy = dy, .out = dx, .a = min_val, .b = max_val};
    run(hardtanh_bwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_elu_forward(ptrdiff_t n, float alpha, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = alpha};
    run(elu_fwd_fns, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_elu_backward(ptrdiff_t n, float alpha, const float *ref, const float *y,
                      const float *dy, float *dx)
{
    act_args A = {.x = ref, .y = y, .dy = dy, .out = dx, .a = alpha};
    run(elu_bwd_fns, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_gelu_forward(ptrdiff_t n, int approximate_tanh, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(approximate_tanh ? gelu_tanh_fwd_fns : gelu_fwd_fns, &A, n, COST_GELU, ELEM_ALIGN);
}

void fnn_gelu_backward(ptrdiff_t n, int approximate_tanh, const float *x, const float *dy,
                       float *dx)
{
    act_args A = {.x = x, .dy = dy, .out = dx};
    run(approximate_tanh ? gelu_tanh_bwd_fns : gelu_bwd_fns, &A, n, COST_GELU, ELEM_ALIGN);
}

void fnn_softmax_forward(ptrdiff_t rows, ptrdiff_t cols, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .cols = cols};
    run(softmax_fwd_fns, &A, rows, COST_EXP * (double)cols, 1);
}

void fnn_softmax_backward(ptrdiff_t rows, ptrdiff_t cols, const float *y, const float *dy,
                          float *dx)
{
    act_args A = {.y = y, .dy = dy, .out = dx, .cols = cols};
    run(softmax_bwd_fns, &A, rows, 2.0 * (double)cols, 1);
}

void fnn_log_softmax_forward(ptrdiff_t rows, ptrdiff_t cols, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .cols = cols};
    run(log_softmax_fwd_fns, &A, rows, COST_EXP * (double)cols, 1);
}

void fnn_log_softmax_backward(ptrdiff_t rows, ptrdiff_t cols, const float *y,
                              const float *dy, float *dx)
{
    act_args A = {.y = y, .dy = dy, .out = dx, .cols = cols};
    run(log_softmax_bwd_fns, &A, rows, COST_EXP * (double)cols, 1);
}

void fnn_maxout_forward(ptrdiff_t groups, ptrdiff_t pieces, const float *x, float *y,
                        int32_t *idx)
{
    act_args A = {.x = x, .out = y, .idx = idx, .cols = pieces};
    run(maxout_fwd_fns, &A, groups, (double)pieces, ELEM_ALIGN);
}

void fnn_maxout_backward(ptrdiff_t groups, ptrdiff_t pieces, const int32_t *idx,
                         const float *dy, float *dx)
{
    act_args A = {.dy = dy, .out = dx, .idx = (int32_t *)idx, .cols = pieces};
    run(maxout_bwd_fns, &A, groups, (double)pieces, ELEM_ALIGN);
}

void fnn_act_mathfn(int fn, ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .fn = fn};
    run(mathfn_fns, &A, n, COST_GELU, ELEM_ALIGN);
}
