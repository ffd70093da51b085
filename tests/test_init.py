"""fastnn.nn.init: fans and gains as PyTorch defines them, variances of the
draws, in-place semantics on Parameters and arrays, reproducibility."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import init
from fastnn.nn.init import _calculate_fan_in_and_fan_out


@pytest.mark.parametrize("shape,fans", [
    ((10, 20), (20, 10)),                 # Linear weight (out, in)
    ((16, 3, 5, 5), (75, 400)),          # Conv2d weight (C_out, C_in, kh, kw)
    ((8, 4, 3), (12, 24)),               # Conv1d
    ((2, 3, 2, 2, 2), (24, 16)),         # Conv3d
])
def test_fans(shape, fans):
    assert _calculate_fan_in_and_fan_out(np.empty(shape, np.float32)) == fans
    assert _calculate_fan_in_and_fan_out(nn.Parameter(np.zeros(shape))) == fans


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        _calculate_fan_in_and_fan_out(np.empty(5, np.float32))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(np.empty(5, np.float32))


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="nonlinearity 'swish'"):
        init.calculate_gain("swish")


def _check_stats(w, var, uniform_bound=None):
    """Sample mean/variance of w (many draws) against the target."""
    x = w.astype(np.float64).ravel()
    n = x.size
    sd = math.sqrt(var)
    assert abs(x.mean()) < 5 * sd / math.sqrt(n)
    # standard error of the sample variance: sqrt((mu4 - var^2) / n)
    mu4 = 9 / 5 * var ** 2 if uniform_bound is not None else 3 * var ** 2
    assert abs(x.var() - var) < 5 * math.sqrt((mu4 - var ** 2) / n), (x.var(), var)
    if uniform_bound is not None:
        assert np.abs(x).max() <= uniform_bound * (1 + 1e-6)
        assert np.abs(x).max() > 0.99 * uniform_bound
    else:                                   # a normal reaches past 3 sd in 200k draws
        assert np.abs(x).max() > 3 * sd


SHAPE = (400, 100, 3, 3)                    # fan_in 900, fan_out 3600, 360k draws


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier(gain):
    fan_in, fan_out = 900, 3600
    var = gain ** 2 * 2 / (fan_in + fan_out)
    w = np.empty(SHAPE, np.float32)
    assert init.xavier_uniform_(w, gain=gain) is w
    _check_stats(w, var, uniform_bound=math.sqrt(3 * var))
    init.xavier_normal_(w, gain=gain)
    _check_stats(w, var)


@pytest.mark.parametrize("a,mode,nonlinearity", [
    (0, "fan_in", "relu"), (0, "fan_out", "relu"), (0.2, "fan_in", "leaky_relu"),
    (math.sqrt(5), "fan_in", "leaky_relu"), (0, "fan_out", "tanh"), (0, "fan_in", "linear")])
def test_kaiming(a, mode, nonlinearity):
    fan = 900 if mode == "fan_in" else 3600
    gain = init.calculate_gain(nonlinearity, a)
    var = gain ** 2 / fan
    w = np.empty(SHAPE, np.float32)
    init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    _check_stats(w, var, uniform_bound=math.sqrt(3 * var))
    init.kaiming_normal_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    _check_stats(w, var)


def test_kaiming_defaults_are_leaky_relu_fan_in():
    fastnn.manual_seed(3)
    a = init.kaiming_uniform_(np.empty((50, 40), np.float32)).copy()
    fastnn.manual_seed(3)
    b = init.kaiming_uniform_(np.empty((50, 40), np.float32), a=0, mode="fan_in",
                              nonlinearity="leaky_relu")
    np.testing.assert_array_equal(a, b)


def test_kaiming_sqrt5_is_pytorch_linear_default():
    w = np.empty((300, 1000), np.float32)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    _check_stats(w, 1 / (3 * 1000), uniform_bound=1 / math.sqrt(1000))


def test_lecun():
    w = np.empty(SHAPE, np.float32)
    init.lecun_uniform_(w)
    _check_stats(w, 1 / (3 * 900), uniform_bound=1 / math.sqrt(900))
    init.lecun_normal_(w)
    _check_stats(w, 1 / 900)


def test_uniform_and_normal():
    w = np.empty((500, 500), np.float32)
    init.uniform_(w, -2.0, 3.0)
    assert w.min() >= -2.0 and w.max() <= 3.0
    assert abs(w.mean() - 0.5) < 5 * math.sqrt(25 / 12 / w.size)
    init.uniform_(w)
    assert w.min() >= 0.0 and w.max() <= 1.0
    init.normal_(w, mean=1.5, std=0.5)
    assert abs(w.mean() - 1.5) < 5 * 0.5 / 500
    assert abs(w.std() - 0.5) < 0.005
    init.normal_(w)
    assert abs(w.std() - 1.0) < 0.01


def test_constants_in_place_on_parameters():
    p = nn.Parameter(np.ones((3, 4)))
    data = p.data
    assert init.zeros_(p) is p and p.data is data and np.all(p.data == 0)
    init.ones_(p)
    assert np.all(p.data == 1)
    init.constant_(p, -0.25)
    assert np.all(p.data == -0.25) and p.data is data
    init.normal_(p)
    assert p.data is data and p.data.dtype == np.float32 and np.all(p.grad == 0)
    view = np.zeros((6, 8), np.float32)[::2, ::2]      # strided views are filled in place
    init.constant_(view, 2.0)
    assert np.all(view == 2.0)


def test_manual_seed_reproduces_draws():
    fns = [lambda w: init.uniform_(w, -1, 1), init.normal_, init.xavier_uniform_,
           init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_,
           init.lecun_uniform_, init.lecun_normal_]

    def draw_all(seed):
        fastnn.manual_seed(seed)
        return [f(np.empty((20, 30), np.float32)).copy() for f in fns]

    first, again, other = draw_all(17), draw_all(17), draw_all(18)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    # consecutive draws differ
    assert not np.array_equal(first[0], draw_all(17)[1])


def test_bad_arguments():
    w = np.empty((4, 5), np.float32)
    with pytest.raises(TypeError, match="normal_: tensor must be float32, got dtype float64"):
        init.normal_(np.empty((4, 5)))
    with pytest.raises(TypeError, match="uniform_: tensor must be a Parameter"):
        init.uniform_([[1.0, 2.0]])
    with pytest.raises(ValueError, match="constant_: val must be finite"):
        init.constant_(w, float("nan"))
    with pytest.raises(ValueError, match="uniform_: a must be <= b"):
        init.uniform_(w, 1.0, 0.0)
    with pytest.raises(ValueError, match="normal_: std must be >= 0"):
        init.normal_(w, std=-1.0)
    with pytest.raises(TypeError, match="normal_: mean must be a real number"):
        init.normal_(w, mean="0")
    with pytest.raises(ValueError, match="kaiming_normal_: mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(w, mode="fan_avg")
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.kaiming_uniform_(w, nonlinearity="gelu")
    ro = np.zeros((4, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="ones_: tensor is read-only"):
        init.ones_(ro)
    empty = np.empty((4, 0), np.float32)         # zero elements: a no-op, as PyTorch
    for f in (init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_,
              init.xavier_normal_, init.lecun_uniform_, init.lecun_normal_):
        assert f(empty) is empty


def test_fans_and_gains_match_torch():
    torch = pytest.importorskip("torch")
    for shape in [(10, 20), (16, 3, 5, 5), (8, 4, 3), (2, 3, 2, 2, 2)]:
        assert (_calculate_fan_in_and_fan_out(np.empty(shape, np.float32))
                == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape)))
    for nl, param in [("linear", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                      ("leaky_relu", 0.3), ("selu", None), ("sigmoid", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param))
