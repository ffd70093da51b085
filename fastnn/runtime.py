"""Process-wide runtime state: threads, instruction-set path, seeding, info."""
import math
import os
import platform

import numpy as np

from ._ext import _C

__all__ = ["set_num_threads", "get_num_threads", "set_isa", "get_isa",
           "available_isas", "manual_seed", "initial_seed", "generator",
           "next_seed", "info", "default_num_threads", "release_workspace",
           "workspace_bytes"]


def _cgroup_cpu_limit():
    """CPUs allowed by a cgroup quota (v2 cpu.max or v1 cfs), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def default_num_threads():
    """FASTNN_NUM_THREADS if set, else the cores this process may run on
    (CPU affinity mask, capped by a cgroup CPU quota)."""
    env = os.environ.get("FASTNN_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"FASTNN_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def set_num_threads(n):
    """Threads the kernels may use (1 = no threading). Small kernels use fewer."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    _C.set_num_threads(int(n))


def get_num_threads():
    return _C.get_num_threads()


def available_isas():
    """Kernel paths this CPU and build can run, slowest first."""
    return _C.ISA_NAMES[: _C.ISA_NAMES.index(_C.best_isa()) + 1]


def set_isa(name):
    """Select the kernel path: 'ref' (portable C), 'avx2' or 'avx512'."""
    if name not in _C.ISA_NAMES:
        raise ValueError(f"set_isa: name must be one of {_C.ISA_NAMES}, got {name!r}")
    if _C.set_isa(_C.ISA_NAMES.index(name)) != 0:
        raise ValueError(f"set_isa: {name!r} is not supported on this CPU/build "
                         f"(available: {available_isas()})")


def get_isa():
    return _C.get_isa()


_seed = 0
_gen = np.random.Generator(np.random.Philox(0))


def manual_seed(seed):
    """Seed every random draw fastnn makes (initialisers, dropout masks,
    shuffling, augmentation). Same seed, same results, on any thread count."""
    global _seed, _gen
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _seed = int(seed)
    _gen = np.random.Generator(np.random.Philox(_seed))


def initial_seed():
    return _seed


def generator():
    """The numpy Generator behind fastnn's random draws (seeded by manual_seed)."""
    return _gen


def next_seed():
    """A fresh 64-bit key from the seeded stream, for the counter-based
    generators of the C kernels (keyed by (seed, element), not by thread)."""
    return int(_gen.integers(0, 2**63 - 1, dtype=np.int64))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def info():
    """Version, CPU, kernel path, threads and build facts, as a dict."""
    from . import __version__
    d = {"version": __version__, "cpu": _cpu_model(), "machine": platform.machine(),
         "isa": get_isa(), "best_isa": _C.best_isa(), "available_isas": list(available_isas()),
         "num_threads": get_num_threads(), "default_num_threads": default_num_threads(),
         "gemm_blocking": _C.gemm_blocking(), "gemm_blocking_source": _C.gemm_blocking_source(),
         "gemm_kernel": _C.gemm_kernel_name(), "caches": _C.cache_info(),
         "workspace_bytes": workspace_bytes(),
         "malloc_tuned": _MALLOC_TUNED,
         "parallel_flops_per_thread": _C.get_parallel_flops(),
         "thread_handoff_ns": _C.pool_handoff_ns(), "numpy": np.__version__,
         "python": platform.python_version()}
    d.update(_C.build_info())
    return d


def _gemm_blocking_from_env():
    """FASTNN_GEMM_BLOCKING=kc,mc,nc overrides the GEMM cache blocking of every
    kernel path (for experiments; mc and nc are rounded up to the register
    tile). Unset or empty: the blocking model of csrc/gemm_blocking.c."""
    env = os.environ.get("FASTNN_GEMM_BLOCKING", "").strip()
    if not env:
        return
    try:
        kc, mc, nc = (int(v) for v in env.split(","))
    except ValueError:
        kc = mc = nc = -1
    if _C.set_gemm_blocking(kc, mc, nc) != 0:
        raise ValueError("FASTNN_GEMM_BLOCKING must be three integers kc,mc,nc with "
                         f"8 <= kc <= 4096, 1 <= mc <= 16384, 1 <= nc <= 16384; got {env!r}")


def release_workspace():
    """Free the C kernels' scratch memory (GEMM packing buffers, augmentation
    and reduction scratch) held by the calling thread and its worker threads.

    Scratch grows to the largest call seen and is then reused, so a training
    loop allocates nothing per step; call this after a one-off huge product
    to give the memory back. The next call that needs scratch allocates it
    again. Other threads keep theirs until they end (a thread's scratch is
    freed when the thread exits)."""
    _C.release_workspace()


def workspace_bytes():
    """Bytes of scratch memory the C kernels hold, over all live threads."""
    return _C.workspace_bytes()


_MALLOC_TUNED = False


def _init_from_env():
    global _MALLOC_TUNED
    if os.environ.get("FASTNN_MALLOC_TUNING", "1") != "0":
        _MALLOC_TUNED = _C.tune_malloc()
    _C.set_num_threads(default_num_threads())
    _gemm_blocking_from_env()
    isa = os.environ.get("FASTNN_ISA")
    if isa:
        set_isa(isa)
