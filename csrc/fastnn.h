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

/* ---------------------------------------------------------------- act.c -- */

/* Activations. Elementwise kernels see n contiguous floats (any tensor shape,
 * flattened). Forward: y = f(x); y may be x itself (in place). Backward: dx =
 * dy * f'(.) from what forward cached (named per kernel); dx may be dy itself
 * but must not overlap the cached arrays. NaN in x gives NaN in y; finite x
 * never gives inf or NaN. Results are bitwise the same on any thread count and
 * ISA path. Softmax kernels work on rows of a row-major (rows, cols) array. */
void fnn_relu_forward(ptrdiff_t n, const float *x /* (n) */, float *y /* (n) */);
void fnn_relu_backward(ptrdiff_t n, const float *y /* (n) forward output */,
                       const float *dy /* (n) */, float *dx /* (n) */);
void fnn_leaky_relu_forward(ptrdiff_t n, float negative_slope, const float *x /* (n) */,
                            float *y /* (n) */);
/* ref: forward input x, or forward output y when negative_slope >= 0. */
void fnn_leaky_relu_backward(ptrdiff_t n, float negative_slope, const float *ref /* (n) */,
                             const float *dy /* (n) */, float *dx /* (n) */);
void fnn_sigmoid_forward(ptrdiff_t n, const float *x /* (n) */, float *y /* (n) */);
void fnn_sigmoid_backward(ptrdiff_t n, const float *y /* (n) forward output */,
                          const float *dy /* (n) */, float *dx /* (n) */);
void fnn_tanh_forward(ptrdiff_t n, const float *x /* (n) */, float *y /* (n) */);
void fnn_tanh_backward(ptrdiff_t n, const float *y /* (n) forward output */,
                       const float *dy /* (n) */, float *dx /* (n) */);
/* y = log(1 + e^(beta x)) / beta, or x where beta x > threshold; beta != 0. */
void fnn_softplus_forward(ptrdiff_t n, float beta, float threshold, const float *x /* (n) */,
                          float *y /* (n) */);
void fnn_softplus_backward(ptrdiff_t n, float beta, float threshold,
                           const float *x /* (n) forward input */, const float *dy /* (n) */,
                           float *dx /* (n) */);
/* y = clamp(x, min_val, max_val), min_val < max_val. ref: x or y. */
void fnn_hardtanh_forward(ptrdiff_t n, float min_val, float max_val, const float *x /* (n) */,
                          float *y /* (n) */);
void fnn_hardtanh_backward(ptrdiff_t n, float min_val, float max_val,
                           const float *ref /* (n) */, const float *dy /* (n) */,
                           float *dx /* (n) */);
/* y = x > 0 ? x : alpha (e^x - 1). Backward: ref is x, or y when alpha >= 0. */
void fnn_elu_forward(ptrdiff_t n, float alpha, const float *x /* (n) */, float *y /* (n) */);
void fnn_elu_backward(ptrdiff_t n, float alpha, const float *ref /* (n) */,
                      const float *y /* (n) forward output */, const float *dy /* (n) */,
                      float *dx /* (n) */);
/* y = x Phi(x) (exact, erf-based), or with approximate_tanh
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
void fnn_gelu_forward(ptrdiff_t n, int approximate_tanh, const float *x /* (n) */,
                      float *y /* (n) */);
void fnn_gelu_backward(ptrdiff_t n, int approximate_tanh, const float *x /* (n) forward input */,
                       const float *dy /* (n) */, float *dx /* (n) */);
/* Row-wise over the last axis, max-subtracted, row sums in float64. */
void fnn_softmax_forward(ptrdiff_t rows, ptrdiff_t cols, const float *x /* (rows,cols) */,
                         float *y /* (rows,cols) */);
void fnn_softmax_backward(ptrdiff_t rows, ptrdiff_t cols, const float *y /* (rows,cols) output */,
                          const float *dy /* (rows,cols) */, float *dx /* (rows,cols) */);
void fnn_log_softmax_forward(ptrdiff_t rows, ptrdiff_t cols, const float *x /* (rows,cols) */,
                             float *y /* (rows,cols) */);
void fnn_log_softmax_backward(ptrdiff_t rows, ptrdiff_t cols,
                              const float *y /* (rows,cols) output */,
                              const float *dy /* (rows,cols) */, float *dx /* (rows,cols) */);
/* y[g] = max of x[g*pieces .. g*pieces+pieces-1]; idx[g] = its offset in the
 * group (first of equals; the first NaN wins). Backward routes dy[g] there. */
void fnn_maxout_forward(ptrdiff_t groups, ptrdiff_t pieces, const float *x /* (groups*pieces) */,
                        float *y /* (groups) */, int32_t *idx /* (groups) */);
void fnn_maxout_backward(ptrdiff_t groups, ptrdiff_t pieces, const int32_t *idx /* (groups) */,
                         const float *dy /* (groups) */, float *dx /* (groups*pieces) */);
/* For tests: y = one of act.c's float32 functions of x: 0 e^x (x <= 0),
 * 1 e^x - 1 (x <= 0), 2 log(1 + x) (0 <= x <= 1), 3 tanh, 4 Phi (normal CDF),
 * 5 phi (normal density), 6 sigmoid. */
void fnn_act_mathfn(int fn, ptrdiff_t n, const float *x /* (n) */, float *y /* (n) */);

#endif
