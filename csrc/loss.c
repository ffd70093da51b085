/* loss.c -- loss functions: forward (per-sample losses, their sum) and
 * backward (dL/dinput), fused where it pays.
 *
 * Row losses (cross-entropy, NLL, multi-margin) work on (N,C) rows; threads
 * take contiguous row ranges and every row is computed the same way whatever
 * the thread count. Per-row losses are float64 and summed in row order after
 * the parallel region. Element-wise losses (MSE, BCE-with-logits) sum float64
 * partials over a fixed partition of the flat array into FNN_LOSS_BLOCK
 * elements, combined in block order. So every result is bitwise independent
 * of the thread count.
 *
 * Inner loops keep LANES independent partial sums/maxima in small arrays, a
 * form GCC vectorises without reassociating anything (the build has no
 * -ffast-math), so the results are also the same at any vector width.
 *
 * Non-finite inputs are not checked here (that would cost a pass over the
 * data in Python): each kernel makes sure a NaN or infinity in its inputs, or
 * a target outside its domain, turns the returned total into NaN/inf, and the
 * caller inspects the inputs only then.
 */
#include "fastnn.h"

/* The selects in exp_nonpos and friends only vectorise when GCC may assume
 * FP exceptions are not observed (the build keeps the default
 * -ftrapping-math). This changes no results: no reassociation, no
 * contraction, NaN semantics kept. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define LANES 16
#define FNN_LOSS_BLOCK 8192          /* elements per partial sum (MSE, BCE) */
#define ROW_THRESHOLD 32768.0        /* elements of work per extra thread */
#define ELEM_THRESHOLD 65536.0

/* ------------------------------------------------------------ helpers -- */

static inline float bits_f(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* exp(x) for x <= 0, to about 1 ulp; 0 below -87.3 (where exp(x) is under
 * FLT_MIN and would be flushed anyway). x = n ln2 + r with |r| <= ln2/2,
 * exp(r) by its degree-7 Taylor polynomial (truncation < 6e-9 relative),
 * 2^n built in the exponent field. Branch-free, so loops over it vectorise. */
static inline float exp_nonpos(float x)
{
    const float lo = -87.33f;
    float xc = x < lo ? lo : x;
    xc = xc > 0.0f ? 0.0f : xc;
    float t = xc * 1.44269504088896341f + 12582912.0f;   /* round(x/ln2) + 1.5*2^23 */
    float n = t - 12582912.0f;
    float r = xc - n * 0.693359375f;                      /* ln2 = hi + lo, hi exact in 9 bits */
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    float scale = bits_f(((int32_t)n + 127) << 23);
    return x < lo ? 0.0f : p * scale;
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3],
 * by the atanh series to s^19 (truncation < 1e-10 relative). */
static inline float log1p_unit(float e)
{
    float s = e / (2.0f + e);
    float z = s * s;
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

/* Contiguous share t of n items split nt ways. */
static inline void share(ptrdiff_t n, int nt, int t, ptrdiff_t *lo, ptrdiff_t *hi)
{
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

static inline int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int thread_count(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

static double sum_w(const float *w, int C)
{
    double s = 0.0;
    for (int j = 0; j < C; j++)
        s += w[j];
    return s;
}

static double sum_in_order(const double *v, ptrdiff_t n)
{
    double s = 0.0;
    for (ptrdiff_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* Order-preserving map of a float's bits to int32 (and back): integer
 * max reductions vectorise, float ones (a NaN-aware select) do not. */
static inline int32_t f_key(float v)
{
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b ^ ((b >> 31) & 0x7fffffff);
}

static inline float key_f(int32_t k)
{
    return bits_f(k ^ ((k >> 31) & 0x7fffffff));
}

/* Max of x[0..C) (C >= 1) and sum of x*0 (0 if all finite, else NaN). */
static inline float row_max_check(const float *x, int C, float *check)
{
    int32_t mv[LANES];
    float ck[LANES];
    for (int l = 0; l < LANES; l++) {
        mv[l] = INT32_MIN;
        ck[l] = 0.0f;
    }
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int l = 0; l < LANES; l++) {
            const float v = x[j + l];
            const int32_t k = f_key(v);
            mv[l] = k > mv[l] ? k : mv[l];
            ck[l] += v * 0.0f;
        }
    for (; j < C; j++) {
        const int32_t k = f_key(x[j]);
        mv[0] = k > mv[0] ? k : mv[0];
        ck[0] += x[j] * 0.0f;
    }
    int32_t m = mv[0];
    float c = 0.0f;
    for (int l = 0; l < LANES; l++) {
        m = mv[l] > m ? mv[l] : m;
        c += ck[l];
    }
    *check = c;
    return key_f(m);
}

/* Sum of x*0 over x[0..n): 0 if all finite, else NaN. */
static inline float finite_check(const float *x, ptrdiff_t n)
{
    float ck[LANES] = {0};
    ptrdiff_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++)
            ck[l] += x[j + l] * 0.0f;
    for (; j < n; j++)
        ck[0] += x[j] * 0.0f;
    float c = 0.0f;
    for (int l = 0; l < LANES; l++)
        c += ck[l];
    return c;
}

/* e[j] = exp(x[j] - m) (stored if e != NULL); returns sum e[j] in float64. */
static inline double row_exp_sum(const float *x, int C, float m, float *e)
{
    double sv[LANES] = {0};
    int j = 0;
    if (e) {
        for (; j + LANES <= C; j += LANES)
            for (int l = 0; l < LANES; l++) {
                float v = exp_nonpos(x[j + l] - m);
                e[j + l] = v;
                sv[l] += (double)v;
            }
        for (; j < C; j++) {
            float v = exp_nonpos(x[j] - m);
            e[j] = v;
            sv[0] += (double)v;
        }
    } else {
        for (; j + LANES <= C; j += LANES)
            for (int l = 0; l < LANES; l++)
                sv[l] += (double)exp_nonpos(x[j + l] - m);
        for (; j < C; j++)
            sv[0] += (double)exp_nonpos(x[j] - m);
    }
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += sv[l];
    return s;
}

/* sum_j w[j] * (x[j] - m) in float64 (w == NULL: all ones). */
static inline double row_wdev_sum(const float *x, const float *w, int C, float m)
{
    double sv[LANES] = {0};
    const double md = m;
    int j = 0;
    if (w) {
        for (; j + LANES <= C; j += LANES)
            for (int l = 0; l < LANES; l++)
                sv[l] += (double)w[j + l] * ((double)x[j + l] - md);
        for (; j < C; j++)
            sv[0] += (double)w[j] * ((double)x[j] - md);
    } else {
        for (; j + LANES <= C; j += LANES)
            for (int l = 0; l < LANES; l++)
                sv[l] += (double)x[j + l] - md;
        for (; j < C; j++)
            sv[0] += (double)x[j] - md;
    }
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += sv[l];
    return s;
}

/* ------------------------------------------------------ cross-entropy -- */

/* Per-call constants of the class-index cross-entropy. The target
 * distribution of a row with label y is q_j = om*w_y*[j==y] + ec*w_j, with
 * om = 1 - smoothing, ec = smoothing / C (w_j = 1 without weights). */
typedef struct {
    int C;
    const float *w;
    float om, ec;        /* float32 copies for the gradient */
    double om_d, ec_d;   /* float64 copies for the loss */
    double wsum;         /* sum_j w_j */
} ce_par;

static ce_par ce_params(int C, const float *weight, float smoothing)
{
    ce_par P;
    P.C = C;
    P.w = weight;
    P.om_d = 1.0 - (double)smoothing;
    P.ec_d = (double)smoothing / C;
    P.om = (float)P.om_d;
    P.ec = (float)P.ec_d;
    P.wsum = weight ? sum_w(weight, C) : (double)C;
    return P;
}

/* g[j] = e[j] * a - sc * q_j in place (g holds e on entry). */
static inline void ce_row_finish(const ce_par *P, int64_t y, float a, float sc, float *g)
{
    const int C = P->C;
    const float wy = P->w ? P->w[y] : 1.0f;
    const float qy = P->om * wy + P->ec * wy;
    const float gy = g[y] * a - sc * qy;
    if (P->ec != 0.0f) {
        const float sec = sc * P->ec;
        if (P->w)
            for (int j = 0; j < C; j++)
                g[j] = g[j] * a - sec * P->w[j];
        else
            for (int j = 0; j < C; j++)
                g[j] = g[j] * a - sec;
    } else {
        for (int j = 0; j < C; j++)
            g[j] = g[j] * a;
    }
    g[y] = gy;
}

/* One row: returns its loss, stores its max and softmax coefficient
 * S/sum_j exp(x_j - max) (S = sum_j q_j); with g, also the gradient for
 * scale `scale`. */
static inline double ce_row_forward(const ce_par *P, const float *x, int64_t y,
                                    double scale, float *g, float *rmax, double *rcoef)
{
    const int C = P->C;
    float check;
    const float m = row_max_check(x, C, &check);
    const double sum = row_exp_sum(x, C, m, g);
    const double lse = log(sum);
    const double wy = P->w ? (double)P->w[y] : 1.0;
    double S = P->om_d * wy;
    double loss = P->om_d * wy * (lse - ((double)x[y] - (double)m));
    if (P->ec_d != 0.0) {
        S += P->ec_d * P->wsum;
        loss += P->ec_d * (P->wsum * lse - row_wdev_sum(x, P->w, C, m));
    }
    const double coef = S / sum;
    *rmax = m;
    *rcoef = coef;
    if (g)
        ce_row_finish(P, y, (float)(scale * coef), (float)scale, g);
    return loss + (double)check;
}

double fnn_cross_entropy_forward(int N, int C, const float *x, const int64_t *target,
                                 const float *weight, float smoothing, double scale,
                                 float *grad, float *row_max, double *row_coef,
                                 double *row_loss)
{
    const ce_par P = ce_params(C, weight, smoothing);
    int nt = fnn_threads_for((double)N * C, ROW_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++)
                row_loss[i] = ce_row_forward(&P, x + i * C, target[i], scale,
                                             grad ? grad + i * C : NULL,
                                             row_max + i, row_coef + i);
        }
        fnn_ftz_leave(s);
    }
    return sum_in_order(row_loss, N);
}

void fnn_cross_entropy_backward(int N, int C, const float *x, const int64_t *target,
                                const float *weight, float smoothing,
                                const float *row_max, const double *row_coef,
                                double scale, const float *row_scale, float *grad)
{
    const ce_par P = ce_params(C, weight, smoothing);
    int nt = fnn_threads_for((double)N * C, ROW_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++) {
                const float *xi = x + i * C;
                float *g = grad + i * C;
                const float m = row_max[i];
                for (int j = 0; j < C; j++)
                    g[j] = exp_nonpos(xi[j] - m);
                const double sc = row_scale ? scale * (double)row_scale[i] : scale;
                ce_row_finish(&P, target[i], (float)(sc * row_coef[i]), (float)sc, g);
            }
        }
        fnn_ftz_leave(s);
    }
}

/* Probability targets t (N,C): q_j = w_j * (om * t_j + ec). */
static inline float prob_q(const ce_par *P, const float *t, int j)
{
    const float v = P->om * t[j] + P->ec;
    return P->w ? P->w[j] * v : v;
}

static inline void ce_prob_row_finish(const ce_par *P, const float *t, float a, float sc,
                                      float *g)
{
    const int C = P->C;
    for (int j = 0; j < C; j++)
        g[j] = g[j] * a - sc * prob_q(P, t, j);
}

static inline double ce_prob_row_forward(const ce_par *P, const float *x, const float *t,
                                         double scale, float *g, float *rmax, double *rcoef)
{
    const int C = P->C;
    float check, tcheck;
    const float m = row_max_check(x, C, &check);
    /* negative targets (they poison the row) and finiteness of t */
    float ng[LANES], ck[LANES];
    for (int l = 0; l < LANES; l++) {
        ng[l] = 0.0f;
        ck[l] = 0.0f;
    }
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int l = 0; l < LANES; l++) {
            const float v = t[j + l];
            ng[l] += v < 0.0f ? 1.0f : 0.0f;
            ck[l] += v * 0.0f;
        }
    for (; j < C; j++) {
        ng[0] += t[j] < 0.0f ? 1.0f : 0.0f;
        ck[0] += t[j] * 0.0f;
    }
    float negs = 0.0f;
    tcheck = 0.0f;
    for (int l = 0; l < LANES; l++) {
        negs += ng[l];
        tcheck += ck[l];
    }
    const double sum = row_exp_sum(x, C, m, g);
    const double md = m;
    double sq[LANES] = {0}, sqd[LANES] = {0};
    for (j = 0; j + LANES <= C; j += LANES)
        for (int l = 0; l < LANES; l++) {
            double q = (double)prob_q(P, t, j + l);
            sq[l] += q;
            sqd[l] += q * ((double)x[j + l] - md);
        }
    for (; j < C; j++) {
        double q = (double)prob_q(P, t, j);
        sq[0] += q;
        sqd[0] += q * ((double)x[j] - md);
    }
    double S = 0.0, Sqd = 0.0;
    for (int l = 0; l < LANES; l++) {
        S += sq[l];
        Sqd += sqd[l];
    }
    const double coef = S / sum;
    *rmax = m;
    *rcoef = coef;
    if (g)
        ce_prob_row_finish(P, t, (float)(scale * coef), (float)scale, g);
    double loss = S * log(sum) - Sqd + (double)check + (double)tcheck;
    return negs != 0.0f ? NAN : loss;
}

double fnn_cross_entropy_prob_forward(int N, int C, const float *x, const float *prob,
                                      const float *weight, float smoothing, double scale,
                                      float *grad, float *row_max, double *row_coef,
                                      double *row_loss)
{
    const ce_par P = ce_params(C, weight, smoothing);
    int nt = fnn_threads_for((double)N * C, ROW_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++)
                row_loss[i] = ce_prob_row_forward(&P, x + i * C, prob + i * C, scale,
                                                  grad ? grad + i * C : NULL,
                                                  row_max + i, row_coef + i);
        }
        fnn_ftz_leave(s);
    }
    return sum_in_order(row_loss, N);
}

void fnn_cross_entropy_prob_backward(int N, int C, const float *x, const float *prob,
                                     const float *weight, float smoothing,
                                     const float *row_max, const double *row_coef,
                                     double scale, const float *row_scale, float *grad)
{
    const ce_par P = ce_params(C, weight, smoothing);
    int nt = fnn_threads_for((double)N * C, ROW_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++) {
                const float *xi = x + i * C;
                float *g = grad + i * C;
                const float m = row_max[i];
                for (int j = 0; j < C; j++)
                    g[j] = exp_nonpos(xi[j] - m);
                const double sc = row_scale ? scale * (double)row_scale[i] : scale;
                ce_prob_row_finish(&P, prob + i * C, (float)(sc * row_coef[i]), (float)sc, g);
            }
        }
        fnn_ftz_leave(s);
    }
}

/* ---------------------------------------------------------------- NLL -- */

static inline void nll_row_grad(int C, int64_t y, float wy, float sc, float *g)
{
    for (int j = 0; j < C; j++)
        g[j] = 0.0f;
    g[y] = -(sc * wy);
}

double fnn_nll_forward(int N, int C, const float *x, const int64_t *target,
                       const float *weight, double scale, float *grad, double *row_loss)
{
    int nt = fnn_threads_for((double)N * C, ELEM_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++) {
                const float *xi = x + i * C;
                const int64_t y = target[i];
                const float wy = weight ? weight[y] : 1.0f;
                float check = finite_check(xi, C);
                row_loss[i] = -(double)wy * (double)xi[y] + (double)check;
                if (grad)
                    nll_row_grad(C, y, wy, (float)scale, grad + i * C);
            }
        }
        fnn_ftz_leave(s);
    }
    return sum_in_order(row_loss, N);
}

void fnn_nll_backward(int N, int C, const int64_t *target, const float *weight,
                      double scale, const float *row_scale, float *grad)
{
    int nt = fnn_threads_for((double)N * C, ELEM_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++) {
                const int64_t y = target[i];
                const double sc = row_scale ? scale * (double)row_scale[i] : scale;
                nll_row_grad(C, y, weight ? weight[y] : 1.0f, (float)sc, grad + i * C);
            }
        }
        fnn_ftz_leave(s);
    }
}

/* ------------------------------------------------------- multi-margin -- */

static inline __attribute__((always_inline)) double
mm_row_impl(int C, const float *x, int64_t y, float wy, const int p, double margin,
            double sc, float *g, const int with_grad)
{
    const double base = margin - (double)x[y];
    const float c1 = (float)(sc * (double)wy / C);
    double sv[LANES] = {0}, gv[LANES] = {0};
    float ck[LANES] = {0};
    for (int part = 0; part < 2; part++) {
        int j = part ? (int)y + 1 : 0;
        const int end = part ? C : (int)y;
        for (; j + LANES <= end; j += LANES)
            for (int l = 0; l < LANES; l++) {
                const float v = x[j + l];
                const double z = base + (double)v;
                const double h = p == 1 ? z : z * z;
                sv[l] += z > 0.0 ? h : 0.0;
                ck[l] += v * 0.0f;
                if (with_grad) {
                    const float gj = p == 1 ? c1 : (float)(2.0 * z) * c1;
                    const float ga = z > 0.0 ? gj : 0.0f;
                    g[j + l] = ga;
                    gv[l] += (double)ga;
                }
            }
        for (; j < end; j++) {
            const float v = x[j];
            const double z = base + (double)v;
            const double h = p == 1 ? z : z * z;
            sv[0] += z > 0.0 ? h : 0.0;
            ck[0] += v * 0.0f;
            if (with_grad) {
                const float gj = p == 1 ? c1 : (float)(2.0 * z) * c1;
                const float ga = z > 0.0 ? gj : 0.0f;
                g[j] = ga;
                gv[0] += (double)ga;
            }
        }
    }
    double s = 0.0, gs = 0.0;
    float check = x[y] * 0.0f;
    for (int l = 0; l < LANES; l++) {
        s += sv[l];
        gs += gv[l];
        check += ck[l];
    }
    if (with_grad)
        g[y] = (float)-gs;
    return (double)wy * s / C + (double)check;
}

/* loss = w_y / C * sum_{j != y} max(0, margin - x_y + x_j)^p, p in {1, 2},
 * hinge terms in float64. With g: dL/dx_j = sc * w_y / C * p * z_j^(p-1)
 * for active j != y, and dL/dx_y = -(sum of those). */
static double mm_row(int C, const float *x, int64_t y, float wy, int p, double margin,
                     double sc, float *g)
{
    if (p == 1)
        return g ? mm_row_impl(C, x, y, wy, 1, margin, sc, g, 1)
                 : mm_row_impl(C, x, y, wy, 1, margin, sc, NULL, 0);
    return g ? mm_row_impl(C, x, y, wy, 2, margin, sc, g, 1)
             : mm_row_impl(C, x, y, wy, 2, margin, sc, NULL, 0);
}

double fnn_multi_margin_forward(int N, int C, const float *x, const int64_t *target,
                                const float *weight, int p, float margin, double scale,
                                float *grad, double *row_loss)
{
    int nt = fnn_threads_for((double)N * C, ROW_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++) {
                const int64_t y = target[i];
                row_loss[i] = mm_row(C, x + i * C, y, weight ? weight[y] : 1.0f, p, margin,
                                     scale, grad ? grad + i * C : NULL);
            }
        }
        fnn_ftz_leave(s);
    }
    return sum_in_order(row_loss, N);
}

void fnn_multi_margin_backward(int N, int C, const float *x, const int64_t *target,
                               const float *weight, int p, float margin, double scale,
                               const float *row_scale, float *grad)
{
    int nt = fnn_threads_for((double)N * C, ROW_THRESHOLD);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(N, nt, t, &lo, &hi);
            for (ptrdiff_t i = lo; i < hi; i++) {
                const int64_t y = target[i];
                const double sc = row_scale ? scale * (double)row_scale[i] : scale;
                mm_row(C, x + i * C, y, weight ? weight[y] : 1.0f, p, margin, sc,
                       grad + i * C);
            }
        }
        fnn_ftz_leave(s);
    }
}

/* --------------------------------------------------------- element-wise -- */

/* fn(args, lo, hi) handles elements [lo, hi) and returns their float64 loss. */
typedef double (*block_fn)(const void *args, ptrdiff_t lo, ptrdiff_t hi);

/* Run fn over the fixed FNN_LOSS_BLOCK partition of n elements, blocks
 * shared out to threads; with total, sum the block results in block order. */
static int run_blocks(ptrdiff_t n, block_fn fn, const void *args, double *total)
{
    ptrdiff_t nb = (n + FNN_LOSS_BLOCK - 1) / FNN_LOSS_BLOCK;
    double stack[64];
    double *part = NULL;
    if (total) {
        part = nb <= 64 ? stack : (double *)malloc((size_t)nb * sizeof(double));
        if (!part)
            return FNN_ENOMEM;
    }
    int nt = fnn_threads_for((double)n, ELEM_THRESHOLD);
    if (nt > nb)
        nt = (int)(nb > 0 ? nb : 1);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        unsigned s = fnn_ftz_enter();
        for (int t = thread_id(); t < nt; t += thread_count()) {
            ptrdiff_t lo, hi;
            share(nb, nt, t, &lo, &hi);
            for (ptrdiff_t b = lo; b < hi; b++) {
                ptrdiff_t e0 = b * FNN_LOSS_BLOCK;
                ptrdiff_t e1 = e0 + FNN_LOSS_BLOCK < n ? e0 + FNN_LOSS_BLOCK : n;
                double v = fn(args, e0, e1);
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

typedef struct {
    const float *x, *y;
    double scale;            /* gradient = 2 (x - y) * scale [* es[k]] */
    const float *es;         /* per-element scale or NULL */
    float *grad, *eloss;     /* either may be NULL */
} mse_args;

static double mse_block(const void *args, ptrdiff_t lo, ptrdiff_t hi)
{
    const mse_args *A = (const mse_args *)args;
    const float *x = A->x, *y = A->y;
    double sv[LANES] = {0};
    ptrdiff_t k = lo;
    for (; k + LANES <= hi; k += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = (double)x[k + l] - (double)y[k + l];
            sv[l] += d * d;
        }
    for (; k < hi; k++) {
        double d = (double)x[k] - (double)y[k];
        sv[0] += d * d;
    }
    if (A->eloss)
        for (k = lo; k < hi; k++) {
            double d = (double)x[k] - (double)y[k];
            A->eloss[k] = (float)(d * d);
        }
    if (A->grad) {
        const double s2 = 2.0 * A->scale;
        if (A->es)
            for (k = lo; k < hi; k++)
                A->grad[k] = (float)(((double)x[k] - (double)y[k]) * (s2 * (double)A->es[k]));
        else
            for (k = lo; k < hi; k++)
                A->grad[k] = (float)(((double)x[k] - (double)y[k]) * s2);
    }
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += sv[l];
    return s;
}

static double mse_grad_block(const void *args, ptrdiff_t lo, ptrdiff_t hi)
{
    mse_args A = *(const mse_args *)args;
    const double s2 = 2.0 * A.scale;
    if (A.es)
        for (ptrdiff_t k = lo; k < hi; k++)
            A.grad[k] = (float)(((double)A.x[k] - (double)A.y[k]) * (s2 * (double)A.es[k]));
    else
        for (ptrdiff_t k = lo; k < hi; k++)
            A.grad[k] = (float)(((double)A.x[k] - (double)A.y[k]) * s2);
    return 0.0;
}

int fnn_mse_forward(ptrdiff_t n, const float *x, const float *y, double scale,
                    float *grad, float *elem_loss, double *total)
{
    mse_args A = {x, y, scale, NULL, grad, elem_loss};
    return run_blocks(n, mse_block, &A, total);
}

void fnn_mse_backward(ptrdiff_t n, const float *x, const float *y, double scale,
                      const float *elem_scale, float *grad)
{
    mse_args A = {x, y, scale, elem_scale, grad, NULL};
    run_blocks(n, mse_grad_block, &A, NULL);
}

typedef struct {
    const float *x, *y;
    const float *pw;         /* (C) or NULL */
    ptrdiff_t C;             /* pos_weight period along the flat array */
    double scale;
    const float *es;
    float *grad, *eloss;
} bce_args;

/* One element of BCE-with-logits: returns its loss (float64) and its
 * derivative (for scale 1) in *d. With e = exp(-|x|) and pos_weight p:
 *   loss = max(x,0) - x y + log1p(e) + (p - 1) y (max(-x,0) + log1p(e))
 *   d    = l sigmoid(x) - p y,   l = 1 + (p - 1) y. */
static inline __attribute__((always_inline)) double
bce_elem(float xv, float yv, float p, float *d)
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

/* A contiguous run of n elements sharing the pos_weight slice pw[0..n)
 * (has_pw 0: pos_weight 1). Returns the float64 loss sum if want_sum; a
 * target outside [0, 1], or a NaN or infinite x or y, makes it NaN. The
 * flags are compile-time constants in each instantiation (see bce_run). */
static inline __attribute__((always_inline)) double
bce_run_impl(const float *x, const float *y, const float *pw, ptrdiff_t n, float sc,
             const float *es, float *grad, float *eloss, const int has_pw,
             const int want_sum, const int want_grad, const int has_es, const int want_eloss)
{
    double sv[LANES] = {0};
    float bad[LANES] = {0};
    ptrdiff_t k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int l = 0; l < LANES; l++) {
            const float xv = x[k + l], yv = y[k + l];
            float d;
            const double v = bce_elem(xv, yv, has_pw ? pw[k + l] : 1.0f, &d);
            if (want_sum) {
                sv[l] += v;
                bad[l] += (yv >= 0.0f && yv <= 1.0f) ? xv * 0.0f : 1.0f;
            }
            if (want_eloss)
                eloss[k + l] = (float)v;
            if (want_grad)
                grad[k + l] = d * (has_es ? sc * es[k + l] : sc);
        }
    for (; k < n; k++) {
        const float xv = x[k], yv = y[k];
        float d;
        const double v = bce_elem(xv, yv, has_pw ? pw[k] : 1.0f, &d);
        if (want_sum) {
            sv[0] += v;
            bad[0] += (yv >= 0.0f && yv <= 1.0f) ? xv * 0.0f : 1.0f;
        }
        if (want_eloss)
            eloss[k] = (float)v;
        if (want_grad)
            grad[k] = d * (has_es ? sc * es[k] : sc);
    }
    if (!want_sum)
        return 0.0;
    double s = 0.0;
    float b = 0.0f;
    for (int l = 0; l < LANES; l++) {
        s += sv[l];
        b += bad[l];
    }
    return b != 0.0f ? NAN : s;
}

#define BCE_RUN(HP, WS, WG, HE, WE) \
    bce_run_impl(x, y, pw, n, sc, es, grad, eloss, HP, WS, WG, HE, WE)
#define BCE_MODES(HP)                                       \
    switch (mode) {                                         \
    case 0: return BCE_RUN(HP, 1, 0, 0, 0); /* sum */       \
    case 1: return BCE_RUN(HP, 1, 1, 0, 0); /* sum, grad */ \
    case 2: return BCE_RUN(HP, 1, 0, 0, 1); /* sum, elem */ \
    case 3: return BCE_RUN(HP, 0, 1, 0, 0); /* grad */      \
    default: return BCE_RUN(HP, 0, 1, 1, 0); /* grad * es */ \
    }

static double bce_run(const float *x, const float *y, const float *pw, ptrdiff_t n,
                      float sc, const float *es, float *grad, float *eloss, int mode)
{
    if (pw) {
        BCE_MODES(1)
    } else {
        BCE_MODES(0)
    }
}

/* Which of the instantiations above a call needs. */
static int bce_mode(int want_sum, const float *grad, const float *es, const float *eloss)
{
    if (want_sum)
        return eloss ? 2 : grad ? 1 : 0;
    return es ? 4 : 3;
}

static double
bce_block_impl(const bce_args *A, ptrdiff_t lo, ptrdiff_t hi, int want_sum)
{
    double s = 0.0;
    ptrdiff_t k = lo;
    const int mode = bce_mode(want_sum, A->grad, A->es, A->eloss);
    while (k < hi) {
        ptrdiff_t end = hi;
        const float *pw = NULL;
        if (A->pw) {
            ptrdiff_t c = k % A->C;
            end = k - c + A->C < hi ? k - c + A->C : hi;
            pw = A->pw + c;
        }
        s += bce_run(A->x + k, A->y + k, pw, end - k, (float)A->scale,
                     A->es ? A->es + k : NULL, A->grad ? A->grad + k : NULL,
                     A->eloss ? A->eloss + k : NULL, mode);
        k = end;
    }
    return s;
}

static double bce_block(const void *args, ptrdiff_t lo, ptrdiff_t hi)
{
    return bce_block_impl((const bce_args *)args, lo, hi, 1);
}

static double bce_grad_block(const void *args, ptrdiff_t lo, ptrdiff_t hi)
{
    return bce_block_impl((const bce_args *)args, lo, hi, 0);
}

int fnn_bce_logits_forward(ptrdiff_t n, const float *x, const float *y,
                           const float *pos_weight, ptrdiff_t C, double scale,
                           float *grad, float *elem_loss, double *total)
{
    bce_args A = {x, y, pos_weight, C, scale, NULL, grad, elem_loss};
    return run_blocks(n, bce_block, &A, total);
}

void fnn_bce_logits_backward(ptrdiff_t n, const float *x, const float *y,
                             const float *pos_weight, ptrdiff_t C, double scale,
                             const float *elem_scale, float *grad)
{
    bce_args A = {x, y, pos_weight, C, scale, elem_scale, grad, NULL};
    run_blocks(n, bce_grad_block, &A, NULL);
}
