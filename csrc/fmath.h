/* fmath.h -- the one set of float32 transcendental functions every kernel
 * uses (activations, losses, anything new). Private to csrc/.
 *
 * Branch-free float32 versions written as plain arithmetic on floats and
 * their bit patterns, so every loop that calls them vectorises (libm's scalar
 * erff/tanhf/log1pf cost 15-45 ns per element). One copy, so a fused op and
 * the ops it fuses agree bit for bit where the math is the same: the
 * sigmoid inside BCEWithLogitsLoss is fnn_sigmoid, as in Sigmoid. Accuracy
 * is tested in tests/test_activation.py against float64 references over
 * dense grids (fnn_act_mathfn exposes them).
 *
 * Results below 2^-126 are flushed to 0 (the kernels run with FTZ anyway).
 */
#ifndef FASTNN_FMATH_H
#define FASTNN_FMATH_H

#include "isa.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

FNN_INLINE uint32_t fnn_f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

FNN_INLINE float fnn_u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define FNN_LOG2E 1.44269502f
#define FNN_LN2_HI 0.693359375f          /* 9 significant bits: n * FNN_LN2_HI is exact */
#define FNN_LN2_LO -2.12194440e-4f       /* ln 2 - FNN_LN2_HI */
#define FNN_RSHIFT 12582912.0f           /* 1.5 * 2^23: x + FNN_RSHIFT rounds x to an integer */

/* expm1(r) = r + r^2 P(r) on |r| <= 0.35, relative error 1.4e-8 (minimax fit). */
FNN_INLINE float fnn_em_poly(float r)
{
    float p = 0.00138823967f;
    p = p * r + 0.00836717337f;
    p = p * r + 0.0416672193f;
    p = p * r + 0.16666539f;
    p = p * r + 0.49999997f;
    return r + (r * r) * p;
}

/* Results below 2^-126 (e^-87.3) are subnormal, and the kernels run with
 * flush-to-zero: they return 0 instead (one scale step, no gradual underflow). */
#define FNN_EXP_MIN_ARG -87.6f          /* round(x log2 e) >= -126 above this */

/* e^(hi + lo) for hi + lo <= 0 (or NaN), |lo| small: the argument is
 * reduced as (hi - n ln2) + lo so that hi may carry an exact large part. */
FNN_INLINE float fnn_exp_neg2(float hi, float lo)
{
    int tiny = hi < FNN_EXP_MIN_ARG;                /* false for NaN; hi = -inf takes
                                                 * an inf or NaN lo with it */
    hi = tiny ? 0.0f : hi;
    lo = tiny ? 0.0f : lo;
    float t = (hi + lo) * FNN_LOG2E + FNN_RSHIFT;
    float n = t - FNN_RSHIFT;                       /* round((hi+lo) log2 e), in [-126, 0] */
    int32_t ni = (int32_t)(fnn_f2u(t) - fnn_f2u(FNN_RSHIFT));
    float r = hi - n * FNN_LN2_HI;
    r = r + lo;
    r = r - n * FNN_LN2_LO;
    float p = 1.0f + fnn_em_poly(r);
    float y = p * fnn_u2f(((uint32_t)ni + 127u) << 23);
    return tiny ? 0.0f : y;
}

/* e^x for x <= 0 (or NaN). */
FNN_INLINE float fnn_exp_neg(float x)
{
    int tiny = x < FNN_EXP_MIN_ARG;
    x = tiny ? 0.0f : x;
    float t = x * FNN_LOG2E + FNN_RSHIFT;
    float n = t - FNN_RSHIFT;
    int32_t ni = (int32_t)(fnn_f2u(t) - fnn_f2u(FNN_RSHIFT));
    float r = x - n * FNN_LN2_HI;
    r = r - n * FNN_LN2_LO;
    float p = 1.0f + fnn_em_poly(r);
    float y = p * fnn_u2f(((uint32_t)ni + 127u) << 23);
    return tiny ? 0.0f : y;
}

/* e^x - 1 for x <= 0 (or NaN), accurate near 0: 2^n expm1(r) + (2^n - 1). */
FNN_INLINE float fnn_expm1_neg(float x)
{
    x = x < -30.0f ? -30.0f : x;                /* expm1(-30) rounds to -1 */
    float t = x * FNN_LOG2E + FNN_RSHIFT;
    float n = t - FNN_RSHIFT;                       /* in [-44, 0] */
    int32_t ni = (int32_t)(fnn_f2u(t) - fnn_f2u(FNN_RSHIFT));
    float r = x - n * FNN_LN2_HI;
    r = r - n * FNN_LN2_LO;
    float s = fnn_u2f(((uint32_t)ni + 127u) << 23);
    return s * fnn_em_poly(r) + (s - 1.0f);
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3],
 * = 2s + s^3 L(s^2), L a minimax fit (relative error 4.5e-9). */
FNN_INLINE float fnn_log1p_01(float e)
{
    float s = e / (2.0f + e);
    float s2 = s * s;
    float p = 0.280119836f;
    p = p * s2 + 0.280018061f;
    p = p * s2 + 0.400215268f;
    p = p * s2 + 0.666664183f;
    return 2.0f * s + (s * s2) * p;
}

/* tanh(x) = sign(x) * -m / (2 + m), m = expm1(-2|x|): no cancellation near
 * 0, exactly +-1 for |x| > 9.1. */
FNN_INLINE float fnn_tanh(float x)
{
    float m = fnn_expm1_neg(-2.0f * fabsf(x));
    return copysignf(-m / (2.0f + m), x);
}

/* 1 / (1 + e^-x) given e = e^-|x| (so nothing overflows): the one sigmoid
 * formula, shared by Sigmoid and the fused BCE-with-logits loss. */
FNN_INLINE float fnn_sigmoid_e(float x, float e)
{
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;               /* NaN: e * s = NaN */
}

FNN_INLINE float fnn_sigmoid(float x)
{
    return fnn_sigmoid_e(x, fnn_exp_neg(-fabsf(x)));
}

/* e^(-x^2/2) with x^2 split exactly: x = h + l, h with 12 significant bits,
 * so h^2 / 2 is exact and the rest is small. */
FNN_INLINE float fnn_gauss(float a /* |x| */)
{
    float h = fnn_u2f(fnn_f2u(a) & 0xFFFFF000u);
    float l = a - h;
    float hi = -0.5f * (h * h);
    float lo = -0.5f * (l * (a + h));
    return fnn_exp_neg2(hi, lo);
}

/* Mills-type ratio R(a) = Phi(-a) e^(a^2/2) for a >= 0: a rational minimax
 * fit with positive coefficients on [0, 14] (relative error 5.5e-9). */
FNN_INLINE float fnn_mills(float a)
{
    a = a > 16.0f ? 16.0f : a;                  /* beyond 14, e^(-a^2/2) is 0 */
    float p = 0.00407701731f;
    p = p * a + 0.040368855f;
    p = p * a + 0.182451323f;
    p = p * a + 0.437237442f;
    p = p * a + 0.5f;
    float q = 0.010219438f;
    q = q * a + 0.101196527f;
    q = q * a + 0.467401236f;
    q = q * a + 1.19924819f;
    q = q * a + 1.67235982f;
    q = q * a + 1.0f;
    return p / q;
}

#define FNN_INV_SQRT_2PI 0.398942280f

/* Standard normal CDF Phi(x) and, through *pdf, the density phi(x). The lower
 * tail Phi(-|x|) = e^(-x^2/2) R(|x|) keeps its relative accuracy down to the
 * underflow threshold (x ~ -14); Phi(x) = 1 - Phi(-x) above 0. */
FNN_INLINE float fnn_ncdf(float x, float *pdf)
{
    float a = fabsf(x);
    float g = fnn_gauss(a);
    float q = g * fnn_mills(a);
    *pdf = g * FNN_INV_SQRT_2PI;
    return x < 0.0f ? q : 1.0f - q;             /* NaN: 1 - NaN */
}

#endif
