"""SGEMM benchmarks: fastnn (each ISA path) against numpy (OpenBLAS).

As pytest-benchmark tests, one benchmark per implementation, grouped by
shape and thread count so each group's table compares them directly::

    pytest bench/ --benchmark-only
    pytest bench/ --benchmark-only -k "square and 1thr"     # a subset
    pytest bench/ --benchmark-only --benchmark-json=gemm.json  # GFLOP/s in extra_info

As a script, the GEMM part of ``python -m fastnn bench`` (machine peak, GFLOP/s
table, targets); every option of the bench command is accepted::

    python bench/bench_gemm.py [--quick] [--threads 1,2] [--isa avx512,avx2]

The shapes, inputs and callables are the ones the bench command times
(fastnn.benchmark.cases_kernels), so both give the same numbers."""
import os
import sys

import fastnn
from fastnn.benchmark import cases_kernels as ck
from fastnn.benchmark.harness import ThreadControl, settle

# A modest set: two squares, and one MLP and one conv-net layer at batch 128
# in the three products of training (see cases_kernels for the roles).
SHAPES = [("square", "NN", n, n, n) for n in (512, 2048)]
for _I, _O in ((784, 1024), (3136, 1024)):
    _B = 128
    SHAPES += [(f"b{_B}-{_I}x{_O}", "NT", _B, _O, _I),
               (f"b{_B}-{_I}x{_O}", "NN", _B, _I, _O),
               (f"b{_B}-{_I}x{_O}", "TN", _O, _I, _B)]
THREADS = sorted(set([1, fastnn.runtime.default_num_threads()]))
ISAS = list(fastnn.available_isas())[::-1]      # best first

try:
    import pytest
except ImportError:                              # script mode needs no pytest
    pytest = None

if pytest is not None and __name__ != "__main__":
    _tctl = ThreadControl()

    def _id(s):
        name, op, M, N, K = s
        return f"{name}-{op}-{M}x{N}x{K}"

    @pytest.fixture(scope="module", params=SHAPES, ids=_id)
    def gemm(request):
        name, op, M, N, K = request.param
        impls = ck.gemm_setup(op, M, N, K)(frozenset({"numpy"}))
        return request.param, impls, 2.0 * M * N * K

    def _run(benchmark, spec, fn, flops, threads, impl):
        name, op, M, N, K = spec
        benchmark.group = f"{_id(spec)} {threads}thr"
        benchmark.extra_info.update({"M": M, "N": N, "K": K, "op": op, "threads": threads,
                                     "impl": impl, "gflop_per_call": flops / 1e9})
        with _tctl.limit(threads):
            if threads > 1:
                settle(0.5)          # let the previous test's BLAS threads go to sleep
            benchmark.pedantic(fn, rounds=5, iterations=_iterations(fn), warmup_rounds=1)
        benchmark.extra_info["gflops_median"] = flops / benchmark.stats.stats.median / 1e9

    def _iterations(fn, target=0.05):
        import time
        fn()
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        return max(1, int(target / max(t, 1e-7)))

    @pytest.mark.parametrize("threads", THREADS, ids=lambda n: f"{n}thr")
    @pytest.mark.parametrize("isa", ISAS)
    def test_gemm_fastnn(benchmark, gemm, isa, threads):
        spec, impls, flops = gemm
        saved = fastnn.get_isa()
        fastnn.set_isa(isa)
        try:
            _run(benchmark, spec, impls["fastnn"], flops, threads, f"fastnn[{isa}]")
        finally:
            fastnn.set_isa(saved)

    @pytest.mark.parametrize("threads", THREADS, ids=lambda n: f"{n}thr")
    def test_gemm_numpy(benchmark, gemm, threads):
        spec, impls, flops = gemm
        _run(benchmark, spec, impls["numpy"], flops, threads, "numpy")


def main(argv=None):
    from fastnn.benchmark import main as bench_main
    argv = list(sys.argv[1:] if argv is None else argv)
    given = {a.split("=")[0] for a in argv}
    if "--only" not in given:
        argv = ["--only", "matmul/"] + argv
    if "--against" not in given:
        argv = ["--against", "numpy"] + argv
    return bench_main(argv, prog=f"python {os.path.relpath(__file__)}")


if __name__ == "__main__":
    sys.exit(main())
