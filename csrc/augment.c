/* augment.c -- per-sample random image augmentation: integer shifts (random
 * translation and random crop), horizontal flip, affine warp with bilinear
 * sampling, brightness/contrast jitter.
 *
 * Random parameters. Slot k (0..3) of sample i is 32-bit word k of
 * Philox4x32-10(counter = (i low word, i high word, 0, 0), key = seed): the
 * element 4 i + k of rng.c's stream. It depends only on (seed, i, k), so a
 * sample gets the same parameters on any thread count and whatever batch
 * partition. From a word w:
 *   u(w)          = w / 2^32, uniform in [0, 1) (computed in double, exact);
 *   randint(w, n) = floor(w n / 2^32), in [0, n).
 *
 * Images are float32 (N, C, H, W), C-contiguous; every kernel writes a new
 * output and never reads it. Threads split the batch by samples (a static
 * partition), so a sample is computed by exactly one thread with the same
 * arithmetic whatever the thread count: results are bitwise identical on any
 * number of threads. Pure data movement (shifts, flips, identity warps) is
 * memcpy or plain loads and stores, so it keeps every bit of the input
 * (NaN payloads, -0.0, denormals); arithmetic runs with flush-to-zero.
 */
#include "isa.h"
#include "parallel.h"
#include "reduce.h"
#include "workspace.h"

#include <math.h>
#include <string.h>

/* The warp's two hot loops are compiled per ISA path (isa.h). The
 * coordinate pass vectorises to the full width; the tap loads are paired
 * 8-byte loads in all three (the compiler's hardware gathers measured 2x
 * slower than scalar loads). Only integer ops and correctly rounded float
 * + - * (no contraction) are used, so the three give bitwise equal results. */

/* Work per element in streaming-element units (parallel.h): copies move
 * ~2-4 elements per ns, brightness/contrast half that, the bilinear warp
 * ~0.5. */
#define AUG_COPY_COST 1.0
#define AUG_COLOR_COST 2.0
#define AUG_WARP_COST 8.0

#define AUG_PI 3.14159265358979323846

/* ------------------------------------------------------------ helpers -- */

static void sample_words(uint64_t seed, ptrdiff_t i, uint32_t w[4])
{
    const uint32_t ctr[4] = {(uint32_t)(uint64_t)i, (uint32_t)((uint64_t)i >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    fnn_philox4x32_10(ctr, key, w);
}

static double unit_of(uint32_t w)
{
    return (double)w * (1.0 / 4294967296.0);
}

static int64_t randint_of(uint32_t w, uint32_t n)
{
    return (int64_t)(((uint64_t)w * (uint64_t)n) >> 32);
}

static void fill_floats(float *p, ptrdiff_t n, float v)
{
    for (ptrdiff_t k = 0; k < n; k++)
        p[k] = v;
}

/* Run body(ctx, i0, i1, scratch) over samples [0, N) with fnn_parallel_for;
 * each part gets `scratch_bytes` of its thread's workspace (NULL when 0).
 * Returns FNN_ENOMEM if a thread's workspace could not grow. */
typedef void (*sample_fn)(void *ctx, ptrdiff_t i0, ptrdiff_t i1, void *scratch);

typedef struct {
    size_t scratch_bytes;
    sample_fn body;
    void *ctx;
} samples_job;

static int samples_part(void *c, ptrdiff_t i0, ptrdiff_t i1, int part)
{
    const samples_job *J = c;
    (void)part;
    void *scratch = NULL;
    if (J->scratch_bytes && !(scratch = fnn_ws_thread(J->scratch_bytes)))
        return FNN_ENOMEM;
    J->body(J->ctx, i0, i1, scratch);
    return FNN_OK;
}

static int run_samples(ptrdiff_t N, double elems, double cost, size_t scratch_bytes,
                       sample_fn body, void *ctx)
{
    samples_job J = {scratch_bytes, body, ctx};
    return fnn_parallel_for(N, 1, elems * cost * FNN_COST_ELEM, samples_part, &J);
}

/* One plane: dst (Ho, Wo)[r, c] = src (H, W)[r + oy, c + ox], or fill where
 * that lies outside src. */
static void shift_plane(const float *src, int H, int W, float *dst, int Ho,
                        int Wo, int64_t oy, int64_t ox, float fill)
{
    /* output columns [c0, c1) read src columns [c0 + ox, c1 + ox) */
    int64_t c0 = ox < 0 ? -ox : 0, c1 = (int64_t)W - ox;
    if (c0 > Wo)
        c0 = Wo;
    if (c1 > Wo)
        c1 = Wo;
    if (c1 < c0)
        c1 = c0;
    for (int r = 0; r < Ho; r++) {
        float *d = dst + (ptrdiff_t)r * Wo;
        int64_t sr = (int64_t)r + oy;
        if (sr < 0 || sr >= H || c1 == c0) {
            fill_floats(d, Wo, fill);
            continue;
        }
        fill_floats(d, (ptrdiff_t)c0, fill);
        memcpy(d + c0, src + (ptrdiff_t)sr * W + (c0 + ox),
               (size_t)(c1 - c0) * sizeof(float));
        fill_floats(d + c1, (ptrdiff_t)(Wo - c1), fill);
    }
}

/* -------------------------------------------------------------- shift -- */

typedef struct {
    uint64_t seed;
    int C, H, W, Ho, Wo;
    const float *x;
    float *y;
    int64_t oy_lo, ox_lo;
    uint32_t oy_n, ox_n;
    float fill;
    int32_t *offsets;
} shift_ctx;

static void shift_body(void *vc, ptrdiff_t i0, ptrdiff_t i1, void *scratch)
{
    (void)scratch;
    const shift_ctx *c = vc;
    const ptrdiff_t in_plane = (ptrdiff_t)c->H * c->W, out_plane = (ptrdiff_t)c->Ho * c->Wo;
    for (ptrdiff_t i = i0; i < i1; i++) {
        uint32_t w[4];
        sample_words(c->seed, i, w);
        int64_t oy = c->oy_lo + randint_of(w[0], c->oy_n);
        int64_t ox = c->ox_lo + randint_of(w[1], c->ox_n);
        c->offsets[2 * i] = (int32_t)oy;
        c->offsets[2 * i + 1] = (int32_t)ox;
        for (int ch = 0; ch < c->C; ch++) {
            ptrdiff_t p = i * c->C + ch;
            shift_plane(c->x + p * in_plane, c->H, c->W, c->y + p * out_plane,
                        c->Ho, c->Wo, oy, ox, c->fill);
        }
    }
}

void fnn_aug_shift(uint64_t seed, ptrdiff_t N, int C, int H, int W,
                   const float *x, int Ho, int Wo, float *y, int oy_lo,
                   uint32_t oy_n, int ox_lo, uint32_t ox_n, float fill,
                   int32_t *offsets)
{
    shift_ctx c = {seed, C, H, W, Ho, Wo, x, y, oy_lo, ox_lo, oy_n, ox_n, fill, offsets};
    double work = (double)N * C * ((double)Ho * Wo);
    run_samples(N, work, AUG_COPY_COST, 0, shift_body, &c);
}

/* --------------------------------------------------------------- flip -- */

typedef struct {
    uint64_t seed;
    ptrdiff_t rows;
    int W;
    const float *x;
    float *y;
    double p;
    uint8_t *flipped;
} flip_ctx;

static void flip_body(void *vc, ptrdiff_t i0, ptrdiff_t i1, void *scratch)
{
    (void)scratch;
    const flip_ctx *c = vc;
    const int W = c->W;
    const ptrdiff_t D = c->rows * W;
    for (ptrdiff_t i = i0; i < i1; i++) {
        uint32_t w[4];
        sample_words(c->seed, i, w);
        int f = unit_of(w[0]) < c->p;
        c->flipped[i] = (uint8_t)f;
        const float *src = c->x + i * D;
        float *dst = c->y + i * D;
        if (!f) {
            memcpy(dst, src, (size_t)D * sizeof(float));
            continue;
        }
        for (ptrdiff_t r = 0; r < c->rows; r++) {
            const float *s = src + r * W;
            float *d = dst + r * W;
            for (int k = 0; k < W; k++)
                d[k] = s[W - 1 - k];
        }
    }
}

void fnn_aug_hflip(uint64_t seed, ptrdiff_t N, ptrdiff_t rows, int W,
                   const float *x, float *y, double p, uint8_t *flipped)
{
    flip_ctx c = {seed, rows, W, x, y, p, flipped};
    run_samples(N, (double)N * rows * W, AUG_COPY_COST, 0, flip_body, &c);
}

/* -------------------------------------------------------------- color -- */

typedef struct {
    uint64_t seed;
    ptrdiff_t D;
    const float *x;
    float *y;
    double b_lo, b_hi, c_lo, c_hi;
    int clamp;
    float lo, hi;
    double *params;
} color_ctx;

static void color_body(void *vc, ptrdiff_t i0, ptrdiff_t i1, void *scratch)
{
    (void)scratch;
    const color_ctx *c = vc;
    const ptrdiff_t D = c->D;
    for (ptrdiff_t i = i0; i < i1; i++) {
        uint32_t w[4];
        sample_words(c->seed, i, w);
        double b = c->b_lo + (c->b_hi - c->b_lo) * unit_of(w[0]);
        double k = c->c_lo + (c->c_hi - c->c_lo) * unit_of(w[1]);
        c->params[2 * i] = b;
        c->params[2 * i + 1] = k;
        const float *src = c->x + i * D;
        float *dst = c->y + i * D;
        /* y = k (b x) + (1 - k) mean(b x) = a x + t */
        const float a = (float)(b * k);
        if (k != 1.0) {
            const float t = (float)((1.0 - k) * b * (fnn_sum_f64(src, D) / (double)D));
            for (ptrdiff_t j = 0; j < D; j++)
                dst[j] = a * src[j] + t;
        } else if (a != 1.0f) {
            for (ptrdiff_t j = 0; j < D; j++)
                dst[j] = a * src[j];
        } else {
            memcpy(dst, src, (size_t)D * sizeof(float));
        }
        if (c->clamp) {
            const float lo = c->lo, hi = c->hi;
            for (ptrdiff_t j = 0; j < D; j++) {
                float v = dst[j];     /* NaN stays NaN */
                dst[j] = v < lo ? lo : (v > hi ? hi : v);
            }
        }
    }
}

void fnn_aug_color(uint64_t seed, ptrdiff_t N, ptrdiff_t D, const float *x,
                   float *y, double b_lo, double b_hi, double c_lo,
                   double c_hi, int clamp, float lo, float hi, double *params)
{
    color_ctx c = {seed, D, x, y, b_lo, b_hi, c_lo, c_hi, clamp, lo, hi, params};
    run_samples(N, (double)N * D, AUG_COLOR_COST, 0, color_body, &c);
}

/* ------------------------------------------------------------- affine -- */

/* sin and cos of an angle in degrees, reduced to |r| <= 45 degrees first so
 * that multiples of 90 degrees give exact 0 and +-1. */
static void sincos_deg(double deg, double *s, double *c)
{
    double q = nearbyint(deg / 90.0);
    double r = deg - 90.0 * q;          /* exact (Sterbenz) */
    double a = r * (AUG_PI / 180.0);
    double sa = sin(a), ca = cos(a);
    switch ((int)fmod(q, 4.0) & 3) {    /* q mod 4, also for negative q */
    case 0: *s = sa; *c = ca; break;
    case 1: *s = ca; *c = -sa; break;
    case 2: *s = -sa; *c = -ca; break;
    default: *s = -ca; *c = sa; break;
    }
}

/* Padded plane border: sample coordinates are clamped to [-2, W] x [-2, H],
 * so the four taps of a pixel lie in [-2, W+1] x [-2, H+1]. */
#define PAD 2

/* Per-thread scratch of the warp: the padded plane (H+4, W+4) with `fill` in
 * its border; per output pixel its centred coordinates (u, v) = (k - cx,
 * r - cy) and, per sample, the offset of its top-left tap in the padded
 * plane and its bilinear fractions. */
typedef struct {
    float *pad;
    float *u, *v;            /* (H*W) */
    int32_t *off;            /* (H*W) */
    float *fx, *fy;          /* (H*W) */
} warp_scratch;

#if defined(__SSE2__) || defined(_M_X64)
#define AUG_SSE2 1
#include <immintrin.h>

/* [a[0] a[1] b[0] b[1]]: two unaligned 8-byte loads */
FNN_INLINE __m128 load_pairs(const float *a, const float *b)
{
    __m128 lo = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(const void *)a));
    return _mm_loadh_pi(lo, (const __m64 *)(const void *)b);
}
#endif

/* One sample's warp: src (C, H, W) -> dst (C, H, W), sampling x at
 * in = (m0 u + m1 v + m2, m3 u + m4 v + m5) for the output pixel with centred
 * coordinates (u, v). */
FNN_INLINE int warp_body(const float *restrict src, float *restrict dst,
                                        int C, int H, int W, const warp_scratch *ws,
                                        const float *m)
{
    const int Wp = W + 2 * PAD;
    const ptrdiff_t plane = (ptrdiff_t)H * W;
    const float m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5];
    const float xmax = (float)W, ymax = (float)H;
    const float *restrict u = ws->u, *restrict v = ws->v;
    float *restrict pad = ws->pad, *restrict fx = ws->fx, *restrict fy = ws->fy;
    int32_t *restrict off = ws->off;
    for (ptrdiff_t p = 0; p < plane; p++) {
        float xs = (m0 * u[p] + m1 * v[p]) + m2, ys = (m3 * u[p] + m4 * v[p]) + m5;
        xs = xs > -2.0f ? xs : -2.0f;                     /* NaN -> -2 */
        xs = xs < xmax ? xs : xmax;
        ys = ys > -2.0f ? ys : -2.0f;
        ys = ys < ymax ? ys : ymax;
        int32_t x0 = (int32_t)xs, y0 = (int32_t)ys;       /* trunc */
        x0 -= (float)x0 > xs;                              /* floor */
        y0 -= (float)y0 > ys;
        fx[p] = xs - (float)x0;
        fy[p] = ys - (float)y0;
        off[p] = (y0 + PAD) * Wp + (x0 + PAD);
    }
    for (int ch = 0; ch < C; ch++) {
        const float *restrict s = src + ch * plane;
        for (int r = 0; r < H; r++) {     /* short rows: a loop beats memcpy */
            float *restrict prow = pad + (ptrdiff_t)(r + PAD) * Wp + PAD;
            const float *restrict srow = s + (ptrdiff_t)r * W;
            for (int k = 0; k < W; k++)
                prow[k] = srow[k];
        }
        float *restrict d = dst + ch * plane;
        ptrdiff_t p = 0;
#ifdef AUG_SSE2
        /* four pixels at a time: each tap pair (left, right) is one 8-byte
         * load; hardware gathers are slower here (measured) */
        const __m128 one = _mm_set1_ps(1.0f);
        for (; p + 4 <= plane; p += 4) {
            const float *q0 = pad + off[p], *q1 = pad + off[p + 1];
            const float *q2 = pad + off[p + 2], *q3 = pad + off[p + 3];
            __m128 t01 = load_pairs(q0, q1), t23 = load_pairs(q2, q3);
            __m128 b01 = load_pairs(q0 + Wp, q1 + Wp), b23 = load_pairs(q2 + Wp, q3 + Wp);
            __m128 v00 = _mm_shuffle_ps(t01, t23, _MM_SHUFFLE(2, 0, 2, 0));
            __m128 v01 = _mm_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 1, 3, 1));
            __m128 v10 = _mm_shuffle_ps(b01, b23, _MM_SHUFFLE(2, 0, 2, 0));
            __m128 v11 = _mm_shuffle_ps(b01, b23, _MM_SHUFFLE(3, 1, 3, 1));
            __m128 ax = _mm_loadu_ps(fx + p), ay = _mm_loadu_ps(fy + p);
            __m128 bx = _mm_sub_ps(one, ax), by = _mm_sub_ps(one, ay);
            __m128 top = _mm_add_ps(_mm_mul_ps(bx, v00), _mm_mul_ps(ax, v01));
            __m128 bot = _mm_add_ps(_mm_mul_ps(bx, v10), _mm_mul_ps(ax, v11));
            _mm_storeu_ps(d + p, _mm_add_ps(_mm_mul_ps(by, top), _mm_mul_ps(ay, bot)));
        }
#endif
        for (; p < plane; p++) {     /* the same arithmetic, one pixel */
            const int32_t o = off[p];
            const float ax = fx[p], ay = fy[p];
            float top = (1.0f - ax) * pad[o] + ax * pad[o + 1];
            float bot = (1.0f - ax) * pad[o + Wp] + ax * pad[o + Wp + 1];
            d[p] = (1.0f - ay) * top + ay * bot;
        }
    }
    return 0;
}

#define WARP_ARGS const float *src, float *dst, int C, int H, int W, const warp_scratch *ws, \
                  const float *m
#define WARP_CALL src, dst, C, H, W, ws, m
FNN_ISA_CLONES(int, warp, (WARP_ARGS), (WARP_CALL))

typedef struct {
    uint64_t seed;
    int C, H, W;
    const float *x;
    float *y;
    double deg_lo, deg_hi, s_lo, s_hi, tx_max, ty_max;
    float fill;
    double *params;
    int (*warp)(WARP_ARGS);
} affine_ctx;

static void affine_body(void *vc, ptrdiff_t i0, ptrdiff_t i1, void *scratch)
{
    const affine_ctx *c = vc;
    const int C = c->C, H = c->H, W = c->W;
    const int Wp = W + 2 * PAD, Hp = H + 2 * PAD;
    const ptrdiff_t plane = (ptrdiff_t)H * W;
    const float fill = c->fill;
    const double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
    warp_scratch ws;
    ws.pad = scratch;
    ws.u = ws.pad + (ptrdiff_t)Hp * Wp;
    ws.v = ws.u + plane;
    ws.fx = ws.v + plane;
    ws.fy = ws.fx + plane;
    ws.off = (int32_t *)(ws.fy + plane);
    for (int r = 0; r < H; r++)
        for (int k = 0; k < W; k++) {
            ws.u[(ptrdiff_t)r * W + k] = (float)(k - cx);      /* exact */
            ws.v[(ptrdiff_t)r * W + k] = (float)(r - cy);
        }
    int border_filled = 0;

    for (ptrdiff_t i = i0; i < i1; i++) {
        uint32_t w[4];
        sample_words(c->seed, i, w);
        double angle = c->deg_lo + (c->deg_hi - c->deg_lo) * unit_of(w[0]);
        double scale = c->s_lo + (c->s_hi - c->s_lo) * unit_of(w[1]);
        double tx = nearbyint(c->tx_max * (2.0 * unit_of(w[2]) - 1.0));
        double ty = nearbyint(c->ty_max * (2.0 * unit_of(w[3]) - 1.0));
        tx += 0.0;                      /* -0 -> +0 */
        ty += 0.0;
        double *pp = c->params + 4 * i;
        pp[0] = angle; pp[1] = scale; pp[2] = tx; pp[3] = ty;

        /* Forward map about the centre (cx, cy), y pointing down, positive
         * angles counter-clockwise on screen:
         *   out - ctr = t + scale R (in - ctr),  R = [[cos, sin], [-sin, cos]]
         * sampled through its inverse: in = ctr + A (out - ctr - t), A =
         * R^T / scale. */
        double sn, cs;
        sincos_deg(angle, &sn, &cs);
        const double a00 = cs / scale, a01 = -sn / scale;
        const double a10 = sn / scale, a11 = cs / scale;
        const float *src = c->x + i * C * plane;
        float *dst = c->y + i * C * plane;

        if (a00 == 1.0 && a01 == 0.0 && a10 == 0.0 && a11 == 1.0) {
            /* identity or integer translation: exact copy */
            for (int ch = 0; ch < C; ch++)
                shift_plane(src + ch * plane, H, W, dst + ch * plane, H, W,
                            -(int64_t)ty, -(int64_t)tx, fill);
            continue;
        }
        const float m[6] = {(float)a00, (float)a01, (float)(cx - a00 * tx - a01 * ty),
                            (float)a10, (float)a11, (float)(cy - a10 * tx - a11 * ty)};
        if (!border_filled) {
            fill_floats(ws.pad, (ptrdiff_t)Hp * Wp, fill);
            border_filled = 1;
        }
        c->warp(src, dst, C, H, W, &ws, m);
    }
}

int fnn_aug_affine(uint64_t seed, ptrdiff_t N, int C, int H, int W,
                   const float *x, float *y, double deg_lo, double deg_hi,
                   double s_lo, double s_hi, double tx_max, double ty_max,
                   float fill, double *params)
{
    affine_ctx c = {seed, C, H, W, x, y, deg_lo, deg_hi, s_lo, s_hi, tx_max,
                    ty_max, fill, params, FNN_ISA_PICK(warp)};
    size_t plane = (size_t)H * (size_t)W;
    size_t scratch = ((size_t)(H + 2 * PAD) * (size_t)(W + 2 * PAD) + 5 * plane) * 4;
    return run_samples(N, (double)N * C * (double)plane, AUG_WARP_COST,
                       scratch, affine_body, &c);
}
