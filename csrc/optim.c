/* optim.c -- fused optimizer updates, weight constraints and gradient
 * clipping over flat float32 arrays.
 *
 * Each update is one pass over a parameter array: it reads the gradient and
 * the optimizer state, and writes the parameter and the state, with no
 * temporaries. Per element the arithmetic follows torch.optim's order of
 * operations (separate multiplies and adds: the build has -ffp-contract=off),
 * so results agree with it to rounding. The regularization options
 * (fnn_optim_reg) are folded into the same pass:
 *
 *   g <- maximize ? -g : g
 *   g <- g + weight_decay * p            (coupled L2)
 *   g <- g + l1 * sign(p)                (L1 as a subgradient)
 *   p <- p * decay_mult                  (decoupled weight decay, AdamW)
 *   ... the optimizer's own update of state and p ...
 *   p <- sign(p) * max(|p| - prox, 0)    (proximal L1: soft-thresholding)
 *
 * Work is split into contiguous element ranges, one per thread, on 16-element
 * boundaries; every element's arithmetic is the same whichever thread does
 * it, so results do not depend on the thread count. Reductions (norms) sum
 * float64 partials over a fixed block partition that depends only on n. */
#include "fastnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define FNN_RESTRICT __restrict__
#define FNN_INLINE static inline __attribute__((always_inline))

/* Elements per thread below which a pass stays on one thread: 32k elements
 * are 0.4-1 MB of memory traffic in an update, far more than the cost of
 * waking a second thread. */
#define OPT_THRESHOLD 32768.0

/* [lo, hi) of n elements for thread t of nt, on 16-element boundaries. */
FNN_INLINE void split_range(ptrdiff_t n, int t, int nt, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t per = (n + nt - 1) / nt;
    per = (per + 15) & ~(ptrdiff_t)15;
    ptrdiff_t a = per * t, b = a + per;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* Run body(lo, hi) over [0, n) on the threads fnn_threads_for gives, each
 * worker with flush-to-zero on. */
#ifdef _OPENMP
#define PARALLEL_RANGE(n, ...)                                             \
    do {                                                                   \
        int nt_ = fnn_threads_for((double)(n), OPT_THRESHOLD);             \
        _Pragma("omp parallel num_threads(nt_) if(nt_ > 1)")               \
        {                                                                  \
            ptrdiff_t lo, hi;                                              \
            split_range((n), omp_get_thread_num(), omp_get_num_threads(),  \
                        &lo, &hi);                                         \
            unsigned ftz_ = fnn_ftz_enter();                               \
            __VA_ARGS__;                                                   \
            fnn_ftz_leave(ftz_);                                           \
        }                                                                  \
    } while (0)
#else
#define PARALLEL_RANGE(n, ...)                                             \
    do {                                                                   \
        ptrdiff_t lo = 0, hi = (n);                                        \
        unsigned ftz_ = fnn_ftz_enter();                                   \
        __VA_ARGS__;                                                       \
        fnn_ftz_leave(ftz_);                                               \
    } while (0)
#endif

/* ------------------------------------------------- shared element steps -- */

FNN_INLINE float sign_f(float x)
{
    return (x > 0.0f ? 1.0f : 0.0f) - (x < 0.0f ? 1.0f : 0.0f);
}

/* The regularization options as loop-invariant locals. Within a level every
 * option is applied without branches: the neutral values leave g and p
 * unchanged (g * 1, + 0 * p, p * 1, + 0 * sign, soft-threshold at 0). */
typedef struct {
    float gsign, wd, l1, mult, prox;
} reg_vals;

FNN_INLINE reg_vals reg_load(const fnn_optim_reg *r)
{
    reg_vals v = {r->maximize ? -1.0f : 1.0f, r->weight_decay, r->l1,
                  r->decay_mult, r->prox};
    return v;
}

/* Soft-thresholding; NaN stays NaN. */
FNN_INLINE float soft_threshold(float p, float t)
{
    float a = fabsf(p) - t;
    return a <= 0.0f ? 0.0f : copysignf(a, p);
}

/* The effective gradient: maximize and coupled L2 (level >= 1), the L1
 * subgradient (level 2). Level 0 is the plain gradient. */
FNN_INLINE float reg_grad(float g, float p, reg_vals r, const int level)
{
    if (level >= 1)
        g = g * r.gsign + r.wd * p;
    if (level >= 2)
        g = g + r.l1 * sign_f(p);
    return g;
}

/* Decoupled decay before the update (level >= 1), soft-threshold after it
 * (level 2). */
FNN_INLINE float reg_pre(float w, reg_vals r, const int level)
{
    return level >= 1 ? w * r.mult : w;
}

FNN_INLINE float reg_post(float w, reg_vals r, const int level)
{
    return level >= 2 ? soft_threshold(w, r.prox) : w;
}

/* Which regularization the loops must apply, each level compiled apart:
 * 0 none (the usual case), 1 only the linear options (maximize, weight decay
 * coupled or decoupled), 2 also the L1 terms (sign, soft-threshold), which
 * cost most where there are no cheap vector blends (SSE2). */
static int reg_level(const fnn_optim_reg *r)
{
    if (r->l1 != 0.0f || r->prox != 0.0f)
        return 2;
    return (r->maximize || r->weight_decay != 0.0f || r->decay_mult != 1.0f) ? 1 : 0;
}

/* Each optimizer's loops are compiled twice: for the baseline ISA and, on
 * x86-64 with GCC or Clang, as an AVX-512 clone used when fnn_get_isa() says
 * AVX-512. The arithmetic is the same IEEE operations in the same order
 * (no contraction), so both give bitwise the same results. The wide clone
 * is about 5% faster on the plain memory-bound loops and up to 40% on the
 * L1 ones in cache (masks instead of SSE2's and/andnot blends). */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define OPT_WIDE 1
#if defined(__clang__)
#define OPT_WIDE_ATTR __attribute__((target("avx512f")))
#else
#define OPT_WIDE_ATTR __attribute__((target("avx512f,prefer-vector-width=512")))
#endif
/* name##_block(args, lo, hi) and its AVX-512 twin name##_block_wide. */
#define DEFINE_BLOCKS(name, args_t, ...)                                   \
    static void name##_block(const args_t *a, ptrdiff_t lo, ptrdiff_t hi)  \
    __VA_ARGS__                                                            \
    OPT_WIDE_ATTR static void name##_block_wide(const args_t *a,           \
                                                ptrdiff_t lo, ptrdiff_t hi) \
    __VA_ARGS__
#define RUN_BLOCKS(name, n, args)                                          \
    do {                                                                   \
        const int wide_ = fnn_get_isa() == FNN_ISA_AVX512;                 \
        PARALLEL_RANGE(n, {                                                \
            if (wide_)                                                     \
                name##_block_wide(&(args), lo, hi);                        \
            else                                                           \
                name##_block(&(args), lo, hi);                             \
        });                                                                \
    } while (0)
#else
#define DEFINE_BLOCKS(name, args_t, ...)                                   \
    static void name##_block(const args_t *a, ptrdiff_t lo, ptrdiff_t hi)  \
    __VA_ARGS__
#define RUN_BLOCKS(name, n, args)                                          \
    PARALLEL_RANGE(n, { name##_block(&(args), lo, hi); })
#endif

/* ---------------------------------------------------------------- SGD -- */

FNN_INLINE void sgd_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                          float *FNN_RESTRICT buf, ptrdiff_t lo, ptrdiff_t hi,
                          float lr, float momentum, float keep,
                          int nesterov, int init_buf, reg_vals r,
                          const int level, const int has_buf)
{
    const float neg_lr = -lr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = reg_grad(g[i], w, r, level);
        w = reg_pre(w, r, level);
        if (has_buf) {
            float b;
            if (init_buf)
                b = d;
            else
                b = buf[i] * momentum + keep * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        w = w + neg_lr * d;
        w = reg_post(w, r, level);
        p[i] = w;
    }
}

typedef struct {
    float *p; const float *g; float *buf;
    float lr, momentum, keep;
    int nesterov, init_buf, level;
    reg_vals r;
} sgd_args;

/* every (level, momentum, nesterov) combination compiled apart */
#define SGD_M(L, N) sgd_range(a->p, a->g, a->buf, lo, hi, a->lr, a->momentum, a->keep, N, \
                              a->init_buf, a->r, L, 1)
#define SGD_0(L) sgd_range(a->p, a->g, NULL, lo, hi, a->lr, 0.0f, 0.0f, 0, 0, a->r, L, 0)
DEFINE_BLOCKS(sgd, sgd_args, {
    if (a->buf) {
        switch (a->level * 2 + a->nesterov) {
        case 0: SGD_M(0, 0); break;
        case 1: SGD_M(0, 1); break;
        case 2: SGD_M(1, 0); break;
        case 3: SGD_M(1, 1); break;
        case 4: SGD_M(2, 0); break;
        default: SGD_M(2, 1); break;
        }
    } else {
        switch (a->level) {
        case 0: SGD_0(0); break;
        case 1: SGD_0(1); break;
        default: SGD_0(2); break;
        }
    }
})
#undef SGD_M
#undef SGD_0

void fnn_sgd_step(float *p, const float *g, float *buf, ptrdiff_t n, double lr,
                  double momentum, double dampening, int nesterov, int init_buf,
                  fnn_optim_reg reg)
{
    const sgd_args args = {p, g, buf, (float)lr, (float)momentum, (float)(1.0 - dampening),
                           nesterov != 0, init_buf, reg_level(&reg), reg_load(&reg)};
    RUN_BLOCKS(sgd, n, args);
}

/* ------------------------------------------------------------ Adagrad -- */

FNN_INLINE void adagrad_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                              float *FNN_RESTRICT sum, ptrdiff_t lo, ptrdiff_t hi,
                              float clr, float eps, reg_vals r,
                              const int level)
{
    const float neg_clr = -clr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = reg_grad(g[i], w, r, level);
        w = reg_pre(w, r, level);
        float s = sum[i] + d * d;
        sum[i] = s;
        float std = sqrtf(s) + eps;
        w = w + neg_clr * d / std;
        w = reg_post(w, r, level);
        p[i] = w;
    }
}

typedef struct {
    float *p; const float *g; float *sum;
    float clr, eps;
    int level;
    reg_vals r;
} adagrad_args;

#define ADAGRAD(L) adagrad_range(a->p, a->g, a->sum, lo, hi, a->clr, a->eps, a->r, L)
DEFINE_BLOCKS(adagrad, adagrad_args, {
    switch (a->level) {
    case 0: ADAGRAD(0); break;
    case 1: ADAGRAD(1); break;
    default: ADAGRAD(2); break;
    }
})
#undef ADAGRAD

void fnn_adagrad_step(float *p, const float *g, float *sum, ptrdiff_t n,
                      double clr, double eps, fnn_optim_reg reg)
{
    const adagrad_args args = {p, g, sum, (float)clr, (float)eps, reg_level(&reg),
                               reg_load(&reg)};
    RUN_BLOCKS(adagrad, n, args);
}

/* ------------------------------------------------------------ RMSprop -- */

FNN_INLINE void rmsprop_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                              float *FNN_RESTRICT sq, float *FNN_RESTRICT gavg,
                              float *FNN_RESTRICT buf, ptrdiff_t lo, ptrdiff_t hi,
                              float lr, float alpha, float one_m_alpha, float eps,
                              float momentum, reg_vals r, const int level,
                              const int centered, const int has_buf)
{
    const float neg_lr = -lr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = reg_grad(g[i], w, r, level);
        w = reg_pre(w, r, level);
        float s = sq[i] * alpha + one_m_alpha * d * d;
        sq[i] = s;
        float avg;
        if (centered) {
            float ga = gavg[i] + one_m_alpha * (d - gavg[i]);
            gavg[i] = ga;
            avg = sqrtf(s + -1.0f * ga * ga);
        } else {
            avg = sqrtf(s);
        }
        avg = avg + eps;
        if (has_buf) {
            float b = buf[i] * momentum + d / avg;
            buf[i] = b;
            w = w + neg_lr * b;
        } else {
            w = w + neg_lr * d / avg;
        }
        w = reg_post(w, r, level);
        p[i] = w;
    }
}

typedef struct {
    float *p; const float *g; float *sq, *gavg, *buf;
    float lr, alpha, one_m_alpha, eps, momentum;
    int sel;                 /* level * 4 + centered * 2 + momentum */
    reg_vals r;
} rmsprop_args;

/* every (level, centered, momentum) combination compiled apart */
#define RMS(G, C, M) rmsprop_range(a->p, a->g, a->sq, a->gavg, a->buf, lo, hi, a->lr, \
                                   a->alpha, a->one_m_alpha, a->eps, a->momentum, a->r, \
                                   G, C, M)
DEFINE_BLOCKS(rmsprop, rmsprop_args, {
    switch (a->sel) {
    case 0: RMS(0, 0, 0); break;
    case 1: RMS(0, 0, 1); break;
    case 2: RMS(0, 1, 0); break;
    case 3: RMS(0, 1, 1); break;
    case 4: RMS(1, 0, 0); break;
    case 5: RMS(1, 0, 1); break;
    case 6: RMS(1, 1, 0); break;
    case 7: RMS(1, 1, 1); break;
    case 8: RMS(2, 0, 0); break;
    case 9: RMS(2, 0, 1); break;
    case 10: RMS(2, 1, 0); break;
    default: RMS(2, 1, 1); break;
    }
})
#undef RMS

void fnn_rmsprop_step(float *p, const float *g, float *square_avg,
                      float *grad_avg, float *buf, ptrdiff_t n, double lr,
                      double alpha, double eps, double momentum, fnn_optim_reg reg)
{
    const rmsprop_args args = {
        p, g, square_avg, grad_avg, buf, (float)lr, (float)alpha, (float)(1.0 - alpha),
        (float)eps, (float)momentum,
        reg_level(&reg) * 4 + (grad_avg ? 2 : 0) + (buf ? 1 : 0), reg_load(&reg)};
    RUN_BLOCKS(rmsprop, n, args);
}

/* ----------------------------------------------------------- Adadelta -- */

FNN_INLINE void adadelta_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                               float *FNN_RESTRICT sq, float *FNN_RESTRICT acc,
                               ptrdiff_t lo, ptrdiff_t hi, float lr, float rho,
                               float one_m_rho, float eps, reg_vals r, const int level)
{
    const float neg_lr = -lr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = reg_grad(g[i], w, r, level);
        w = reg_pre(w, r, level);
        float s = sq[i] * rho + one_m_rho * d * d;
        sq[i] = s;
        float std = sqrtf(s + eps);
        float u = acc[i];
        float delta = sqrtf(u + eps) / std * d;
        acc[i] = u * rho + one_m_rho * delta * delta;
        w = w + neg_lr * delta;
        w = reg_post(w, r, level);
        p[i] = w;
    }
}

typedef struct {
    float *p; const float *g; float *sq, *acc;
    float lr, rho, one_m_rho, eps;
    int level;
    reg_vals r;
} adadelta_args;

#define ADADELTA(L) adadelta_range(a->p, a->g, a->sq, a->acc, lo, hi, a->lr, a->rho, \
                                   a->one_m_rho, a->eps, a->r, L)
DEFINE_BLOCKS(adadelta, adadelta_args, {
    switch (a->level) {
    case 0: ADADELTA(0); break;
    case 1: ADADELTA(1); break;
    default: ADADELTA(2); break;
    }
})
#undef ADADELTA

void fnn_adadelta_step(float *p, const float *g, float *square_avg,
                       float *acc_delta, ptrdiff_t n, double lr, double rho,
                       double eps, fnn_optim_reg reg)
{
    const adadelta_args args = {p, g, square_avg, acc_delta, (float)lr, (float)rho,
                                (float)(1.0 - rho), (float)eps, reg_level(&reg),
                                reg_load(&reg)};
    RUN_BLOCKS(adadelta, n, args);
}

/* --------------------------------------------------------- Adam/AdamW -- */

FNN_INLINE void adam_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                           float *FNN_RESTRICT m, float *FNN_RESTRICT v,
                           float *FNN_RESTRICT vmax, ptrdiff_t lo, ptrdiff_t hi,
                           float w1, float beta2, float w2, float step_size,
                           float bc2_sqrt, float eps, reg_vals r,
                           const int level, const int amsgrad)
{
    const float neg_step = -step_size;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = reg_grad(g[i], w, r, level);
        w = reg_pre(w, r, level);
        float mi = m[i];
        mi = mi + w1 * (d - mi);                /* lerp(m, d, 1 - beta1) */
        m[i] = mi;
        float vi = v[i] * beta2 + w2 * d * d;
        v[i] = vi;
        if (amsgrad) {
            float vm = vmax[i];
            vm = vi > vm ? vi : vm;
            vmax[i] = vm;
            vi = vm;
        }
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        w = w + neg_step * mi / denom;
        w = reg_post(w, r, level);
        p[i] = w;
    }
}

typedef struct {
    float *p; const float *g; float *m, *v, *vmax;
    float w1, beta2, w2, step_size, bc2_sqrt, eps;
    int sel;                 /* level * 2 + amsgrad */
    reg_vals r;
} adam_args;

#define ADAM(G, A) adam_range(a->p, a->g, a->m, a->v, a->vmax, lo, hi, a->w1, a->beta2, \
                              a->w2, a->step_size, a->bc2_sqrt, a->eps, a->r, G, A)
DEFINE_BLOCKS(adam, adam_args, {
    switch (a->sel) {
    case 0: ADAM(0, 0); break;
    case 1: ADAM(0, 1); break;
    case 2: ADAM(1, 0); break;
    case 3: ADAM(1, 1); break;
    case 4: ADAM(2, 0); break;
    default: ADAM(2, 1); break;
    }
})
#undef ADAM

void fnn_adam_step(float *p, const float *g, float *exp_avg, float *exp_avg_sq,
                   float *max_exp_avg_sq, ptrdiff_t n, double beta1, double beta2,
                   double step_size, double bc2_sqrt, double eps, fnn_optim_reg reg)
{
    const adam_args args = {
        p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, (float)(1.0 - beta1), (float)beta2,
        (float)(1.0 - beta2), (float)step_size, (float)bc2_sqrt, (float)eps,
        reg_level(&reg) * 2 + (max_exp_avg_sq ? 1 : 0), reg_load(&reg)};
    RUN_BLOCKS(adam, n, args);
}

/* -------------------------------------------------------- constraints -- */

void fnn_soft_threshold(float *p, ptrdiff_t n, float t)
{
    PARALLEL_RANGE(n, {
        for (ptrdiff_t i = lo; i < hi; i++)
            p[i] = soft_threshold(p[i], t);
    });
}

/* Static partition of `count` items for thread t of nt (no alignment). */
FNN_INLINE void split_items(ptrdiff_t count, int t, int nt, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t q = count / nt, rem = count % nt;
    *lo = t * q + (t < rem ? t : rem);
    *hi = *lo + q + (t < rem ? 1 : 0);
}

/* Run body(lo, hi) over `count` items (rows, blocks) on nt threads. */
#ifdef _OPENMP
#define PARALLEL_ITEMS(count, nt, ...)                                     \
    do {                                                                   \
        int nt_ = (nt);                                                    \
        _Pragma("omp parallel num_threads(nt_) if(nt_ > 1)")               \
        {                                                                  \
            ptrdiff_t lo, hi;                                              \
            split_items((count), omp_get_thread_num(),                     \
                        omp_get_num_threads(), &lo, &hi);                  \
            unsigned ftz_ = fnn_ftz_enter();                               \
            __VA_ARGS__;                                                   \
            fnn_ftz_leave(ftz_);                                           \
        }                                                                  \
    } while (0)
#else
#define PARALLEL_ITEMS(count, nt, ...)                                     \
    do {                                                                   \
        ptrdiff_t lo = 0, hi = (count);                                    \
        unsigned ftz_ = fnn_ftz_enter();                                   \
        (void)(nt);                                                        \
        __VA_ARGS__;                                                       \
        fnn_ftz_leave(ftz_);                                               \
    } while (0)
#endif

#ifdef OPT_WIDE
#define RUN_ITEMS(name, count, nt, args)                                   \
    do {                                                                   \
        const int wide_ = fnn_get_isa() == FNN_ISA_AVX512;                 \
        PARALLEL_ITEMS(count, nt, {                                        \
            if (wide_)                                                     \
                name##_block_wide(&(args), lo, hi);                        \
            else                                                           \
                name##_block(&(args), lo, hi);                             \
        });                                                                \
    } while (0)
#else
#define RUN_ITEMS(name, count, nt, args)                                   \
    PARALLEL_ITEMS(count, nt, { name##_block(&(args), lo, hi); })
#endif

/* Reductions keep LANES independent float64 accumulators, lane j taking
 * elements j, j + LANES, ..., combined pairwise in a fixed order at the end:
 * an order fixed by the C code, so the SSE2 and AVX-512 builds of the loop
 * (and any thread count) give the same bits. */
#define LANES 16

FNN_INLINE double lanes_sum(const double *acc)
{
    double s[LANES];
    for (int j = 0; j < LANES; j++)
        s[j] = acc[j];
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            s[j] = s[j] + s[j + w];
    return s[0];
}

/* sum x^2 over x[0..n), float64 */
FNN_INLINE double sumsq_f64(const float *x, ptrdiff_t n)
{
    double acc[LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += (double)x[i] * (double)x[i];
    return lanes_sum(acc);
}

/* sum |x| over x[0..n), float64 */
FNN_INLINE double sumabs_f64(const float *x, ptrdiff_t n)
{
    double acc[LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += fabs((double)x[i + j]);
    for (int j = 0; i < n; i++, j++)
        acc[j] += fabs((double)x[i]);
    return lanes_sum(acc);
}

/* sum |x|^p over x[0..n), float64 (scalar pow: any p > 0) */
FNN_INLINE double sumpow_f64(const float *x, ptrdiff_t n, double p)
{
    double acc[LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += pow(fabs((double)x[i + j]), p);
    for (int j = 0; i < n; i++, j++)
        acc[j] += pow(fabs((double)x[i]), p);
    return lanes_sum(acc);
}

/* max |x| over x[0..n); NaN wins, like torch's max. For x >= 0 the IEEE
 * bit patterns order like the values and every NaN pattern lies above
 * infinity's, so an integer max of the bits of |x| is exact and NaN-sticky
 * (and, unlike a float max with NaN semantics, vectorizes). */
FNN_INLINE float maxabs_f32(const float *x, ptrdiff_t n)
{
    int32_t m = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        int32_t b;
        memcpy(&b, &x[i], sizeof b);
        b &= 0x7fffffff;
        m = b > m ? b : m;
    }
    if (m > 0x7f800000)
        return NAN;
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

/* ------------------------------------------------------------ max-norm -- */

typedef struct {
    float *w;
    ptrdiff_t cols;
    float max_norm;
} maxnorm_args;

DEFINE_BLOCKS(maxnorm, maxnorm_args, {
    for (ptrdiff_t r = lo; r < hi; r++) {
        float *row = a->w + r * a->cols;
        double norm = sqrt(sumsq_f64(row, a->cols));
        if (norm > (double)a->max_norm) {
            const float scale = (float)((double)a->max_norm / (norm + 1e-7));
            for (ptrdiff_t j = 0; j < a->cols; j++)
                row[j] = row[j] * scale;
        }
    }
})

void fnn_max_norm_rows(float *w, ptrdiff_t rows, ptrdiff_t cols, float max_norm)
{
    if (rows <= 0 || cols <= 0)
        return;
    int nt = fnn_threads_for((double)rows * (double)cols, OPT_THRESHOLD);
    if ((ptrdiff_t)nt > rows)
        nt = (int)rows;
    const maxnorm_args args = {w, cols, max_norm};
    RUN_ITEMS(maxnorm, rows, nt, args);
}

/* ------------------------------------------------------ gradient clips -- */

/* Fixed block partition for reductions: at most NB_MAX blocks of at least
 * BLOCK_MIN elements (multiples of 16), a function of n alone. */
#define NB_MAX 256
#define BLOCK_MIN 4096

typedef struct {
    const float *x;
    ptrdiff_t n, bs;
    double p;
    int kind;                /* 0: |x|^2, 1: |x|, 2: |x|^p, 3: max |x| */
    double *part;
} norm_args;

DEFINE_BLOCKS(norm, norm_args, {
    for (ptrdiff_t b = lo; b < hi; b++) {
        const ptrdiff_t s = b * a->bs, e = s + a->bs < a->n ? s + a->bs : a->n;
        const float *x = a->x + s;
        switch (a->kind) {
        case 0: a->part[b] = sumsq_f64(x, e - s); break;
        case 1: a->part[b] = sumabs_f64(x, e - s); break;
        case 2: a->part[b] = sumpow_f64(x, e - s, a->p); break;
        default: a->part[b] = (double)maxabs_f32(x, e - s); break;
        }
    }
})

double fnn_grad_norm_pow(const float *x, ptrdiff_t n, double p)
{
    double part[NB_MAX];
    if (n <= 0)
        return 0.0;
    ptrdiff_t bs = (n + NB_MAX - 1) / NB_MAX;
    bs = (bs + 15) & ~(ptrdiff_t)15;
    if (bs < BLOCK_MIN)
        bs = BLOCK_MIN;
    const int nb = (int)((n + bs - 1) / bs);
    const int kind = isinf(p) ? 3 : p == 2.0 ? 0 : p == 1.0 ? 1 : 2;
    int nt = fnn_threads_for((double)n, OPT_THRESHOLD);
    if (nt > nb)
        nt = nb;
    const norm_args args = {x, n, bs, p, kind, part};
    RUN_ITEMS(norm, nb, nt, args);
    double total = 0.0;
    for (int b = 0; b < nb; b++) {
        if (kind == 3)
            total = (part[b] > total || part[b] != part[b]) ? part[b] : total;
        else
            total += part[b];
    }
    return total;
}

void fnn_scale_inplace(float *x, ptrdiff_t n, float c)
{
    PARALLEL_RANGE(n, {
        for (ptrdiff_t i = lo; i < hi; i++)
            x[i] = x[i] * c;
    });
}

void fnn_clamp_inplace(float *x, ptrdiff_t n, float lo_v, float hi_v)
{
    PARALLEL_RANGE(n, {
        for (ptrdiff_t i = lo; i < hi; i++) {
            float v = x[i];
            v = v < lo_v ? lo_v : v;
            v = v > hi_v ? hi_v : v;
            x[i] = v;
        }
    });
}
