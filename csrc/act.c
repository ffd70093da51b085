/* act.c -- activation functions, forward and backward.
 *
 * Elementwise kernels treat their arrays as n contiguous floats (any tensor
 * shape, flattened); softmax/log-softmax work row by row over the last axis;
 * maxout reduces groups of `pieces` consecutive floats.
 *
 * On the one runtime: the transcendental functions come from fmath.h (shared
 * with the losses; fnn_act_mathfn below exposes them to the accuracy tests),
 * every loop body is compiled per ISA path by isa.h and run by parallel.h's
 * fnn_parallel_for (FTZ, thread count, fixed partition), row sums use
 * reduce.h. Every path performs the same IEEE operations in the same order:
 * results are bitwise identical across ISA paths and thread counts
 * (elementwise work needs no reduction; row reductions use fixed lanes
 * combined in a fixed order, one row per thread).
 */
#include "fmath.h"
#include "parallel.h"
#include "reduce.h"

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

/* NAME##_impl(A, lo, hi) as a fnn_parallel_for body, compiled per ISA path
 * (isa.h). */
#define KERNEL(name)                                                            \
    FNN_INLINE int name##_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part) \
    {                                                                           \
        (void)part;                                                             \
        name##_impl((const act_args *)ctx, lo, hi);                             \
        return 0;                                                               \
    }                                                                           \
    FNN_RANGE_CLONES(name)

/* [0, n) units of `cost` ReLU elements each, in parts on `align` units. */
static void run(int (*const *isa)(void *, ptrdiff_t, ptrdiff_t, int), const act_args *A,
                ptrdiff_t n, double cost, ptrdiff_t align)
{
    fnn_parallel_for(n, align, (double)n * cost * FNN_COST_ELEM, isa[fnn_get_isa()],
                     (void *)A);
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
    FNN_INLINE void name##_impl(const act_args *A, ptrdiff_t lo, ptrdiff_t hi) \
    {                                                                           \
        const float pa = A->a, pb = A->b;                                       \
        (void)pa;                                                               \
        (void)pb;                                                               \
        MAP(EXPR);                                                              \
    }                                                                           \
    KERNEL(name)

/* ------------------------------------------------------ elementwise kernels -- */

/* Each expression below is written with v the input element (x in forward;
 * the cached array in backward), g the output gradient, pa/pb the parameters. */

ELEMENTWISE(relu_fwd, MAP_X, v < 0.0f ? 0.0f : v)                 /* NaN -> NaN */
ELEMENTWISE(relu_bwd, MAP_XG, v > 0.0f ? g : 0.0f)                /* v = y */

ELEMENTWISE(leaky_fwd, MAP_X, v > 0.0f ? v : v * pa)
ELEMENTWISE(leaky_bwd, MAP_XG, v > 0.0f ? g : g * pa)             /* v = x, or y if pa >= 0 */

ELEMENTWISE(sigmoid_fwd, MAP_X, fnn_sigmoid(v))
ELEMENTWISE(sigmoid_bwd, MAP_XG, (g * v) * (1.0f - v))            /* v = y */

ELEMENTWISE(tanh_fwd, MAP_X, fnn_tanh(v))
ELEMENTWISE(tanh_bwd, MAP_XG, g * (1.0f - v * v))                 /* v = y */

/* hardtanh: pa = min_val, pb = max_val; v = x or y (same open interval). */
ELEMENTWISE(hardtanh_fwd, MAP_X, v < pa ? pa : (v > pb ? pb : v))
ELEMENTWISE(hardtanh_bwd, MAP_XG, (v > pa && v < pb) ? g : 0.0f)

/* softplus: pa = beta, pb = threshold. (max(z, 0) + log1p(e^-|z|)) / beta. */
FNN_INLINE float softplus_v(float v, float beta, float threshold)
{
    float z = v * beta;
    float l = fnn_log1p_01(fnn_exp_neg(-fabsf(z)));
    float y = ((z > 0.0f ? z : 0.0f) + l) / beta;
    return z > threshold ? v : y;
}
ELEMENTWISE(softplus_fwd, MAP_X, softplus_v(v, pa, pb))
ELEMENTWISE(softplus_bwd, MAP_XG, v * pa > pb ? g : g * fnn_sigmoid(v * pa))   /* v = x */

/* GELU, exact: x Phi(x); d/dx = Phi(x) + x phi(x). */
FNN_INLINE float gelu_v(float v)
{
    float pdf;
    return v * fnn_ncdf(v, &pdf);
}
FNN_INLINE float gelu_grad_v(float v)
{
    float pdf;
    float cdf = fnn_ncdf(v, &pdf);
    return cdf + v * pdf;
}
ELEMENTWISE(gelu_fwd, MAP_X, gelu_v(v))
ELEMENTWISE(gelu_bwd, MAP_XG, g * gelu_grad_v(v))                 /* v = x */

/* GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = k (x + c x^3), computed
 * as x sigmoid(2u) (the same function) so the negative tail keeps its
 * relative accuracy instead of cancelling in 1 + tanh(u). */
#define GELU_K 0.797884561f         /* sqrt(2 / pi) */
#define GELU_C 0.044715f
FNN_INLINE float gelu_tanh_v(float v)
{
    float a = 2.0f * (GELU_K * (v + GELU_C * (v * v * v)));
    return v * fnn_sigmoid(a);
}
/* d/dx = s + x s (1 - s) 2k (1 + 3c x^2), s = sigmoid(2u); 1 - s comes from
 * the same e^-|2u| so it does not cancel either. */
FNN_INLINE float gelu_tanh_grad_v(float v)
{
    float a = 2.0f * (GELU_K * (v + GELU_C * (v * v * v)));
    float e = fnn_exp_neg(-fabsf(a));
    float s = fnn_sigmoid_e(a, e);
    float sc = fnn_sigmoid_e(-a, e);            /* 1 - s, from the same e */
    /* s (1 - s) is exactly 0 beyond |x| ~ 10; clamping keeps x^2 finite there
     * so 0 * inf cannot make a NaN. */
    float c = v < -100.0f ? -100.0f : (v > 100.0f ? 100.0f : v);
    float inner = (2.0f * GELU_K) * (1.0f + (3.0f * GELU_C) * (c * c));
    return s + ((c * s) * sc) * inner;
}
ELEMENTWISE(gelu_tanh_fwd, MAP_X, gelu_tanh_v(v))
ELEMENTWISE(gelu_tanh_bwd, MAP_XG, g * gelu_tanh_grad_v(v))       /* v = x */

/* ELU: alpha (e^x - 1) for x <= 0. */
ELEMENTWISE(elu_fwd, MAP_X, v > 0.0f ? v : pa * fnn_expm1_neg(v))

/* ELU backward: test the sign on A->x (x, or y when alpha >= 0), slope from y:
 * alpha e^x = y + alpha. */
FNN_INLINE void elu_bwd_impl(const act_args *A, ptrdiff_t lo, ptrdiff_t hi)
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
KERNEL(elu_bwd)

/* ----------------------------------------------------- row kernels (softmax) -- */

/* Row reductions keep independent lanes (so the loops vectorise without
 * reassociating anything) combined in a fixed order at the end: MLANES floats
 * for the max, reduce.h's float64 lanes for sums; the answer does not depend
 * on the ISA path. In place (y == x, dx == dy) is allowed: each pass reads
 * element i before it writes element i, and nothing here is `restrict`. */
#define MLANES 64

/* Largest element (NaNs are skipped; a NaN still poisons the row sum). */
FNN_INLINE float row_max(const float *x, ptrdiff_t n)
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

FNN_INLINE void softmax_fwd_impl(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *x = A->x + r * n;
        float *y = A->out + r * n;
        const float m = row_max(x, n);
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = fnn_exp_neg(x[i] - m);
        const float inv = (float)(1.0 / fnn_sum_f64(y, n));
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = y[i] * inv;
    }
}
KERNEL(softmax_fwd)

/* y = (x - m) - log(sum e^(x - m)); the sum is taken without storing the
 * exponentials, so x is intact until the last pass (y may be x). */
FNN_INLINE void log_softmax_fwd_impl(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *x = A->x + r * n;
        float *y = A->out + r * n;
        const float m = row_max(x, n);
        const float lse = (float)log(FNN_LANE_SUM(x, n, (double)fnn_exp_neg((float)v - m)));
        for (ptrdiff_t i = 0; i < n; i++)
            y[i] = (x[i] - m) - lse;
    }
}
KERNEL(log_softmax_fwd)

/* dx = y (dy - sum(dy y)) */
FNN_INLINE void softmax_bwd_impl(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *y = A->y + r * n;
        const float *g = A->dy + r * n;
        float *dx = A->out + r * n;
        const float d = (float)fnn_dot_f64(g, y, n);
        for (ptrdiff_t i = 0; i < n; i++)
            dx[i] = y[i] * (g[i] - d);
    }
}
KERNEL(softmax_bwd)

/* dx = dy - e^y sum(dy) */
FNN_INLINE void log_softmax_bwd_impl(const act_args *A, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t n = A->cols;
    for (ptrdiff_t r = r0; r < r1; r++) {
        const float *y = A->y + r * n;
        const float *g = A->dy + r * n;
        float *dx = A->out + r * n;
        const float s = (float)fnn_sum_f64(g, n);
        for (ptrdiff_t i = 0; i < n; i++)
            dx[i] = g[i] - fnn_exp_neg(y[i]) * s;
    }
}
KERNEL(log_softmax_bwd)

/* ------------------------------------------------------------------ maxout -- */

FNN_INLINE void maxout_fwd_impl(const act_args *A, ptrdiff_t g0, ptrdiff_t g1)
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
KERNEL(maxout_fwd)

FNN_INLINE void maxout_bwd_impl(const act_args *A, ptrdiff_t g0, ptrdiff_t g1)
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
KERNEL(maxout_bwd)

/* ----------------------------------------------------------- test access -- */

FNN_INLINE void mathfn_impl(const act_args *A, ptrdiff_t lo, ptrdiff_t hi)
{
    const float *restrict x = A->x;
    float *restrict y = A->out;
    float pdf;
    switch (A->fn) {
    case 0: for (ptrdiff_t i = lo; i < hi; i++) y[i] = fnn_exp_neg(x[i]); break;
    case 1: for (ptrdiff_t i = lo; i < hi; i++) y[i] = fnn_expm1_neg(x[i]); break;
    case 2: for (ptrdiff_t i = lo; i < hi; i++) y[i] = fnn_log1p_01(x[i]); break;
    case 3: for (ptrdiff_t i = lo; i < hi; i++) y[i] = fnn_tanh(x[i]); break;
    case 4: for (ptrdiff_t i = lo; i < hi; i++) y[i] = fnn_ncdf(x[i], &pdf); break;
    case 5: for (ptrdiff_t i = lo; i < hi; i++) { fnn_ncdf(x[i], &pdf); y[i] = pdf; } break;
    case 6: for (ptrdiff_t i = lo; i < hi; i++) y[i] = fnn_sigmoid(x[i]); break;
    default: break;
    }
}
KERNEL(mathfn)

/* ------------------------------------------------------------- public API -- */

/* Relative work of one element, in ReLU elements (for the thread decision). */
#define COST_CHEAP 1.0
#define COST_EXP 6.0
#define COST_GELU 12.0

void fnn_relu_forward(ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(relu_fwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_relu_backward(ptrdiff_t n, const float *y, const float *dy, float *dx)
{
    act_args A = {.x = y, .dy = dy, .out = dx};
    run(relu_bwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_leaky_relu_forward(ptrdiff_t n, float negative_slope, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = negative_slope};
    run(leaky_fwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_leaky_relu_backward(ptrdiff_t n, float negative_slope, const float *ref,
                             const float *dy, float *dx)
{
    act_args A = {.x = ref, .dy = dy, .out = dx, .a = negative_slope};
    run(leaky_bwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_sigmoid_forward(ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(sigmoid_fwd_isa, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_sigmoid_backward(ptrdiff_t n, const float *y, const float *dy, float *dx)
{
    act_args A = {.x = y, .dy = dy, .out = dx};
    run(sigmoid_bwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_tanh_forward(ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(tanh_fwd_isa, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_tanh_backward(ptrdiff_t n, const float *y, const float *dy, float *dx)
{
    act_args A = {.x = y, .dy = dy, .out = dx};
    run(tanh_bwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_softplus_forward(ptrdiff_t n, float beta, float threshold, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = beta, .b = threshold};
    run(softplus_fwd_isa, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_softplus_backward(ptrdiff_t n, float beta, float threshold, const float *x,
                           const float *dy, float *dx)
{
    act_args A = {.x = x, .dy = dy, .out = dx, .a = beta, .b = threshold};
    run(softplus_bwd_isa, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_hardtanh_forward(ptrdiff_t n, float min_val, float max_val, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = min_val, .b = max_val};
    run(hardtanh_fwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_hardtanh_backward(ptrdiff_t n, float min_val, float max_val, const float *ref,
                           const float *dy, float *dx)
{
    act_args A = {.x = ref, .dy = dy, .out = dx, .a = min_val, .b = max_val};
    run(hardtanh_bwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_elu_forward(ptrdiff_t n, float alpha, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .a = alpha};
    run(elu_fwd_isa, &A, n, COST_EXP, ELEM_ALIGN);
}

void fnn_elu_backward(ptrdiff_t n, float alpha, const float *ref, const float *y,
                      const float *dy, float *dx)
{
    act_args A = {.x = ref, .y = y, .dy = dy, .out = dx, .a = alpha};
    run(elu_bwd_isa, &A, n, COST_CHEAP, ELEM_ALIGN);
}

void fnn_gelu_forward(ptrdiff_t n, int approximate_tanh, const float *x, float *y)
{
    act_args A = {.x = x, .out = y};
    run(approximate_tanh ? gelu_tanh_fwd_isa : gelu_fwd_isa, &A, n, COST_GELU, ELEM_ALIGN);
}

void fnn_gelu_backward(ptrdiff_t n, int approximate_tanh, const float *x, const float *dy,
                       float *dx)
{
    act_args A = {.x = x, .dy = dy, .out = dx};
    run(approximate_tanh ? gelu_tanh_bwd_isa : gelu_bwd_isa, &A, n, COST_GELU, ELEM_ALIGN);
}

void fnn_softmax_forward(ptrdiff_t rows, ptrdiff_t cols, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .cols = cols};
    run(softmax_fwd_isa, &A, rows, COST_EXP * (double)cols, 1);
}

void fnn_softmax_backward(ptrdiff_t rows, ptrdiff_t cols, const float *y, const float *dy,
                          float *dx)
{
    act_args A = {.y = y, .dy = dy, .out = dx, .cols = cols};
    run(softmax_bwd_isa, &A, rows, 2.0 * (double)cols, 1);
}

void fnn_log_softmax_forward(ptrdiff_t rows, ptrdiff_t cols, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .cols = cols};
    run(log_softmax_fwd_isa, &A, rows, COST_EXP * (double)cols, 1);
}

void fnn_log_softmax_backward(ptrdiff_t rows, ptrdiff_t cols, const float *y,
                              const float *dy, float *dx)
{
    act_args A = {.y = y, .dy = dy, .out = dx, .cols = cols};
    run(log_softmax_bwd_isa, &A, rows, COST_EXP * (double)cols, 1);
}

void fnn_maxout_forward(ptrdiff_t groups, ptrdiff_t pieces, const float *x, float *y,
                        int32_t *idx)
{
    act_args A = {.x = x, .out = y, .idx = idx, .cols = pieces};
    run(maxout_fwd_isa, &A, groups, (double)pieces, ELEM_ALIGN);
}

void fnn_maxout_backward(ptrdiff_t groups, ptrdiff_t pieces, const int32_t *idx,
                         const float *dy, float *dx)
{
    act_args A = {.dy = dy, .out = dx, .idx = (int32_t *)idx, .cols = pieces};
    run(maxout_bwd_isa, &A, groups, (double)pieces, ELEM_ALIGN);
}

void fnn_act_mathfn(int fn, ptrdiff_t n, const float *x, float *y)
{
    act_args A = {.x = x, .out = y, .fn = fn};
    run(mathfn_isa, &A, n, COST_GELU, ELEM_ALIGN);
}
