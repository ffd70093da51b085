"""Normalisation layers: BatchNorm1d, BatchNorm2d, SyncBatchNorm, LayerNorm (csrc/norm.c).

As torch.nn: batch norm in training normalises with the batch statistics
(biased variance) and updates the running estimates with ``momentum``
(the unbiased variance; ``momentum=None``: cumulative average); in eval mode
it uses the running estimates (the batch statistics when
``track_running_stats=False``). Buffers carry torch's names --
``running_mean``, ``running_var`` (float32) and ``num_batches_tracked``
(a 0-d int64 array) -- so state dicts exchange with torch both ways.
Statistics are float64 sums in C; every result is the same on any thread
count."""
import numbers

import numpy as np

from .._check import as_f32, bool_arg, grad_like, positive_int, real
from .._ext import _C
from .layers import _param_array
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "SyncBatchNorm", "LayerNorm"]


def _contig(x, who):
    x = as_f32(x, who, "x")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def _add_grad(p, g):
    """Accumulate the small array g into p.grad (or overwrite a zero grad)."""
    if p is None or not p.requires_grad:
        return
    dst, acc = p.grad_for_write()
    if acc:
        dst += g.reshape(dst.shape)
    else:
        dst[...] = g.reshape(dst.shape)


class _BatchNorm(Module):
    _layout = ""          # the accepted input layouts, for messages

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        super().__init__()
        who = type(self).__name__
        self.num_features = positive_int(who, "num_features", num_features)
        self.eps = real(who, "eps", eps, lo=0.0)
        if not self.eps > 0.0:
            raise ValueError(f"{who}: eps must be > 0, got {eps!r}")
        self.momentum = None if momentum is None else real(who, "momentum", momentum,
                                                           lo=0.0, hi=1.0)
        self.affine = bool_arg(who, "affine", affine)
        self.track_running_stats = bool_arg(who, "track_running_stats", track_running_stats)
        c = self.num_features
        self.weight = Parameter(np.ones(c, np.float32)) if self.affine else None
        self.bias = Parameter(np.zeros(c, np.float32)) if self.affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, np.float32))
            self.register_buffer("running_var", np.ones(c, np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64), dtype=None)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0.0
            self.running_var[...] = 1.0
            self.num_batches_tracked[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            self.weight.data = np.ones(self.num_features, np.float32)
            self.bias.data = np.zeros(self.num_features, np.float32)

    def _dims(self, x):
        """(N, C, S) of a valid input, else ValueError naming the layer."""
        who, c = type(self).__name__, self.num_features
        if x.ndim not in self._ndims:
            raise ValueError(f"{who}: x must be {self._layout}, got shape {x.shape}")
        if x.shape[1] != c:
            raise ValueError(f"{who}: x has shape {x.shape} with {x.shape[1]} channels, "
                             f"expected num_features={c} channels in dimension 1")
        return x.shape[0], c, int(np.prod(x.shape[2:], dtype=np.int64))

    def _params(self):
        who, c = type(self).__name__, (self.num_features,)
        if not self.affine:
            return None, None
        return (_param_array(who, "weight", self.weight.data, c),
                _param_array(who, "bias", self.bias.data, c))

    def forward(self, x):
        return self._forward(x)

    def _forward(self, x, relu=False):
        """forward, with a following ReLU fused when relu (Sequential's
        BatchNorm + ReLU fusion: max(y, 0) in the normalising pass, and in
        backward the ReLU's mask recomputed from x where batch norm reads it)."""
        who = type(self).__name__
        x = _contig(x, who)
        n, c, s = self._dims(x)
        gamma, beta = self._params()
        y = np.empty(x.shape, dtype=np.float32)
        if not self.training and self.track_running_stats:
            _C.batchnorm_forward_eval(n, c, s, x, gamma, beta, self.running_mean,
                                      self.running_var, self.eps, y, relu=relu)
            return y
        if n * s <= 1:
            raise ValueError(f"{who}: expected more than 1 value per channel when training, "
                             f"got x of shape {x.shape} ({n * s} value per channel)")
        mean, var, invstd = (np.empty(c, np.float32) for _ in range(3))
        _C.batchnorm_forward(n, c, s, x, gamma, beta, self.eps, y, mean, var, invstd, relu=relu)
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            f = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                 else self.momentum)
            m = n * s
            self.running_mean[...] = (1.0 - f) * self.running_mean.astype(np.float64) + f * mean
            self.running_var[...] = ((1.0 - f) * self.running_var.astype(np.float64)
                                     + f * var.astype(np.float64) * (m / (m - 1)))
        # a fused ReLU: its mask is the forward's, so keep the gamma, beta it used
        fused = (((None, None) if gamma is None else (gamma.copy(), beta.copy()))
                 if relu else None)
        self.save_for_backward(x, mean, invstd, fused)
        return y

    def backward(self, grad_out):
        x, mean, invstd, fused = self.saved_tensors()
        who = type(self).__name__
        dy = grad_like(who, grad_out, x.shape)
        n, c, s = x.shape[0], x.shape[1], x.size // (x.shape[0] * x.shape[1])
        gamma = self._params()[0]
        dx = np.empty(x.shape, dtype=np.float32) if self.needs_input_grad else None
        dgamma, dbeta = np.empty(c, np.float32), np.empty(c, np.float32)
        if fused is not None:   # dy is the fused ReLU's output gradient, masked in C
            g, b = fused
            _C.batchnorm_backward(n, c, s, x, dy, mean, invstd, g, dgamma, dbeta, dx,
                                  beta=b, relu=True)
        else:
            _C.batchnorm_backward(n, c, s, x, dy, mean, invstd, gamma, dgamma, dbeta, dx)
        if self.affine:
            _add_grad(self.weight, dgamma)
            _add_grad(self.bias, dbeta)
        return dx

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over x (N, C) or (N, C, L): per channel, statistics over N
    (and L). See the module docstring for training/eval behaviour."""
    _ndims = (2, 3)
    _layout = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over x (N, C, H, W): per channel, statistics over N, H, W.
    See the module docstring for training/eval behaviour."""
    _ndims = (4,)
    _layout = "4-D (N, C, H, W)"


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are those of the global batch:
    the per-channel mean and variance are all-reduced over the MPI ranks of
    fastnn.distributed (two small all-reduces in forward, one in backward),
    so K ranks with batch B normalise as one BatchNorm over the K*B samples,
    and the input gradient includes the other ranks' terms. Input (N, C),
    (N, C, L) or (N, C, H, W); arguments, buffers and eval mode as
    BatchNorm1d/2d. In a single process (or before
    ``fastnn.distributed.init()``) it computes what BatchNorm does.

    Each rank's samples enter the statistics with equal weight; the
    gradient assumes each rank's loss is a mean over its samples weighted by
    ``fastnn.distributed.batch_weight()`` (what DistributedDataParallel
    does). Every rank must call forward and backward the same number of
    times. ``SyncBatchNorm.convert_sync_batchnorm(model)`` replaces the
    BatchNorm1d/2d layers of a model (parameters and buffers kept)."""
    _ndims = (2, 3, 4)
    _layout = "2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W)"

    def forward(self, x):
        if not self.training and self.track_running_stats:
            return super().forward(x)
        from .. import distributed as dist
        who = type(self).__name__
        x = _contig(x, who)
        n, c, s = self._dims(x)
        gamma, beta = self._params()
        m_local = n * s
        # local statistics from the C kernel (float64 sums), then the global
        # mean and the global variance about it (Chan's parallel formula)
        y = np.empty(x.shape, dtype=np.float32)
        mean_l, var_l, invstd_l = (np.empty(c, np.float32) for _ in range(3))
        if m_local:
            _C.batchnorm_forward(n, c, s, x, None, None, self.eps, y, mean_l, var_l, invstd_l)
        else:
            mean_l[...] = var_l[...] = 0.0
        buf = np.empty(c + 1, np.float64)
        buf[:c] = mean_l.astype(np.float64) * m_local
        buf[c] = m_local
        dist.all_reduce(buf)
        m = buf[c]
        if m <= 1:
            raise ValueError(f"{who}: expected more than 1 value per channel over all ranks "
                             f"when training, got {int(m)}")
        mean = buf[:c] / m
        sq = m_local * (var_l.astype(np.float64) + (mean_l.astype(np.float64) - mean) ** 2)
        dist.all_reduce(sq)
        var = sq / m
        mean32, var32 = mean.astype(np.float32), var.astype(np.float32)
        invstd = (1.0 / np.sqrt(var + self.eps)).astype(np.float32)
        _C.batchnorm_forward_eval(n, c, s, x, gamma, beta, mean32, var32, self.eps, y)
        if self.track_running_stats:
            self.num_batches_tracked += 1
            f = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                 else self.momentum)
            self.running_mean[...] = (1.0 - f) * self.running_mean.astype(np.float64) + f * mean
            self.running_var[...] = ((1.0 - f) * self.running_var.astype(np.float64)
                                     + f * var * (m / (m - 1)))
        self.save_for_backward(x, mean32, invstd, m, dist.batch_weight())
        return y

    def backward(self, grad_out):
        from .. import distributed as dist
        x, mean, invstd, m, w = self.saved_tensors()
        who = type(self).__name__
        dy = grad_like(who, grad_out, x.shape)
        n, c = x.shape[0], x.shape[1]
        s = x.size // (n * c) if n * c else 0
        gamma = self._params()[0]
        dgamma, dbeta = np.zeros(c, np.float32), np.zeros(c, np.float32)
        if n * s:                    # local sums: dbeta = sum(dy), dgamma = sum(dy * xhat)
            _C.batchnorm_backward(n, c, s, x, dy, mean, invstd, gamma, dgamma, dbeta, None)
        if self.affine:
            _add_grad(self.weight, dgamma)
            _add_grad(self.bias, dbeta)
        sums = np.concatenate([dbeta, dgamma]).astype(np.float64) * w
        dist.all_reduce(sums)
        if not self.needs_input_grad:
            return None
        if w == 0.0:                 # a weight-0 placeholder batch contributes nothing
            return np.zeros(x.shape, np.float32)
        k = float(m) * w
        b = (sums[:c] / k).astype(np.float32)[:, None]
        e = (sums[c:] / k).astype(np.float32)[:, None]
        g = invstd if gamma is None else gamma * invstd
        x3, dy3 = x.reshape(n, c, s), dy.reshape(n, c, s)
        xhat = (x3 - mean[:, None]) * invstd[:, None]
        dx = g[:, None] * (dy3 - b - xhat * e)
        return dx.reshape(x.shape).astype(np.float32, copy=False)

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """Replace every BatchNorm1d/BatchNorm2d in ``module`` (in place, and
        the module itself if it is one) by a SyncBatchNorm with the same
        arguments, parameters and buffers; returns the converted module."""
        if isinstance(module, (BatchNorm1d, BatchNorm2d)) and not isinstance(module, cls):
            new = cls(module.num_features, eps=module.eps, momentum=module.momentum,
                      affine=module.affine, track_running_stats=module.track_running_stats)
            new.load_state_dict(module.state_dict())
            new.train(module.training)
            return new
        for name, child in list(module._modules.items()):
            conv = cls.convert_sync_batchnorm(child)
            if conv is not child:
                setattr(module, name, conv)
                _replace_init_arg(module, child, conv)
        return module


def _replace_init_arg(module, old, new):
    """Keep the constructor arguments fastnn.save records in step with a
    replaced child (Sequential(a, bn, ...) saves its children as arguments)."""
    def swap(v):
        if v is old:
            return new
        if isinstance(v, (list, tuple)):
            return type(v)(swap(a) for a in v)
        if isinstance(v, dict):
            return type(v)((k, swap(a)) for k, a in v.items())
        return v
    args, kwargs = module._init_args
    object.__setattr__(module, "_init_args", (swap(args), swap(kwargs)))


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the trailing
    dimensions ``normalized_shape`` of x (mean and biased variance per row),
    as torch.nn.LayerNorm; the same computation in training and eval.
    ``weight`` (ones) and ``bias`` (zeros) have shape ``normalized_shape``
    when ``elementwise_affine``; ``bias=False`` drops the bias."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape,
                                                                             bool):
            normalized_shape = (normalized_shape,)
        try:
            shape = tuple(positive_int("LayerNorm", "normalized_shape", d)
                          for d in normalized_shape)
        except TypeError:
            raise TypeError(f"LayerNorm: normalized_shape must be an int or a tuple of ints, "
                            f"got {normalized_shape!r}") from None
        if not shape:
            raise ValueError("LayerNorm: normalized_shape must not be empty")
        self.normalized_shape = shape
        self.eps = real("LayerNorm", "eps", eps, lo=0.0)
        if not self.eps > 0.0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps!r}")
        self.elementwise_affine = bool_arg("LayerNorm", "elementwise_affine", elementwise_affine)
        has_bias = bool_arg("LayerNorm", "bias", bias)
        self.weight = Parameter(np.ones(shape, np.float32)) if self.elementwise_affine else None
        self.bias = (Parameter(np.zeros(shape, np.float32))
                     if self.elementwise_affine and has_bias else None)
        object.__setattr__(self, "_zeros", None)

    def _params(self, d):
        if self.weight is None:
            return None, None
        shape = self.normalized_shape
        g = _param_array("LayerNorm", "weight", self.weight.data, shape).reshape(d)
        if self.bias is not None:
            return g, _param_array("LayerNorm", "bias", self.bias.data, shape).reshape(d)
        if self._zeros is None or self._zeros.size != d:
            object.__setattr__(self, "_zeros", np.zeros(d, np.float32))
        return g, self._zeros

    def forward(self, x):
        x = _contig(x, "LayerNorm")
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k:] != self.normalized_shape:
            raise ValueError(f"LayerNorm: x has shape {x.shape}, expected trailing dimensions "
                             f"normalized_shape={self.normalized_shape}")
        d = int(np.prod(self.normalized_shape))
        r = x.size // d
        gamma, beta = self._params(d)
        y = np.empty(x.shape, dtype=np.float32)
        if r == 0:
            return y
        saving = self.training
        mean = np.empty(r, np.float32) if saving else None
        rstd = np.empty(r, np.float32) if saving else None
        _C.layernorm_forward(r, d, x, gamma, beta, self.eps, y, mean, rstd)
        if saving:
            self.save_for_backward(x, mean, rstd)
        return y

    def backward(self, grad_out):
        x, mean, rstd = self.saved_tensors()
        dy = grad_like("LayerNorm", grad_out, x.shape)
        d = int(np.prod(self.normalized_shape))
        r = x.size // d
        gamma = self._params(d)[0]
        want_w = gamma is not None and (self.weight.requires_grad or
                                        (self.bias is not None and self.bias.requires_grad))
        dgamma = np.empty(d, np.float32) if want_w else None
        dbeta = np.empty(d, np.float32) if want_w else None
        dx = np.empty(x.shape, dtype=np.float32) if self.needs_input_grad else None
        if r:
            _C.layernorm_backward(r, d, x, dy, mean, rstd, gamma, dgamma, dbeta, dx)
        elif want_w:
            dgamma[...] = 0.0
            dbeta[...] = 0.0
        if want_w:
            _add_grad(self.weight, dgamma)
            _add_grad(self.bias, dbeta)
        return dx

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
