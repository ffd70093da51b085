"""Conv2d and Conv1d: float64 numpy references forward and backward for every
option, the C fast path against its naive twin, finite differences, torch
parity (outputs, every gradient, state dicts both ways), 1-vs-2-thread bitwise
equality at sizes that thread, initialisation fans and bad inputs."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn._ext import _C

from helpers import check_module_grads


def taps(xp, i, j, k, Ho, Wo):
    """The (N, C, Ho, Wo) slice of padded xp that kernel tap (i, j) reads."""
    (kh, kw), (sh, sw), (dh, dw) = k["kernel_size"], k["stride"], k["dilation"]
    return xp[:, :, i * dh:i * dh + (Ho - 1) * sh + 1:sh, j * dw:j * dw + (Wo - 1) * sw + 1:sw]


def ref_conv(x, w, b, m, dy=None):
    """float64 y (and dx, dw, db for dy) of conv module m's configuration."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    if x.ndim == 3:                                  # Conv1d: a height-1 image
        x, w = x[:, :, None], w[:, :, None]
        dy = None if dy is None else dy[:, :, None]
    G, (lo, hi) = m.groups, (m._pad_lo, m._pad_hi)
    if len(lo) == 1:
        lo, hi = (0,) + lo, (0,) + hi
        k = {"kernel_size": (1,) + m.kernel_size, "stride": (1,) + m.stride,
             "dilation": (1,) + m.dilation}
    else:
        k = {"kernel_size": m.kernel_size, "stride": m.stride, "dilation": m.dilation}
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    Og = O // G
    xp = np.pad(x, ((0, 0), (0, 0), (lo[0], hi[0]), (lo[1], hi[1])))
    Ho = (xp.shape[2] - k["dilation"][0] * (kh - 1) - 1) // k["stride"][0] + 1
    Wo = (xp.shape[3] - k["dilation"][1] * (kw - 1) - 1) // k["stride"][1] + 1
    y = np.zeros((N, O, Ho, Wo))
    for g in range(G):
        xs, os_ = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(kh):
            for j in range(kw):
                y[:, os_] += np.einsum("nchw,oc->nohw", taps(xp[:, xs], i, j, k, Ho, Wo),
                                       w[os_, :, i, j])
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    if dy is None:
        return y[:, :, 0] if m._nd == 1 else y
    dy = dy.astype(np.float64)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for g in range(G):
        xs, os_ = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(kh):
            for j in range(kw):
                dw[os_, :, i, j] = np.einsum("nohw,nchw->oc", dy[:, os_],
                                             taps(xp[:, xs], i, j, k, Ho, Wo))
                taps(dxp[:, xs], i, j, k, Ho, Wo)[...] += np.einsum(
                    "nohw,oc->nchw", dy[:, os_], w[os_, :, i, j])
    dx = dxp[:, :, lo[0]:lo[0] + H, lo[1]:lo[1] + W]
    db = dy.sum(axis=(0, 2, 3))
    if m._nd == 1:
        return y[:, :, 0], dx[:, :, 0], dw[:, :, 0], db
    return y, dx, dw, db


# (in, out, kernel, stride, padding, dilation, groups, input shape)
CASES2 = [
    (3, 5, 3, 1, 0, 1, 1, (2, 3, 7, 6)),                  # plain, odd sizes
    (3, 4, 3, 2, 1, 1, 1, (1, 3, 8, 9)),                  # stride, padding, batch 1
    (4, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, (3, 4, 9, 8)),   # groups, dilation, asymmetric
    (4, 4, 3, 1, 1, 1, 4, (2, 4, 6, 5)),                  # depthwise
    (3, 6, 3, 2, 1, 2, 3, (2, 3, 9, 7)),                  # depthwise x2, stride, dilation
    (4, 8, 1, 1, 0, 1, 1, (2, 4, 5, 6)),                  # 1x1: no im2col
    (4, 6, 1, 2, 0, 1, 2, (2, 4, 5, 6)),                  # 1x1 strided, groups
    (2, 3, 4, 1, "same", 1, 1, (2, 2, 6, 5)),             # even 'same': extra pad bottom/right
    (2, 3, 3, 1, "same", 2, 1, (1, 2, 7, 7)),
    (2, 3, (2, 3), 1, "valid", 1, 1, (2, 2, 5, 5)),
    (2, 2, 5, 3, 2, 1, 1, (1, 2, 5, 5)),                  # kernel = input
    (3, 4, 3, 1, 2, (2, 1), 1, (2, 3, 8, 7)),             # wide rows, dilation along H
    (4, 6, 3, 1, 1, 1, 2, (2, 4, 6, 5)),                  # wide rows, groups
    (1, 12, 3, 1, 1, 1, 1, (2, 1, 6, 7)),                 # stride 1 but K < O: gathered rows
]
CASES1 = [
    (3, 4, 3, 1, 0, 1, 1, (2, 3, 9)),
    (4, 6, 3, 2, 2, 2, 2, (1, 4, 10)),
    (3, 3, 4, 1, "same", 1, 3, (2, 3, 7)),
]


def make(case, nd, bias=True):
    cin, cout, k, s, p, d, g, shape = case
    cls = nn.Conv2d if nd == 2 else nn.Conv1d
    return cls(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias), shape


@pytest.mark.parametrize("nd,case", [(2, c) for c in CASES2] + [(1, c) for c in CASES1])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_float64_reference(nd, case, bias, rng):
    m, shape = make(case, nd, bias)
    x = rng.standard_normal(shape).astype(np.float32)
    b = None if m.bias is None else m.bias.data
    y = m.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ry, rdx, rdw, rdb = ref_conv(x, m.weight.data, b, m, dy)
    np.testing.assert_allclose(y, ry, rtol=1e-5, atol=1e-5)
    m.zero_grad()
    dx = m.backward(dy, input_grad=True)
    np.testing.assert_allclose(dx, rdx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.weight.grad, rdw, rtol=1e-5, atol=1e-4)
    if bias:
        np.testing.assert_allclose(m.bias.grad, rdb, rtol=1e-5, atol=1e-5)
    m.forward(x)                              # gradients accumulate
    m.backward(dy)
    np.testing.assert_allclose(m.weight.grad, 2 * rdw, rtol=1e-5, atol=2e-4)


def _shape_of(m, x):
    return m._shape(x)[1]


@pytest.mark.parametrize("case", CASES2)
def test_fast_path_matches_naive_twin(case, rng):
    m, shape = make(case, 2)
    x = rng.standard_normal(shape).astype(np.float32)
    s = _shape_of(m, x)
    w, b = m.weight.data, m.bias.data
    y = m.forward(x)
    y2 = np.empty_like(y)
    _C.conv2d_forward(s, x, w, b, y2, naive=True)
    np.testing.assert_allclose(y, y2, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    outs = [[np.full(x.shape, np.nan, np.float32), np.ones_like(w), np.ones_like(b)]
            for _ in range(2)]
    for naive, (dx, dw, db) in zip((False, True), outs):
        _C.conv2d_backward(s, x, w, dy, dx, dw, db, True, naive=naive)   # acc: adds to 1
    for a, r in zip(*outs):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("nd,case", [(2, CASES2[2]), (2, CASES2[4]), (2, CASES2[7]),
                                     (1, CASES1[1])])
def test_finite_differences(nd, case, rng):
    m, shape = make(case, nd)
    check_module_grads(m, rng.standard_normal(shape), rtol=2e-2, atol=3e-3)


def _torch_twin(torch, m):
    cls = torch.nn.Conv2d if m._nd == 2 else torch.nn.Conv1d
    t = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
            dilation=m.dilation, groups=m.groups, bias=m.bias is not None)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    return t


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("nd,case", [(2, c) for c in CASES2[::2]] + [(1, c) for c in CASES1])
def test_matches_torch(nd, case, rng):
    torch = pytest.importorskip("torch")
    m, shape = make(case, nd)
    t = _torch_twin(torch, m)
    x = rng.standard_normal(shape).astype(np.float32)
    y = m.forward(x)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = t(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    m.zero_grad()
    dx = m.backward(dy, input_grad=True)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.weight.grad, t.weight.grad.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(m.bias.grad, t.bias.grad.numpy(), rtol=1e-5, atol=1e-4)


def test_state_dict_exchanges_with_torch(rng):
    torch = pytest.importorskip("torch")
    t = torch.nn.Conv2d(4, 6, (3, 2), groups=2)
    m = nn.Conv2d(4, 6, (3, 2), groups=2)
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = rng.standard_normal((2, 4, 6, 7)).astype(np.float32)
    np.testing.assert_allclose(m.forward(x), t(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    m2 = nn.Conv2d(4, 6, (3, 2), groups=2)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m2.state_dict().items()})
    np.testing.assert_array_equal(t.weight.detach().numpy(), m2.weight.data)
    t1 = torch.nn.Conv1d(3, 5, 4)
    m1 = nn.Conv1d(3, 5, 4)
    m1.load_state_dict({k: v.detach().numpy() for k, v in t1.state_dict().items()})
    assert m1.weight.data.shape == (5, 3, 4)


def test_default_init_and_fans():
    fastnn.manual_seed(0)
    m = nn.Conv2d(8, 16, 3, groups=2)
    fan_in = 8 // 2 * 9
    bound = 1 / math.sqrt(fan_in)
    for p in (m.weight.data, m.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert nn.init._calculate_fan_in_and_fan_out(m.weight) == (fan_in, 16 * 9)
    w = np.empty((16, 4, 3, 3), np.float32)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.std() - math.sqrt(2 / (16 * 9))) < 0.1 * math.sqrt(2 / (16 * 9))
    nn.init.xavier_uniform_(w)
    assert np.abs(w).max() <= math.sqrt(6 / (fan_in + 16 * 9))
    torch = pytest.importorskip("torch")
    tw = torch.empty(16, 4, 3, 3)
    assert nn.init._calculate_fan_in_and_fan_out(w) == \
        torch.nn.init._calculate_fan_in_and_fan_out(tw)


# sizes over the single-thread threshold: per-sample parts (batch 8), the
# batch-1 path with threaded GEMMs, depthwise, 1x1 and grouped
THREAD_CASES = [
    (16, 32, 3, 1, 1, 1, 1, (8, 16, 16, 16)),
    (32, 64, 3, 1, 1, 1, 1, (1, 32, 32, 32)),
    (32, 32, 3, 1, 1, 1, 32, (8, 32, 32, 32)),
    (64, 64, 1, 1, 0, 1, 1, (4, 64, 24, 24)),
    (32, 32, 3, 2, 1, 1, 4, (8, 32, 24, 24)),
    (16, 24, 3, 1, 1, 1, 1, (37, 16, 14, 14)),     # backward chunks of 3 samples, the last of 1
]


@pytest.mark.parametrize("case", THREAD_CASES)
def test_same_bits_on_one_and_two_threads(case, rng):
    m, shape = make(case, 2)
    x = rng.standard_normal(shape).astype(np.float32)
    outs = []
    for nt in (1, 2):
        fastnn.set_num_threads(nt)
        y = m.forward(x)
        m.zero_grad()
        dx = m.backward(np.cos(y), input_grad=True)
        outs.append((y, dx, m.weight.grad.copy(), m.bias.grad.copy()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


# The direct path (an AVX-512 micro-kernel reading each pixel's taps in a
# padded image; layers with K = C/G kh kw >= 32): forward, dW and the stride-1
# input gradient. Output channels on both sides of the kernel's 32, pixel
# counts that are not multiples of its 8, strides, dilation, groups, padding
# beyond the kernel's reach (dx then takes the GEMM path), even 'same', 1x1
# strided, Conv1d, batch 1 (pixel slabs across threads), dW over chunks.
DIRECT_CASES = [
    (2, (8, 40, 3, 1, 1, 1, 1, (3, 8, 9, 7))),
    (2, (12, 20, (3, 2), (2, 1), (1, 0), (1, 2), 2, (2, 12, 11, 10))),
    (2, (16, 16, 5, 1, "same", 2, 1, (1, 16, 9, 9))),
    (2, (36, 8, 1, 2, 0, 1, 1, (2, 36, 7, 7))),
    (2, (4, 6, 4, 1, "same", 1, 1, (2, 4, 6, 5))),
    (2, (33, 65, 3, 1, 3, 1, 1, (2, 33, 5, 6))),
    (2, (32, 64, 5, 1, 2, 1, 1, (3, 32, 14, 14))),
    (1, (8, 12, 5, 1, 2, 1, 1, (2, 8, 20))),
    (2, (16, 24, 3, 1, 1, 1, 1, (37, 16, 6, 6))),    # dW chunks of 3 samples, the last of 1
]


@pytest.mark.parametrize("nd,case", DIRECT_CASES)
def test_direct_path_matches_reference_and_threads(nd, case, rng):
    for isa in fastnn.available_isas():
        fastnn.set_isa(isa)
        m, shape = make(case, nd)
        x = rng.standard_normal(shape).astype(np.float32)
        y0 = m.forward(x)
        dy = rng.standard_normal(y0.shape).astype(np.float32)
        ry, rdx, rdw, rdb = ref_conv(x, m.weight.data, m.bias.data, m, dy)
        outs = []
        for nt in (1, 2):
            fastnn.set_num_threads(nt)
            y = m.forward(x)
            m.zero_grad()
            dx = m.backward(dy, input_grad=True)
            outs.append((y, dx, m.weight.grad.copy(), m.bias.grad.copy()))
            K = x.shape[1] // m.groups * int(np.prod(m.weight.shape[2:]))
            tol = 1e-6 * np.sqrt(K) * 10
            for got, want, what in zip(outs[-1], (ry, rdx, rdw, rdb), "y dx dw db".split()):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol * np.abs(want).max(),
                                           err_msg=f"{isa} {nt} threads {what} {case}")
        for a, b, what in zip(*outs, "y dx dw db".split()):
            np.testing.assert_array_equal(a, b, err_msg=f"{isa} {what} 1 vs 2 threads {case}")


@pytest.mark.parametrize("batch", [17, 37, 64])
@pytest.mark.parametrize("acc", [False, True])
def test_backward_chunks_of_the_batch_match_reference(batch, acc, rng):
    """dW is summed over chunks of samples (at most 16, the last one short):
    every chunking, with and without accumulation into an existing grad."""
    m = nn.Conv2d(6, 8, 3, padding=1, groups=2)
    x = rng.standard_normal((batch, 6, 9, 9)).astype(np.float32)
    g = rng.standard_normal((batch, 8, 9, 9)).astype(np.float32)
    _, rdx, rdw, rdb = ref_conv(x, m.weight.data, m.bias.data, m, g)
    m.zero_grad()
    if acc:
        m.weight.grad[...] = 1.0
        m.bias.grad[...] = 1.0
    m.forward(x)
    dx = m.backward(g, input_grad=True)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.weight.grad, rdw + acc, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(m.bias.grad, rdb + acc, rtol=1e-4, atol=1e-3)


def test_module_reuse_and_eval(rng):
    m = nn.Conv2d(2, 3, 3, padding=1)
    x1, x2 = (rng.standard_normal((1, 2, 5, 5)).astype(np.float32) for _ in range(2))
    y1, y2 = m.forward(x1), m.forward(x2)
    g = np.ones_like(y1)
    m.zero_grad()
    d2 = m.backward(g, input_grad=True)        # last in, first out
    d1 = m.backward(g, input_grad=True)
    np.testing.assert_allclose(d1, d2)         # dx of a sum does not depend on x
    r = ref_conv(x1, m.weight.data, m.bias.data, m, g)[2] + ref_conv(x2, m.weight.data,
                                                                    m.bias.data, m, g)[2]
    np.testing.assert_allclose(m.weight.grad, r, rtol=1e-5, atol=1e-4)
    m.eval()
    m.forward(x1)
    with pytest.raises(Exception):
        m.backward(g)                          # eval saves nothing


def test_frozen_weight_and_no_input_grad(rng):
    m = nn.Conv2d(2, 3, 3)
    m.weight.requires_grad = False
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    y = m.forward(x)
    assert m.backward(np.ones_like(y)) is None
    assert m.weight.grad is None or not m.weight.grad.any()     # not written
    np.testing.assert_allclose(m.bias.grad, np.full(3, 18.0))


def test_bad_inputs():
    m = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d: x must be 4-D.*\(2, 3, 5\)"):
        m.forward(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d: x has 2 channels.*in_channels=3.*"
                                         r"\(1, 2, 5, 5\).*\(4, 3, 3, 3\)"):
        m.forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size=\(3, 3\).*larger than the "
                                         r"padded input.*\(1, 3, 2, 5\)"):
        m.forward(np.zeros((1, 3, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv1d: x must be 3-D.*\(1, 3, 5, 5\)"):
        nn.Conv1d(3, 4, 3).forward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv1d: kernel_size=\(5,\) \(dilation=\(2,\)\)"):
        nn.Conv1d(3, 4, 5, dilation=2, padding=1).forward(np.zeros((1, 3, 6), np.float32))
    for kw, pat in [({"stride": 0}, "stride"), ({"stride": (1, -1)}, "stride"),
                    ({"dilation": 0}, "dilation"), ({"groups": 2}, "groups=2 must divide"),
                    ({"padding": -1}, "padding"), ({"padding": "full"}, "padding"),
                    ({"padding": "same", "stride": 2}, "padding='same' needs stride 1"),
                    ({"kernel_size": (3, 3, 3)}, "kernel_size")]:
        args = {"in_channels": 3, "out_channels": 6, "kernel_size": 3, **kw}
        with pytest.raises(ValueError, match=f"Conv2d: {pat}"):
            nn.Conv2d(**args)
    with pytest.raises(TypeError, match="float32"):
        m.forward(np.zeros((1, 3, 5, 5), np.float64))
    y = m.forward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d: grad_out has shape \(1, 4, 2, 2\)"):
        m.backward(np.zeros((1, 4, 2, 2), np.float32))
    assert y.shape == (1, 4, 3, 3)
    with pytest.raises(ValueError, match="groups=2 must divide"):
        _C.conv2d_forward((1, 3, 5, 5, 4, 2, 3, 3, 1, 1, 0, 0, 1, 1, 3, 3),
                          np.zeros(75, np.float32), np.zeros(54, np.float32), None,
                          np.zeros(36, np.float32))
    with pytest.raises(ValueError, match="y: expected 36"):
        _C.conv2d_forward((1, 3, 5, 5, 4, 1, 3, 3, 1, 1, 0, 0, 1, 1, 3, 3),
                          np.zeros(75, np.float32), np.zeros(108, np.float32), None,
                          np.zeros(35, np.float32))


def test_cnn_trains(rng):
    """A tiny CNN learns a separable task end to end (Sequential, Adam)."""
    fastnn.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding="same"), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    x[y == 1, :, 2:6, 2:6] += 2.0
    loss_fn = nn.CrossEntropyLoss()
    opt = fastnn.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
    assert float(loss) < 0.2


def test_cnn_save_and_load(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same", groups=1), nn.ReLU(),
                          nn.MaxPool2d(2, ceil_mode=True),
                          nn.AvgPool2d(2, count_include_pad=False), nn.Flatten(),
                          nn.Linear(4 * 2 * 2, 3))
    x = rng.standard_normal((2, 1, 7, 7)).astype(np.float32)
    path = str(tmp_path / "cnn.npz")
    fastnn.save(model, path)
    model2 = fastnn.load(path)
    model.eval()
    model2.eval()
    np.testing.assert_array_equal(model(x), model2(x))
    assert "Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding='same')" in repr(model2)


# Winograd F(4x4, 3x3) / F(2x2, 5x5): stride 1, >= 16 channels each way;
# forward and dX (dW, on the direct path, checked beside them). Edge tiles (sizes not multiples of m), more tiles than
# one block (64), one sample on two threads (slabs of tiles), channels not a
# multiple of 8 or 16 or 32, the fused ReLU, padding 0 to r - 1, batches
# that make dW chunks of several samples.
WINO_CASES = [
    (32, 32, 3, 1, (3, 32, 28, 28)),
    (16, 17, 3, 0, (2, 16, 7, 9)),
    (20, 33, 5, 1, (2, 20, 13, 11)),
    (32, 64, 5, 2, (3, 32, 14, 14)),
    (19, 16, 3, 2, (1, 19, 37, 35)),       # 1 sample, 110 tiles: blocks and slabs
    (48, 16, 5, 4, (2, 48, 3, 3)),
    (16, 24, 3, 1, (5, 16, 2, 5)),
    (24, 40, 3, 1, (37, 24, 6, 6)),        # dW chunks of 3 samples, the last of 1
]


@pytest.mark.parametrize("case", WINO_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_winograd_matches_reference_threads_and_isas(case, relu, rng):
    cin, cout, k, p, shape = case
    m = nn.Conv2d(cin, cout, k, padding=p)
    seq = nn.Sequential(m, nn.ReLU()) if relu else m
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(m.forward(x).shape).astype(np.float32)
    ry, rdx, rdw, rdb = ref_conv(x, m.weight.data, m.bias.data, m, dy)
    if relu:
        ry = np.maximum(ry, 0)
    runs = {}
    for isa in [i for i in fastnn.available_isas() if i != "ref"]:
        fastnn.set_isa(isa)
        for nt in (1, 2):
            fastnn.set_num_threads(nt)
            y = seq.forward(x)
            m.zero_grad()
            dx = m.backward(dy, input_grad=True)
            runs[isa, nt] = (y, dx, m.weight.grad.copy(), m.bias.grad.copy())
            # Winograd's rounding: errors of a few 1e-6 of the output's scale
            for got, want, what in zip(runs[isa, nt], (ry, rdx, rdw, rdb), "y dx dw db".split()):
                err = np.abs(got - want).max() / np.abs(want).max()
                assert err < 3e-5, f"{isa} {nt} threads {what} {case}: {err:.2e}"
    first = next(iter(runs.values()))
    for key, got in runs.items():      # same bits on 1 and 2 threads and on both ISAs
        for a, b, what in zip(got, first, "y dx dw db".split()):
            np.testing.assert_array_equal(a, b, err_msg=f"{key} {what} {case}")
