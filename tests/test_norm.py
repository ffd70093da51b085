"""BatchNorm1d/2d, LayerNorm (csrc/norm.c), Dropout2d, Concat, fuse_conv_bn and
non-float32 buffers: float64 numpy references forward and backward, the C
naive twins, finite differences, torch parity on the same weights (outputs,
gradients, running statistics, state dicts), 1-vs-2-thread bitwise equality,
bad inputs."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn._ext import _C

from helpers import check_module_grads

try:
    import torch
except ImportError:          # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")

RNG = np.random.default_rng(12)


def rand(*shape, scale=1.0, shift=0.0):
    return (RNG.standard_normal(shape) * scale + shift).astype(np.float32)


# ------------------------------------------------------------ references --

def bn_ref(x, gamma, beta, eps):
    """float64 batch norm over axis 1: y, mean, biased var."""
    x = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m = x.mean(axis=axes)
    v = x.var(axis=axes)
    xh = (x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + eps)
    return xh * gamma.reshape(shape) + beta.reshape(shape), m, v


def bn_grad_ref(x, dy, gamma, eps):
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    M = x.size // x.shape[1]
    m, v = x.mean(axis=axes), x.var(axis=axes)
    inv = 1.0 / np.sqrt(v + eps)
    xh = (x - m.reshape(shape)) * inv.reshape(shape)
    db = dy.sum(axis=axes)
    dg = (dy * xh).sum(axis=axes)
    dx = (gamma * inv).reshape(shape) * (dy - db.reshape(shape) / M - xh * dg.reshape(shape) / M)
    return dx, dg, db


def ln_ref(x, gamma, beta, eps, k):
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - k, x.ndim))
    m = x.mean(axis=axes, keepdims=True)
    v = x.var(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * gamma + beta


# ----------------------------------------------------------- batch norm --

@pytest.mark.parametrize("shape", [(7, 5), (6, 3, 11), (4, 70), (3, 4, 5, 6), (2, 130, 3, 1)])
def test_batchnorm_forward_backward_reference(shape):
    C = shape[1]
    bn = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(C)
    bn.weight.data = rand(C)
    bn.bias.data = rand(C)
    x = rand(*shape, scale=3.0, shift=50.0)         # large mean: stable statistics
    y = bn(x)
    yr, m, v = bn_ref(x, bn.weight.data, bn.bias.data, bn.eps)
    np.testing.assert_allclose(y, yr, rtol=1e-4, atol=2e-4)
    M = x.size // C
    np.testing.assert_allclose(bn.running_mean, 0.1 * m, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * v * M / (M - 1), rtol=1e-5)
    assert bn.num_batches_tracked.dtype == np.int64 and int(bn.num_batches_tracked) == 1
    dy = rand(*shape)
    dx = bn.backward(dy, input_grad=True)
    dxr, dgr, dbr = bn_grad_ref(x, dy, bn.weight.data, bn.eps)
    np.testing.assert_allclose(dx, dxr, rtol=1e-3, atol=2e-4)
    np.testing.assert_allclose(bn.weight.grad, dgr, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(bn.bias.grad, dbr, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(9, 70), (5, 3, 17)])
def test_batchnorm_naive_twin(shape):
    N, C = shape[:2]
    S = x_size = int(np.prod(shape[2:]))
    x, dy, g, b = rand(*shape, shift=5.0), rand(*shape), rand(C), rand(C)
    res = []
    for naive in (False, True):
        y, m, v, s = np.empty_like(x), *(np.empty(C, np.float32) for _ in range(3))
        _C.batchnorm_forward(N, C, S, x, g, b, 1e-5, y, m, v, s, naive=naive)
        dg, db, dx = np.empty(C, np.float32), np.empty(C, np.float32), np.empty_like(x)
        _C.batchnorm_backward(N, C, S, x, dy, m, s, g, dg, db, dx, naive=naive)
        res.append((y, m, v, s, dg, db, dx))
    for a, r in zip(*res):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5 * x_size)


def test_batchnorm_gradcheck():
    bn = nn.BatchNorm2d(3)
    bn.weight.data = rand(3)
    bn.bias.data = rand(3)
    check_module_grads(bn, rand(2, 3, 3, 2))
    check_module_grads(nn.BatchNorm1d(4, affine=False), rand(5, 4))


def test_batchnorm_eval_and_momentum_none():
    bn = nn.BatchNorm1d(3, momentum=None)
    xs = [rand(8, 3, shift=i) for i in range(3)]
    for x in xs:
        bn(x)
    allx = np.stack(xs).astype(np.float64)
    np.testing.assert_allclose(bn.running_mean, allx.mean(axis=(1,)).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, allx.var(axis=1, ddof=1).mean(axis=0), rtol=1e-5)
    bn.clear_contexts()
    bn.eval()
    x = rand(4, 3)
    y = bn(x)
    ref = (x - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    assert not bn._contexts                          # eval saves nothing
    bn1 = nn.BatchNorm1d(3, track_running_stats=False).eval()
    np.testing.assert_allclose(bn1(x), bn_ref(x, np.ones(3), np.zeros(3), 1e-5)[0],
                               rtol=1e-4, atol=1e-4)
    assert "running_mean" not in bn1.state_dict()


def _torch_bn(fb, torch_cls):
    tb = torch_cls(fb.num_features, eps=fb.eps, momentum=fb.momentum, affine=fb.affine,
                   track_running_stats=fb.track_running_stats).double()
    with torch.no_grad():
        if fb.affine:
            tb.weight.copy_(torch.from_numpy(fb.weight.data))
            tb.bias.copy_(torch.from_numpy(fb.bias.data))
    return tb


@needs_torch
@pytest.mark.parametrize("cls,shape,kw", [
    ("BatchNorm2d", (6, 4, 5, 3), {}),
    ("BatchNorm2d", (6, 4, 5, 3), {"momentum": None}),
    ("BatchNorm1d", (10, 4), {"affine": False}),
    ("BatchNorm1d", (5, 4, 7), {"track_running_stats": False}),
    ("BatchNorm1d", (5, 4, 7), {"momentum": 0.3, "eps": 1e-3}),
])
def test_batchnorm_torch_parity(cls, shape, kw):
    fb = getattr(nn, cls)(shape[1], **kw)
    if fb.affine:
        fb.weight.data = rand(shape[1])
        fb.bias.data = rand(shape[1])
    tb = _torch_bn(fb, getattr(torch.nn, cls))
    for step in range(4):
        x, dy = rand(*shape, shift=step), rand(*shape)
        fb.zero_grad()
        y = fb(x)
        dx = fb.backward(dy, input_grad=True)
        xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
        tb.zero_grad()
        yt = tb(xt)
        yt.backward(torch.from_numpy(dy.astype(np.float64)))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-4)
        if fb.affine:
            np.testing.assert_allclose(fb.weight.grad, tb.weight.grad.numpy(), rtol=1e-4,
                                       atol=1e-4)
            np.testing.assert_allclose(fb.bias.grad, tb.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
    if fb.track_running_stats:
        np.testing.assert_allclose(fb.running_mean, tb.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fb.running_var, tb.running_var.numpy(), rtol=1e-5, atol=1e-6)
        assert int(fb.num_batches_tracked) == int(tb.num_batches_tracked) == 4
    fb.eval()
    tb.eval()
    x = rand(*shape)
    np.testing.assert_allclose(fb(x), tb(torch.from_numpy(x.astype(np.float64))).detach().numpy(),
                               rtol=1e-4, atol=1e-4)


@needs_torch
def test_batchnorm_state_dict_exchange_with_torch(tmp_path):
    tb = torch.nn.BatchNorm2d(3)
    tb(torch.randn(4, 3, 2, 2) + 2.0)
    tb(torch.randn(4, 3, 2, 2))
    sd = {k: v.numpy() for k, v in tb.state_dict().items()}
    assert sd["num_batches_tracked"].dtype == np.int64
    fb = nn.BatchNorm2d(3)
    fb.load_state_dict(sd)
    assert fb.num_batches_tracked.dtype == np.int64 and int(fb.num_batches_tracked) == 2
    back = fb.state_dict()
    assert set(back) == set(sd) and back["num_batches_tracked"].dtype == np.int64
    tb2 = torch.nn.BatchNorm2d(3)
    tb2.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in back.items()})
    assert int(tb2.num_batches_tracked) == 2
    np.testing.assert_array_equal(tb2.running_var.numpy(), sd["running_var"])
    # fastnn.save / load keep the int64 buffer
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    model[1].load_state_dict({"weight": sd["weight"], "bias": sd["bias"],
                              "running_mean": sd["running_mean"],
                              "running_var": sd["running_var"],
                              "num_batches_tracked": np.array(7, np.int64)})
    path = fastnn.save(model, tmp_path / "bn.npz")
    loaded = fastnn.load(path)
    assert loaded[1].num_batches_tracked.dtype == np.int64
    assert int(loaded[1].num_batches_tracked) == 7
    np.testing.assert_array_equal(loaded[1].running_mean, sd["running_mean"])


def test_register_buffer_dtypes():
    m = nn.Module()
    m.register_buffer("f", [1, 2])
    m.register_buffer("i", np.array(3, np.int64), dtype=None)
    assert m.f.dtype == np.float32 and m.i.dtype == np.int64 and m.i.shape == ()
    sd = m.state_dict()
    assert sd["i"].dtype == np.int64
    m.load_state_dict({"f": np.zeros(2), "i": np.array(9)})
    assert int(m.i) == 9 and m.i.dtype == np.int64
    with pytest.raises(TypeError, match="'i' is an integer buffer"):
        m.load_state_dict({"f": np.zeros(2), "i": np.array(1.5)})
    with pytest.raises(TypeError, match="numeric"):
        m.register_buffer("s", np.array(["a"]), dtype=None)


@pytest.mark.parametrize("shape", [(128, 32, 28, 28), (4096, 96)])
def test_batchnorm_threads_bitwise(shape):
    x, dy = rand(*shape, shift=1.0), rand(*shape)
    out = []
    old = fastnn.get_num_threads()
    try:
        for t in (1, 2):
            fastnn.set_num_threads(t)
            bn = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(shape[1])
            y = bn(x)
            dx = bn.backward(dy, input_grad=True)
            out.append((y, dx, bn.weight.grad.copy(), bn.bias.grad.copy(), bn.running_var.copy()))
    finally:
        fastnn.set_num_threads(old)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_bad_inputs():
    with pytest.raises(ValueError, match=r"BatchNorm2d: x must be 4-D .*\(2, 3, 4\)"):
        nn.BatchNorm2d(3)(rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d: x must be 2-D .*\(2, 3, 4, 5\)"):
        nn.BatchNorm1d(3)(rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: x has shape \(2, 5, 3, 3\) with 5 "
                                         r"channels, expected num_features=3"):
        nn.BatchNorm2d(3)(rand(2, 5, 3, 3))
    with pytest.raises(ValueError, match="BatchNorm1d: expected more than 1 value per channel "
                                         r"when training, got x of shape \(1, 3\)"):
        nn.BatchNorm1d(3)(rand(1, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3)(rand(1, 3, 1, 1))
    nn.BatchNorm1d(3).eval()(rand(1, 3))               # eval with running stats: fine
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm1d(0)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm1d(3, eps=0.0)
    bn = nn.BatchNorm1d(3)
    bn(rand(4, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d: grad_out has shape \(4, 2\)"):
        bn.backward(rand(4, 2))


# ----------------------------------------------------------- layer norm --

@pytest.mark.parametrize("shape,ns", [((4, 7), 7), ((3, 5, 6), (5, 6)), ((2, 3, 300), 300),
                                      ((0, 4), 4)])
def test_layernorm_reference_and_naive(shape, ns):
    ln = nn.LayerNorm(ns)
    k = len(ln.normalized_shape)
    ln.weight.data = rand(*ln.normalized_shape)
    ln.bias.data = rand(*ln.normalized_shape)
    x = rand(*shape, scale=2.0, shift=30.0)
    y = ln(x)
    np.testing.assert_allclose(y, ln_ref(x, ln.weight.data, ln.bias.data, ln.eps, k),
                               rtol=1e-4, atol=2e-4)
    ln.eval()
    np.testing.assert_array_equal(ln(x), y)            # the same in eval
    if x.size:
        D = int(np.prod(ln.normalized_shape))
        R = x.size // D
        dy = rand(*shape)
        res = []
        for naive in (False, True):
            yy, m, s = np.empty_like(x), np.empty(R, np.float32), np.empty(R, np.float32)
            _C.layernorm_forward(R, D, x, ln.weight.data, ln.bias.data, 1e-5, yy, m, s,
                                 naive=naive)
            dg, db, dx = np.empty(D, np.float32), np.empty(D, np.float32), np.empty_like(x)
            _C.layernorm_backward(R, D, x, dy, m, s, ln.weight.data, dg, db, dx, naive=naive)
            res.append((yy, m, s, dg, db, dx))
        for a, r in zip(*res):
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5)


def test_layernorm_gradcheck():
    ln = nn.LayerNorm((3, 4))
    ln.weight.data = rand(3, 4)
    ln.bias.data = rand(3, 4)
    check_module_grads(ln, rand(2, 3, 4))
    check_module_grads(nn.LayerNorm(5, elementwise_affine=False), rand(3, 5))


@needs_torch
@pytest.mark.parametrize("kw", [{}, {"elementwise_affine": False}, {"bias": False},
                                {"eps": 1e-3}])
def test_layernorm_torch_parity(kw):
    shape, ns = (4, 10, 64), (64,)
    fl = nn.LayerNorm(ns, **kw)
    tl = torch.nn.LayerNorm(ns, **kw).double()
    if fl.weight is not None:
        fl.weight.data = rand(*ns)
        with torch.no_grad():
            tl.weight.copy_(torch.from_numpy(fl.weight.data))
    if fl.bias is not None:
        fl.bias.data = rand(*ns)
        with torch.no_grad():
            tl.bias.copy_(torch.from_numpy(fl.bias.data))
    x, dy = rand(*shape, shift=3.0), rand(*shape)
    y = fl(x)
    dx = fl.backward(dy, input_grad=True)
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    yt = tl(xt)
    yt.backward(torch.from_numpy(dy.astype(np.float64)))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-4)
    for name in ("weight", "bias"):
        p = getattr(fl, name)
        if p is not None:
            np.testing.assert_allclose(p.grad, getattr(tl, name).grad.numpy(), rtol=1e-4,
                                       atol=1e-4)
    fsd = fl.state_dict()
    assert set(fsd) == set(tl.state_dict())


def test_layernorm_threads_bitwise_and_bad_inputs():
    x, dy = rand(2048, 512), rand(2048, 512)
    out = []
    old = fastnn.get_num_threads()
    try:
        for t in (1, 2):
            fastnn.set_num_threads(t)
            ln = nn.LayerNorm(512)
            y = ln(x)
            out.append((y, ln.backward(dy, input_grad=True), ln.weight.grad.copy()))
    finally:
        fastnn.set_num_threads(old)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"LayerNorm: x has shape \(3, 5\), expected trailing "
                                         r"dimensions normalized_shape=\(4,\)"):
        nn.LayerNorm(4)(rand(3, 5))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm((2, 3))(rand(3))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(0)


# ----------------------------------------------- Dropout2d, Concat, fuse --

def test_dropout2d():
    fastnn.manual_seed(3)
    d = nn.Dropout2d(0.5)
    x = rand(16, 8, 3, 4) + 5.0
    y = d(x)
    zero = np.all(y == 0, axis=(2, 3))
    kept = np.all(np.isclose(y, 2 * x), axis=(2, 3))
    assert np.all(zero | kept) and 0.25 < zero.mean() < 0.75   # whole channels
    dy = rand(*x.shape)
    dx = d.backward(dy, input_grad=True)
    np.testing.assert_allclose(dx, np.where(zero[:, :, None, None], 0.0, 2 * dy), rtol=1e-6)
    old = fastnn.get_num_threads()
    outs = []
    for t in (1, 2):
        fastnn.set_num_threads(t)
        fastnn.manual_seed(9)
        outs.append(nn.Dropout2d(0.3)(x))
    fastnn.set_num_threads(old)
    np.testing.assert_array_equal(*outs)
    assert nn.Dropout2d(0.3)(rand(2, 3, 5)).shape == (2, 3, 5)   # (N, C, L)
    np.testing.assert_array_equal(nn.Dropout2d(1.0)(x), 0 * x)
    assert nn.Dropout2d(0.5).eval()(x) is x
    with pytest.raises(ValueError, match=r"Dropout2d: x must be 4-D .*\(2, 3\)"):
        nn.Dropout2d()(rand(2, 3))
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout2d(1.5)


def test_concat_forward_backward():
    a = nn.Linear(4, 3)
    b = nn.Sequential(nn.Linear(4, 5), nn.Tanh())
    cat = nn.Concat(nn.Identity(), a, b)
    x = rand(6, 4)
    y = cat(x)
    ref = np.concatenate([x, a(x), b(x)], axis=1)
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    cat.clear_contexts()
    check_module_grads(cat, x)
    # the parameter gradient alone (user-level backward, no input gradient)
    cat.zero_grad()
    cat(x)
    assert cat.backward(np.ones((6, 12), np.float32)) is None
    np.testing.assert_allclose(a.bias.grad, np.full(3, 6.0))
    with pytest.raises(ValueError, match="Concat: branch 1 returned shape"):
        nn.Concat(nn.Identity(), nn.Flatten())(rand(2, 3, 4))
    with pytest.raises(ValueError, match="Concat: grad_out has shape"):
        cat(x)
        cat.backward(np.ones((6, 11), np.float32), input_grad=True)
    with pytest.raises(TypeError, match="branch 0 must be a Module"):
        nn.Concat(3)


def test_concat_channels_4d_and_save(tmp_path):
    cat = nn.Concat(nn.Identity(), nn.Sequential(nn.BatchNorm2d(2), nn.ReLU()))
    x = rand(3, 2, 4, 4)
    y = cat(x)
    assert y.shape == (3, 4, 4, 4)
    np.testing.assert_array_equal(y[:, :2], x)
    g = rand(*y.shape)
    dx = cat.backward(g, input_grad=True)
    assert dx.shape == x.shape
    loaded = fastnn.load(fastnn.save(cat, tmp_path / "cat.npz"))
    assert isinstance(loaded, nn.Concat) and loaded.dim == 1
    np.testing.assert_array_equal(loaded.eval()(x), cat.eval()(x))


@pytest.mark.parametrize("bias,affine", [(True, True), (False, True), (True, False)])
def test_fuse_conv_bn_linear(bias, affine, tmp_path):
    model = nn.Sequential(nn.Linear(6, 5, bias=bias), nn.BatchNorm1d(5, affine=affine),
                          nn.ReLU(), nn.Linear(5, 4), nn.BatchNorm1d(4))
    for i in range(5):                   # give the running statistics some history
        model(rand(16, 6, shift=i))
    if affine:
        model[1].weight.data = rand(5)
        model[1].bias.data = rand(5)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    fused = nn.utils.fuse_conv_bn(model)
    x = rand(8, 6)
    want = model.eval()(x)
    np.testing.assert_allclose(fused(x), want, rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in fused.modules())
    for k, v in model.state_dict().items():              # the input is untouched
        np.testing.assert_array_equal(v, before[k])
    loaded = fastnn.load(fastnn.save(fused, tmp_path / "fused.npz"))
    np.testing.assert_array_equal(loaded(x), fused(x))


def test_fuse_conv_bn_duck_typed_conv():
    """A module shaped like Conv2d (weight (out, in, kh, kw), bias) is folded
    too: checked with a stand-in 1x1 convolution written in numpy."""

    class Conv1x1(nn.Module):
        def __init__(self, cin, cout, bias=True):
            super().__init__()
            self.weight = nn.Parameter(rand(cout, cin, 1, 1))
            self.bias = nn.Parameter(rand(cout)) if bias else None

        def forward(self, x):
            y = np.einsum("oi,nihw->nohw", self.weight.data[:, :, 0, 0], x)
            if self.bias is not None:
                y = y + self.bias.data[None, :, None, None]
            return y.astype(np.float32)

    model = nn.Sequential(Conv1x1(3, 4, bias=False), nn.BatchNorm2d(4))
    model(rand(5, 3, 2, 2, shift=1.0))
    model[1].weight.data = rand(4)
    fused = nn.utils.fuse_conv_bn(model)
    x = rand(2, 3, 2, 2)
    np.testing.assert_allclose(fused(x), model.eval()(x), rtol=1e-5, atol=1e-5)
    assert isinstance(fused[1], nn.Identity) and fused[0].bias is not None
    with pytest.raises(TypeError, match="fuse_conv_bn: model"):
        nn.utils.fuse_conv_bn(3)


def test_augmentations_on_nchw_batches_in_a_dataloader():
    """The augmentations take (N, C, H, W) batches from a DataLoader; the
    geometric ones draw one set of parameters per sample, shared by its
    channels (channel c = (c + 1) * channel 0 stays so), ColorJitter and noise
    keep the shape."""
    from fastnn.data import DataLoader, augment as A
    base = RNG.random((20, 1, 10, 10)).astype(np.float32)
    x = np.concatenate([base, 2 * base, 3 * base], axis=1)        # (20, 3, 10, 10)
    y = np.arange(20)
    geo = A.Compose([A.RandomCrop(8, padding=1, seed=1), A.RandomHorizontalFlip(seed=2),
                     A.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), seed=3)])
    seen = 0
    for xb, yb in DataLoader(x, y, batch_size=8, shuffle=True, seed=0, transform=geo):
        assert xb.shape[1:] == (3, 8, 8) and xb.dtype == np.float32
        for c in (1, 2):
            np.testing.assert_allclose(xb[:, c], (c + 1) * xb[:, 0], rtol=1e-5, atol=1e-5)
        seen += len(yb)
    assert seen == 20
    for t in (A.ColorJitter(brightness=0.2, contrast=0.2, seed=4), A.GaussianNoise(0.1, seed=5)):
        out = next(iter(DataLoader(x, y, batch_size=4, shuffle=False, transform=t)))[0]
        assert out.shape == (4, 3, 10, 10) and not np.array_equal(out, x[:4])


def test_norm_layers_without_input_gradient():
    """First in a Sequential, called from user code: no dx is computed, the
    parameter gradients are the same as with it."""
    for make, shape in ((lambda: nn.BatchNorm2d(3), (4, 3, 2, 2)), (lambda: nn.LayerNorm(5), (4, 5))):
        fastnn.manual_seed(0)
        a = nn.Sequential(make(), nn.Flatten(), nn.Linear(int(np.prod(shape[1:])), 2))
        fastnn.manual_seed(0)
        b = nn.Sequential(make(), nn.Flatten(), nn.Linear(int(np.prod(shape[1:])), 2))
        x, g = rand(*shape), rand(shape[0], 2)
        a(x)
        assert a.backward(g) is None
        b(x)
        assert b.backward(g, input_grad=True).shape == shape
        np.testing.assert_array_equal(a[0].weight.grad, b[0].weight.grad)
        np.testing.assert_array_equal(a[0].bias.grad, b[0].bias.grad)


def test_same_bits_on_every_isa_path():
    """The float64 lane sums are written with vector types in a fixed lane
    order: every ISA path gives the same bits (forward and backward)."""
    x, dy = rand(4, 3, 40, shift=2.0), rand(4, 3, 40)
    old = fastnn.get_isa()
    outs = []
    try:
        for isa in fastnn.available_isas():
            fastnn.set_isa(isa)
            bn, ln = nn.BatchNorm1d(3), nn.LayerNorm(40)
            res = [bn(x), bn.backward(dy, input_grad=True), bn.weight.grad.copy(),
                   ln(x), ln.backward(dy, input_grad=True), ln.weight.grad.copy()]
            outs.append(res)
    finally:
        fastnn.set_isa(old)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


def test_fuse_conv_bn_with_real_conv2d():
    fastnn.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.Conv2d(8, 4, 3), nn.BatchNorm2d(4))
    x = np.random.default_rng(0).standard_normal((4, 3, 10, 10)).astype(np.float32)
    for _ in range(3):                   # running statistics away from their start
        y = m(x)
        m.backward(np.ones_like(y))
    m.eval()
    f = nn.utils.fuse_conv_bn(m)
    assert not any(isinstance(c, nn.BatchNorm2d) for c in f)
    with fastnn.no_grad():
        np.testing.assert_allclose(f(x), m(x), rtol=1e-5, atol=1e-5)
