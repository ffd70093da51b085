"""Activations: forward and backward against float64 references, gradient
checks, large-|x| stability, NaN propagation, in-place use, thread-count and
ISA-path determinism, and the errors bad inputs raise."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import functional as F
from fastnn import nn
from fastnn._ext import _C
from helpers import check_module_grads

F32 = np.float32

# ---------------------------------------------------------------- references --

_erfc = np.frompyfunc(math.erfc, 1, 1)


def ncdf64(x):
    return np.asarray(_erfc(-np.asarray(x, np.float64) / math.sqrt(2.0)), np.float64) / 2.0


def npdf64(x):
    x = np.asarray(x, np.float64)
    return np.exp(-x * x / 2.0) / math.sqrt(2.0 * math.pi)


def sigmoid64(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax64(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax64(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


K = math.sqrt(2.0 / math.pi)


def gelu_tanh64(x):
    # 0.5 (1 + tanh(u)) written as sigmoid(2u): no cancellation for x < 0
    return x * sigmoid64(2 * K * (x + 0.044715 * x ** 3))


def gelu_tanh_grad64(x):
    s = sigmoid64(2 * K * (x + 0.044715 * x ** 3))
    s1 = sigmoid64(-2 * K * (x + 0.044715 * x ** 3))
    return s + x * s * s1 * 2 * K * (1 + 3 * 0.044715 * x * x)


def elu64(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_grad64(x, alpha):
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))


def p32(v):
    """A parameter as the kernels see it (float32), back in float64."""
    return float(np.float32(v))


# Each entry: constructor, forward reference f(x), derivative reference f'(x)
# (both float64, elementwise).
ELEMENTWISE = {
    "ReLU": (lambda: nn.ReLU(), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), lambda x: np.where(x > 0, x, p32(0.1) * x),
                  lambda x: np.where(x > 0, 1.0, p32(0.1))),
    "LeakyReLU-neg": (lambda: nn.LeakyReLU(-0.5), lambda x: np.where(x > 0, x, -0.5 * x),
                      lambda x: np.where(x > 0, 1.0, -0.5)),
    "Sigmoid": (lambda: nn.Sigmoid(), sigmoid64, lambda x: sigmoid64(x) * (1 - sigmoid64(x))),
    "Tanh": (lambda: nn.Tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "Softplus": (lambda: nn.Softplus(), lambda x: np.where(x > 20, x, np.logaddexp(0, x)),
                 lambda x: np.where(x > 20, 1.0, sigmoid64(x))),
    "Softplus-b2": (lambda: nn.Softplus(beta=2.0, threshold=3.0),
                    lambda x: np.where(2 * x > 3, x, np.logaddexp(0, 2 * x) / 2),
                    lambda x: np.where(2 * x > 3, 1.0, sigmoid64(2 * x))),
    "Hardtanh": (lambda: nn.Hardtanh(), lambda x: np.clip(x, -1, 1),
                 lambda x: ((x > -1) & (x < 1)) * 1.0),
    "Hardtanh-0-6": (lambda: nn.Hardtanh(0.0, 6.0), lambda x: np.clip(x, 0, 6),
                     lambda x: ((x > 0) & (x < 6)) * 1.0),
    "ELU": (lambda: nn.ELU(), lambda x: elu64(x, 1.0), lambda x: elu_grad64(x, 1.0)),
    "ELU-a": (lambda: nn.ELU(alpha=1.7), lambda x: elu64(x, p32(1.7)),
              lambda x: elu_grad64(x, p32(1.7))),
    "ELU-neg": (lambda: nn.ELU(alpha=-0.5), lambda x: elu64(x, -0.5),
                lambda x: elu_grad64(x, -0.5)),
    "GELU": (lambda: nn.GELU(), lambda x: x * ncdf64(x), lambda x: ncdf64(x) + x * npdf64(x)),
    "GELU-tanh": (lambda: nn.GELU(approximate="tanh"), gelu_tanh64, gelu_tanh_grad64),
}
NAMES = sorted(ELEMENTWISE)
# GELU-tanh's far tail inherits the float32 rounding of its argument
# 2k(x + 0.044715 x^3) (~1e-6 relative of a value up to ~90), amplified by exp.
FWD_RTOL = {"GELU-tanh": 5e-5}


def make(name):
    return ELEMENTWISE[name][0]()


@pytest.fixture
def restore_runtime():
    nt, isa = fastnn.get_num_threads(), fastnn.get_isa()
    yield
    fastnn.set_num_threads(nt)
    fastnn.set_isa(isa)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def assert_same(a, b, msg=""):
    """Bitwise equal, except that NaNs need only be NaN in the same places
    (x86 may return either operand's NaN when both are NaN)."""
    na, nb = np.isnan(a), np.isnan(b)
    np.testing.assert_array_equal(na, nb, err_msg=msg)
    np.testing.assert_array_equal(bits(a)[~na], bits(b)[~nb], err_msg=msg)


# ---------------------------------------------------------- forward/backward --

@pytest.mark.parametrize("name", NAMES)
def test_elementwise_matches_float64(name):
    _, f, df = ELEMENTWISE[name]
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((37, 29)) * 4).astype(F32)
    x[0, :6] = [0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0]
    g = rng.standard_normal(x.shape).astype(F32)
    m = make(name)
    y = m.forward(x)
    assert y.dtype == F32 and y.shape == x.shape
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, f(x64), rtol=FWD_RTOL.get(name, 2e-6), atol=1e-37)
    dx = m.backward(g, input_grad=True)
    assert dx.dtype == F32 and dx.shape == x.shape
    # backward may use the cached float32 output (1 - y^2 etc.), so allow an
    # absolute error of a few float32 ulps of 1 on the derivative
    np.testing.assert_allclose(dx, g * df(x64), rtol=1e-5, atol=5e-7 * np.abs(g).max())


@pytest.mark.parametrize("name", NAMES)
def test_functional_equals_module(name):
    m = make(name)
    fn = {"ReLU": lambda x: F.relu(x), "LeakyReLU": lambda x: F.leaky_relu(x, 0.1),
          "LeakyReLU-neg": lambda x: F.leaky_relu(x, negative_slope=-0.5),
          "Sigmoid": F.sigmoid, "Tanh": F.tanh, "Softplus": F.softplus,
          "Softplus-b2": lambda x: F.softplus(x, beta=2.0, threshold=3.0),
          "Hardtanh": F.hardtanh, "Hardtanh-0-6": lambda x: F.hardtanh(x, 0.0, 6.0),
          "ELU": F.elu, "ELU-a": lambda x: F.elu(x, alpha=1.7),
          "ELU-neg": lambda x: F.elu(x, -0.5), "GELU": F.gelu,
          "GELU-tanh": lambda x: F.gelu(x, approximate="tanh")}[name]
    x = (np.random.default_rng(2).standard_normal((5, 3, 7)) * 3).astype(F32)
    np.testing.assert_array_equal(fn(x), m.forward(x))


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name):
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, (3, 7)).astype(F32)
    # keep clear of the kinks (0, +-1, 6, softplus' threshold/beta = 1.5)
    for k in (0.0, 1.0, -1.0, 1.5, 6.0):
        near = np.abs(x - k) < 0.05
        x[near] += 0.1
    check_module_grads(make(name), x)


@pytest.mark.parametrize("shape", [(0,), (1,), (5,), (17,), (3, 0), (2, 3, 4, 5), ()])
def test_elementwise_any_shape(shape):
    rng = np.random.default_rng(4)
    x = np.asarray(rng.standard_normal(shape), dtype=F32)
    for name in NAMES:
        m = make(name)
        y = m.forward(x)
        assert y.shape == x.shape
        np.testing.assert_allclose(y, ELEMENTWISE[name][1](x.astype(np.float64)), rtol=2e-6)
        assert m.backward(np.ones(shape, F32), input_grad=True).shape == x.shape


def test_noncontiguous_and_int_inputs():
    rng = np.random.default_rng(5)
    base = rng.standard_normal((8, 10)).astype(F32)
    views = [base[:, ::2], base.T, base[::3]]
    for name in ("ReLU", "GELU", "Softplus", "Tanh"):
        for v in views:
            np.testing.assert_array_equal(make(name).forward(v),
                                          make(name).forward(np.ascontiguousarray(v)))
    xi = np.arange(-5, 5, dtype=np.int16)
    np.testing.assert_array_equal(F.relu(xi), np.maximum(xi, 0).astype(F32))
    np.testing.assert_array_equal(F.relu([[-1.0, 2.0]]), np.array([[0.0, 2.0]], F32))


# ------------------------------------------------------------ hard inputs --

EXTREME = np.array([-3.4e38, -1e30, -1e4, -1e3, -120.0, -100.0, -88.7, -87.0, -50.0, -20.0,
                    -9.0, -5.0, -1e-30, -0.0, 0.0, 1e-30, 5.0, 9.0, 20.0, 50.0, 87.0, 88.7,
                    100.0, 120.0, 1e3, 1e4, 1e30, 3.4e38], dtype=F32)


@pytest.mark.parametrize("name", NAMES)
def test_large_inputs_finite(name):
    x = EXTREME.copy()
    m = make(name)
    with np.errstate(all="ignore"):
        y = m.forward(x)
        assert np.all(np.isfinite(y)), (name, x[~np.isfinite(y)])
        dx = m.backward(np.ones_like(x), input_grad=True)
        assert np.all(np.isfinite(dx)), (name, x[~np.isfinite(dx)])
        # where float64 is comfortably representable, also right
        ok = np.abs(x) <= 1e4
        x64 = x[ok].astype(np.float64)
        np.testing.assert_allclose(y[ok], ELEMENTWISE[name][1](x64),
                                   rtol=FWD_RTOL.get(name, 2e-6), atol=1e-37)


def test_large_input_limits():
    x = np.array([-1e4, 1e4], F32)
    np.testing.assert_array_equal(F.sigmoid(x), [0.0, 1.0])
    np.testing.assert_array_equal(F.tanh(x), [-1.0, 1.0])
    np.testing.assert_array_equal(F.softplus(x), [0.0, 1e4])
    np.testing.assert_array_equal(F.softplus(x, threshold=math.inf), [0.0, 1e4])
    np.testing.assert_array_equal(F.gelu(x), [0.0, 1e4])
    np.testing.assert_array_equal(F.gelu(x, "tanh"), [0.0, 1e4])
    np.testing.assert_array_equal(F.elu(x, alpha=2.0), [-2.0, 1e4])
    # the far GELU tail keeps its relative accuracy (1 + erf(x) would be 0)
    t = np.array([-5.0, -8.0, -12.0], F32)
    np.testing.assert_allclose(F.gelu(t), t * ncdf64(t), rtol=2e-6)
    # sigmoid's lower tail is e^x, not 0
    np.testing.assert_allclose(F.sigmoid(np.array([-80.0], F32)), [np.exp(-80.0)], rtol=2e-6)


@pytest.mark.parametrize("name", NAMES)
def test_nan_propagates(name):
    x = np.array([1.0, np.nan, -2.0, 0.5], F32)
    y = make(name).forward(x)
    assert np.isnan(y[1]) and not np.isnan(y[[0, 2, 3]]).any()


def test_relu_nan_and_signed_zero():
    y = F.relu(np.array([np.nan, -np.inf, np.inf, -0.0, -1.0], F32))
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:], [0.0, np.inf, 0.0, 0.0])


# -------------------------------------------------------- softmax family --

@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,dim", [((7, 13), -1), ((7, 13), 0), ((4, 3, 5), 1),
                                       ((2, 3, 4, 5), -3), ((19,), 0), ((3, 1), -1),
                                       ((5, 2000), 1), ((6, 37), -1)])
def test_softmax_matches_float64(log, shape, dim):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(shape) * 5).astype(F32)
    g = rng.standard_normal(shape).astype(F32)
    m = nn.LogSoftmax(dim=dim) if log else nn.Softmax(dim=dim)
    y = m.forward(x)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    ax = dim % x.ndim
    s = softmax64(x64, ax)
    if log:
        np.testing.assert_allclose(y, log_softmax64(x64, ax), rtol=1e-5, atol=2e-6)
        ref = g64 - s * g64.sum(axis=ax, keepdims=True)
    else:
        np.testing.assert_allclose(y, s, rtol=2e-6, atol=1e-30)
        ref = s * (g64 - (g64 * s).sum(axis=ax, keepdims=True))
    assert y.flags.c_contiguous
    dx = m.backward(g, input_grad=True)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    np.testing.assert_allclose(dx, ref, rtol=2e-5, atol=2e-6)
    fn = F.log_softmax if log else F.softmax
    np.testing.assert_array_equal(fn(x, dim=dim), y)


@pytest.mark.parametrize("cls", [nn.Softmax, nn.LogSoftmax])
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_gradcheck(cls, dim):
    x = np.random.default_rng(7).standard_normal((3, 5)).astype(F32)
    check_module_grads(cls(dim=dim), x)


def test_softmax_extremes_and_nan():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e38, -3e38, 0.0],
                  [1.0, np.nan, 2.0], [0.0, 1.0, 2.0]], F32)
    y = F.softmax(x)
    ly = F.log_softmax(x)
    np.testing.assert_array_equal(y[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_array_equal(y[2], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(ly[0], [0.0, -2e4, -1e4])
    np.testing.assert_array_equal(ly[2], np.array([0.0, -np.inf, -3e38], F32))  # -6e38: -inf
    assert np.isnan(y[3]).all() and np.isnan(ly[3]).all()       # NaN poisons its row only
    np.testing.assert_allclose(y[4], softmax64(x[4].astype(np.float64)), rtol=2e-6)
    for cls in (nn.Softmax, nn.LogSoftmax):
        m = cls()
        m.forward(x[[0, 1, 2, 4]])
        assert np.isfinite(m.backward(np.ones((4, 3), F32), input_grad=True)).all()


def test_softmax_empty_rows_and_columns():
    for shape in [(0, 5), (3, 0), (0,)]:
        x = np.zeros(shape, F32)
        for cls in (nn.Softmax, nn.LogSoftmax):
            m = cls()
            assert m.forward(x).shape == shape
            assert m.backward(np.zeros(shape, F32), input_grad=True).shape == shape


def test_softmax_long_rows_sum_to_one():
    x = np.random.default_rng(8).standard_normal((3, 100003)).astype(F32)
    s = F.softmax(x).astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(s, 1.0, rtol=1e-5)


# ------------------------------------------------------------------ maxout --

def maxout64(x, p):
    n, c = x.shape
    return x.reshape(n, c // p, p).max(axis=-1)


@pytest.mark.parametrize("pieces", [1, 2, 3, 5])
def test_maxout(pieces):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((11, pieces * 13)).astype(F32)
    m = nn.Maxout(pieces)
    y = m.forward(x)
    np.testing.assert_array_equal(y, maxout64(x, pieces))
    g = rng.standard_normal(y.shape).astype(F32)
    dx = m.backward(g, input_grad=True)
    ref = np.zeros_like(x).reshape(11, 13, pieces)
    am = x.reshape(11, 13, pieces).argmax(-1)
    np.put_along_axis(ref, am[..., None], g[..., None], axis=-1)
    np.testing.assert_array_equal(dx, ref.reshape(x.shape))
    np.testing.assert_array_equal(F.maxout(x, pieces), y)
    distinct = rng.permutation(x[:2].size).astype(F32).reshape(2, -1) * 0.1
    check_module_grads(nn.Maxout(pieces), distinct)


def test_maxout_ties_and_nan():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 2.0, 2.0],
                  [np.nan, 5.0, 1.0, 4.0, np.nan, np.nan]], F32)
    m = nn.Maxout(3)
    y = m.forward(x)
    np.testing.assert_array_equal(y[0], [3.0, 2.0])
    assert np.isnan(y[1]).all()
    dx = m.backward(np.array([[10.0, 20.0], [30.0, 40.0]], F32), input_grad=True)
    np.testing.assert_array_equal(dx, [[0, 10, 0, 0, 20, 0], [30, 0, 0, 0, 40, 0]])


# ----------------------------------------------------------------- in place --

@pytest.mark.parametrize("name,ctor", [("ReLU", lambda ip: nn.ReLU(inplace=ip)),
                                       ("LeakyReLU", lambda ip: nn.LeakyReLU(0.2, inplace=ip)),
                                       ("Hardtanh", lambda ip: nn.Hardtanh(-0.5, 2.0, inplace=ip)),
                                       ("ELU", lambda ip: nn.ELU(0.7, inplace=ip))])
def test_inplace(name, ctor):
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((6, 9)) * 2).astype(F32)
    g = rng.standard_normal(x.shape).astype(F32)
    ref = ctor(False)
    y_ref = ref.forward(x)
    dx_ref = ref.backward(g, input_grad=True)
    xi = x.copy()
    m = ctor(True)
    y = m.forward(xi)
    assert y is xi
    np.testing.assert_array_equal(xi, y_ref)
    np.testing.assert_array_equal(m.backward(g, input_grad=True), dx_ref)
    # a strided view is written back in place too
    big = np.zeros((6, 18), F32)
    big[:, ::2] = x
    view = big[:, ::2]
    m2 = ctor(True)
    assert m2.forward(view) is view
    np.testing.assert_array_equal(big[:, ::2], y_ref)
    np.testing.assert_array_equal(big[:, 1::2], 0.0)
    np.testing.assert_array_equal(m2.backward(g, input_grad=True), dx_ref)
    assert "inplace=True" in repr(m)


def test_functional_inplace():
    x = np.array([-1.0, 2.0], F32)
    assert F.relu(x, inplace=True) is x
    np.testing.assert_array_equal(x, [0.0, 2.0])
    x = np.array([-1.0, 2.0], F32)
    F.leaky_relu(x, 0.5, inplace=True)
    np.testing.assert_array_equal(x, [-0.5, 2.0])
    x = np.array([-3.0, 3.0], F32)
    F.hardtanh(x, inplace=True)
    np.testing.assert_array_equal(x, [-1.0, 1.0])
    x = np.array([-100.0, 3.0], F32)
    F.elu(x, inplace=True)
    np.testing.assert_array_equal(x, [-1.0, 3.0])


# ------------------------------------------------------------- determinism --

def _run_all(x, g):
    out = []
    for name in NAMES:
        m = make(name)
        out += [m.forward(x), m.backward(g, input_grad=True)]
    for cls in (nn.Softmax, nn.LogSoftmax):
        m = cls()
        out += [m.forward(x), m.backward(g, input_grad=True)]
    m = nn.Maxout(4)
    out += [m.forward(x), m.backward(g[:, : x.shape[1] // 4], input_grad=True)]
    return out


def test_threads_bitwise_identical(restore_runtime):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((1000, 1004)) * 3).astype(F32)      # ~1e6 elements
    x[::97, ::89] = np.nan
    g = rng.standard_normal(x.shape).astype(F32)
    fastnn.set_num_threads(1)
    base = _run_all(x, g)
    fastnn.set_num_threads(2)
    for a, b in zip(base, _run_all(x, g)):
        assert_same(a, b, "1 vs 2 threads")


def test_isa_paths_bitwise_identical(restore_runtime):
    # the same IEEE operations in the same order on every path (no FMA
    # contraction, no reassociation), so SSE2, AVX2 and AVX-512 agree
    rng = np.random.default_rng(15)
    x = (rng.standard_normal((123, 164)) * 6).astype(F32)
    x[0, : EXTREME.size] = EXTREME
    x[5, 100: 100 + EXTREME.size] = EXTREME[::-1]
    x[1, 3] = np.nan
    g = rng.standard_normal(x.shape).astype(F32)
    fastnn.set_num_threads(1)
    fastnn.set_isa("ref")
    base = _run_all(x, g)
    for isa in fastnn.available_isas()[1:]:
        fastnn.set_isa(isa)
        for a, b in zip(base, _run_all(x, g)):
            assert_same(a, b, f"ref vs {isa}")


def test_inplace_thread_split(restore_runtime):
    # odd sizes, unaligned thread ranges, in place: same as out of place
    fastnn.set_num_threads(2)
    x = np.random.default_rng(12).standard_normal(300_001).astype(F32)
    for fn in (F.relu, F.elu, F.hardtanh, F.leaky_relu):
        y = fn(x)
        xi = x.copy()
        fn(xi, inplace=True)
        np.testing.assert_array_equal(bits(xi), bits(y))


# ---------------------------------------------------- vectorised math kernels --

def ulps(got, ref):
    """|got - ref| in float32 ulps of ref; subnormal results count in units
    of the smallest normal (the kernels flush them to zero)."""
    ref32 = ref.astype(F32)
    sp = np.maximum(np.spacing(np.abs(ref32)).astype(np.float64), np.finfo(F32).tiny)
    return np.abs(got.astype(np.float64) - ref) / sp


@pytest.mark.parametrize("fn,lo,hi,ref,bound", [
    ("exp", -110.0, 0.0, np.exp, 2.0),          # below e^-87.3 (subnormal): 0
    ("expm1", -30.0, 0.0, np.expm1, 2.0),
    ("log1p", 0.0, 1.0, np.log1p, 3.0),
    ("tanh", -12.0, 12.0, np.tanh, 3.0),
    ("sigmoid", -110.0, 30.0, sigmoid64, 3.0),
    ("ncdf", -15.0, 8.0, ncdf64, 8.0),
    ("npdf", -15.0, 15.0, npdf64, 3.0),
])
def test_math_kernels_ulp(fn, lo, hi, ref, bound, restore_runtime):
    rng = np.random.default_rng(13)
    tiny = np.logspace(-30, 0, 2001)
    x = np.concatenate([np.linspace(lo, hi, 100_001), rng.uniform(lo, hi, 100_000), tiny, -tiny])
    x = x[(x >= lo) & (x <= hi)].astype(F32)
    r = ref(x.astype(np.float64))
    for isa in fastnn.available_isas():
        fastnn.set_isa(isa)
        y = np.empty_like(x)
        _C.act_mathfn(fn, x, y)
        e = ulps(y, r)
        assert e.max() <= bound, (isa, fn, x[np.argmax(e)], e.max())


# ------------------------------------------------------------------ errors --

def test_bad_inputs_raise():
    x64 = np.ones((2, 4))
    for m in [make(n) for n in NAMES] + [nn.Softmax(), nn.LogSoftmax(), nn.Maxout(2)]:
        who = type(m).__name__
        with pytest.raises(TypeError, match=f"{who}: x must be float32, got dtype float64"):
            m.forward(x64)
        with pytest.raises(RuntimeError, match=f"{who}.backward: no saved context"):
            m.backward(np.ones((2, 4), F32), input_grad=True)
        y = m.forward(np.ones((2, 4), F32))
        with pytest.raises(ValueError, match=f"{who}: grad_out has shape \\(3, 4\\), expected"):
            m.backward(np.ones((3, 4), F32), input_grad=True)
        m.forward(np.ones((2, 4), F32))
        with pytest.raises(TypeError, match=f"{who}: grad_out must be float32"):
            m.backward(np.ones(y.shape), input_grad=True)
        with pytest.raises(TypeError, match=f"{who}: x must be a float32 array"):
            m.forward("abc")
    with pytest.raises(TypeError, match="relu: x must be float32"):
        F.relu(x64)
    with pytest.raises(TypeError, match="softmax: x must be float32"):
        F.softmax(x64)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"Maxout: x has C=5 features \(shape \(2, 5\)\), "
                                         r"which is not divisible by pieces=2"):
        nn.Maxout(2).forward(np.ones((2, 5), F32))
    with pytest.raises(ValueError, match=r"Maxout: x must be 2-D \(N, C\), got shape \(2, 4, 1\)"):
        nn.Maxout(2).forward(np.ones((2, 4, 1), F32))
    with pytest.raises(ValueError, match="maxout: x has C=3"):
        F.maxout(np.ones((1, 3), F32), 2)
    for cls in (nn.Softmax, nn.LogSoftmax):
        with pytest.raises(ValueError, match=f"{cls.__name__}: x must have at least 1 dimension, "
                                             f"got a 0-d array"):
            cls().forward(np.float32(1.0))
        with pytest.raises(ValueError, match=f"{cls.__name__}: dim=2 is out of range for x "
                                             r"with shape \(2, 3\)"):
            cls(dim=2).forward(np.ones((2, 3), F32))
    with pytest.raises(ValueError, match="softmax: dim=-3 is out of range"):
        F.softmax(np.ones((2, 3), F32), dim=-3)
    with pytest.raises(ValueError, match="log_softmax: x must have at least 1 dimension"):
        F.log_softmax(np.array(1.0, F32))


def test_bad_parameters_raise():
    cases = [
        (TypeError, "LeakyReLU: negative_slope must be a real number", lambda: nn.LeakyReLU("a")),
        (ValueError, "LeakyReLU: negative_slope must be finite", lambda: nn.LeakyReLU(math.nan)),
        (ValueError, "LeakyReLU: inplace=True needs negative_slope >= 0",
         lambda: nn.LeakyReLU(-0.1, inplace=True)),
        (TypeError, "ReLU: inplace must be a bool", lambda: nn.ReLU(inplace="yes")),
        (ValueError, "Softplus: beta must be non-zero", lambda: nn.Softplus(beta=0.0)),
        (ValueError, "Softplus: beta must be finite", lambda: nn.Softplus(beta=math.inf)),
        (ValueError, "Softplus: threshold must not be NaN",
         lambda: nn.Softplus(threshold=math.nan)),
        (ValueError, "Hardtanh: min_val must be less than max_val",
         lambda: nn.Hardtanh(1.0, -1.0)),
        (TypeError, "Hardtanh: max_val must be a real number", lambda: nn.Hardtanh(0.0, None)),
        (ValueError, "ELU: alpha must be finite", lambda: nn.ELU(alpha=math.inf)),
        (ValueError, "ELU: inplace=True needs alpha >= 0", lambda: nn.ELU(-1.0, inplace=True)),
        (ValueError, "GELU: approximate must be 'none' or 'tanh', got 'erf'",
         lambda: nn.GELU(approximate="erf")),
        (ValueError, "Maxout: pieces must be a positive integer, got 0", lambda: nn.Maxout(0)),
        (ValueError, "Maxout: pieces must be a positive integer, got 2.0", lambda: nn.Maxout(2.0)),
        (TypeError, "Softmax: dim must be an integer, got float", lambda: nn.Softmax(dim=1.0)),
        (TypeError, "LogSoftmax: dim must be an integer, got NoneType",
         lambda: nn.LogSoftmax(dim=None)),
        (ValueError, "gelu: approximate must be", lambda: F.gelu(np.ones(2, F32), "x")),
        (ValueError, "softplus: beta must be non-zero",
         lambda: F.softplus(np.ones(2, F32), 1e-300)),
    ]
    for exc, msg, fn in cases:
        with pytest.raises(exc, match=msg):
            fn()


def test_inplace_errors():
    with pytest.raises(TypeError, match="ReLU: inplace=True needs x to be a float32 numpy array, "
                                        "got dtype float64"):
        nn.ReLU(inplace=True).forward(np.ones(3))
    with pytest.raises(TypeError, match="relu: inplace=True needs x to be a float32 numpy array, "
                                        "got list"):
        F.relu([1.0, 2.0], inplace=True)
    ro = np.ones(3, F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="Hardtanh: inplace=True needs a writeable x"):
        nn.Hardtanh(inplace=True).forward(ro)


def test_repr_and_defaults():
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.Softmax()) == "Softmax(dim=-1)"
    assert repr(nn.Maxout(4)) == "Maxout(pieces=4)"
    assert nn.ReLU().num_parameters() == 0


# ------------------------------------------------------------------- torch --

def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x = (rng.standard_normal((16, 24)) * 3).astype(F32)
    g = rng.standard_normal(x.shape).astype(F32)
    pairs = [
        (nn.ReLU(), torch.nn.ReLU()), (nn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1)),
        (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Tanh(), torch.nn.Tanh()),
        (nn.Softplus(2.0, 3.0), torch.nn.Softplus(2.0, 3.0)),
        (nn.Hardtanh(-0.5, 2.0), torch.nn.Hardtanh(-0.5, 2.0)),
        (nn.ELU(1.3), torch.nn.ELU(1.3)), (nn.GELU(), torch.nn.GELU()),
        (nn.GELU("tanh"), torch.nn.GELU(approximate="tanh")),
        (nn.Softmax(dim=0), torch.nn.Softmax(dim=0)), (nn.LogSoftmax(), torch.nn.LogSoftmax(-1)),
    ]
    for ours, theirs in pairs:
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.tensor(g))
        y = ours.forward(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=repr(ours))
        np.testing.assert_allclose(ours.backward(g, input_grad=True), xt.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=repr(ours))
    # maxout as torch's max over groups
    xt = torch.tensor(x, requires_grad=True)
    yt = xt.view(16, 6, 4).max(dim=-1).values
    yt.backward(torch.tensor(g[:, :6]))
    m = nn.Maxout(4)
    np.testing.assert_array_equal(m.forward(x), yt.detach().numpy())
    np.testing.assert_array_equal(m.backward(g[:, :6], input_grad=True), xt.grad.numpy())
