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
int fnn_tune_malloc(void);           /* glibc heap thresholds for per-step arrays; 1 if applied */

/* ------------------------------------------- parallel.c, workspace.c -- */

/* The runtime every kernel runs on (csrc/parallel.h, isa.h, fmath.h,
 * reduce.h, workspace.h hold its private parts). */
#define FNN_EINDEX 2   /* a class index outside [0, C) (loss kernels) */

/* Work per extra thread, in flops (default 2e6, measured: a call below twice
 * this runs on one thread). For measurement. */
double fnn_get_par_flops(void);
void fnn_set_par_flops(double flops);
/* How far apart the worker threads are: the median time, in ns, for a
 * spinning worker to see a job the caller published (a cache line's trip
 * between their cores: tens of ns within one L3, hundreds across L3s), over
 * the last jobs; 0 before enough multi-thread jobs have run. */
double fnn_pool_handoff_ns(void);
/* For tests and experiments: -1 (the default) lets kernels go by the
 * measured handoff; 0 or 1 makes them plan as if the threads were near
 * (one L3) or far (parallel.h: fnn_pool_far). */
void fnn_pool_set_far(int mode);
/* Frees the scratch arenas of the calling thread and of the pool workers. */
void fnn_ws_release(void);
/* Bytes held by all live threads' arenas; arena allocations since start. */
size_t fnn_ws_bytes(void);
size_t fnn_ws_allocs(void);

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

/* op(B) packed once for many products with the same B (an RNN's recurrent
 * weights over T steps): fnn_sgemm_pack_b writes op(B) (K,N) in the GEMM's
 * panel layout into `data` (fnn_sgemm_packed_floats(K, N) floats), then
 * fnn_sgemm_pb computes what fnn_sgemm would with that B -- the same bits --
 * without packing B again. The packing belongs to the ISA in use when it was
 * made (kept in the struct). */
typedef struct {
    int K, N, kc, nr, vl;
    int last_w;             /* width of the last panel (columns past N are zero) */
    ptrdiff_t row_floats;   /* floats of one row of op(B) over all panels */
    const void *arch;
    float *data;
} fnn_packed_b;
size_t fnn_sgemm_packed_floats(int K, int N);
/* The layout alone, for a caller that writes the panels itself (im2col
 * straight into them). Rows [pc, pc + kcb) of op(B), pc a multiple of kc
 * (kcb = min(kc, K - pc)), start at data + pc row_floats; inside them panel
 * q (columns [q nr, q nr + nr)) is kcb rows of its width (nr, or last_w for
 * the last one, its columns past N zero) at q nr kcb. */
void fnn_sgemm_packed_layout(int K, int N, float *data, fnn_packed_b *out);
void fnn_sgemm_pack_b(int trans_b, int K, int N, const float *B, ptrdiff_t ldb, float *data,
                      fnn_packed_b *out);
int fnn_sgemm_pb(int trans_a, int M, float alpha, const float *A, ptrdiff_t lda,
                 const fnn_packed_b *B, float beta, float *C, ptrdiff_t ldc,
                 const float *bias, int bias_mode, int relu);

/* op(A) packed once for several products with the same A (an LSTM's gate
 * gradients dG^T for both dW_ih = dG^T X and dW_hh = dG^T H_prev):
 * fnn_sgemm_pack_a (threaded) writes panels of mr rows, the last one padded
 * (its rows past M never read), each holding all K columns k-major --
 * element (i, p) at data[(i / mr) K mr + p mr + i % mr], which
 * fnn_sgemm_packed_a_floats(M, K) floats hold. mr is the kernel's
 * (fnn_sgemm_packed_a_layout fills it in), so the packing belongs to the ISA
 * in use when it was made. fnn_sgemm_pa computes what fnn_sgemm would with
 * that A -- the same bits -- without packing A again. */
typedef struct {
    int M, K, mr;
    const void *arch;
    float *data;
} fnn_packed_a;
size_t fnn_sgemm_packed_a_floats(int M, int K);
void fnn_sgemm_packed_a_layout(int M, int K, float *data, fnn_packed_a *out);
void fnn_sgemm_pack_a(int trans_a, int M, int K, const float *A, ptrdiff_t lda, float *data,
                      fnn_packed_a *out);
int fnn_sgemm_pa(const fnn_packed_a *A, int trans_b, int N, float alpha, const float *B,
                 ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc);

/* The obvious triple loop with float64 accumulation: the naive twin the fast
 * path is tested against. Same arguments and semantics as fnn_sgemm. */
void fnn_sgemm_naive(int trans_a, int trans_b, int M, int N, int K,
                     float alpha, const float *A, ptrdiff_t lda,
                     const float *B, ptrdiff_t ldb, float beta, float *C,
                     ptrdiff_t ldc, const float *bias, int bias_mode,
                     int relu);

/* out (cols) = [out +] the column sums of x (rows, cols; row stride ldx),
 * each in float64 over the rows in order (acc: added to out): the gradient
 * of a per-column bias. Same bits on any thread count. */
void fnn_sum_rows(ptrdiff_t rows, ptrdiff_t cols, const float *x, ptrdiff_t ldx, float *out,
                  int acc);

/* Blocking of the ISA in use (for info() and benchmarks). */
void fnn_gemm_blocking(int *mr, int *nr, int *kc, int *mc, int *nc);

/* --------------------------------------------------------------- data.c -- */

/* dst (B, row_bytes) = rows idx[0..B) of src (N, row_bytes), for any element
 * type: row i of src starts at (char *)src + i * src_stride (bytes); dst is
 * contiguous. Every idx[b] must lie in [0, N) (checked by the caller). */
void fnn_gather_rows(const void *src /* (N, row_bytes), row stride src_stride */,
                     ptrdiff_t src_stride, const int64_t *idx /* (B,) */,
                     ptrdiff_t B, size_t row_bytes, void *dst /* (B, row_bytes) */);

/* ---------------------------------------------------------------- rng.c -- */

/* Counter-based random numbers (Philox4x32-10). A 64-bit seed keys a stream;
 * stream element j is word j % 4 of Philox(counter = (j / 4, 0, 0), key =
 * seed), so each value depends only on (seed, j), never on threads or call
 * chunking. Fills write elements j = offset + i for i in [0, n). */

/* One Philox4x32-10 block: out (4,) = Philox(ctr (4,), key (2,)). */
void fnn_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                       uint32_t out[4]);

/* out (n,) = raw 32-bit words of the stream. */
void fnn_rng_bits(uint64_t seed, uint64_t offset, uint32_t *out /* (n,) */,
                  size_t n);

/* out (n,) = uniform in [0, 1): (word >> 8) / 2^24. */
void fnn_rng_uniform(uint64_t seed, uint64_t offset, float *out /* (n,) */,
                     size_t n);

/* out (n,) = mean + std * N(0, 1), Box-Muller on word pairs (2p, 2p+1):
 * element 2p is r cos(theta), 2p+1 is r sin(theta). */
void fnn_rng_normal(uint64_t seed, uint64_t offset, float *out /* (n,) */,
                    size_t n, float mean, float std);
/* Naive twin (double-precision libm, one Philox call per element). */
void fnn_rng_normal_naive(uint64_t seed, uint64_t offset,
                          float *out /* (n,) */, size_t n, float mean,
                          float std);

/* Inverted dropout, 0 <= p < 1, stream offset 0: mask[i] = (word_i >=
 * round(p 2^32)), y[i] = mask[i] ? x[i] / (1 - p) : 0. y may be x. */
void fnn_dropout_forward(uint64_t seed, const float *x /* (n,) */,
                         float *y /* (n,) */, uint8_t *mask /* (n,) */,
                         size_t n, double p);
/* dx[i] = mask[i] ? dy[i] / (1 - p) : 0. dx may be dy. */
void fnn_dropout_backward(const float *dy /* (n,) */,
                          const uint8_t *mask /* (n,) */, float *dx /* (n,) */,
                          size_t n, double p);

/* y (n,) = x (n,) + std * N(0, 1) (the normal stream at offset 0). y may be x. */
void fnn_gaussian_noise_forward(uint64_t seed, const float *x /* (n,) */,
                                float *y /* (n,) */, size_t n, float std);

/* ------------------------------------------- loss.c, loss_xent.c, loss_reg.c -- */

/* Losses over float32 inputs; per-sample losses and their sums in float64,
 * summed in a fixed order (results do not depend on the thread count).
 * `scale` multiplies every gradient (1/N for a mean, 1 for a sum, or the
 * upstream gradient); a per-sample `row_scale`/`elem_scale` (NULL: none) is
 * multiplied in as well, for reduction='none'. grad / elem_loss may be NULL
 * in the forward kernels: the gradient is then not computed (fused forward +
 * backward when given). A forward kernel's total is NaN or infinite when an
 * input is, or a target is outside its domain (callers check only then).
 * Targets are int64 class indices in [0, C); weight (C) or NULL. A kernel
 * with class-index targets checks every index first and returns FNN_EINDEX
 * (computing nothing, *total NaN) if one is outside [0, C); otherwise every
 * kernel returns FNN_OK (FNN_ENOMEM: the block partials could not be
 * allocated). Forward kernels store the loss sum in *total. */

/* Cross-entropy on logits x (N,C) with class-index targets (N) and label
 * smoothing s: q = (1-s) onehot(y) w_y + s/C w. Writes row_loss (N), the row
 * maxima row_max (N) and softmax coefficients row_coef (N) the backward
 * needs; *total = sum of row_loss. grad (N,C) = scale (softmax sum(q) - q). */
int fnn_cross_entropy_forward(int N, int C, const float *x /* (N,C) */,
                                 const int64_t *target /* (N) */,
                                 const float *weight /* (C) or NULL */, float smoothing,
                                 double scale, float *grad /* (N,C) or NULL */,
                                 float *row_max /* (N) */, double *row_coef /* (N) */,
                                 double *row_loss /* (N) */, double *total);
int fnn_cross_entropy_backward(int N, int C, const float *x /* (N,C) */,
                                const int64_t *target /* (N) */,
                                const float *weight /* (C) or NULL */, float smoothing,
                                const float *row_max /* (N) */, const double *row_coef /* (N) */,
                                double scale, const float *row_scale /* (N) or NULL */,
                                float *grad /* (N,C) */);

/* Same with probability targets prob (N,C): q = w ((1-s) prob + s/C). A
 * negative probability makes its row's loss NaN. */
int fnn_cross_entropy_prob_forward(int N, int C, const float *x /* (N,C) */,
                                      const float *prob /* (N,C) */,
                                      const float *weight /* (C) or NULL */, float smoothing,
                                      double scale, float *grad /* (N,C) or NULL */,
                                      float *row_max /* (N) */, double *row_coef /* (N) */,
                                      double *row_loss /* (N) */, double *total);
int fnn_cross_entropy_prob_backward(int N, int C, const float *x /* (N,C) */,
                                     const float *prob /* (N,C) */,
                                     const float *weight /* (C) or NULL */, float smoothing,
                                     const float *row_max /* (N) */,
                                     const double *row_coef /* (N) */, double scale,
                                     const float *row_scale /* (N) or NULL */,
                                     float *grad /* (N,C) */);

/* Negative log-likelihood of log-probabilities x (N,C): row_loss = -w_y x_y;
 * grad = -scale w_y onehot(y). */
int fnn_nll_forward(int N, int C, const float *x /* (N,C) */, const int64_t *target /* (N) */,
                       const float *weight /* (C) or NULL */, double scale,
                       float *grad /* (N,C) or NULL */, double *row_loss /* (N) */, double *total);
int fnn_nll_backward(int N, int C, const int64_t *target /* (N) */,
                      const float *weight /* (C) or NULL */, double scale,
                      const float *row_scale /* (N) or NULL */, float *grad /* (N,C) */);

/* Multi-class hinge: row_loss = w_y/C sum_{j!=y} max(0, margin - x_y + x_j)^p,
 * p in {1, 2}. */
int fnn_multi_margin_forward(int N, int C, const float *x /* (N,C) */,
                                const int64_t *target /* (N) */,
                                const float *weight /* (C) or NULL */, int p, float margin,
                                double scale, float *grad /* (N,C) or NULL */,
                                double *row_loss /* (N) */, double *total);
int fnn_multi_margin_backward(int N, int C, const float *x /* (N,C) */,
                               const int64_t *target /* (N) */,
                               const float *weight /* (C) or NULL */, int p, float margin,
                               double scale, const float *row_scale /* (N) or NULL */,
                               float *grad /* (N,C) */);

/* Squared error over n elements: *total = sum (x-y)^2, elem_loss = (x-y)^2,
 * grad = 2 (x-y) scale. */
int fnn_mse_forward(ptrdiff_t n, const float *x /* (n) */, const float *y /* (n) */,
                    double scale, float *grad /* (n) or NULL */,
                    float *elem_loss /* (n) or NULL */, double *total);
int fnn_mse_backward(ptrdiff_t n, const float *x /* (n) */, const float *y /* (n) */,
                      double scale, const float *elem_scale /* (n) or NULL */,
                      float *grad /* (n) */);

/* Binary cross-entropy on logits x with targets y in [0,1] over n elements,
 * pos_weight (C) applied along the last axis (element k uses pos_weight[k %
 * C]) or NULL: loss = (1-y) x + l softplus(-x), l = 1 + (pos_weight-1) y,
 * grad = scale (l sigmoid(x) - pos_weight y); grad is not written when
 * elem_loss is given. */
int fnn_bce_logits_forward(ptrdiff_t n, const float *x /* (n) */, const float *y /* (n) */,
                           const float *pos_weight /* (C) or NULL */, ptrdiff_t C,
                           double scale, float *grad /* (n) or NULL */,
                           float *elem_loss /* (n) or NULL */, double *total);
int fnn_bce_logits_backward(ptrdiff_t n, const float *x /* (n) */, const float *y /* (n) */,
                             const float *pos_weight /* (C) or NULL */, ptrdiff_t C,
                             double scale, const float *elem_scale /* (n) or NULL */,
                             float *grad /* (n) */);

/* ------------------------------------- optim.c, optim_adam.c, optim_clip.c -- */

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

/* -------------------------------------------------------------- bench.c -- */

/* Machine microbenchmarks (python -m fastnn bench). */

/* Seconds (wall) for `nthreads` pool threads each running `iters` rounds of
 * independent multiply-add chains on the `isa` path; every round does
 * fnn_bench_peak_flops_per_iter(isa) flops per thread. *threads_used gets the
 * thread count the runtime gave. Returns < 0 if the ISA is not available. */
double fnn_bench_peak(int isa, int nthreads, long iters, int *threads_used);
double fnn_bench_peak_flops_per_iter(int isa);

/* Best of `reps` seconds for one STREAM-triad pass a[i] = b[i] + s*c[i] over
 * three arrays of n floats on `nthreads` threads (3*n*4 bytes per pass).
 * Returns -2 if the arrays cannot be allocated, -1 on bad arguments. */
double fnn_bench_triad(size_t n, int nthreads, int reps);

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

/* ------------------------------------------------------------ augment.c -- */

/* Per-sample random augmentation of image batches x (N, C, H, W), float32,
 * C-contiguous, into a new array y (never x). Slot k (0..3) of sample i is
 * word k of Philox4x32-10(ctr = (i, i >> 32, 0, 0), key = seed) -- element
 * 4 i + k of the rng.c stream -- with u = word / 2^32 and randint(word, n) =
 * floor(word n / 2^32). Bitwise the same on any thread count. */

/* y (N, C, Ho, Wo)[i, c, r, k] = x[i, c, r + oy_i, k + ox_i], or fill outside
 * x, with oy_i = oy_lo + randint(slot 0, oy_n), ox_i = ox_lo + randint(slot 1,
 * ox_n); oy_n, ox_n >= 1. offsets (N, 2) gets (oy_i, ox_i). Random
 * translation (Ho = H, Wo = W) and random crop of a padded image. */
void fnn_aug_shift(uint64_t seed, ptrdiff_t N, int C, int H, int W,
                   const float *x /* (N,C,H,W) */, int Ho, int Wo,
                   float *y /* (N,C,Ho,Wo) */, int oy_lo, uint32_t oy_n,
                   int ox_lo, uint32_t ox_n, float fill,
                   int32_t *offsets /* (N,2) */);

/* y (N, rows, W) = x with each row reversed where u(slot 0) < p, else a copy;
 * flipped (N) gets 1 or 0. rows = C * H. */
void fnn_aug_hflip(uint64_t seed, ptrdiff_t N, ptrdiff_t rows, int W,
                   const float *x /* (N,rows,W) */, float *y /* (N,rows,W) */,
                   double p, uint8_t *flipped /* (N) */);

/* y (N, D) = k (b x) + (1 - k) mean(b x) over each sample's D elements (mean
 * in double), b = b_lo + (b_hi - b_lo) u(slot 0), k = c_lo + (c_hi - c_lo)
 * u(slot 1); then, if clamp, clamped to [lo, hi] (NaN stays NaN). params
 * (N, 2) gets (b, k). */
void fnn_aug_color(uint64_t seed, ptrdiff_t N, ptrdiff_t D,
                   const float *x /* (N,D) */, float *y /* (N,D) */,
                   double b_lo, double b_hi, double c_lo, double c_hi,
                   int clamp, float lo, float hi, double *params /* (N,2) */);

/* y (N, C, H, W) = x warped about the centre ((W-1)/2, (H-1)/2): rotation by
 * angle = deg_lo + (deg_hi - deg_lo) u(slot 0) degrees (counter-clockwise on
 * screen), scaling by s = s_lo + (s_hi - s_lo) u(slot 1), then translation
 * by tx = round(tx_max (2 u(slot 2) - 1)), ty likewise from slot 3 (integer
 * pixels, round half to even). Each output pixel samples x bilinearly at its
 * inverse image; taps outside x read `fill`. Identity and integer-translation
 * warps copy exactly. params (N, 4) gets (angle, s, tx, ty). (H+4)(W+4) must
 * fit in int32. Returns FNN_OK or FNN_ENOMEM. */
int fnn_aug_affine(uint64_t seed, ptrdiff_t N, int C, int H, int W,
                   const float *x /* (N,C,H,W) */, float *y /* (N,C,H,W) */,
                   double deg_lo, double deg_hi, double s_lo, double s_hi,
                   double tx_max, double ty_max, float fill,
                   double *params /* (N,4) */);

/* ------------------------------------------------------- conv.c, pool.c -- */

/* A 2-D convolution over NCHW float32 (1-D: H = kh = 1, sh = dh = 1, ph = 0):
 * x (N, C, H, W), weight (O, C/G, kh, kw) (torch's layout), bias (O) or NULL,
 * y (N, O, Ho, Wo), y[n,o,oh,ow] = bias[o] + sum over c in o's group, i, j of
 * w[o,c,i,j] x[n, g C/G + c, oh sh - ph + i dh, ow sw - pw + j dw] (taps
 * outside x read 0). ph, pw are the top/left padding; Ho, Wo (>= 1) give the
 * bottom/right padding implicitly (asymmetric 'same' padding). G divides C
 * and O. Every kernel returns FNN_OK or FNN_ENOMEM; results do not depend on
 * the thread count. */
typedef struct {
    int N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo;
} fnn_conv2d;

/* The output columns [*lo, *hi) of a row whose tap column ow sw + off lies
 * inside [0, W) (the others read padding): the window geometry convolution
 * and pooling share. */
static inline void fnn_inside_cols(int off, int sw, int W, int Wo, int *lo, int *hi)
{
    int a = off < 0 ? (-off + sw - 1) / sw : 0;
    int b = W - off > 0 ? (W - off + sw - 1) / sw : 0;
    *lo = a < Wo ? a : Wo;
    *hi = b < *lo ? *lo : (b < Wo ? b : Wo);
}

int fnn_conv2d_forward(const fnn_conv2d *s, const float *x /* (N,C,H,W) */,
                       const float *w /* (O,C/G,kh,kw) */, const float *bias /* (O) or NULL */,
                       float *y /* (N,O,Ho,Wo) */, int relu /* 1: max(y, 0), NaN kept */);
/* Gradients of the forward above given dy (N,O,Ho,Wo); each output may be
 * NULL (not wanted). dx (N,C,H,W) is written; dw (O,C/G,kh,kw) and db (O)
 * are written (acc 0) or added to (acc 1). */
int fnn_conv2d_backward(const fnn_conv2d *s, const float *x /* (N,C,H,W) */,
                        const float *w /* (O,C/G,kh,kw) */, const float *dy /* (N,O,Ho,Wo) */,
                        float *dx /* (N,C,H,W) or NULL */, float *dw /* or NULL */,
                        float *db /* (O) or NULL */, int acc);
/* The naive twins: direct loops, float64 sums, one thread. */
void fnn_conv2d_forward_naive(const fnn_conv2d *s, const float *x, const float *w,
                              const float *bias, float *y);
void fnn_conv2d_backward_naive(const fnn_conv2d *s, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db, int acc);

/* Pooling over P = N*C independent planes x (P, H, W) -> y (P, Ho, Wo).
 * Window of output (oh, ow): rows oh sh - ph + i dh, i < kh (max pool:
 * dilated taps; average pool: dh = dw = 1), columns likewise; taps outside
 * the plane are skipped. mode (average pooling only):
 *   FNN_POOL_AVG_EXCL  divisor = taps inside the plane
 *   FNN_POOL_AVG_INCL  divisor = taps inside the plane padded by ph/pw at
 *                      both ends (torch's count_include_pad)
 *   FNN_POOL_ADAPTIVE  rows floor(oh H / Ho) .. ceil((oh+1) H / Ho), columns
 *                      likewise (kernel, stride, padding unused)
 * divisor > 0 overrides the divisor. */
enum { FNN_POOL_AVG_EXCL = 0, FNN_POOL_AVG_INCL = 1, FNN_POOL_ADAPTIVE = 2 };
typedef struct {
    int H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, mode, divisor;
} fnn_pool2d;

/* y = window maximum (NaN wins, as in torch); idx (P,Ho,Wo) = its offset
 * ih W + iw in the plane (the first tap inside the plane if every tap is
 * -inf; -1 and y = -inf if no tap is inside). Backward: dx (P,H,W) = 0, then
 * dx[idx] += dy where idx >= 0; every idx must lie in [-1, H W). With
 * ymask (the forward's y: a ReLU before the pool, fused by Sequential),
 * dy passes only where ymask > 0 -- the ReLU's backward mask, since y is
 * the ReLU's output at idx. */
void fnn_maxpool2d_forward(ptrdiff_t P, const fnn_pool2d *s, const float *x /* (P,H,W) */,
                           float *y /* (P,Ho,Wo) */, int32_t *idx /* (P,Ho,Wo) */);
void fnn_maxpool2d_backward(ptrdiff_t P, const fnn_pool2d *s, const int32_t *idx /* (P,Ho,Wo) */,
                            const float *dy /* (P,Ho,Wo) */,
                            const float *ymask /* (P,Ho,Wo) or NULL */, float *dx /* (P,H,W) */);
/* y = window sum / divisor; backward spreads dy / divisor over the window. */
void fnn_avgpool2d_forward(ptrdiff_t P, const fnn_pool2d *s, const float *x /* (P,H,W) */,
                           float *y /* (P,Ho,Wo) */);
void fnn_avgpool2d_backward(ptrdiff_t P, const fnn_pool2d *s, const float *dy /* (P,Ho,Wo) */,
                            float *dx /* (P,H,W) */);
/* --------------------------------------------------------------- norm.c -- */

/* Batch norm over x (N, C, S): S = 1 for (N, C), L for (N, C, L), H*W for
 * (N, C, H, W); statistics per channel over its N*S values, in float64.
 * gamma, beta (C) or NULL (affine=False: 1 and 0). Results do not depend on
 * the thread count (channels are split, never a channel's sum). */
/* Training: mean, var (biased), invstd = 1/sqrt(var + eps) (C each), then
 * y = (x - mean) gamma invstd + beta. */
int fnn_batchnorm_forward(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x /* (N,C,S) */,
                          const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                          double eps, float *y /* (N,C,S) */, float *mean /* (C) */,
                          float *var /* (C) */, float *invstd /* (C) */,
                          int relu /* 1: y = max(y, 0), a following ReLU fused */);
/* Eval: y = (x - running_mean) gamma / sqrt(running_var + eps) + beta, one pass. */
int fnn_batchnorm_forward_eval(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x /* (N,C,S) */,
                               const float *gamma /* (C) or NULL */,
                               const float *beta /* (C) or NULL */,
                               const float *running_mean /* (C) */,
                               const float *running_var /* (C) */, double eps,
                               float *y /* (N,C,S) */, int relu);
/* Backward of the training forward: dgamma = sum dy xhat, dbeta = sum dy
 * (C each, overwritten), dx (N,C,S) or NULL = gamma invstd (dy - mean(dy)
 * - xhat mean(dy xhat)). Two passes. relu: the forward had the ReLU fused and
 * dy is the gradient of its output; the mask (the forward's y > 0, from x,
 * mean, invstd, gamma, beta) is applied on the fly. */
int fnn_batchnorm_backward(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x /* (N,C,S) */,
                           const float *dy /* (N,C,S) */, const float *mean /* (C) */,
                           const float *invstd /* (C) */, const float *gamma /* (C) or NULL */,
                           const float *beta /* (C) or NULL */, int relu,
                           float *dgamma /* (C) */, float *dbeta /* (C) */,
                           float *dx /* (N,C,S) or NULL */);
/* Layer norm over the rows of x (R, D): y = (x - mean) rstd gamma + beta;
 * gamma, beta (D) both or neither; mean, rstd (R) saved for backward, or
 * both NULL (eval). */
int fnn_layernorm_forward(ptrdiff_t R, ptrdiff_t D, const float *x /* (R,D) */,
                          const float *gamma /* (D) or NULL */, const float *beta /* (D) or NULL */,
                          double eps, float *y /* (R,D) */, float *mean /* (R) or NULL */,
                          float *rstd /* (R) or NULL */);
/* dgamma, dbeta (D, overwritten; NULL: not computed), dx (R,D) or NULL. */
int fnn_layernorm_backward(ptrdiff_t R, ptrdiff_t D, const float *x /* (R,D) */,
                           const float *dy /* (R,D) */, const float *mean /* (R) */,
                           const float *rstd /* (R) */, const float *gamma /* (D) or NULL */,
                           float *dgamma /* (D) or NULL */, float *dbeta /* (D) or NULL */,
                           float *dx /* (R,D) or NULL */);
/* Naive twins in float64 (two-pass statistics), same arguments; the layer
 * norm twin needs dgamma, dbeta and dx. */
void fnn_batchnorm_forward_naive(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x,
                                 const float *gamma, const float *beta, double eps, float *y,
                                 float *mean, float *var, float *invstd);
void fnn_batchnorm_backward_naive(ptrdiff_t N, ptrdiff_t C, ptrdiff_t S, const float *x,
                                  const float *dy, const float *mean, const float *invstd,
                                  const float *gamma, float *dgamma, float *dbeta, float *dx);
void fnn_layernorm_forward_naive(ptrdiff_t R, ptrdiff_t D, const float *x, const float *gamma,
                                 const float *beta, double eps, float *y, float *mean,
                                 float *rstd);
void fnn_layernorm_backward_naive(ptrdiff_t R, ptrdiff_t D, const float *x, const float *dy,
                                  const float *mean, const float *rstd, const float *gamma,
                                  float *dgamma, float *dbeta, float *dx);
/* ---------------------------------------------------------------- rnn.c -- */

/* Recurrent layers, one layer and one direction per call (torch's layouts).
 * mode: FNN_RNN_TANH, FNN_RNN_RELU (G = 1 gate), FNN_LSTM (G = 4: i, f, g,
 * o), FNN_GRU (G = 3: r, z, n; n = tanh(W_in x + b_in + r (W_hn h + b_hn))).
 * Time runs 0..T-1, or T-1..0 when reverse. lengths (N) in [1, T] or NULL
 * (all T): sample b is active at time t iff t < lengths[b]; inactive samples
 * keep their state, output 0 and get no gradient. */
enum { FNN_RNN_TANH = 0, FNN_RNN_RELU = 1, FNN_LSTM = 2, FNN_GRU = 3 };

/* h (N,H): in h0, out h_n; c (N,H) the same for the LSTM (else NULL).
 * y: output of time t, sample b at y[(t*N + b)*ldy + j], j < H, or NULL.
 * Saves for backward (all given, or all NULL in inference): gates (T,N,G*H)
 * activated gates (RNN: h_t), hprev (T,N,H) the state before time t, aux1
 * (T,N,H) LSTM c_{t-1} / GRU W_hn h + b_hn, aux2 (T,N,H) LSTM tanh(c_t).
 * naive: the plain-loop GEMM (the twin for tests). FNN_OK or FNN_ENOMEM. */
int fnn_rnn_forward(int mode, int T, int N, int In, int H, int reverse,
                    const float *x /* (T,N,In) */, const float *w_ih /* (G*H,In) */,
                    const float *w_hh /* (G*H,H) */, const float *b_ih /* (G*H) or NULL */,
                    const float *b_hh /* (G*H) or NULL */, const int32_t *lengths /* (N) */,
                    float *h /* (N,H) */, float *c /* (N,H) or NULL */,
                    float *y /* (T,N,ldy) or NULL */, ptrdiff_t ldy,
                    float *gates /* (T,N,G*H) */, float *hprev /* (T,N,H) */,
                    float *aux1 /* (T,N,H) */, float *aux2 /* (T,N,H) */, int naive);

/* Backward through time from the forward's saves. dh (N,H): in dL/dh_n, out
 * dL/dh0; dc likewise (LSTM, else NULL). dy (T,N,ldy) or NULL. dx (T,N,In)
 * (= or += when dx_acc) or NULL. Weight and bias gradients (NULL: skipped)
 * are written, or added to where acc has bit 1 (dw_ih), 2 (dw_hh), 4
 * (db_ih), 8 (db_hh). need_dh0 == 0: dh and dc end unspecified (the last
 * step's recurrent GEMM is skipped). FNN_OK or FNN_ENOMEM. */
int fnn_rnn_backward(int mode, int T, int N, int In, int H, int reverse,
                     const float *x /* (T,N,In) */, const float *w_ih /* (G*H,In) */,
                     const float *w_hh /* (G*H,H) */, const int32_t *lengths /* (N) */,
                     const float *gates, const float *hprev, const float *aux1,
                     const float *aux2, const float *dy /* (T,N,ldy) or NULL */, ptrdiff_t ldy,
                     float *dh /* (N,H) */, float *dc /* (N,H) or NULL */,
                     float *dx /* (T,N,In) or NULL */, int dx_acc,
                     float *dw_ih /* (G*H,In) */, float *dw_hh /* (G*H,H) */,
                     float *db_ih /* (G*H) */, float *db_hh /* (G*H) */, int acc, int need_dh0,
                     int naive);

#endif
