/* fastnn.h -- every C kernel's prototype, with the shapes it works on.
 *
 * Plain C11, no Python.h. Arrays are float32, row-major; dimensions and row
 * strides are passed explicitly and a kernel never guesses. Shapes are checked
 * in Python/Cython before any kernel is called; a kernel returns an error code
 * only for what Python cannot know (FNN_ENOMEM on allocation failure).
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

#define FNN_OK 0
#define FNN_ENOMEM 1

/* ---------------------------------------------------------------- cpu.c -- */

/* Instruction-set paths, in increasing order of capability. */
enum { FNN_ISA_REF = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2 };

int fnn_cpu_best_isa(void);          /* best path this CPU and build support */
int fnn_get_isa(void);               /* path in use */
int fnn_set_isa(int isa);            /* returns 0, or -1 if unsupported here */
const char *fnn_isa_name(int isa);

void fnn_set_num_threads(int n);     /* n >= 1 */
int fnn_get_num_threads(void);
int fnn_have_openmp(void);

/* Threads a kernel uses for `work` units of work (e.g. flops or elements):
 * 1 below `threshold` per thread, never more than fnn_get_num_threads(). */
int fnn_threads_for(double work, double threshold);

/* Flush-to-zero / denormals-are-zero for the calling thread while a kernel
 * runs: fnn_ftz_enter returns the previous state for fnn_ftz_leave. */
unsigned fnn_ftz_enter(void);
void fnn_ftz_leave(unsigned saved);

/* 64-byte aligned allocation (NULL on failure). */
void *fnn_aligned_alloc(size_t bytes);
void fnn_aligned_free(void *p);

/* --------------------------------------------------------------- gemm.c -- */

/* Epilogue applied to C after the product (on the last K block only):
 *   C = alpha * op(A) op(B) + beta * C  [+ bias]  [then ReLU]
 * bias_mode: 0 none, 1 bias[j] per column (length N), 2 bias[i] per row (M). */
enum { FNN_BIAS_NONE = 0, FNN_BIAS_COL = 1, FNN_BIAS_ROW = 2 };

/* C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, then epilogue.
 * op(A) = A (M,K) with row stride lda, or A^T where A is (K,M) with stride lda.
 * op(B) = B (K,N) with row stride ldb, or B^T where B is (N,K) with stride ldb.
 * beta == 0 means C is not read (it may hold NaN). Result does not depend on
 * the thread count. Returns FNN_OK or FNN_ENOMEM. */
int fnn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
              const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
              float beta, float *C, ptrdiff_t ldc, const float *bias,
              int bias_mode, int relu);

/* The obvious triple loop with float64 accumulation: the naive twin the fast
 * path is tested against. Same arguments and semantics as fnn_sgemm. */
void fnn_sgemm_naive(int trans_a, int trans_b, int M, int N, int K,
                     float alpha, const float *A, ptrdiff_t lda,
                     const float *B, ptrdiff_t ldb, float beta, float *C,
                     ptrdiff_t ldc, const float *bias, int bias_mode,
                     int relu);

/* Blocking of the ISA in use (for info() and benchmarks). */
void fnn_gemm_blocking(int *mr, int *nr, int *kc, int *mc, int *nc);

/* -------------------------------------------------------------- bench.c -- */

/* Machine microbenchmarks (python -m fastnn bench). */

/* Seconds (wall) for `nthreads` OpenMP threads each running `iters` rounds of
 * independent multiply-add chains on the `isa` path; every round does
 * fnn_bench_peak_flops_per_iter(isa) flops per thread. *threads_used gets the
 * thread count the runtime gave. Returns < 0 if the ISA is not available. */
double fnn_bench_peak(int isa, int nthreads, long iters, int *threads_used);
double fnn_bench_peak_flops_per_iter(int isa);

/* Best of `reps` seconds for one STREAM-triad pass a[i] = b[i] + s*c[i] over
 * three arrays of n floats on `nthreads` threads (3*n*4 bytes per pass).
 * Returns -2 if the arrays cannot be allocated, -1 on bad arguments. */
double fnn_bench_triad(size_t n, int nthreads, int reps);

#endif
