/* conv.c -- 2-D convolution (1-D is H = 1), NCHW float32, forward and backward.
 *
 * The shape is an fnn_conv2d (fastnn.h); K = C/G kh kw is the length of one
 * output's dot product, P = Ho Wo the output pixels of one plane.
 *
 * The direct path (AVX-512, AVX2; see "direct path" below) computes most
 * layers without im2col: forward, dW, and dX of stride-1 layers. Stride-1
 * 3x3 and 5x5 layers with >= 16 channels each way take Winograd (see
 * "Winograd path") for the forward and dX instead. The rest (and the
 * portable build) takes im2col + GEMM:
 *
 * Forward, groups != channels: per sample and group, im2col writes the
 * columns (K, P) into the workspace (1x1 stride-1 unpadded convolutions read
 * x in place), then one GEMM y (O/G, P) = w_g (O/G, K) col (K, P) with the
 * bias fused into its store, which lands in NCHW order as it is. Stride-1
 * layers run "wide" (wide_rows: over the padded plane's full row width, each
 * tap's columns one contiguous run). Samples
 * are the parallel parts (each part's GEMMs run on its own thread) when
 * there are at least as many samples as threads the work earns; with fewer
 * (batch 1 inference) the samples run one after the other and each GEMM
 * threads itself. A product folding the batch into its N dimension would
 * come out (O, N P) and need a transposed copy back to NCHW; per-sample
 * products avoid it and keep each part's columns in its own L2.
 * Depthwise (G == C): a direct kernel over (n, o) planes, no im2col.
 *
 * Backward: the batch is cut into at most 16 chunks of samples, a function
 * of the shape alone. A part takes whole chunks; for each sample in order it
 * writes the columns once into its workspace slice, adds dy_g col_g^T to its
 * chunk's dW partial (one GEMM per group, K = P), then reuses the slice for
 * dcol = w_g^T dy_g and col2im into dx (parts own whole samples: race-free).
 * The partials are summed in chunk order, so dW has the same bits on any
 * thread count, and no column matrix of the whole batch is ever stored (it
 * was 115 MB for a 3x3 32->32 layer at 28x28, batch 128). db is a
 * fixed-order float64 sum per output channel. The naive twins at the end are
 * the test reference.
 */
#include "gemm_kernels.h"
#include "isa.h"
#include "parallel.h"
#include "reduce.h"
#include "workspace.h"

#include <string.h>

typedef struct {
    const fnn_conv2d *s;
    const float *x, *w, *bias, *dy;
    float *y, *dx, *dw, *db;
    int relu;            /* forward: max(y, 0) fused into the store */
    float *buf;          /* shared workspace: per-part slices, then (backward) */
    float *part_dw;      /* the chunks' dW partials */
    size_t slice;        /* floats per part */
    int acc, chunks;
} conv_args;

static int pointwise(const fnn_conv2d *s)
{
    return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0
           && s->Ho == s->H && s->Wo == s->W;
}

/* Row (i, j) of channel plane xc's columns: the tap (i, j) of every output
 * pixel, r[oh Wo + ow], zero where it reads padding. */
FNN_INLINE void im2col_row(const fnn_conv2d *s, const float *xc, int i, int j, float *r0)
{
    int off = j * s->dw - s->pw, lo, hi;
    fnn_inside_cols(off, s->sw, s->W, s->Wo, &lo, &hi);
    for (int oh = 0; oh < s->Ho; oh++) {
        float *r = r0 + (ptrdiff_t)oh * s->Wo;
        int ih = oh * s->sh - s->ph + i * s->dh;
        if (ih < 0 || ih >= s->H) {
            memset(r, 0, sizeof(float) * s->Wo);
            continue;
        }
        const float *xr = xc + (ptrdiff_t)ih * s->W + off;
        for (int ow = 0; ow < lo; ow++)
            r[ow] = 0.0f;
        if (s->sw == 1)             /* a loop, not a libc call per short row */
            for (int ow = lo; ow < hi; ow++)
                r[ow] = xr[ow];
        else
            for (int ow = lo; ow < hi; ow++)
                r[ow] = xr[(ptrdiff_t)ow * s->sw];
        for (int ow = hi; ow < s->Wo; ow++)
            r[ow] = 0.0f;
    }
}

/* Stride and dilation 1 along W (most convolutions): the rows come from a
 * zero-padded copy of the channel plane, (H + 2 ph) x (W + 2 pw) floats, so
 * each output row of a tap is one plain copy of Wo floats with no bounds --
 * the per-segment bounds and zero fills were 16% of a 5x5 layer's time. */
static int padded_rows(const fnn_conv2d *s)
{
    return s->sw == 1 && s->dw == 1;
}

/* The padded plane covers the taps the outputs read: rows [-ph, Hp - ph),
 * columns [-pw, Wp - pw) of the plane (an even 'same' kernel pads one more
 * at the bottom and right than at the top and left). */
static int pad_h(const fnn_conv2d *s)
{
    return (s->Ho - 1) * s->sh + (s->kh - 1) * s->dh + 1;
}

static int pad_w(const fnn_conv2d *s)
{
    return s->Wo + s->kw - 1;
}

/* Stride 1 along H and W and dilation 1 along W ("wide" rows): the products
 * run over Ho rows of the padded plane's full width Wp (kw - 1 columns per
 * row more than Wo: dropped from the output, zero in dy), so that each tap's
 * row of columns is one contiguous run of the padded plane, xp + i dh Wp + j,
 * copied as it is -- no gather of Wo-float pieces (14-28 floats, mostly loop
 * tails) per output row and tap -- and col2im adds whole runs. Worth it when
 * the columns (K rows) outnumber the output channels: the widened output and
 * dy copies are then small beside them (not for a first layer's 1 -> 32,
 * K = 25, which ran 6% slower wide; 32 -> 32 3x3 forward+backward ran 19%
 * faster, see docs/conv.md). */
static int wide_rows(const fnn_conv2d *s)
{
    return s->sh == 1 && s->sw == 1 && s->dw == 1 && s->C / s->G * s->kh * s->kw >= s->O / s->G;
}

/* Output pixels of the wide product: Ho rows of Wp. */
static ptrdiff_t wide_pixels(const fnn_conv2d *s)
{
    return (ptrdiff_t)s->Ho * pad_w(s);
}

/* The padded plane, and for the wide product kw - 1 zeros after it (the last
 * tap's run reads that far past the plane). */
static size_t pad_floats(const fnn_conv2d *s)
{
    return padded_rows(s) ? (size_t)pad_h(s) * pad_w(s) + (size_t)(s->kw - 1) : 0;
}

/* The padded plane of xc in pad, its row stride in *ld; xc itself when no
 * tap reads padding. */
FNN_INLINE const float *pad_plane(const fnn_conv2d *s, const float *xc, float *pad, int *ld,
                                  int copy)
{
    const int Hp = pad_h(s), Wp = pad_w(s);
    if (!copy && s->ph == 0 && s->pw == 0 && Hp <= s->H && Wp <= s->W) {
        *ld = s->W;
        return xc;
    }
    /* columns [a, b) of a padded row hold w = wp - pw of the plane, the rest
     * zero (a per-element test was 17% of a 3x3 layer's forward) */
    const int a = s->pw < Wp ? s->pw : Wp;
    const int b = s->pw + s->W < Wp ? s->pw + s->W : Wp;
    for (int hp = 0; hp < Hp; hp++) {
        float *restrict d = pad + (ptrdiff_t)hp * Wp;
        const int h = hp - s->ph;
        if (h < 0 || h >= s->H) {
            for (int wp = 0; wp < Wp; wp++)
                d[wp] = 0.0f;
            continue;
        }
        const float *restrict xr = xc + (ptrdiff_t)h * s->W;
        for (int wp = 0; wp < a; wp++)
            d[wp] = 0.0f;
        for (int wp = a; wp < b; wp++)
            d[wp] = xr[wp - s->pw];
        for (int wp = b; wp < Wp; wp++)
            d[wp] = 0.0f;
    }
    for (int e = 0; e < s->kw - 1; e++)
        pad[(ptrdiff_t)Hp * Wp + e] = 0.0f;
    *ld = Wp;
    return pad;
}

/* Row (i, j) of a padded plane xp with row stride ld (padded_rows(s) only). */
FNN_INLINE void im2col_row_padded(const fnn_conv2d *s, const float *xp, int ld, int i, int j,
                              float *r)
{
    const int Wo = s->Wo;
    for (int oh = 0; oh < s->Ho; oh++) {
        const float *src = xp + (ptrdiff_t)(oh * s->sh + i * s->dh) * ld + j;
        float *d = r + (ptrdiff_t)oh * Wo;
        for (int ow = 0; ow < Wo; ow++)
            d[ow] = src[ow];
    }
}

/* Row (i, j) of channel plane xc, or of its padded copy xp (row stride ld). */
FNN_INLINE void tap_row(const fnn_conv2d *s, const float *xc, const float *xp, int ld, int i, int j,
                    float *r)
{
    if (xp)
        im2col_row_padded(s, xp, ld, i, j, r);
    else
        im2col_row(s, xc, i, j, r);
}

/* col (nc kh kw, P), row stride ld: the taps of channels x (nc, H, W);
 * pad: pad_floats(s) of scratch. */
FNN_INLINE void im2col(const fnn_conv2d *s, const float *x, int nc, float *col, ptrdiff_t ld,
                   float *pad)
{
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W;
    for (int c = 0; c < nc; c++) {
        int pld = 0;
        const float *xp = padded_rows(s) ? pad_plane(s, x + c * HW, pad, &pld, 0) : NULL;
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++)
                tap_row(s, x + c * HW, xp, pld, i, j,
                        col + ((ptrdiff_t)(c * s->kh + i) * s->kw + j) * ld);
    }
}

/* The same columns written straight into the GEMM's packed op(B) panels
 * (one row at a time: gathered through `row`, P floats that stay in L1, or
 * for wide rows read where it lies in the padded plane), so the forward's
 * product never copies a column matrix into its own buffer. */
FNN_INLINE void im2col_packed(const fnn_conv2d *s, const float *x, int nc, const fnn_packed_b *pb,
                          float *row, float *pad)
{
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W;
    const int wide = wide_rows(s), P = wide ? (int)wide_pixels(s) : s->Ho * s->Wo;
    const int K = nc * s->kh * s->kw, NR = pb->nr;
    for (int c = 0, k = 0; c < nc; c++) {
        int ld = 0;
        const float *xp = padded_rows(s) ? pad_plane(s, x + c * HW, pad, &ld, wide) : NULL;
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++, k++) {
                const float *r = row;
                if (wide)               /* the tap's run of the padded plane */
                    r = xp + (ptrdiff_t)i * s->dh * ld + j;
                else
                    tap_row(s, x + c * HW, xp, ld, i, j, row);
                int pc = k / pb->kc * pb->kc, kcb = K - pc < pb->kc ? K - pc : pb->kc;
                float *blk = pb->data + pc * pb->row_floats;
                int q = 0;
#define PANELS(W)                                                                   \
    for (; q + (W) <= P; q += (W))                                                  \
        memcpy(blk + (ptrdiff_t)q * kcb + (ptrdiff_t)(k - pc) * (W), r + q,         \
               sizeof(float) * (W));
                if (NR == 48) {             /* inlined constant-size copies */
                    PANELS(48)
                } else if (NR == 16) {
                    PANELS(16)
                } else {
                    PANELS(NR)
                }
#undef PANELS
                if (q < P) {                /* the last panel, zero past P */
                    float *d = blk + (ptrdiff_t)q * kcb + (ptrdiff_t)(k - pc) * pb->last_w;
                    memcpy(d, r + q, sizeof(float) * (P - q));
                    memset(d + (P - q), 0, sizeof(float) * (pb->last_w - (P - q)));
                }
            }
    }
}

/* dx (nc, H, W) = the sum of the columns col (nc kh kw, P) onto their taps,
 * in tap order. */
FNN_INLINE void col2im(const fnn_conv2d *s, const float *col, int nc, float *dx)
{
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    memset(dx, 0, sizeof(float) * nc * HW);
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                const float *row = col + ((ptrdiff_t)(c * s->kh + i) * s->kw + j) * P;
                int off = j * s->dw - s->pw, lo, hi;
                fnn_inside_cols(off, s->sw, s->W, s->Wo, &lo, &hi);
                for (int oh = 0; oh < s->Ho; oh++) {
                    int ih = oh * s->sh - s->ph + i * s->dh;
                    if (ih < 0 || ih >= s->H)
                        continue;
                    const float *r = row + (ptrdiff_t)oh * s->Wo;
                    float *d = dx + c * HW + (ptrdiff_t)ih * s->W + off;
                    for (int ow = lo; ow < hi; ow++)
                        d[(ptrdiff_t)ow * s->sw] += r[ow];
                }
            }
}

/* The wide product's columns (nc kh kw, Pw): each row one run of the padded
 * plane (see wide_rows). */
FNN_INLINE void im2col_wide(const fnn_conv2d *s, const float *x, int nc, float *col,
                            ptrdiff_t Pw, float *pad)
{
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W;
    for (int c = 0, k = 0; c < nc; c++) {
        int ld = 0;
        const float *xp = pad_plane(s, x + c * HW, pad, &ld, 1);
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++, k++)
                memcpy(col + k * Pw, xp + (ptrdiff_t)i * s->dh * ld + j, sizeof(float) * Pw);
    }
}

/* dy (O, P) widened to (O, Pw), zero in the kw - 1 extra columns of a row. */
FNN_INLINE void widen(const fnn_conv2d *s, const float *dy, float *dyw)
{
    const int Wo = s->Wo, ld = pad_w(s);
    for (ptrdiff_t r = 0; r < (ptrdiff_t)s->O * s->Ho; r++) {
        memcpy(dyw + r * ld, dy + r * Wo, sizeof(float) * Wo);
        for (int e = Wo; e < ld; e++)
            dyw[r * ld + e] = 0.0f;
    }
}

/* dx (nc, H, W) from the wide columns dcol (nc kh kw, Pw): per channel, each
 * tap's run added onto a padded plane in tap order, then its interior out
 * (the extra columns of dcol are 0: dy's are). */
FNN_INLINE void col2im_wide(const fnn_conv2d *s, const float *dcol, int nc, float *dx,
                            float *pad)
{
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, Pw = wide_pixels(s);
    const int Hp = pad_h(s), Wp = pad_w(s);
    const int wcopy = s->W < Wp - s->pw ? s->W : Wp - s->pw;     /* columns inside the plane */
    for (int c = 0, k = 0; c < nc; c++) {
        memset(pad, 0, sizeof(float) * pad_floats(s));
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++, k++) {
                float *restrict d = pad + (ptrdiff_t)i * s->dh * Wp + j;
                const float *restrict r = dcol + k * Pw;
                for (ptrdiff_t q = 0; q < Pw; q++)
                    d[q] += r[q];
            }
        float *dxc = dx + c * HW;
        for (int h = 0; h < s->H; h++) {
            float *d = dxc + (ptrdiff_t)h * s->W;
            const int hp = h + s->ph;
            int w0 = 0;
            if (hp < Hp && wcopy > 0) {
                memcpy(d, pad + (ptrdiff_t)hp * Wp + s->pw, sizeof(float) * wcopy);
                w0 = wcopy;
            }
            for (int w = w0; w < s->W; w++)
                d[w] = 0.0f;
        }
    }
}

/* ------------------------------------------------------- GEMM path -- */

FNN_INLINE int fwd_samples_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const conv_args *A = ctx;
    const fnn_conv2d *s = A->s;
    const int Cg = s->C / s->G, Og = s->O / s->G, K = Cg * s->kh * s->kw;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    float *col = A->buf + part * A->slice;
    const int pw = pointwise(s), wide = !pw && wide_rows(s);
    const ptrdiff_t Pw = wide ? wide_pixels(s) : P, ld = Pw / s->Ho;
    /* the slice: the product's panels; the wide product's output (Og, Pw) or
     * one row of columns; the padded plane */
    float *out = col + A->slice - (wide ? Og * Pw : P) - pad_floats(s);
    fnn_packed_b pb;
    if (!pw)
        fnn_sgemm_packed_layout(K, (int)Pw, col, &pb);
    for (ptrdiff_t n = lo; n < hi; n++)
        for (int g = 0; g < s->G; g++) {
            const float *xg = A->x + (n * s->C + (ptrdiff_t)g * Cg) * HW;
            const float *wg = A->w + (ptrdiff_t)g * Og * K, *bg = A->bias ? A->bias + (ptrdiff_t)g * Og : NULL;
            float *yg = A->y + (n * s->O + (ptrdiff_t)g * Og) * P;
            int bm = bg ? FNN_BIAS_ROW : FNN_BIAS_NONE, st;
            if (pw) {
                st = fnn_sgemm(0, 0, Og, (int)P, K, 1.0f, wg, K, xg, P, 0.0f, yg, P, bg, bm,
                               A->relu);
            } else {
                im2col_packed(s, xg, Cg, &pb, out, col + A->slice - pad_floats(s));
                st = fnn_sgemm_pb(0, Og, 1.0f, wg, K, &pb, 0.0f, wide ? out : yg, Pw, bg, bm,
                                  A->relu);
                for (int o = 0; wide && o < Og; o++)        /* drop the kw - 1 extra columns */
                    for (int oh = 0; oh < s->Ho; oh++)
                        memcpy(yg + o * P + (ptrdiff_t)oh * s->Wo, out + o * Pw + oh * ld,
                               sizeof(float) * s->Wo);
            }
            if (st)
                return st;
        }
    return FNN_OK;
}

FNN_RANGE_CLONES(fwd_samples)

/* Backward over a fixed cut of the batch into chunks of samples (the cut
 * depends on the shape only, never on the thread count). For each sample of
 * a chunk, in order: im2col into the part's slice, dw_chunk (Og, K) (+)=
 * dy_g (Og, P) col_g^T (P, K) for each group; then the same slice becomes
 * dcol (K, P) = w_g^T dy_g and col2im writes dx. The chunks' dW partials are
 * summed in chunk order afterwards (dw_reduce), so dW has the same bits on
 * any thread count, and the columns of the whole batch are never stored. */
FNN_INLINE int bwd_chunks_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const conv_args *A = ctx;
    const fnn_conv2d *s = A->s;
    const int Cg = s->C / s->G, Og = s->O / s->G, K = Cg * s->kh * s->kw;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    const ptrdiff_t per = (s->N + A->chunks - 1) / A->chunks, wsize = (ptrdiff_t)s->O * K;
    /* the slice: the columns (C kh kw, Pw); the wide product's dy (O, Pw);
     * the padded plane */
    float *col = A->buf + part * A->slice, *pad = col + A->slice - pad_floats(s);
    const int pw = pointwise(s), wide = !pw && wide_rows(s);
    const ptrdiff_t Pw = wide ? wide_pixels(s) : P;
    float *dyw = col + (ptrdiff_t)s->C * s->kh * s->kw * Pw;
    int st = FNN_OK;
    for (ptrdiff_t c = lo; c < hi && !st; c++) {
        float *dwc = A->part_dw + c * wsize;
        ptrdiff_t n0 = c * per, n1 = n0 + per < s->N ? n0 + per : s->N;
        for (ptrdiff_t n = n0; n < n1 && !st; n++) {
            const float *xn = A->x + n * s->C * HW, *dyn = A->dy + n * s->O * P;
            if (wide) {
                widen(s, dyn, dyw);
                dyn = dyw;
            }
            if (A->dw && wide)
                im2col_wide(s, xn, s->C, col, Pw, pad);
            else if (A->dw && !pw)
                im2col(s, xn, s->C, col, P, pad);
            for (int g = 0; g < s->G && A->dw && !st; g++)
                st = fnn_sgemm(0, 1, Og, K, (int)Pw, 1.0f, dyn + (ptrdiff_t)g * Og * Pw, Pw,
                               (pw ? xn : col) + (ptrdiff_t)g * K * Pw, Pw, n == n0 ? 0.0f : 1.0f,
                               dwc + (ptrdiff_t)g * Og * K, K, NULL, FNN_BIAS_NONE, 0);
            for (int g = 0; g < s->G && A->dx && !st; g++) {
                float *dxg = A->dx + (n * s->C + (ptrdiff_t)g * Cg) * HW;
                st = fnn_sgemm(1, 0, K, (int)Pw, Og, 1.0f, A->w + (ptrdiff_t)g * Og * K, K,
                               dyn + (ptrdiff_t)g * Og * Pw, Pw, 0.0f, pw ? dxg : col, Pw, NULL,
                               FNN_BIAS_NONE, 0);
                if (wide)
                    col2im_wide(s, col, Cg, dxg, pad);
                else if (!pw)
                    col2im(s, col, Cg, dxg);
            }
        }
    }
    return st;
}

FNN_RANGE_CLONES(bwd_chunks)

/* dw[i] (+)= the chunks' partials at i, summed in chunk order. */
static int dw_reduce(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const conv_args *A = ctx;
    const fnn_conv2d *s = A->s;
    const ptrdiff_t wsize = (ptrdiff_t)s->O * (s->C / s->G) * s->kh * s->kw;
    for (ptrdiff_t i = lo; i < hi; i++) {
        float t = A->acc ? A->dw[i] : 0.0f;
        for (int c = 0; c < A->chunks; c++)
            t += A->part_dw[c * wsize + i];
        A->dw[i] = t;
    }
    return FNN_OK;
}

/* db[o] (+)= sum over n of (sum over p of dy[n, o, p]), in float64: each
 * plane in reduce.h's fixed lanes (one serial chain of adds was 4% of a 3x3
 * layer's backward), the planes in sample order. */
FNN_INLINE int db_channels_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const conv_args *A = ctx;
    const fnn_conv2d *s = A->s;
    const ptrdiff_t P = (ptrdiff_t)s->Ho * s->Wo;
    for (ptrdiff_t o = lo; o < hi; o++) {
        double t = 0.0;
        for (ptrdiff_t n = 0; n < s->N; n++)
            t += fnn_sum_f64(A->dy + (n * s->O + o) * P, P);
        A->db[o] = A->acc ? (float)(A->db[o] + t) : (float)t;
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(db_channels)

/* --------------------------------------------------- depthwise path -- */
/* G == C: output channel o reads input channel o / (O / C) only. */

FNN_INLINE int dw_fwd_planes_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const conv_args *A = ctx;
    const fnn_conv2d *s = A->s;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    const int m = s->O / s->C, T = s->kh * s->kw;
    for (ptrdiff_t q = lo; q < hi; q++) {       /* q = n O + o */
        int o = (int)(q % s->O);
        const float *xc = A->x + (q / s->O * s->C + o / m) * HW, *wo = A->w + (ptrdiff_t)o * T;
        float *y = A->y + q * P, b = A->bias ? A->bias[o] : 0.0f;
        for (ptrdiff_t p = 0; p < P; p++)
            y[p] = b;
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                float wv = wo[i * s->kw + j];
                int off = j * s->dw - s->pw, a, e;
                fnn_inside_cols(off, s->sw, s->W, s->Wo, &a, &e);
                for (int oh = 0; oh < s->Ho; oh++) {
                    int ih = oh * s->sh - s->ph + i * s->dh;
                    if (ih < 0 || ih >= s->H)
                        continue;
                    const float *xr = xc + (ptrdiff_t)ih * s->W + off;
                    float *yr = y + (ptrdiff_t)oh * s->Wo;
                    for (int ow = a; ow < e; ow++)
                        yr[ow] += wv * xr[(ptrdiff_t)ow * s->sw];
                }
            }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(dw_fwd_planes)

FNN_INLINE int dw_dx_planes_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const conv_args *A = ctx;
    const fnn_conv2d *s = A->s;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    const int m = s->O / s->C, T = s->kh * s->kw;
    for (ptrdiff_t q = lo; q < hi; q++) {       /* q = n C + c */
        int c = (int)(q % s->C);
        ptrdiff_t n = q / s->C;
        float *dx = A->dx + q * HW;
        memset(dx, 0, sizeof(float) * HW);
        for (int o = c * m; o < (c + 1) * m; o++) {
            const float *d = A->dy + (n * s->O + o) * P, *wo = A->w + (ptrdiff_t)o * T;
            for (int i = 0; i < s->kh; i++)
                for (int j = 0; j < s->kw; j++) {
                    float wv = wo[i * s->kw + j];
                    int off = j * s->dw - s->pw, a, e;
                    fnn_inside_cols(off, s->sw, s->W, s->Wo, &a, &e);
                    for (int oh = 0; oh < s->Ho; oh++) {
                        int ih = oh * s->sh - s->ph + i * s->dh;
                        if (ih < 0 || ih >= s->H)
                            continue;
                        float *xr = dx + (ptrdiff_t)ih * s->W + off;
                        const float *dr = d + (ptrdiff_t)oh * s->Wo;
                        for (int ow = a; ow < e; ow++)
                            xr[(ptrdiff_t)ow * s->sw] += wv * dr[ow];
                    }
                }
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(dw_dx_planes)

FNN_INLINE int dw_dw_channels_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const conv_args *A = ctx;
    const fnn_conv2d *s = A->s;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    const int m = s->O / s->C, T = s->kh * s->kw;
    for (ptrdiff_t o = lo; o < hi; o++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                int off = j * s->dw - s->pw, a, e;
                fnn_inside_cols(off, s->sw, s->W, s->Wo, &a, &e);
                double t = 0.0;
                for (ptrdiff_t n = 0; n < s->N; n++) {
                    const float *xc = A->x + (n * s->C + o / m) * HW, *d = A->dy + (n * s->O + o) * P;
                    for (int oh = 0; oh < s->Ho; oh++) {
                        int ih = oh * s->sh - s->ph + i * s->dh;
                        if (ih < 0 || ih >= s->H)
                            continue;
                        const float *xr = xc + (ptrdiff_t)ih * s->W + off;
                        const float *dr = d + (ptrdiff_t)oh * s->Wo;
                        for (int ow = a; ow < e; ow++)
                            t += (double)dr[ow] * xr[(ptrdiff_t)ow * s->sw];
                    }
                }
                float *g = A->dw + o * T + i * s->kw + j;
                *g = A->acc ? (float)(*g + t) : (float)t;
            }
    return FNN_OK;
}
FNN_RANGE_CLONES(dw_dw_channels)

static int depthwise(const fnn_conv2d *s)
{
    return s->G == s->C && s->G > 1;
}

static double conv_flops(const fnn_conv2d *s)
{
    return 2.0 * s->N * s->O * s->Ho * s->Wo * (double)(s->C / s->G) * s->kh * s->kw;
}

/* ------------------------------------------------------ direct path -- */

/* Where the ISA has a convolution micro-kernel (gemm_kernels.h: AVX-512 and
 * AVX2), a layer runs without a column matrix: per sample and group, its
 * channels are copied once into a zero-padded image, and the kernel computes
 * a tile of conv_mr output pixels x conv_nr channels (8 x 32, 6 x 16),
 * reading each pixel's K taps where they lie (rows[i] + koff[p]) against
 * weights packed once per call, K x conv_nr per panel.
 * Any stride, padding and dilation; one FMA chain per output in tap order,
 * so the bits do not depend on the thread count. The input gradient of a
 * stride-1 layer is the same computation: dx = dy, padded by (k-1) d - p,
 * correlated with the weights flipped and with in/out channels swapped. */
typedef struct {
    const fnn_conv2d *s;     /* as computed: x (N, C, H, W) -> y (N, O, Ho, Wo) */
    const float *x, *bp, *bias;
    int relu;
    const int *koff;
    float *y, *img;          /* per-part padded images, `slice` floats each */
    size_t slice;
    int Hs, Ws;              /* the padded image's rows and row length */
    int slabs;               /* parts of a sample's pixel tiles (batch < threads) */
    const fnn_gemm_arch *ar;
} direct_args;

static int span_h(const fnn_conv2d *s)
{
    return (s->Ho - 1) * s->sh + (s->kh - 1) * s->dh + 1;
}

static int span_w(const fnn_conv2d *s)
{
    return (s->Wo - 1) * s->sw + (s->kw - 1) * s->dw + 1;
}

/* Channels [0, nc) of x as Hs x Ws images: rows [-ph, Hs - ph) and columns
 * [-pw, Ws - pw) of the planes, zero outside them. */
FNN_INLINE void pad_image(const fnn_conv2d *s, const float *x, int nc, float *d, int Hs, int Ws)
{
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W;
    const int a = s->pw < Ws ? s->pw : Ws, b = s->pw + s->W < Ws ? s->pw + s->W : Ws;
    for (int c = 0; c < nc; c++)
        for (int hp = 0; hp < Hs; hp++, d += Ws) {
            const int h = hp - s->ph;
            if (h < 0 || h >= s->H) {
                memset(d, 0, sizeof(float) * Ws);
                continue;
            }
            const float *xr = x + c * HW + (ptrdiff_t)h * s->W - s->pw;
            for (int w = 0; w < a; w++)
                d[w] = 0.0f;
            for (int w = a; w < b; w++)
                d[w] = xr[w];
            for (int w = b; w < Ws; w++)
                d[w] = 0.0f;
        }
}

FNN_INLINE int direct_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const direct_args *D = ctx;
    const fnn_conv2d *s = D->s;
    const int CMR = D->ar->conv_mr, CNR = D->ar->conv_nr;
    const int Cg = s->C / s->G, Og = s->O / s->G, K = Cg * s->kh * s->kw;
    const int panels = (Og + CNR - 1) / CNR;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    const ptrdiff_t tiles = (P + CMR - 1) / CMR;
    float *img = D->img + part * D->slice;
    for (ptrdiff_t item = lo; item < hi; item++) {
        const ptrdiff_t n = item / D->slabs, sl = item % D->slabs;
        const ptrdiff_t t0 = tiles * sl / D->slabs, t1 = tiles * (sl + 1) / D->slabs;
        for (int g = 0; g < s->G; g++) {
            pad_image(s, D->x + (n * s->C + (ptrdiff_t)g * Cg) * HW, Cg, img, D->Hs, D->Ws);
            for (int q = 0; q < panels; q++) {
                const int j0 = q * CNR;
                const int nr = Og - j0 < CNR ? Og - j0 : CNR;
                const float *bq = D->bp + ((ptrdiff_t)g * panels + q) * K * CNR;
                const int o0 = g * Og + j0;
                fnn_epi ep = {1.0f, 0.0f, D->bias ? D->bias + o0 : NULL,
                              D->bias ? FNN_BIAS_ROW : FNN_BIAS_NONE, D->relu};
                float *yq = D->y + (n * s->O + o0) * P;
                int oh = (int)(t0 * CMR / s->Wo), ow = (int)(t0 * CMR % s->Wo);
                for (ptrdiff_t q0 = t0 * CMR; q0 < P && q0 < t1 * CMR;
                     q0 += CMR) {
                    const int mr = P - q0 < CMR ? (int)(P - q0) : CMR;
                    const float *rows[FNN_CONV_MR_MAX];
                    for (int i = 0; i < CMR; i++) {
                        if (i >= mr) {
                            rows[i] = rows[0];
                            continue;
                        }
                        rows[i] = img + (ptrdiff_t)oh * s->sh * D->Ws + (ptrdiff_t)ow * s->sw;
                        if (++ow == s->Wo) {
                            ow = 0;
                            oh++;
                        }
                    }
                    D->ar->conv(K, rows, D->koff, bq, yq + q0, P, mr, nr, &ep);
                }
            }
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(direct)      /* pad_image's short rows vectorised per ISA */

/* body over [0, items) in `parts` parts on the pool's threads, or all of it
 * on this one (with the workers' flush-to-zero) when parts is 1. */
static int run_parts(fnn_range_fn body, void *ctx, ptrdiff_t items, int parts, double flops)
{
    if (parts > 1)
        return fnn_parallel_for(items, 1, flops, body, ctx);
    unsigned f = fnn_ftz_enter();
    int st = body(ctx, 0, items, 0);
    fnn_ftz_leave(f);
    return st;
}

/* The parts of a direct or Winograd run of `flops`: the items are samples,
 * or with fewer samples than threads (batch-1 inference) *slabs slabs of
 * each sample's `tiles` of output (every output is computed alike either
 * way); returns how many parts run them. */
static int plan_parts(const fnn_conv2d *s, ptrdiff_t tiles, double flops, int *slabs,
                      ptrdiff_t *items)
{
    const int nt = fnn_threads_for(flops);
    const ptrdiff_t per = (nt + s->N - 1) / s->N;
    *slabs = s->N >= nt ? 1 : (int)(per < tiles ? per : tiles);
    *items = (ptrdiff_t)s->N * *slabs;
    return *items >= nt ? nt : (int)*items;
}

/* The shared workspace of a direct or Winograd run: wfl floats of packed
 * weights (returned), nk ints of tap offsets (*koff), then `parts` slices
 * of `slice` floats (*slices); NULL when out of memory. */
static float *run_workspace(size_t wfl, size_t nk, size_t slice, int parts, int **koff,
                            float **slices)
{
    const size_t kfl = (nk + 15) / 16 * 16;                   /* ints, in float slots */
    float *ws = fnn_ws_shared(sizeof(float) * (wfl + kfl + slice * parts));
    if (ws) {
        *koff = (int *)(ws + wfl);
        *slices = ws + wfl + kfl;
    }
    return ws;
}

/* s computed directly: y = conv(x) with its weights packed by `pack`
 * (flip: s is the input gradient's computation and w the forward's). */
static int direct_run(const fnn_conv2d *s, const float *x, const float *w, int flip,
                      const float *bias, int relu, float *y)
{
    const int Cg = s->C / s->G, Og = s->O / s->G, T = s->kh * s->kw, K = Cg * T;
    direct_args D = {.s = s, .x = x, .bias = bias, .relu = relu, .y = y, .Hs = span_h(s),
                     .Ws = span_w(s),
                     .ar = fnn_gemm_arch_in_use()};
    const int CMR = D.ar->conv_mr, CNR = D.ar->conv_nr;
    const int panels = (Og + CNR - 1) / CNR;
    const double flops = conv_flops(s);
    const ptrdiff_t tiles = ((ptrdiff_t)s->Ho * s->Wo + CMR - 1) / CMR;
    ptrdiff_t items;
    const int parts = plan_parts(s, tiles, flops, &D.slabs, &items);
    D.slice = ((size_t)Cg * D.Hs * D.Ws + 15) / 16 * 16;
    int *koff;
    float *bp = run_workspace((size_t)s->G * panels * K * CNR, K, D.slice, parts, &koff, &D.img);
    if (!bp)
        return FNN_ENOMEM;
    D.bp = bp;
    D.koff = koff;
    /* panel q of group g: bp[p 32 + jj] = the weight of output channel
     * g Og + 32 q + jj at tap p, zero past Og */
    for (int g = 0; g < s->G; g++)
        for (int q = 0; q < panels; q++) {
            float *d = bp + ((ptrdiff_t)g * panels + q) * K * CNR;
            for (int p = 0; p < K; p++, d += CNR)
                for (int jj = 0; jj < CNR; jj++) {
                    const int o = q * CNR + jj;
                    float v = 0.0f;
                    if (o < Og && !flip)          /* w (O, Cg, kh, kw) */
                        v = w[((ptrdiff_t)g * Og + o) * K + p];
                    else if (o < Og) {            /* the forward's w (O', Og, kh, kw), flipped */
                        const int c = p / T, t = p % T;
                        v = w[(((ptrdiff_t)g * Cg + c) * Og + o) * T + (T - 1 - t)];
                    }
                    d[jj] = v;
                }
        }
    for (int c = 0, p = 0; c < Cg; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++, p++)
                koff[p] = (c * D.Hs + i * s->dh) * D.Ws + j * s->dw;
    return run_parts(FNN_ISA_PICK(direct), &D, items, parts, flops);
}

/* dW the same way: per sample, output channels x taps = dy's rows (packed
 * as the kernel's B, pixels x 32 channels) against the taps' runs in the
 * padded image (rows[i] = the image at tap k0 + i, koff = the pixels'
 * offsets), one FMA chain over the pixels, stored transposed into dW (O, K)
 * -- accumulated over the samples of a chunk (beta 1 after the first), the
 * chunks then summed in order by dw_reduce as on the GEMM path. */
typedef struct {
    const fnn_conv2d *s;
    const float *x, *dy;
    float *part_dw, *ws;
    const int *toff, *poff;  /* the K taps' and the P pixels' offsets in the image */
    size_t slice, img_floats;
    int Hs, Ws, chunks;
    int grp;                 /* samples summed in one kernel call (about 1024 pixels) */
    const fnn_gemm_arch *ar;
} direct_dw_args;

FNN_INLINE int direct_dw_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const direct_dw_args *D = ctx;
    const fnn_conv2d *s = D->s;
    const int CMR = D->ar->conv_mr, CNR = D->ar->conv_nr;
    const int Cg = s->C / s->G, Og = s->O / s->G, K = Cg * s->kh * s->kw;
    const int panels = (Og + CNR - 1) / CNR;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    const ptrdiff_t per = (s->N + D->chunks - 1) / D->chunks, wsize = (ptrdiff_t)s->O * K;
    float *img = D->ws + part * D->slice;
    float *bt = img + D->grp * D->img_floats;
    for (ptrdiff_t c = lo; c < hi; c++) {
        float *dwc = D->part_dw + c * wsize;
        const ptrdiff_t n0 = c * per, n1 = n0 + per < s->N ? n0 + per : s->N;
        for (ptrdiff_t n = n0; n < n1; n += D->grp) {
            const int gl = n1 - n < D->grp ? (int)(n1 - n) : D->grp;   /* samples this call */
            for (int g = 0; g < s->G; g++) {
                for (int l = 0; l < gl; l++)
                    pad_image(s, D->x + ((n + l) * s->C + (ptrdiff_t)g * Cg) * HW, Cg,
                              img + l * D->img_floats, D->Hs, D->Ws);
                for (int q = 0; q < panels; q++) {
                    const int j0 = q * CNR;
                    const int nr = Og - j0 < CNR ? Og - j0 : CNR;
                    for (int l = 0; l < gl; l++) {    /* bt[(l P + p) CNR + j] */
                        const float *dyq = D->dy + ((n + l) * s->O + (ptrdiff_t)g * Og + j0) * P;
                        float *b = bt + l * P * CNR;
                        D->ar->pack_t(nr, (int)P, dyq, P, b, CNR);
                        for (ptrdiff_t p = 0; nr < CNR && p < P; p++)
                            memset(b + p * CNR + nr, 0, sizeof(float) * (CNR - nr));
                    }
                    fnn_epi ep = {1.0f, n == n0 ? 0.0f : 1.0f, NULL, FNN_BIAS_NONE, 0};
                    float *dwq = dwc + ((ptrdiff_t)g * Og + j0) * K;
                    for (int k0 = 0; k0 < K; k0 += CMR) {
                        const int mr = K - k0 < CMR ? K - k0 : CMR;
                        const float *rows[FNN_CONV_MR_MAX];
                        for (int i = 0; i < CMR; i++)
                            rows[i] = img + D->toff[k0 + (i < mr ? i : 0)];
                        D->ar->conv((int)(gl * P), rows, D->poff, bt, dwq + k0, K, mr, nr, &ep);
                    }
                }
            }
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(direct_dw)

/* The chunks' partials of dW into part_dw (chunks x O K floats, taken with
 * the rest of the shared workspace here). */
static int direct_dw(const fnn_conv2d *s, const float *x, const float *dy, int chunks,
                     float **part_dw)
{
    const int Cg = s->C / s->G, K = Cg * s->kh * s->kw;
    const ptrdiff_t P = (ptrdiff_t)s->Ho * s->Wo;
    direct_dw_args D = {.s = s, .x = x, .dy = dy, .Hs = span_h(s), .Ws = span_w(s),
                        .chunks = chunks, .ar = fnn_gemm_arch_in_use()};
    const int CNR = D.ar->conv_nr;
    const double flops = conv_flops(s);
    const int nt = fnn_threads_for(flops), parts = chunks >= nt ? nt : 1;
    /* a kernel call sums the pixels of grp samples (its store, a transposed
     * tile, costs as much as some 200 pixels' FMAs: at 196 pixels a sample,
     * LeNet's second layer, one call per sample spent 16% of dW there) */
    const ptrdiff_t per = (s->N + chunks - 1) / chunks;
    D.grp = (int)(P >= 1024 ? 1 : 1024 / P < per ? 1024 / P : per);
    while (D.grp > 1 && (double)D.grp * ((double)s->C / s->G * D.Hs * D.Ws + 16) >= 2147483647.0)
        D.grp--;                                     /* the pixels' offsets are ints */
    const size_t wsize = (size_t)s->O * K, ifl = ((size_t)K + D.grp * P + 15) / 16 * 16;
    D.img_floats = ((size_t)Cg * D.Hs * D.Ws + 15) / 16 * 16;
    D.slice = D.grp * (D.img_floats + (size_t)P * CNR);
    float *ws = fnn_ws_shared(sizeof(float) * (chunks * wsize + ifl + D.slice * parts));
    if (!ws)
        return FNN_ENOMEM;
    D.part_dw = *part_dw = ws;
    int *toff = (int *)(ws + chunks * wsize), *poff = toff + K;
    D.toff = toff;
    D.poff = poff;
    D.ws = ws + chunks * wsize + ifl;
    for (int c = 0, p = 0; c < Cg; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++, p++)
                toff[p] = (c * D.Hs + i * s->dh) * D.Ws + j * s->dw;
    for (int l = 0, p = 0; l < D.grp; l++)
        for (int oh = 0; oh < s->Ho; oh++)
            for (int ow = 0; ow < s->Wo; ow++, p++)
                poff[p] = (int)(l * D.img_floats) + oh * s->sh * D.Ws + ow * s->sw;
    return run_parts(FNN_ISA_PICK(direct_dw), &D, chunks, parts, flops);
}

/* ----------------------------------------------------- Winograd path -- */

/* Stride-1, undilated 3x3 and 5x5 layers with at least 16 input and output
 * channels (G == 1), where the ISA has a convolution micro-kernel: Winograd's
 * minimal filtering, F(4x4, 3x3) and F(2x2, 5x5), both on 6x6 input tiles
 * (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
 * CVPR 2016; points 0, 1, -1, 2, -2 and infinity, so one input transform
 * serves both). A tile's m x m outputs cost 36 products per channel pair
 * instead of m^2 r^2: 144 -> 36 for 3x3, 100 -> 36 for 5x5.
 *  - weights: U = G g G^T per (channel pair), in float64, once per call,
 *    packed as the micro-kernel's B: per xi = one of the 36 tile positions,
 *    panels of conv_nr output channels, C rows.
 *  - per sample (or slab of its tiles): the zero-padded image is laid out
 *    channel-last, so each tile's V = B^T d B is computed 16 channels to a
 *    vector; V[xi] holds the block's tiles x C.
 *  - 36 products M[xi] (tiles x O) = V[xi] U[xi] by the direct path's
 *    micro-kernel (rows = tiles, K = C), stored as accumulated (ep.rows).
 *  - y = A^T M A per tile, 16 output channels to a vector, with the bias
 *    and the fused ReLU, written into NCHW where it lies inside the output.
 * The same operations in the same order on every thread count and on both
 * ISAs (the kernels' FMA chains, the transforms' fixed sequences without
 * contraction); the bits differ from the direct path's: Winograd rounds
 * differently (errors of a few 1e-6 of the output's scale for 3x3 and 5x5
 * with 16-64 channels, measured against float64; the tests bound them at
 * 3e-5). The input gradient of such a layer is the same computation (the
 * direct path's flip). */
#define WA 6                            /* alpha: input tile side */
#define WTB 64                          /* tiles per block (V, M in L2) */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float wvf __attribute__((vector_size(64)));    /* 16 floats */
typedef int wvi __attribute__((vector_size(64)));

typedef struct {
    const fnn_conv2d *s;
    const float *x, *up, *bias;         /* up: the packed transformed weights */
    float *y, *buf;                     /* per-part slices of `slice` floats */
    size_t slice;
    const int *koff;
    int m, r, Cp, TH, TW, Hs, Ws, slabs, relu;
    const fnn_gemm_arch *ar;
} wino_args;

static int wino_ok(const fnn_conv2d *s)
{
    const int r = s->kh;
    if (!fnn_gemm_arch_in_use()->conv || s->G != 1 || s->kw != r || (r != 3 && r != 5)
        || s->sh != 1 || s->sw != 1 || s->dh != 1 || s->dw != 1 || s->C < 16 || s->O < 16
        || s->ph > r - 1 || s->pw > r - 1)
        return 0;
    const int m = WA - r + 1;
    const double img = (double)((s->Ho + m - 1) / m * m + r - 1) * ((s->Wo + m - 1) / m * m + r - 1)
                       * ((s->C + 15) / 16 * 16);
    return img <= (1 << 22);            /* the channel-last image: <= 16 MiB */
}

/* Weight g(o, c) of the computation s (flip: s is the input gradient's and
 * w the forward's (C', O', r, r) weights, o and c swapped, taps reversed). */
static double wino_w(const fnn_conv2d *s, const float *w, int flip, int o, int c, int i, int j)
{
    const int r = s->kh;
    if (!flip)
        return w[(((ptrdiff_t)o * s->C + c) * r + i) * r + j];
    return w[(((ptrdiff_t)c * s->O + o) * r + (r - 1 - i)) * r + (r - 1 - j)];
}

/* G (6 x r): row j < 5 is point p_j's powers over prod_{l != j} (p_j - p_l);
 * row 5 (infinity) picks the last tap. */
static void wino_g(int r, double G[WA][5])
{
    static const double pts[5] = {0, 1, -1, 2, -2};
    for (int j = 0; j < 5; j++) {
        double f = 1, p = 1;
        for (int l = 0; l < 5; l++)
            if (l != j)
                f *= pts[j] - pts[l];
        for (int k = 0; k < r; k++, p *= pts[j])
            G[j][k] = p / f;
    }
    for (int k = 0; k < r; k++)
        G[5][k] = k == r - 1;
}

/* t = B^T d for one column of 6 vectors of type T. */
#define WINO_BT(T, d, t)                                                      \
    do {                                                                      \
        const T a_ = d[4] - d[2], b_ = d[3] - d[1];                           \
        t[0] = (d[0] * 4.0f - d[2] * 5.0f) + d[4];                            \
        t[1] = (d[3] + d[4]) - (d[1] + d[2]) * 4.0f;                          \
        t[2] = (d[4] - d[3]) + (d[1] - d[2]) * 4.0f;                          \
        t[3] = a_ + b_ * 2.0f;                                                \
        t[4] = a_ - b_ * 2.0f;                                                \
        t[5] = (d[1] * 4.0f - d[3] * 5.0f) + d[5];                            \
    } while (0)

/* o = A^T s (m = 4 or 2 rows) for one column of 6. */
#define WINO_AT(m, s, o)                                                      \
    do {                                                                      \
        const wvf p_ = s[1] + s[2], q_ = s[1] - s[2];                         \
        const wvf u_ = s[3] + s[4], v_ = s[3] - s[4];                         \
        o[0] = (s[0] + p_) + u_;                                              \
        if (m == 4) {                                                         \
            o[1] = q_ + v_ * 2.0f;                                            \
            o[2] = p_ + u_ * 4.0f;                                            \
            o[3] = (q_ + v_ * 8.0f) + s[5];                                   \
        } else                                                                \
            o[1] = (q_ + v_ * 2.0f) + s[5];                                   \
    } while (0)

FNN_INLINE wvf wld(const float *p)
{
    wvf v;
    memcpy(&v, p, sizeof v);
    return v;
}

FNN_INLINE void wst(float *p, wvf v)
{
    memcpy(p, &v, sizeof v);
}

typedef float wv8 __attribute__((vector_size(32)));
typedef int wi8 __attribute__((vector_size(32)));

/* r[k] (8 pixels of channel k) -> r[k] (8 channels of pixel k). */
FNN_INLINE void wino_t8(wv8 r[8])
{
    wv8 a[8], b[8];
    for (int k = 0; k < 8; k += 2) {
        a[k] = __builtin_shuffle(r[k], r[k + 1], (wi8){0, 8, 1, 9, 4, 12, 5, 13});
        a[k + 1] = __builtin_shuffle(r[k], r[k + 1], (wi8){2, 10, 3, 11, 6, 14, 7, 15});
    }
    for (int k = 0; k < 8; k += 4)
        for (int h = 0; h < 2; h++) {
            b[k + h] = __builtin_shuffle(a[k + h], a[k + h + 2], (wi8){0, 1, 8, 9, 4, 5, 12, 13});
            b[k + h + 2] = __builtin_shuffle(a[k + h], a[k + h + 2], (wi8){2, 3, 10, 11, 6, 7, 14, 15});
        }
    for (int k = 0; k < 4; k++) {           /* b holds rows 0 2 1 3 of each half */
        const int j = k == 1 ? 2 : k == 2 ? 1 : k;
        r[k] = __builtin_shuffle(b[j], b[j + 4], (wi8){0, 1, 2, 3, 8, 9, 10, 11});
        r[k + 4] = __builtin_shuffle(b[j], b[j + 4], (wi8){4, 5, 6, 7, 12, 13, 14, 15});
    }
}

/* Sample x (C, H, W) as a channel-last zero-padded image img[(h Ws + w) Cp + c],
 * rows [-ph, Hs - ph), columns [-pw, Ws - pw); channels C..Cp zero. Blocks
 * of 8 channels x 8 pixels go through an 8 x 8 transpose in registers. */
FNN_INLINE void wino_image(const wino_args *W, const float *x, float *img)
{
    const fnn_conv2d *s = W->s;
    const int Cp = W->Cp, C8 = s->C / 8 * 8;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W;
    const int w1 = s->W < W->Ws - s->pw ? s->W : W->Ws - s->pw, w8 = w1 / 8 * 8;
    memset(img, 0, sizeof(float) * (size_t)W->Hs * W->Ws * Cp);
    for (int h = 0; h < s->H && h + s->ph < W->Hs; h++) {
        float *d = img + ((ptrdiff_t)(h + s->ph) * W->Ws + s->pw) * Cp;
        const float *xr = x + (ptrdiff_t)h * s->W;
        for (int c0 = 0; c0 < C8; c0 += 8)
            for (int w0 = 0; w0 < w8; w0 += 8) {
                wv8 r[8];
                for (int k = 0; k < 8; k++)
                    memcpy(&r[k], xr + (c0 + k) * HW + w0, sizeof(wv8));
                wino_t8(r);
                for (int k = 0; k < 8; k++)
                    memcpy(d + (ptrdiff_t)(w0 + k) * Cp + c0, &r[k], sizeof(wv8));
            }
        for (int c = 0; c < s->C; c++)               /* the tails */
            for (int w = c < C8 ? w8 : 0; w < w1; w++)
                d[(ptrdiff_t)w * Cp + c] = xr[c * HW + w];
    }
}

/* V[xi][t][c] = (B^T d B)[xi] of tile t0 + t's 6 x 6 patch, for t < nt. */
FNN_INLINE void wino_input(const wino_args *W, const float *img, ptrdiff_t t0, int nt, int tbv,
                           float *V)
{
    const int Cp = W->Cp, m = W->m;
    for (int t = 0; t < nt; t++) {
        const ptrdiff_t tt = t0 + t;
        const int th = (int)(tt / W->TW), tw = (int)(tt % W->TW);
        const float *base = img + ((ptrdiff_t)th * m * W->Ws + (ptrdiff_t)tw * m) * Cp;
        for (int cv = 0; cv < Cp; cv += 16) {
            wvf T[WA][WA];
            for (int b = 0; b < WA; b++) {         /* columns: T = B^T d */
                wvf d[WA], o[WA];
                for (int a = 0; a < WA; a++)
                    d[a] = wld(base + ((ptrdiff_t)a * W->Ws + b) * Cp + cv);
                WINO_BT(wvf, d, o);
                for (int a = 0; a < WA; a++)
                    T[a][b] = o[a];
            }
            for (int a = 0; a < WA; a++) {         /* rows: V = T B */
                wvf o[WA];
                WINO_BT(wvf, T[a], o);
                for (int b = 0; b < WA; b++)
                    wst(V + ((ptrdiff_t)(a * WA + b) * tbv + t) * Cp + cv, o[b]);
            }
        }
    }
}

/* y over tiles [t0, t0 + nt): A^T M[xi][t][o] A per tile, 16 output
 * channels to a vector (M rows Op >= O floats apart, the lanes past O never
 * stored), with the bias and the fused ReLU, written into NCHW where the
 * tile lies inside the output; m a constant in each copy. */
FNN_INLINE void wino_output(const wino_args *W, const float *M, ptrdiff_t t0, int nt, int Op,
                            float *y, const int m)
{
    const fnn_conv2d *s = W->s;
    const int O = s->O, Wo = s->Wo;
    const ptrdiff_t P = (ptrdiff_t)s->Ho * Wo;
    for (int t = 0; t < nt; t++) {
        const int oh0 = (int)((t0 + t) / W->TW) * m, ow0 = (int)((t0 + t) % W->TW) * m;
        const int rows = s->Ho - oh0 < m ? s->Ho - oh0 : m, cols = Wo - ow0 < m ? Wo - ow0 : m;
        float *yt = y + (ptrdiff_t)oh0 * Wo + ow0;
        for (int ov = 0; ov < O; ov += 16) {
            const int lanes = O - ov < 16 ? O - ov : 16;
            float bv[16] = {0};
            for (int l = 0; W->bias && l < lanes; l++)
                bv[l] = W->bias[ov + l];
            wvf S[4][WA];
            for (int b = 0; b < WA; b++) {         /* columns: S = A^T M */
                wvf d[WA], r[4];
                for (int a = 0; a < WA; a++)
                    d[a] = wld(M + ((ptrdiff_t)(a * WA + b) * WTB + t) * Op + ov);
                WINO_AT(m, d, r);
                for (int i = 0; i < m; i++)
                    S[i][b] = r[i];
            }
            float out[4][4][16];            /* out[i][j][l]: channel ov + l's output (i, j) */
            for (int i = 0; i < m; i++) {          /* rows: Y = S A */
                wvf r[4];
                WINO_AT(m, S[i], r);
                for (int j = 0; j < m; j++) {
                    wvf v = r[j] + wld(bv);
                    if (W->relu)                   /* ReLU's rule: NaN stays */
                        v = (wvf)((wvi)v & ~(v < 0.0f));
                    wst(out[i][j], v);
                }
            }
            for (int l = 0; l < lanes; l++) {
                float *yo = yt + (ov + l) * P;
                if (rows == m && cols == m) {
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < m; j++)
                            yo[i * Wo + j] = out[i][j][l];
                } else
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < cols; j++)
                            yo[i * Wo + j] = out[i][j][l];
            }
        }
    }
}

FNN_INLINE int wino_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const wino_args *W = ctx;
    const fnn_conv2d *s = W->s;
    const int CMR = W->ar->conv_mr, CNR = W->ar->conv_nr, C = s->C, O = s->O;
    const int panels = (O + CNR - 1) / CNR;
    const ptrdiff_t tiles = (ptrdiff_t)W->TH * W->TW;
    float *img = W->buf + part * W->slice;
    float *V = img + (size_t)W->Hs * W->Ws * W->Cp;
    float *M = V + (size_t)WA * WA * WTB * W->Cp;
    const fnn_epi ep = {1.0f, 0.0f, NULL, FNN_BIAS_NONE, 0, 1};   /* M[xi][t][o] */
    const int Op = panels * CNR;
    for (ptrdiff_t item = lo; item < hi; item++) {
        const ptrdiff_t n = item / W->slabs, sl = item % W->slabs;
        const ptrdiff_t a0 = tiles * sl / W->slabs, a1 = tiles * (sl + 1) / W->slabs;
        wino_image(W, W->x + n * C * (ptrdiff_t)s->H * s->W, img);
        for (ptrdiff_t t0 = a0; t0 < a1; t0 += WTB) {
            const int nt = a1 - t0 < WTB ? (int)(a1 - t0) : WTB;
            wino_input(W, img, t0, nt, WTB, V);
            for (int xi = 0; xi < WA * WA; xi++)
                for (int q = 0; q < panels; q++) {
                    const int j0 = q * CNR, nr = O - j0 < CNR ? O - j0 : CNR;
                    const float *bq = W->up + ((ptrdiff_t)xi * panels + q) * C * CNR;
                    float *mq = M + (ptrdiff_t)xi * WTB * Op + j0;
                    for (int g = 0; g < nt; g += CMR) {
                        const int mr = nt - g < CMR ? nt - g : CMR;
                        const float *rows[FNN_CONV_MR_MAX];
                        for (int i = 0; i < CMR; i++)
                            rows[i] = V + ((ptrdiff_t)xi * WTB + g + (i < mr ? i : 0)) * W->Cp;
                        W->ar->conv(C, rows, W->koff, bq, mq + (ptrdiff_t)g * Op, Op, mr, nr, &ep);
                    }
                }
            float *yn = W->y + n * O * (ptrdiff_t)s->Ho * s->Wo;
            if (W->m == 4)
                wino_output(W, M, t0, nt, Op, yn, 4);
            else
                wino_output(W, M, t0, nt, Op, yn, 2);
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(wino)

/* s by Winograd (flip as in direct_run). */
static int wino_run(const fnn_conv2d *s, const float *x, const float *w, int flip,
                    const float *bias, int relu, float *y)
{
    const int r = s->kh, m = WA - r + 1;
    wino_args W = {.s = s, .x = x, .bias = bias, .y = y, .relu = relu, .m = m, .r = r,
                   .Cp = (s->C + 15) / 16 * 16, .TH = (s->Ho + m - 1) / m,
                   .TW = (s->Wo + m - 1) / m, .ar = fnn_gemm_arch_in_use()};
    W.Hs = W.TH * m + r - 1;
    W.Ws = W.TW * m + r - 1;
    const int CNR = W.ar->conv_nr, panels = (s->O + CNR - 1) / CNR;
    const double flops = conv_flops(s);
    ptrdiff_t items;
    const int parts = plan_parts(s, (ptrdiff_t)W.TH * W.TW, flops, &W.slabs, &items);
    const size_t ufl = (size_t)WA * WA * panels * s->C * CNR;
    W.slice = ((size_t)W.Hs * W.Ws * W.Cp + (size_t)WA * WA * WTB * (W.Cp + panels * CNR) + 15)
              / 16 * 16;
    int *koff;
    float *up = run_workspace(ufl, s->C, W.slice, parts, &koff, &W.buf);
    if (!up)
        return FNN_ENOMEM;
    W.up = up;
    W.koff = koff;
    for (int c = 0; c < s->C; c++)
        koff[c] = c;
    double G[WA][5];
    wino_g(r, G);
    memset(up, 0, sizeof(float) * ufl);
    for (int o = 0; o < s->O; o++)
        for (int c = 0; c < s->C; c++) {
            double gt[WA][5];                   /* G g, then (G g) G^T */
            for (int a = 0; a < WA; a++)
                for (int j = 0; j < r; j++) {
                    double t = 0;
                    for (int i = 0; i < r; i++)
                        t += G[a][i] * wino_w(s, w, flip, o, c, i, j);
                    gt[a][j] = t;
                }
            for (int a = 0; a < WA; a++)
                for (int b = 0; b < WA; b++) {
                    double t = 0;
                    for (int j = 0; j < r; j++)
                        t += gt[a][j] * G[b][j];
                    up[(((ptrdiff_t)(a * WA + b) * panels + o / CNR) * s->C + c) * CNR + o % CNR]
                        = (float)t;
                }
        }
    return run_parts(FNN_ISA_PICK(wino), &W, items, parts, flops);
}

/* The direct path: the kernel exists and the layer has enough taps to
 * amortise a tile's transposed store (LeNet's first layer, 1 -> 32 5x5,
 * K = 25: forward+backward 2.19 -> 1.62 ms direct; a 3x3 one, K = 9, was
 * no faster, and keeps im2col + GEMM). Never a function of the thread count. */
static int direct_ok(const fnn_conv2d *s)
{
    const int K = s->C / s->G * s->kh * s->kw;
    const double img = (double)(s->C / s->G) * span_h(s) * span_w(s);
    return fnn_gemm_arch_in_use()->conv && !depthwise(s) && K >= 16 && img < (1 << 30);
}

/* The input gradient's computation as a convolution of dy, when it is one
 * (stride 1, padding at most the kernel's reach): 1 by Winograd, 2 direct. */
static int dx_as_conv(const fnn_conv2d *s, fnn_conv2d *t)
{
    if (s->sh != 1 || s->sw != 1 || s->ph > (s->kh - 1) * s->dh || s->pw > (s->kw - 1) * s->dw)
        return 0;
    *t = (fnn_conv2d){s->N, s->O, s->Ho, s->Wo, s->C, s->G, s->kh, s->kw, 1, 1,
                      (s->kh - 1) * s->dh - s->ph, (s->kw - 1) * s->dw - s->pw, s->dh, s->dw,
                      s->H, s->W};
    return wino_ok(t) ? 1 : direct_ok(t) ? 2 : 0;
}

/* ---------------------------------------------------------- drivers -- */

/* body over `items` (samples, or backward's chunks): one part per thread the
 * work earns when there are at least that many items, else the items in turn
 * on part 0 with threaded GEMMs. The shared workspace holds one `slice` of
 * floats per part, then `extra` floats at A->part_dw. */
static int over_items(conv_args *A, fnn_range_fn body, ptrdiff_t items, size_t slice,
                      size_t extra)
{
    double flops = A->dx && A->dw ? 2 * conv_flops(A->s) : conv_flops(A->s);
    int nt = fnn_threads_for(flops);
    int parts = items >= nt ? nt : 1;
    A->slice = slice;
    A->buf = slice + extra ? fnn_ws_shared(sizeof(float) * (slice * parts + extra)) : NULL;
    if (slice + extra && !A->buf)
        return FNN_ENOMEM;
    A->part_dw = extra ? A->buf + slice * parts : NULL;
    return run_parts(body, A, items, parts, flops);
}

int fnn_conv2d_forward(const fnn_conv2d *s, const float *x, const float *w, const float *bias,
                       float *y, int relu)
{
    conv_args A = {.s = s, .x = x, .w = w, .bias = bias, .y = y, .relu = relu};
    if (depthwise(s)) {
        int st = fnn_parallel_for((ptrdiff_t)s->N * s->O, 1, conv_flops(s),
                                  FNN_ISA_PICK(dw_fwd_planes), &A);
        if (!st && relu)
            fnn_relu_forward((ptrdiff_t)s->N * s->O * s->Ho * s->Wo, y, y);
        return st;
    }
    if (wino_ok(s))
        return wino_run(s, x, w, 0, bias, relu, y);
    if (!pointwise(s) && direct_ok(s))
        return direct_run(s, x, w, 0, bias, relu, y);
    size_t K = (size_t)(s->C / s->G) * s->kh * s->kw, P = (size_t)s->Ho * s->Wo;
    size_t Pw = wide_rows(s) ? (size_t)wide_pixels(s) : P;
    size_t out = wide_rows(s) ? (size_t)(s->O / s->G) * Pw : P;
    return over_items(&A, FNN_ISA_PICK(fwd_samples), s->N,
                      pointwise(s) ? 0 : fnn_sgemm_packed_floats((int)K, (int)Pw) + out + pad_floats(s),
                      0);
}

/* Chunks of the batch for dW's partials: a function of the shape alone, at
 * most 16 and at most 64 MiB of partials. */
#define DW_CHUNKS 16
#define DW_PARTIAL_BYTES ((size_t)64 << 20)

int fnn_conv2d_backward(const fnn_conv2d *s, const float *x, const float *w, const float *dy,
                        float *dx, float *dw, float *db, int acc)
{
    conv_args A = {.s = s, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db, .acc = acc};
    const ptrdiff_t P = (ptrdiff_t)s->Ho * s->Wo, NP = (ptrdiff_t)s->N * P;
    double flops = conv_flops(s);
    int st = FNN_OK;
    if (db)
        st = fnn_parallel_for(s->O, 1, (double)NP * s->O * FNN_COST_ELEM / 8,
                              FNN_ISA_PICK(db_channels), &A);
    if (depthwise(s)) {
        if (!st && dw)
            st = fnn_parallel_for(s->O, 1, flops, FNN_ISA_PICK(dw_dw_channels), &A);
        if (!st && dx)
            st = fnn_parallel_for((ptrdiff_t)s->N * s->C, 1, flops, FNN_ISA_PICK(dw_dx_planes), &A);
        return st;
    }
    if (st || !(dw || dx))
        return st;
    fnn_conv2d t;
    const int how = dx && !pointwise(s) ? dx_as_conv(s, &t) : 0;
    if (how) {
        st = how == 1 ? wino_run(&t, dy, w, 1, NULL, 0, dx) : direct_run(&t, dy, w, 1, NULL, 0, dx);
        if (st || !dw)
            return st;
        A.dx = dx = NULL;
    }
    size_t wsize = (size_t)s->O * (s->C / s->G) * s->kh * s->kw;
    size_t cap = DW_PARTIAL_BYTES / (sizeof(float) * wsize);
    A.chunks = !dw ? s->N : s->N < DW_CHUNKS ? s->N : DW_CHUNKS;
    if (dw && (size_t)A.chunks > cap)
        A.chunks = cap > 1 ? (int)cap : 1;
    int per = (s->N + A.chunks - 1) / A.chunks;     /* samples per chunk, the last may be short */
    A.chunks = (s->N + per - 1) / per;
    if (dw && !pointwise(s) && direct_ok(s)) {
        st = direct_dw(s, x, dy, A.chunks, &A.part_dw);
        if (!st)
            st = fnn_parallel_for((ptrdiff_t)wsize, 64, (double)wsize * A.chunks * FNN_COST_ELEM / 4,
                                  dw_reduce, &A);
        if (st || !dx)
            return st;
        A.dw = dw = NULL;
        A.chunks = s->N;
    }
    st = over_items(&A, FNN_ISA_PICK(bwd_chunks), A.chunks,
                    pointwise(s) ? 0
                    : wide_rows(s) ? ((size_t)s->C * s->kh * s->kw + s->O) * wide_pixels(s)
                                     + pad_floats(s)
                                   : (size_t)s->C * s->kh * s->kw * P + pad_floats(s),
                    dw ? A.chunks * wsize : 0);
    if (!st && dw)
        st = fnn_parallel_for((ptrdiff_t)wsize, 64, (double)wsize * A.chunks * FNN_COST_ELEM / 4,
                              dw_reduce, &A);
    return st;
}

/* ------------------------------------------------------ naive twins -- */

/* Tap (i, j) of output (oh, ow) as an offset in the plane, or -1 outside. */
static ptrdiff_t tap(const fnn_conv2d *s, int oh, int ow, int i, int j)
{
    int ih = oh * s->sh - s->ph + i * s->dh, iw = ow * s->sw - s->pw + j * s->dw;
    return ih < 0 || ih >= s->H || iw < 0 || iw >= s->W ? -1 : (ptrdiff_t)ih * s->W + iw;
}

void fnn_conv2d_forward_naive(const fnn_conv2d *s, const float *x, const float *w,
                              const float *bias, float *y)
{
    const int Cg = s->C / s->G, Og = s->O / s->G;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W;
    for (int n = 0; n < s->N; n++)
        for (int o = 0; o < s->O; o++)
            for (int oh = 0; oh < s->Ho; oh++)
                for (int ow = 0; ow < s->Wo; ow++) {
                    double t = bias ? bias[o] : 0.0;
                    for (int c = 0; c < Cg; c++)
                        for (int i = 0; i < s->kh; i++)
                            for (int j = 0; j < s->kw; j++) {
                                ptrdiff_t k = tap(s, oh, ow, i, j);
                                if (k >= 0)
                                    t += (double)w[((ptrdiff_t)(o * Cg + c) * s->kh + i) * s->kw + j]
                                         * x[((ptrdiff_t)n * s->C + o / Og * Cg + c) * HW + k];
                            }
                    y[(((ptrdiff_t)n * s->O + o) * s->Ho + oh) * s->Wo + ow] = (float)t;
                }
}

void fnn_conv2d_backward_naive(const fnn_conv2d *s, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db, int acc)
{
    const int Cg = s->C / s->G, Og = s->O / s->G, T = s->kh * s->kw;
    const ptrdiff_t HW = (ptrdiff_t)s->H * s->W, P = (ptrdiff_t)s->Ho * s->Wo;
    if (dx)
        for (ptrdiff_t k = 0; k < (ptrdiff_t)s->N * s->C * HW; k++)
            dx[k] = 0.0f;
    for (int o = 0; o < s->O; o++) {
        double tb = 0.0;
        for (int n = 0; n < s->N; n++)
            for (ptrdiff_t p = 0; p < P; p++)
                tb += dy[((ptrdiff_t)n * s->O + o) * P + p];
        if (db)
            db[o] = acc ? (float)(db[o] + tb) : (float)tb;
        for (int c = 0; c < Cg; c++)
            for (int t = 0; t < T; t++) {
                double tw = 0.0;
                ptrdiff_t wi = ((ptrdiff_t)o * Cg + c) * T + t;
                for (int n = 0; n < s->N; n++) {
                    ptrdiff_t xc = ((ptrdiff_t)n * s->C + o / Og * Cg + c) * HW;
                    for (int oh = 0; oh < s->Ho; oh++)
                        for (int ow = 0; ow < s->Wo; ow++) {
                            ptrdiff_t k = tap(s, oh, ow, t / s->kw, t % s->kw);
                            float d = dy[((ptrdiff_t)n * s->O + o) * P + (ptrdiff_t)oh * s->Wo + ow];
                            if (k < 0)
                                continue;
                            tw += (double)d * x[xc + k];
                            if (dx)
                                dx[xc + k] += w[wi] * d;
                        }
                }
                if (dw)
                    dw[wi] = acc ? (float)(dw[wi] + tw) : (float)tw;
            }
    }
}
