"""The process-wide runtime (fastnn.runtime over csrc/cpu.c): thread count,
instruction-set path, the environment variables read at import, info(), the
command line, seeding, and flush-to-zero staying inside the kernels."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import ops, runtime
from fastnn._ext import _C


def run_python(code=None, args=None, **env):
    """Run a fresh interpreter with fastnn's environment variables cleared,
    then set from ``env`` (None deletes); returns the CompletedProcess."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("FASTNN_")}
    for k, v in env.items():
        if v is not None:
            e[k] = v
    cmd = [sys.executable] + (["-c", code] if code is not None else list(args))
    # cwd: tests/, so `-c`/`-m` put no source checkout on sys.path and the child
    # imports the same installed fastnn as this process (e.g. tools/asan.sh's).
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------- threads --

@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, "2", True, False, None, [2]])
def test_set_num_threads_rejects(bad):
    before = fastnn.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == before


def test_set_num_threads_roundtrip():
    if not fastnn.info()["openmp"]:
        pytest.skip("built without OpenMP: always 1 thread")
    for n in (1, 2, np.int64(3), 7, np.uint8(2)):
        fastnn.set_num_threads(n)
        assert fastnn.get_num_threads() == int(n)
        assert fastnn.info()["num_threads"] == int(n)


def test_fastnn_num_threads_env():
    code = "import fastnn; print(fastnn.get_num_threads(), fastnn.info()['default_num_threads'])"
    p = run_python(code, FASTNN_NUM_THREADS="3")
    assert p.returncode == 0, p.stderr
    want = "3 3" if fastnn.info()["openmp"] else "1 3"
    assert p.stdout.split() == want.split()


@pytest.mark.parametrize("bad", ["0", "-2", "abc", "1.5"])
def test_fastnn_num_threads_env_invalid(bad):
    p = run_python("import fastnn", FASTNN_NUM_THREADS=bad)
    assert p.returncode != 0
    assert "FASTNN_NUM_THREADS" in p.stderr and repr(bad) in p.stderr, p.stderr


def test_default_threads_follow_cpu_affinity():
    """Without FASTNN_NUM_THREADS, the default is the CPUs this process may
    run on: pinned to one CPU, one thread."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity")
    cpus = sorted(os.sched_getaffinity(0))
    assert 1 <= runtime.default_num_threads() <= len(cpus)
    code = ("import os; os.sched_setaffinity(0, {%d}); from fastnn import runtime; "
            "print(runtime.default_num_threads())" % cpus[0])
    p = run_python(code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1"


# ----------------------------------------------------------------- ISA --

def test_available_isas():
    isas = fastnn.available_isas()
    assert isas[0] == "ref"
    assert list(isas) == [n for n in ("ref", "avx2", "avx512") if n in isas]
    assert isas[-1] == fastnn.info()["best_isa"]
    assert fastnn.info()["available_isas"] == list(isas)


def test_set_isa_roundtrip(isa):
    fastnn.set_isa(isa)
    assert fastnn.get_isa() == isa
    d = fastnn.info()
    assert d["isa"] == isa
    bl = d["gemm_blocking"]
    assert set(bl) == {"mr", "nr", "kc", "mc", "nc"}
    assert all(isinstance(v, int) and v > 0 for v in bl.values()), bl
    assert bl["mc"] >= bl["mr"] and bl["nc"] >= bl["nr"]


@pytest.mark.parametrize("bad", ["bogus", "", "AVX2", " avx2", "avx-512", None, 2, ["ref"], b"ref"])
def test_set_isa_rejects_bad_names(bad):
    before = fastnn.get_isa()
    with pytest.raises(ValueError, match="set_isa"):
        fastnn.set_isa(bad)
    assert fastnn.get_isa() == before


def test_set_isa_rejects_unsupported_paths():
    missing = [n for n in ("ref", "avx2", "avx512") if n not in fastnn.available_isas()]
    if not missing:
        pytest.skip("this CPU and build support every path")
    before = fastnn.get_isa()
    for name in missing:
        with pytest.raises(ValueError, match="not supported"):
            fastnn.set_isa(name)
    assert fastnn.get_isa() == before


def test_fastnn_isa_env_selects_the_path():
    """FASTNN_ISA at import selects the path: same name and blocking as
    set_isa in this process."""
    code = "import json, fastnn; d = fastnn.info(); print(json.dumps([d['isa'], d['gemm_blocking']]))"
    for isa in fastnn.available_isas():
        p = run_python(code, FASTNN_ISA=isa)
        assert p.returncode == 0, p.stderr
        fastnn.set_isa(isa)
        assert json.loads(p.stdout) == [isa, fastnn.info()["gemm_blocking"]]


def test_fastnn_isa_env_invalid():
    p = run_python("import fastnn", FASTNN_ISA="sse9")
    assert p.returncode != 0
    assert "sse9" in p.stderr and "set_isa" in p.stderr, p.stderr


# ---------------------------------------------------------------- info --

def test_info_keys_and_types():
    d = fastnn.info()
    need = {"version": str, "cpu": str, "machine": str, "isa": str, "best_isa": str,
            "available_isas": list, "num_threads": int, "default_num_threads": int,
            "gemm_blocking": dict, "numpy": str, "python": str, "openmp": bool,
            "compiler": str, "compiler_version": str, "cflags": str}
    for k, t in need.items():
        assert k in d, f"info() lacks {k!r}"
        assert isinstance(d[k], t), f"info()[{k!r}] is {type(d[k]).__name__}, want {t.__name__}"
    assert d["version"] == fastnn.__version__
    assert d["isa"] == fastnn.get_isa() and d["num_threads"] == fastnn.get_num_threads()
    assert d["numpy"] == np.__version__
    json.dumps(d)                                  # plain data, printable as JSON


def test_cli_info():
    p = run_python(args=["-m", "fastnn", "info"])
    assert p.returncode == 0, p.stderr
    lines = {ln.split(None, 1)[0]: ln.split(None, 1)[1] if len(ln.split(None, 1)) > 1 else ""
             for ln in p.stdout.splitlines() if ln.strip()}
    assert lines.get("isa") == fastnn.info()["best_isa"], p.stdout
    assert "gemm_blocking" in lines and "version" in lines


def test_cli_info_json_and_env():
    p = run_python(args=["-m", "fastnn", "info", "--json"], FASTNN_ISA="ref", FASTNN_NUM_THREADS="1")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["isa"] == "ref" and d["num_threads"] == 1


def test_cli_usage_errors():
    p = run_python(args=["-m", "fastnn"])
    assert p.returncode == 2 and "usage" in p.stderr
    p = run_python(args=["-m", "fastnn", "no-such-command"])
    assert p.returncode == 2 and "usage" in p.stderr
    p = run_python(args=["-m", "fastnn", "--help"])
    assert p.returncode == 0


# ------------------------------------------------------------- seeding --

def draws():
    g = runtime.generator()
    return (g.standard_normal(5).tolist(), g.integers(0, 1000, size=4).tolist(),
            runtime.next_seed(), runtime.next_seed())


def test_manual_seed_repeats_draws():
    fastnn.manual_seed(1234)
    first = draws()
    draws()                                         # advance the stream
    fastnn.manual_seed(1234)
    assert draws() == first
    assert fastnn.runtime.initial_seed() == 1234
    fastnn.manual_seed(1235)
    assert draws() != first
    s = runtime.next_seed()
    assert isinstance(s, int) and 0 <= s < 2**63


def test_manual_seed_large_and_numpy_ints():
    fastnn.manual_seed(2**70)
    a = draws()
    fastnn.manual_seed(np.uint64(7))
    b = draws()
    fastnn.manual_seed(7)
    assert draws() == b and a != b


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_manual_seed_rejects(bad):
    with pytest.raises(ValueError, match="manual_seed"):
        fastnn.manual_seed(bad)


def test_seeded_stream_is_the_same_in_a_new_process():
    fastnn.manual_seed(99)
    here = draws()
    code = ("import json, fastnn; from fastnn import runtime; fastnn.manual_seed(99); g = runtime.generator(); "
            "print(json.dumps([g.standard_normal(5).tolist(), g.integers(0, 1000, size=4).tolist(), "
            "runtime.next_seed(), runtime.next_seed()]))")
    p = run_python(code)
    assert p.returncode == 0, p.stderr
    assert tuple(json.loads(p.stdout)) == here


# ------------------------------------------------------- flush-to-zero --

def test_flush_to_zero_stays_inside_kernels(isa):
    """Kernels set FTZ/DAZ while they run; the calling thread's float state
    must be restored, or numpy would silently flush denormals afterwards."""
    tiny = np.array([1e-39], np.float32)              # a float32 denormal
    assert (tiny * np.float32(0.5))[0] != 0.0
    fastnn.set_isa(isa)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal((200, 100)).astype(np.float32)
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        ops.matmul(a, b)                                         # kernel path
        ops.matmul(a[:, :0], b[:0], bias=np.ones(100, np.float32))   # K == 0 path
        assert (tiny * np.float32(0.5))[0] != 0.0, f"{isa} {threads}T: FTZ leaked to the caller"
        assert np.float32(1e-39) / np.float32(2) != 0.0


def test_kernel_denormals_are_flushed_or_exact(isa):
    """Denormal operands neither crash nor produce garbage: each product is
    either flushed to 0 or exact."""
    fastnn.set_isa(isa)
    a = np.full((3, 4), 1e-39, np.float32)
    b = np.ones((4, 5), np.float32)
    got = ops.matmul(a, b)
    exact = (a.astype(np.float64) @ b).astype(np.float32)
    assert ((got == 0) | (got == exact)).all(), got


def test_build_flags():
    d = _C.build_info()
    assert d["openmp"] is fastnn.info()["openmp"]
    if d["openmp"]:
        assert "-fopenmp" in d["cflags"] or "openmp" in d["cflags"]
