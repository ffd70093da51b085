/* cpu.c -- run-time ISA dispatch and the thread count (parallel.c uses it). */
#include "fastnn.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define FNN_X86 1
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
    return g_threads;
}
