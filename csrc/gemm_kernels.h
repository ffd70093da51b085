/* gemm_kernels.h -- the contract between the GEMM driver (gemm.c) and the
 * per-ISA micro-kernels (gemm_ref.c, gemm_avx2.c, gemm_avx512.c). Private. */
#ifndef FASTNN_GEMM_KERNELS_H
#define FASTNN_GEMM_KERNELS_H

#include "fastnn.h"

/* What to do with the accumulated tile; bias is already offset to the tile
 * (bias[j] for FNN_BIAS_COL, bias[i] for FNN_BIAS_ROW). */
typedef struct {
    float alpha, beta;       /* beta == 0: C is not read */
    const float *bias;
    int bias_mode;
    int relu;
    int rows;                /* convolution kernels: store C[i ldc + j] as it is
                              * (alpha 1, beta 0, no bias, no ReLU; Winograd) */
} fnn_epi;

/* Only alpha to apply: C not read, no bias, no ReLU (the backward products).
 * The kernels test this once per tile, not per row and vector: at K = 10,
 * without the general epilogue's per-row tests, those products took
 * 0.78-0.90x the time on the AVX2 path (Zen 4). */
static inline int fnn_epi_plain(const fnn_epi *ep)
{
    return ep->beta == 0.0f && ep->bias_mode == FNN_BIAS_NONE && !ep->relu;
}

/* The epilogue of one K block where K is summed in blocks, each block's sum
 * stored through the epilogue before the next: beta on the first block (C
 * then holds it), 1 on the later ones; bias and ReLU on the last only. */
static inline fnn_epi fnn_epi_block(const fnn_epi *ep, int first, int last)
{
    fnn_epi e = *ep;
    if (!first)
        e.beta = 1.0f;
    if (!last)
        e.bias_mode = FNN_BIAS_NONE, e.relu = 0;
    return e;
}

/* Micro-kernel: acc (mr,nr) = sum_p a[p*MR + i] * b[p*ldb + j] for p < k,
 * then C[i*ldc + j] = epilogue(acc) for i < mr, j < nr.
 * a: packed MR-row panel (rows >= mr are never read); b: k rows, ldb floats
 * apart, of which the first round_up(nr, VL) floats are read (a packed panel
 * is zero-padded to that width; a full panel read in place has nr == NR). */
typedef void (*fnn_ukr_fn)(int k, const float *a, const float *b, ptrdiff_t ldb,
                           float *c, ptrdiff_t ldc, int mr, int nr,
                           const fnn_epi *ep);

/* A row of nt full-width mr x NR tiles (mr <= MR) in one call, A(i, p) at
 * a[i*rsa + p*csa] (a packed panel: rsa 1, csa MR): tile t is kernel_sa(k,
 * a, rsa, csa, b + t*bstep, ldb, c + t*NR, ldc, mr, NR, ep) with a FNN_BIAS_COL bias
 * offset by t*NR -- the same sums, so the same bits -- without a call, a
 * dispatch on the tile's shape and the driver's loop per tile. Before tile
 * t it prefetches tile t+1's C (fnn_prefetch_tile) and, with next_a, share
 * t of nt of next_a's bytes (fnn_prefetch_share: the next row panel of A). */
typedef void (*fnn_ukr_row_fn)(int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                               const float *b, ptrdiff_t ldb, ptrdiff_t bstep, int nt,
                               int mr, float *c, ptrdiff_t ldc, const fnn_epi *ep,
                               const float *next_a, size_t next_bytes);

/* The same with A read where it lies: op(A)(i, p) at a[i*rsa + p*csa] for
 * i < mr (never beyond); same FMAs in the same order as the packed kernel. */
typedef void (*fnn_ukr_sa_fn)(int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                              const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                              int mr, int nr, const fnn_epi *ep);

/* The first row panel of a B block, op(B) row-major: kernel_row's nt full
 * MR x NR tiles over a packed A panel (a[i + p*MR]) with B read where it
 * lies (b[p*ldb + j], tile t at b + t*NR) and each of its vectors stored as
 * it is used into the packed panels (bp + t*k*NR, as pack_b_block lays them
 * out), for the block's other row panels. Same FMAs, so the same bits. */
#define FNN_ROW_PACK_AHEAD 64  /* rows of B it reads ahead (gemm.c: crowded) */
typedef void (*fnn_ukr_row_pack_fn)(int k, const float *a, const float *b, ptrdiff_t ldb,
                                    int nt, float *bp, float *c, ptrdiff_t ldc,
                                    const fnn_epi *ep, const float *next_a,
                                    size_t next_bytes);

/* pack_b_block's full panels of an untransposed op(B): rows [0, kc) x
 * columns [0, full) (full a multiple of the arch's NR) of b (row stride
 * ldb) to NR-column panels, panel j / NR at dst + j*kc, dst[p*NR + i]. */
typedef void (*fnn_pack_b_fn)(int kc, int full, const float *b, ptrdiff_t ldb, float *dst);

/* Transposing pack: dst[p*ldd + i] = src[i*lds + p] for i < rows, p < k. */
typedef void (*fnn_pack_t_fn)(int rows, int k, const float *src, ptrdiff_t lds,
                              float *dst, int ldd);

/* Small-N tiles (N <= 16: a 10-class output layer; gemm.c's gemm_small
 * cuts C into them):
 *  small_tm:  rows [0, mr <= small_rows) x columns [0, nj <= small_cols) with
 *             op(A)(i,p) = a[p*lda + i] (A stored transposed), vectors along
 *             M; op(B)(p,j) = b[p*rsb + j*csb]; K in blocks of kc, as the
 *             general path sums it: each element one FMA chain over a block's
 *             p, each block through fnn_epi_block's epilogue in turn -- the
 *             general kernel's bits. (The SIMD kernels keep the running
 *             result in registers or on the stack and store C once: storing
 *             it transposed after every block cost 8-10% of TN/TT
 *             64 x 10 x 1024.)
 *  small_dot: rows [0, ra <= small_dot_rows) x columns [0, nj <= small_cols)
 *             (or ra <= small_dot_far_rows, nj <= small_dot_far_cols)
 *             with op(A)(i,p) = a[i*lda + p] and op(B)(p,j) = b[j*ldb + p]:
 *             dot products with vectors along K, each summed across its
 *             lanes by a fixed tree at the end.
 * Both then store epilogue(acc) to C[i*ldc + j]. */
typedef void (*fnn_small_fn)(int mr, int nj, int k, int kc, const float *a, ptrdiff_t lda,
                             const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c,
                             ptrdiff_t ldc, const fnn_epi *ep);
typedef void (*fnn_small_dot_fn)(int ra, int nj, int k, const float *a, ptrdiff_t lda,
                                 const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                                 const fnn_epi *ep);

/* Small K (gemm.c's gemm_small_k: K <= FNN_SMALL_K, the output layer's
 * dX = dY W; a transposed B is copied row-major first): all of C (m x n),
 * op(A)(i,p) = a[i*rsa + p*csa] and op(B)(p,j) = b[p*ldb + j] read in
 * place, then epilogue(acc) to C[i*ldc + j] (ep->bias: column 0's, or row
 * 0's for FNN_BIAS_ROW). Each element one chain over p from zero, as the
 * path's general kernel (FMAs; a multiply and an add on the portable one):
 * its bits. */
#define FNN_SMALL_K 16
typedef void (*fnn_small_k_fn)(int m, int n, int k, const float *a, ptrdiff_t rsa,
                               ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c,
                               ptrdiff_t ldc, const fnn_epi *ep);

/* Convolution micro-kernel (conv.c's direct path), a conv_mr x conv_nr
 * tile of the arch: for output pixels i < conv_mr and channels
 * j < nr <= conv_nr, acc(i, j) = sum_p rows[i][koff[p]] * b[p conv_nr + j]
 * (the pixel's taps where they lie in a padded image; every rows[i] valid,
 * the caller repeating one past mr), one FMA chain over p; then
 * C[j ldc + i] = epilogue(acc(i, j)) for i < mr (bias per channel j:
 * FNN_BIAS_ROW); with ep->rows, C[i ldc + j] = acc(i, j), j < nr. */
#define FNN_CONV_MR_MAX 8
typedef void (*fnn_conv_ukr_fn)(int k, const float *const *rows, const int *koff,
                                const float *b, float *c, ptrdiff_t ldc, int mr, int nr,
                                const fnn_epi *ep);

typedef struct {
    int mr, nr;          /* register tile */
    int vl;              /* vector length: B panels are read in VL-float steps */
    /* Hand-tuned cache blocks: K (L1 panels), M (L3 block), N (L2 block);
     * used where gemm_blocking.c's model is not trusted (see there). */
    int kc, mc, nc;
    fnn_ukr_fn kernel;
    fnn_pack_t_fn pack_t;
    fnn_ukr_sa_fn kernel_sa;  /* NULL: A is always packed */
    fnn_small_fn small_tm;    /* NULL: small N takes the general path */
    fnn_small_dot_fn small_dot;
    int small_rows, small_cols, small_dot_rows;
    fnn_conv_ukr_fn conv;     /* NULL: convolutions take im2col + GEMM */
    int conv_mr, conv_nr;
    /* small_dot's tile when op(B) is larger than L1 (0: small_dot_rows x
     * small_cols always): more rows of A and fewer columns of B per tile,
     * so that a column chunk of op(B) comes from L1 rather than L2 */
    int small_dot_far_rows, small_dot_far_cols;
    fnn_small_k_fn small_k;   /* NULL: small K takes the general path */
    int small_k_rows;         /* its row tile: threads split M in these */
    int small_k_copy;         /* 1: copy an op(B) whose rows crowd L1 first */
    int prefetch;             /* 1: gemm.c prefetches the next tile's C lines and
                               * the next A micro-panel (measured on AVX2 only) */
    int share_a;              /* 1: a column split packs op(A) once for all
                               * threads (gemm.c, SHARE_A_COLS; AVX2 only) */
    int swap_nt;              /* > 0: C = A B^T of a batch of up to this many
                               * rows is computed as C^T = B A^T with B read
                               * in place (gemm.c, nt_swap_pays; AVX2 192,
                               * AVX-512 256); 0: never */
    fnn_ukr_row_fn kernel_row; /* NULL: a kernel call per tile (AVX2 only) */
    fnn_ukr_row_pack_fn kernel_row_pack; /* NULL: op(B) packed before the block's
                                          * tiles (AVX2 only) */
    fnn_pack_b_fn pack_b;     /* NULL: gemm.c's row copies (AVX2 only) */
} fnn_gemm_arch;

/* Rows `stride` bytes apart fall in the same set of a cache again every
 * this many rows, `span` the bytes one of its ways covers (sets x line):
 * span / gcd(stride mod span, span); 1 where stride is a multiple of span. */
static inline long fnn_set_period(long stride, long span)
{
    long a = stride % span, b = span;
    while (a) {
        long t = b % a;
        b = a;
        a = t;
    }
    return span / b;
}

/* The lines of a rows x cols tile of C, for the kernel call after this one:
 * its first and last float of each row (one line, or the two it straddles).
 * Issued as the call before it starts, they have its whole K block to
 * arrive. Where the tile's C comes from L2/L3 (every K block after the first
 * reads and writes back all of C) its load stalled the kernel's update:
 * 1024^3 and 2048^3 ran 0.97x the time with it, the training shapes
 * 0.99-1.00x (1 thread, paired, Zen 3, AVX2 path; prefetching the kernel's
 * own tile during its first k steps instead did not gain; on a Zen 2, with
 * it off, 0.993-0.997x, and as prefetchw 0.999-1.007x: no gain either way
 * there). Set per arch (prefetch): measured on AVX2 only. gemm.c issues it
 * before a kernel call, a kernel_row before each of its tiles. */
static inline void fnn_prefetch_tile(const float *c, ptrdiff_t ldc, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        __builtin_prefetch(c + r * ldc, 1, 3);
        __builtin_prefetch(c + r * ldc + cols - 1, 1, 3);
    }
}

/* Share t of n of the lines of [p, p + bytes) into L2, for the next row
 * panel of A: spread over the calls of this one, they have its whole pass
 * over the B block to arrive. Without it the first tile of each panel read
 * A from L3 as it went (the A block, MC x KC, is L3's; 2.4 MiB at 2048^3):
 * 2048^3 ran 0.98x the time with it, smaller M unchanged (1 thread, paired,
 * Zen 3, AVX2). */
static inline void fnn_prefetch_share(const float *p, size_t bytes, int t, int n)
{
    const char *b = (const char *)p;
    const size_t lines = (bytes + 63) / 64;
    for (size_t l = lines * t / n; l < lines * (t + 1) / n; l++)
        __builtin_prefetch(b + l * 64, 0, 2);
}

/* The kernels of the path in use (fastnn.set_isa). */
const fnn_gemm_arch *fnn_gemm_arch_in_use(void);

/* Scalar epilogue over an (mr,nr) tile held in acc with row stride ldt; the
 * edge path of every kernel, so all ISAs round edges the same way. */
void fnn_gemm_store_tile(const float *acc, int ldt, float *c, ptrdiff_t ldc,
                         int mr, int nr, const fnn_epi *ep);

void fnn_pack_t_ref(int rows, int k, const float *src, ptrdiff_t lds,
                    float *dst, int ldd);

/* The portable small_dot (gemm_ref.c), for the paths without their own:
 * tiles of FNN_SMALL_DOT_ROWS x FNN_SMALL_COLS. */
#define FNN_SMALL_DOT_ROWS 2
#define FNN_SMALL_COLS 12
void fnn_small_dot_ref(int ra, int nj, int k, const float *a, ptrdiff_t lda, const float *b,
                       ptrdiff_t ldb, float *c, ptrdiff_t ldc, const fnn_epi *ep);

/* The blocks the driver uses for `ar` (gemm_blocking.c): an override from
 * fnn_gemm_set_blocking, else the model on the detected caches, else the
 * hand-tuned values (see gemm_blocking.c for which applies where). */
typedef struct { int kc, mc, nc; const char *source; } fnn_gemm_blocks;
fnn_gemm_blocks fnn_gemm_blocks_for(const fnn_gemm_arch *ar);
const char *fnn_gemm_blocking_source(void);     /* of the path in use */

/* ------------------------------------------ caches (cpu.c, for the model) */
typedef struct {
    long size;           /* bytes; 0 = level absent or unknown */
    int ways, line, sets;
    int shared;          /* logical CPUs sharing it (cpuid; sysfs as fallback) */
} fnn_cache;
enum { FNN_CACHE_DEFAULT = 0, FNN_CACHE_CPUID = 1, FNN_CACHE_SYSFS = 2 };
typedef struct { fnn_cache l1d, l2, l3; int source; } fnn_caches;

int fnn_cache_cpuid(fnn_caches *cs);                    /* 1 if cpuid told */
int fnn_cache_sysfs(fnn_caches *cs, const char *root);  /* NULL: cpu0's */
void fnn_cache_defaults(fnn_caches *cs);
const fnn_caches *fnn_caches_detected(void);  /* cpuid, sysfs, defaults */

/* The analytical model (pure): blocks for an MR x NR kernel of `elem`-byte
 * floats on caches `cs` (l3.size 0: no L3). Returns kc, mc, nc. */
void fnn_gemm_block_model(const fnn_caches *cs, int mr, int nr, int elem,
                          int *kc, int *mc, int *nc);
/* NC for a C whose rows, ldc floats apart, stream from memory (gemm.c's
 * c_far), at K block kc: the model's NC with as many L2 ways left to C as
 * 2 MR of its rows put lines in one L2 set. b's own NC where the blocks are
 * not the model's (source "tuned", or an override). */
int fnn_gemm_nc_far(const fnn_gemm_blocks *b, const fnn_caches *cs, int mr, int nr, int kc,
                    ptrdiff_t ldc, int elem);
/* Override for every path (FASTNN_GEMM_BLOCKING); all zero restores the
 * default. Returns 0, or -1 if a value is out of range (nothing changed). */
int fnn_gemm_set_blocking(int kc, int mc, int nc);

extern const fnn_gemm_arch fnn_gemm_ref;
#if defined(__x86_64__) || defined(_M_X64)
#define FNN_HAVE_X86_KERNELS 1
extern const fnn_gemm_arch fnn_gemm_avx2;
void fnn_pack_t_avx2(int rows, int k, const float *src, ptrdiff_t lds,
                     float *dst, int ldd);
extern const fnn_gemm_arch fnn_gemm_avx512;
#endif
#if defined(__aarch64__)
#define FNN_HAVE_NEON_KERNEL 1
extern const fnn_gemm_arch fnn_gemm_neon;
#endif

/* "avx512 8x48", "avx2 6x16", "neon 8x12" or "ref 4x8": the kernel in use. */
const char *fnn_gemm_kernel_name(void);

#endif
