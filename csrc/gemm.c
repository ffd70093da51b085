/* gemm.c -- BLIS-style SGEMM driver: thread partition, cache blocking,
 * packing, and the loops around the per-ISA micro-kernel.
 *
 * Row-major C (M,N) = op(A) (M,K) op(B) (K,N). The micro-kernel computes an
 * MR x NR tile with NR along the vector lanes. Loops, outermost first:
 *   threads: C is cut into tm x tn rectangles on MR/NR boundaries; each thread
 *            runs the whole sequential algorithm on its own rectangle, with
 *            its own packing buffers from its workspace (workspace.h; no
 *            barriers; K is never split, so every element is summed in the
 *            same order whatever the thread count). The threads come from
 *            parallel.h's fnn_parallel_region (FTZ, fewer threads than asked).
 *   pc over K by KC    -- alpha/beta on the first block, bias/ReLU on the last
 *   ic over M by MC    -- pack the A block (MC x KC) into MR-row panels
 *   jc over N by NC    -- pack the B block (KC x NC) into NR-column panels (L2)
 *   ir over MC by MR   -- the A micro-panel stays in L1
 *   jr over NC by NR   -- B micro-panels stream from L2; micro-kernel
 * KC, MC and NC come from gemm_blocking.c (the cache model, or hand-tuned
 * values where the model measured slower). The loop order is pc -> ic -> jc,
 * not BLIS's jc -> pc -> ic: the packing traffic is the same and the two
 * measured equal (see gemm_blocking.c).
 */
#include "gemm_kernels.h"
#include "isa.h"
#include "parallel.h"
#include "workspace.h"

#include <limits.h>
#include <string.h>

#ifdef FNN_HAVE_NEON_KERNEL
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
static int neon_available(void)
{
    static int have = -1;
    if (have < 0)
        have = (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
    return have;
}
#endif

static const fnn_gemm_arch *arch_in_use(void)
{
#ifdef FNN_HAVE_X86_KERNELS
    switch (fnn_get_isa()) {
    case FNN_ISA_AVX512: return &fnn_gemm_avx512;
    case FNN_ISA_AVX2: return &fnn_gemm_avx2;
    default: break;
    }
#endif
#ifdef FNN_HAVE_NEON_KERNEL
    /* Advanced SIMD is part of every aarch64 Linux ABI; still asked of the
     * kernel (HWCAP_ASIMD), so a build run where it is masked stays correct. */
    if (fnn_get_isa() == FNN_ISA_REF && neon_available())
        return &fnn_gemm_neon;
#endif
    return &fnn_gemm_ref;
}

const fnn_gemm_arch *fnn_gemm_arch_in_use(void)
{
    return arch_in_use();
}

const char *fnn_gemm_kernel_name(void)
{
    const fnn_gemm_arch *g = arch_in_use();
#ifdef FNN_HAVE_X86_KERNELS
    if (g == &fnn_gemm_avx512) return "avx512 8x48";
    if (g == &fnn_gemm_avx2) return "avx2 6x16";
#endif
#ifdef FNN_HAVE_NEON_KERNEL
    if (g == &fnn_gemm_neon) return "neon 8x12";
#endif
    return "ref 4x8";
}

void fnn_gemm_blocking(int *mr, int *nr, int *kc, int *mc, int *nc)
{
    const fnn_gemm_arch *g = arch_in_use();
    fnn_gemm_blocks b = fnn_gemm_blocks_for(g);
    *mr = g->mr; *nr = g->nr; *kc = b.kc; *mc = b.mc; *nc = b.nc;
}

const char *fnn_gemm_blocking_source(void)
{
    return fnn_gemm_blocks_for(arch_in_use()).source;
}

static inline float epi_value(float acc, const float *c, int i, int j,
                              const fnn_epi *ep)
{
    float v = ep->alpha * acc;
    if (ep->beta != 0.0f)
        v = v + ep->beta * *c;
    if (ep->bias_mode == FNN_BIAS_COL)
        v = v + ep->bias[j];
    else if (ep->bias_mode == FNN_BIAS_ROW)
        v = v + ep->bias[i];
    if (ep->relu)
        v = v < 0.0f ? 0.0f : v;  /* NaN propagates, like max(0, v) in SIMD */
    return v;
}

void fnn_gemm_store_tile(const float *acc, int ldt, float *c, ptrdiff_t ldc,
                         int mr, int nr, const fnn_epi *ep)
{
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            c[i * ldc + j] = epi_value(acc[i * ldt + j], &c[i * ldc + j], i, j, ep);
}

/* ------------------------------------------------------------- packing -- */

/* dst[p*ldd + i] = src[p*lds + i] for p < k, i < w: the row copies of
 * packing. The widths of whole panels (8, 12, 16, 48) get constant-size
 * copies the compiler inlines: a libc memcpy call per 32-byte row cost more
 * than the copy (perf: 9% of an LSTM training step). */
static void copy_rows(int k, int w, const float *src, ptrdiff_t lds, float *dst, int ldd)
{
#define COPY_ROWS(W)                                                          \
    for (int p = 0; p < k; p++)                                               \
        memcpy(dst + (ptrdiff_t)p * ldd, src + p * lds, (W) * sizeof(float)); \
    return;
    switch (w) {
    case 6: COPY_ROWS(6)
    case 8: COPY_ROWS(8)
    case 12: COPY_ROWS(12)
    case 16: COPY_ROWS(16)
    case 48: COPY_ROWS(48)
    default: COPY_ROWS((size_t)w)
    }
#undef COPY_ROWS
}

/* op(A) rows [0,mc) x cols [0,kc) -> MR-row panels, panel-major, k-major
 * inside a panel: dst[panel][p*MR + i]. Rows past mc are left unwritten (the
 * kernel never reads them). */
static void pack_a(const fnn_gemm_arch *ar, int trans, int mc, int kc,
                   const float *a, ptrdiff_t lda, float *dst)
{
    const int MR = ar->mr;
    if (trans) {
        /* op(A)(i,p) = a[p*lda + i]: tiles of 16 rows of a by 8 panels, each
         * panel getting its MR-float pieces of the tile's rows. Row by row
         * within one panel, a panel's kc reads lie lda floats apart (at
         * lda = 512 all in 2 of L1's 64 sets); row by row across all panels,
         * the writes go to panels MR kc floats apart (at kc = 384 all in one
         * set). Either way the packing took 7-11% of an LSTM training step. */
        const ptrdiff_t step = (ptrdiff_t)MR * kc;
        for (int p0 = 0; p0 < kc; p0 += 16) {
            int p1 = p0 + 16 < kc ? p0 + 16 : kc;
            for (int t0 = 0; t0 < mc; t0 += 8 * MR) {
                int t1 = t0 + 8 * MR < mc ? t0 + 8 * MR : mc;
                for (int i0 = t0; i0 < t1; i0 += MR)
                    copy_rows(p1 - p0, t1 - i0 < MR ? t1 - i0 : MR,
                              a + (ptrdiff_t)p0 * lda + i0, lda,
                              dst + (i0 / MR) * step + (ptrdiff_t)p0 * MR, MR);
            }
        }
        return;
    }
    for (int i0 = 0; i0 < mc; i0 += MR) {   /* op(A)(i,p) = a[i*lda + p]: transpose */
        int mr = mc - i0 < MR ? mc - i0 : MR;
        ar->pack_t(mr, kc, a + (ptrdiff_t)i0 * lda, lda, dst, MR);
        dst += (ptrdiff_t)MR * kc;
    }
}

/* op(B) rows [0,kc) x cols [0,nr) -> one panel dst[p*w + j], zero-padded to
 * w columns (w = NR, or nr rounded up to the vector length on the edge). */
static void pack_b_panel(const fnn_gemm_arch *ar, int trans, int kc, int nr,
                         const float *b, ptrdiff_t ldb, float *dst, int w)
{
    if (!trans) {                   /* op(B)(p,j) = b[p*ldb + j]: copy rows */
        copy_rows(kc, nr, b, ldb, dst, w);
    } else {                        /* op(B)(p,j) = b[j*ldb + p]: transpose */
        ar->pack_t(nr, kc, b, ldb, dst, w);
    }
    if (nr < w)
        for (int p = 0; p < kc; p++)
            memset(dst + p * w + nr, 0, (size_t)(w - nr) * sizeof(float));
}

void fnn_pack_t_ref(int rows, int k, const float *src, ptrdiff_t lds, float *dst,
                    int ldd)
{
    for (int i = 0; i < rows; i++) {
        const float *s = src + (ptrdiff_t)i * lds;
        for (int p = 0; p < k; p++)
            dst[(ptrdiff_t)p * ldd + i] = s[p];
    }
}

/* ------------------------------------------------------ per-thread work -- */

typedef struct {
    int trans_a, trans_b, K;
    float alpha, beta;
    const float *A, *B;
    ptrdiff_t lda, ldb, ldc;
    float *C;
    const float *bias;
    int bias_mode, relu;
    int pack_b;                    /* 0: read full B panels in place */
    int pack_a;                    /* 0: the kernel reads A in place */
    fnn_gemm_blocks bl;            /* kc, mc, nc (gemm_blocking.c) */
    const fnn_packed_b *pb;        /* op(B) packed beforehand, or NULL */
    const fnn_packed_a *pa;        /* op(A) packed beforehand, or NULL */
    int b_outer;                   /* jr outside ir: B streamed in place (b_streamed) */
} gemm_args;

static inline const float *a_at(const gemm_args *g, int i, int p)
{
    return g->trans_a ? g->A + (ptrdiff_t)p * g->lda + i
                      : g->A + (ptrdiff_t)i * g->lda + p;
}

static inline const float *b_at(const gemm_args *g, int p, int j)
{
    return g->trans_b ? g->B + (ptrdiff_t)j * g->ldb + p
                      : g->B + (ptrdiff_t)p * g->ldb + j;
}

/* The block size <= max that splits len into equal blocks, rounded up to a
 * multiple of `unit` (never above max when max is a multiple of unit). */
static inline int balanced(int len, int max, int unit)
{
    int n = (len + max - 1) / max;
    int b = (len + n - 1) / n;
    b = (b + unit - 1) / unit * unit;
    return b < max ? b : max;
}

/* The K block of g's product: a prepacked B's, or K in equal blocks of at
 * most bl.kc (gemm_rect's loop over pc). */
static inline int k_block(const gemm_args *g)
{
    return g->pb ? g->pb->kc : balanced(g->K, g->bl.kc, 8);
}

static inline int panel_width(const fnn_gemm_arch *ar, int nr)
{
    return nr == ar->nr ? nr : (nr + ar->vl - 1) / ar->vl * ar->vl;
}

/* Floats of one packed row of op(B) over all N columns: whole panels and
 * the last one padded to its width. */
static inline ptrdiff_t packed_width(const fnn_gemm_arch *ar, int N)
{
    return (ptrdiff_t)(N / ar->nr) * ar->nr + (N % ar->nr ? panel_width(ar, N % ar->nr) : 0);
}

/* op(B) rows [0,kc) x cols [0,nc) -> its NR-column panels at dst + j*kc
 * (the last padded to its width); full panels skipped with skip_full (read
 * in place). Untransposed, the full panels are filled four rows at a time:
 * four contiguous reads along the rows, written out to every panel as one
 * stretch of it, the next four rows' lines prefetched meanwhile. Panel by
 * panel, each k read NR floats of a row ldb apart: at ldb = 2048 a page per
 * read, which neither prefetcher follows (7% of a 2048^3 product). Row by
 * row, one 64-byte line at a time per panel, B coming from L3 (the AVX2
 * path's dX = dY W at batch 64-128, where the 6x16 kernel reads B packed):
 * the pack took 30% of 64x3136x1024 against 20% for OpenBLAS's Haswell
 * copy; four rows with the prefetch ran those products 1.09-1.24x faster
 * (0.77-0.91x -> 0.94-1.01x of OpenBLAS's Haswell kernels on the Zen 4,
 * C harness), and AVX-512 1024^3 and 512x3136x1024 1.00-1.02x. */
static void pack_b_block(const fnn_gemm_arch *ar, int trans, int kc, int nc,
                         const float *b, ptrdiff_t ldb, float *dst, int skip_full)
{
    const int NR = ar->nr, full = trans || skip_full ? 0 : nc / NR * NR;
#define PACK_ROWS(W)                                                           \
    for (int p = 0; p < kc; p += 4) {                                          \
        const int rows = kc - p < 4 ? kc - p : 4, ahead = p + 8 <= kc;         \
        for (int j = 0; j < full; j += (W)) {                                  \
            float *d = dst + (ptrdiff_t)j * kc + (ptrdiff_t)p * (W);           \
            const float *s = b + p * ldb + j;                                  \
            if (ahead)                                                         \
                for (int r = 4; r < 8; r++)                                    \
                    for (int q = 0; q < (W); q += 16)                          \
                        __builtin_prefetch(s + r * ldb + q);                   \
            if (rows == 4)                                                     \
                for (int r = 0; r < 4; r++)                                    \
                    memcpy(d + r * (W), s + r * ldb, (W) * sizeof(float));     \
            else                                                               \
                for (int r = 0; r < rows; r++)                                 \
                    memcpy(d + r * (W), s + r * ldb, (W) * sizeof(float));     \
        }                                                                      \
    }                                                                          \
    break;
    if (full && ar->pack_b)             /* the same order in the path's vectors */
        ar->pack_b(kc, full, b, ldb, dst);
    else
        switch (NR) {
        case 48: PACK_ROWS(48)
        case 16: PACK_ROWS(16)
        case 12: PACK_ROWS(12)
        case 8: PACK_ROWS(8)
        default: PACK_ROWS(NR)
        }
#undef PACK_ROWS
    for (int j = full; j < nc; j += NR) {
        int nr = nc - j < NR ? nc - j : NR;
        if (skip_full && nr == NR)
            continue;
        pack_b_panel(ar, trans, kc, nr, trans ? b + (ptrdiff_t)j * ldb : b + j, ldb,
                     dst + (ptrdiff_t)j * kc, panel_width(ar, nr));
    }
}

/* The packed A micro-panel of rows i = ic + ir (ir within the block) at
 * K block pc. */
static inline const float *a_panel(const gemm_args *g, const float *abuf, int MR, int i,
                                   int ir, int pc, int kc)
{
    return g->pa ? g->pa->data + (ptrdiff_t)(i / MR) * g->K * MR + (ptrdiff_t)pc * MR
                 : abuf + (ptrdiff_t)ir * kc;
}

/* The A of a tile's rows i = ic + ir at K block pc: the packed panel
 * (A(r, p) at [r + p*MR]) or op(A) in place, its strides to rsa, csa. */
static inline const float *a_tile(const gemm_args *g, const float *abuf, int MR, int i, int ir,
                                  int pc, int kc, ptrdiff_t *rsa, ptrdiff_t *csa)
{
    if (g->pack_a) {
        *rsa = 1, *csa = MR;
        return a_panel(g, abuf, MR, i, ir, pc, kc);
    }
    *rsa = g->trans_a ? 1 : g->lda, *csa = g->trans_a ? g->lda : 1;
    return a_at(g, i, pc);
}

/* The B panel of columns j = jc + jr (jr within the block), nr wide, at K
 * block pc; its row stride to ldb, the step to the next panel to step. */
static inline const float *b_panel(const fnn_gemm_arch *ar, const gemm_args *g,
                                   const float *bbuf, int j, int jr, int nr, int pc, int kc,
                                   ptrdiff_t *ldb, ptrdiff_t *step)
{
    const int NR = ar->nr;
    *step = (ptrdiff_t)kc * NR;
    *ldb = panel_width(ar, nr);
    if (g->pb)              /* block pc, then whole panels */
        return g->pb->data + (ptrdiff_t)pc * g->pb->row_floats + (ptrdiff_t)(j / NR) * kc * NR;
    if (!g->pack_b && nr == NR) {
        *ldb = g->ldb, *step = NR;
        return b_at(g, pc, j);
    }
    return bbuf + (ptrdiff_t)jr * kc;
}

/* The epilogue's bias for the tile at C(i, j). */
static inline const float *tile_bias(const gemm_args *g, int i, int j)
{
    return g->bias_mode == FNN_BIAS_COL ? g->bias + j
         : g->bias_mode == FNN_BIAS_ROW ? g->bias + i : NULL;
}

/* More than `per_set` of `rows` rows ld floats apart in one L1 set: rows
 * return to the same set every 4 KB (the span of L1's sets) over the lowest
 * set bit of 4 ld mod 4 KB (fnn_set_period), so at ld = 1024 all of them
 * share one set (of 8 ways). */
static int crowded(ptrdiff_t ld, int rows, int per_set)
{
    const long period = fnn_set_period((long)(ld * (ptrdiff_t)sizeof(float)), 4096);
    return (rows + period - 1) / period > per_set;
}

#define FUSE_PANELS 24   /* kernel_row_pack up to this many row panels (gemm_rect) */

/* C[m0:m1, n0:n1] with this thread's buffers (abuf: MC*KC, bbuf: KC*NC). */
static void gemm_rect(const fnn_gemm_arch *ar, const gemm_args *g, int m0,
                      int m1, int n0, int n1, float *abuf, float *bbuf)
{
    const int MR = ar->mr, NR = ar->nr;
    /* Equal blocks rather than full blocks and a sliver: K = 784 with KC = 256
     * runs as 4 x 196, not 3 x 256 + 16. Same for the M and N blocks. */
    const int KC = k_block(g);
    const int MC = balanced(m1 - m0, g->bl.mc, MR);
    /* C's rectangle past half of L3: a row panel's first tile finds its C
     * lines in memory (the kernel prefetches each later tile's during the
     * one before), so they are asked for into L2 a row panel ahead: 1 thread,
     * paired, in one build, Zen 2: 2048^3 NN 0.995x the time, 4096^3 NN
     * 0.990x, NT 0.993x, TN 2048^3 0.988x; 2 threads 4096^3 0.993x. Those
     * lines take L2 ways from the B block where C's rows share L2 sets
     * (fnn_gemm_nc_far). */
    const fnn_caches *cs = fnn_caches_detected();
    const long l3 = cs->l3.size;
    const int c_far = (double)(m1 - m0) * (n1 - n0) * sizeof(float) > (l3 > 0 ? l3 : 8L << 20) / 2;
    const int NC = balanced(n1 - n0, c_far ? fnn_gemm_nc_far(&g->bl, cs, MR, NR, KC, g->ldc,
                                                              (int)sizeof(float))
                                           : g->bl.nc, NR);
    for (int pc = 0; pc < g->K; pc += KC) {
        int kc = g->K - pc < KC ? g->K - pc : KC;
        int last = pc + kc == g->K;
        const fnn_epi all = {g->alpha, g->beta, NULL, g->bias_mode, g->relu};
        fnn_epi ep = fnn_epi_block(&all, pc == 0, last);
        for (int ic = m0; ic < m1; ic += MC) {
            int mc = m1 - ic < MC ? m1 - ic : MC;
            if (g->pack_a && !g->pa)
                pack_a(ar, g->trans_a, mc, kc, a_at(g, ic, pc), g->lda, abuf);
            for (int jc = n0; jc < n1; jc += NC) {
                int nc = n1 - jc < NC ? n1 - jc : NC;
                /* B packed by the block's first row panel as it computes
                 * (kernel_row_pack) rather than before it: at a batch's M the
                 * pack is 10-18% of the time (perf, NN 64x3136x1024: 17.6%),
                 * its reads of B from memory or L3 stalling the FMAs; in the
                 * first panel they overlap them. Fused against packed first,
                 * paired, in one build, Zen 2: 1 thread, NN 64x784x1024
                 * 0.93x the time, 64x3136x1024 0.94x, 128x784x1024 0.96x,
                 * 128x3136x1024 0.97x, 256x784x1024 0.98x, 256x3136x1024
                 * 1.006x; 2 threads 0.88x, 0.94x, 0.94x, 0.94x, 0.96x, 0.97x.
                 * Not where B's rows crowd L1's sets (N a multiple of 128):
                 * the kernel reads a line from each of 64 rows ahead, and at
                 * ldb = 1024 those share one set: 256x1024x1024 1.04x the
                 * time, 64x1024x256 1.07x. Nor past FUSE_PANELS row panels:
                 * in an hour when the host's memory was slower (OpenBLAS's
                 * 64x3136x1024 at 70 GFLOP/s, 84 before) 192x3136x1024 ran
                 * 1.03x the time, 256x3136x1024 1.05x (1.03x on 2 threads),
                 * while 64 and 128 rows still gained (0.90x, 0.98x). */
                const int fuse = ar->kernel_row_pack && !g->pb && g->pack_b && !g->trans_b
                                 && !g->b_outer && g->pack_a && mc >= MR && nc >= NR
                                 && mc <= FUSE_PANELS * MR
                                 && !crowded(g->ldb, FNN_ROW_PACK_AHEAD, 4);
                if (!g->pb)
                    pack_b_block(ar, g->trans_b, kc, nc, b_at(g, pc, jc), g->ldb, bbuf,
                                 !g->pack_b || fuse);
                /* the tiles, MR-row panels outside NR-column ones -- or the
                 * other way round with b_outer. A row panel's full-width
                 * tiles go to kernel_row in one call where the path has one
                 * (AVX2: see ukr_row_avx2), the rest a kernel call each. */
                const int npan_m = (mc + MR - 1) / MR, npan_n = (nc + NR - 1) / NR;
                const int n_out = g->b_outer ? npan_n : npan_m;
                const int n_in = g->b_outer ? npan_m : npan_n;
                const int row_tiles = ar->kernel_row && !g->b_outer ? nc / NR : 0;
                const size_t a_bytes = (size_t)MR * kc * sizeof(float);
                for (int o = 0; o < n_out; o++) {
                    int t = 0;
                    if (row_tiles > 0) {
                        const int ir = o * MR, i = ic + ir, mr = mc - ir < MR ? mc - ir : MR;
                        ptrdiff_t rsa, csa, ldb, step;
                        const float *ap = a_tile(g, abuf, MR, i, ir, pc, kc, &rsa, &csa);
                        const float *bp = b_panel(ar, g, bbuf, jc, 0, NR, pc, kc, &ldb, &step);
                        const int next = ar->prefetch && g->pack_a && o + 1 < n_out;
                        const float *na = next ? a_panel(g, abuf, MR, i + MR, ir + MR, pc, kc)
                                               : NULL;
                        float *c = g->C + (ptrdiff_t)i * g->ldc + jc;
                        if (next && c_far)
                            for (int r = 0; r < MR && ir + MR + r < mc; r++)
                                __builtin_prefetch(c + (MR + r) * g->ldc, 1, 2);
                        ep.bias = tile_bias(g, i, jc);
                        if (fuse && o == 0)
                            ar->kernel_row_pack(kc, ap, b_at(g, pc, jc), g->ldb, row_tiles, bbuf,
                                                c, g->ldc, &ep, na, a_bytes);
                        else
                            ar->kernel_row(kc, ap, rsa, csa, bp, ldb, step, row_tiles, mr, c,
                                           g->ldc, &ep, na, a_bytes);
                        t = row_tiles;
                    }
                    for (const int t0 = t; t < n_in; t++) {
                        const int ir = (g->b_outer ? t : o) * MR, jr = (g->b_outer ? o : t) * NR;
                        const int mr = mc - ir < MR ? mc - ir : MR, nr = nc - jr < NR ? nc - jr : NR;
                        const int i = ic + ir, j = jc + jr;
                        ptrdiff_t rsa, csa, ldb, step;
                        const float *ap = a_tile(g, abuf, MR, i, ir, pc, kc, &rsa, &csa);
                        const float *bp = b_panel(ar, g, bbuf, j, jr, nr, pc, kc, &ldb, &step);
                        ep.bias = tile_bias(g, i, j);
                        float *c = g->C + (ptrdiff_t)i * g->ldc + j;
                        if (ar->prefetch && t + 1 < n_in) {
                            if (g->b_outer)
                                fnn_prefetch_tile(c + MR * g->ldc, g->ldc,
                                                  mc - ir - MR < MR ? mc - ir - MR : MR, nr);
                            else
                                fnn_prefetch_tile(c + NR, g->ldc, mr,
                                                  nc - jr - NR < NR ? nc - jr - NR : NR);
                        }
                        /* the next A panel: spread over this panel's calls,
                         * unless its row call (t0 > 0) prefetched it already */
                        if (ar->prefetch && !g->b_outer && g->pack_a && o + 1 < n_out && !t0)
                            fnn_prefetch_share(a_panel(g, abuf, MR, i + MR, ir + MR, pc, kc),
                                               a_bytes, t, n_in);
                        if (g->pack_a)
                            ar->kernel(kc, ap, bp, ldb, c, g->ldc, mr, nr, &ep);
                        else
                            ar->kernel_sa(kc, ap, rsa, csa, bp, ldb, c, g->ldc, mr, nr, &ep);
                    }
                }
            }
        }
    }
}

/* Split nt threads into tm x tn over (M, N). Each thread packs the A rows
 * and B columns of its own rectangle, B once per MC block of its rows, so a
 * split of a short-and-wide C by rows would make every thread pack all of B.
 * Model a thread's time in cycles and take the cheapest split:
 *  - FMAs at ~32 lanes/cycle;
 *  - per packed element, pack_a / pack_b cycles: PACK_COPY for an operand
 *    whose packing copies rows (op(A) transposed, op(B) not), PACK_TRANSPOSE
 *    for one it transposes (a copy taken as half a transpose's cost, not
 *    measured apart), PACK_STREAM for a B streamed in place (b_streamed:
 *    its reads from memory, not measured apart) and for an A the kernel
 *    reads in place (the swapped y^T = W x^T's W: split by columns, every
 *    thread read all of W, and those products took 1.1-1.3x the time of a
 *    split by W's rows on 2 threads, 128x1024x784 and 64x1024x3136 among
 *    them; Zen 3), none for a B read in place otherwise or prepacked.
 *    (Counting B's packing when B was read in place split dW = dY^T X of
 *    784 -> 256 at batch 64 (256x784x64) into 384 + 400 columns instead of
 *    128 + 128 rows: 1.07x the time on 2 threads.)
 *  - ROW_CUT x NR per element of its rectangle when C's rows are cut between
 *    threads (tn > 1): each thread then writes part of every row, and the
 *    products whose time is mostly C's stores ran far slower split by
 *    columns than by rows, splits the model had as a tie or a near tie:
 *    1024x1024x64 TN (the 1024 -> 1024 layer's dW at batch 64) 0.52-0.86x
 *    the time by rows, 1024x1024x128 TN 0.70-0.96x, 1024^3 NN 0.94-0.97x,
 *    256x1024x1024 NN 0.92-0.96x (2 threads, paired, Zen 4 VM, AVX-512 and
 *    AVX2; the spread is the host's, from run to run). Per element, as a
 *    share of the FMAs' 32 per cycle, it weighs most at small K. Where the
 *    packing of the other operand costs more the columns split stays:
 *    128x1024x1024 NT (B transposed) 1.03x the time by rows, 64x1024x256 NN
 *    1.04x. Fitted: 1.5 per element on the 8x48 kernel; on the 6x16 one
 *    1.5 also moved 128x512x512 and 128x1024x256 NN to rows, 1.05x the time,
 *    0.5 (= NR / 32) keeps them. (A flat 1000 cycles per row of C moved the
 *    two AVX-512 shapes above as well.)
 *  - FAR_CUT: while the threads sit on different L3s (fnn_pool_far), cutting
 *    C's rows costs FAR_CUT cycles per row of the rectangle and K block: on a
 *    Zen 2 VM whose vCPUs the hypervisor moved between one L3 and two, a
 *    column split ran 1.2-1.5x the time of a row split there (2 threads,
 *    paired, C harness: NT 256x1024x784 and 256x256x1024, NN 128-256 x
 *    784-1024 x 1024, TN 256x1024x256) and the same split as fast as rows, or
 *    faster, on one L3. The cost follows C's rows, not its area: NN
 *    256x2048x1024 split by columns ran as fast as by rows when each row's
 *    cut fell on a page boundary of C (C page-aligned) and 1.1x slower with C
 *    2 KiB off -- the hardware prefetchers reach a few lines past a thread's
 *    last column, into lines the other thread writes, and every such line
 *    then crosses the L3s. 1200 cycles (about 2-3 such crossings a row) picks
 *    the faster split on 21 of 23 training shapes measured there, the other
 *    two within 3%.
 * Packing op(A) once for all threads instead (a shared buffer, one region
 * per K block: compute block b, pack a share of block b + 1) halved the A
 * packing's share of a 2-thread 1024^3 profile (6.2 -> 3.1%) yet measured no
 * faster (Xeon AVX-512, 2 threads, paired medians over 31 rounds: 1024^3
 * 1.026x the time, 2048^3 1.001x; training shapes 0.997-1.017x): the copies
 * run on both cores at once, and each extra region is another join. Where
 * a column split leaves each thread few columns it does pay: SHARE_A_COLS. */
#define PACK_COPY 0.5
#define PACK_TRANSPOSE 1.0
#define PACK_STREAM 0.25
#define ROW_CUT (1.0 / 32)
#define FAR_CUT 1200.0
static void split_threads(int nt, int M, int N, int K, const fnn_gemm_arch *ar,
                          int mc, int kc, int far, double pack_a, double pack_b, int *tm,
                          int *tn)
{
    int mp = (M + ar->mr - 1) / ar->mr, np = (N + ar->nr - 1) / ar->nr;
    double best = -1.0;
    *tm = 1; *tn = 1;
    for (int a = 1; a <= nt; a++) {
        if (nt % a)
            continue;
        int b = nt / a;
        if (a > mp || b > np)
            continue;
        double rows = (double)((mp + a - 1) / a) * ar->mr;
        double cols = (double)((np + b - 1) / b) * ar->nr;
        double mblocks = (double)(((int)rows + mc - 1) / mc);
        double cost = rows * cols * K / 32.0 + pack_a * rows * K + pack_b * cols * K * mblocks
                      + (b > 1 ? ROW_CUT * ar->nr * rows * cols : 0.0)
                      + (b > 1 && far ? FAR_CUT * rows * ((K + kc - 1) / kc) : 0.0);
        if (best < 0 || cost < best) {
            best = cost; *tm = a; *tn = b;
        }
    }
}

/* Bounds of part t of n over `units` tiles of size `sz`, clipped to len. */
static void part(int t, int n, int len, int sz, int *lo, int *hi)
{
    int units = (len + sz - 1) / sz;
    int u0 = (int)((long long)units * t / n), u1 = (int)((long long)units * (t + 1) / n);
    *lo = u0 * sz < len ? u0 * sz : len;
    *hi = u1 * sz < len ? u1 * sz : len;
}

typedef struct {
    const fnn_gemm_arch *ar;
    const gemm_args *g;
    int M, N, tm, tn;
    int ncut;                /* the column parts' unit: NR, or VL (col_unit) */
    size_t afl, bfl;         /* floats of the A and B packing buffers */
} gemm_job;

/* The widest of n parts of len in units of sz. */
static int widest_part(int n, int len, int sz)
{
    int w = 0;
    for (int t = 0; t < n; t++) {
        int lo, hi;
        part(t, n, len, sz, &lo, &hi);
        w = hi - lo > w ? hi - lo : w;
    }
    return w;
}

/* Column parts in whole NR panels, unless vector-wide cuts balance them
 * clearly better (by more than 5%): N = 256 in 48-column panels splits 144 +
 * 112 (2 threads at most 1.78x), in 16-column vectors 128 + 128 (each part
 * 48 + 48 + 32). Not with a prepacked B, whose panels start every NR. */
static int col_unit(const fnn_gemm_arch *ar, const gemm_args *g, int tn, int N)
{
    if (tn < 2 || g->pb || ar->vl >= ar->nr)
        return ar->nr;
    int by_nr = widest_part(tn, N, ar->nr), by_vl = widest_part(tn, N, ar->vl);
    return by_vl < 0.95 * by_nr ? ar->vl : ar->nr;
}

/* Rectangles me, me + have, ... of the tm x tn split, each with this
 * thread's packing buffers. */
static int gemm_worker(void *ctx, int me, int have)
{
    const gemm_job *J = ctx;
    const fnn_gemm_arch *ar = J->ar;
    float *buf = fnn_ws_thread((J->afl + J->bfl) * sizeof(float));
    if (!buf)
        return FNN_ENOMEM;
    for (int t = me; t < J->tm * J->tn; t += have) {
        int m0, m1, n0, n1;
        part(t / J->tn, J->tm, J->M, ar->mr, &m0, &m1);
        part(t % J->tn, J->tn, J->N, J->ncut, &n0, &n1);
        if (m0 < m1 && n0 < n1)
            gemm_rect(ar, J->g, m0, m1, n0, n1, buf, buf + J->afl);
    }
    return FNN_OK;
}

/* K == 0 or alpha == 0: no product, only the epilogue. */
static void epilogue_only(int M, int N, float *C, ptrdiff_t ldc, const fnn_epi *ep)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[i * ldc + j] = epi_value(0.0f, &C[i * ldc + j], i, j, ep);
}

typedef struct {
    const fnn_gemm_arch *ar;
    int trans, M, K;
    const float *A;
    ptrdiff_t lda;
    float *data;
} pack_a_job;

/* Panels [lo, hi) of op(A), all K columns each. */
static int pack_a_panels(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const pack_a_job *J = ctx;
    const int MR = J->ar->mr, i0 = (int)lo * MR;
    const int i1 = (int)hi * MR < J->M ? (int)hi * MR : J->M;
    (void)part;
    pack_a(J->ar, J->trans, i1 - i0, J->K, J->trans ? J->A + i0 : J->A + (ptrdiff_t)i0 * J->lda,
           J->lda, J->data + lo * J->K * MR);
    return FNN_OK;
}

/* All of op(A) packed into data (panels K long), threaded over the panels
 * by flops: fnn_sgemm_pack_a's, and the shared packing of a column split. */
static void pack_a_whole(const fnn_gemm_arch *ar, int trans, int M, int K, const float *A,
                         ptrdiff_t lda, float *data, double flops)
{
    pack_a_job J = {ar, trans, M, K, A, lda, data};
    fnn_parallel_for((M + ar->mr - 1) / ar->mr, 1, flops, pack_a_panels, &J);
}

/* Split by columns (all rows on each thread), every thread packed all of
 * op(A) for itself: at 128-512 columns a thread, a transposing copy of A per
 * 4-16 FMAs of its own. Packed once instead, each thread a share of its
 * panels in a region of its own before the product's, the forward products
 * y = x W^T ran 0.94-0.98x the time (NT 256x256x1024 0.944-0.948, 64x256x1024
 * 0.962-0.969, 256x1024x784 and 128x1024x784 0.98, 64x1024x3136 0.98) and
 * the input gradients 0.94-0.99x (NN 128x1024x256 0.936, 64x3136x1024
 * 0.965); at 1024 columns a thread no gain (2048^3 1.009x). 2 threads,
 * paired, Zen 3, AVX2; same bits (a copy), so 1 and 2 threads still agree.
 * Sharing op(B)'s packing likewise where the split is by rows moved nothing
 * (1024^3, TN 1024x784x64, NN 256x1024x256: 0.999-1.004x). Set per arch
 * (share_a): the AVX-512 path's split was not measured with it. All of
 * op(A) is packed at once, so only up to SHARE_A_FLOATS (4 MiB: the
 * training shapes' 256 x 3136 is 3.1 MiB), never a buffer that grows with
 * a large batch. On a Zen 2 VM (2 threads, paired, one process) 0.96-1.01x
 * the time while its two vCPUs shared an L3, 1.00-1.10x while the
 * hypervisor had them on different CCXs (a cache line's round trip between
 * them 56-66 ns against 250-1300 ns): there each line one thread packed
 * crosses the Infinity Fabric to the other. So not while fnn_pool_far().
 * (Nor op(B) packed once and shared by a row split: while far, 1.1-1.2x the
 * time of each thread packing all of op(B) at NT 256x1024x784, 1.7-1.9x at
 * NN 64x784x1024.) */
#define SHARE_A_COLS 512
#define SHARE_A_FLOATS (1 << 20)

/* Floats of a thread's A and B packing buffers for g over M x N (sized
 * from the blocks; none for an operand packed beforehand). gemm_worker asks
 * its thread's arena for their sum, so a caller that keeps data of its own
 * in that arena across gemm_run places it past them. */
static void pack_floats(const fnn_gemm_arch *ar, const gemm_args *g, int M, int N,
                        size_t *afl, size_t *bfl)
{
    int kc = g->K < g->bl.kc ? g->K : g->bl.kc;
    if (g->pb)
        kc = g->pb->kc;
    const int mcap = M < g->bl.mc ? M : g->bl.mc;
    const int ncap = N < g->bl.nc ? N : g->bl.nc;
    *afl = g->pa ? 0 : (size_t)(mcap + ar->mr) * kc;
    *bfl = g->pb ? 0 : (size_t)(ncap + ar->nr) * kc;
}

/* The threads over C for g (packing buffers sized from the blocks). */
static int gemm_run(const fnn_gemm_arch *ar, const gemm_args *g, int M, int N)
{
    double flops = 2.0 * M * N * g->K;
    int nt = fnn_threads_for(flops);
    gemm_job J = {ar, g, M, N, 1, 1, ar->nr, 0, 0};
    const int far = nt > 1 && fnn_pool_far();
    split_threads(nt, M, N, g->K, ar, g->bl.mc,
                  k_block(g), far,
                  g->pa ? 0.0 : !g->pack_a ? PACK_STREAM : g->trans_a ? PACK_COPY
                  : PACK_TRANSPOSE,
                  g->pb ? 0.0 : g->b_outer ? PACK_STREAM : !g->pack_b ? 0.0
                  : g->trans_b ? PACK_TRANSPOSE : PACK_COPY,
                  &J.tm, &J.tn);
    J.ncut = col_unit(ar, g, J.tn, N);
    pack_floats(ar, g, M, N, &J.afl, &J.bfl);
    fnn_packed_a pa = {M, g->K, ar->mr, ar, NULL};
    gemm_args gs;
    if (ar->share_a && !far && J.tm == 1 && J.tn > 1 && g->pack_a && !g->pa
        && (N + J.tn - 1) / J.tn <= SHARE_A_COLS && (double)M * g->K <= SHARE_A_FLOATS) {
        /* op(A) packed once, its panels shared out between the threads,
         * into the calling thread's arena past its own buffers (its part
         * below asks for no more, so they stay where they are) */
        const size_t own = (J.bfl + 15) / 16 * 16;
        float *buf = fnn_ws_thread((own + (size_t)(M + ar->mr - 1) / ar->mr * ar->mr * g->K)
                                   * sizeof(float));
        if (!buf)
            return FNN_ENOMEM;
        pa.data = buf + own;
        pack_a_whole(ar, g->trans_a, M, g->K, g->A, g->lda, pa.data, flops);
        gs = *g;
        gs.pa = &pa;
        J.g = &gs;
        J.afl = 0;
    }
    return fnn_parallel_region(J.tm * J.tn, gemm_worker, &J);
}

/* K == 0 or alpha == 0: only the epilogue, on the calling thread. */
static int no_product(int M, int N, float beta, float *C, ptrdiff_t ldc, const float *bias,
                      int bias_mode, int relu)
{
    fnn_epi ep = {1.0f, beta, bias, bias_mode, relu};
    unsigned s = fnn_ftz_enter();
    epilogue_only(M, N, C, ldc, &ep);
    fnn_ftz_leave(s);
    return FNN_OK;
}

/* ----------------------------------------------- small N (<= 16 columns) -- */

typedef struct {
    const fnn_gemm_arch *ar;
    const gemm_args *g;
    int M, N;
    const float *bt;         /* op(B)^T (N, K) rows bt_ld apart, for small_dot */
    ptrdiff_t bt_ld;
    int by_cols;             /* parts take column chunks (few rows), not rows */
    int rows, cols;          /* the small kernel's tile: rows, chunks of <= cols */
} small_job;

/* Part `me` of `have`: rows [m0, m1) of C on 16-row boundaries, or with
 * by_cols all rows and its share of the column chunks; in J->rows x J->cols
 * tiles of the arch's small kernels, columns in balanced chunks of at most
 * small_cols (10 = 10 on AVX-512, 5 + 5 on AVX2; 16 = 8 + 8), or of
 * small_dot_far_cols for the dot kernel where op(B) is larger than L1
 * (5 + 5). */
static int small_worker(void *ctx, int me, int have)
{
    const small_job *J = ctx;
    const gemm_args *g = J->g;
    const fnn_gemm_arch *ar = J->ar;
    const int TR = J->rows;
    const int chunks = (J->N + J->cols - 1) / J->cols;
    int m0 = 0, m1 = J->M, q0 = 0, q1 = chunks;
    if (J->by_cols)
        part(me, have, chunks, 1, &q0, &q1);
    else
        part(me, have, J->M, 16, &m0, &m1);
    /* transposed A: K in the general path's blocks (the kernel applies the
     * epilogue per block) -- the bits of the 8x48 path and the packed entry
     * points */
    const int KC = balanced(g->K, g->bl.kc, 8);
    const ptrdiff_t rsb = g->trans_b ? 1 : g->ldb, csb = g->trans_b ? g->ldb : 1;
    for (int j0 = 0, q = 0; q < q1; q++) {
        const int nj = (J->N - j0) / (chunks - q);
        for (int i0 = m0; i0 < m1 && q >= q0; i0 += TR) {
            const int mr = m1 - i0 < TR ? m1 - i0 : TR;
            fnn_epi ep = {g->alpha, g->beta,
                          g->bias_mode == FNN_BIAS_ROW ? g->bias + i0
                          : g->bias_mode == FNN_BIAS_COL ? g->bias + j0 : NULL,
                          g->bias_mode, g->relu};
            float *c = g->C + (ptrdiff_t)i0 * g->ldc + j0;
            if (g->trans_a)
                ar->small_tm(mr, nj, g->K, KC, a_at(g, i0, 0), g->lda, b_at(g, 0, j0), rsb,
                             csb, c, g->ldc, &ep);
            else
                ar->small_dot(mr, nj, g->K, g->A + (ptrdiff_t)i0 * g->lda, g->lda,
                              J->bt + (ptrdiff_t)j0 * J->bt_ld, J->bt_ld, c, g->ldc, &ep);
        }
        j0 += nj;
    }
    return FNN_OK;
}

/* Row stride of a copy of rows n floats long: 16 floats more than n
 * rounded up, so that successive rows do not fall in the same L1 sets. */
static inline int unaliased_ld(int n)
{
    return (n + 15) / 16 * 16 + 16;
}

/* N <= 16: the whole of op(B) is a few KB. The vectors-along-M kernel
 * broadcasts it in place. The dot kernel reads a transposed B in place too
 * (its rows are op(B)'s columns); a B not transposed this thread copies
 * once, as rows along K, into its own arena (which fnn_sgemm's callers
 * leave to it, as gemm_worker's packing buffers; the workers read it
 * there), rows unaliased_ld(K) apart. (Copying a transposed B as well
 * took 1.01-1.10x the time of reading it in place on 1 thread, 1.02-1.44x
 * on 2, even where its rows crowd L1's sets: 33-301 x 7-16 x 300-4096,
 * paired, Zen 4.) */
static int gemm_small(const fnn_gemm_arch *ar, const gemm_args *g, int M, int N)
{
    small_job J = {ar, g, M, N, g->B, g->ldb, 0, ar->small_rows, ar->small_cols};
    if (!g->trans_a) {
        const long l1 = fnn_caches_detected()->l1d.size;
        J.rows = ar->small_dot_rows;
        if (ar->small_dot_far_rows && l1 > 0 && (double)N * g->K * sizeof(float) > l1)
            J.rows = ar->small_dot_far_rows, J.cols = ar->small_dot_far_cols;
        if (!g->trans_b) {
            J.bt_ld = unaliased_ld(g->K);
            float *bt = fnn_ws_thread((size_t)N * J.bt_ld * sizeof(float));
            if (!bt)
                return FNN_ENOMEM;
            ar->pack_t(g->K, N, g->B, g->ldb, bt, (int)J.bt_ld);
            J.bt = bt;
        }
    }
    return fnn_parallel_region(fnn_threads_for(2.0 * M * N * g->K), small_worker, &J);
}

/* A few rows (inference at batch 1-32, y = x W^T with W (N, K) row-major):
 * the dot kernel reads W's rows in place, the parts taking chunks of
 * columns. Packing W cost more than the product: 784 -> 1024 at M = 1 ran at
 * 0.1-0.5x numpy's sgemv, and at M = 8-32 the packed 8x48 path ran at 50-88
 * GFLOP/s against the dot kernel's 76-100 (AVX-512: 8-16 rows 1.3-1.9x
 * faster, 32 rows 0.95-1.19x over K = 512-2048; AVX2 8-16 rows 1.3-2.0x, 32
 * rows 0.97-1.17x; 48-64 rows no faster; 1 thread, C harness, Zen 4). Past
 * SMALL_M_ANY_K rows only from K = SMALL_M_K: each element ends in a lane
 * sum, and at K = 17-128 (an LSTM's input projection at batch 1 is 28 x 512
 * from K = 28) the dot path ran 0.26-0.91x the packed path's speed; from K =
 * 256 1.04-1.8x (8-32 rows x 512 columns). Where the far tile exists
 * (AVX-512: 4 rows x 6 columns against 2 x 12) it takes 3 rows or more, and
 * fewer rows of W at a time where more than 6 of the 12 share an L1 set: at
 * ldb = 1024 all 12 rows stream through one set of 8 ways, and 1 x 1024 x
 * 1024 ran at 0.60x numpy's sgemv. With the far tile: M = 1-2 x 1024 x
 * 1024-2048 took 0.60-0.70x the time, M = 3-4 0.39-0.81x (784 or 1024 wide);
 * where the 12 rows spread over sets (ldb = 512, 784) 1.03-1.13x, so there
 * they stay (1 and 2 threads, Zen 4). The AVX2 tile (2 x 6) measured best of
 * 2-3 x 3-6 at ldb = 784-2048 as it is. */
#define SMALL_M_ANY_K 4
#define SMALL_M 32
#define SMALL_M_K 256
static int small_m_path(const fnn_gemm_arch *ar, int trans_a, int trans_b, int M, int K)
{
    return !trans_a && trans_b && ar->small_dot
           && (M <= SMALL_M_ANY_K || (M <= SMALL_M && K >= SMALL_M_K));
}

static int gemm_small_m(const fnn_gemm_arch *ar, const gemm_args *g, int M, int N)
{
    small_job J = {ar, g, M, N, g->B, g->ldb, 1, ar->small_dot_rows, ar->small_cols};
    if (ar->small_dot_far_rows && (M > J.rows || crowded(g->ldb, J.cols, 6)))
        J.rows = ar->small_dot_far_rows, J.cols = ar->small_dot_far_cols;
    /* up to SMALL_M_ANY_K rows memory-bound: each part streams its share of
     * W once (and keeps it in its own L2 from call to call), so the work is
     * counted per W element */
    return fnn_parallel_region(
        fnn_threads_for((M > SMALL_M_ANY_K ? 2.0 * M : 8.0) * N * g->K), small_worker, &J);
}

/* ------------------------------------------------ small K (<= 16 rows) -- */

/* K <= FNN_SMALL_K: the output layer's dX = dY W (M x N from K = 10).
 * Both operands are a few KB and every A element is used by few FMAs, so
 * the arch's small_k kernel reads them in place, all of C in one call per
 * thread; the threads take rows, in its row tiles (a thread's C rows whole:
 * split by columns, C's stores dominate, see ROW_CUT). The packed path spent
 * about 30% of these products in tile prologues and epilogues and in packing
 * A (perf, 256x256x10, Zen 4). Each thread copies op(B) row-major into its
 * own arena (a few KB) where B is transposed -- the NT and TT products at
 * K = 10 then took 0.76-0.96x the packed path's time -- and, for the kernels
 * that ask (small_k_copy), where its rows crowd L1's sets: the AVX2
 * kernel's 24-column strips of a K = 10 B 4 KB a row took 0.85-0.94x the
 * time copied (1.01x on 2 threads at 256 rows), while the AVX-512 one, with
 * 8 loads per 16 cycles of FMAs against the AVX2 one's 7 per 6 on this
 * core, took 0.96-1.07x (1.5x on 2 threads at 256 rows; 64-256 x 1024 x 10,
 * paired, Zen 4). The copy made once by the calling thread and read by the
 * other from there cost more on 2 threads (AVX2 256x1024x10: 1.35x the time
 * of no copy, 1.01x copied by each thread). Where C's rows and B's rows all
 * sit at one offset in the 4 KB page (ldc and ldb multiples of 1024 floats)
 * and the two offsets nearly meet, every B load shares its L1 set and low
 * address bits with C's recent stores: 64x1024x10 ran at 0.83-0.87x
 * OpenBLAS's speed there (OpenBLAS itself lost 15%) against 0.96-0.98x a
 * half page apart. So the AVX-512 path copies B there too, and every copy
 * starts half a page from C's first row: 1.02-1.11x OpenBLAS at the shared
 * offset, and the AVX2 path's copy (placed anywhere before) 53-55 -> 63-77
 * GFLOP/s (C harness, 1 thread, Zen 4). */
typedef struct {
    const fnn_gemm_arch *ar;
    const gemm_args *g;
    int M, N;
    int copy_b;              /* op(B) copied row-major into each thread's arena */
} small_k_job;

/* Where in a buffer of n floats plus 4 KB to put the n floats so that they
 * start half a page (in the low 12 address bits) away from c. */
static float *half_page_from(float *buf, const float *c)
{
    const uintptr_t want = ((uintptr_t)c + 2048) & 4095, have = (uintptr_t)buf & 4095;
    return buf + ((want - have) & 4095) / sizeof(float);
}

static int small_k_worker(void *ctx, int me, int have)
{
    const small_k_job *J = ctx;
    const gemm_args *g = J->g;
    int m0, m1;
    part(me, have, J->M, J->ar->small_k_rows, &m0, &m1);
    if (m0 >= m1)
        return FNN_OK;
    const float *b = g->B;
    ptrdiff_t ldb = g->ldb;
    if (J->copy_b) {
        const int ld = unaliased_ld(J->N);
        float *bt = fnn_ws_thread(((size_t)g->K * ld + 1024) * sizeof(float));
        if (!bt)
            return FNN_ENOMEM;
        bt = half_page_from(bt, g->C + (ptrdiff_t)m0 * g->ldc);
        if (g->trans_b)
            J->ar->pack_t(J->N, g->K, g->B, g->ldb, bt, ld);
        else
            copy_rows(g->K, J->N, g->B, g->ldb, bt, ld);
        b = bt, ldb = ld;
    }
    fnn_epi ep = {g->alpha, g->beta, g->bias_mode == FNN_BIAS_ROW ? g->bias + m0 : g->bias,
                  g->bias_mode, g->relu};
    J->ar->small_k(m1 - m0, J->N, g->K, a_at(g, m0, 0), g->trans_a ? 1 : g->lda,
                   g->trans_a ? g->lda : 1, b, ldb, g->C + (ptrdiff_t)m0 * g->ldc, g->ldc, &ep);
    return FNN_OK;
}

/* The copies are of all of op(B), so they are bounded: past SMALL_K_COPY
 * floats (256 KB) a transposed B takes the general path, packed a block at
 * a time, and a crowded one is read in place. */
#define SMALL_K_COPY (64 * 1024)

static int small_k_path(const fnn_gemm_arch *ar, int trans_b, int N, int K)
{
    return K <= FNN_SMALL_K && ar->small_k && (!trans_b || (double)K * N <= SMALL_K_COPY);
}

/* B's rows all at one offset in the 4 KB page, C's rows all at one too,
 * and the two offsets within 1 KB of each other. */
static int shares_page_offsets(const gemm_args *g)
{
    const uintptr_t d = ((uintptr_t)g->C - (uintptr_t)g->B) & 4095;
    return (g->ldb * sizeof(float)) % 4096 == 0 && (g->ldc * sizeof(float)) % 4096 == 0
           && (d < 1024 || d > 3072);
}

static int gemm_small_k(const fnn_gemm_arch *ar, const gemm_args *g, int M, int N)
{
    small_k_job J = {ar, g, M, N,
                     g->trans_b || ((ar->small_k_copy || shares_page_offsets(g))
                                    && crowded(g->ldb, g->K, 4)
                                    && (double)g->K * N <= SMALL_K_COPY)};
    return fnn_parallel_region(fnn_threads_for(2.0 * M * N * g->K), small_k_worker, &J);
}

/* op(B) already row-major and either small or used by few rows of A
 * (packing would cost more than the reuse saves): full panels are read in
 * place. Not for more rows: rows 4 KB apart alias in L1 and lose 15%. Nor
 * when a panel's rows crowd into few L1 sets: at ldb = 1024 all 64 rows of
 * the 1024 -> 1024 layer's dW = dY^T X (batch 64) share one. Packing them:
 * 0.89x the time on 2 threads, 0.99x on 1 (paired, Zen 4). Not at K <= 16:
 * the output layer's dX (64x1024x10) took 1.00-1.02x the time packed in a
 * loop of its own and ran at 54 instead of 69 GFLOP/s in the benchmark's,
 * its B (40 KB) coming from L2 on every row of tiles either way. (Packed
 * in the main loop, with an alpha = 1 store beside it: 0.89-1.14x the time
 * over the K = 10 NN and TN products, 1 and 2 threads, no direction.) Nor,
 * past K = 16, for a kernel whose panel rows are under two cache lines (the
 * AVX2 6x16's are one): packed, TN 1024x784x64 and NN 64-1024x784x64 took
 * 0.89-0.98x the time on the AVX2 path (against 1.00-1.05x on AVX-512's
 * 48-wide panels), the portable 4x8 kernel 0.96-1.01x (1 thread, C
 * harness, Zen 4); the NEON 8x12 follows them, not measured. */
static int b_in_place(const fnn_gemm_arch *ar, int trans_b, int M, int N, int K,
                      ptrdiff_t ldb)
{
    if (trans_b)
        return 0;
    if (M <= 2 * ar->mr)
        return 1;
    if (K > 16 && ar->nr * sizeof(float) < 128)
        return 0;
    return (double)K * N * sizeof(float) <= 256.0 * 1024 && (K <= 16 || !crowded(ldb, K, 4));
}

/* op(B) row-major, its K-block (KC x N) more than half of L2, and A's rows
 * no more than K and few enough that their packed block (M x KC) fits in
 * half of L2: B is read in place, each NR-column panel of it once from
 * memory, with the loop over B's panels outside the one over A's (b_outer).
 * A B panel is then used by every row panel while it is in L1/L2, and the
 * packed A block is what L2 holds; packed, B went from memory to the buffer and back out of L2 for
 * each row panel. The input gradients dX = dY W at batch 64-256 ran
 * 0.92-1.00x the time of packing B on 1 thread and 0.81-0.97x on 2
 * (64x3136x1024 0.95x / 0.81x, 128x1024x1024 0.96x / 0.91x, 128x784x1024
 * 0.95x / 0.93x; paired medians, Zen 4 VM, AVX-512); with A past half of
 * L2 slower (512x1024x1024 1.05x, 1024^3 1.09x), with a B block that
 * stays in L2 anyway too (256x1024x64 NN 1.03x, TN 1.04x), and with more
 * rows than K, C's stores then dominating and going down C in NR-wide
 * strips (the weight gradients 1024x3136x64 TN 1.12-1.15x, x128
 * 1.07-1.09x). Only for a kernel whose panel rows are 2 cache lines or
 * more (NR * 4 >= 128 bytes: the 8x48). A row of the AVX2 path's 16-wide panel is
 * one line, the rows far apart: streamed, 128x3136x1024 NN ran 1.16x the
 * time on 2 threads, and at ldb = 1024 (rows 4 KB apart, 10 of a panel's
 * lines to each 8-way L2 set) 1.3-2x; the 8x48 gained there as well. */
static int b_streamed(const fnn_gemm_arch *ar, int trans_b, int M, int N, int K,
                      const fnn_gemm_blocks *bl)
{
    const long l2 = fnn_caches_detected()->l2.size, half = (l2 > 0 ? l2 : 256L << 10) / 2;
    const int kc = K < bl->kc ? K : bl->kc;
    return !trans_b && ar->nr * sizeof(float) >= 128 && M <= K
           && (double)((M + ar->mr - 1) / ar->mr * ar->mr) * kc * sizeof(float) <= half
           && (double)kc * N * sizeof(float) > half;
}

/* N within one panel, past the small-N kernels or without them: every A
 * element is used by one micro-kernel call only, so packing A would copy all
 * of it for no reuse; the kernel reads it in place instead. Same sums, same
 * order. A transposed A read in place steps a row of A per k: fine at a
 * batch's width (the output layer's dW-shaped products ran 15-25% faster in
 * place than packed), but rows 2 KB or more apart fall in 2 of L1's 64 sets
 * (an RNN's dW_ih = dG^T X, 2048 floats a row) and there packing wins. (A
 * row-major A of K <= 16 read in place measured 0.97-1.04x the time of
 * packing it on the output layer's K = 10 products, Zen 4: left packed.) */
static int a_in_place(const fnn_gemm_arch *ar, int trans_a, ptrdiff_t lda, int N)
{
    return ar->kernel_sa && N <= ar->nr && (!trans_a || lda < 512);
}

/* ------------------------------------------- y = x W^T, batch rows -- */

/* C = A B^T with few rows of A (a batch) against many of B (a layer's
 * weights W, N x K): computed as C^T = B A^T into scratch, then transposed
 * into C. In the usual order every call packs all of W transposed into
 * NR-column panels -- the reads of 16 rows at a time, the 8x8 transposes --
 * for only M rows of A to use each packed element; in the swapped order W
 * is op(A), read in place by the kernel (6 rows at a time, along K), and the
 * packing is of the batch's x (M x K), 8-16x smaller. The price is a
 * transpose of C (M x N floats, read and written once). Each element is the
 * same FMA chain over the same K blocks with the epilogue's bias per row of
 * C^T instead of per column of C, so the bits are the usual path's (alpha =
 * 1, beta = 0 only: the layers' forward). Measured paired against the usual
 * path (Zen 3, AVX2, 1 / 2 threads; see nt_swap_pays). On the AVX-512
 * path (8x48, W read 8 rows at a time), paired in one build against the
 * usual path, Zen 4 VM, 1 / 2 threads (medians of 7 rounds):
 *  - 64 rows: 64x1024x784 0.92x / 0.89x the time, 64x1024x1024 0.91x /
 *    0.87x, 64x1024x3136 0.83x / 0.80x, 64x256x1024 0.91x / 0.92x;
 *  - 128 rows: 128x1024x784 0.96x / 0.93x, 128x1024x1024 0.95x / 0.92x,
 *    128x1024x3136 0.92x / 0.86x, 128x256x1024 0.96x / 0.96x;
 *  - 192 rows: 192x1024x784 0.99x / 0.91x, 192x1024x1024 0.99x / 0.94x;
 *  - 256 rows, K >= 4 M: 256x1024x1024 0.99x / 0.93x, 256x1024x3136 0.97x
 *    / 0.91x, 256x2048x2048 1.00x / 0.94x; with K = 784 < 4 M it took
 *    1.02x / 1.09x (the rule leaves it);
 *  - past 256 rows: 384x1024x2048 1.00x / 0.97x, 512x2048x2048 1.01x /
 *    0.99x, 512x1024x4096 0.99x / 0.96x: within a few percent, so the
 *    AVX-512 path stops at 256 (fnn_gemm_arch.swap_nt). */
typedef struct {
    const float *ct;         /* C^T, N rows of ldt floats */
    ptrdiff_t ldt;
    float *c;
    ptrdiff_t ldc;
    int M;
    const fnn_gemm_arch *ar;
} nt_back_job;

/* Rows [lo, hi) of C^T (columns of C) transposed into C. */
static int nt_back(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const nt_back_job *J = ctx;
    (void)part;
    J->ar->pack_t((int)(hi - lo), J->M, J->ct + lo * J->ldt, J->ldt, J->c + lo, (int)J->ldc);
    return FNN_OK;
}

#define NT_SWAP_MIN_K 256
static int nt_swap_pays(const fnn_gemm_arch *ar, const gemm_args *g, int M, int N)
{
    return ar->swap_nt && ar->kernel_sa && !g->trans_a && g->trans_b && g->alpha == 1.0f
           && g->beta == 0.0f && M > 2 * ar->mr && M <= ar->swap_nt && N >= 2 * M
           && g->K >= NT_SWAP_MIN_K && g->K >= 4 * M && g->ldc <= INT_MAX;
}

static int gemm_nt_swapped(const fnn_gemm_arch *ar, const gemm_args *g, int M, int N)
{
    const ptrdiff_t ldt = unaliased_ld(M);
    gemm_args t = *g;
    t.trans_a = 0, t.trans_b = 1;
    t.A = g->B, t.lda = g->ldb;          /* W: N x K, read in place */
    t.B = g->A, t.ldb = g->lda;          /* op(B) = x^T, packed */
    t.ldc = ldt;
    t.bias_mode = g->bias_mode == FNN_BIAS_COL ? FNN_BIAS_ROW
                : g->bias_mode == FNN_BIAS_ROW ? FNN_BIAS_COL : g->bias_mode;
    t.pack_a = 0, t.pack_b = 1;
    /* C^T in this thread's arena past its packing buffers for the product
     * (the caller's part of gemm_run asks for those alone: C^T stays put) */
    size_t afl, bfl;
    pack_floats(ar, &t, N, M, &afl, &bfl);
    const size_t own = (afl + bfl + 15) / 16 * 16;
    float *buf = fnn_ws_thread((own + (size_t)N * ldt) * sizeof(float));
    if (!buf)
        return FNN_ENOMEM;
    float *ct = buf + own;
    t.C = ct;
    int rc = gemm_run(ar, &t, N, M);
    if (rc != FNN_OK)
        return rc;
    nt_back_job J = {ct, ldt, g->C, g->ldc, M, ar};
    return fnn_parallel_for(N, 64, (double)N * M * FNN_COST_ELEM, nt_back, &J);
}

int fnn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
              const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
              float beta, float *C, ptrdiff_t ldc, const float *bias,
              int bias_mode, int relu)
{
    if (M <= 0 || N <= 0)
        return FNN_OK;
    if (K <= 0 || alpha == 0.0f)
        return no_product(M, N, beta, C, ldc, bias, bias_mode, relu);
    const fnn_gemm_arch *ar = arch_in_use();
    gemm_args g = {trans_a, trans_b, K, alpha, beta, A, B, lda, ldb, ldc, C,
                   bias, bias_mode, relu, 1, 1, fnn_gemm_blocks_for(ar), NULL, NULL};
    if (N <= 16 && ar->small_tm)            /* the output layer's 10 classes */
        return gemm_small(ar, &g, M, N);
    if (small_k_path(ar, trans_b, N, K))    /* the output layer's dX = dY W */
        return gemm_small_k(ar, &g, M, N);
    if (small_m_path(ar, trans_a, trans_b, M, K))
        return gemm_small_m(ar, &g, M, N);
    if (nt_swap_pays(ar, &g, M, N))
        return gemm_nt_swapped(ar, &g, M, N);
    g.pack_a = !a_in_place(ar, trans_a, lda, N);
    g.pack_b = !b_in_place(ar, trans_b, M, N, K, ldb);
    if (g.pack_b && b_streamed(ar, trans_b, M, N, K, &g.bl))
        g.pack_b = 0, g.b_outer = 1;
    return gemm_run(ar, &g, M, N);
}

/* ------------------------------------------------------ packed op(B) -- */

size_t fnn_sgemm_packed_floats(int K, int N)
{
    const fnn_gemm_arch *ar = arch_in_use();
    return K > 0 && N > 0 ? (size_t)K * (size_t)packed_width(ar, N) : 0;
}

void fnn_sgemm_packed_layout(int K, int N, float *data, fnn_packed_b *out)
{
    const fnn_gemm_arch *ar = arch_in_use();
    fnn_gemm_blocks bl = fnn_gemm_blocks_for(ar);
    int last = N > 0 && N % ar->nr ? N % ar->nr : ar->nr;
    *out = (fnn_packed_b){K, N, balanced(K > 0 ? K : 1, bl.kc, 8), ar->nr, ar->vl,
                          panel_width(ar, last), packed_width(ar, N), ar, data};
}

/* Block pc of kc rows at data + pc * packed_width(N); inside it the panels
 * of NR columns (the last padded to its width), each kc x width, k-major --
 * what gemm_rect packs into its buffer, for all of N at once. */
void fnn_sgemm_pack_b(int trans_b, int K, int N, const float *B, ptrdiff_t ldb, float *data,
                      fnn_packed_b *out)
{
    fnn_sgemm_packed_layout(K, N, data, out);
    const fnn_gemm_arch *ar = out->arch;
    const ptrdiff_t pw = out->row_floats;
    for (int pc = 0; pc < K; pc += out->kc) {
        int kc = K - pc < out->kc ? K - pc : out->kc;
        pack_b_block(ar, trans_b, kc, N, trans_b ? B + pc : B + (ptrdiff_t)pc * ldb, ldb,
                     data + pc * pw, 0);
    }
}

int fnn_sgemm_pb(int trans_a, int M, float alpha, const float *A, ptrdiff_t lda,
                 const fnn_packed_b *B, float beta, float *C, ptrdiff_t ldc,
                 const float *bias, int bias_mode, int relu)
{
    const int N = B->N, K = B->K;
    if (M <= 0 || N <= 0)
        return FNN_OK;
    if (K <= 0 || alpha == 0.0f)
        return no_product(M, N, beta, C, ldc, bias, bias_mode, relu);
    const fnn_gemm_arch *ar = B->arch;
    gemm_args g = {trans_a, 0, K, alpha, beta, A, NULL, lda, 0, ldc, C,
                   bias, bias_mode, relu, 0, 1, fnn_gemm_blocks_for(ar), B, NULL};
    g.pack_a = !a_in_place(ar, trans_a, lda, N);
    return gemm_run(ar, &g, M, N);
}

/* ------------------------------------------------------ packed op(A) -- */

size_t fnn_sgemm_packed_a_floats(int M, int K)
{
    const fnn_gemm_arch *ar = arch_in_use();
    return M > 0 && K > 0 ? (size_t)(M + ar->mr - 1) / ar->mr * ar->mr * (size_t)K : 0;
}

void fnn_sgemm_packed_a_layout(int M, int K, float *data, fnn_packed_a *out)
{
    const fnn_gemm_arch *ar = arch_in_use();
    *out = (fnn_packed_a){M, K, ar->mr, ar, data};
}

/* pack_a over the whole of op(A) at once (its panels are then K long),
 * threaded over the panels. */
void fnn_sgemm_pack_a(int trans_a, int M, int K, const float *A, ptrdiff_t lda, float *data,
                      fnn_packed_a *out)
{
    fnn_sgemm_packed_a_layout(M, K, data, out);
    if (M <= 0 || K <= 0)
        return;
    pack_a_whole(out->arch, trans_a, M, K, A, lda, data, (double)M * K * FNN_COST_ELEM);
}

int fnn_sgemm_pa(const fnn_packed_a *A, int trans_b, int N, float alpha, const float *B,
                 ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc)
{
    const int M = A->M, K = A->K;
    if (M <= 0 || N <= 0)
        return FNN_OK;
    if (K <= 0 || alpha == 0.0f)
        return no_product(M, N, beta, C, ldc, NULL, FNN_BIAS_NONE, 0);
    const fnn_gemm_arch *ar = A->arch;
    gemm_args g = {0, trans_b, K, alpha, beta, NULL, B, 0, ldb, ldc, C,
                   NULL, FNN_BIAS_NONE, 0, !b_in_place(ar, trans_b, M, N, K, ldb), 1,
                   fnn_gemm_blocks_for(ar), NULL, A};
    return gemm_run(ar, &g, M, N);
}

/* ------------------------------------------------------ bias gradient -- */

/* out[j] (+)= sum over i of x[i ldx + j]: the gradient of a per-column bias
 * (FNN_BIAS_COL; Linear's db = column sums of dY). Each column's sum runs in
 * float64 over the rows in order, vectorised across a block of columns;
 * threads take whole blocks, so the bits do not depend on the thread count.
 * (numpy's sum over axis 0 cost 7 us of a 64 x 256 dY, a 784-256-10 MLP
 * training step calling it twice.) */
#define SUM_ROWS_COLS 32

typedef struct {
    ptrdiff_t rows, cols, ldx;
    const float *x;
    float *out;
    int acc;
} sum_rows_args;

FNN_INLINE int sum_rows_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    (void)part;
    const sum_rows_args *S = ctx;
    for (ptrdiff_t b = lo; b < hi; b++) {
        const ptrdiff_t j0 = b * SUM_ROWS_COLS;
        const ptrdiff_t w = S->cols - j0 < SUM_ROWS_COLS ? S->cols - j0 : SUM_ROWS_COLS;
        double t[SUM_ROWS_COLS] = {0};
        if (w == SUM_ROWS_COLS) {        /* constant bounds: t in registers */
            for (ptrdiff_t i = 0; i < S->rows; i++) {
                const float *r = S->x + i * S->ldx + j0;
                for (int k = 0; k < SUM_ROWS_COLS; k++)
                    t[k] += (double)r[k];
            }
        } else {
            for (ptrdiff_t i = 0; i < S->rows; i++) {
                const float *r = S->x + i * S->ldx + j0;
                for (ptrdiff_t k = 0; k < w; k++)
                    t[k] += (double)r[k];
            }
        }
        float *o = S->out + j0;
        for (ptrdiff_t k = 0; k < w; k++)
            o[k] = S->acc ? (float)((double)o[k] + t[k]) : (float)t[k];
    }
    return FNN_OK;
}
FNN_RANGE_CLONES(sum_rows)

void fnn_sum_rows(ptrdiff_t rows, ptrdiff_t cols, const float *x, ptrdiff_t ldx, float *out,
                  int acc)
{
    sum_rows_args S = {rows, cols, ldx, x, out, acc};
    const ptrdiff_t blocks = (cols + SUM_ROWS_COLS - 1) / SUM_ROWS_COLS;
    fnn_parallel_for(blocks, 1, (double)rows * cols * (FNN_COST_ELEM / 4), FNN_ISA_PICK(sum_rows),
                     &S);
}
