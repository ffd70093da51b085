/* optim.h -- what the optimizer files share (optim.c: SGD, Adagrad,
 * RMSprop, Adadelta; optim_adam.c; optim_clip.c: constraints, norms,
 * clipping). Private to csrc/. */
#ifndef FASTNN_OPTIM_H
#define FASTNN_OPTIM_H

#include "isa.h"
#include "parallel.h"
#include "reduce.h"

#include <math.h>
#include <string.h>

#define FNN_RESTRICT __restrict__

/* Work of one element of an update in streaming elements (parallel.h): 32k
 * elements (0.4-1 MB of memory traffic) per extra thread. */
#define OPT_COST 1.0

/* Run body(k, lo, hi) over `count` arrays, array k of n[k] elements, in ONE
 * parallel region (one fork/join per optimizer step, not one per
 * parameter). The region's parts cut [0, total) of the arrays' summed size;
 * a part [glo, ghi) takes the same share, [glo, ghi) / total, of EVERY
 * array (cut on 16-element boundaries, the last piece ending at n[k]).
 * Thread t then updates the same rows of each weight matrix that the
 * GEMMs' row split gave it -- the rows of dW = dY^T X it wrote, the rows of
 * W the forward y^T = W x^T read -- so those lines are in its own caches.
 * Cutting the concatenation instead gave the first thread the first layers
 * whole: on a 2-vCPU Zen 4 VM whose vCPUs sat on two L3s, the MLP
 * 784-1024-1024-10's Adam step took 3.2 ms against 2.1 ms cut this way
 * (the whole training step 0.90x the time; on one L3 0.99x). Elementwise,
 * so the bits do not depend on the cut. */
FNN_INLINE ptrdiff_t total_elems(int count, const ptrdiff_t *n)
{
    ptrdiff_t t = 0;
    for (int k = 0; k < count; k++)
        t += n[k];
    return t;
}

FNN_INLINE ptrdiff_t share_bound(ptrdiff_t n, ptrdiff_t x, ptrdiff_t total)
{
    return x >= total ? n : (ptrdiff_t)((double)n * ((double)x / (double)total)) / 16 * 16;
}

#define FOR_SHARES(count, n, total, glo, ghi, ...)                         \
    do {                                                                   \
        for (int k = 0; k < (count); k++) {                                \
            const ptrdiff_t lo = share_bound((n)[k], (glo), (total));      \
            const ptrdiff_t hi = share_bound((n)[k], (ghi), (total));      \
            if (lo < hi) {                                                 \
                __VA_ARGS__;                                               \
            }                                                              \
        }                                                                  \
    } while (0)

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

/* Each optimizer's loops are compiled per ISA path (isa.h): the same IEEE
 * operations in the same order (no contraction), so every path gives bitwise
 * the same results. The AVX-512 copy is about 5% faster on the plain
 * memory-bound loops and up to 40% on the L1 ones in cache (masks instead of
 * SSE2's and/andnot blends).
 *
 * DEFINE_BLOCKS(name, args_t, { body }) defines name##_block(a, k, lo, hi):
 * elements [lo, hi) of array k (the reductions use k = 0 and items for lo,
 * hi). RUN_MULTI runs it over `count` arrays of n[k] as one fnn_parallel_for
 * (FOR_SHARES: each part the same share of every array); RUN_ITEMS over
 * `count` items. */
typedef struct {
    int count;
    const ptrdiff_t *n;
    ptrdiff_t total;         /* sum of n[k], the range RUN_MULTI cuts */
    const void *args;
} opt_job;

#define DEFINE_BLOCKS(name, args_t, ...)                                        \
    FNN_INLINE void name##_block(const args_t *a, int k, ptrdiff_t lo, ptrdiff_t hi) \
    __VA_ARGS__                                                                 \
    FNN_INLINE int name##_multi_body(void *ctx, ptrdiff_t glo, ptrdiff_t ghi, int part) \
    {                                                                           \
        const opt_job *J = ctx;                                                 \
        (void)part;                                                             \
        FOR_SHARES(J->count, J->n, J->total, glo, ghi,                          \
                   name##_block((const args_t *)J->args, k, lo, hi));           \
        return 0;                                                               \
    }                                                                           \
    FNN_RANGE_CLONES(name##_multi)

#define DEFINE_ITEMS(name, args_t, ...)                                         \
    FNN_INLINE void name##_block(const args_t *a, int k, ptrdiff_t lo, ptrdiff_t hi) \
    __VA_ARGS__                                                                 \
    FNN_INLINE int name##_items_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part) \
    {                                                                           \
        (void)part;                                                             \
        name##_block((const args_t *)((const opt_job *)ctx)->args, 0, lo, hi);  \
        return 0;                                                               \
    }                                                                           \
    FNN_RANGE_CLONES(name##_items)

#define RUN_MULTI(name, count, n, args)                                         \
    do {                                                                        \
        const ptrdiff_t total_ = total_elems((count), (n));                     \
        const opt_job J_ = {(count), (n), total_, &(args)};                     \
        fnn_parallel_for(total_, 16, (double)total_ * OPT_COST * FNN_COST_ELEM,  \
                         FNN_ISA_PICK(name##_multi), (void *)&J_);              \
    } while (0)

/* `flops`: the work of the whole call (parallel.h). */
#define RUN_ITEMS(name, count, flops, args)                                     \
    do {                                                                        \
        const opt_job J_ = {0, NULL, 0, &(args)};                               \
        fnn_parallel_for((count), 1, (flops), FNN_ISA_PICK(name##_items), (void *)&J_); \
    } while (0)

#endif
