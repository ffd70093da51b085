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

/* Micro-kernel: acc (mr,nr) = sum_p a[p*MR + i] * b[p*ldb + j] for p < k,
 * then C[i*ldc + j] = epilogue(acc) for i < mr, j < nr.
 * a: packed MR-row panel (rows >= mr are never read); b: k rows, ldb floats
 * apart, of which the first round_up(nr, VL) floats are read (a packed panel
 * is zero-padded to that width; a full panel read in place has nr == NR). */
typedef void (*fnn_ukr_fn)(int k, const float *a, const float *b, ptrdiff_t ldb,
                           float *c, ptrdiff_t ldc, int mr, int nr,
                           const fnn_epi *ep);

/* Transposing pack: dst[p*ldd + i] = src[i*lds + p] for i < rows, p < k. */
typedef void (*fnn_pack_t_fn)(int rows, int k, const float *src, ptrdiff_t lds,
                              float *dst, int ldd);

typedef struct {
    int mr, nr;          /* register tile */
    int vl;              /* vector length: B panels are read in VL-float steps */
    int kc, mc, nc;      /* cache blocks: K (L1 panels), M (L3 block), N (L2 block) */
    fnn_ukr_fn kernel;
    fnn_pack_t_fn pack_t;
} fnn_gemm_arch;

/* Scalar epilogue over an (mr,nr) tile held in acc with row stride ldt; the
 * edge path of every kernel, so all ISAs round edges the same way. */
void fnn_gemm_store_tile(const float *acc, int ldt, float *c, ptrdiff_t ldc,
                         int mr, int nr, const fnn_epi *ep);

void fnn_pack_t_ref(int rows, int k, const float *src, ptrdiff_t lds,
                    float *dst, int ldd);

extern const fnn_gemm_arch fnn_gemm_ref;
#if defined(__x86_64__) || defined(_M_X64)
#define FNN_HAVE_X86_KERNELS 1
extern const fnn_gemm_arch fnn_gemm_avx2;
void fnn_pack_t_avx2(int rows, int k, const float *src, ptrdiff_t lds,
                     float *dst, int ldd);
extern const fnn_gemm_arch fnn_gemm_avx512;
#endif

#endif
