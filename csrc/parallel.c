/* parallel.c -- the one parallel region (see parallel.h): fastnn's own pool
 * of worker threads, flush-to-zero, fork safety.
 *
 * Why not an OpenMP parallel region: its end is a barrier that waits for
 * every thread of the team, so on a shared machine (more runnable threads
 * than cores) a worker the scheduler has not run yet stalls the caller for a
 * time slice -- 2 threads measured 2-100x slower than 1 on this project's
 * busy 2-core host -- and libgomp's pool does not survive fork(). Here the
 * work of a call is cut into parts that threads *claim*: the caller claims
 * parts itself from the start, a worker claims whatever is left when it
 * wakes, and the caller waits only for parts a worker has claimed and not yet
 * finished. A late worker costs nothing (the caller does its part), a tiny
 * call is done before any worker wakes, and the parts -- hence the results --
 * are the same whichever thread runs them.
 *
 * Protocol. One job at a time runs on the pool (a second application thread
 * that calls in meanwhile, or a part that calls a kernel, runs its call
 * inline on itself). g_claim packs (job id, parts, next part): a thread
 * claims part k with a CAS from next = k to k + 1, and only then reads the
 * job's fields -- which cannot change while a claimed part is unfinished,
 * since the caller publishes the next job only after every part is done.
 * Workers spin for a short while after a job, then sleep on a condition
 * variable. fork(): the child gets a fresh, empty pool (workers are made
 * again on first use), so a forked child keeps its threads. */
#define _GNU_SOURCE 1  /* pthread_atfork, sched_yield, clock_gettime */
#include "parallel.h"
#include "reduce.h"
#include "workspace.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define FNN_X86 1
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_WORKERS 255
/* A worker spins this long after a job, then sleeps. Long enough to span
 * the serial stretches of a training step (the output layer, the loss, the
 * Python between layers): with 50 us the worker of the 784-256-10 SGD step
 * (batch 64, ~350 us) fell asleep between its products, woke late, and the
 * caller ran most parts itself; 1 ms took that step to 0.73-0.88x the time
 * on 2 threads (paired medians, Zen 4 VM; 300 us: 0.88-0.92x). Still far
 * below OpenBLAS's (~0.1 s) and MKL's (200 ms) spin. */
#define SPIN_NS 1000000.0

/* Flops per extra thread. Measured on the 2-core Sapphire Rapids host (the
 * MLP 10-w-w-10 sweep, medians of 31 interleaved rounds): with 1e6, the
 * 2.1-MFLOP GEMMs of width 128 ran 20-25% slower on 2 threads and the 3.3-MFLOP
 * ones of width 160 6% slower; with 2e6 (2 threads from 4 MFLOP) no width was
 * slower and width 256 (8.4 MFLOP) gains 10-15%. Re-checked on a 2-vCPU AMD
 * EPYC Zen 4 VM (same sweep, Adam, batch 64, medians of 21 paired rounds):
 * with 2e6 no width from 46 to 256 moved (0.98-1.01x of 1 thread); with 1e6
 * widths 128 and 160 ran 9-10% slower, as on the Xeon, and width 256 18%
 * faster -- though a lone 2.1-MFLOP product, back to back, ran 1.48x faster
 * on 2 threads there: the cost is in the steps around the products. Kept. */
static double g_par_flops = 2.0e6;

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
    int n = fnn_get_num_threads();
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

/* ---------------------------------------------------------------- pool -- */

/* How far apart the pool's threads are: the time from the caller publishing
 * a job to a spinning worker seeing it, one cache line's trip between their
 * cores, over the last HANDOFF_SAMPLES jobs a worker was spinning for (a
 * worker woken from sleep adds no sample). On a 2-vCPU Zen 2 VM whose
 * hypervisor moved the vCPUs between one L3 and two every few minutes
 * (tools/core_pingpong.sh 50-60 ns against 390-500 ns a round trip), the
 * median read 80-110 ns while they shared an L3 and 140-450 ns while they
 * did not (clock reads included). FAR_NS sits between, nearer the one-L3
 * side: planning for far threads on one L3 cost the GEMM up to 1.2x the
 * time on a few products, planning for near ones across L3s up to 1.5x.
 * Kernels that hand data between threads ask fnn_pool_far(). */
#define HANDOFF_SAMPLES 16
#define FAR_NS 120
#define CLAIM(id, parts, next) (((uint64_t)(id) << 32) | ((uint64_t)(parts) << 16) | (uint64_t)(next))
#define C_PARTS(c) ((int)(((c) >> 16) & 0xFFFF))
#define C_NEXT(c) ((int)((c) & 0xFFFF))
#define C_ID(c) ((uint32_t)((c) >> 32))

static pthread_mutex_t g_submit = PTHREAD_MUTEX_INITIALIZER;  /* one job at a time */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;      /* sleeping workers */
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static uint64_t g_claim;           /* atomic: (job id, parts, next part) */
static fnn_region_fn g_fn;         /* the job: stable while a part is claimed */
static void *g_ctx;
static int g_done, g_err;          /* atomic: parts finished, largest code */
static int g_sleepers;             /* atomic: workers waiting on g_cv */
static int64_t g_pub_ns;           /* atomic: when the caller published the job */
static int g_handoff[HANDOFF_SAMPLES];  /* atomic: ns to a spinning worker (ring) */
static unsigned g_handoff_next;    /* atomic */
static int g_nworkers;             /* workers started (by the submitter) */
static unsigned g_release;         /* atomic: workspace release requests */
static int g_release_acks;         /* atomic */
static _Thread_local int tl_busy;  /* this thread is running a part */
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

/* A handoff seen by a spinning worker; a worker the scheduler ran late
 * (beyond 50 us) tells nothing about the caches. */
static void record_handoff(double ns)
{
    if (ns >= 0.0 && ns < 5e4) {
        unsigned i = __atomic_fetch_add(&g_handoff_next, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&g_handoff[i % HANDOFF_SAMPLES], (int)ns + 1, __ATOMIC_RELAXED);
    }
}

double fnn_pool_handoff_ns(void)
{
    int v[HANDOFF_SAMPLES], n = 0;
    for (int i = 0; i < HANDOFF_SAMPLES; i++) {
        int x = __atomic_load_n(&g_handoff[i], __ATOMIC_RELAXED);
        if (x > 0) {                         /* insertion sort of the samples */
            int j = n++;
            for (; j > 0 && v[j - 1] > x; j--)
                v[j] = v[j - 1];
            v[j] = x;
        }
    }
    return n < HANDOFF_SAMPLES / 2 ? 0.0 : (double)(v[n / 2] - 1);
}

static int g_far_mode = -1;        /* atomic: -1 measured; 0 / 1 forced */

void fnn_pool_set_far(int mode)
{
    __atomic_store_n(&g_far_mode, mode < 0 ? -1 : mode > 0, __ATOMIC_RELAXED);
}

int fnn_pool_far(void)
{
    const int m = __atomic_load_n(&g_far_mode, __ATOMIC_RELAXED);
    return m >= 0 ? m : fnn_pool_handoff_ns() > FAR_NS;
}

/* Claim and run parts of the current job until none is left. */
static void run_parts(void)
{
    for (;;) {
        uint64_t c = __atomic_load_n(&g_claim, __ATOMIC_ACQUIRE);
        if (C_NEXT(c) >= C_PARTS(c))
            return;
        if (!__atomic_compare_exchange_n(&g_claim, &c, c + 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue;
        const int part = C_NEXT(c), parts = C_PARTS(c);
        const fnn_region_fn fn = g_fn;
        void *ctx = g_ctx;
        tl_busy = 1;
        unsigned s = fnn_ftz_enter();
        int e = fn(ctx, part, parts);
        fnn_ftz_leave(s);
        tl_busy = 0;
        int old = __atomic_load_n(&g_err, __ATOMIC_RELAXED);
        while (e > old && !__atomic_compare_exchange_n(&g_err, &old, e, 0, __ATOMIC_RELAXED,
                                                       __ATOMIC_RELAXED))
            ;
        __atomic_add_fetch(&g_done, 1, __ATOMIC_RELEASE);
    }
}

static void release_own_workspace(void)
{
    unsigned r = __atomic_load_n(&g_release, __ATOMIC_ACQUIRE);
    static _Thread_local unsigned seen;
    if (r != seen) {
        seen = r;
        fnn_ws_release_self();
        __atomic_add_fetch(&g_release_acks, 1, __ATOMIC_RELEASE);
    }
}

/* A worker: wait for a new job id (or a release request), run parts. */
static void *worker_main(void *arg)
{
    (void)arg;
    uint32_t seen = C_ID(__atomic_load_n(&g_claim, __ATOMIC_ACQUIRE));
    unsigned seen_rel = __atomic_load_n(&g_release, __ATOMIC_ACQUIRE);
    for (;;) {
        double t0 = now_ns();
        int spins = 0;
        for (;;) {
            uint64_t c = __atomic_load_n(&g_claim, __ATOMIC_ACQUIRE);
            if (C_ID(c) != seen) {
                record_handoff(now_ns() - (double)__atomic_load_n(&g_pub_ns, __ATOMIC_RELAXED));
                break;
            }
            if (__atomic_load_n(&g_release, __ATOMIC_ACQUIRE) != seen_rel)
                break;
            CPU_RELAX();
            if (++spins % 64 == 0 && now_ns() - t0 > SPIN_NS) {
                pthread_mutex_lock(&g_mu);
                __atomic_add_fetch(&g_sleepers, 1, __ATOMIC_SEQ_CST);
                while (C_ID(__atomic_load_n(&g_claim, __ATOMIC_SEQ_CST)) == seen &&
                       __atomic_load_n(&g_release, __ATOMIC_SEQ_CST) == seen_rel)
                    pthread_cond_wait(&g_cv, &g_mu);
                __atomic_sub_fetch(&g_sleepers, 1, __ATOMIC_SEQ_CST);
                pthread_mutex_unlock(&g_mu);
                break;
            }
        }
        seen = C_ID(__atomic_load_n(&g_claim, __ATOMIC_ACQUIRE));
        seen_rel = __atomic_load_n(&g_release, __ATOMIC_ACQUIRE);
        release_own_workspace();
        run_parts();
    }
    return NULL;
}

static void wake_workers(void)
{
    if (__atomic_load_n(&g_sleepers, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&g_mu);
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
}

/* The child of a fork() has only the forking thread: start an empty pool. */
static void at_fork_prepare(void)
{
    pthread_mutex_lock(&g_submit);     /* no job in flight across the fork */
}

static void at_fork_parent(void)
{
    pthread_mutex_unlock(&g_submit);
}

static void at_fork_child(void)
{
    pthread_mutex_init(&g_submit, NULL);
    pthread_mutex_init(&g_mu, NULL);
    pthread_cond_init(&g_cv, NULL);
    g_nworkers = 0;
    g_sleepers = 0;
    g_claim = CLAIM(C_ID(g_claim), 0, 0);
}

static void register_atfork(void)
{
    pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
}

/* Start workers up to `want` (called with g_submit held). */
static void grow_pool(int want)
{
    if (want > MAX_WORKERS)
        want = MAX_WORKERS;
    while (g_nworkers < want) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &at, worker_main, NULL) == 0;
        pthread_attr_destroy(&at);
        if (!ok)
            break;                     /* fewer threads than asked: fine */
        g_nworkers++;
    }
}

static int run_inline(int parts, fnn_region_fn fn, void *ctx)
{
    int err = 0;
    unsigned s = fnn_ftz_enter();
    for (int p = 0; p < parts; p++) {
        int e = fn(ctx, p, parts);
        err = e > err ? e : err;
    }
    fnn_ftz_leave(s);
    return err;
}

/* `parts` parts on up to `nthreads` threads (the caller and nthreads - 1
 * workers); more parts than threads lets the caller take over the rest of
 * the work when a worker is descheduled in the middle of its part. */
static int region_parts(int parts, int nthreads, fnn_region_fn fn, void *ctx)
{
    int max = fnn_get_num_threads();
    int nt = nthreads < max ? nthreads : max;
    if (nt > MAX_WORKERS + 1)
        nt = MAX_WORKERS + 1;
    if (parts > 0xFFFF)
        parts = 0xFFFF;
    if (nt <= 1 || parts <= 1)
        return run_inline(parts, fn, ctx);
    /* a part calling a kernel, or another application thread's job in
     * flight: the same parts, on this thread */
    if (tl_busy || pthread_mutex_trylock(&g_submit) != 0)
        return run_inline(parts, fn, ctx);
    pthread_once(&g_atfork_once, register_atfork);
    grow_pool(nt - 1);
    g_fn = fn;
    g_ctx = ctx;
    __atomic_store_n(&g_done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_err, 0, __ATOMIC_RELAXED);
    uint32_t id = C_ID(__atomic_load_n(&g_claim, __ATOMIC_RELAXED)) + 1;
    __atomic_store_n(&g_pub_ns, (int64_t)now_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&g_claim, CLAIM(id, parts, 0), __ATOMIC_SEQ_CST);
    wake_workers();
    run_parts();
    /* wait for the parts the workers claimed */
    int spins = 0;
    while (__atomic_load_n(&g_done, __ATOMIC_ACQUIRE) < parts) {
        if (++spins < 4096)
            CPU_RELAX();
        else
            sched_yield();
    }
    int err = __atomic_load_n(&g_err, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&g_submit);
    return err;
}

int fnn_parallel_region(int nthreads, fnn_region_fn fn, void *ctx)
{
    int max = fnn_get_num_threads();
    int nt = nthreads < max ? nthreads : max;
    return region_parts(nt < 1 ? 1 : nt, nt, fn, ctx);
}

/* Every worker frees its own workspace (parallel.h); waits briefly for them. */
void fnn_pool_release_workspaces(void)
{
    pthread_mutex_lock(&g_submit);
    int n = g_nworkers;
    __atomic_store_n(&g_release_acks, 0, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&g_release, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&g_mu);
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    double t0 = now_ns();
    while (__atomic_load_n(&g_release_acks, __ATOMIC_ACQUIRE) < n && now_ns() - t0 < 2e8)
        sched_yield();
    pthread_mutex_unlock(&g_submit);
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
    return region_parts(J.parts, nt, pf_worker, &J);
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
