/* data.c -- batch assembly for the DataLoader: gather rows of a data set into
 * a batch buffer. Works on bytes, so one kernel serves float32 features,
 * int64 labels and float targets alike. */
#include "fastnn.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Bytes copied per thread before a second thread pays for itself: a parallel
 * region costs a few microseconds, memcpy moves ~10 bytes/ns per core. */
#define FNN_GATHER_BYTES_PER_THREAD (64.0 * 1024.0)

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
        for (ptrdiff_t i = lo; i < hi; i++)
            memcpy(dst + (ptrdiff_t)row_bytes * i, src + idx[i] * src_stride,
                   row_bytes);
    }
}

void fnn_gather_rows(const void *src, ptrdiff_t src_stride, const int64_t *idx,
                     ptrdiff_t B, size_t row_bytes, void *dst)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    int nt = fnn_threads_for((double)B * (double)row_bytes,
                             FNN_GATHER_BYTES_PER_THREAD);
    if (nt > B)
        nt = B > 0 ? (int)B : 1;
    if (nt <= 1) {
        gather_range(s, src_stride, idx, 0, B, row_bytes, d);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        ptrdiff_t lo = B * t / n, hi = B * (t + 1) / n;
        gather_range(s, src_stride, idx, lo, hi, row_bytes, d);
    }
#else
    gather_range(s, src_stride, idx, 0, B, row_bytes, d);
#endif
}
