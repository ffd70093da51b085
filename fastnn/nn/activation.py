"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, Softplus, Hardtanh, ELU,
GELU, Maxout, Softmax, LogSoftmax.

Names, arguments and defaults follow torch.nn. Elementwise layers take
float32 arrays of any shape; Softmax/LogSoftmax work along ``dim``; Maxout
takes (N, C). ``forward(x)`` returns a new array (or x itself with
``inplace=True``) and saves (``save_for_backward``) references to what
``backward`` needs, not copies:
the output for ReLU, LeakyReLU, Sigmoid, Tanh, Hardtanh, ELU, Softmax and
LogSoftmax, the input for Softplus and GELU, the argmax indices for Maxout.
Modifying those arrays in place between forward and backward (for example
with a following ``inplace=True`` layer) changes the gradient, as PyTorch
would refuse to do. ``backward(grad_out)`` returns a new gradient array and
never writes into ``grad_out``."""
import numpy as np

from .._check import F32, contig as _contig, grad_like, positive_int as _positive_int
from .._check import real as _real
from .._ext import _C
from ..functional import (_check_approximate, _check_dim, _check_hardtanh,
                          _check_negative_slope, _check_softplus, _elementwise,
                          _maxout_input, _softmax_backward, _softmax_forward)
from .module import Module

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "Hardtanh", "ELU", "GELU",
           "Maxout", "Softmax", "LogSoftmax"]


class _Activation(Module):
    """Shared backward protocol: pop the context (output shape first), check
    grad_out; returns (grad_out, the rest of the context), or None when the
    input gradient is not wanted (an activation has no parameters)."""

    def _grad(self, grad_out):
        ctx = self.saved_tensors()
        if not self.needs_input_grad:
            return None
        return grad_like(type(self).__name__, grad_out, ctx[0]), ctx[1:]


def _inplace_flag(who, inplace):
    if not isinstance(inplace, (bool, np.bool_)):
        raise TypeError(f"{who}: inplace must be a bool, got {type(inplace).__name__}")
    return bool(inplace)


def _inplace_repr(inplace):
    return ", inplace=True" if inplace else ""


class ReLU(_Activation):
    """max(x, 0). NaN stays NaN; the gradient at 0 is 0."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = _inplace_flag("ReLU", inplace)

    def forward(self, x):
        out, y, _ = _elementwise("ReLU", x, self.inplace, _C.relu_forward)
        self.save_for_backward(out.shape, y)
        return out

    def _adopt(self, y, masked_elsewhere=False):
        """The forward of a ReLU its predecessor already applied (Sequential's
        fusion): y is max(x, 0), kept as forward keeps its output; with
        masked_elsewhere a neighbour's backward applies the mask (the batch
        norm before it, or the max pooling after it), and this backward
        passes the gradient on as it is."""
        self.save_for_backward(y.shape, None if masked_elsewhere else y)
        return y

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (y,) = r
        if y is None:          # fused: a neighbouring module applies the mask
            return g
        dx = np.empty_like(g)
        _C.relu_backward(y, g, dx)
        return dx

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(_Activation):
    """x for x > 0, negative_slope * x otherwise. With inplace=True the slope
    must be >= 0 (backward then reads the sign from the output)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = _check_negative_slope("LeakyReLU", negative_slope)
        self.inplace = _inplace_flag("LeakyReLU", inplace)
        if self.inplace and self.negative_slope < 0:
            raise ValueError(f"LeakyReLU: inplace=True needs negative_slope >= 0, got "
                             f"{self.negative_slope} (the sign of x is lost otherwise)")

    def forward(self, x):
        out, y, xc = _elementwise("LeakyReLU", x, self.inplace, _C.leaky_relu_forward,
                                  self.negative_slope)
        self.save_for_backward(out.shape, y if self.negative_slope >= 0 else xc,
                               self.negative_slope)
        return out

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (ref, slope) = r
        dx = np.empty_like(g)
        _C.leaky_relu_backward(slope, ref, g, dx)
        return dx

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}{_inplace_repr(self.inplace)}"


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), from exp(-|x|) (no overflow at any x)."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        out, y, _ = _elementwise("Sigmoid", x, False, _C.sigmoid_forward)
        self.save_for_backward(out.shape, y)
        return out

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (y,) = r
        dx = np.empty_like(g)
        _C.sigmoid_backward(y, g, dx)
        return dx


class Tanh(_Activation):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        out, y, _ = _elementwise("Tanh", x, False, _C.tanh_forward)
        self.save_for_backward(out.shape, y)
        return out

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (y,) = r
        dx = np.empty_like(g)
        _C.tanh_backward(y, g, dx)
        return dx


class Softplus(_Activation):
    """log(1 + exp(beta x)) / beta, computed as (max(beta x, 0) +
    log1p(exp(-|beta x|))) / beta; x itself where beta x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = _check_softplus("Softplus", beta, threshold)

    def forward(self, x):
        out, _, xc = _elementwise("Softplus", x, False, _C.softplus_forward,
                                  self.beta, self.threshold)
        self.save_for_backward(out.shape, xc, self.beta, self.threshold)
        return out

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (xc, beta, threshold) = r
        dx = np.empty_like(g)
        _C.softplus_backward(beta, threshold, xc, g, dx)
        return dx

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(_Activation):
    """x clamped to [min_val, max_val]; gradient 1 strictly inside, else 0."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        self.min_val, self.max_val = _check_hardtanh("Hardtanh", min_val, max_val)
        self.inplace = _inplace_flag("Hardtanh", inplace)

    def forward(self, x):
        out, y, _ = _elementwise("Hardtanh", x, self.inplace, _C.hardtanh_forward,
                                 self.min_val, self.max_val)
        self.save_for_backward(out.shape, y, self.min_val, self.max_val)
        return out

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (y, lo, hi) = r
        dx = np.empty_like(g)
        _C.hardtanh_backward(lo, hi, y, g, dx)
        return dx

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}{_inplace_repr(self.inplace)}"


class ELU(_Activation):
    """x for x > 0, alpha * (exp(x) - 1) otherwise. With inplace=True alpha
    must be >= 0 (backward then reads the sign from the output)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = _real("ELU", "alpha", alpha)
        self.inplace = _inplace_flag("ELU", inplace)
        if self.inplace and self.alpha < 0:
            raise ValueError(f"ELU: inplace=True needs alpha >= 0, got {self.alpha} "
                             f"(the sign of x is lost otherwise)")

    def forward(self, x):
        out, y, xc = _elementwise("ELU", x, self.inplace, _C.elu_forward, self.alpha)
        self.save_for_backward(out.shape, y if self.alpha >= 0 else xc, y, self.alpha)
        return out

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (ref, y, alpha) = r
        dx = np.empty_like(g)
        _C.elu_backward(alpha, ref, y, g, dx)
        return dx

    def extra_repr(self):
        return f"alpha={self.alpha}{_inplace_repr(self.inplace)}"


class GELU(_Activation):
    """x * Phi(x), Phi the standard normal CDF (approximate='none', accurate
    to a few float32 ulps including the far negative tail), or
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh')."""

    def __init__(self, approximate="none"):
        super().__init__()
        _check_approximate("GELU", approximate)
        self.approximate = approximate
        self._tanh = False

    def forward(self, x):
        t = _check_approximate("GELU", self.approximate)
        out, _, xc = _elementwise("GELU", x, False, _C.gelu_forward, t)
        self.save_for_backward(out.shape, xc, t)   # backward differentiates what forward computed
        return out

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (xc, t) = r
        dx = np.empty_like(g)
        _C.gelu_backward(t, xc, g, dx)
        return dx

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Maxout(_Activation):
    """(N, C) -> (N, C // pieces): the maximum over each group of `pieces`
    consecutive features. Backward routes each gradient to the position of
    its group's maximum (the first one on ties; the first NaN if any)."""

    def __init__(self, pieces):
        super().__init__()
        self.pieces = _positive_int("Maxout", "pieces", pieces)

    def forward(self, x):
        x = _maxout_input("Maxout", x, self.pieces)
        n, c = x.shape
        y = np.empty((n, c // self.pieces), dtype=F32)
        idx = np.empty((n, c // self.pieces), dtype=np.int32)
        _C.maxout_forward(y.size, self.pieces, x, y, idx)
        self.save_for_backward(y.shape, idx, x.shape, self.pieces)
        return y

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (idx, in_shape, pieces) = r
        dx = np.empty(in_shape, dtype=F32)
        _C.maxout_backward(g.size, pieces, idx, g, dx)
        return dx

    def extra_repr(self):
        return f"pieces={self.pieces}"


class _SoftmaxBase(_Activation):
    _log = False

    def __init__(self, dim=-1):
        super().__init__()
        who = type(self).__name__
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{who}: dim must be an integer, got {type(dim).__name__}")
        self.dim = int(dim)

    def forward(self, x):
        who = type(self).__name__
        x = _contig(who, x)
        axis = _check_dim(who, self.dim, x.ndim, x.shape)
        y, ym = _softmax_forward(x, axis, self._log)
        self.save_for_backward(y.shape, ym, axis)
        return y

    def backward(self, grad_out):
        r = self._grad(grad_out)
        if r is None:
            return None
        g, (ym, axis) = r
        return _softmax_backward(ym, g, axis, self._log)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """exp(x - max) / sum(exp(x - max)) along dim (default: the last axis)."""
    _log = False


class LogSoftmax(_SoftmaxBase):
    """x - max - log(sum(exp(x - max))) along dim (default: the last axis)."""
    _log = True
