"""Pooling: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, MaxPool1d, AvgPool1d.

NCHW (NCL for 1-D) float32 on csrc/pool.c, threaded over the N*C planes.
Output sizes, padding rules, ceil_mode, count_include_pad and NaN handling
follow torch.nn (see docs/conv.md)."""
import numpy as np

from .._check import F32, as_f32, bool_arg, grad_like, int_arg, int_tuple
from .._ext import _C
from .module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d"]


def _pool_out(L, k, s, p, d, ceil_mode):
    """torch's pooling_output_shape: with ceil_mode the last window must start
    inside the input or its left padding."""
    span = d * (k - 1) + 1
    out = (L + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= L + p:
        out -= 1
    return out


class _Pool(Module):
    _nd = 2
    _mode = None          # None: max pooling; else fnn_pool2d's average mode

    def _common(self, kernel_size, stride, padding, dilation, ceil_mode):
        who, nd = type(self).__name__, self._nd
        self.kernel_size = int_tuple(who, "kernel_size", kernel_size, nd, 1)
        self.stride = (self.kernel_size if stride is None or stride == ()
                       else int_tuple(who, "stride", stride, nd, 1))
        self.padding = int_tuple(who, "padding", padding, nd, 0)
        self.dilation = int_tuple(who, "dilation", dilation, nd, 1)
        self.ceil_mode = bool_arg(who, "ceil_mode", ceil_mode)
        for k, p in zip(self.kernel_size, self.padding):
            if p > k // 2:
                raise ValueError(f"{who}: padding={self.padding} must be at most half of "
                                 f"kernel_size={self.kernel_size}")

    def _input(self, x):
        who, nd = type(self).__name__, self._nd
        if not (type(x) is np.ndarray and x.dtype == F32 and x.flags.c_contiguous):
            x = np.ascontiguousarray(as_f32(x, who, "x"))
        want = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
        if x.ndim != nd + 2:
            raise ValueError(f"{who}: x must be {nd + 2}-D {want}, got shape {x.shape}")
        return x

    def _shape(self, x):
        """(planes, the kernel's 14-number shape, output shape) for x."""
        who, nd = type(self).__name__, self._nd
        sizes, out = x.shape[2:], []
        for L, k, s, p, d in zip(sizes, self.kernel_size, self.stride, self.padding,
                                 self.dilation):
            o = _pool_out(L, k, s, p, d, self.ceil_mode)
            if o < 1:
                raise ValueError(f"{who}: kernel_size={self.kernel_size} (dilation="
                                 f"{self.dilation}) is larger than the padded input: x shape "
                                 f"{x.shape}, padding={self.padding}")
            out.append(o)
        lead = (1,) * (2 - nd)
        H, W = lead + tuple(sizes)
        Ho, Wo = lead + tuple(out)
        kh, kw = lead + self.kernel_size
        sh, sw = lead + self.stride
        ph, pw = (0,) * (2 - nd) + self.padding
        dh, dw = lead + self.dilation
        extra = (0, 0) if self._mode is None else (self._mode, self.divisor_override or 0)
        return (x.shape[0] * x.shape[1], (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw) + extra,
                x.shape[:2] + tuple(out))

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, relu_mask=False):
        """forward; with relu_mask (max pooling after a ReLU whose backward
        Sequential leaves to this module) the backward passes dy only where
        the output is > 0: the ReLU's mask at the windows' maxima."""
        x = self._input(x)
        P, shape, yshape = self._shape(x)
        y = np.empty(yshape, dtype=np.float32)
        if self._mode is None:
            idx = np.empty(yshape, dtype=np.int32)
            _C.maxpool2d_forward(P, shape, x, y, idx)
            self.save_for_backward(x.shape, P, shape, yshape, idx, y if relu_mask else None)
        else:
            _C.avgpool2d_forward(P, shape, x, y)
            self.save_for_backward(x.shape, P, shape, yshape, None, None)
        return y

    def backward(self, grad_out):
        xshape, P, shape, yshape, idx, ymask = self.saved_tensors()
        if not self.needs_input_grad:
            return None
        dy = grad_like(type(self).__name__, grad_out, yshape)
        dx = np.empty(xshape, dtype=np.float32)
        if idx is not None:
            _C.maxpool2d_backward(P, shape, idx, dy, dx, ymask)
        else:
            _C.avgpool2d_backward(P, shape, dy, dx)
        return dx

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self._mode is None:
            s += f", dilation={self.dilation}"
        else:
            s += f", count_include_pad={self.count_include_pad}"
        return s + f", ceil_mode={self.ceil_mode}"


class MaxPool2d(_Pool):
    """Window maxima of x (N, C, H, W), torch's MaxPool2d: stride defaults to
    kernel_size; padding (at most half the kernel) never wins (-inf);
    dilation spreads the taps; ceil_mode rounds the output size up (a last
    window must still start inside the input or its left padding). NaN
    propagates. The argmax indices (int32) are the saved context."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self._common(kernel_size, stride, padding, dilation, ceil_mode)


class MaxPool1d(MaxPool2d):
    """MaxPool2d over x (N, C, L)."""
    _nd = 1


class AvgPool2d(_Pool):
    """Window means of x (N, C, H, W), torch's AvgPool2d: count_include_pad
    divides by the window size clipped to the padded input (True, torch's
    default) or by the taps inside the input (False); divisor_override
    (a positive int) replaces either."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self._common(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool_arg(type(self).__name__, "count_include_pad",
                                          count_include_pad)
        self.divisor_override = (None if divisor_override is None else
                                 int_arg(type(self).__name__, "divisor_override",
                                         divisor_override, 1))
        self._mode = 1 if self.count_include_pad else 0


class AvgPool1d(AvgPool2d):
    """AvgPool2d over x (N, C, L) (no divisor_override, as torch)."""
    _nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AdaptiveAvgPool2d(_Pool):
    """Means over windows that tile x (N, C, H, W) into output_size (an int,
    or a pair whose None entries keep the input size): output row i averages
    input rows floor(i H / Ho) .. ceil((i + 1) H / Ho) - 1, columns likewise
    (torch's rule). output_size=1 is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        v = output_size
        if isinstance(v, (tuple, list)) and len(v) == 2:
            self.output_size = tuple(None if e is None else
                                     int_arg("AdaptiveAvgPool2d", "output_size", e, 1)
                                     for e in v)
        else:
            self.output_size = int_tuple("AdaptiveAvgPool2d", "output_size", v, 2, 1)
        self.divisor_override = None
        self._mode = 2

    def _shape(self, x):
        H, W = x.shape[2:]
        Ho, Wo = (H if o is None else o for o, H in zip(self.output_size, (H, W)))
        return (x.shape[0] * x.shape[1], (H, W, Ho, Wo, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0),
                x.shape[:2] + (Ho, Wo))

    def extra_repr(self):
        return f"output_size={self.output_size}"
