"""Core layers: Linear, Flatten, Identity, Dropout, Dropout2d, GaussianNoise.

Each follows fastnn.nn.Module: ``forward(x)`` validates its input once and
saves what ``backward`` needs as one context (``save_for_backward``);
``backward(grad_out)`` pops the newest context, accumulates parameter
gradients into ``Parameter.grad`` and returns the gradient with respect to
the input when it is wanted (a new array, or ``grad_out`` itself for layers
that pass it through unchanged). Neither writes into its argument."""
import math
import numbers

import numpy as np

from .. import runtime
from .._check import F32, as_f32, grad_like as _grad_like, is_plain_f32 as _is_plain_f32
from .._check import positive_int as _positive_int, real as _real
from .._ext import _C
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Flatten", "Identity", "Dropout", "Dropout2d", "GaussianNoise"]


def _param_array(who, what, arr, shape):
    """A parameter's data or grad still fit to hand to C: float32, `shape`,
    C-contiguous (a user may have replaced ``.data`` or ``.grad``)."""
    if (type(arr) is np.ndarray and arr.shape == shape and arr.dtype == F32
            and arr.flags.c_contiguous):
        return arr
    got = (f"shape {arr.shape}, dtype {arr.dtype}" if isinstance(arr, np.ndarray)
           else type(arr).__name__)
    raise ValueError(f"{who}: {what} must be a C-contiguous float32 array of shape "
                     f"{shape}, got {got}")


class Linear(Module):
    """y = x @ weight.T + bias for x of shape (N, in_features).

    weight (out_features, in_features) and bias (out_features,) start as
    U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default, drawn
    from fastnn's seeded generator. Forward is one GEMM with the bias fused
    into its store; backward is two GEMMs (dW accumulated in place) and a
    column sum, with no transposed copies."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), np.float32))
        self.bias = Parameter(np.empty(self.out_features, np.float32)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))      # U(+-1/sqrt(fan_in))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, relu=False):
        """forward, with max(y, 0) fused into the GEMM's store when relu
        (Sequential's Linear + ReLU fusion)."""
        if not (_is_plain_f32(x) and x.ndim == 2):
            x = as_f32(x, "Linear", "x")
            if x.ndim != 2:
                raise ValueError(f"Linear: x must be 2-D (N, {self.in_features}), "
                                 f"got shape {x.shape}")
        n, k = x.shape
        if k != self.in_features:
            raise ValueError(f"Linear: x has shape {x.shape}, expected (N, {self.in_features}) "
                             f"(in_features={self.in_features})")
        o = self.out_features
        w = _param_array("Linear", "weight", self.weight.data, (o, k))
        y = np.empty((n, o), dtype=np.float32)
        if self.bias is None:
            _C.sgemm(False, True, n, o, k, 1.0, x, w, 0.0, y, None, 0, relu)
        else:
            b = _param_array("Linear", "bias", self.bias.data, (o,))
            _C.sgemm(False, True, n, o, k, 1.0, x, w, 0.0, y, b, 1, relu)
        self.save_for_backward(x)
        return y

    def backward(self, grad_out):
        x, = self.saved_tensors()
        n, k = x.shape
        o = self.out_features
        dy = _grad_like("Linear", grad_out, (n, o))
        weight, bias = self.weight, self.bias
        w = _param_array("Linear", "weight", weight.data, (o, k))
        if weight.requires_grad:      # dW (O,I) += dY^T (O,N) X (N,I), in place
            gw, acc = weight.grad_for_write()
            gw = _param_array("Linear", "weight.grad", gw, (o, k))
            _C.sgemm(True, False, o, k, n, 1.0, dy, x, 1.0 if acc else 0.0, gw, None, 0, False)
        if bias is not None and bias.requires_grad:
            gb, acc = bias.grad_for_write()
            _C.sum_rows(dy, _param_array("Linear", "bias.grad", gb, (o,)), acc)
        if not self.needs_input_grad:
            return None
        dx = np.empty((n, k), dtype=np.float32)     # dX (N,I) = dY (N,O) W (O,I)
        _C.sgemm(False, False, n, k, o, 1.0, dy, w, 0.0, dx, None, 0, False)
        return dx

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Flattens dimensions start_dim..end_dim (inclusive) into one:
    (N, C, H, W) -> (N, C*H*W) by default. A view when the input allows."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"Flatten: {name} must be an integer, got {v!r}")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def forward(self, x):
        x = as_f32(x, "Flatten", "x")
        nd = x.ndim
        s = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= s < nd and 0 <= e < nd) or s > e:
            raise ValueError(f"Flatten: start_dim={self.start_dim}, end_dim={self.end_dim} do not "
                             f"select dimensions of x with shape {x.shape}")
        shape = x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:]
        self.save_for_backward(x.shape, shape)
        return x.reshape(shape)

    def backward(self, grad_out):
        in_shape, out_shape = self.saved_tensors()
        g = as_f32(grad_out, "Flatten", "grad_out")
        if g.shape != out_shape:
            raise ValueError(f"Flatten: grad_out has shape {g.shape}, expected {out_shape} "
                             f"(the shape of the forward output)")
        return g.reshape(in_shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input; any constructor arguments are ignored (as PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        self.save_for_backward()
        return x

    def backward(self, grad_out):
        self.saved_tensors()
        return grad_out


class Dropout(Module):
    """Inverted dropout: in training, each element is zeroed with probability
    p and the survivors are scaled by 1/(1-p); in eval() it is the identity.

    The mask comes from the counter-based generator in C keyed by a fresh
    fastnn.runtime.next_seed() per call, so fastnn.manual_seed fixes it on any
    thread count. It is kept (one byte per element) for backward:
    dx = dy * mask / (1-p)."""

    def __init__(self, p=0.5):
        super().__init__()
        p = _real("Dropout", "p", p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p
        object.__setattr__(self, "_mask", None)

    @property
    def mask(self):
        """The keep mask (uint8, 1 = kept) of the last masked training forward, or None."""
        return self._mask

    def forward(self, x):
        x = as_f32(x, "Dropout", "x")
        p = self.p
        if not 0.0 <= p <= 1.0:          # the attribute may have been reassigned
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        if not self.training or p == 0.0:
            self.save_for_backward(x.shape, None, p)
            return x
        if p == 1.0:
            self.save_for_backward(x.shape, None, p)
            return np.zeros(x.shape, dtype=np.float32)
        x = np.ascontiguousarray(x)
        mask = np.empty(x.shape, dtype=np.uint8)
        y = np.empty(x.shape, dtype=np.float32)
        _C.dropout_forward(runtime.next_seed(), x, y, mask, p)
        if self.save_for_backward(x.shape, mask, p):
            object.__setattr__(self, "_mask", mask)
        return y

    def backward(self, grad_out):
        shape, mask, p = self.saved_tensors()
        dy = _grad_like("Dropout", grad_out, shape)
        if not self.needs_input_grad:
            return None
        if mask is None:
            return np.zeros(shape, dtype=np.float32) if p == 1.0 else dy
        dx = np.empty(shape, dtype=np.float32)
        _C.dropout_backward(dy, mask, dx, p)
        return dx

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Module):
    """Channel dropout, as torch.nn.Dropout2d: in training each channel
    x[n, c] of x (N, C, H, W) -- or (N, C, L) -- is zeroed as a whole with
    probability p and the kept channels are scaled by 1/(1-p); in eval() it
    is the identity. The channel mask comes from the same counter-based
    generator as Dropout (one draw per (n, c), keyed by
    fastnn.runtime.next_seed()), so it is the same on any thread count."""

    def __init__(self, p=0.5):
        super().__init__()
        p = _real("Dropout2d", "p", p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout2d: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        x = as_f32(x, "Dropout2d", "x")
        if x.ndim not in (3, 4):
            raise ValueError(f"Dropout2d: x must be 4-D (N, C, H, W) or 3-D (N, C, L), "
                             f"got shape {x.shape}")
        p = self.p
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout2d: p must be in [0, 1], got {p}")
        if not self.training or p == 0.0:
            self.save_for_backward(x.shape, None)
            return x
        keep = np.zeros(x.shape[:2] + (1,) * (x.ndim - 2), dtype=np.float32)
        if p < 1.0:         # keep = mask / (1 - p) per (n, c): Dropout's kernel on ones
            ones = np.ones(keep.shape, dtype=np.float32)
            _C.dropout_forward(runtime.next_seed(), ones, keep,
                               np.empty(keep.shape, dtype=np.uint8), p)
        self.save_for_backward(x.shape, keep)
        return np.multiply(x, keep, dtype=np.float32)

    def backward(self, grad_out):
        shape, keep = self.saved_tensors()
        dy = _grad_like("Dropout2d", grad_out, shape)
        if not self.needs_input_grad:
            return None
        return dy if keep is None else np.multiply(dy, keep, dtype=np.float32)

    def extra_repr(self):
        return f"p={self.p}"


class GaussianNoise(Module):
    """Adds N(0, std^2) noise in training (identity in eval or for std = 0);
    backward passes the gradient through unchanged. The noise comes from the
    counter-based generator in C keyed by fastnn.runtime.next_seed()."""

    def __init__(self, std):
        super().__init__()
        std = _real("GaussianNoise", "std", std)
        if std < 0.0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        self.std = std

    def forward(self, x):
        x = as_f32(x, "GaussianNoise", "x")
        self.save_for_backward(x.shape)
        if not self.training or self.std == 0.0:
            return x
        x = np.ascontiguousarray(x)
        y = np.empty(x.shape, dtype=np.float32)
        _C.gaussian_noise_forward(runtime.next_seed(), x, y, self.std)
        return y

    def backward(self, grad_out):
        shape, = self.saved_tensors()
        return _grad_like("GaussianNoise", grad_out, shape)

    def extra_repr(self):
        return f"std={self.std}"
