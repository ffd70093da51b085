"""Convolutions: Conv2d and Conv1d, NCHW float32 on csrc/conv.c.

Weights have PyTorch's layout (out_channels, in_channels / groups, *kernel)
so state dicts move between fastnn and torch unchanged. Forward is im2col +
one GEMM per sample and group with the bias fused (a direct kernel for
depthwise convolutions); backward computes only what is wanted (dX when
``needs_input_grad``, dW and db for parameters that require a gradient). See
docs/conv.md."""
import math

import numpy as np

from .._check import F32, as_f32, bool_arg, grad_like, int_arg, int_tuple
from .._ext import _C
from . import init
from .layers import _param_array
from .module import Module, Parameter

__all__ = ["Conv1d", "Conv2d"]


class _ConvNd(Module):
    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True):
        super().__init__()
        who, nd = type(self).__name__, self._nd
        self.in_channels = int_arg(who, "in_channels", in_channels, 1)
        self.out_channels = int_arg(who, "out_channels", out_channels, 1)
        self.kernel_size = int_tuple(who, "kernel_size", kernel_size, nd, 1)
        self.stride = int_tuple(who, "stride", stride, nd, 1)
        self.dilation = int_tuple(who, "dilation", dilation, nd, 1)
        self.groups = int_arg(who, "groups", groups, 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{who}: groups={self.groups} must divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{who}: padding must be 'same', 'valid', an integer or a "
                                 f"tuple of {nd}, got {padding!r}")
            if padding == "same" and self.stride != (1,) * nd:
                raise ValueError(f"{who}: padding='same' needs stride 1, got stride="
                                 f"{self.stride}")
            self.padding = padding
            total = ([d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
                     if padding == "same" else [0] * nd)
            self._pad_lo = tuple(t // 2 for t in total)           # torch puts the odd one
            self._pad_hi = tuple(t - t // 2 for t in total)       # at the end
        else:
            self.padding = int_tuple(who, "padding", padding, nd, 0)
            self._pad_lo = self._pad_hi = self.padding
        bool_arg(who, "bias", bias)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, np.float32))
        self.bias = Parameter(np.empty(self.out_channels, np.float32)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))      # U(+-1/sqrt(fan_in))
        if self.bias is not None:
            fan_in = self.weight.data[0].size                   # C/G * prod(kernel)
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def _shape(self, x):
        """The kernel's 16-number shape for input x (checked), and y's shape."""
        who, nd = type(self).__name__, self._nd
        if not (type(x) is np.ndarray and x.dtype == F32 and x.flags.c_contiguous
                and x.ndim == nd + 2):
            x = np.ascontiguousarray(as_f32(x, who, "x"))
        wshape = self.weight.data.shape
        want = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
        if x.ndim != nd + 2:
            raise ValueError(f"{who}: x must be {nd + 2}-D {want}, got shape {x.shape} "
                             f"(weight shape {wshape})")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{who}: x has {x.shape[1]} channels, expected in_channels="
                             f"{self.in_channels}: x shape {x.shape}, weight shape {wshape}")
        sizes, out = x.shape[2:], []
        for L, k, s, d, lo, hi in zip(sizes, self.kernel_size, self.stride, self.dilation,
                                      self._pad_lo, self._pad_hi):
            span = d * (k - 1) + 1
            if L + lo + hi < span:
                raise ValueError(f"{who}: kernel_size={self.kernel_size} (dilation="
                                 f"{self.dilation}) is larger than the padded input: x shape "
                                 f"{x.shape}, padding={self.padding}, weight shape {wshape}")
            out.append((L + lo + hi - span) // s + 1)
        n, c = x.shape[:2]
        if nd == 1:
            (k,), (s,), (d,), (p,) = self.kernel_size, self.stride, self.dilation, self._pad_lo
            shape = (n, c, 1, sizes[0], self.out_channels, self.groups, 1, k, 1, s, 0, p,
                     1, d, 1, out[0])
        else:
            shape = ((n, c) + tuple(sizes) + (self.out_channels, self.groups)
                     + self.kernel_size + self.stride + self._pad_lo + self.dilation + tuple(out))
        return x, shape, (n, self.out_channels) + tuple(out)

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, relu=False):
        """forward, with max(y, 0) fused into the kernel's store when relu
        (Sequential's Conv + ReLU fusion; the ReLU keeps its own context)."""
        x, shape, yshape = self._shape(x)
        who = type(self).__name__
        w = _param_array(who, "weight", self.weight.data, self.weight.data.shape)
        b = (None if self.bias is None else
             _param_array(who, "bias", self.bias.data, (self.out_channels,)))
        y = np.empty(yshape, dtype=np.float32)
        _C.conv2d_forward(shape, x, w, b, y, relu=relu)
        self.save_for_backward(x, shape, yshape)
        return y

    def backward(self, grad_out):
        x, shape, yshape = self.saved_tensors()
        who = type(self).__name__
        dy = grad_like(who, grad_out, yshape)
        weight, bias = self.weight, self.bias
        w = _param_array(who, "weight", weight.data, weight.data.shape)
        gw = gb = None
        acc_w = acc_b = False
        if weight.requires_grad:
            gw, acc_w = weight.grad_for_write()
            gw = _param_array(who, "weight.grad", gw, weight.data.shape)
        if bias is not None and bias.requires_grad:
            gb, acc_b = bias.grad_for_write()
            gb = _param_array(who, "bias.grad", gb, (self.out_channels,))
        acc = acc_w or acc_b
        if acc and gw is not None and not acc_w:
            gw.fill(0.0)             # one accumulate flag for both: start the other at 0
        if acc and gb is not None and not acc_b:
            gb.fill(0.0)
        dx = np.empty(x.shape, dtype=np.float32) if self.needs_input_grad else None
        if dx is not None or gw is not None or gb is not None:
            _C.conv2d_backward(shape, x, w, dy, dx, gw, gb, acc)
        return dx

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as torch) of x (N, C_in, H, W):
    y (N, C_out, H_out, W_out), H_out = (H + pad_top + pad_bottom -
    dilation (kh - 1) - 1) // stride + 1. ``padding``: an int, a pair, or
    'valid' (none) / 'same' (output as large as the input; stride 1 only; an
    odd total padding puts the extra row/column at the bottom/right, as
    torch). weight (C_out, C_in / groups, kh, kw), bias (C_out,), both
    U(+-1/sqrt(fan_in)) with fan_in = C_in / groups * kh * kw, as torch."""
    _nd = 2


class Conv1d(_ConvNd):
    """1-D convolution of x (N, C_in, L): y (N, C_out, L_out), on Conv2d's
    kernels (a height-1 image). weight (C_out, C_in / groups, k)."""
    _nd = 1
