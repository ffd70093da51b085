"""Parameter initialisers, PyTorch's ``torch.nn.init`` names and semantics.

Each function fills a Parameter (its ``data``) or a float32 ndarray in place
and returns it. Random draws come from ``fastnn.runtime.generator()``, so
``fastnn.manual_seed(s)`` makes them reproducible (and independent of the
thread count)."""
import math

import numpy as np

from .. import runtime
from .._check import real as _real
from .module import Parameter

__all__ = ["calculate_gain", "zeros_", "ones_", "constant_", "uniform_", "normal_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "lecun_uniform_", "lecun_normal_"]

_LINEAR_LIKE = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                "conv_transpose2d", "conv_transpose3d", "sigmoid")


def _array(tensor, who):
    """The float32 array behind `tensor` (a Parameter or an ndarray), writeable."""
    arr = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{who}: tensor must be a Parameter or a float32 numpy array, "
                        f"got {type(tensor).__name__}")
    if arr.dtype != np.float32:
        raise TypeError(f"{who}: tensor must be float32, got dtype {arr.dtype}")
    if not arr.flags.writeable:
        raise ValueError(f"{who}: tensor is read-only")
    return arr


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's values):
    linear/identity/conv*/sigmoid 1, tanh 5/3, relu sqrt(2),
    leaky_relu sqrt(2 / (1 + negative_slope^2)) (param = negative_slope,
    default 0.01), selu 3/4."""
    who = "calculate_gain"
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else _real(who, "param", param)
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"{who}: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{list(_LINEAR_LIKE) + ['tanh', 'relu', 'leaky_relu', 'selu']}")


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: (out, in) -> (in, out); conv weights
    (C_out, C_in, *kernel) -> (C_in * prod(kernel), C_out * prod(kernel))."""
    shape = np.shape(tensor.data if isinstance(tensor, Parameter) else tensor)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for a tensor with fewer than "
                         f"2 dimensions, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode, who):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{who}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def constant_(tensor, val):
    """Fill with the finite value `val`."""
    arr = _array(tensor, "constant_")
    arr.fill(_real("constant_", "val", val))
    return tensor


def zeros_(tensor):
    _array(tensor, "zeros_").fill(0.0)
    return tensor


def ones_(tensor):
    _array(tensor, "ones_").fill(1.0)
    return tensor


def _fill_uniform(arr, low, high):
    arr[...] = runtime.generator().uniform(low, high, size=arr.shape)


def _fill_normal(arr, mean, std):
    arr[...] = runtime.generator().normal(mean, std, size=arr.shape)


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with draws from U(a, b)."""
    who = "uniform_"
    arr = _array(tensor, who)
    a, b = _real(who, "a", a), _real(who, "b", b)
    if a > b:
        raise ValueError(f"{who}: a must be <= b, got a={a}, b={b}")
    _fill_uniform(arr, a, b)
    return tensor


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with draws from N(mean, std^2)."""
    who = "normal_"
    arr = _array(tensor, who)
    mean, std = _real(who, "mean", mean), _real(who, "std", std)
    if std < 0:
        raise ValueError(f"{who}: std must be >= 0, got {std}")
    _fill_normal(arr, mean, std)
    return tensor


def xavier_uniform_(tensor, gain=1.0):
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    who = "xavier_uniform_"
    arr = _array(tensor, who)
    gain = _real(who, "gain", gain)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(arr)
    if arr.size == 0:                       # nothing to fill (PyTorch: a no-op)
        return tensor
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    _fill_uniform(arr, -bound, bound)
    return tensor


def xavier_normal_(tensor, gain=1.0):
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    who = "xavier_normal_"
    arr = _array(tensor, who)
    gain = _real(who, "gain", gain)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(arr)
    if arr.size == 0:                       # nothing to fill (PyTorch: a no-op)
        return tensor
    _fill_normal(arr, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
    return tensor


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan), gain =
    calculate_gain(nonlinearity, a), fan = fan_in or fan_out per `mode`.
    kaiming_uniform_(w, a=math.sqrt(5)) is PyTorch's default Linear/Conv init,
    U(+-1/sqrt(fan_in))."""
    who = "kaiming_uniform_"
    arr = _array(tensor, who)
    a = _real(who, "a", a)
    fan = _calculate_correct_fan(arr, mode, who)
    if arr.size == 0:
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    _fill_uniform(arr, -bound, bound)
    return tensor


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He normal: N(0, std^2), std = gain / sqrt(fan) (see kaiming_uniform_)."""
    who = "kaiming_normal_"
    arr = _array(tensor, who)
    a = _real(who, "a", a)
    fan = _calculate_correct_fan(arr, mode, who)
    if arr.size == 0:
        return tensor
    _fill_normal(arr, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))
    return tensor


def lecun_uniform_(tensor):
    """LeCun uniform: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (variance 1/(3 fan_in);
    also PyTorch's default Linear/Conv init). Keras's lecun_uniform uses the
    wider bound sqrt(3/fan_in), i.e. variance 1/fan_in like lecun_normal_."""
    who = "lecun_uniform_"
    arr = _array(tensor, who)
    fan_in, _ = _calculate_fan_in_and_fan_out(arr)
    if arr.size == 0:
        return tensor
    bound = 1.0 / math.sqrt(fan_in)
    _fill_uniform(arr, -bound, bound)
    return tensor


def lecun_normal_(tensor):
    """LeCun normal: N(0, 1 / fan_in) (the initialisation SELU networks assume)."""
    who = "lecun_normal_"
    arr = _array(tensor, who)
    fan_in, _ = _calculate_fan_in_and_fan_out(arr)
    if arr.size == 0:
        return tensor
    _fill_normal(arr, 0.0, 1.0 / math.sqrt(fan_in))
    return tensor
