/* rnn.c -- the time loop of recurrent layers (Elman RNN, LSTM, GRU), one
 * layer and one direction per call, forward and backward through time.
 *
 * Forward (Appleyard et al. 2016; oneDNN's CPU RNN):
 *   1. the input projection of all T steps as one GEMM,
 *        G (T*N, G*H) = X (T*N, I) W_ih^T + b_ih;
 *   2. per step, one GEMM for the recurrent projection,
 *        R (N, G*H) = h_{t-1} (N, H) W_hh^T + b_hh,
 *      then one fused elementwise pass (gate nonlinearities from fmath.h,
 *      cell and hidden state update, saves for backward) over the rows.
 * Backward:
 *   1. per step (in reverse processing order) one fused pass computing the
 *      gate gradients dG_t from the saved gates (and adding them into the
 *      bias gradients' float64 sums, per fixed chunk of rows), then one GEMM
 *      dh_{t-1} += dG_t W_hh;
 *   2. dW_ih += dGx^T X and dW_hh += dGh^T Hprev, each ONE GEMM with K = T*N
 *      (gemm.c never splits K: the same bits on any thread count), dx = dGx
 *      W_ih, and the bias gradients as the chunks' sums in chunk order.
 * Threads: small recurrent weights (they fit in half a core's L2) run the
 * whole time loop split over the batch, one part per thread, with no sync
 * between steps; larger ones thread each step's GEMM and pass (run_loop).
 *
 * Layouts are torch's: gates stacked along the rows of W_ih (G*H, I) and
 * W_hh (G*H, H); LSTM i, f, g, o; GRU r, z, n with
 *   n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
 * Variable lengths: sample b is active at time t iff t < len[b]; an inactive
 * sample keeps its state, outputs 0 and gets no gradient, so h_n holds each
 * sequence's state at its last valid step and the reverse direction (time
 * T-1 down to 0) starts from h0 at time len[b]-1.
 *
 * The recurrent weights are packed once per call into the GEMM's panel layout
 * (fnn_sgemm_pack_b), so the T per-step products never pack them again.
 * Scratch (R, the packed W_hh, the gates in inference, the gate gradients)
 * comes from the caller's shared workspace region (the GEMM uses the
 * per-thread arenas).
 * What backward needs from forward is passed in by the caller (the layer's
 * saved context). Elementwise work is per element, a row's GEMM sums do not
 * depend on the rows beside it, bias sums run in a fixed order: results do
 * not depend on the thread count.
 */
#include <string.h>

#include "fmath.h"
#include "parallel.h"
#include "gemm_kernels.h"
#include "workspace.h"

static int gates_of(int mode)
{
    return mode == FNN_LSTM ? 4 : mode == FNN_GRU ? 3 : 1;
}

typedef int (*gemm_fn)(int, int, int, int, int, float, const float *, ptrdiff_t,
                       const float *, ptrdiff_t, float, float *, ptrdiff_t,
                       const float *, int, int);

static int gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                      ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C,
                      ptrdiff_t ldc, const float *bias, int bias_mode, int relu)
{
    fnn_sgemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, bias_mode,
                    relu);
    return FNN_OK;
}

/* One step's elementwise pass: rows [lo, hi) of the batch. */
typedef struct {
    int mode, N, H, t;
    const int32_t *len;
    float *G;                 /* (N, G*H) gates of this step: pre-activation in, activated out */
    const float *R;           /* (N, G*H) recurrent projection (forward) */
    float *h, *c;             /* (N, H) running states (forward: h, c; backward: dh, dc) */
    float *y;                 /* forward: output rows (stride ldy) or NULL */
    const float *dy;          /* backward: output gradient rows (stride ldy) or NULL */
    ptrdiff_t ldy;
    float *hp, *a1, *a2;      /* this step's saves (forward) or saved values (backward) */
    float *dgx, *dgh;         /* backward: (N, G*H) gate gradients (dgh may be dgx) */
    const float *zeros;       /* backward: H zeros (the output gradient when dy is NULL) */
    double *dbs;              /* backward: bias-gradient sums per chunk of rows, or NULL */
} step_args;

#define ACTIVE(A, b) (!(A)->len || (A)->t < (A)->len[b])

/* Rows of the batch per chunk: threads get whole chunks (every partition of
 * the batch is on multiples of CHUNK), and the bias gradients are summed per
 * chunk -- over the steps, rows in order -- then over the chunks in order:
 * the same bits on any thread count, with no pass of its own. */
#define CHUNK 8

FNN_INLINE int fwd_step_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const step_args *A = ctx;
    (void)part;
    const int H = A->H, GH = gates_of(A->mode) * H, mode = A->mode;
    for (ptrdiff_t b = lo; b < hi; b++) {
        float *restrict g = A->G + b * GH;
        const float *restrict r = A->R + b * GH;
        float *restrict h = A->h + b * H;
        float *restrict y = A->y ? A->y + b * A->ldy : NULL;
        if (A->hp)
            memcpy(A->hp + b * H, h, (size_t)H * sizeof(float));
        if (mode == FNN_LSTM)
            memcpy(A->a1 + b * H, A->c + b * H, (size_t)H * sizeof(float));
        if (!ACTIVE(A, b)) {
            if (y)
                memset(y, 0, (size_t)H * sizeof(float));
            continue;
        }
        if (mode == FNN_LSTM) {
            float *restrict gi = g, *restrict gf = g + H, *restrict gg = g + 2 * H,
                            *restrict go = g + 3 * H;
            const float *restrict ri = r, *restrict rf = r + H, *restrict rg = r + 2 * H,
                                  *restrict ro = r + 3 * H;
            float *restrict c = A->c + b * H;
            float *restrict tcs = A->a2 + b * H;
#pragma GCC ivdep   /* the gate rows of one sample never overlap */
            for (int j = 0; j < H; j++) {
                float i = fnn_sigmoid(gi[j] + ri[j]);
                float f = fnn_sigmoid(gf[j] + rf[j]);
                float u = fnn_tanh(gg[j] + rg[j]);
                float o = fnn_sigmoid(go[j] + ro[j]);
                float cc = f * c[j] + i * u;
                float tc = fnn_tanh(cc);
                gi[j] = i;
                gf[j] = f;
                gg[j] = u;
                go[j] = o;
                c[j] = cc;
                h[j] = o * tc;
                tcs[j] = tc;
            }
        } else if (mode == FNN_GRU) {
            float *restrict gr = g, *restrict gz = g + H, *restrict gn = g + 2 * H;
            const float *restrict rr_ = r, *restrict rz = r + H, *restrict rn_ = r + 2 * H;
            float *restrict rn = A->a1 + b * H;
#pragma GCC ivdep   /* the gate rows of one sample never overlap */
            for (int j = 0; j < H; j++) {
                float rr = fnn_sigmoid(gr[j] + rr_[j]);
                float z = fnn_sigmoid(gz[j] + rz[j]);
                float n = fnn_tanh(gn[j] + rr * rn_[j]);
                gr[j] = rr;
                gz[j] = z;
                gn[j] = n;
                rn[j] = rn_[j];
                h[j] = (1.0f - z) * n + z * h[j];
            }
        } else if (mode == FNN_RNN_TANH) {
            for (int j = 0; j < H; j++)
                g[j] = h[j] = fnn_tanh(g[j] + r[j]);
        } else {
            for (int j = 0; j < H; j++) {
                float a = g[j] + r[j];
                g[j] = h[j] = a > 0.0f ? a : (a == a ? 0.0f : a);
            }
        }
        if (y)
            memcpy(y, h, (size_t)H * sizeof(float));
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(fwd_step)

FNN_INLINE int bwd_step_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const step_args *A = ctx;
    (void)part;
    const int H = A->H, GH = gates_of(A->mode) * H, mode = A->mode;
    for (ptrdiff_t b = lo; b < hi; b++) {
        float *restrict dgx = A->dgx + b * GH;
        float *restrict dgh = A->dgh + b * GH;
        if (!ACTIVE(A, b)) {     /* state carried: dh, dc unchanged, no gate gradient */
            memset(dgx, 0, (size_t)GH * sizeof(float));
            if (dgh != dgx)
                memset(dgh, 0, (size_t)GH * sizeof(float));
            continue;
        }
        const float *restrict g = A->G + b * GH;
        const float *restrict dy = A->dy ? A->dy + b * A->ldy : A->zeros;
        float *restrict dh = A->h + b * H;
        if (mode == FNN_LSTM) {
            const float *restrict gi = g, *restrict gf = g + H, *restrict gg = g + 2 * H,
                                  *restrict go = g + 3 * H;
            float *restrict di = dgx, *restrict df = dgx + H, *restrict dg = dgx + 2 * H,
                            *restrict dO = dgx + 3 * H;
            float *restrict dc = A->c + b * H;
            const float *restrict cp = A->a1 + b * H, *restrict tcs = A->a2 + b * H;
#pragma GCC ivdep   /* the gate rows of one sample never overlap */
            for (int j = 0; j < H; j++) {
                float d = dh[j] + dy[j];
                float i = gi[j], f = gf[j], u = gg[j], o = go[j];
                float tc = tcs[j];
                float dcc = dc[j] + d * o * (1.0f - tc * tc);
                di[j] = dcc * u * (i * (1.0f - i));
                df[j] = dcc * cp[j] * (f * (1.0f - f));
                dg[j] = dcc * i * (1.0f - u * u);
                dO[j] = d * tc * (o * (1.0f - o));
                dc[j] = dcc * f;
                dh[j] = 0.0f;
            }
        } else if (mode == FNN_GRU) {
            const float *restrict gr = g, *restrict gz = g + H, *restrict gn = g + 2 * H;
            float *restrict xr = dgx, *restrict xz = dgx + H, *restrict xn = dgx + 2 * H;
            float *restrict hr = dgh, *restrict hz = dgh + H, *restrict hn = dgh + 2 * H;
            const float *restrict rn = A->a1 + b * H, *restrict hp = A->hp + b * H;
#pragma GCC ivdep   /* the gate rows of one sample never overlap */
            for (int j = 0; j < H; j++) {
                float d = dh[j] + dy[j];
                float rr = gr[j], z = gz[j], n = gn[j];
                float dn = d * (1.0f - z) * (1.0f - n * n);
                float dr = dn * rn[j] * (rr * (1.0f - rr));
                float dz = d * (hp[j] - n) * (z * (1.0f - z));
                xr[j] = hr[j] = dr;
                xz[j] = hz[j] = dz;
                xn[j] = dn;
                hn[j] = dn * rr;
                dh[j] = d * z;
            }
        } else if (mode == FNN_RNN_TANH) {
            for (int j = 0; j < H; j++) {
                float d = dh[j] + dy[j], hv = g[j];
                dgx[j] = d * (1.0f - hv * hv);
                dh[j] = 0.0f;
            }
        } else {
            for (int j = 0; j < H; j++) {
                float d = dh[j] + dy[j];
                dgx[j] = g[j] > 0.0f ? d : 0.0f;
                dh[j] = 0.0f;
            }
        }
        if (A->dbs) {
            double *restrict sx = A->dbs + (b / CHUNK) * (dgh != dgx ? 2 : 1) * GH;
            for (int j = 0; j < GH; j++)
                sx[j] += dgx[j];
            if (dgh != dgx) {
                double *restrict sh = sx + GH;
                for (int j = 0; j < GH; j++)
                    sh[j] += dgh[j];
            }
        }
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(bwd_step)

static int run_step(int (*const *isa)(void *, ptrdiff_t, ptrdiff_t, int), step_args *A)
{
    double flops = (double)A->N * A->H * gates_of(A->mode) * FNN_COST_ELEM;
    return fnn_parallel_for(A->N, CHUNK, flops, isa[fnn_get_isa()], A);
}

/* The recurrent weights as op(B) of the per-step products: packed once per
 * call into the GEMM's panel layout (the per-step product then never packs
 * them again: at batch 64 packing 512 x 2048 weights cost as much as the
 * product), or read by the naive GEMM of the test twin. */
typedef struct {
    gemm_fn gemm;
    int trans;
    const float *w;
    ptrdiff_t ldw;
    int K, N;
    fnn_packed_b packed;
} rec_weights;

/* floats of workspace rec_prepare needs */
static size_t rec_floats(gemm_fn gemm, int K, int N)
{
    return gemm == fnn_sgemm ? fnn_sgemm_packed_floats(K, N) : 0;
}

static void rec_prepare(rec_weights *r, gemm_fn gemm, int trans, const float *w, ptrdiff_t ldw,
                        int K, int N, float *buf)
{
    *r = (rec_weights){gemm, trans, w, ldw, K, N, {0}};
    if (gemm == fnn_sgemm)
        fnn_sgemm_pack_b(trans, K, N, w, ldw, buf, &r->packed);
}

/* C (M, N) = A (M, K) op(W) + beta C + bias */
static int rec_mul(const rec_weights *r, int M, const float *A, ptrdiff_t lda, float beta,
                   float *C, ptrdiff_t ldc, const float *bias)
{
    int bm = bias ? FNN_BIAS_COL : FNN_BIAS_NONE;
    if (r->gemm == fnn_sgemm)
        return fnn_sgemm_pb(0, M, 1.0f, A, lda, &r->packed, beta, C, ldc, bias, bm, 0);
    return r->gemm(0, r->trans, M, r->N, r->K, 1.0f, A, lda, r->w, r->ldw, beta, C, ldc, bias,
                   bm, 0);
}

#define TRY(e)                      \
    do {                            \
        int st_ = (e);              \
        if (st_ != FNN_OK)          \
            return st_;             \
    } while (0)

/* The time loop over batch rows [lo, hi), forward or backward. Two ways to
 * thread it (run_loop decides):
 *  - split: one part per thread, each running all T steps on its own rows
 *    (the GEMM inside a part runs on that part's thread), with no
 *    synchronisation between steps -- a sample's recurrence never reads
 *    another sample's state;
 *  - whole: every step's GEMM and elementwise pass threaded on their own.
 * A row's arithmetic is the same either way (the GEMM's sums over k do not
 * depend on the rows it is given), so the bits do not depend on the
 * thread count. */
typedef struct {
    int mode, T, N, H, reverse, split;
    const rec_weights *W;
    const float *b_hh;        /* forward */
    const int32_t *len;
    float *G;                 /* forward: all steps' input projections; backward: saved gates */
    float *R;                 /* forward: (N, G*H) recurrent projection */
    float *h, *c;             /* forward: h, c; backward: dh, dc */
    float *y;                 /* forward output, or NULL */
    const float *dy;          /* backward output gradient, or NULL */
    ptrdiff_t ldy;
    float *hprev, *aux1, *aux2, *scratch;
    float *dgx, *dgh;         /* backward: gate gradients, (T*N, G*H) each */
    const float *zeros;
    double *dbs;              /* backward: chunk sums of the bias gradients, or NULL */
    int need_dh0;
} loop_args;

static int rows_step(const loop_args *L, int (*const *isa)(void *, ptrdiff_t, ptrdiff_t, int),
                     step_args *A, ptrdiff_t lo, ptrdiff_t hi)
{
    return L->split ? isa[fnn_get_isa()](A, lo, hi, 0) : run_step(isa, A);
}

static int fwd_loop(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const loop_args *L = ctx;
    (void)part;
    const int H = L->H, GH = gates_of(L->mode) * H, M = (int)(hi - lo);
    const size_t step = (size_t)L->N * GH, NH = (size_t)L->N * H;
    for (int s = 0; s < L->T; s++) {
        int t = L->reverse ? L->T - 1 - s : s;
        TRY(rec_mul(L->W, M, L->h + lo * H, H, 0.0f, L->R + lo * GH, GH, L->b_hh));
        step_args A = {L->mode, L->N, H, t, L->len, L->G + t * step, L->R, L->h, L->c,
                       L->y ? L->y + (size_t)t * L->N * L->ldy : NULL, NULL, L->ldy,
                       L->hprev ? L->hprev + t * NH : NULL,
                       L->aux1 ? L->aux1 + t * NH : L->scratch,
                       L->aux2 ? L->aux2 + t * NH : (L->scratch ? L->scratch + NH : NULL),
                       NULL, NULL, NULL};
        TRY(rows_step(L, fwd_step_isa, &A, lo, hi));
    }
    return FNN_OK;
}

static int bwd_loop(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const loop_args *L = ctx;
    (void)part;
    const int H = L->H, GH = gates_of(L->mode) * H, M = (int)(hi - lo);
    const size_t step = (size_t)L->N * GH, NH = (size_t)L->N * H;
    for (int s = L->T - 1; s >= 0; s--) {
        int t = L->reverse ? L->T - 1 - s : s;
        step_args A = {L->mode, L->N, H, t, L->len, L->G + t * step, NULL, L->h, L->c, NULL,
                       L->dy ? L->dy + (size_t)t * L->N * L->ldy : NULL, L->ldy,
                       L->hprev + t * NH, L->aux1 ? L->aux1 + t * NH : NULL,
                       L->aux2 ? L->aux2 + t * NH : NULL, L->dgx + t * step,
                       L->dgh + t * step, L->zeros, L->dbs};
        TRY(rows_step(L, bwd_step_isa, &A, lo, hi));
        if (s > 0 || L->need_dh0)    /* dL/dh0 only when the caller wants it */
            TRY(rec_mul(L->W, M, L->dgh + t * step + lo * GH, GH, 1.0f, L->h + lo * H, H,
                        NULL));
    }
    return FNN_OK;
}

/* Run the loop split over the batch when the packed recurrent weights, which
 * every thread then reads at every step, fit in half a core's L2 (LSTM-128:
 * 256 KB); larger ones (LSTM-512: 4 MB) are better shared out by columns
 * inside each step's GEMM. */
static int run_loop(fnn_range_fn loop, loop_args *L, size_t whs)
{
    const fnn_caches *cs = fnn_caches_detected();
    const long l2 = cs->l2.size > 0 ? cs->l2.size : 256L << 10;
    const double flops = 2.0 * L->T * L->N * gates_of(L->mode) * L->H * (L->H + FNN_COST_ELEM);
    L->split = L->W->gemm == fnn_sgemm && (double)whs * sizeof(float) <= 0.5 * l2;
    if (L->split)
        return fnn_parallel_for(L->N, CHUNK, flops, loop, L);
    return loop(L, 0, L->N, 0);
}

static int rnn_forward(gemm_fn gemm, int mode, int T, int N, int I, int H, int reverse,
                       const float *x, const float *w_ih, const float *w_hh,
                       const float *b_ih, const float *b_hh, const int32_t *lengths,
                       float *h, float *c, float *y, ptrdiff_t ldy, float *gates,
                       float *hprev, float *aux1, float *aux2)
{
    const int GH = gates_of(mode) * H;
    const size_t step = (size_t)N * GH;
    if (T <= 0 || N <= 0)
        return FNN_OK;
    const size_t whs = rec_floats(gemm, H, GH), NH = (size_t)N * H;
    /* Inference: the gates of all steps and two (N, H) rows for the values
     * the fused pass stores unconditionally (so that its loop vectorizes). */
    const size_t inf = gates ? 0 : (size_t)T * step + 2 * NH;
    float *R = fnn_ws_shared((step + whs + inf) * sizeof(float));
    if (!R)
        return FNN_ENOMEM;
    rec_weights W;                  /* op(B) = W_hh^T (H, G*H) */
    rec_prepare(&W, gemm, 1, w_hh, H, H, GH, R + step);
    float *G = gates ? gates : R + step + whs;
    TRY(gemm(0, 1, T * N, GH, I, 1.0f, x, I, w_ih, I, 0.0f, G, GH, b_ih,
             b_ih ? FNN_BIAS_COL : FNN_BIAS_NONE, 0));
    loop_args L = {mode, T, N, H, reverse, 0, &W, b_hh, lengths, G, R, h, c, y, NULL, ldy,
                   hprev, aux1, aux2, gates ? NULL : G + (size_t)T * step, NULL, NULL, NULL,
                   0};
    return run_loop(fwd_loop, &L, whs);
}

static int rnn_backward(gemm_fn gemm, int mode, int T, int N, int I, int H, int reverse,
                        const float *x, const float *w_ih, const float *w_hh,
                        const int32_t *lengths, const float *gates, const float *hprev,
                        const float *aux1, const float *aux2, const float *dy, ptrdiff_t ldy,
                        float *dh, float *dc, float *dx, int dx_acc, float *dw_ih,
                        float *dw_hh, float *db_ih, float *db_hh, int acc, int need_dh0)
{
    const int GH = gates_of(mode) * H;
    const size_t step = (size_t)N * GH;
    const ptrdiff_t TN = (ptrdiff_t)T * N;
    if (T <= 0 || N <= 0)
        return FNN_OK;
    const int two = mode == FNN_GRU;
    const size_t whs = rec_floats(gemm, GH, H);
    /* LSTM and Elman: dW_ih and dW_hh share op(A) = dG^T, packed once for both
     * (each product packed all T N x G H of it, in a strided transposing copy) */
    const int shared_a = gemm == fnn_sgemm && !two && dw_ih && dw_hh;
    const size_t pfl = shared_a ? fnn_sgemm_packed_a_floats(GH, (int)TN) : 0;
    /* chunk sums first (float64 alignment), then dG (dGx, dGh), H zeros, W_hh,
     * the packed dG^T */
    const int sums = db_ih || db_hh;
    const size_t nchunk = (size_t)(N + CHUNK - 1) / CHUNK, per = (size_t)(two ? 2 : 1) * GH;
    const size_t nsum = sums ? nchunk * per : 0;
    double *dbs = fnn_ws_shared(nsum * sizeof(double) +
                                ((size_t)(two ? 2 : 1) * T * step + H + whs + pfl) *
                                sizeof(float));
    if (!dbs)
        return FNN_ENOMEM;
    memset(dbs, 0, nsum * sizeof(double));
    float *dgx = (float *)(dbs + nsum);
    float *dgh = two ? dgx + T * step : dgx;
    float *zeros = dgx + (size_t)(two ? 2 : 1) * T * step;
    memset(zeros, 0, (size_t)H * sizeof(float));
    rec_weights W;                  /* op(B) = W_hh (G*H, H) */
    rec_prepare(&W, gemm, 0, w_hh, H, GH, H, zeros + H);
    loop_args L = {mode, T, N, H, reverse, 0, &W, NULL, lengths, (float *)gates, NULL, dh, dc,
                   NULL, dy, ldy, (float *)hprev, (float *)aux1, (float *)aux2, NULL, dgx,
                   dgh, zeros, sums ? dbs : NULL, need_dh0};
    TRY(run_loop(bwd_loop, &L, whs));
    const float bx = (acc & 1) ? 1.0f : 0.0f, bh = (acc & 2) ? 1.0f : 0.0f;
    if (shared_a) {
        fnn_packed_a PA;
        fnn_sgemm_pack_a(1, GH, (int)TN, dgx, GH, zeros + H + whs, &PA);
        TRY(fnn_sgemm_pa(&PA, 0, I, 1.0f, x, I, bx, dw_ih, I));
        TRY(fnn_sgemm_pa(&PA, 0, H, 1.0f, hprev, H, bh, dw_hh, H));
    } else {
        if (dw_ih)
            TRY(gemm(1, 0, GH, I, (int)TN, 1.0f, dgx, GH, x, I, bx, dw_ih, I, NULL, 0, 0));
        if (dw_hh)
            TRY(gemm(1, 0, GH, H, (int)TN, 1.0f, dgh, GH, hprev, H, bh, dw_hh, H, NULL, 0, 0));
    }
    for (int j = 0; sums && j < GH; j++) {      /* the chunks' sums, in chunk order */
        double sx = 0.0, sh = 0.0;
        for (size_t c = 0; c < nchunk; c++) {
            sx += dbs[c * per + j];
            sh += dbs[c * per + (two ? GH : 0) + j];
        }
        if (db_ih)
            db_ih[j] = (acc & 4) ? (float)(db_ih[j] + sx) : (float)sx;
        if (db_hh)
            db_hh[j] = (acc & 8) ? (float)(db_hh[j] + sh) : (float)sh;
    }
    if (dx)
        TRY(gemm(0, 0, (int)TN, I, GH, 1.0f, dgx, GH, w_ih, I, dx_acc ? 1.0f : 0.0f, dx, I,
                 NULL, 0, 0));
    return FNN_OK;
}

int fnn_rnn_forward(int mode, int T, int N, int I, int H, int reverse, const float *x,
                    const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh,
                    const int32_t *lengths, float *h, float *c, float *y, ptrdiff_t ldy,
                    float *gates, float *hprev, float *aux1, float *aux2, int naive)
{
    return rnn_forward(naive ? gemm_naive : fnn_sgemm, mode, T, N, I, H, reverse, x, w_ih,
                       w_hh, b_ih, b_hh, lengths, h, c, y, ldy, gates, hprev, aux1, aux2);
}

int fnn_rnn_backward(int mode, int T, int N, int I, int H, int reverse, const float *x,
                     const float *w_ih, const float *w_hh, const int32_t *lengths,
                     const float *gates, const float *hprev, const float *aux1,
                     const float *aux2, const float *dy, ptrdiff_t ldy, float *dh, float *dc,
                     float *dx, int dx_acc, float *dw_ih, float *dw_hh, float *db_ih,
                     float *db_hh, int acc, int need_dh0, int naive)
{
    return rnn_backward(naive ? gemm_naive : fnn_sgemm, mode, T, N, I, H, reverse, x, w_ih,
                        w_hh, lengths, gates, hprev, aux1, aux2, dy, ldy, dh, dc, dx, dx_acc,
                        dw_ih, dw_hh, db_ih, db_hh, acc, need_dh0);
}
