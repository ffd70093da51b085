"""Functional activations: numpy float32 arrays in, new numpy arrays out.

``fastnn.functional.relu(x)`` and friends compute what the modules of
``fastnn.nn`` compute in their forward, without caching anything for a
backward pass. Names, arguments and defaults follow ``torch.nn.functional``.
Inputs are float32 arrays of any shape (lossless types such as int16 or
float16 are converted; float64 raises TypeError rather than silently losing
precision)."""
import numbers

import numpy as np

from ._check import F32, contig as _contig, positive_int as _positive_int, real as _real
from ._ext import _C

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "softplus", "hardtanh", "elu",
           "gelu", "softmax", "log_softmax", "maxout"]


# -- validation shared with fastnn.nn.activation ---------------------------------

def _inplace_target(who, x):
    """The array an in-place activation overwrites: must be a writeable
    float32 ndarray (any layout)."""
    if not isinstance(x, np.ndarray) or x.dtype != F32:
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{who}: inplace=True needs x to be a float32 numpy array, got {got}")
    if not x.flags.writeable:
        raise ValueError(f"{who}: inplace=True needs a writeable x, got a read-only array")
    return x


def _check_negative_slope(who, v):
    return _real(who, "negative_slope", v)


def _check_softplus(who, beta, threshold):
    beta = _real(who, "beta", beta)
    if abs(beta) < float(np.finfo(np.float32).tiny):
        raise ValueError(f"{who}: beta must be non-zero (at least 1.2e-38 in magnitude), "
                         f"got {beta}")
    return beta, _real(who, "threshold", threshold, finite=False)


def _check_hardtanh(who, min_val, max_val):
    lo = _real(who, "min_val", min_val, finite=False)
    hi = _real(who, "max_val", max_val, finite=False)
    if not lo < hi:
        raise ValueError(f"{who}: min_val must be less than max_val, got min_val={lo}, "
                         f"max_val={hi}")
    return lo, hi


def _check_approximate(who, approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{who}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate == "tanh"


def _check_dim(who, dim, ndim, shape):
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{who}: dim must be an integer, got {type(dim).__name__}")
    if ndim == 0:
        raise ValueError(f"{who}: x must have at least 1 dimension, got a 0-d array "
                         f"(shape {shape})")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{who}: dim={dim} is out of range for x with shape {shape} "
                         f"(expected -{ndim} <= dim < {ndim})")
    return int(dim) % ndim


def _maxout_input(who, x, pieces):
    x = _contig(who, x)
    if x.ndim != 2:
        raise ValueError(f"{who}: x must be 2-D (N, C), got shape {x.shape}")
    if x.shape[1] % pieces:
        raise ValueError(f"{who}: x has C={x.shape[1]} features (shape {x.shape}), "
                         f"which is not divisible by pieces={pieces}")
    return x


# -- the row kernels: softmax over any axis ----------------------------------------

def _softmax_forward(x, axis, log):
    """(log-)softmax of contiguous x over `axis`; returns (y, y laid out with
    `axis` last, as backward wants it)."""
    last = axis == x.ndim - 1
    xm = x if last else np.ascontiguousarray(np.moveaxis(x, axis, -1))
    cols = xm.shape[-1]
    rows = xm.size // cols if cols else 0
    ym = np.empty_like(xm)
    _C.softmax_forward(rows, cols, xm, ym, log)
    y = ym if last else np.ascontiguousarray(np.moveaxis(ym, -1, axis))
    return y, ym


def _softmax_backward(ym, g, axis, log):
    last = axis == g.ndim - 1
    gm = g if last else np.ascontiguousarray(np.moveaxis(g, axis, -1))
    cols = ym.shape[-1]
    rows = ym.size // cols if cols else 0
    dxm = np.empty_like(ym)
    _C.softmax_backward(rows, cols, ym, gm, dxm, log)
    return dxm if last else np.ascontiguousarray(np.moveaxis(dxm, -1, axis))


def _elementwise(who, x, inplace, kernel, *params):
    """Apply `kernel(*params, src, dst)`; in place writes into x itself.
    Returns (result for the caller, contiguous result for a backward cache,
    the contiguous input that was read)."""
    if inplace:
        target = _inplace_target(who, x)
        if target.flags.c_contiguous:
            kernel(*params, target, target)
            return target, target, None
        work = np.ascontiguousarray(target)
        kernel(*params, work, work)
        target[...] = work
        return target, work, None
    x = _contig(who, x)
    y = np.empty_like(x)
    kernel(*params, x, y)
    return y, y, x


# -- public functions -------------------------------------------------------------

def relu(x, inplace=False):
    """max(x, 0) elementwise; NaN stays NaN."""
    return _elementwise("relu", x, inplace, _C.relu_forward)[0]


def leaky_relu(x, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope * x."""
    s = _check_negative_slope("leaky_relu", negative_slope)
    return _elementwise("leaky_relu", x, inplace, _C.leaky_relu_forward, s)[0]


def sigmoid(x):
    """1 / (1 + exp(-x)), computed from exp(-|x|) so it never overflows."""
    return _elementwise("sigmoid", x, False, _C.sigmoid_forward)[0]


def tanh(x):
    return _elementwise("tanh", x, False, _C.tanh_forward)[0]


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    beta, threshold = _check_softplus("softplus", beta, threshold)
    return _elementwise("softplus", x, False, _C.softplus_forward, beta, threshold)[0]


def hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val]; NaN stays NaN."""
    lo, hi = _check_hardtanh("hardtanh", min_val, max_val)
    return _elementwise("hardtanh", x, inplace, _C.hardtanh_forward, lo, hi)[0]


def elu(x, alpha=1.0, inplace=False):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    a = _real("elu", "alpha", alpha)
    return _elementwise("elu", x, inplace, _C.elu_forward, a)[0]


def gelu(x, approximate="none"):
    """x * Phi(x) with Phi the standard normal CDF (approximate='none'), or
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh')."""
    t = _check_approximate("gelu", approximate)
    return _elementwise("gelu", x, False, _C.gelu_forward, t)[0]


def softmax(x, dim=-1):
    """exp(x - max) / sum(exp(x - max)) along `dim` (row sums in float64)."""
    x = _contig("softmax", x)
    axis = _check_dim("softmax", dim, x.ndim, x.shape)
    return _softmax_forward(x, axis, False)[0]


def log_softmax(x, dim=-1):
    """x - max - log(sum(exp(x - max))) along `dim`."""
    x = _contig("log_softmax", x)
    axis = _check_dim("log_softmax", dim, x.ndim, x.shape)
    return _softmax_forward(x, axis, True)[0]


def maxout(x, pieces):
    """(N, C) -> (N, C // pieces): the maximum of each group of `pieces`
    consecutive features."""
    pieces = _positive_int("maxout", "pieces", pieces)
    x = _maxout_input("maxout", x, pieces)
    n, c = x.shape
    y = np.empty((n, c // pieces), dtype=F32)
    idx = np.empty((n, c // pieces), dtype=np.int32)
    _C.maxout_forward(y.size, pieces, x, y, idx)
    return y
