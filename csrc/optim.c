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
#ifdef _OPENMP
#include <omp.h>
#endif

#define FNN_RESTRICT __restrict__
#define FNN_INLINE static inline __attribute__((always_inline))

/* Elements per thread below which a pass stays on one thread. Memory-bound
 * passes: about 256 KiB of traffic per thread before a second one helps. */
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
#define PARALLEL_RANGE(n, ...)                                            \
    do {                                                                   \
        int nt_ = fnn_threads_for((double)(n), OPT_THRESHOLD);             \
        _Pragma("omp parallel num_threads(nt_) if(nt_ > 1)")               \
        {                                                                  \
            ptrdiff_t lo, hi;                                              \
            split_range((n), omp_get_thread_num(), omp_get_num_threads(),  \
                        &lo, &hi);                                         \
            unsigned ftz_ = fnn_ftz_enter();                               \
            __VA_ARGS__;                                                          \
            fnn_ftz_leave(ftz_);                                           \
        }                                                                  \
    } while (0)
#else
#define PARALLEL_RANGE(n, ...)                                            \
    do {                                                                   \
        ptrdiff_t lo = 0, hi = (n);                                        \
        unsigned ftz_ = fnn_ftz_enter();                                   \
        __VA_ARGS__;                                                              \
        fnn_ftz_leave(ftz_);                                               \
    } while (0)
#endif

/* ------------------------------------------------- shared element steps -- */

FNN_INLINE float sign_f(float x)
{
    return (x > 0.0f ? 1.0f : 0.0f) - (x < 0.0f ? 1.0f : 0.0f);
}

/* The regularization options as loop-invariant locals. In the regularized
 * loops every option is applied without branches: the neutral values leave
 * g and p unchanged (g * 1, + 0 * p, p * 1, soft-threshold at 0). */
typedef struct {
    float gsign, wd, l1, mult, prox;
} reg_vals;

FNN_INLINE reg_vals reg_load(const fnn_optim_reg *r)
{
    reg_vals v = {r->maximize ? -1.0f : 1.0f, r->weight_decay, r->l1,
                  r->decay_mult, r->prox};
    return v;
}

/* The effective gradient: maximize, coupled L2, L1 subgradient. */
FNN_INLINE float reg_grad(float g, float p, reg_vals r)
{
    return (g * r.gsign + r.wd * p) + r.l1 * sign_f(p);
}

/* Soft-thresholding; NaN stays NaN. */
FNN_INLINE float soft_threshold(float p, float t)
{
    float a = fabsf(p) - t;
    return a <= 0.0f ? 0.0f : copysignf(a, p);
}

/* Whether any regularization option is on: the loops are compiled twice,
 * a plain version (the usual case) and one with every option. */
static int reg_any(const fnn_optim_reg *r)
{
    return r->maximize || r->weight_decay != 0.0f || r->l1 != 0.0f ||
           r->decay_mult != 1.0f || r->prox != 0.0f;
}

/* ---------------------------------------------------------------- SGD -- */

FNN_INLINE void sgd_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                          float *FNN_RESTRICT buf, ptrdiff_t lo, ptrdiff_t hi,
                          float lr, float momentum, float keep,
                          int nesterov, int init_buf, reg_vals r,
                          const int general, const int has_buf)
{
    const float neg_lr = -lr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = general ? reg_grad(g[i], w, r) : g[i];
        if (general)
            w = w * r.mult;
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
        if (general)
            w = soft_threshold(w, r.prox);
        p[i] = w;
    }
}

void fnn_sgd_step(float *p, const float *g, float *buf, ptrdiff_t n, double lr_,
                  double momentum_, double dampening, int nesterov, int init_buf,
                  fnn_optim_reg reg)
{
    const float lr = (float)lr_, momentum = (float)momentum_;
    const float keep = (float)(1.0 - dampening);
    const reg_vals rv = reg_load(&reg);
    const int gen = reg_any(&reg);
    PARALLEL_RANGE(n, {
        if (buf) {
            if (gen)
                sgd_range(p, g, buf, lo, hi, lr, momentum, keep, nesterov, init_buf, rv, 1, 1);
            else if (nesterov)
                sgd_range(p, g, buf, lo, hi, lr, momentum, keep, 1, init_buf, rv, 0, 1);
            else
                sgd_range(p, g, buf, lo, hi, lr, momentum, keep, 0, init_buf, rv, 0, 1);
        } else {
            if (gen)
                sgd_range(p, g, NULL, lo, hi, lr, 0.0f, 0.0f, 0, 0, rv, 1, 0);
            else
                sgd_range(p, g, NULL, lo, hi, lr, 0.0f, 0.0f, 0, 0, rv, 0, 0);
        }
    });
}

/* ------------------------------------------------------------ Adagrad -- */

FNN_INLINE void adagrad_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                              float *FNN_RESTRICT sum, ptrdiff_t lo, ptrdiff_t hi,
                              float clr, float eps, reg_vals r,
                              const int general)
{
    const float neg_clr = -clr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = general ? reg_grad(g[i], w, r) : g[i];
        if (general)
            w = w * r.mult;
        float s = sum[i] + d * d;
        sum[i] = s;
        float std = sqrtf(s) + eps;
        w = w + neg_clr * d / std;
        if (general)
            w = soft_threshold(w, r.prox);
        p[i] = w;
    }
}

void fnn_adagrad_step(float *p, const float *g, float *sum, ptrdiff_t n,
                      double clr_, double eps_, fnn_optim_reg reg)
{
    const float clr = (float)clr_, eps = (float)eps_;
    const reg_vals rv = reg_load(&reg);
    const int gen = reg_any(&reg);
    PARALLEL_RANGE(n, {
        if (gen)
            adagrad_range(p, g, sum, lo, hi, clr, eps, rv, 1);
        else
            adagrad_range(p, g, sum, lo, hi, clr, eps, rv, 0);
    });
}

/* ------------------------------------------------------------ RMSprop -- */

FNN_INLINE void rmsprop_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                              float *FNN_RESTRICT sq, float *FNN_RESTRICT gavg,
                              float *FNN_RESTRICT buf, ptrdiff_t lo, ptrdiff_t hi,
                              float lr, float alpha, float one_m_alpha, float eps,
                              float momentum, reg_vals r, const int general,
                              const int centered, const int has_buf)
{
    const float neg_lr = -lr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = general ? reg_grad(g[i], w, r) : g[i];
        if (general)
            w = w * r.mult;
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
        if (general)
            w = soft_threshold(w, r.prox);
        p[i] = w;
    }
}

void fnn_rmsprop_step(float *p, const float *g, float *square_avg,
                      float *grad_avg, float *buf, ptrdiff_t n, double lr_,
                      double alpha_, double eps_, double momentum_, fnn_optim_reg reg)
{
    const float lr = (float)lr_, alpha = (float)alpha_, eps = (float)eps_;
    const float one_m_alpha = (float)(1.0 - alpha_), momentum = (float)momentum_;
    const reg_vals rv = reg_load(&reg);
    /* every (regularized, centered, momentum) combination compiled apart */
    const int sel = (reg_any(&reg) ? 4 : 0) | (grad_avg ? 2 : 0) | (buf ? 1 : 0);
#define RMS(G, C, M) rmsprop_range(p, g, square_avg, grad_avg, buf, lo, hi, lr, \
                                   alpha, one_m_alpha, eps, momentum, rv, G, C, M)
    PARALLEL_RANGE(n, {
        switch (sel) {
        case 0: RMS(0, 0, 0); break;
        case 1: RMS(0, 0, 1); break;
        case 2: RMS(0, 1, 0); break;
        case 3: RMS(0, 1, 1); break;
        case 4: RMS(1, 0, 0); break;
        case 5: RMS(1, 0, 1); break;
        case 6: RMS(1, 1, 0); break;
        default: RMS(1, 1, 1); break;
        }
    });
#undef RMS
}

/* ----------------------------------------------------------- Adadelta -- */

FNN_INLINE void adadelta_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                               float *FNN_RESTRICT sq, float *FNN_RESTRICT acc,
                               ptrdiff_t lo, ptrdiff_t hi, float lr, float rho,
                               float one_m_rho, float eps, reg_vals r, const int general)
{
    const float neg_lr = -lr;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = general ? reg_grad(g[i], w, r) : g[i];
        if (general)
            w = w * r.mult;
        float s = sq[i] * rho + one_m_rho * d * d;
        sq[i] = s;
        float std = sqrtf(s + eps);
        float a = acc[i];
        float delta = sqrtf(a + eps) / std * d;
        acc[i] = a * rho + one_m_rho * delta * delta;
        w = w + neg_lr * delta;
        if (general)
            w = soft_threshold(w, r.prox);
        p[i] = w;
    }
}

void fnn_adadelta_step(float *p, const float *g, float *square_avg,
                       float *acc_delta, ptrdiff_t n, double lr_, double rho_,
                       double eps_, fnn_optim_reg reg)
{
    const float lr = (float)lr_, rho = (float)rho_, eps = (float)eps_;
    const float one_m_rho = (float)(1.0 - rho_);
    const reg_vals rv = reg_load(&reg);
    const int gen = reg_any(&reg);
    PARALLEL_RANGE(n, {
        if (gen)
            adadelta_range(p, g, square_avg, acc_delta, lo, hi, lr, rho, one_m_rho, eps, rv, 1);
        else
            adadelta_range(p, g, square_avg, acc_delta, lo, hi, lr, rho, one_m_rho, eps, rv, 0);
    });
}

/* --------------------------------------------------------- Adam/AdamW -- */

FNN_INLINE void adam_range(float *FNN_RESTRICT p, const float *FNN_RESTRICT g,
                           float *FNN_RESTRICT m, float *FNN_RESTRICT v,
                           float *FNN_RESTRICT vmax, ptrdiff_t lo, ptrdiff_t hi,
                           float w1, float beta2, float w2, float step_size,
                           float bc2_sqrt, float eps, reg_vals r,
                           const int general, const int amsgrad)
{
    const float neg_step = -step_size;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float w = p[i];
        float d = general ? reg_grad(g[i], w, r) : g[i];
        if (general)
            w = w * r.mult;
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
        if (general)
            w = soft_threshold(w, r.prox);
        p[i] = w;
    }
}

void fnn_adam_step(float *p, const float *g, float *exp_avg, float *exp_avg_sq,
                   float *max_exp_avg_sq, ptrdiff_t n, double beta1, double beta2,
                   double step_size_, double bc2_sqrt_, double eps_, fnn_optim_reg reg)
{
    const float w1 = (float)(1.0 - beta1), b2 = (float)beta2, w2 = (float)(1.0 - beta2);
    const float step_size = (float)step_size_, bc2_sqrt = (float)bc2_sqrt_, eps = (float)eps_;
    const reg_vals rv = reg_load(&reg);
    const int sel = (reg_any(&reg) ? 2 : 0) | (max_exp_avg_sq ? 1 : 0);
#define ADAM(G, A) adam_range(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, lo, hi, \
                              w1, b2, w2, step_size, bc2_sqrt, eps, rv, G, A)
    PARALLEL_RANGE(n, {
        switch (sel) {
        case 0: ADAM(0, 0); break;
        case 1: ADAM(0, 1); break;
        case 2: ADAM(1, 0); break;
        default: ADAM(1, 1); break;
        }
    });
#undef ADAM
}

/* -------------------------------------------------------- constraints -- */

void fnn_soft_threshold(float *p, ptrdiff_t n, float t)
{
    PARALLEL_RANGE(n, {
        for (ptrdiff_t i = lo; i < hi; i++)
            p[i] = soft_threshold(p[i], t);
    });
}

/* Sum of squares of x[0..n) in float64, eight interleaved accumulators
 * combined in a fixed order: the same value on any thread. */
static double sumsq_f64(const float *x, ptrdiff_t n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
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
#define PARALLEL_ITEMS(count, nt, ...)                                    \
    do {                                                                   \
        int nt_ = (nt);                                                    \
        _Pragma("omp parallel num_threads(nt_) if(nt_ > 1)")               \
        {                                                                  \
            ptrdiff_t lo, hi;                                              \
            split_items((count), omp_get_thread_num(),                     \
                        omp_get_num_threads(), &lo, &hi);                  \
            unsigned ftz_ = fnn_ftz_enter();                               \
            __VA_ARGS__;                                                          \
            fnn_ftz_leave(ftz_);                                           \
        }                                                                  \
    } while (0)
#else
#define PARALLEL_ITEMS(count, nt, ...)                                    \
    do {                                                                   \
        ptrdiff_t lo = 0, hi = (count);                                    \
        unsigned ftz_ = fnn_ftz_enter();                                   \
        __VA_ARGS__;                                                              \
        fnn_ftz_leave(ftz_);                                               \
    } while (0)
#endif

void fnn_max_norm_rows(float *w, ptrdiff_t rows, ptrdiff_t cols, float max_norm)
{
    int nt = fnn_threads_for((double)rows * (double)cols, OPT_THRESHOLD);
    if ((ptrdiff_t)nt > rows)
        nt = (int)rows;
    PARALLEL_ITEMS(rows, nt, {
        for (ptrdiff_t r = lo; r < hi; r++) {
            float *row = w + r * cols;
            double norm = sqrt(sumsq_f64(row, cols));
            if (norm > (double)max_norm) {
                float scale = (float)((double)max_norm / (norm + 1e-7));
                for (ptrdiff_t j = 0; j < cols; j++)
                    row[j] = row[j] * scale;
            }
        }
    });
}

/* ------------------------------------------------------ gradient clips -- */

/* Fixed block partition for reductions: at most NB_MAX blocks of at least
 * BLOCK_MIN elements (multiples of 16), a function of n alone. */
#define NB_MAX 256
#define BLOCK_MIN 4096

static double block_sum_abs_pow(const float *x, ptrdiff_t n, double p)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t i = 0;
    if (p == 2.0) {
        return sumsq_f64(x, n);
    } else if (p == 1.0) {
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += fabs((double)x[i + j]);
        for (int j = 0; i < n; i++, j++)
            acc[j] += fabs((double)x[i]);
    } else {
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += pow(fabs((double)x[i + j]), p);
        for (int j = 0; i < n; i++, j++)
            acc[j] += pow(fabs((double)x[i]), p);
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double block_max_abs(const float *x, ptrdiff_t n)
{
    /* NaN wins, like torch's max: a comparison-based max would drop it. */
    float m = 0.0f;
    int nan = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        nan |= a != a;
        m = a > m ? a : m;
    }
    return nan ? (double)NAN : (double)m;
}

double fnn_grad_norm_pow(const float *x, ptrdiff_t n, double p)
{
    double part[NB_MAX];
    ptrdiff_t bs = (n + NB_MAX - 1) / NB_MAX;
    bs = (bs + 15) & ~(ptrdiff_t)15;
    if (bs < BLOCK_MIN)
        bs = BLOCK_MIN;
    int nb = (int)((n + bs - 1) / bs);
    const int inf = isinf(p);
    int nt = fnn_threads_for((double)n, OPT_THRESHOLD);
    if (nt > nb)
        nt = nb;
    PARALLEL_ITEMS(nb, nt, {
        for (ptrdiff_t b = lo; b < hi; b++) {
            ptrdiff_t a = b * bs, e = a + bs < n ? a + bs : n;
            part[b] = inf ? block_max_abs(x + a, e - a)
                          : block_sum_abs_pow(x + a, e - a, p);
        }
    });
    double total = 0.0;
    for (int b = 0; b < nb; b++) {
        if (inf)
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
