/* optim_adam.c -- the fused Adam / AdamW update (see optim.c for the
 * conventions shared by every update). */
#include "optim.h"

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
    float *const *p; const float *const *g; float *const *m, *const *v, *const *vmax;
    const double *step_size, *bc2_sqrt;
    float w1, beta2, w2, eps;
    int sel;                 /* level * 2 + amsgrad */
    reg_vals r;
} adam_args;

#define ADAM(L, A) adam_range(a->p[k], a->g[k], a->m[k], a->v[k], A ? a->vmax[k] : NULL, lo, \
                              hi, a->w1, a->beta2, a->w2, (float)a->step_size[k],              \
                              (float)a->bc2_sqrt[k], a->eps, a->r, L, A)
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

void fnn_adam_step(int count, float *const *p, const float *const *g, float *const *exp_avg,
                   float *const *exp_avg_sq, float *const *max_exp_avg_sq, const ptrdiff_t *n,
                   const double *step_size, const double *bc2_sqrt, double beta1,
                   double beta2, double eps, fnn_optim_reg reg)
{
    const adam_args args = {
        p, g, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, bc2_sqrt,
        (float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2), (float)eps,
        reg_level(&reg) * 2 + (max_exp_avg_sq ? 1 : 0), reg_load(&reg)};
    RUN_MULTI(adam, count, n, args);
}

