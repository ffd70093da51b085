/* gemm_blocking.c -- cache blocking of the SGEMM from the caches cpu.c
 * detects, after Low, Igual, Smith and Quintana-Orti, "Analytical Modeling
 * Is Enough for High-Performance BLIS" (ACM TOMS 2016).
 *
 * Roles. Our kernel is row-major: NR runs along the vector lanes (the side the
 * paper's column-major kernel calls m_r) and MR is the broadcast side (the
 * paper's n_r). In gemm.c's innermost loops the packed A micro-panel
 * (MR x KC) is held while the B micro-panels (KC x NR) of an NC block stream
 * past it: the paper's B_r resident / A_r streaming, with the names swapped.
 * So, with S the float size and a cache of W ways x N sets x L-byte lines:
 *
 *   KC (L1): the streaming B micro-panel gets C_B ways and the resident A
 *     micro-panel ceil(MR/NR C_B) ways, one way left for C and the rest:
 *     C_B = floor((W1 - 1) / (1 + MR/NR)),  KC = C_B N1 L1 / (NR S).
 *   NC (L2): the packed B block (KC x NC) in L2 beside one A micro-panel and
 *     a way for C: C_Bc = W2 - 1 - ceil(MR KC S / (N2 L2)),
 *     NC = C_Bc N2 L2 / (KC S).
 *   MC (L3, this core's share = size / cores sharing it, where cores = CPUs
 *     sharing L3 / CPUs sharing L1d): the packed A block (MC x KC) beside the
 *     B block: C_Ac = W3 - 1 - ceil(KC NC S / (N3 L3)),  MC = C_Ac N3 L3 / (KC S);
 *     at least L2 / 2 / (KC S) (no L3, or a per-core share below the B block).
 *
 * Loop order. The model is stated for BLIS's jc -> pc -> ic; in our names
 * (A's MC block is the paper's L3 block) that is ic -> pc -> jc, while gemm.c
 * runs pc -> ic -> jc. Both pack every A block once per (ic, pc) and every B
 * block once per (ic, pc, jc), so the traffic the model counts is the same;
 * they differ only in the order C's MC-row blocks see the KC steps. With
 * M <= MC (every training shape of the suite) the two are the same loop. We
 * adapt the model (the roles above) and keep gemm.c's order: measured paired
 * in one process (1 thread, best of 9, Xeon AVX-512 host) on the shapes with
 * two M blocks, 2048^3 and 3072x1024x1024, the two orders were within noise
 * (AVX-512 175.5 vs 176.2 and 179.3 vs 179.0 GFLOP/s; AVX2 likewise).
 *
 * Where the model is used: every path but AVX-512 (the AVX2 6x16, the
 * portable and the NEON kernels). The AVX-512 (8x48) path keeps its
 * hand-tuned 384/1536/672 because the model does not agree: on the 48 KiB
 * 12-way L1 it gives KC 192 (a 48-wide streaming panel beside the resident
 * one), NC 2352, MC 4096, and that measured 1-11% slower (1 thread, best of 5:
 * 1024^3 172 vs 175, 2048^3 155 vs 174, 128x784x1024 124 vs 128,
 * 256x1024x1024 114 vs 122 GFLOP/s). The 8x48 B micro-panel streams from L2
 * fast enough (3 lines per 24 FMAs) that it need not fit in L1; a longer KC
 * amortises the 8x48 C tile's loads and stores instead. On an AMD EPYC Zen 4
 * VM (L1d 32 KiB 8-way, L2 1 MiB 8-way; AVX-512 double-pumped, the same peak
 * as AVX2) the model gives 128/4096/1536 and again measured slower than the
 * hand-tuned blocks (1 thread, medians of 5 interleaved rounds of best-of-3:
 * 1024^3 103.2 vs 106.1, 2048^3 104.1 vs 106.3, 128x1024x784 NT 96.7 vs 101.1,
 * 256x1024x1024 102.0 vs 102.2 GFLOP/s; 256/480, 320/528 and 192/960 in
 * between). There the AVX2 path's model blocks (320/4092/608) were within
 * 1.5% of 256/1536/1024, 256/4092/480 and 384/4092/480 on the same shapes
 * (15 rounds): a 1 MiB L2 leaves the choice flat.
 */
#include "gemm_kernels.h"

#include <string.h>

static int clampi(long v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : (int)v;
}

static long ceil_div(long a, long b)
{
    return (a + b - 1) / b;
}

/* One way of a cache in bytes (N sets x L lines), guarding unknown fields. */
static long way_bytes(const fnn_cache *c)
{
    int w = c->ways > 0 ? c->ways : 8;
    return c->size > 0 ? c->size / w : 0;
}

void fnn_gemm_block_model(const fnn_caches *cs, int mr, int nr, int elem,
                          int *kc_out, int *mc_out, int *nc_out)
{
    /* L1: KC */
    int w1 = cs->l1d.ways > 1 ? cs->l1d.ways : 8;
    long way1 = way_bytes(&cs->l1d) > 0 ? way_bytes(&cs->l1d) : 4096;
    long cb = (long)((w1 - 1) / (1.0 + (double)mr / nr));
    if (cb < 1)
        cb = 1;
    int kc = clampi(cb * way1 / ((long)nr * elem) / 8 * 8, 64, 1024);

    /* L2: NC */
    int w2 = cs->l2.ways > 2 ? cs->l2.ways : 8;
    long way2 = way_bytes(&cs->l2) > 0 ? way_bytes(&cs->l2) : (64L << 10);
    long cbc = w2 - 1 - ceil_div((long)mr * kc * elem, way2);
    if (cbc < 1)
        cbc = 1;
    int nc = clampi(cbc * way2 / ((long)kc * elem) / nr * nr, 4 * nr, 8192 / nr * nr);

    /* L3 (this core's share): MC */
    long mc;
    if (cs->l3.size > 0) {
        int per_core = cs->l1d.shared > 0 ? cs->l1d.shared : 1;
        long cores = cs->l3.shared > per_core ? cs->l3.shared / per_core : 1;
        int w3 = cs->l3.ways > 2 ? cs->l3.ways : 16;
        long way3 = cs->l3.size / cores / w3;
        long cac = w3 - 1 - ceil_div((long)kc * nc * elem, way3 > 0 ? way3 : 1);
        mc = cac > 0 ? cac * way3 / ((long)kc * elem) : 0;
    } else {
        mc = 0;
    }
    /* No L3, or a share smaller than the B block (a victim L3 of ~1 MiB per
     * core: Skylake-X, Neoverse N1): the model leaves A almost nothing. Take
     * at least an A block of half the L2's size, as if A and B shared it. */
    long floor_mc = cs->l2.size / 2 / ((long)kc * elem);
    if (mc < floor_mc)
        mc = floor_mc;
    /* Bounds: at least a few micro-panels; at most 4096 rows (an A block of
     * 4096 x KC is 6 MiB at KC 384: past that a bigger L3 share buys nothing
     * and a VM's "L3 shared by 2 vCPUs" would ask for hundreds of MiB). */
    *mc_out = clampi(mc / mr * mr, 8 * mr, 4096 / mr * mr);
    *kc_out = kc;
    *nc_out = nc;
}

/* ------------------------------------------------------ choice per path -- */

static int g_override[3];            /* kc, mc, nc; 0 = none */

int fnn_gemm_set_blocking(int kc, int mc, int nc)
{
    if (kc == 0 && mc == 0 && nc == 0) {
        g_override[0] = g_override[1] = g_override[2] = 0;
        return 0;
    }
    if (kc < 8 || kc > 4096 || mc < 1 || mc > 16384 || nc < 1 || nc > 16384)
        return -1;
    g_override[0] = kc; g_override[1] = mc; g_override[2] = nc;
    return 0;
}

static int round_up(int v, int unit)
{
    return (v + unit - 1) / unit * unit;
}

fnn_gemm_blocks fnn_gemm_blocks_for(const fnn_gemm_arch *ar)
{
    fnn_gemm_blocks b;
    if (g_override[0]) {
        /* The driver's blocks are multiples of the register tile. */
        b.kc = g_override[0];
        b.mc = round_up(g_override[1], ar->mr);
        b.nc = round_up(g_override[2], ar->nr);
        b.source = "FASTNN_GEMM_BLOCKING";
        return b;
    }
#ifdef FNN_HAVE_X86_KERNELS
    if (ar == &fnn_gemm_avx512) {
        b.kc = ar->kc; b.mc = ar->mc; b.nc = ar->nc;
        b.source = "tuned";
        return b;
    }
#endif
    fnn_gemm_block_model(fnn_caches_detected(), ar->mr, ar->nr, (int)sizeof(float),
                         &b.kc, &b.mc, &b.nc);
    b.source = "model";
    return b;
}

/* The model keeps one L2 way for C. A C that streams from memory reaches
 * L2 as the kernel's prefetches -- the tiles of the current row panel and
 * the first of the next, 2 MR rows -- and rows ldc apart share an L2 set
 * every way / gcd(ldc bytes, way) rows (fnn_set_period): at ldc = 4096 floats (16 KiB) and a
 * 64 KiB way every fourth row, so the 12 rows put 3 lines in each of their
 * sets, beside a B block that left them one. Those ways come off the B
 * block, which keeps at least two thirds of its ways. Zen 2 (L2 512 KiB,
 * 8 ways of 64 KiB; model 320/4092/304), 1 thread / 2 threads, paired in
 * one build against NC 304, two sets of rounds:
 *  - ldc 4096 (3 a set): NC 192, NN 4096^3 0.994-0.995x / 0.980-0.999x
 *    the time, TN 0.994x (1 thread), NT 0.998x (2 threads);
 *  - ldc 2048 (2 a set): NC 256, NN 2048^3 0.997-1.003x / 0.994-0.995x;
 *  - ldc 8192 and 16384 (6 and 12 a set): NC 192, the floor: NN
 *    1024x8192x1024 1.000x / 1.002x, 512x16384x512 0.999x / 0.996x;
 *    without it (NC 64) 1.03x / 1.06x and 1.07x (1 thread): a B block
 *    that narrow costs more than C's misses;
 *  - ldc 3072 or 1024 (1 a set): unchanged. */
int fnn_gemm_nc_far(const fnn_gemm_blocks *b, const fnn_caches *cs, int mr, int nr, int kc,
                    ptrdiff_t ldc, int elem)
{
    const long way2 = way_bytes(&cs->l2);
    if (strcmp(b->source, "model") != 0 || way2 <= 0 || kc <= 0)
        return b->nc;
    const long per_set = ceil_div(2L * mr, fnn_set_period((long)ldc * elem, way2));
    if (per_set <= 1)
        return b->nc;
    const int w2 = cs->l2.ways > 2 ? cs->l2.ways : 8;
    const long a_ways = ceil_div((long)mr * kc * elem, way2);
    const long keep = ceil_div(2 * (w2 - 1 - a_ways), 3);
    long cbc = w2 - per_set - a_ways;
    if (cbc < keep)
        cbc = keep;
    if (cbc < 1)
        cbc = 1;
    return clampi(cbc * way2 / ((long)kc * elem) / nr * nr, 4 * nr, b->nc);
}
