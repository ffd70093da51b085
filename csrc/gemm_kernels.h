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
} fnn_epi;

/* Micro-kernel: acc (mr,NR) = sum_p a[p*MR + i] * b[p*ldb + j] for p < k,
 * then C[i*ldc + j] = epilogue(acc) for i < mr, j < nr.
 * a: packed MR-row panel (rows >= mr are never read); b: k rows of NR floats
 * each, ldb floats apart (a packed panel has ldb == NR), all NR read. */
typedef void (*fnn_ukr_fn)(int k, const float *a, const float *b, ptrdiff_t ldb,
                           float *c, ptrdiff_t ldc, int mr, int nr,
                           const fnn_epi *ep);

typedef struct {
    int mr, nr;          /* register tile */
    int kc, mc, nc;      /* cache blocks: K (L1 panels), M (L3 block), N (L2 block) */
    fnn_ukr_fn kernel;
} fnn_gemm_arch;

/* Scalar epilogue over an (mr,nr) tile held in acc with row stride ldt; the
 * edge path of every kernel, so all ISAs round edges the same way. */
void fnn_gemm_store_tile(const float *acc, int ldt, float *c, ptrdiff_t ldc,
                         int mr, int nr, const fnn_epi *ep);

extern const fnn_gemm_arch fnn_gemm_ref;
#if defined(__x86_64__) || defined(_M_X64)
#define FNN_HAVE_X86_KERNELS 1
extern const fnn_gemm_arch fnn_gemm_avx2;
extern const fnn_gemm_arch fnn_gemm_avx512;
#endif

#endif
