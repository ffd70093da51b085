"""Loss functions (fastnn.nn.loss, csrc/loss.c): values and gradients against
float64 numpy references, finite differences, fused vs recomputed backward,
thread-count and ISA independence, argument errors, and torch if installed."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from helpers import numeric_grad

RNG = np.random.default_rng(1234)
REDUCTIONS = ("mean", "sum", "none")


def f32(a):
    return np.asarray(a, dtype=np.float32)


# ------------------------------------------------------ float64 references --
# Each returns (per-sample losses, d per-sample loss / d input, denominator of
# the mean) in float64.

def ce_ref(x, t, weight=None, ls=0.0, probs=False):
    x = x.astype(np.float64)
    N, C = x.shape
    m = x.max(1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(1, keepdims=True))
    logp = x - lse
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    if probs:
        q = (t.astype(np.float64) * (1 - ls) + ls / C) * w
        denom = N
    else:
        q = np.full((N, C), ls / C) * w
        q[np.arange(N), t] += (1 - ls) * w[t]
        denom = w[t].sum()
    per = -(q * logp).sum(1)
    grad = np.exp(logp) * q.sum(1, keepdims=True) - q
    return per, grad, denom


def nll_ref(x, t, weight=None):
    x = x.astype(np.float64)
    N, C = x.shape
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    per = -w[t] * x[np.arange(N), t]
    grad = np.zeros((N, C))
    grad[np.arange(N), t] = -w[t]
    return per, grad, w[t].sum()


def mm_ref(x, t, p=1, margin=1.0, weight=None):
    x = x.astype(np.float64)
    N, C = x.shape
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    z = margin - x[np.arange(N), t][:, None] + x
    z[np.arange(N), t] = 0.0
    act = z > 0
    per = (np.where(act, z, 0.0) ** p).sum(1) * w[t] / C
    gj = np.where(act, 1.0 if p == 1 else 2 * z, 0.0) * (w[t] / C)[:, None]
    gj[np.arange(N), t] = -gj.sum(1)
    return per, gj, N


def mse_ref(x, y):
    d = x.astype(np.float64) - y.astype(np.float64)
    return d * d, 2 * d, d.size


def bce_ref(x, y, pos_weight=None):
    shape = np.shape(x)
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    pw = 1.0 if pos_weight is None else pos_weight.astype(np.float64)
    lw = 1 + (pw - 1) * y
    softplus_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)
    per = (1 - y) * x + lw * softplus_neg
    with np.errstate(over="ignore"):
        grad = lw / (1 + np.exp(-x)) - pw * y
    return per.reshape(shape), grad.reshape(shape), x.size


def check_against(loss, x, t, ref, rtol=2e-6):
    """Value and gradient of `loss` for each reduction semantics against the
    float64 reference (per, grad, denom)."""
    per, grad, denom = ref
    red = loss.reduction
    v = loss(x, t)
    if red == "none":
        assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == per.shape
        np.testing.assert_allclose(v, per, rtol=rtol, atol=1e-6)
        go = RNG.uniform(0.5, 2.0, per.shape).astype(np.float32)
        g = loss.backward(go)
        expect = grad * (go.astype(np.float64).reshape(go.shape + (1,) * (grad.ndim - go.ndim)))
        unit = 2.0
    else:
        assert isinstance(v, float)
        expect_v = per.sum() / (denom if red == "mean" else 1.0)
        np.testing.assert_allclose(v, expect_v, rtol=rtol, atol=1e-9)
        g = loss.backward()
        expect = grad / (denom if red == "mean" else 1.0)
        unit = 1.0 / denom if red == "mean" else 1.0
    assert g.dtype == np.float32 and g.shape == np.shape(x)
    # a gradient entry is a difference of terms of size ~unit (e.g. p*S - q):
    # float32 rounding is relative to those, not to the (possibly 0) result
    scale = max(np.abs(expect).max(), unit)
    np.testing.assert_allclose(g, expect, rtol=1e-5, atol=2e-6 * scale)


# ------------------------------------------------------------ cross-entropy --

@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (7, 3), (33, 10), (9, 17), (5, 1000)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_indices(shape, reduction, ls, weighted):
    N, C = shape
    x = f32(RNG.standard_normal(shape) * 3)
    t = RNG.integers(0, C, N)
    w = f32(RNG.uniform(0.1, 2.0, C)) if weighted else None
    loss = nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=ls)
    check_against(loss, x, t, ce_ref(x, t, w, ls))


@pytest.mark.parametrize("shape", [(1, 1), (6, 4), (20, 19), (3, 300)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_probabilities(shape, reduction, ls, weighted):
    N, C = shape
    x = f32(RNG.standard_normal(shape) * 2)
    p = RNG.random(shape)
    p[0] = 0.0
    p[0, -1] = 1.0                               # a one-hot row
    p = f32(p / p.sum(1, keepdims=True))
    if N > 2:
        p[1] *= 3                                # an unnormalised row is used as given
    w = f32(RNG.uniform(0.1, 2.0, C)) if weighted else None
    loss = nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=ls)
    check_against(loss, x, p, ce_ref(x, p, w, ls, probs=True))


def test_cross_entropy_any_integer_dtype_and_lists():
    x = f32(RNG.standard_normal((6, 5)))
    t = RNG.integers(0, 5, 6)
    ref = nn.CrossEntropyLoss()(x, t)
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.uint64):
        assert nn.CrossEntropyLoss()(x, t.astype(dt)) == ref
    assert nn.CrossEntropyLoss()(x.tolist(), t.tolist()) == ref


def test_cross_entropy_extreme_logits_are_stable():
    x = f32([[1e4, -1e4, 0.0], [-3e4, -3e4, -3e4], [80.0, -80.0, 0.0], [0.0, 0.0, 1e-30]])
    t = np.array([1, 2, 0, 2])
    loss = nn.CrossEntropyLoss(reduction="none")
    v = loss(x, t)
    per, grad, _ = ce_ref(x, t)
    np.testing.assert_allclose(v, per, rtol=1e-6)
    assert np.all(np.isfinite(v))
    g = loss.backward(np.ones(4, np.float32))
    np.testing.assert_allclose(g, grad, atol=1e-6)


def test_cross_entropy_label_smoothing_one_is_uniform_target():
    x = f32(RNG.standard_normal((4, 6)))
    t = RNG.integers(0, 6, 4)
    uniform = np.full((4, 6), 1 / 6, np.float32)
    a = nn.CrossEntropyLoss(label_smoothing=1.0)(x, t)
    b = nn.CrossEntropyLoss()(x, uniform)
    assert a == pytest.approx(b, rel=1e-6)


# --------------------------------------------------------------- other losses --

@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (40, 33)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll(shape, reduction, weighted):
    N, C = shape
    x = f32(-RNG.random(shape) * 5)
    t = RNG.integers(0, C, N)
    w = f32(RNG.uniform(0.1, 2.0, C)) if weighted else None
    check_against(nn.NLLLoss(w, reduction=reduction), x, t, nll_ref(x, t, w))


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (8, 3), (25, 37)])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin(shape, p, margin, reduction, weighted):
    N, C = shape
    x = f32(RNG.standard_normal(shape))
    t = RNG.integers(0, C, N)
    w = f32(RNG.uniform(0.1, 2.0, C)) if weighted else None
    loss = nn.MultiMarginLoss(p, margin, w, reduction=reduction)
    check_against(loss, x, t, mm_ref(x, t, p, margin, w))


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 4, 5), (130, 70)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse(shape, reduction):
    x = f32(RNG.standard_normal(shape))
    y = f32(RNG.standard_normal(shape))
    check_against(nn.MSELoss(reduction=reduction), x, y, mse_ref(x, y))


def test_mse_extreme_values_do_not_overflow():
    x = f32([3e38, -3e38])
    y = f32([-3e38, 3e38])
    v = nn.MSELoss(reduction="sum")(x, y)
    assert v == pytest.approx(2 * (6e38) ** 2, rel=1e-6)


@pytest.mark.parametrize("shape", [(), (1,), (9,), (4, 6), (2, 3, 37), (70, 130)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pw", [None, "vector", "scalar"])
def test_bce_with_logits(shape, reduction, pw):
    x = f32(RNG.standard_normal(shape) * 4)
    y = f32(RNG.random(shape))
    if y.ndim:
        y.reshape(-1)[:2] = [0.0, 1.0][: y.size]
    C = shape[-1] if shape else 1
    pos = {None: None, "vector": f32(RNG.uniform(0.2, 3.0, C)),
           "scalar": f32([2.5])}[pw]
    loss = nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=pos)
    check_against(loss, x, y, bce_ref(x, y, pos))


def test_bce_extreme_logits_are_stable():
    x = f32([-1e4, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 1e4])
    y = f32([0.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.0, 1.0, 0.3])
    loss = nn.BCEWithLogitsLoss(reduction="none")
    v = loss(x, y)
    per, grad, _ = bce_ref(x, y)
    np.testing.assert_allclose(v, per, rtol=2e-6, atol=1e-7)
    g = loss.backward(np.ones(9, np.float32))
    np.testing.assert_allclose(g, grad, rtol=1e-6, atol=1e-7)


# --------------------------------------------------- finite differences --

def _fd_check(loss, x, t, rtol=2e-2, atol=2e-4):
    v0 = loss(x, t)
    g = loss.backward().copy()
    num = numeric_grad(lambda: loss(x, t), x, eps=1e-3)
    np.testing.assert_allclose(g, num, rtol=rtol, atol=atol)
    assert loss(x, t) == v0          # numeric_grad restored x


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_finite_differences(reduction):
    x = f32(RNG.standard_normal((4, 5)))
    t = np.array([0, 4, 2, 2])
    w = f32([0.5, 1.0, 2.0, 1.5, 0.7])
    p = f32(RNG.random((4, 5)))
    _fd_check(nn.CrossEntropyLoss(reduction=reduction), x, t)
    _fd_check(nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=0.2), x, t)
    _fd_check(nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=0.1), x, p)
    _fd_check(nn.NLLLoss(w, reduction=reduction), x, t)
    # hinge: points well away from the kinks (|z| >= 0.05) so differences are exact
    xm = f32([[0.3, -0.5, 1.2, 0.1, -1.0], [0.0, 0.6, -0.2, 0.9, 2.0],
              [1.0, 0.4, 0.5, -0.7, 0.2], [-0.3, -0.8, 0.8, 0.25, 1.5]])
    for pp in (1, 2):
        _fd_check(nn.MultiMarginLoss(pp, 0.75, w, reduction=reduction), xm, t)
    y = f32(RNG.standard_normal((4, 5)))
    _fd_check(nn.MSELoss(reduction=reduction), x, y)
    yb = f32(RNG.random((4, 5)))
    _fd_check(nn.BCEWithLogitsLoss(reduction=reduction), x * 3, yb)
    _fd_check(nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=w), x * 3, yb)


# ------------------------------------------- backward protocol and buffers --

ALL_CASES = [
    ("ce", lambda: nn.CrossEntropyLoss(), "idx"),
    ("ce_smooth_w", lambda: nn.CrossEntropyLoss(f32(RNG.uniform(0.5, 2, 37)),
                                                label_smoothing=0.1), "idx"),
    ("ce_prob", lambda: nn.CrossEntropyLoss(label_smoothing=0.05), "prob"),
    ("nll", lambda: nn.NLLLoss(f32(RNG.uniform(0.5, 2, 37))), "idx"),
    ("mm1", lambda: nn.MultiMarginLoss(), "idx"),
    ("mm2", lambda: nn.MultiMarginLoss(p=2, margin=0.5), "idx"),
    ("mse", lambda: nn.MSELoss(), "real"),
    ("bce", lambda: nn.BCEWithLogitsLoss(pos_weight=f32(RNG.uniform(0.5, 2, 37))), "unit"),
]


_DATA = {}


def make_data(kind, N, C, seed=0):
    key = (kind, N, C, seed)
    if key not in _DATA:
        r = np.random.default_rng(seed)
        x = r.random((N, C), dtype=np.float32) * 8 - 4
        if kind == "idx":
            t = r.integers(0, C, N)
        elif kind == "prob":
            t = r.random((N, C), dtype=np.float32)
            t /= t.sum(1, keepdims=True)
        elif kind == "real":
            t = r.random((N, C), dtype=np.float32) * 4 - 2
        else:
            t = r.random((N, C), dtype=np.float32)
        _DATA[key] = (x, t)
    return _DATA[key]


@pytest.mark.parametrize("name,make,kind", ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_fused_and_recomputed_backward_are_identical(name, make, kind):
    x, t = make_data(kind, 50, 37)
    loss = make()
    assert loss.training
    v_train = loss(x, t)
    loss(x, t)
    loss(x, t)
    g_fused = loss.backward().copy()              # the newest context, fused
    np.testing.assert_array_equal(loss.backward(2.0), 2 * g_fused)   # recomputed
    np.testing.assert_array_equal(loss.backward(), g_fused)
    with pytest.raises(RuntimeError, match="backward: no saved context"):
        loss.backward()                           # all three contexts consumed
    loss.eval()
    assert loss(x, t) == v_train
    with pytest.raises(RuntimeError, match="backward: no saved context"):
        loss.backward()                           # eval mode saves nothing
    loss.train()
    loss.reduction = "none"
    per = loss(x, t)
    ones = np.ones(per.shape, np.float32)
    scale = 1.0 / (np.sum(per, dtype=np.float64) / v_train)   # the mean's 1/denominator
    np.testing.assert_allclose(loss.backward(ones) * scale, g_fused, rtol=1e-5,
                               atol=1e-6 * np.abs(g_fused).max())


@pytest.mark.parametrize("name,make,kind", ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_returned_gradient_never_changes_under_the_caller(name, make, kind):
    loss = make()
    x1, t1 = make_data(kind, 20, 37, seed=1)
    x2, t2 = make_data(kind, 20, 37, seed=2)
    loss(x1, t1)
    g1 = loss.backward()
    keep = g1.copy()
    loss(x2, t2)
    g2 = loss.backward()
    assert g2 is not g1
    np.testing.assert_array_equal(g1, keep)
    assert not np.array_equal(g1, g2)
    # once the caller lets go, the buffer is reused (no new allocation per step)
    ident = id(g2)
    del g1, g2
    loss(x1, t1)
    assert id(loss.backward()) == ident


def test_input_is_not_modified_and_views_work():
    base = f32(RNG.standard_normal((12, 20)))
    x = base[:, ::2]                              # strided view
    xc = np.ascontiguousarray(x)
    t = RNG.integers(0, 10, 12)
    before = base.copy()
    a = nn.CrossEntropyLoss()
    b = nn.CrossEntropyLoss()
    assert a(x, t) == b(xc, t)
    np.testing.assert_array_equal(a.backward(), b.backward())
    assert a(xc.T.copy().T, t) == b(xc, t)        # Fortran-ordered input
    np.testing.assert_array_equal(base, before)


def test_losses_are_modules():
    w = f32([1.0, 2.0, 3.0])
    for loss in (nn.CrossEntropyLoss(w, label_smoothing=0.1), nn.NLLLoss(), nn.MSELoss(),
                 nn.BCEWithLogitsLoss(pos_weight=w), nn.MultiMarginLoss(p=2)):
        assert isinstance(loss, nn.Module)
        assert loss.parameters() == []
        assert type(loss).__name__ in repr(loss)
    ce = nn.CrossEntropyLoss(w, label_smoothing=0.1)
    assert repr(ce) == "CrossEntropyLoss(reduction='mean', label_smoothing=0.1, weight=<3 classes>)"
    sd = ce.state_dict()
    np.testing.assert_array_equal(sd["weight"], w)
    other = nn.CrossEntropyLoss(f32([0.0, 0.0, 1.0]))
    other.load_state_dict(sd)
    x = f32(RNG.standard_normal((4, 3)))
    t = np.array([0, 1, 2, 1])
    assert other(x, t) == pytest.approx(nn.CrossEntropyLoss(w)(x, t), rel=1e-12)


def test_weight_accepts_float64_and_lists():
    x = f32(RNG.standard_normal((5, 3)))
    t = np.array([0, 1, 2, 2, 1])
    a = nn.CrossEntropyLoss(np.array([0.5, 1.0, 2.0]))(x, t)
    b = nn.CrossEntropyLoss([0.5, 1.0, 2.0])(x, t)
    assert a == b


# --------------------------------------------------------- determinism --

def _run_all(N, C):
    out = []
    for name, make, kind in ALL_CASES:
        if name in ("ce_smooth_w", "nll", "bce"):
            make = {"ce_smooth_w": lambda: nn.CrossEntropyLoss(
                        f32(np.linspace(0.5, 2, C)), label_smoothing=0.1),
                    "nll": lambda: nn.NLLLoss(f32(np.linspace(0.5, 2, C))),
                    "bce": lambda: nn.BCEWithLogitsLoss(pos_weight=f32(np.linspace(0.5, 2, C)))
                    }[name]
        x, t = make_data(kind, N, C, seed=7)
        loss = make()
        v = loss(x, t)
        g = loss.backward().copy()
        loss.reduction = "none"
        per = loss(x, t)
        gn = loss.backward(np.full(per.shape, 0.5, np.float32)).copy()
        out.append((name, v, g, per, gn))
    return out


def test_bitwise_identical_on_1_and_2_threads():
    saved = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        one = _run_all(4096, 1000)
        fastnn.set_num_threads(2)
        two = _run_all(4096, 1000)
    finally:
        fastnn.set_num_threads(saved)
    for (name, v1, g1, p1, n1), (_, v2, g2, p2, n2) in zip(one, two):
        assert v1 == v2, name
        np.testing.assert_array_equal(g1, g2, err_msg=name)
        np.testing.assert_array_equal(p1, p2, err_msg=name)
        np.testing.assert_array_equal(n1, n2, err_msg=name)


def test_bitwise_identical_on_every_isa():
    saved = fastnn.get_isa()
    results = {}
    try:
        for isa in fastnn.available_isas():
            fastnn.set_isa(isa)
            results[isa] = _run_all(257, 131)
    finally:
        fastnn.set_isa(saved)
    ref = results.pop("ref")
    for isa, res in results.items():
        for (name, v1, g1, p1, n1), (_, v2, g2, p2, n2) in zip(ref, res):
            assert v1 == v2, (isa, name)
            np.testing.assert_array_equal(g1, g2, err_msg=f"{isa} {name}")
            np.testing.assert_array_equal(p1, p2, err_msg=f"{isa} {name}")
            np.testing.assert_array_equal(n1, n2, err_msg=f"{isa} {name}")


# --------------------------------------------------------------- errors --

X = f32(RNG.standard_normal((4, 3)))
T = np.array([0, 2, 1, 1])


@pytest.mark.parametrize("make", [nn.CrossEntropyLoss, nn.NLLLoss, nn.MultiMarginLoss])
def test_classification_argument_errors(make):
    who = make.__name__
    loss = make()
    with pytest.raises(TypeError, match=f"{who}: input must be float32, got dtype float64"):
        loss(X.astype(np.float64), T)
    with pytest.raises(ValueError, match=f"{who}: input must be 2-D, got shape \\(12,\\)"):
        loss(X.reshape(-1), T)
    with pytest.raises(ValueError, match=f"{who}: input must have at least one sample"):
        loss(np.zeros((0, 3), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match=f"{who}: target has shape \\(5,\\), expected \\(4,\\)"):
        loss(X, np.array([0, 1, 2, 1, 0]))
    with pytest.raises(ValueError, match=f"{who}: target contains 3; .*\\[0, 3\\).*C=3"):
        loss(X, np.array([0, 3, 1, 1]))
    with pytest.raises(ValueError, match=f"{who}: target contains -1"):
        loss(X, np.array([0, -1, 1, 1]))
    with pytest.raises(ValueError, match=f"{who}: target contains 18446744073709551615"):
        loss(X, np.array([0, 2**64 - 1, 1, 1], dtype=np.uint64))
    with pytest.raises(TypeError, match=f"{who}: target must be"):
        loss(X, T.astype(bool))
    for bad in (np.nan, np.inf, -np.inf):
        xb = X.copy()
        xb[2, 1] = bad                      # not at a target position
        with pytest.raises(ValueError, match=f"{who}: input contains NaN or infinity"):
            loss(xb, T)
    with pytest.raises(ValueError, match=f"{who}: reduction must be one of"):
        make(reduction="avg")
    with pytest.raises(ValueError, match=f"{who}: weight has 2 entries but input has C=3"):
        make(weight=f32([1, 2]))(X, T)
    with pytest.raises(ValueError, match=f"{who}: weight contains NaN"):
        make(weight=f32([1, np.nan, 2]))
    with pytest.raises(ValueError, match=f"{who}: weight must be non-negative"):
        make(weight=f32([1, -1, 2]))
    with pytest.raises(ValueError, match=f"{who}: weight must be a non-empty 1-D"):
        make(weight=f32([[1, 2, 3]]))


def test_cross_entropy_specific_errors():
    who = "CrossEntropyLoss"
    loss = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match=f"{who}: a floating-point target holds class "
                                         "probabilities.*\\(4, 3\\), got \\(4,\\)"):
        loss(X, T.astype(np.float32))
    with pytest.raises(ValueError, match=f"{who}: a floating-point target .*\\(4, 3\\), "
                                         "got \\(4, 4\\)"):
        loss(X, np.full((4, 4), 0.25, np.float32))
    with pytest.raises(TypeError, match=f"{who}: target must be float32, got dtype float64"):
        loss(X, np.full((4, 3), 1 / 3))
    p = np.full((4, 3), 1 / 3, np.float32)
    for bad in (np.nan, np.inf):
        pb = p.copy()
        pb[1, 1] = bad
        with pytest.raises(ValueError, match=f"{who}: target contains NaN or infinity"):
            loss(X, pb)
    pb = p.copy()
    pb[3, 0] = -0.25
    with pytest.raises(ValueError, match=f"{who}: target probabilities must be non-negative, "
                                         "got min -0.25"):
        loss(X, pb)
    for ls in (-0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match=f"{who}: label_smoothing must be"):
            nn.CrossEntropyLoss(label_smoothing=ls)
    with pytest.raises(TypeError, match=f"{who}: label_smoothing must be a real number"):
        nn.CrossEntropyLoss(label_smoothing="0.1")
    with pytest.raises(ValueError, match=f"{who}: the targets' class weights sum to 0"):
        nn.CrossEntropyLoss(f32([0, 0, 1]))(X, np.array([0, 1, 0, 1]))


def test_multi_margin_specific_errors():
    for p in (0, 3, 1.5, True):
        with pytest.raises(ValueError, match="MultiMarginLoss: p must be 1 or 2"):
            nn.MultiMarginLoss(p=p)
    with pytest.raises(ValueError, match="MultiMarginLoss: margin must be finite"):
        nn.MultiMarginLoss(margin=np.inf)


@pytest.mark.parametrize("make", [nn.MSELoss, nn.BCEWithLogitsLoss])
def test_elementwise_argument_errors(make):
    who = make.__name__
    loss = make()
    y = f32(RNG.random((4, 3)))
    with pytest.raises(TypeError, match=f"{who}: input must be float32, got dtype float64"):
        loss(X.astype(np.float64), y)
    with pytest.raises(TypeError, match=f"{who}: target must be float32, got dtype float64"):
        loss(X, y.astype(np.float64))
    with pytest.raises(ValueError, match=f"{who}: target has shape \\(3, 4\\), expected \\(4, 3\\)"):
        loss(X, y.T.copy())
    with pytest.raises(ValueError, match=f"{who}: input is empty"):
        loss(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    for bad in (np.nan, np.inf):
        xb = X.copy()
        xb[3, 2] = bad
        with pytest.raises(ValueError, match=f"{who}: input contains NaN or infinity"):
            loss(xb, y)
        yb = y.copy()
        yb[0, 1] = bad
        with pytest.raises(ValueError, match=f"{who}: target contains NaN or infinity"):
            loss(X, yb)


def test_bce_specific_errors():
    who = "BCEWithLogitsLoss"
    y = f32(RNG.random((4, 3)))
    for bad in (1.5, -0.1):
        yb = y.copy()
        yb[2, 2] = bad
        with pytest.raises(ValueError, match=f"{who}: target must be in \\[0, 1\\]"):
            nn.BCEWithLogitsLoss()(X, yb)
    with pytest.raises(ValueError, match=f"{who}: pos_weight has 2 entries but the last axis "
                                         "of input has 3"):
        nn.BCEWithLogitsLoss(pos_weight=f32([1, 2]))(X, y)
    with pytest.raises(ValueError, match=f"{who}: pos_weight contains NaN"):
        nn.BCEWithLogitsLoss(pos_weight=[1.0, np.nan])
    with pytest.raises(TypeError):
        nn.BCEWithLogitsLoss(f32([1, 2, 3]))         # PyTorch's weight: not supported


def test_backward_protocol_errors():
    loss = nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="CrossEntropyLoss.backward: no saved context"):
        loss.backward()
    loss(X, T)
    with pytest.raises(ValueError, match="grad_out must be a scalar"):
        loss.backward(np.ones(4, np.float32))     # (a backward that raises consumed its context)
    loss(X, T)
    with pytest.raises(ValueError, match="grad_out must be finite"):
        loss.backward(np.nan)
    with pytest.raises(ValueError):
        loss(X, np.array([0, 9, 1, 1]))
    with pytest.raises(RuntimeError, match="no saved context"):
        loss.backward()                     # the failed forward saved nothing
    loss.reduction = "avg"
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduction must be one of"):
        loss(X, T)
    # backward follows the reduction of the forward it belongs to
    loss.reduction = "sum"
    loss(X, T)
    g = loss.backward().copy()
    loss(X, T)
    loss.reduction = "none"
    np.testing.assert_array_equal(loss.backward(), g)
    none = nn.MSELoss(reduction="none")
    none(X, X * 2)
    with pytest.raises(ValueError, match="MSELoss: reduction='none' needs grad_out"):
        none.backward()
    none(X, X * 2)
    with pytest.raises(ValueError, match="MSELoss: grad_out has shape \\(4,\\), expected \\(4, 3\\)"):
        none.backward(np.ones(4, np.float32))
    none(X, X * 2)
    with pytest.raises(TypeError, match="MSELoss: grad_out must be float32"):
        none.backward(np.ones((4, 3)))


# ---------------------------------------------------------------- torch --

def test_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def tt(a, grad=False):
        return torch.tensor(np.asarray(a), requires_grad=grad)

    N, C = 64, 29
    r = np.random.default_rng(5)
    x = f32(r.standard_normal((N, C)) * 3)
    t = r.integers(0, C, N)
    w = f32(r.uniform(0.2, 2.0, C))
    p = f32(r.random((N, C)))
    p /= p.sum(1, keepdims=True)
    y01 = f32(r.random((N, C)))
    cases = []
    for red in REDUCTIONS:
        for ls in (0.0, 0.15):
            for ww in (None, w):
                tw = None if ww is None else tt(ww)
                cases.append((nn.CrossEntropyLoss(ww, reduction=red, label_smoothing=ls), x, t,
                              lambda a, ls=ls, tw=tw, red=red: F.cross_entropy(
                                  a, tt(t), weight=tw, reduction=red, label_smoothing=ls)))
                cases.append((nn.CrossEntropyLoss(ww, reduction=red, label_smoothing=ls), x, p,
                              lambda a, ls=ls, tw=tw, red=red: F.cross_entropy(
                                  a, tt(p), weight=tw, reduction=red, label_smoothing=ls)))
            cases.append((nn.NLLLoss(ww, reduction=red), x, t,
                          lambda a, tw=tw, red=red: F.nll_loss(a, tt(t), weight=tw, reduction=red)))
        for pp in (1, 2):
            cases.append((nn.MultiMarginLoss(pp, 0.7, w, reduction=red), x, t,
                          lambda a, pp=pp, red=red: F.multi_margin_loss(
                              a, tt(t), p=pp, margin=0.7, weight=tt(w), reduction=red)))
        cases.append((nn.MSELoss(reduction=red), x, y01,
                      lambda a, red=red: F.mse_loss(a, tt(y01), reduction=red)))
        cases.append((nn.BCEWithLogitsLoss(reduction=red, pos_weight=w), x, y01,
                      lambda a, red=red: F.binary_cross_entropy_with_logits(
                          a, tt(y01), pos_weight=tt(w), reduction=red)))
    for loss, xi, ti, ref in cases:
        v = loss(xi, ti)
        xt = tt(xi, grad=True)
        vt = ref(xt)
        if loss.reduction == "none":
            go = f32(r.uniform(0.5, 1.5, np.shape(v)))
            vt.backward(tt(go))
            g = loss.backward(go)
            np.testing.assert_allclose(v, vt.detach().numpy(), rtol=2e-5, atol=2e-6,
                                       err_msg=repr(loss))
        else:
            vt.backward()
            g = loss.backward()
            assert v == pytest.approx(vt.item(), rel=2e-5, abs=1e-6), repr(loss)
        gt = xt.grad.numpy()
        np.testing.assert_allclose(g, gt, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(gt).max()),
                                   err_msg=repr(loss))
