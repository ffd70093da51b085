/* reduce.h -- the one fixed-order reduction inside a loop. Private to csrc/.
 *
 * A sum over a row or block keeps FNN_LANES independent float64 (or float)
 * accumulators, lane j taking elements j, j + FNN_LANES, ...: a form the
 * compiler vectorises without reassociating anything (no -ffast-math), so
 * every ISA copy and every thread count gives the same bits. The lanes are
 * combined pairwise in a fixed order, written out (as a loop over a
 * temporary array GCC went through memory). Sums across threads go through
 * fnn_parallel_sum (parallel.h), which adds fixed blocks in block order. */
#ifndef FASTNN_REDUCE_H
#define FASTNN_REDUCE_H

#include "isa.h"

#include <math.h>

#define FNN_LANES 16

FNN_INLINE double fnn_lanes_sum(const double *v)
{
    const double a0 = v[0] + v[8], a1 = v[1] + v[9], a2 = v[2] + v[10], a3 = v[3] + v[11];
    const double a4 = v[4] + v[12], a5 = v[5] + v[13], a6 = v[6] + v[14], a7 = v[7] + v[15];
    const double b0 = a0 + a4, b1 = a1 + a5, b2 = a2 + a6, b3 = a3 + a7;
    return (b0 + b2) + (b1 + b3);
}

FNN_INLINE float fnn_lanes_sum_f(const float *v)
{
    const float a0 = v[0] + v[8], a1 = v[1] + v[9], a2 = v[2] + v[10], a3 = v[3] + v[11];
    const float a4 = v[4] + v[12], a5 = v[5] + v[13], a6 = v[6] + v[14], a7 = v[7] + v[15];
    const float b0 = a0 + a4, b1 = a1 + a5, b2 = a2 + a6, b3 = a3 + a7;
    return (b0 + b2) + (b1 + b3);
}

/* sum over x[0..n) of TERM(v), v = (double)x[i], in float64 lanes. */
#define FNN_LANE_SUM(x, n, TERM)                                                 \
    ({                                                                            \
        double acc_[FNN_LANES] = {0};                                             \
        ptrdiff_t i_ = 0;                                                         \
        for (; i_ + FNN_LANES <= (n); i_ += FNN_LANES)                            \
            for (int j_ = 0; j_ < FNN_LANES; j_++) {                              \
                const double v = (double)(x)[i_ + j_];                            \
                acc_[j_] += (TERM);                                               \
            }                                                                     \
        for (int j_ = 0; i_ < (n); i_++, j_++) {                                  \
            const double v = (double)(x)[i_];                                     \
            acc_[j_] += (TERM);                                                   \
        }                                                                         \
        fnn_lanes_sum(acc_);                                                      \
    })

FNN_INLINE double fnn_sum_f64(const float *restrict x, ptrdiff_t n)
{
    return FNN_LANE_SUM(x, n, v);
}

FNN_INLINE double fnn_sumsq_f64(const float *restrict x, ptrdiff_t n)
{
    return FNN_LANE_SUM(x, n, v * v);
}

FNN_INLINE double fnn_sumabs_f64(const float *restrict x, ptrdiff_t n)
{
    return FNN_LANE_SUM(x, n, fabs(v));
}

/* sum a[i] b[i] in float64 (products exact). */
FNN_INLINE double fnn_dot_f64(const float *restrict a, const float *restrict b, ptrdiff_t n)
{
    double acc[FNN_LANES] = {0};
    ptrdiff_t i = 0;
    for (; i + FNN_LANES <= n; i += FNN_LANES)
        for (int j = 0; j < FNN_LANES; j++)
            acc[j] += (double)a[i + j] * (double)b[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += (double)a[i] * (double)b[i];
    return fnn_lanes_sum(acc);
}

/* v[0] + v[1] + ... in index order (per-row or per-block partials). */
FNN_INLINE double fnn_sum_ordered(const double *v, ptrdiff_t n)
{
    double s = 0.0;
    for (ptrdiff_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

#endif
