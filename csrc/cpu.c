/* cpu.c -- run-time ISA dispatch, thread count, flush-to-zero, aligned memory. */
#define _POSIX_C_SOURCE 200112L  /* posix_memalign under -std=c11 */
#include "fastnn.h"

#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define FNN_X86 1
#include <immintrin.h>
#endif

static int g_isa = -1;       /* -1: not yet chosen */
static int g_threads = 1;

int fnn_cpu_best_isa(void)
{
#if defined(FNN_X86) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    /* libgcc/compiler-rt also check that the OS saves the wider registers. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma"))
        return FNN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return FNN_ISA_AVX2;
#endif
    return FNN_ISA_REF;
}

int fnn_get_isa(void)
{
    if (g_isa < 0)
        g_isa = fnn_cpu_best_isa();
    return g_isa;
}

int fnn_set_isa(int isa)
{
    if (isa < FNN_ISA_REF || isa > fnn_cpu_best_isa())
        return -1;
    g_isa = isa;
    return 0;
}

const char *fnn_isa_name(int isa)
{
    switch (isa) {
    case FNN_ISA_AVX512: return "avx512";
    case FNN_ISA_AVX2: return "avx2";
    default: return "ref";
    }
}

int fnn_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void fnn_set_num_threads(int n)
{
    g_threads = n < 1 ? 1 : n;
}

int fnn_get_num_threads(void)
{
#ifdef _OPENMP
    return g_threads;
#else
    return 1;
#endif
}

int fnn_threads_for(double work, double threshold)
{
    int n = fnn_get_num_threads();
    double fit = work / threshold;
    if (fit < 2.0)
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

void *fnn_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0)
        return NULL;
    return p;
}

void fnn_aligned_free(void *p)
{
    free(p);
}
