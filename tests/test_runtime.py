"""The process-wide runtime (fastnn.runtime over csrc/cpu.c): thread count,
instruction-set path, the environment variables read at import, info(), the
command line, seeding, and flush-to-zero staying inside the kernels."""
import json
import os
import re
import shutil
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
    for n in (1, 2, np.int64(3), 7, np.uint8(2)):
        fastnn.set_num_threads(n)
        assert fastnn.get_num_threads() == int(n)
        assert fastnn.info()["num_threads"] == int(n)


def test_fastnn_num_threads_env():
    code = "import fastnn; print(fastnn.get_num_threads(), fastnn.info()['default_num_threads'])"
    p = run_python(code, FASTNN_NUM_THREADS="3")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["3", "3"]


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
            "gemm_blocking": dict, "numpy": str, "python": str,
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
    assert "openmp" not in d and "openmp" not in d["cflags"]   # fastnn's own thread pool
    assert "-pthread" in d["cflags"]


# ------------------------------------------------ scratch memory (workspace) --

def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_short_lived_threads_give_their_scratch_back():
    """200 short-lived Python threads (4 at a time) each run a 512x1024x1024
    product: each thread's packing buffers are freed
    when it ends, so the process does not grow (it grew by ~600 MB when they
    were kept for the life of the process)."""
    import threading
    fastnn.set_num_threads(2)
    a = np.ones((512, 1024), np.float32)
    b = np.ones((1024, 1024), np.float32)
    ops.matmul(a, b)

    def work():
        ops.matmul(a, b)

    def batch():
        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    batch()                                    # malloc arenas and thread stacks
    before = _rss_bytes()
    for _ in range(50):
        batch()
    grown = _rss_bytes() - before
    assert grown < 64 << 20, f"RSS grew by {grown / 2**20:.0f} MB"


def test_workspace_reused_in_steady_state_and_released():
    """Each thread's scratch grows to its high-water mark once, then calls
    allocate nothing; release_workspace() gives it back and the next call regrows it."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 700), dtype=np.float32)
    b = rng.standard_normal((700, 500), dtype=np.float32)
    want = ops.matmul(a, b)
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        ops.matmul(a, b)
        n = _C.workspace_allocations()
        for _ in range(5):
            ops.matmul(a, b)
        # 2 threads: the worker grows once when it first claims a part
        assert _C.workspace_allocations() - n <= threads - 1
    assert runtime.workspace_bytes() > 0
    before = runtime.workspace_bytes()
    runtime.release_workspace()
    assert runtime.workspace_bytes() < before
    np.testing.assert_array_equal(ops.matmul(a, b), want)
    assert fastnn.info()["workspace_bytes"] == runtime.workspace_bytes()


def test_training_steps_allocate_no_scratch():
    """Steady state: after the first steps, a training loop (GEMMs, losses,
    optimizer, gradient clipping) takes all its scratch from the workspace.
    On 2 threads, which thread runs which part varies, so the worker may
    still grow once to the step's high-water mark (bounded, not per step)."""
    from fastnn import nn, optim
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 400), nn.ReLU(), nn.Linear(400, 10))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss = nn.CrossEntropyLoss()
    x = np.random.default_rng(0).standard_normal((128, 300), dtype=np.float32)
    y = np.arange(128) % 10

    def step():
        loss(model(x), y)
        opt.zero_grad()
        model.backward(loss.backward())
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    for threads, extra in ((1, 0), (2, 2)):
        fastnn.set_num_threads(threads)
        for _ in range(2):
            step()
        n = _C.workspace_allocations()
        for _ in range(10):
            step()
        assert _C.workspace_allocations() - n <= extra


# ---------------------------------------------------------- fork safety --

def _train_steps(steps, seed=0):
    """A few SGD steps of a model big enough that every kernel runs threaded."""
    from fastnn import nn, optim
    fastnn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((256, 256), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    for _ in range(steps):
        loss(model(x), y)
        opt.zero_grad()
        model.backward(loss.backward())
        opt.step()
    return float(loss(model(x), y))


def _fork_child(q):
    v = _train_steps(3)
    q.put((v, fastnn.get_num_threads(), len(os.listdir("/proc/self/task"))))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc (Linux)")
def test_forked_child_trains_threaded_after_threaded_parent():
    """An OpenMP pool does not survive fork(): a child forked after the parent
    ran threaded kernels used to hang in its first threaded kernel. fastnn's
    own pool starts afresh in the child, which trains on 2 threads and gets
    the parent's bits."""
    import multiprocessing as mp
    fastnn.set_num_threads(2)
    want = _train_steps(3)                     # the parent's pool now exists
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_fork_child, args=(q,))
    p.start()
    p.join(timeout=60)
    if p.is_alive():
        p.kill()
        pytest.fail("the forked child hung in a threaded kernel")
    assert p.exitcode == 0
    got, threads, tasks = q.get(timeout=5)
    assert threads == 2 and tasks >= 2         # it made its own worker
    assert got == want


# ---------------------------------------------- one math library (fmath.h) --

def test_sigmoid_and_fused_bce_share_their_bits():
    """BCEWithLogitsLoss's gradient is l sigmoid(x) - p y: with y = 0 (and 1),
    reduction='sum', it is Sigmoid(x) (and Sigmoid(x) - 1) bit for bit, since
    both come from fmath.h's one sigmoid."""
    from fastnn import nn
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000).astype(np.float32) * 8,
                        np.float32([0, -0.0, 30, -30, 88, -88, 1e-8, -1e-8])])[None, :]
    s = nn.Sigmoid()(x)
    for t in (0.0, 1.0):
        loss = nn.BCEWithLogitsLoss(reduction="sum")
        loss(x, np.full_like(x, t))
        g = loss.backward()
        np.testing.assert_array_equal(g, s - np.float32(t))


# -------------------------------------------- the trust boundary (Cython) --

def test_softmax_kernels_work_in_place():
    """fastnn.h promises y may be x (forward) and dx may be dy (backward)."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((7, 300)) * 5).astype(np.float32)
    dy = rng.standard_normal((7, 300)).astype(np.float32)
    for log in (False, True):
        y = np.empty_like(x)
        _C.softmax_forward(7, 300, x, y, log)
        io = x.copy()
        _C.softmax_forward(7, 300, io, io, log)
        np.testing.assert_array_equal(io, y)
        dx = np.empty_like(x)
        _C.softmax_backward(7, 300, y, dy, dx, log)
        g = dy.copy()
        _C.softmax_backward(7, 300, y, g, g, log)
        np.testing.assert_array_equal(g, dx)


@pytest.mark.parametrize("bad", [-1, 10, 2**40])
def test_class_index_out_of_range_raises(bad):
    """The loss kernels bound-check class indices themselves (C returns
    FNN_EINDEX) whatever the Python layer checked."""
    x = np.zeros((4, 10), np.float32)
    t = np.array([1, 2, bad, 3], np.int64)
    rm, rc, rl = np.empty(4, np.float32), np.empty(4), np.empty(4)
    with pytest.raises(ValueError, match=f"class index {bad}"):
        _C.cross_entropy_forward(x, t, None, 0.0, 1.0, None, rm, rc, rl)
    with pytest.raises(ValueError, match=f"class index {bad}"):
        _C.nll_forward(x, t, None, 1.0, None, rl)
    with pytest.raises(ValueError, match=f"class index {bad}"):
        _C.nll_backward(t, None, 1.0, None, np.empty((4, 10), np.float32))
    with pytest.raises(ValueError, match=f"class index {bad}"):
        _C.multi_margin_forward(x, t, None, 1, 1.0, 1.0, None, rl)


# ------------------------------------------------------------- denormals --

def test_training_with_denormal_weights_and_inputs_stays_finite():
    """Weights and inputs scaled into the float32 denormal range: the step
    runs with flush-to-zero inside the kernels, every output is finite and
    the products that would be denormal come out 0 (the speed of such a step
    is the bench case runtime/denormal)."""
    from fastnn import nn, optim
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    for p in model.parameters():
        p.data[...] = p.data * np.float32(1e-39)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss = nn.CrossEntropyLoss()
    x = (np.random.default_rng(0).standard_normal((64, 64)) * 1e-39).astype(np.float32)
    y = np.arange(64) % 10
    out = model(x)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(model[0](x), 0.0)     # denormal x denormal: flushed
    v = loss(out, y)
    opt.zero_grad()
    model.backward(loss.backward())
    opt.step()
    assert np.isfinite(v)
    for p in model.parameters():
        assert np.isfinite(p.data).all() and np.isfinite(p.grad).all()


def _boundary_calls():
    """(name, call(args), good args) for a sample of every .pxi family."""
    f = lambda *s: np.zeros(s, np.float32)                      # noqa: E731
    i64 = np.zeros(4, np.int64)
    return [
        ("relu_forward", _C.relu_forward, [f(4, 5), f(4, 5)]),
        ("gelu_backward", _C.gelu_backward, [False, f(20), f(20), f(20)]),
        ("softmax_forward", _C.softmax_forward, [4, 5, f(4, 5), f(4, 5)]),
        ("maxout_forward", _C.maxout_forward, [4, 5, f(20), f(4), np.zeros(4, np.int32)]),
        ("cross_entropy_forward", _C.cross_entropy_forward,
         [f(4, 3), i64, None, 0.0, 1.0, None, f(4), np.zeros(4), np.zeros(4)]),
        ("mse_backward", _C.mse_backward, [f(6), f(6), 1.0, None, f(6)]),
        ("bce_logits_forward", _C.bce_logits_forward, [f(2, 3), f(2, 3), f(3), 1.0, None, None]),
        ("dropout_forward", _C.dropout_forward, [1, f(8), f(8), np.zeros(8, np.uint8), 0.5]),
        ("rng_uniform", _C.rng_uniform, [1, 0, f(8)]),
        ("aug_hflip", _C.aug_hflip, [1, f(2, 1, 3, 3), f(2, 1, 3, 3), 0.5, np.zeros(2, np.uint8)]),
        ("sgemm", _C.sgemm, [False, False, 4, 5, 3, 1.0, f(4, 3), f(3, 5), 0.0, f(4, 5), None, 0,
                             False]),
    ]


@pytest.mark.parametrize("name,call,good", _boundary_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_cython_entry_points_check_what_they_hand_to_c(name, call, good):
    """Each wrong array an entry point can get raises TypeError/ValueError
    naming the argument (never a crash): None, a list, the wrong dtype, a
    non-contiguous view, the wrong size, a read-only output."""
    call(*good)                                                  # the good call works
    for k, v in enumerate(good):
        if not isinstance(v, np.ndarray):
            continue
        bad_values = [(None, TypeError), ([0.0] * v.size, TypeError),
                      (v.astype(np.float64 if v.dtype != np.float64 else np.float32), TypeError),
                      (np.zeros(v.size + 3, v.dtype), ValueError)]
        if name == "rng_uniform":                                # fills any size
            bad_values.pop()
        if v.ndim >= 1 and v.size > 1 and name != "sgemm":
            bad_values.append((np.zeros(2 * v.size, v.dtype)[::2].reshape(v.shape), ValueError))
        ro = v.copy()
        ro.flags.writeable = False
        for bad, exc in bad_values:
            args = list(good)
            args[k] = bad
            if bad is None and name in ("cross_entropy_forward", "mse_backward",
                                        "bce_logits_forward") and k in (2, 3, 5):
                continue                                         # optional arguments
            with pytest.raises(exc):
                call(*args)
        args = list(good)
        args[k] = ro
        try:
            call(*args)                                          # an input: fine read-only
        except ValueError as e:
            assert "read-only" in str(e)


def test_gather_rows_checks_indices_and_sizes():
    src = np.arange(12, dtype=np.float32).reshape(4, 3)
    dst = np.empty((2, 3), np.float32)
    _C.gather_rows(src, np.array([3, 0]), dst, 12)
    np.testing.assert_array_equal(dst, src[[3, 0]])
    with pytest.raises(ValueError, match="idx"):
        _C.gather_rows(src, np.array([4, 0]), dst, 12)
    with pytest.raises(ValueError, match="idx"):
        _C.gather_rows(src, np.array([-1, 0]), dst, 12)
    with pytest.raises(ValueError, match="row_bytes"):
        _C.gather_rows(src, np.array([1, 0]), dst, 16)
    with pytest.raises(ValueError, match="dst"):
        _C.gather_rows(src, np.array([1, 0, 2]), dst, 12)
    with pytest.raises(TypeError):
        _C.gather_rows(src, np.array([1.0, 0.0]), dst, 12)


def test_concurrent_callers_share_the_pool_safely():
    """Application threads calling kernels at the same time: one uses the
    worker pool, the others run their call on themselves; every result is
    right and the same bits as alone."""
    import threading
    fastnn.set_num_threads(2)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((96, 200), dtype=np.float32)
    b = rng.standard_normal((200, 300), dtype=np.float32)
    x = rng.standard_normal(70000, dtype=np.float32)
    want_mm = ops.matmul(a, b)
    want_relu = np.maximum(x, 0)
    errors = []

    def work():
        try:
            for _ in range(30):
                np.testing.assert_array_equal(ops.matmul(a, b), want_mm)
                y = np.empty_like(x)
                _C.relu_forward(x, y)
                np.testing.assert_array_equal(y, want_relu)
        except Exception as e:                   # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "a caller hung"
    assert not errors, errors[0]


# ------------------------------------------------------ malloc thresholds --

_FAULTS = """
import resource, numpy as np, fastnn
from fastnn import nn
m = nn.ReLU()
x = np.ones((256, 4096), np.float32)
for _ in range(5):
    m(x); m.backward(x, input_grad=True)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    m(x); m.backward(x, input_grad=True)
print(fastnn.info()["malloc_tuned"], resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_state_steps_do_not_page_fault_their_arrays():
    """20 forward+backward steps of 4 MB activations: with the heap thresholds
    fixed at import the arrays are reused (few minor faults); with the tuning
    off, glibc hands them back to the OS and each step faults ~2000 pages."""
    if "-fsanitize" in fastnn.info()["cflags"]:
        pytest.skip("a sanitizer build replaces malloc: glibc's thresholds do not apply")
    on = run_python(_FAULTS)
    off = run_python(_FAULTS, FASTNN_MALLOC_TUNING="0")
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    tuned_on, faults_on = on.stdout.split()
    tuned_off, faults_off = off.stdout.split()
    assert (tuned_on, tuned_off) == ("True", "False")
    assert int(faults_on) < 500 < int(faults_off), (faults_on, faults_off)


def test_core_pingpong_tool_measures_a_round_trip_and_rejects_bad_cpus():
    """tools/core_pingpong.sh (how far apart two CPUs are, for reading the
    2-thread benchmark figures on a VM): a round trip in ns on two usable
    CPUs, and exit status 2 with a message for a CPU the process cannot
    use, never a hang."""
    if not shutil.which("gcc"):
        pytest.skip("core_pingpong: gcc not found")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tool = os.path.join(root, "tools", "core_pingpong.sh")
    cpus = sorted(os.sched_getaffinity(0))
    a, b = (cpus[0], cpus[1]) if len(cpus) > 1 else (cpus[0], cpus[0])
    p = subprocess.run(["bash", tool, str(a), str(b), "2000" if a != b else "20"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    m = re.search(r"CPU (\d+) <-> CPU (\d+): ([\d.]+) ns a round trip", p.stdout)
    assert m and (int(m[1]), int(m[2])) == (a, b) and float(m[3]) > 0
    bad = max(cpus) + 1 if max(cpus) + 1 < os.cpu_count() else 100000
    p = subprocess.run(["bash", tool, str(a), str(bad), "10"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert "cannot run threads on CPUs" in p.stderr or "usage" in p.stderr
