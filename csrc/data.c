/* data.c -- batch assembly for the DataLoader: gather rows of a data set into
 * a batch buffer. Works on bytes, so one kernel serves float32 features,
 * int64 labels and float targets alike. */
#include "parallel.h"

#include <string.h>

/* Rows of a shuffled batch lie anywhere in a data set far larger than the
 * caches: each row's copy waited for memory at its start. Its lines are
 * requested GATHER_AHEAD rows before its copy, so that several rows' misses
 * are in flight at once: a 64-row batch of MNIST (3136-byte rows out of
 * 188 MB) took 28-34 us instead of 36-59 on 1 thread, 18-26 instead of 23-41
 * on 2 (Zen 3 VM, noisy; 8 rows ahead, or into all cache levels, measured
 * no better). */
#define GATHER_AHEAD 4

static inline void prefetch_row(const char *p, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64)
        __builtin_prefetch(p + o, 0, 0);
}

static void gather_range(const char *src, ptrdiff_t src_stride,
                         const int64_t *idx, ptrdiff_t lo, ptrdiff_t hi,
                         size_t row_bytes, char *dst)
{
    /* Fixed-size memcpy compiles to one load/store; the general case is a
     * library memcpy per row. */
    if (row_bytes == 4) {
        for (ptrdiff_t i = lo; i < hi; i++)
            memcpy(dst + i * 4, src + idx[i] * src_stride, 4);
    } else if (row_bytes == 8) {
        for (ptrdiff_t i = lo; i < hi; i++)
            memcpy(dst + i * 8, src + idx[i] * src_stride, 8);
    } else {
        for (ptrdiff_t i = lo; i < hi; i++) {
            if (i + GATHER_AHEAD < hi)
                prefetch_row(src + idx[i + GATHER_AHEAD] * src_stride, row_bytes);
            memcpy(dst + (ptrdiff_t)row_bytes * i, src + idx[i] * src_stride,
                   row_bytes);
        }
    }
}

typedef struct {
    const char *src;
    ptrdiff_t src_stride;
    const int64_t *idx;
    size_t row_bytes;
    char *dst;
} gather_args;

static int gather_body(void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const gather_args *a = ctx;
    (void)part;
    gather_range(a->src, a->src_stride, a->idx, lo, hi, a->row_bytes, a->dst);
    return FNN_OK;
}

/* A byte copied costs about an eighth of a streaming element (memcpy moves
 * ~10 bytes/ns per core). */
void fnn_gather_rows(const void *src, ptrdiff_t src_stride, const int64_t *idx,
                     ptrdiff_t B, size_t row_bytes, void *dst)
{
    gather_args a = {(const char *)src, src_stride, idx, row_bytes, (char *)dst};
    fnn_parallel_for(B, 1, (double)B * (double)row_bytes * (FNN_COST_ELEM / 2.0), gather_body,
                     &a);
}
