"""Pooling layers: float64 numpy references forward and backward (padding,
dilation, ceil_mode, count_include_pad, divisor_override, adaptive sizes, odd
sizes, batch 1), finite differences, torch parity (NaN included), 1-vs-2-thread
bitwise equality and bad inputs."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn

from helpers import check_module_grads


def out_size(L, k, s, p, d, ceil):
    o = (L + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    return o - 1 if ceil and (o - 1) * s >= L + p else o


def windows(m, H, W):
    """For each output (oh, ow): the in-plane taps and the average divisor."""
    if isinstance(m, nn.AdaptiveAvgPool2d):
        Ho, Wo = (H if o is None else o for o, H in zip(m.output_size, (H, W)))
        for oh in range(Ho):
            for ow in range(Wo):
                rows = range(oh * H // Ho, -(-(oh + 1) * H // Ho))
                cols = range(ow * W // Wo, -(-(ow + 1) * W // Wo))
                yield oh, ow, [(r, c) for r in rows for c in cols], len(rows) * len(cols)
        return
    nd = m._nd
    k, s, p, d = ((1,) * (2 - nd) + t for t in (m.kernel_size, m.stride, m.padding, m.dilation))
    p = (0,) * (2 - nd) + m.padding
    Ho = out_size(H, k[0], s[0], p[0], d[0], m.ceil_mode)
    Wo = out_size(W, k[1], s[1], p[1], d[1], m.ceil_mode)
    for oh in range(Ho):
        for ow in range(Wo):
            r0, c0 = oh * s[0] - p[0], ow * s[1] - p[1]
            rows = [r0 + i * d[0] for i in range(k[0])]
            cols = [c0 + j * d[1] for j in range(k[1])]
            inside = [(r, c) for r in rows for c in cols if 0 <= r < H and 0 <= c < W]
            div = len(inside)
            if getattr(m, "count_include_pad", False):
                div = ((min(r0 + k[0], H + p[0]) - r0) * (min(c0 + k[1], W + p[1]) - c0))
            if getattr(m, "divisor_override", None):
                div = m.divisor_override
            yield oh, ow, inside, div


def ref_pool(m, x, dy):
    """float64 forward and input gradient."""
    x4 = x.astype(np.float64)
    if m._nd == 1:
        x4, dy = x4[:, :, None], dy[:, :, None]
    H, W = x4.shape[2:]
    y = np.zeros(dy.shape)
    dx = np.zeros(x4.shape)
    for oh, ow, taps, div in windows(m, H, W):
        vals = np.stack([x4[:, :, r, c] for r, c in taps], -1)
        g = dy[:, :, oh, ow].astype(np.float64)
        if isinstance(m, nn.MaxPool2d):
            arg = np.argmax(vals, -1)          # first maximum, as torch
            y[:, :, oh, ow] = vals.max(-1)
            for t, (r, c) in enumerate(taps):
                dx[:, :, r, c] += np.where(arg == t, g, 0.0)
        else:
            y[:, :, oh, ow] = vals.sum(-1) / div
            for r, c in taps:
                dx[:, :, r, c] += g / div
    if m._nd == 1:
        return y[:, :, 0], dx[:, :, 0]
    return y, dx


LAYERS = [
    (lambda: nn.MaxPool2d(2), (2, 3, 8, 8)),
    (lambda: nn.MaxPool2d(2), (2, 3, 7, 9)),            # the 2x2 path, a row and column left over
    (lambda: nn.MaxPool2d(2, ceil_mode=True), (1, 2, 7, 9)),   # windows past the edge: general path
    (lambda: nn.MaxPool2d(2, 2, 1), (1, 2, 6, 6)),      # padded: general path
    (lambda: nn.MaxPool2d(3, 2, 1), (1, 2, 7, 9)),
    (lambda: nn.MaxPool2d((3, 2), (2, 1), (1, 1), dilation=(1, 2)), (2, 2, 7, 8)),
    (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 2, 8, 7)),
    (lambda: nn.MaxPool2d(2, 3, 0, dilation=2, ceil_mode=True), (1, 2, 9, 10)),
    (lambda: nn.AvgPool2d(2), (2, 3, 7, 7)),
    (lambda: nn.AvgPool2d(3, 2, 1), (2, 2, 7, 8)),
    (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 2, 7, 8)),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (1, 2, 8, 8)),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 8, 8)),
    (lambda: nn.AvgPool2d((2, 3), (1, 2), (1, 1), divisor_override=4), (2, 2, 5, 7)),
    (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 5, 7)),
    (lambda: nn.AdaptiveAvgPool2d((3, 4)), (2, 2, 7, 9)),
    (lambda: nn.AdaptiveAvgPool2d((5, None)), (1, 2, 3, 4)),      # larger than the input
    (lambda: nn.MaxPool1d(3, 2, 1), (2, 3, 9)),
    (lambda: nn.MaxPool1d(2, ceil_mode=True, dilation=2), (1, 2, 10)),
    (lambda: nn.AvgPool1d(3, 2, 1, ceil_mode=True), (2, 3, 8)),
    (lambda: nn.AvgPool1d(4, 3, 2, count_include_pad=False), (2, 3, 9)),
]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_matches_float64_reference(make, shape, rng):
    m = make()
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32) / 7  # no ties
    y = m.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ry, rdx = ref_pool(m, x, dy)
    assert y.shape == ry.shape
    np.testing.assert_allclose(y, ry, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(m.backward(dy, input_grad=True), rdx, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make,shape", [LAYERS[i] for i in (2, 4, 7, 10, 13, 16)])
def test_finite_differences(make, shape, rng):
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32) / np.prod(shape)
    check_module_grads(make(), x)


def _torch_twin(torch, m):
    T = torch.nn
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return T.AdaptiveAvgPool2d(m.output_size)
    kw = {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
          "ceil_mode": m.ceil_mode}
    if isinstance(m, nn.MaxPool2d):
        return (T.MaxPool1d if m._nd == 1 else T.MaxPool2d)(dilation=m.dilation, **kw)
    if m._nd == 1:
        return T.AvgPool1d(count_include_pad=m.count_include_pad, **kw)
    return T.AvgPool2d(count_include_pad=m.count_include_pad,
                       divisor_override=m.divisor_override, **kw)


@pytest.mark.parametrize("make,shape", LAYERS)
def test_matches_torch(make, shape, rng):
    torch = pytest.importorskip("torch")
    m = make()
    t = _torch_twin(torch, m)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::5] = x.flat[1]                       # ties: the first maximum wins in both
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = t(xt)
    y = m.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(m.backward(dy, input_grad=True), xt.grad.numpy(),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
def test_nan_and_inf_like_torch(cls):
    torch = pytest.importorskip("torch")
    x = np.arange(2 * 16, dtype=np.float32).reshape(1, 2, 4, 4)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 3, 2] = np.nan
    x[0, 0, 1, 3] = np.nan
    x[0, 1, :2, :2] = -np.inf
    x[0, 1, 2, 2] = np.inf
    m, t = cls(2), getattr(torch.nn, cls.__name__)(2)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = t(xt)
    y = m.forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    dy = np.arange(y.size, dtype=np.float32).reshape(y.shape) + 1
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(m.backward(dy, input_grad=True), xt.grad.numpy())


@pytest.mark.parametrize("make", [lambda: nn.MaxPool2d(2), lambda: nn.AvgPool2d(3, 2, 1),
                                  lambda: nn.AdaptiveAvgPool2d(3)])
def test_same_bits_on_one_and_two_threads(make, rng):
    x = rng.standard_normal((16, 32, 32, 32)).astype(np.float32)   # 512 planes: threads
    m, outs = make(), []
    for nt in (1, 2):
        fastnn.set_num_threads(nt)
        y = m.forward(x)
        outs.append((y, m.backward(np.cos(y), input_grad=True)))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("hw", [(28, 28), (14, 14), (2, 2), (6, 40), (4, 66)])
def test_maxpool_2x2_every_isa_same_values_and_indices(hw, rng):
    """The 2x2 stride-2 windows of an even plane (a vectorised AVX-512 path,
    rows of 1-33 windows): every ISA gives the same outputs and gradients as
    the portable path, with ties (first tap wins), NaN (a later NaN wins) and
    -inf in play."""
    x = rng.integers(-2, 3, size=(3, 5) + hw).astype(np.float32)
    x[0, 0, 0, 1] = np.nan
    x[1, 2, 1, 0] = -np.inf
    x[2, 4, :2, :2] = -np.inf
    dy = rng.standard_normal((3, 5, hw[0] // 2, hw[1] // 2)).astype(np.float32)
    outs = {}
    for isa in fastnn.available_isas():
        fastnn.set_isa(isa)
        m = nn.MaxPool2d(2)
        y = m.forward(x)
        dx = m.backward(dy, input_grad=True)
        outs[isa] = (y, dx)
    for isa, (y, dx) in outs.items():
        np.testing.assert_array_equal(y, outs["ref"][0], err_msg=isa)
        np.testing.assert_array_equal(dx, outs["ref"][1], err_msg=isa)
    ry = x.reshape(3, 5, hw[0] // 2, 2, hw[1] // 2, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(np.isnan(outs["ref"][0]), np.isnan(ry))
    ok = ~np.isnan(ry)
    np.testing.assert_array_equal(outs["ref"][0][ok], ry[ok])


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"MaxPool2d: x must be 4-D.*\(3, 4, 4\)"):
        nn.MaxPool2d(2).forward(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"AvgPool1d: x must be 3-D.*\(1, 3, 4, 4\)"):
        nn.AvgPool1d(2).forward(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d: kernel_size=\(5, 5\).*larger than the "
                                         r"padded input.*\(1, 1, 3, 8\)"):
        nn.MaxPool2d(5).forward(np.zeros((1, 1, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d: padding=\(2, 2\) must be at most half"):
        nn.MaxPool2d(3, padding=2)
    with pytest.raises(ValueError, match=r"AvgPool2d: padding"):
        nn.AvgPool2d(2, padding=(0, 2))
    for kw, pat in [({"stride": 0}, "stride"), ({"dilation": 0}, "dilation"),
                    ({"kernel_size": 0}, "kernel_size"), ({"padding": -1}, "padding")]:
        args = {"kernel_size": 2, **kw}
        with pytest.raises(ValueError, match=f"MaxPool2d: {pat}"):
            nn.MaxPool2d(**args)
    with pytest.raises(ValueError, match="AvgPool2d: divisor_override"):
        nn.AvgPool2d(2, divisor_override=0)
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d: output_size"):
        nn.AdaptiveAvgPool2d((0, 2))
    m = nn.MaxPool2d(2)
    m.forward(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d: grad_out has shape \(1, 1, 3, 3\)"):
        m.backward(np.zeros((1, 1, 3, 3), np.float32), input_grad=True)
    assert math.isfinite(nn.AvgPool2d(2).forward(np.ones((1, 1, 2, 2), np.float32))[0, 0, 0, 0])
