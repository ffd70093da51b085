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
#include "fastnn.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Elements per thread below which a kernel stays on one thread (a parallel
 * region costs a few microseconds): copies move ~2-4 elements per ns, the
 * bilinear warp ~0.5. */
#define AUG_COPY_THREAD_MIN 32768.0
#define AUG_COLOR_THREAD_MIN 16384.0
#define AUG_WARP_THREAD_MIN 4096.0

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

/* Run body(ctx, i0, i1, scratch) over samples [0, N), split into nt
 * contiguous ranges. Each worker owns `scratch_bytes` of scratch (NULL when
 * 0). Returns FNN_ENOMEM if a worker could not get its scratch. */
typedef void (*sample_fn)(void *ctx, ptrdiff_t i0, ptrdiff_t i1, void *scratch);

static int run_samples(ptrdiff_t N, double work, double threshold,
                       size_t scratch_bytes, sample_fn body, void *ctx)
{
    int nt = fnn_threads_for(work, threshold);
    if ((ptrdiff_t)nt > N)
        nt = N > 0 ? (int)N : 1;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(| : failed)
#endif
    {
        int me = 0, have = 1;
#ifdef _OPENMP
        me = omp_get_thread_num();
        have = omp_get_num_threads();
#endif
        unsigned s = fnn_ftz_enter();
        void *scratch = scratch_bytes ? fnn_aligned_alloc(scratch_bytes) : NULL;
        if (scratch_bytes && !scratch) {
            failed = 1;
        } else {
            /* if the runtime gave fewer threads, each takes several ranges */
            for (int t = me; t < nt; t += have) {
                ptrdiff_t i0 = N * t / nt, i1 = N * (t + 1) / nt;
                if (i0 < i1)
                    body(ctx, i0, i1, scratch);
            }
        }
        fnn_aligned_free(scratch);
        fnn_ftz_leave(s);
    }
    return failed ? FNN_ENOMEM : FNN_OK;
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
    run_samples(N, work, AUG_COPY_THREAD_MIN, 0, shift_body, &c);
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
    run_samples(N, (double)N * rows * W, AUG_COPY_THREAD_MIN, 0, flip_body, &c);
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

/* Sum of x (n) in double, eight interleaved partial sums added in a fixed
 * order (the same on every thread count and ISA). */
static double sum_f64(const float *x, ptrdiff_t n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ptrdiff_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)x[k + j];
    for (int j = 0; k < n; k++, j++)
        acc[j] += (double)x[k];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

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
            const float t = (float)((1.0 - k) * b * (sum_f64(src, D) / (double)D));
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
    run_samples(N, (double)N * D, AUG_COLOR_THREAD_MIN, 0, color_body, &c);
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

typedef struct {
    uint64_t seed;
    int C, H, W;
    const float *x;
    float *y;
    double deg_lo, deg_hi, s_lo, s_hi, tx_max, ty_max;
    float fill;
    double *params;
} affine_ctx;

/* Padded plane border: sample coordinates are clamped to [-2, W] x [-2, H],
 * so the four taps of a pixel lie in [-2, W+1] x [-2, H+1]. */
#define PAD 2

static void affine_body(void *vc, ptrdiff_t i0, ptrdiff_t i1, void *scratch)
{
    const affine_ctx *c = vc;
    const int C = c->C, H = c->H, W = c->W;
    const int Wp = W + 2 * PAD, Hp = H + 2 * PAD;
    const ptrdiff_t plane = (ptrdiff_t)H * W;
    const float fill = c->fill;
    /* scratch: padded plane (Hp, Wp), then per output pixel the tap offset
     * (int32) and the two fractions */
    float *pad = scratch;
    int32_t *off = (int32_t *)(pad + (ptrdiff_t)Hp * Wp);
    float *fx = (float *)(off + plane);
    float *fy = fx + plane;
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
         * sampled through its inverse: in = A out + b. */
        double sn, cs;
        sincos_deg(angle, &sn, &cs);
        const double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
        const double a00 = cs / scale, a01 = -sn / scale;
        const double a10 = sn / scale, a11 = cs / scale;
        const double b0 = cx - a00 * (cx + tx) - a01 * (cy + ty);
        const double b1 = cy - a10 * (cx + tx) - a11 * (cy + ty);
        const float *src = c->x + i * C * plane;
        float *dst = c->y + i * C * plane;

        if (a00 == 1.0 && a01 == 0.0 && a10 == 0.0 && a11 == 1.0 &&
            b0 == floor(b0) && b1 == floor(b1)) {
            /* identity or integer translation: exact copy */
            for (int ch = 0; ch < C; ch++)
                shift_plane(src + ch * plane, H, W, dst + ch * plane, H, W,
                            (int64_t)b1, (int64_t)b0, fill);
            continue;
        }

        const float fa00 = (float)a00, fa10 = (float)a10;
        const float xmax = (float)W, ymax = (float)H;
        for (int r = 0; r < H; r++) {
            const float rx = (float)(a01 * r + b0), ry = (float)(a11 * r + b1);
            int32_t *o = off + (ptrdiff_t)r * W;
            float *gx = fx + (ptrdiff_t)r * W, *gy = fy + (ptrdiff_t)r * W;
            for (int k = 0; k < W; k++) {
                float xs = rx + fa00 * (float)k, ys = ry + fa10 * (float)k;
                xs = xs > -2.0f ? (xs < xmax ? xs : xmax) : -2.0f;  /* NaN -> -2 */
                ys = ys > -2.0f ? (ys < ymax ? ys : ymax) : -2.0f;
                int32_t x0 = (int32_t)xs, y0 = (int32_t)ys;       /* trunc */
                x0 -= (float)x0 > xs;                              /* floor */
                y0 -= (float)y0 > ys;
                gx[k] = xs - (float)x0;
                gy[k] = ys - (float)y0;
                o[k] = (y0 + PAD) * Wp + (x0 + PAD);
            }
        }
        if (!border_filled) {
            fill_floats(pad, (ptrdiff_t)Hp * Wp, fill);
            border_filled = 1;
        }
        for (int ch = 0; ch < C; ch++) {
            const float *s = src + ch * plane;
            for (int r = 0; r < H; r++)
                memcpy(pad + (ptrdiff_t)(r + PAD) * Wp + PAD, s + (ptrdiff_t)r * W,
                       (size_t)W * sizeof(float));
            float *d = dst + ch * plane;
            for (ptrdiff_t p = 0; p < plane; p++) {
                const float *t = pad + off[p];
                float ax = fx[p], ay = fy[p];
                float top = (1.0f - ax) * t[0] + ax * t[1];
                float bot = (1.0f - ax) * t[Wp] + ax * t[Wp + 1];
                d[p] = (1.0f - ay) * top + ay * bot;
            }
        }
    }
}

int fnn_aug_affine(uint64_t seed, ptrdiff_t N, int C, int H, int W,
                   const float *x, float *y, double deg_lo, double deg_hi,
                   double s_lo, double s_hi, double tx_max, double ty_max,
                   float fill, double *params)
{
    affine_ctx c = {seed, C, H, W, x, y, deg_lo, deg_hi, s_lo, s_hi, tx_max,
                    ty_max, fill, params};
    size_t plane = (size_t)H * (size_t)W;
    size_t scratch = ((size_t)(H + 2 * PAD) * (size_t)(W + 2 * PAD) + 3 * plane) * 4;
    return run_samples(N, (double)N * C * (double)plane, AUG_WARP_THREAD_MIN,
                       scratch, affine_body, &c);
}
