/* parallel.h -- the one parallel-for every kernel uses. Private to csrc/.
 *
 * It owns, once for all kernels:
 *  - the thread count (fastnn.set_num_threads) and the single-thread rule:
 *    a call gets one more thread per two megaflops of the work the caller
 *    estimates (fnn_get_par_flops; measured, see parallel.c), so small calls
 *    never pay for a second thread;
 *  - flush-to-zero / denormals-are-zero in every worker, the caller's MXCSR
 *    (aarch64: FPCR) restored afterwards;
 *  - a fixed partition of the work: [0, n) is cut into contiguous parts on
 *    `grain` boundaries, each part computed by one thread, so a result that
 *    is a function of its own range does not depend on the thread count
 *    (kernels split rows or columns, never a reduction dimension; sums over
 *    threads go through fnn_parallel_sum's fixed blocks);
 *  - getting fewer threads than asked: the parts are fixed by the call, and
 *    whichever threads are free claim them (a late or busy worker costs
 *    nothing: the caller runs the part itself);
 *  - errors: a body returns FNN_OK or an error code (FNN_ENOMEM when its
 *    workspace could not grow); the call returns the largest code seen;
 *  - fork safety: the child of a fork() starts with an empty pool and makes
 *    its workers again on first use.
 *
 * Work is counted in flops, or "flop equivalents" for kernels that are not
 * GEMMs: the time one GEMM flop takes (~1/100 ns on one AVX-512 core on
 * small products), so an element of a memory-bound loop costs about
 * FNN_COST_ELEM.
 */
#ifndef FASTNN_PARALLEL_H
#define FASTNN_PARALLEL_H

#include "fastnn.h"

/* Flop equivalents of one element of a streaming loop (one load, one store,
 * a few arithmetic operations). Measured: ReLU breaks even on 2 threads at
 * ~65-80k floats, a GEMM at ~4 MFLOP. */
#define FNN_COST_ELEM 50.0

/* Threads for a call of `flops` work: 1 below twice the per-thread flops
 * (fnn_get_par_flops, default 2e6), then one per that many, never more than
 * fastnn's thread count. */
int fnn_threads_for(double flops);

/* fn(ctx, part, parts) for every part in [0, parts), parts = nthreads
 * clamped to [1, thread count], each part exactly once, with FTZ/DAZ on.
 * The parts run on fastnn's worker pool (parallel.c): the calling thread
 * claims parts itself and workers claim what is left when they wake, so
 * several parts may run one after the other on one thread (always so when
 * the call comes from inside a part, or while another thread's call holds
 * the pool). A part must never wait for another part. Returns the largest
 * value an fn returned. The one parallel construct of csrc/ (gemm.c and
 * bench.c call it directly to choose their own split). */
typedef int (*fnn_region_fn)(void *ctx, int me, int have);
int fnn_parallel_region(int nthreads, fnn_region_fn fn, void *ctx);

/* body(ctx, lo, hi, part) over [0, n): cut into min(fnn_threads_for(flops),
 * ceil(n / grain)) parts on multiples of grain (the last part ends at n);
 * part is the index of [lo, hi) among them. Returns the largest code a body
 * returned. */
typedef int (*fnn_range_fn)(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part);
int fnn_parallel_for(ptrdiff_t n, ptrdiff_t grain, double flops, fnn_range_fn body,
                     void *ctx);

/* The fixed-order reduction: *total = sum over the blocks [b*block,
 * min(n, (b+1)*block)) of sum(ctx, lo, hi), added in block order -- the same
 * bits on any thread count. The blocks are shared out like fnn_parallel_for's
 * parts. Partials live in the caller's workspace. FNN_OK or FNN_ENOMEM. */
typedef double (*fnn_sum_fn)(void *ctx, ptrdiff_t lo, ptrdiff_t hi);
int fnn_parallel_sum(ptrdiff_t n, ptrdiff_t block, double flops, fnn_sum_fn sum, void *ctx,
                     double *total);

/* 1 when the pool's threads currently sit on different L3s (the median
 * handoff of fnn_pool_handoff_ns above FAR_NS, parallel.c): each cache line
 * one thread writes and another reads then crosses between them at hundreds
 * of ns, so a kernel should hand nothing over. 0 when near or not known. */
int fnn_pool_far(void);

/* Flush-to-zero / denormals-are-zero for the calling thread: enter returns
 * the previous state for leave (the workers of fnn_parallel_region do this
 * themselves; a kernel calls it only for work outside any region). */
unsigned fnn_ftz_enter(void);
void fnn_ftz_leave(unsigned saved);

#endif
