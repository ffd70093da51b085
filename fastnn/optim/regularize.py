"""Regularization beyond weight decay: L1 (as a gradient term or by proximal
soft-thresholding) and max-norm weight constraints.

Every optimizer takes, per param group:
  ``l1=0.0``         strength of the penalty l1 * sum|w|
  ``l1_mode='gradient'``  add l1 * sign(w) to the gradient (sign(0) = 0),
                     inside the fused update, before the optimizer's rule;
             ``'proximal'``  after the update, w <- sign(w) * max(|w| - lr*l1, 0)
                     (soft-thresholding with the group's current lr): weights
                     reach exactly zero
  ``max_norm=None``  after each step, every row of a parameter with 2 or more
                     dimensions, viewed as (shape[0], -1) -- one unit's incoming
                     weights for a Linear weight (out, in), one output channel
                     for a conv weight (C_out, ...) -- whose L2 norm exceeds
                     max_norm is scaled by max_norm / (norm + 1e-7), as
                     torch.renorm; 1-D parameters (biases) are left alone.
With ``weight_decay`` (coupled L2: weight_decay * w added to the gradient, the
gradient of (weight_decay/2) * sum w^2), ``l1`` gives the elastic net.

``max_norm_`` and ``soft_threshold_`` apply the same constraints by hand."""
import math


from .._check import real
from .._ext import _C
from ..nn.module import Parameter

__all__ = ["max_norm_", "soft_threshold_"]

L1_MODES = ("gradient", "proximal")


def check_l1_mode(who, name, v):
    if v not in L1_MODES:
        raise ValueError(f"{who}: {name} must be one of {L1_MODES}, got {v!r}")
    return v


def check_max_norm(who, name, v):
    if v is None:
        return None
    f = real(who, name, v, finite=False)
    if not (0.0 < f < math.inf):
        raise ValueError(f"{who}: {name} must be None or a positive finite number, got {v!r}")
    return f


def max_norm_param(p, max_norm, who):
    """Apply the max-norm constraint to one Parameter (no-op below 2-D)."""
    d = p.data
    if d.ndim < 2 or d.size == 0:
        return
    _C.max_norm_rows(d, d.shape[0], d.size // d.shape[0], max_norm, who)


def _params_of(parameters, who):
    if isinstance(parameters, Parameter):
        return [parameters]
    try:
        ps = list(parameters)
    except TypeError:
        raise TypeError(f"{who}: parameters must be a Parameter or an iterable of Parameters, "
                        f"got {type(parameters).__name__}") from None
    for i, p in enumerate(ps):
        if not isinstance(p, Parameter):
            raise TypeError(f"{who}: parameters[{i}] is a {type(p).__name__}, expected a Parameter")
    return ps


def max_norm_(parameters, max_norm):
    """Rescale, in place, each row (dimension 0) of every parameter with 2 or
    more dimensions whose L2 norm exceeds ``max_norm``. Returns nothing."""
    who = "max_norm_"
    max_norm = check_max_norm(who, "max_norm", max_norm)
    if max_norm is None:
        raise ValueError(f"{who}: max_norm must be a positive number, got None")
    for p in _params_of(parameters, who):
        max_norm_param(p, max_norm, who)


def soft_threshold_(parameters, threshold):
    """w <- sign(w) * max(|w| - threshold, 0), in place, for every parameter
    (the proximal step of an L1 penalty; NaN stays NaN)."""
    who = "soft_threshold_"
    t = real(who, "threshold", threshold, finite=False)
    if not (0.0 <= t < math.inf):
        raise ValueError(f"{who}: threshold must be >= 0 and finite, got {threshold!r}")
    for p in _params_of(parameters, who):
        _C.soft_threshold(p.data, t, who)
