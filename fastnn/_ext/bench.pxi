# Machine microbenchmarks (csrc/bench.c): arithmetic peak and memory
# bandwidth, measured by `python -m fastnn bench` (fastnn/benchmark/machine.py).

cdef extern from "fastnn.h" nogil:
    double fnn_bench_peak(int isa, int nthreads, long iters, int *threads_used)
    double fnn_bench_peak_flops_per_iter(int isa)
    double fnn_bench_triad(size_t n, int nthreads, int reps)


def bench_peak(int isa, int nthreads, long iters):
    """(seconds, flops, threads_used) of one run of the multiply-add chains on
    ISA path `isa` (index into ISA_NAMES). ValueError if not available."""
    cdef int used = 0
    cdef double t
    if iters < 1 or nthreads < 1:
        raise ValueError("bench_peak: iters and nthreads must be >= 1")
    with nogil:
        t = fnn_bench_peak(isa, nthreads, iters, &used)
    if t < 0:
        raise ValueError(f"bench_peak: ISA path {isa} is not available on this CPU/build")
    return t, fnn_bench_peak_flops_per_iter(isa) * iters * used, used


def bench_triad(size_t n, int nthreads, int reps):
    """Best seconds of `reps` triad passes over three arrays of n floats
    (3*n*4 bytes moved per pass)."""
    cdef double t
    if n < 1 or reps < 1 or nthreads < 1:
        raise ValueError("bench_triad: n, nthreads and reps must be >= 1")
    with nogil:
        t = fnn_bench_triad(n, nthreads, reps)
    if t == -2.0:
        raise MemoryError(f"bench_triad: cannot allocate 3 x {n * 4} bytes")
    if t < 0:
        raise ValueError("bench_triad: bad arguments")
    return t
