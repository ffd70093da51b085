/* optim_clip.c -- weight constraints (soft-threshold, max-norm), gradient
 * norms and clipping over flat float32 arrays. Reductions sum float64
 * partials over a fixed block partition that depends only on the array
 * lengths, so results do not depend on the thread count. */
#include "optim.h"
#include "workspace.h"

/* -------------------------------------------------------- constraints -- */

typedef struct {
    float *const *x;
    float c, lo, hi;
} inplace_args;

DEFINE_BLOCKS(soft, inplace_args, {
    float *xk = a->x[k];
    for (ptrdiff_t i = lo; i < hi; i++)
        xk[i] = soft_threshold(xk[i], a->c);
})

void fnn_soft_threshold(float *p, ptrdiff_t n, float t)
{
    float *const x[1] = {p};
    const ptrdiff_t nn[1] = {n};
    const inplace_args args = {x, t, 0.0f, 0.0f};
    RUN_MULTI(soft, 1, nn, args);
}

/* sum |x|^p over x[0..n), float64 (scalar pow: any p > 0) */
FNN_INLINE double sumpow_f64(const float *x, ptrdiff_t n, double p)
{
    return FNN_LANE_SUM(x, n, pow(fabs(v), p));
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

DEFINE_ITEMS(maxnorm, maxnorm_args, {
    (void)k;
    for (ptrdiff_t r = lo; r < hi; r++) {
        float *row = a->w + r * a->cols;
        double norm = sqrt(fnn_sumsq_f64(row, a->cols));
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
    const maxnorm_args args = {w, cols, max_norm};
    RUN_ITEMS(maxnorm, rows, (double)rows * (double)cols * OPT_COST * FNN_COST_ELEM, args);
}

/* ------------------------------------------------------ gradient clips -- */

/* Fixed block partition for reductions: each array is cut into at most
 * NB_MAX blocks of at least BLOCK_MIN elements (multiples of 16), a
 * function of its length alone; the blocks of all arrays are shared out
 * among the threads, and the partials are summed in array and block order. */
#define NB_MAX 256
#define BLOCK_MIN 4096

FNN_INLINE ptrdiff_t block_size(ptrdiff_t n)
{
    ptrdiff_t bs = (n + NB_MAX - 1) / NB_MAX;
    bs = (bs + 15) & ~(ptrdiff_t)15;
    return bs < BLOCK_MIN ? BLOCK_MIN : bs;
}

FNN_INLINE ptrdiff_t num_blocks(ptrdiff_t n)
{
    return n > 0 ? (n + block_size(n) - 1) / block_size(n) : 0;
}

typedef struct {
    const float *const *x;
    const ptrdiff_t *n;
    const ptrdiff_t *first;  /* first[k]: index of array k's first block */
    int count;
    double p;
    int kind;                /* 0: |x|^2, 1: |x|, 2: |x|^p, 3: max |x| */
    double *part;
} norm_args;

DEFINE_ITEMS(norm, norm_args, {
    (void)k;
    int arr = 0;
    for (ptrdiff_t b = lo; b < hi; b++) {
        while (a->first[arr + 1] <= b)       /* the array block b belongs to */
            arr++;
        const ptrdiff_t bs = block_size(a->n[arr]);
        const ptrdiff_t s = (b - a->first[arr]) * bs;
        const ptrdiff_t e = s + bs < a->n[arr] ? s + bs : a->n[arr];
        const float *x = a->x[arr] + s;
        switch (a->kind) {
        case 0: a->part[b] = fnn_sumsq_f64(x, e - s); break;
        case 1: a->part[b] = fnn_sumabs_f64(x, e - s); break;
        case 2: a->part[b] = sumpow_f64(x, e - s, a->p); break;
        default: a->part[b] = (double)maxabs_f32(x, e - s); break;
        }
    }
})

int fnn_grad_norm_pow(int count, const float *const *x, const ptrdiff_t *n, double p,
                      double *out)
{
    *out = 0.0;
    /* first (count + 1) and the partials (nb) in the shared region */
    ptrdiff_t nb = 0;
    for (int k = 0; k < count; k++)
        nb += num_blocks(n[k]);
    const size_t first_bytes = ((size_t)count + 1) * sizeof(ptrdiff_t);
    char *ws = fnn_ws_shared((first_bytes + 63) / 64 * 64 + (size_t)(nb > 0 ? nb : 1) * sizeof(double));
    if (!ws)
        return FNN_ENOMEM;
    ptrdiff_t *first = (ptrdiff_t *)(void *)ws;
    double *part = (double *)(void *)(ws + (first_bytes + 63) / 64 * 64);
    first[0] = 0;
    for (int k = 0; k < count; k++)
        first[k + 1] = first[k] + num_blocks(n[k]);
    const int kind = isinf(p) ? 3 : p == 2.0 ? 0 : p == 1.0 ? 1 : 2;
    if (nb > 0) {
        const norm_args args = {x, n, first, count, p, kind, part};
        RUN_ITEMS(norm, nb, (double)total_elems(count, n) * OPT_COST * FNN_COST_ELEM, args);
    }
    double total = 0.0;
    for (int k = 0; k < count; k++) {
        double sk = 0.0;                     /* array k, then the running total */
        for (ptrdiff_t b = first[k]; b < first[k + 1]; b++) {
            if (kind == 3)
                sk = (part[b] > sk || part[b] != part[b]) ? part[b] : sk;
            else
                sk += part[b];
        }
        if (kind == 3)
            total = (sk > total || sk != sk) ? sk : total;
        else
            total += sk;
    }
    *out = total;
    return FNN_OK;
}

DEFINE_BLOCKS(scale, inplace_args, {
    float *xk = a->x[k];
    for (ptrdiff_t i = lo; i < hi; i++)
        xk[i] = xk[i] * a->c;
})

void fnn_scale_inplace(int count, float *const *x, const ptrdiff_t *n, float c)
{
    const inplace_args args = {x, c, 0.0f, 0.0f};
    RUN_MULTI(scale, count, n, args);
}

DEFINE_BLOCKS(clamp, inplace_args, {
    float *xk = a->x[k];
    const float lo_v = a->lo, hi_v = a->hi;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float v = xk[i];
        v = v < lo_v ? lo_v : v;
        v = v > hi_v ? hi_v : v;
        xk[i] = v;
    }
})

void fnn_clamp_inplace(int count, float *const *x, const ptrdiff_t *n, float lo_v,
                       float hi_v)
{
    const inplace_args args = {x, 0.0f, lo_v, hi_v};
    RUN_MULTI(clamp, count, n, args);
}
