"""Gradient clipping, as torch.nn.utils: clip_grad_norm_ and clip_grad_value_;
fuse_conv_bn, which folds eval-mode batch norm into the layer before it.

The clipping functions work in place on ``Parameter.grad`` of every parameter whose grad is not
None, through C kernels (csrc/optim.c). Parameters whose gradients sit in an
optimizer's flat gradient buffer are read as one array (one pass). Norms are
accumulated in float64 over a fixed block partition, so the result is the
same on any thread count."""
import math

import numpy as np

from .._check import real
from .._ext import _C
from .module import Parameter, flat_grads

__all__ = ["clip_grad_norm_", "clip_grad_value_", "fuse_conv_bn"]


def _grads(parameters, who):
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    elif isinstance(parameters, np.ndarray):
        raise TypeError(f"{who}: parameters must be a Parameter or an iterable of Parameters, "
                        "got an ndarray")
    try:
        ps = list(parameters)
    except TypeError:
        raise TypeError(f"{who}: parameters must be a Parameter or an iterable of Parameters, "
                        f"got {type(parameters).__name__}") from None
    for i, p in enumerate(ps):
        if not isinstance(p, Parameter):
            raise TypeError(f"{who}: parameters[{i}] is a {type(p).__name__}, expected a Parameter")
    return flat_grads(ps)[0]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint ``norm_type``-norm
    (the norm of the concatenation of every grad) is at most ``max_norm``.

    As torch: total = (sum over all elements of |g|^p)^(1/p) (max |g| for
    ``norm_type=inf``); when max_norm / (total + 1e-6) < 1 every grad is
    multiplied by that factor. A NaN or infinite total raises RuntimeError if
    ``error_if_nonfinite``, else the grads are scaled by the resulting NaN or 0
    as torch does. Returns the total norm before clipping, as a Python float
    (computed in float64)."""
    who = "clip_grad_norm_"
    max_norm = real(who, "max_norm", max_norm, finite=False, lo=0.0)
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        norm_type = math.inf
    p = real(who, "norm_type", norm_type, finite=False, lo=0.0)
    if p == 0.0:
        raise ValueError(f"{who}: norm_type must be > 0 or inf, got {norm_type!r}")
    grads = _grads(parameters, who)
    if not grads:
        return 0.0
    s = _C.grad_norm_pow(grads, p, who)         # one pass over all grads, float64
    total = s if math.isinf(p) else math.sqrt(s) if p == 2.0 else s ** (1.0 / p)
    if not math.isfinite(total) and error_if_nonfinite:
        raise RuntimeError(f"{who}: the total norm of order {p} of the gradients is {total}, so "
                           "they cannot be clipped; set error_if_nonfinite=False to scale them "
                           "anyway (by NaN or 0, as torch)")
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:                   # also NaN
        _C.scale_inplace(grads, coef, who)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value], in place
    (NaN stays NaN). Returns None."""
    who = "clip_grad_value_"
    c = real(who, "clip_value", clip_value, finite=False, lo=0.0)
    _C.clamp_inplace(_grads(parameters, who), -c, c, who)


def _fold_target(m):
    """A module BatchNorm can fold into: .weight a Parameter of shape (out, ...)
    and a .bias attribute (a Parameter of shape (out,) or None) -- Linear,
    Conv2d, Conv1d (duck-typed, so any layer of that form)."""
    w = getattr(m, "weight", None)
    return (isinstance(w, Parameter) and w.data.ndim >= 2 and hasattr(m, "bias")
            and (m.bias is None or (isinstance(m.bias, Parameter)
                                    and m.bias.data.shape == (w.data.shape[0],))))


def _give_bias(layer, out):
    """Add a zero bias Parameter to a layer built with bias=False, and record
    bias=True among its constructor arguments so fastnn.save/load rebuild it
    with one. False when its constructor has no `bias` argument."""
    import inspect
    args, kwargs = layer._init_args
    try:
        bound = inspect.signature(type(layer).__init__).bind(layer, *args, **kwargs)
    except TypeError:
        return False
    if "bias" not in inspect.signature(type(layer).__init__).parameters:
        return False
    bound.arguments["bias"] = True
    object.__setattr__(layer, "_init_args", (bound.args[1:], bound.kwargs))
    layer.bias = Parameter(np.zeros(out, np.float32))
    return True


def fuse_conv_bn(model):
    """A copy of ``model`` for inference in which every batch norm that
    directly follows a Linear or convolution inside a Sequential is folded
    into that layer and replaced by Identity:

        W' = W * s,  b' = (b - running_mean) * s + beta,  s = gamma / sqrt(running_var + eps)

    (s scales output channel/feature o, the first axis of W). A layer without
    bias gets one. Batch norms elsewhere, or with track_running_stats=False,
    are left as they are. The input model is not modified; the copy is
    returned in eval() mode and computes what ``model.eval()`` computes, up to
    float32 rounding. Returns (the new model)."""
    import copy

    from .container import Sequential
    from .layers import Identity
    from .module import Module
    from .norm import BatchNorm1d, BatchNorm2d
    if not isinstance(model, Module):
        raise TypeError(f"fuse_conv_bn: model must be a fastnn Module, got {type(model).__name__}")
    fused = copy.deepcopy(model)
    fused.clear_contexts()
    for seq in [m for m in fused.modules() if isinstance(m, Sequential)]:
        names = list(seq._modules)
        changed = False
        for prev, name in zip(names, names[1:]):
            layer, bn = seq._modules[prev], seq._modules[name]
            if not (isinstance(bn, (BatchNorm1d, BatchNorm2d)) and bn.track_running_stats
                    and _fold_target(layer)):
                continue
            w = layer.weight.data
            out = w.shape[0]
            if out != bn.num_features:
                continue
            if layer.bias is None and not _give_bias(layer, out):
                continue
            s = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
            shift = -bn.running_mean.astype(np.float64) * s
            if bn.affine:
                s = s * bn.weight.data
                shift = -bn.running_mean.astype(np.float64) * s + bn.bias.data
            layer.weight.data = w * s.reshape((out,) + (1,) * (w.ndim - 1))
            layer.bias.data = layer.bias.data * s + shift
            setattr(seq, name, Identity())
            changed = True
        if changed:          # fastnn.save rebuilds a Sequential from its arguments
            positional = names == [str(i) for i in range(len(names))]
            object.__setattr__(seq, "_init_args",
                               (tuple(seq._modules.values()) if positional
                                else (dict(seq._modules),), {}))
    return fused.eval()
