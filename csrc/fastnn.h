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

/* -------------------------------------------------------------- optim.c -- */

/* Regularization folded into every fused update, per element, in this order:
 *   g = maximize ? -g : g;  g += weight_decay * p;  g += l1 * sign(p);
 *   p *= decay_mult;  ...update...;  p = sign(p) * max(|p| - prox, 0).
 * The neutral values {0, 0, 1, 0, 0} turn every option off. */
typedef struct {
    float weight_decay;   /* coupled L2 added to the gradient */
    float l1;             /* L1 subgradient l1 * sign(p) added to the gradient */
    float decay_mult;     /* decoupled decay factor 1 - lr * wd (AdamW), or 1 */
    float prox;           /* soft-threshold after the update (lr * l1), or 0 */
    int maximize;         /* ascend: negate the gradient first */
} fnn_optim_reg;

/* The update of one param group: `count` parameter arrays, array k with
 * n[k] elements; p[k], g[k] and each state array [k] are float32 (n[k]),
 * all distinct, updated in place, one parallel region for the whole group.
 * Hyper-parameters come as double (complements such as 1 - beta are formed
 * in double, as torch does) and are rounded to float for the float32
 * arithmetic; per-array scalars come as arrays of `count`.
 * SGD: buf[k] (n[k]) momentum buffers, or buf == NULL when momentum == 0;
 * init_buf[k]: first step of array k, buf = g (NULL without momentum).
 * nesterov: p -= lr * (g + momentum * buf). */
void fnn_sgd_step(int count, float *const *p, const float *const *g, float *const *buf,
                  const int *init_buf, const ptrdiff_t *n, double lr, double momentum,
                  double dampening, int nesterov, fnn_optim_reg reg);
/* Adagrad: sum[k] (n[k]) += g*g; p -= clr[k] * g / (sqrt(sum) + eps). */
void fnn_adagrad_step(int count, float *const *p, const float *const *g, float *const *sum,
                      const ptrdiff_t *n, const double *clr, double eps, fnn_optim_reg reg);
/* RMSprop: square_avg[k] (n[k]); grad_avg[k] (n[k]), or grad_avg == NULL
 * (not centered); buf[k] (n[k]), or buf == NULL (momentum == 0). */
void fnn_rmsprop_step(int count, float *const *p, const float *const *g,
                      float *const *square_avg, float *const *grad_avg, float *const *buf,
                      const ptrdiff_t *n, double lr, double alpha, double eps,
                      double momentum, fnn_optim_reg reg);
/* Adadelta: square_avg[k], acc_delta[k] (n[k]). */
void fnn_adadelta_step(int count, float *const *p, const float *const *g,
                       float *const *square_avg, float *const *acc_delta,
                       const ptrdiff_t *n, double lr, double rho, double eps,
                       fnn_optim_reg reg);
/* Adam/AdamW: exp_avg[k], exp_avg_sq[k] (n[k]); max_exp_avg_sq[k] (n[k]),
 * or max_exp_avg_sq == NULL (amsgrad off). Per array k at its step t:
 * step_size[k] = lr / (1 - beta1^t), bc2_sqrt[k] = sqrt(1 - beta2^t);
 * p -= step_size * m / (sqrt(v) / bc2_sqrt + eps). */
void fnn_adam_step(int count, float *const *p, const float *const *g, float *const *exp_avg,
                   float *const *exp_avg_sq, float *const *max_exp_avg_sq, const ptrdiff_t *n,
                   const double *step_size, const double *bc2_sqrt, double beta1,
                   double beta2, double eps, fnn_optim_reg reg);
/* p (n) = sign(p) * max(|p| - t, 0). */
void fnn_soft_threshold(float *p, ptrdiff_t n, float t);
/* w (rows, cols): each row whose L2 norm (float64) exceeds max_norm is scaled
 * by max_norm / (norm + 1e-7), as torch.renorm. */
void fnn_max_norm_rows(float *w, ptrdiff_t rows, ptrdiff_t cols, float max_norm);
/* count arrays x[k] (n[k]) taken together: *out = sum of |x|^p in float64
 * (p > 0 finite), or max |x| for p = inf (NaN if any element is NaN). Each
 * array is summed over a fixed block partition of its own, then the arrays
 * in order: the same bits on any thread count. FNN_OK or FNN_ENOMEM. */
int fnn_grad_norm_pow(int count, const float *const *x, const ptrdiff_t *n, double p,
                      double *out);
/* x[k] (n[k]) *= c for k < count. */
void fnn_scale_inplace(int count, float *const *x, const ptrdiff_t *n, float c);
/* x[k] (n[k]) = min(max(x, lo), hi) for k < count; NaN stays NaN. */
void fnn_clamp_inplace(int count, float *const *x, const ptrdiff_t *n, float lo, float hi);

#endif
