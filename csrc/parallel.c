/* parallel.c -- the one parallel-for (see parallel.h), flush-to-zero, and
 * fork safety. The only OpenMP parallel region in csrc/. */
#define _POSIX_C_SOURCE 200112L  /* pthread_atfork */
#include "parallel.h"
#include "reduce.h"
#include "workspace.h"

#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define FNN_X86 1
#endif

static double g_par_flops = 1.0e6;
/* Set once a region ran on more than one thread: libgomp then has a pool. */
static volatile int g_pool_started;
/* Set in the child of a fork() made after that: it runs single-threaded. */
static volatile int g_forked_single;

static void at_fork_child(void)
{
    if (g_pool_started)
        g_forked_single = 1;
}

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, at_fork_child);
}

int fnn_forked_single(void)
{
    return g_forked_single;
}

double fnn_get_par_flops(void)
{
    return g_par_flops;
}

void fnn_set_par_flops(double flops)
{
    g_par_flops = flops > 1.0 ? flops : 1.0;
}

int fnn_threads_for(double flops)
{
    int n = g_forked_single ? 1 : fnn_get_num_threads();
    double fit = flops / g_par_flops;
    if (!(fit >= 2.0) || n <= 1)       /* NaN work: one thread */
        return 1;
    return fit < (double)n ? (int)fit : n;
}

unsigned fnn_ftz_enter(void)
{
#if defined(FNN_X86)
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u);            /* FTZ (bit 15) | DAZ (bit 6) */
    return saved;
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    __asm__ __volatile__("msr fpcr, %0" ::"r"(fpcr | (1ul << 24)));  /* FZ */
    return (unsigned)fpcr;
#else
    return 0;
#endif
}

void fnn_ftz_leave(unsigned saved)
{
#if defined(FNN_X86)
    _mm_setcsr(saved);
#elif defined(__aarch64__)
    unsigned long fpcr = saved;
    __asm__ __volatile__("msr fpcr, %0" ::"r"(fpcr));
#else
    (void)saved;
#endif
}

int fnn_parallel_region(int nthreads, fnn_region_fn fn, void *ctx)
{
    int max = g_forked_single ? 1 : fnn_get_num_threads();
    int nt = nthreads < max ? nthreads : max;
    int err = 0;
    if (nt <= 1) {
        unsigned s = fnn_ftz_enter();
        err = fn(ctx, 0, 1);
        fnn_ftz_leave(s);
        return err;
    }
#ifdef _OPENMP
    pthread_once(&g_atfork_once, register_atfork);
    g_pool_started = 1;
#pragma omp parallel num_threads(nt) reduction(max : err)
    {
        unsigned s = fnn_ftz_enter();
        err = fn(ctx, omp_get_thread_num(), omp_get_num_threads());
        fnn_ftz_leave(s);
    }
#endif
    return err;
}

/* ------------------------------------------------------- parallel-for -- */

typedef struct {
    ptrdiff_t n, grain, units;
    int parts;
    fnn_range_fn body;
    void *ctx;
} pf_job;

static inline ptrdiff_t part_start(const pf_job *J, int t)
{
    ptrdiff_t u = (ptrdiff_t)((long long)J->units * t / J->parts);
    ptrdiff_t e = u * J->grain;
    return e < J->n ? e : J->n;
}

static int pf_worker(void *c, int me, int have)
{
    const pf_job *J = c;
    int err = 0;
    for (int t = me; t < J->parts; t += have) {
        ptrdiff_t lo = part_start(J, t), hi = part_start(J, t + 1);
        if (lo < hi) {
            int e = J->body(J->ctx, lo, hi, t);
            err = e > err ? e : err;
        }
    }
    return err;
}

int fnn_parallel_for(ptrdiff_t n, ptrdiff_t grain, double flops, fnn_range_fn body, void *ctx)
{
    if (n <= 0)
        return FNN_OK;
    if (grain < 1)
        grain = 1;
    pf_job J = {n, grain, (n + grain - 1) / grain, 1, body, ctx};
    int nt = fnn_threads_for(flops);
    J.parts = (ptrdiff_t)nt < J.units ? nt : (int)J.units;
    return fnn_parallel_region(J.parts, pf_worker, &J);
}

/* ------------------------------------------------ fixed-order reduction -- */

typedef struct {
    ptrdiff_t n, block;
    fnn_sum_fn sum;
    void *ctx;
    double *part;
} ps_job;

static int ps_body(void *c, ptrdiff_t b0, ptrdiff_t b1, int t)
{
    const ps_job *J = c;
    (void)t;
    for (ptrdiff_t b = b0; b < b1; b++) {
        ptrdiff_t lo = b * J->block;
        ptrdiff_t hi = J->n - lo < J->block ? J->n : lo + J->block;
        J->part[b] = J->sum(J->ctx, lo, hi);
    }
    return FNN_OK;
}

int fnn_parallel_sum(ptrdiff_t n, ptrdiff_t block, double flops, fnn_sum_fn sum, void *ctx,
                     double *total)
{
    *total = 0.0;
    if (n <= 0)
        return FNN_OK;
    if (block < 1)
        block = 1;
    const ptrdiff_t nb = (n + block - 1) / block;
    double stack[64];
    double *part = stack;
    if (nb > 64) {
        part = fnn_ws_shared((size_t)nb * sizeof(double));
        if (!part)
            return FNN_ENOMEM;
    }
    ps_job J = {n, block, sum, ctx, part};
    int err = fnn_parallel_for(nb, 1, flops, ps_body, &J);
    *total = fnn_sum_ordered(part, nb);
    return err;
}
