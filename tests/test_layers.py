"""Linear, Flatten, Identity, Dropout, GaussianNoise, Sequential, Residual:
forward/backward against float64 numpy references, finite-difference
gradient checks, argument errors, state round trips, dropout statistics and
determinism across seeds and thread counts."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import Module

from helpers import check_module_grads


class Tanh(Module):
    """A tiny local nonlinearity (the activation layers live elsewhere)."""

    def forward(self, x):
        self._y = np.tanh(x).astype(np.float32)
        return self._y

    def backward(self, grad_out):
        return (grad_out * (1 - self._y ** 2)).astype(np.float32)


class Recorder(Module):
    """Identity that logs forward/backward calls into a shared list."""

    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append(("f", self.name))
        return x

    def backward(self, g):
        self.log.append(("b", self.name))
        return g


@pytest.fixture
def threads():
    saved = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(saved)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------ Linear --

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (7, 13, 5), (33, 70, 49)])
def test_linear_forward_backward_reference(n, i, o, bias):
    fastnn.manual_seed(1)
    lin = nn.Linear(i, o, bias=bias)
    x, dy = rand(n, i, seed=2), rand(n, o, seed=3)
    W = lin.weight.data.astype(np.float64)
    y = lin(x)
    ref = x.astype(np.float64) @ W.T + (lin.bias.data if bias else 0.0)
    assert y.dtype == np.float32 and y.shape == (n, o)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    dx = lin.backward(dy, input_grad=True)
    d64 = dy.astype(np.float64)
    np.testing.assert_allclose(dx, d64 @ W, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin.weight.grad, d64.T @ x, rtol=1e-5, atol=1e-5)
    if bias:
        np.testing.assert_allclose(lin.bias.grad, d64.sum(0), rtol=1e-5, atol=1e-5)
    else:
        assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]


def test_linear_accepts_views_and_lists():
    lin = nn.Linear(3, 2)
    big = rand(10, 8)
    view = big[::2, 1:4]                       # strided rows, used in place
    np.testing.assert_allclose(lin(view), lin(np.ascontiguousarray(view)), rtol=1e-6)
    np.testing.assert_allclose(lin([[1.0, 2.0, 3.0]]), lin(np.array([[1, 2, 3]], np.float32)))
    g = lin.backward(rand(1, 2), input_grad=True)
    assert g.shape == (1, 3)


def test_linear_default_init():
    fastnn.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = lin.weight.data, lin.bias.data
    assert w.shape == (300, 400) and b.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.var() - bound ** 2 / 3) < 5 * math.sqrt(4 / 45 * bound ** 4 / w.size)
    assert np.all(lin.weight.grad == 0) and np.all(lin.bias.grad == 0)
    fastnn.manual_seed(0)
    again = nn.Linear(400, 300)
    np.testing.assert_array_equal(again.weight.data, w)
    np.testing.assert_array_equal(again.bias.data, b)
    assert not np.array_equal(nn.Linear(400, 300).weight.data, w)


def test_linear_gradcheck():
    fastnn.manual_seed(4)
    check_module_grads(nn.Linear(5, 3), rand(4, 5))
    check_module_grads(nn.Linear(5, 3, bias=False), rand(4, 5))


def test_linear_grads_accumulate():
    lin = nn.Linear(6, 4)
    x, dy = rand(5, 6), rand(5, 4, seed=1)
    lin(x)
    lin(x)
    lin.backward(dy)
    gw, gb = lin.weight.grad.copy(), lin.bias.grad.copy()
    lin.backward(dy)
    np.testing.assert_allclose(lin.weight.grad, 2 * gw, rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad, 2 * gb, rtol=1e-6)
    lin.zero_grad()
    assert np.all(lin.weight.grad == 0) and np.all(lin.bias.grad == 0)


def test_linear_frozen_weight_gets_no_grad():
    lin = nn.Linear(3, 2)
    lin.weight.requires_grad = False
    lin(rand(4, 3))
    dx = lin.backward(rand(4, 2), input_grad=True)
    assert np.all(lin.weight.grad == 0) and np.any(lin.bias.grad != 0)
    np.testing.assert_allclose(dx, rand(4, 2).astype(np.float64) @ lin.weight.data, rtol=1e-5)


def test_linear_bad_inputs():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"Linear: x must be 2-D \(N, 4\), got shape \(4,\)"):
        lin(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"Linear: x must be 2-D .* got shape \(2, 3, 4\)"):
        lin(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"Linear: x has shape \(2, 5\), expected \(N, 4\)"):
        lin(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="Linear: x must be float32, got dtype float64"):
        lin(np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match="Linear.backward: no saved context"):
        nn.Linear(4, 3).backward(np.zeros((2, 3), np.float32), input_grad=True)
    lin(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Linear: grad_out has shape \(2, 4\), expected \(2, 3\)"):
        lin.backward(np.zeros((2, 4), np.float32), input_grad=True)
    lin(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="Linear: grad_out must be float32"):
        lin.backward(np.zeros((2, 3)), input_grad=True)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="Linear: in_features must be a positive integer"):
            nn.Linear(bad, 3)
    with pytest.raises(ValueError, match="Linear: out_features must be a positive integer"):
        nn.Linear(3, 0)
    with pytest.raises(ValueError, match=r"Parameter.data: cannot assign an array of shape "
                                         r"\(3, 5\) to a parameter of shape \(3, 4\)"):
        lin.weight.data = np.zeros((3, 5), np.float32)   # assignment copies: shapes must match
    lin.weight = nn.Parameter(np.zeros((3, 5)))           # a new Parameter behind the layer's back
    with pytest.raises(ValueError, match=r"Linear: weight must be .* shape \(3, 4\), got shape \(3, 5\)"):
        lin(np.zeros((2, 4), np.float32))


def test_linear_rejects_nan_weights_on_load():
    lin = nn.Linear(3, 2)
    before = lin.weight.data.copy()
    sd = lin.state_dict()
    sd["weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="'weight' contains NaN"):
        lin.load_state_dict(sd)
    np.testing.assert_array_equal(lin.weight.data, before)


def test_linear_extra_repr():
    assert repr(nn.Linear(784, 10)) == "Linear(in_features=784, out_features=10, bias=True)"
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"


def test_linear_thread_count_bitwise(threads):
    fastnn.manual_seed(9)
    lin = nn.Linear(96, 128)
    x, dy = rand(64, 96), rand(64, 128, seed=1)
    out = {}
    for nt in (1, 2):
        threads(nt)
        lin.zero_grad()
        y = lin(x)
        dx = lin.backward(dy, input_grad=True)
        out[nt] = (y, dx, lin.weight.grad.copy(), lin.bias.grad.copy())
    for a, b in zip(out[1], out[2]):
        assert a.tobytes() == b.tobytes()


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    lin = nn.Linear(20, 7)
    t = torch.nn.Linear(20, 7)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(lin.weight.data))
        t.bias.copy_(torch.from_numpy(lin.bias.data))
    x, dy = rand(9, 20), rand(9, 7, seed=1)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = t(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(lin(x), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.backward(dy, input_grad=True), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.weight.grad, t.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.bias.grad, t.bias.grad.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------ Flatten, Identity --

def test_flatten():
    x = rand(2, 3, 4, 5)
    f = nn.Flatten()
    y = f(x)
    assert y.shape == (2, 60) and np.shares_memory(y, x)
    np.testing.assert_array_equal(y, x.reshape(2, 60))
    g = f.backward(rand(2, 60), input_grad=True)
    assert g.shape == (2, 3, 4, 5)
    assert nn.Flatten(0)(x).shape == (120,)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Flatten(-3, -2)(x).shape == (2, 12, 5)
    assert nn.Flatten(2, 2)(x).shape == (2, 3, 4, 5)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    with pytest.raises(ValueError, match=r"Flatten: start_dim=3, end_dim=1 .* shape \(2, 3, 4, 5\)"):
        nn.Flatten(3, 1)(x)
    with pytest.raises(ValueError, match="Flatten: start_dim=1"):
        nn.Flatten()(np.zeros(3, np.float32))
    f(x)
    with pytest.raises(ValueError, match="Flatten: grad_out has shape"):
        f.backward(np.zeros((2, 59), np.float32), input_grad=True)
    with pytest.raises(TypeError, match="Flatten: start_dim must be an integer"):
        nn.Flatten(1.5)


def test_identity():
    x = rand(3, 2)
    m = nn.Identity(54, unused_argument=0.1)
    assert m(x) is x and m.backward(x, input_grad=True) is x
    assert repr(m) == "Identity()"


# ----------------------------------------------------------- containers --

def test_sequential_gradcheck():
    fastnn.manual_seed(5)
    check_module_grads(nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)), rand(3, 5))
    check_module_grads(nn.Sequential(nn.Linear(5, 6), Tanh(), nn.Linear(6, 2)), rand(4, 5))


def test_sequential_order():
    log = []
    seq = nn.Sequential(Recorder("a", log), Recorder("b", log), Recorder("c", log))
    seq.backward(seq(rand(2, 2)), input_grad=True)
    assert log == [("f", "a"), ("f", "b"), ("f", "c"), ("b", "c"), ("b", "b"), ("b", "a")]


def test_sequential_container_protocol():
    l0, l1, l2 = nn.Linear(2, 3), Tanh(), nn.Linear(3, 1)
    seq = nn.Sequential(l0, l1)
    assert len(seq) == 2 and seq[0] is l0 and seq[-1] is l1 and list(seq) == [l0, l1]
    assert seq.append(l2) is seq and len(seq) == 3 and seq[2] is l2
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [l1, l2]
    assert list(sub.state_dict()) == ["2.weight", "2.bias"]
    new = nn.Linear(3, 1)
    seq[2] = new
    assert seq[2] is new and seq.parameters()[-1] is new.bias
    seq.extend([Tanh()])
    assert len(seq) == 4
    with pytest.raises(IndexError, match="Sequential: index 4 is out of range for 4 modules"):
        seq[4]
    with pytest.raises(TypeError, match="Sequential: argument 1 must be a Module, got int"):
        nn.Sequential(nn.Linear(1, 1), 3)
    with pytest.raises(TypeError, match="Sequential.append: module must be a Module"):
        seq.append(np.zeros(3))
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    assert named[0] is named.fc


def test_sequential_repr():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.Dropout(0.25),
                        nn.Sequential(nn.Linear(128, 10), nn.Identity()))
    assert repr(seq) == (
        "Sequential(\n"
        "  (0): Flatten(start_dim=1, end_dim=-1)\n"
        "  (1): Linear(in_features=784, out_features=128, bias=True)\n"
        "  (2): Dropout(p=0.25)\n"
        "  (3): Sequential(\n"
        "    (0): Linear(in_features=128, out_features=10, bias=True)\n"
        "    (1): Identity()\n"
        "  )\n"
        ")")


def test_state_dict_round_trip():
    fastnn.manual_seed(1)
    a = nn.Sequential(nn.Linear(6, 5), Tanh(), nn.Residual(nn.Linear(5, 5)), nn.Linear(5, 2))
    fastnn.manual_seed(2)
    b = nn.Sequential(nn.Linear(6, 5), Tanh(), nn.Residual(nn.Linear(5, 5)), nn.Linear(5, 2))
    x = rand(3, 6)
    assert not np.allclose(a(x), b(x))
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.block.weight", "2.block.bias",
                        "3.weight", "3.bias"]
    b.load_state_dict(sd)
    np.testing.assert_array_equal(a(x), b(x))
    sd["0.weight"][:] = 0                      # state_dict holds copies
    assert np.any(a[0].weight.data != 0)


def test_residual_gradcheck():
    fastnn.manual_seed(6)
    check_module_grads(nn.Residual(nn.Sequential(nn.Linear(4, 4), Tanh())), rand(3, 4))
    check_module_grads(nn.Residual(nn.Sequential(nn.Linear(4, 3), Tanh()),
                                   shortcut=nn.Linear(4, 3, bias=False)), rand(3, 4))


def test_residual_reference():
    fastnn.manual_seed(7)
    block = nn.Linear(4, 4)
    res = nn.Residual(block)
    x, dy = rand(5, 4), rand(5, 4, seed=1)
    W = block.weight.data.astype(np.float64)
    np.testing.assert_allclose(res(x), x @ W.T + block.bias.data + x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.backward(dy, input_grad=True), dy @ W + dy, rtol=1e-5, atol=1e-6)
    assert repr(res).startswith("Residual(\n  (block): Linear(")


def test_residual_shape_mismatch():
    with pytest.raises(ValueError, match=r"Residual: the block's output has shape \(2, 3\) but x "
                                         r"has shape \(2, 4\)"):
        nn.Residual(nn.Linear(4, 3))(rand(2, 4))
    with pytest.raises(TypeError, match="Residual: block must be a Module"):
        nn.Residual(lambda x: x)


def test_train_eval_reaches_children():
    seq = nn.Sequential(nn.Linear(2, 2), nn.Residual(nn.Dropout()))
    seq.eval()
    assert all(not m.training for m in seq.modules())
    seq.train()
    assert all(m.training for m in seq.modules())


# -------------------------------------------------------------- Dropout --

@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    fastnn.manual_seed(0)
    d = nn.Dropout(p)
    x = np.ones((500, 400), np.float32)
    y = d(x)
    kept = y != 0
    n = x.size
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(y[kept], np.float32(1 / (1 - p)))
    assert abs(y.mean() - 1) < 5 * math.sqrt(p / (1 - p) / n)    # unbiased in expectation
    np.testing.assert_array_equal(d.mask, kept)


def test_dropout_backward_uses_the_forward_mask():
    fastnn.manual_seed(3)
    d = nn.Dropout(0.4)
    x, dy = rand(64, 50), rand(64, 50, seed=1)
    y = d(x)
    mask = d.mask.astype(bool)
    scale = np.float32(1 / 0.6)
    np.testing.assert_array_equal(y, np.where(mask, x * scale, 0))
    dx = d.backward(dy, input_grad=True)
    np.testing.assert_array_equal(dx, np.where(mask, dy * scale, 0))
    with pytest.raises(RuntimeError, match="Dropout.backward: no saved context"):
        d.backward(dy)                                    # the context was consumed


def test_dropout_new_mask_each_call_and_seed_reproducible():
    x = np.ones((100, 100), np.float32)
    fastnn.manual_seed(11)
    d = nn.Dropout(0.5)
    a, b = d(x), d(x)
    assert not np.array_equal(a, b)
    fastnn.manual_seed(11)
    np.testing.assert_array_equal(d(x), a)
    np.testing.assert_array_equal(d(x), b)
    fastnn.manual_seed(12)
    assert not np.array_equal(d(x), a)


def test_dropout_thread_count_bitwise(threads):
    x = rand(300, 1000)
    out = {}
    for nt in (1, 2):
        threads(nt)
        fastnn.manual_seed(5)
        d = nn.Dropout(0.3)
        y = d(x)
        out[nt] = (y, d.backward(x, input_grad=True), d(x))
    for a, b in zip(out[1], out[2]):
        assert a.tobytes() == b.tobytes()


def test_dropout_eval_p0_p1():
    x = rand(8, 9)
    d = nn.Dropout(0.5).eval()
    assert d(x) is x
    with pytest.raises(RuntimeError, match="Dropout.backward: no saved context"):
        d.backward(x)                                     # eval mode saves nothing
    d0 = nn.Dropout(0.0)
    assert d0(x) is x and d0.backward(x, input_grad=True) is x
    d1 = nn.Dropout(1.0)
    y = d1(x)
    assert y.shape == x.shape and np.all(y == 0)
    assert np.all(d1.backward(x, input_grad=True) == 0)
    assert nn.Dropout(0.2).p == 0.2 and repr(nn.Dropout(0.2)) == "Dropout(p=0.2)"
    assert nn.Dropout().p == 0.5


def test_dropout_bad_arguments():
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"Dropout: p must be in \\[0, 1\\], got {p}"):
            nn.Dropout(p)
    with pytest.raises(ValueError, match="Dropout: p must be finite"):
        nn.Dropout(float("nan"))
    with pytest.raises(TypeError, match="Dropout: p must be a real number"):
        nn.Dropout("0.5")
    d = nn.Dropout(0.5)
    with pytest.raises(RuntimeError, match="Dropout.backward: no saved context"):
        d.backward(np.zeros(3, np.float32), input_grad=True)
    d.p = 2.0
    with pytest.raises(ValueError, match="Dropout: p must be in"):
        d(np.zeros(3, np.float32))
    d.p = 0.5
    d(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"Dropout: grad_out has shape \(3, 2\), expected \(2, 3\)"):
        d.backward(np.zeros((3, 2), np.float32), input_grad=True)
    with pytest.raises(TypeError, match="Dropout: x must be float32"):
        d(np.zeros(3))


def test_dropout_any_shape_and_layout():
    fastnn.manual_seed(0)
    x = rand(4, 6, 8)[:, ::2]                         # non-contiguous input
    d = nn.Dropout(0.5)
    y = d(x)
    assert y.shape == (4, 3, 8)
    np.testing.assert_array_equal(y, np.where(d.mask.astype(bool), x * np.float32(2), 0))


# -------------------------------------------------------- GaussianNoise --

def test_gaussian_noise():
    fastnn.manual_seed(0)
    g = nn.GaussianNoise(0.5)
    x = rand(400, 500)
    y = g(x)
    noise = (y - x).astype(np.float64)
    assert abs(noise.mean()) < 5 * 0.5 / math.sqrt(noise.size)
    assert abs(noise.std() - 0.5) < 0.005
    assert abs(np.corrcoef(noise.ravel(), x.ravel())[0, 1]) < 0.01
    dy = rand(400, 500, seed=1)
    np.testing.assert_array_equal(g.backward(dy, input_grad=True), dy)
    assert not np.array_equal(g(x), y)               # fresh noise per call
    fastnn.manual_seed(0)
    np.testing.assert_array_equal(g(x), y)           # reproducible from the seed
    g.eval()
    assert g(x) is x
    assert nn.GaussianNoise(0.0)(x) is x
    assert repr(nn.GaussianNoise(0.1)) == "GaussianNoise(std=0.1)"


def test_gaussian_noise_bad_arguments_and_threads(threads):
    with pytest.raises(ValueError, match="GaussianNoise: std must be >= 0, got -1.0"):
        nn.GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="GaussianNoise: std must be finite"):
        nn.GaussianNoise(float("inf"))
    g = nn.GaussianNoise(1.0)
    g(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="GaussianNoise: grad_out has shape"):
        g.backward(np.zeros((4,), np.float32), input_grad=True)
    x = rand(500, 500)
    out = []
    for nt in (1, 2):
        threads(nt)
        fastnn.manual_seed(8)
        out.append(g(x))
    assert out[0].tobytes() == out[1].tobytes()


def test_mlp_with_dropout_trains_end_to_end():
    """A small regression: Linear-Tanh-Dropout-Linear learns y = sin(x) by SGD."""
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 32), Tanh(), nn.Dropout(0.1), nn.Linear(32, 1))
    x = np.linspace(-3, 3, 128, dtype=np.float32)[:, None]
    t = np.sin(x)
    losses = []
    for step in range(400):
        model.zero_grad()
        y = model(x)
        losses.append(float(np.mean((y - t) ** 2)))
        model.backward((2 * (y - t) / len(x)).astype(np.float32), input_grad=True)
        for p in model.parameters():
            p.data -= 0.1 * p.grad
    model.eval()
    assert float(np.mean((model(x) - t) ** 2)) < 0.05 < losses[0]


def test_sequential_skips_the_data_gradient_when_not_wanted():
    """A backward from user code returns None: leading parameter-free layers
    only drop their contexts, the first Linear computes dW/db but no dX, and
    the parameter gradients are the same as with input_grad=True."""
    import fastnn
    from fastnn import nn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 12)).astype(np.float32)
    g = rng.standard_normal((16, 3)).astype(np.float32)
    fastnn.manual_seed(0)
    m = nn.Sequential(nn.Dropout(0.3), nn.Linear(12, 8), nn.Linear(8, 3))
    fastnn.manual_seed(5)
    m.forward(x)
    dx = m.backward(g, input_grad=True)
    assert dx.shape == x.shape
    full = [p.grad.copy() for p in m.parameters()]
    m.zero_grad()
    fastnn.manual_seed(5)
    m.forward(x)
    assert m.backward(g) is None
    for a, p in zip(full, m.parameters()):
        np.testing.assert_array_equal(a, p.grad)
    assert all(not mod._contexts for mod in m.modules())     # the Dropout's was dropped
    m.zero_grad()
    fastnn.manual_seed(5)
    m.forward(x)
    np.testing.assert_array_equal(m.backward(g, input_grad=True), dx)


def test_lazy_zero_grad_reads_as_zero_and_overwrites_instead_of_adding():
    from fastnn import nn
    rng = np.random.default_rng(1)
    lin = nn.Linear(5, 4)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    g = rng.standard_normal((6, 4)).astype(np.float32)
    for _ in range(3):
        lin.forward(x)
    lin.backward(g)
    once = [p.grad.copy() for p in lin.parameters()]
    lin.backward(g)                                        # accumulates
    for a, p in zip(once, lin.parameters()):
        np.testing.assert_allclose(p.grad, 2 * a, rtol=1e-6)
    lin.zero_grad()
    for p in lin.parameters():            # reading materialises the zeros
        assert not p.grad.any()
    lin.zero_grad()
    lin.backward(g)                                        # the lazily-zeroed grad is overwritten
    for a, p in zip(once, lin.parameters()):
        np.testing.assert_array_equal(p.grad, a)


# ------------------------------------------ Sequential's ReLU fusion --

def _unfused_step(model, x, g):
    """The modules one after the other (no fusion), forward and backward."""
    mods = list(model)
    h = x
    for m in mods:
        h = m.forward(h)
    y = h
    for m in reversed(mods):
        g = m.backward(g, input_grad=True)
    return y, g


def test_sequential_relu_fusion_gives_the_same_bits(isa):
    """Linear/Conv2d/Conv1d + ReLU inside a Sequential compute the ReLU in the
    kernel's store (direct, Winograd and GEMM convolution paths, depthwise,
    pointwise), a max pooling after them takes the ReLU's backward mask (the
    2x2 AVX-512 kernel and the general one, overlapping windows, 1-D):
    outputs, input gradients and parameter gradients are bitwise those of the
    modules run one by one, NaN included, in training and in eval mode."""
    import copy
    fastnn.set_isa(isa)
    fastnn.manual_seed(3)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),          # K = 27: direct
                         nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),  # depthwise
                         nn.Conv2d(8, 16, 1), nn.ReLU(),                      # pointwise GEMM
                         nn.Conv2d(16, 4, 1, stride=2), nn.ReLU(inplace=True),  # K = 16
                         nn.Conv2d(4, 6, 2), nn.ReLU(),                       # K = 16
                         nn.Conv2d(6, 5, 1, stride=1, padding=1), nn.ReLU(),  # K = 6: GEMM
                         nn.Conv2d(5, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU(),
                         nn.Conv2d(5, 5, 1), nn.BatchNorm2d(5, affine=False), nn.ReLU(),
                         nn.Flatten(), nn.Linear(5 * 4 * 4, 12), nn.ReLU(),
                         nn.Linear(12, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3))
    seq1d = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), nn.ReLU(),
                          nn.Conv1d(6, 6, 3, padding=1), nn.BatchNorm1d(6), nn.ReLU(),
                          nn.Flatten(), nn.Linear(6 * 9, 4), nn.ReLU())
    pooled = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),      # Winograd
                           nn.MaxPool2d(3, stride=2, padding=1),            # overlapping
                           nn.Flatten(), nn.Linear(16 * 3 * 3, 10), nn.ReLU(), nn.Linear(10, 3))
    pooled1d = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(4, 4, 3), nn.ReLU(), nn.MaxPool1d(2))
    for bn in (conv[13], conv[22], seq1d[3]):     # gamma and beta away from 1 and 0
        bn.weight.data[...] = np.linspace(-1.5, 2.0, bn.num_features, dtype=np.float32)
        bn.bias.data[...] = np.linspace(-0.5, 0.7, bn.num_features, dtype=np.float32)
    rng = np.random.default_rng(0)
    for model, shape, nan in ((conv, (5, 3, 6, 6), False), (seq1d, (3, 4, 9), False),
                              (conv, (5, 3, 6, 6), True), (pooled, (4, 3, 12, 12), False),
                              (pooled, (4, 3, 12, 12), True), (pooled1d, (3, 4, 9), False)):
        model.train()
        twin = copy.deepcopy(model)
        x = rng.standard_normal(shape).astype(np.float32)
        if nan:
            x[0].flat[7] = np.nan
        y = model.forward(x)
        g = rng.standard_normal(y.shape).astype(np.float32)
        model.zero_grad()
        dx = model.backward(g, input_grad=True)
        twin.zero_grad()
        y2, dx2 = _unfused_step(twin, x, g)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(dx, dx2)
        assert np.isnan(y).any() == nan
        for (name, p), p2 in zip(model.named_parameters(), twin.parameters()):
            np.testing.assert_array_equal(p.grad, p2.grad, err_msg=f"{isa} {name}")
        model.eval()
        twin.eval()
        np.testing.assert_array_equal(model.forward(x), np.asarray(_eval_chain(twin, x)))


def _eval_chain(model, x):
    for m in model:
        x = m.forward(x)
    return x
