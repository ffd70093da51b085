/* bench.c -- machine microbenchmarks for `python -m fastnn bench`: the fp32
 * arithmetic peak of each ISA path and the memory bandwidth, so that kernel
 * results can be read as a fraction of what the machine can do.
 *
 * Peak: every thread runs independent multiply-add chains on registers only.
 * A chain is one accumulator updated acc = acc * m + c; there are enough
 * chains to cover FMA latency x FMA ports (4 cycles x 2 ports = 8 on current
 * Intel and AMD cores) with room to spare, so the loop is throughput-bound.
 * m and c are chosen so every accumulator converges to c / (1 - m) = 1: no
 * overflow, no denormals, nothing the compiler may fold away.
 *
 * Bandwidth: the STREAM triad a[i] = b[i] + s * c[i] over three arrays much
 * larger than the last-level cache, first touched by the threads that use
 * them; 3 * n * sizeof(float) bytes per pass (write-allocate not counted,
 * as in STREAM). */
#define _DEFAULT_SOURCE 1 /* clock_gettime, posix_memalign, madvise */
#include "isa.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef FNN_MULTI_ISA
#include <immintrin.h>
#endif

#define PEAK_M 0.9990234375f /* 1 - 2^-10, exact in float */
#define PEAK_C 0.0009765625f /* 2^-10: fixed point c / (1 - m) = 1 */

static volatile float g_sink; /* keeps results alive */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- peak -- */

/* Plain C: 32 independent chains of a multiply and an add (no FMA: the
 * project builds with -ffp-contract=off); the compiler vectorises them for
 * the baseline ISA, exactly as it does the portable GEMM kernel. */
#define REF_CHAINS 32
static float peak_ref(long iters)
{
    float acc[REF_CHAINS];
    for (int j = 0; j < REF_CHAINS; j++)
        acc[j] = (float)j / REF_CHAINS;
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < REF_CHAINS; j++)
            acc[j] = acc[j] * PEAK_M + PEAK_C;
    float s = 0.0f;
    for (int j = 0; j < REF_CHAINS; j++)
        s += acc[j];
    return s;
}

#ifdef FNN_MULTI_ISA
/* AVX2+FMA: 12 chains of 8 lanes (16 ymm registers: 12 accumulators, the
 * two constants and one spare). */
#define AVX2_CHAINS 12
FNN_TARGET_AVX2 static float peak_avx2(long iters)
{
    const __m256 m = _mm256_set1_ps(PEAK_M), c = _mm256_set1_ps(PEAK_C);
    __m256 a0 = _mm256_set1_ps(0.00f), a1 = _mm256_set1_ps(0.01f);
    __m256 a2 = _mm256_set1_ps(0.02f), a3 = _mm256_set1_ps(0.03f);
    __m256 a4 = _mm256_set1_ps(0.04f), a5 = _mm256_set1_ps(0.05f);
    __m256 a6 = _mm256_set1_ps(0.06f), a7 = _mm256_set1_ps(0.07f);
    __m256 a8 = _mm256_set1_ps(0.08f), a9 = _mm256_set1_ps(0.09f);
    __m256 a10 = _mm256_set1_ps(0.10f), a11 = _mm256_set1_ps(0.11f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c);
        a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c);
        a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c);
        a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c);
        a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

/* AVX-512: 16 chains of 16 lanes (32 zmm registers). */
#define AVX512_CHAINS 16
FNN_TARGET_AVX512 static float peak_avx512(long iters)
{
    const __m512 m = _mm512_set1_ps(PEAK_M), c = _mm512_set1_ps(PEAK_C);
    __m512 a0 = _mm512_set1_ps(0.00f), a1 = _mm512_set1_ps(0.01f);
    __m512 a2 = _mm512_set1_ps(0.02f), a3 = _mm512_set1_ps(0.03f);
    __m512 a4 = _mm512_set1_ps(0.04f), a5 = _mm512_set1_ps(0.05f);
    __m512 a6 = _mm512_set1_ps(0.06f), a7 = _mm512_set1_ps(0.07f);
    __m512 a8 = _mm512_set1_ps(0.08f), a9 = _mm512_set1_ps(0.09f);
    __m512 a10 = _mm512_set1_ps(0.10f), a11 = _mm512_set1_ps(0.11f);
    __m512 a12 = _mm512_set1_ps(0.12f), a13 = _mm512_set1_ps(0.13f);
    __m512 a14 = _mm512_set1_ps(0.14f), a15 = _mm512_set1_ps(0.15f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c);
        a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c);
        a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c);
        a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c);
        a11 = _mm512_fmadd_ps(a11, m, c);
        a12 = _mm512_fmadd_ps(a12, m, c);
        a13 = _mm512_fmadd_ps(a13, m, c);
        a14 = _mm512_fmadd_ps(a14, m, c);
        a15 = _mm512_fmadd_ps(a15, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)));
    return _mm512_reduce_add_ps(s);
}
#endif

double fnn_bench_peak_flops_per_iter(int isa)
{
    switch (isa) {
#ifdef FNN_MULTI_ISA
    case FNN_ISA_AVX512: return 2.0 * AVX512_CHAINS * 16;
    case FNN_ISA_AVX2: return 2.0 * AVX2_CHAINS * 8;
#endif
    case FNN_ISA_REF: return 2.0 * REF_CHAINS;
    default: return 0.0;
    }
}

#define MAX_SLOTS 256

typedef struct {
    int isa;
    long iters;
    int used;
    float r[MAX_SLOTS];
} peak_job;

static int peak_worker(void *ctx, int me, int have)
{
    peak_job *J = ctx;
    float r;
    switch (J->isa) {
#ifdef FNN_MULTI_ISA
    case FNN_ISA_AVX512: r = peak_avx512(J->iters); break;
    case FNN_ISA_AVX2: r = peak_avx2(J->iters); break;
#endif
    default: r = peak_ref(J->iters); break;
    }
    if (me < MAX_SLOTS)
        J->r[me] = r;
    if (me == 0)
        J->used = have;
    return 0;
}

double fnn_bench_peak(int isa, int nthreads, long iters, int *threads_used)
{
    if (isa < FNN_ISA_REF || isa > fnn_cpu_best_isa() || iters < 1)
        return -1.0;
    peak_job J = {isa, iters, 1, {0}};
    double t0 = now_seconds();
    fnn_parallel_region(nthreads, peak_worker, &J);
    double t = now_seconds() - t0;
    float sink = 0.0f;
    for (int i = 0; i < J.used && i < MAX_SLOTS; i++)
        sink += J.r[i];
    g_sink = sink;
    if (threads_used)
        *threads_used = J.used;
    return t;
}

/* ----------------------------------------------------------- bandwidth -- */

/* n floats on 2 MiB boundaries, backed by transparent huge pages where the
 * kernel offers them on request: first-touching gigabytes of 4 KiB pages
 * takes longer than the measurement. */
static float *big_alloc(size_t n)
{
    const size_t huge = (size_t)2 << 20;
    size_t bytes = (n * sizeof(float) + huge - 1) / huge * huge;
    void *p = NULL;
    if (posix_memalign(&p, huge, bytes) != 0)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}

typedef struct {
    float *a, *b, *c;
    ptrdiff_t len;
    int first_touch;
} triad_job;

/* The same static partition for the first touch and the timed passes. */
static int triad_worker(void *ctx, int me, int have)
{
    const triad_job *J = ctx;
    const ptrdiff_t lo = J->len * me / have, hi = J->len * (me + 1) / have;
    float *a = J->a;
    const float *b = J->b, *c = J->c;
    if (J->first_touch) {
        for (ptrdiff_t i = lo; i < hi; i++) {
            J->a[i] = 0.0f;
            J->b[i] = 1.0f;
            J->c[i] = 2.0f;
        }
    } else {
        const float s = 0.5f;
        for (ptrdiff_t i = lo; i < hi; i++)
            a[i] = b[i] + s * c[i];
    }
    return 0;
}

double fnn_bench_triad(size_t n, int nthreads, int reps)
{
    if (n < 1 || reps < 1)
        return -1.0;
    float *a = big_alloc(n), *b = big_alloc(n), *c = big_alloc(n);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return -2.0;
    }
    const ptrdiff_t len = (ptrdiff_t)n;
    triad_job J = {a, b, c, len, 1};
    fnn_parallel_region(nthreads, triad_worker, &J);
    J.first_touch = 0;
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        fnn_parallel_region(nthreads, triad_worker, &J);
        double t = now_seconds() - t0;
        if (t < best)
            best = t;
    }
    g_sink = a[0] + a[len - 1];
    free(a);
    free(b);
    free(c);
    return best;
}
