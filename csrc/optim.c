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
 * An update takes all the arrays of a param group at once and runs one
 * parallel region over their concatenation, cut into contiguous ranges, one
 * per thread, on 16-element boundaries; every element's arithmetic is the
 * same whichever thread (and vector lane or scalar tail) does it, so results
 * do not depend on the thread count. Reductions (norms) sum float64 partials
 * over a fixed block partition that depends only on the array lengths. */
#include "optim.h"

/* The public step functions below take `count` parameter arrays: array k
 * has n[k] elements, and p[k], g[k] and every state array [k] hold n[k]
 * floats. Per-array scalars (bias corrections, first-step flags) come as
 * arrays of count; the rest is shared by the whole param group. */

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
    float *const *p; const float *const *g; float *const *buf;
    const int *init_buf;
    float lr, momentum, keep;
    int nesterov, level;
    reg_vals r;
} sgd_args;

/* every (level, momentum, nesterov) combination compiled apart */
#define SGD_M(L, N) sgd_range(a->p[k], a->g[k], a->buf[k], lo, hi, a->lr, a->momentum, \
                              a->keep, N, a->init_buf[k], a->r, L, 1)
#define SGD_0(L) sgd_range(a->p[k], a->g[k], NULL, lo, hi, a->lr, 0.0f, 0.0f, 0, 0, a->r, L, 0)
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

void fnn_sgd_step(int count, float *const *p, const float *const *g, float *const *buf,
                  const int *init_buf, const ptrdiff_t *n, double lr, double momentum,
                  double dampening, int nesterov, fnn_optim_reg reg)
{
    const sgd_args args = {p, g, buf, init_buf, (float)lr, (float)momentum,
                           (float)(1.0 - dampening), nesterov != 0, reg_level(&reg),
                           reg_load(&reg)};
    RUN_MULTI(sgd, count, n, args);
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
    float *const *p; const float *const *g; float *const *sum;
    const double *clr;
    float eps;
    int level;
    reg_vals r;
} adagrad_args;

#define ADAGRAD(L) adagrad_range(a->p[k], a->g[k], a->sum[k], lo, hi, (float)a->clr[k], \
                                 a->eps, a->r, L)
DEFINE_BLOCKS(adagrad, adagrad_args, {
    switch (a->level) {
    case 0: ADAGRAD(0); break;
    case 1: ADAGRAD(1); break;
    default: ADAGRAD(2); break;
    }
})
#undef ADAGRAD

void fnn_adagrad_step(int count, float *const *p, const float *const *g, float *const *sum,
                      const ptrdiff_t *n, const double *clr, double eps, fnn_optim_reg reg)
{
    const adagrad_args args = {p, g, sum, clr, (float)eps, reg_level(&reg), reg_load(&reg)};
    RUN_MULTI(adagrad, count, n, args);
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
    float *const *p; const float *const *g; float *const *sq, *const *gavg, *const *buf;
    float lr, alpha, one_m_alpha, eps, momentum;
    int sel;                 /* level * 4 + centered * 2 + momentum */
    reg_vals r;
} rmsprop_args;

/* every (level, centered, momentum) combination compiled apart */
#define RMS(L, C, M) rmsprop_range(a->p[k], a->g[k], a->sq[k], C ? a->gavg[k] : NULL,     \
                                   M ? a->buf[k] : NULL, lo, hi, a->lr, a->alpha,          \
                                   a->one_m_alpha, a->eps, a->momentum, a->r, L, C, M)
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

void fnn_rmsprop_step(int count, float *const *p, const float *const *g,
                      float *const *square_avg, float *const *grad_avg, float *const *buf,
                      const ptrdiff_t *n, double lr, double alpha, double eps,
                      double momentum, fnn_optim_reg reg)
{
    const rmsprop_args args = {
        p, g, square_avg, grad_avg, buf, (float)lr, (float)alpha, (float)(1.0 - alpha),
        (float)eps, (float)momentum,
        reg_level(&reg) * 4 + (grad_avg ? 2 : 0) + (buf ? 1 : 0), reg_load(&reg)};
    RUN_MULTI(rmsprop, count, n, args);
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
    float *const *p; const float *const *g; float *const *sq, *const *acc;
    float lr, rho, one_m_rho, eps;
    int level;
    reg_vals r;
} adadelta_args;

#define ADADELTA(L) adadelta_range(a->p[k], a->g[k], a->sq[k], a->acc[k], lo, hi, a->lr, \
                                   a->rho, a->one_m_rho, a->eps, a->r, L)
DEFINE_BLOCKS(adadelta, adadelta_args, {
    switch (a->level) {
    case 0: ADADELTA(0); break;
    case 1: ADADELTA(1); break;
    default: ADADELTA(2); break;
    }
})
#undef ADADELTA

void fnn_adadelta_step(int count, float *const *p, const float *const *g,
                       float *const *square_avg, float *const *acc_delta,
                       const ptrdiff_t *n, double lr, double rho, double eps,
                       fnn_optim_reg reg)
{
    const adadelta_args args = {p, g, square_avg, acc_delta, (float)lr, (float)rho,
                                (float)(1.0 - rho), (float)eps, reg_level(&reg),
                                reg_load(&reg)};
    RUN_MULTI(adadelta, count, n, args);
}

