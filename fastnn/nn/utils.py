"""Gradient clipping, as torch.nn.utils: clip_grad_norm_ and clip_grad_value_.

Both work in place on ``Parameter.grad`` of every parameter whose grad is not
None, through C kernels (csrc/optim.c). Parameters whose gradients sit in an
optimizer's flat gradient buffer are read as one array (one pass). Norms are
accumulated in float64 over a fixed block partition, so the result is the
same on any thread count."""
import math

import numpy as np

from .._check import real
from .._ext import _C
from .module import Parameter, flat_grads

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


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
