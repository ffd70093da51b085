/* cpu.c -- run-time ISA dispatch and the thread count (parallel.c uses it). */
#include "fastnn.h"

#if defined(__GLIBC__) || (defined(__linux__) && !defined(__APPLE__))
#include <malloc.h>
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define FNN_X86 1
#endif

/* Keep freed activation-sized blocks in the heap instead of giving them back
 * to the OS: glibc serves blocks above its mmap threshold (dynamic, from 128
 * KiB) with mmap and trims the heap top beyond its trim threshold, so a
 * training step that allocates and frees the same few-MB arrays every step
 * page-faults them in again each time (a 256x4096 ReLU forward+backward on
 * one thread: 1.8 ms instead of 0.4). Fixed thresholds (mmap above 32 MiB,
 * trim beyond 128 MiB free) let the heap reuse them. Returns 1 if applied. */
int fnn_tune_malloc(void)
{
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
    int ok = mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ok &= mallopt(M_TRIM_THRESHOLD, 128 << 20);
    return ok ? 1 : 0;
#else
    return 0;
#endif
}

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

void fnn_set_num_threads(int n)
{
    g_threads = n < 1 ? 1 : n;
}

int fnn_get_num_threads(void)
{
    return g_threads;
}
/* ------------------------------------------------------------------------
 * Cache detection (for the GEMM blocking model, csrc/gemm_blocking.c).
 * A separate block: the thread/ISA plumbing above is the runtime's.
 *   1. cpuid: deterministic cache parameters, leaf 4 (Intel) or 0x8000001D
 *      (AMD, with TopologyExtensions); the logical processors sharing a level
 *      come from EAX[25:14] + 1, not from the CPUs this process can see (a VM
 *      or a cgroup shows fewer than share the cache);
 *   2. sysfs /sys/devices/system/cpu/cpu0/cache/index* for what cpuid did not
 *      give (and on aarch64, where user space has no cpuid);
 *   3. defaults for what is still unknown: 32 KiB 8-way L1d, 512 KiB 8-way
 *      L2, 8 MiB 16-way L3, 64-byte lines, L3 shared by 8 CPUs.
 * ------------------------------------------------------------------------ */
#include "gemm_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(FNN_X86) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

static void cache_fill(fnn_cache *c, long size, int ways, int line, int shared)
{
    c->size = size;
    c->ways = ways;
    c->line = line;
    c->sets = ways > 0 && line > 0 ? (int)(size / ((long)ways * line)) : 0;
    c->shared = shared;
}

static fnn_cache *cache_slot(fnn_caches *cs, int level)
{
    return level == 1 ? &cs->l1d : level == 2 ? &cs->l2 : level == 3 ? &cs->l3 : NULL;
}

int fnn_cache_cpuid(fnn_caches *cs)
{
    memset(cs, 0, sizeof *cs);
#if defined(FNN_X86) && (defined(__GNUC__) || defined(__clang__))
    unsigned a, b, c, d, leaf;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return 0;
    unsigned maxleaf = a;
    char vendor[13];
    memcpy(vendor, &b, 4); memcpy(vendor + 4, &d, 4); memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    if (!strcmp(vendor, "GenuineIntel")) {
        if (maxleaf < 4)
            return 0;
        leaf = 4;
    } else if (!strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine")) {
        if (__get_cpuid_max(0x80000000u, NULL) < 0x8000001Du ||
            !__get_cpuid(0x80000001u, &a, &b, &c, &d) || !(c & (1u << 22)))
            return 0;                       /* no TopologyExtensions */
        leaf = 0x8000001Du;
    } else {
        return 0;
    }
    int found = 0;
    for (unsigned sub = 0; sub < 16; sub++) {
        __cpuid_count(leaf, sub, a, b, c, d);
        unsigned type = a & 31u, level = (a >> 5) & 7u;
        if (type == 0)
            break;                          /* no more caches */
        if (type != 1 && type != 3)
            continue;                       /* instruction cache */
        fnn_cache *slot = cache_slot(cs, (int)level);
        if (!slot)
            continue;
        int line = (int)(b & 0xFFFu) + 1, parts = (int)((b >> 12) & 0x3FFu) + 1;
        int ways = (int)(b >> 22) + 1;
        long sets = (long)c + 1;
        cache_fill(slot, (long)ways * parts * line * sets, ways, line,
                   (int)((a >> 14) & 0xFFFu) + 1);
        slot->sets = (int)sets;
        found = 1;
    }
    return found;
#else
    return 0;
#endif
}

static long read_long(const char *dir, const char *name, int *ok)
{
    char path[512], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    *ok = 0;
    if (!f)
        return 0;
    long v = 0;
    if (fgets(buf, sizeof buf, f)) {
        char unit = 0;
        int n = sscanf(buf, "%ld%c", &v, &unit);
        if (n >= 1) {
            *ok = v > 0;
            if (n == 2 && (unit == 'K' || unit == 'k')) v <<= 10;
            if (n == 2 && (unit == 'M' || unit == 'm')) v <<= 20;
        }
    }
    fclose(f);
    return v;
}

/* Logical CPUs in a sysfs cpu list such as "0-3,8-11". */
static int count_cpu_list(const char *dir)
{
    char path[512], buf[1024];
    snprintf(path, sizeof path, "%s/shared_cpu_list", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    if (fgets(buf, sizeof buf, f)) {
        char *s = buf;
        while (*s && *s != '\n') {
            long lo = strtol(s, &s, 10), hi = lo;
            if (*s == '-')
                hi = strtol(s + 1, &s, 10);
            n += hi >= lo ? (int)(hi - lo + 1) : 0;
            if (*s == ',') s++;
            else break;
        }
    }
    fclose(f);
    return n;
}

int fnn_cache_sysfs(fnn_caches *cs, const char *root)
{
    memset(cs, 0, sizeof *cs);
    if (!root)
        root = "/sys/devices/system/cpu/cpu0/cache";
    int found = 0;
    for (int idx = 0; idx < 16; idx++) {
        char dir[400], path[480], type[32] = "";
        snprintf(dir, sizeof dir, "%s/index%d", root, idx);
        snprintf(path, sizeof path, "%s/type", dir);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(type, sizeof type, f))
            type[0] = 0;
        fclose(f);
        if (strncmp(type, "Data", 4) && strncmp(type, "Unified", 7))
            continue;
        int ok, ok2, ok3;
        int level = (int)read_long(dir, "level", &ok);
        fnn_cache *slot = ok ? cache_slot(cs, level) : NULL;
        long size = read_long(dir, "size", &ok);
        if (!slot || !ok)
            continue;
        int ways = (int)read_long(dir, "ways_of_associativity", &ok2);
        int line = (int)read_long(dir, "coherency_line_size", &ok3);
        cache_fill(slot, size, ok2 ? ways : 0, ok3 ? line : 0, count_cpu_list(dir));
        found = 1;
    }
    return found;
}

static void cache_merge(fnn_cache *dst, const fnn_cache *src)
{
    if (dst->size <= 0) dst->size = src->size;
    if (dst->ways <= 0) dst->ways = src->ways;
    if (dst->line <= 0) dst->line = src->line;
    if (dst->shared <= 0) dst->shared = src->shared;
    if (dst->size > 0 && dst->ways > 0 && dst->line > 0)
        dst->sets = (int)(dst->size / ((long)dst->ways * dst->line));
}

void fnn_cache_defaults(fnn_caches *cs)
{
    memset(cs, 0, sizeof *cs);
    cache_fill(&cs->l1d, 32L << 10, 8, 64, 1);
    cache_fill(&cs->l2, 512L << 10, 8, 64, 1);
    cache_fill(&cs->l3, 8L << 20, 16, 64, 8);
}

static fnn_caches g_caches;
static int g_caches_known;

const fnn_caches *fnn_caches_detected(void)
{
    if (!__atomic_load_n(&g_caches_known, __ATOMIC_ACQUIRE)) {
        fnn_caches c, s, d;
        int from_cpuid = fnn_cache_cpuid(&c);
        int from_sysfs = fnn_cache_sysfs(&s, NULL);
        fnn_cache_defaults(&d);
        if (!from_cpuid)
            c = s;
        else if (from_sysfs) {
            cache_merge(&c.l1d, &s.l1d); cache_merge(&c.l2, &s.l2); cache_merge(&c.l3, &s.l3);
        }
        cache_merge(&c.l1d, &d.l1d);
        cache_merge(&c.l2, &d.l2);
        /* A machine known to have no L3 (many aarch64 parts) keeps size 0. */
        if (!from_cpuid && !from_sysfs)
            c.l3 = d.l3;
        else if (c.l3.size > 0)
            cache_merge(&c.l3, &d.l3);
        c.source = from_cpuid ? FNN_CACHE_CPUID : from_sysfs ? FNN_CACHE_SYSFS
                                                             : FNN_CACHE_DEFAULT;
        g_caches = c;   /* every caller computes the same values */
        __atomic_store_n(&g_caches_known, 1, __ATOMIC_RELEASE);
    }
    return &g_caches;
}
