/* loss.h -- what the loss files share: the job record, the row helpers and
 * the two drivers (loss.c). loss_xent.c: cross-entropy, NLL, multi-margin;
 * loss_reg.c: MSE, BCE with logits. Private to csrc/. */
#ifndef FASTNN_LOSS_H
#define FASTNN_LOSS_H

#include "fmath.h"
#include "parallel.h"
#include "reduce.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define LOSS_BLOCK 8192              /* elements per partial sum (MSE, BCE) */

#define AI FNN_INLINE

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

/* Row helpers: FNN_LANES-wide chunks, then a scalar tail. */

AI void key_chunk(const float *x, int32_t *mx, int32_t *mn)
{
    for (int l = 0; l < FNN_LANES; l++) {
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
    int32_t mx[FNN_LANES], mn[FNN_LANES];
    for (int l = 0; l < FNN_LANES; l++) {
        mx[l] = INT32_MIN;
        mn[l] = INT32_MAX;
    }
    ptrdiff_t j = 0;
    for (; j + FNN_LANES <= n; j += FNN_LANES)
        key_chunk(x + j, mx, mn);
    int32_t h = mx[0], o = mn[0];
    for (; j < n; j++) {
        const int32_t k = f_key(x[j]);
        h = k > h ? k : h;
        o = k < o ? k : o;
    }
    for (int l = 1; l < FNN_LANES; l++) {
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
    float ck[FNN_LANES] = {0}, t = 0.0f;
    ptrdiff_t j = 0;
    for (; j + FNN_LANES <= n; j += FNN_LANES)
        for (int l = 0; l < FNN_LANES; l++)
            ck[l] += x[j + l] * 0.0f;
    for (; j < n; j++)
        t += x[j] * 0.0f;
    return fnn_lanes_sum_f(ck) + t;
}

AI void exp_chunk(const float *x, float m, float *e, double *sv)
{
    for (int l = 0; l < FNN_LANES; l++) {
        const float v = fnn_exp_neg(x[l] - m);
        e[l] = v;
        sv[l] += (double)v;
    }
}

AI void exp_sum_chunk(const float *x, float m, double *sv)
{
    for (int l = 0; l < FNN_LANES; l++)
        sv[l] += (double)fnn_exp_neg(x[l] - m);
}

/* e[j] = exp(x[j] - m) (stored if e != NULL); returns sum_j e[j] in float64.
 * (One inner loop per loop nest, so GCC keeps the sums in registers.) */
AI double row_exp_sum(const float *x, int C, float m, float *e)
{
    double sv[FNN_LANES] = {0};
    int j = 0;
    if (e) {
        for (; j + FNN_LANES <= C; j += FNN_LANES)
            exp_chunk(x + j, m, e + j, sv);
    } else {
        for (; j + FNN_LANES <= C; j += FNN_LANES)
            exp_sum_chunk(x + j, m, sv);
    }
    double ts = 0.0;
    for (; j < C; j++) {
        const float v = fnn_exp_neg(x[j] - m);
        if (e) e[j] = v;
        ts += (double)v;
    }
    return fnn_lanes_sum(sv) + ts;
}

/* e[j] = exp(x[j] - m), the same values row_exp_sum stores. */
AI void row_exp(const float *x, int C, float m, float *e)
{
    for (int j = 0; j < C; j++)
        e[j] = fnn_exp_neg(x[j] - m);
}

/* sum_j w[j] (x[j] - m) in float64 (w == NULL: all ones). */
AI double row_wdev_sum(const float *x, const float *w, int C, float m)
{
    double sv[FNN_LANES] = {0}, t = 0.0;
    const double md = m;
    int j = 0;
    if (w) {
        for (; j + FNN_LANES <= C; j += FNN_LANES)
            for (int l = 0; l < FNN_LANES; l++)
                sv[l] += (double)w[j + l] * ((double)x[j + l] - md);
        for (; j < C; j++)
            t += (double)w[j] * ((double)x[j] - md);
    } else {
        for (; j + FNN_LANES <= C; j += FNN_LANES)
            for (int l = 0; l < FNN_LANES; l++)
                sv[l] += (double)x[j + l] - md;
        for (; j < C; j++)
            t += (double)x[j] - md;
    }
    return fnn_lanes_sum(sv) + t;
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

/* A range body: rows or elements [lo, hi); element-wise bodies return their
 * float64 loss sum, row bodies store per-row losses and return 0. Each is
 * compiled per ISA path: FNN_ISA_CLONES(double, NAME, RANGE_PARAMS,
 * RANGE_ARGS), run with run_rows(..., FNN_ISA_PICK(NAME), ...). */
typedef double (*range_fn)(const job *J, ptrdiff_t lo, ptrdiff_t hi);
#define RANGE_PARAMS (const job *J, ptrdiff_t lo, ptrdiff_t hi)
#define RANGE_ARGS (J, lo, hi)
#define ISA_VARIANTS(NAME) FNN_ISA_CLONES(double, NAME, RANGE_PARAMS, RANGE_ARGS)

/* Work per logit (row losses) and per element (MSE, BCE) in streaming
 * elements (parallel.h). */
#define ROW_COST 2.0
#define ELEM_COST 0.5

/* fn over rows [0, N) in contiguous row ranges (fnn_parallel_for). With
 * class-index targets (J->ti), every target is checked against [0, C) first:
 * FNN_EINDEX and nothing computed if one is out of range. */
int loss_run_rows(ptrdiff_t N, double cost, range_fn fn, const job *J);
/* fn over the fixed LOSS_BLOCK partition of n elements; with total, the
 * block sums added in block order (fnn_parallel_sum). */
int loss_run_blocks(ptrdiff_t n, range_fn fn, const job *J, double *total);

#endif
