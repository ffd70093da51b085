"""Loss functions: ``loss(input, target)`` returns the loss, then
``loss.backward()`` returns dL/d(input) for that call.

Every loss is a :class:`~fastnn.nn.Module` (it prints, can sit in a container
and saves its ``weight``/``pos_weight`` buffers) but has no parameters. The
work is done by the C kernels of ``csrc/loss.c``: one pass per row (or per
block of elements), float64 accumulation, results bitwise independent of the
thread count.

Contexts: like every module, a training-mode forward saves one context and
``backward()`` consumes the newest (last in, first out), so a loss may be
called several times before its backwards; in eval mode or under
``fastnn.no_grad()`` nothing is saved (and ``backward`` raises). Losses are
gradient sources: ``backward()`` always returns dL/d(input), the gradient to
pass to ``model.backward``.

Fused backward: a training-mode ``'mean'``/``'sum'`` forward computes the
gradient in the same pass, and ``backward()`` just hands it over; for
``reduction='none'`` or a ``grad_out`` other than 1, ``backward`` computes it
from the saved input (same values, bit for bit). The returned gradient is a
buffer the loss reuses on a later call once you no longer hold a reference
to it, so it never changes under you.

Inputs are not scanned for NaN up front: the kernels make a NaN or infinity
(or a target outside its domain) show up in the loss total, and only then
are the inputs inspected to raise a ValueError naming the culprit. The input
must not be modified between a forward and its backward (it is not copied).
"""
import math
import sys

import numpy as np

from .._check import as_f32, contig, real
from .._ext import _C
from .module import Module, is_grad_enabled

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss", "MultiMarginLoss"]

_F32 = np.dtype(np.float32)
# The losses' private per-call state bypasses Module.__setattr__ (which looks
# for parameters, buffers and sub-modules): a few microseconds per call.
_set = object.__setattr__
_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------- checks --

def _reduction(who, reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{who}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _class_vector(who, name, v):
    """A per-class vector given at construction (weight, pos_weight): any real
    1-D array-like, stored as float32; finite and non-negative."""
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{who}: {name} must be a 1-D array of real numbers, got dtype {a.dtype}")
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{who}: {name} must be a non-empty 1-D array, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{who}: {name} contains NaN or infinity")
    if np.any(a < 0):
        raise ValueError(f"{who}: {name} must be non-negative, got min {float(a.min())}")
    return a


def _input_2d(who, x):
    x = as_f32(x, who, "input", ndim=2)
    N, C = x.shape
    if N == 0 or C == 0:
        raise ValueError(f"{who}: input must have at least one sample and one class, got shape {x.shape}")
    return contig(who, x)


def _input_nd(who, x):
    x = as_f32(x, who, "input")
    if x.size == 0:
        raise ValueError(f"{who}: input is empty (shape {x.shape})")
    return contig(who, x)


def _labels(who, target, N, C):
    """Class indices: integer array of shape (N,) with values in [0, C), as int64."""
    t = target if isinstance(target, np.ndarray) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{who}: target must be an integer array of class indices, got dtype {t.dtype}")
    if t.shape != (N,):
        raise ValueError(f"{who}: target has shape {t.shape}, expected ({N},): one class index "
                         f"per row of input (shape ({N}, {C}))")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0:
        raise ValueError(f"{who}: target contains {lo}; class indices must be in [0, {C}) "
                         f"for C={C} classes")
    if hi >= C:
        raise ValueError(f"{who}: target contains {hi}; class indices must be in [0, {C}) "
                         f"for C={C} classes")
    return np.ascontiguousarray(t, dtype=np.int64)


def _same_shape_target(who, target, shape):
    t = as_f32(target, who, "target")
    if t.shape != tuple(shape):
        raise ValueError(f"{who}: target has shape {t.shape}, expected {tuple(shape)} "
                         f"(the shape of input)")
    return contig(who, t, "target")


def _check_finite(who, name, a):
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{who}: {name} contains NaN or infinity")


def _not_finite(who, total):
    """The kernels found nothing wrong with any argument yet the loss is not
    finite: cannot happen with finite float32 data, but never return it silently."""
    raise ValueError(f"{who}: the loss is not finite ({total})")


# ------------------------------------------------- the value returned --

class LossValue(float):
    """The float a 'mean'/'sum' loss returns: a plain Python float for
    arithmetic, formatting, comparison and JSON, plus ``item()`` (the float
    itself) and a ``backward`` that explains fastnn's protocol to hands used
    to PyTorch's autograd."""
    __slots__ = ()

    def item(self):
        return float(self)

    def backward(self, *args, **kwargs):
        raise TypeError(
            "loss.backward(): a fastnn loss value is a plain float with no autograd graph behind it: "
            "call the criterion's backward for dL/d(output), then the model's, e.g.\n"
            "    loss = criterion(model(x), y)\n"
            "    optimizer.zero_grad()\n"
            "    model.backward(criterion.backward())\n"
            "    optimizer.step()")


# ----------------------------------------------------------------- base --

class _Loss(Module):
    """Shared machinery: reduction, the saved contexts, the reusable gradient
    buffer and the backward protocol."""

    _gradient_source = True       # backward always returns dL/d(input)

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _reduction(type(self).__name__, reduction)
        self._grad = None         # gradient buffer owned by the loss
        self._grad_refs = 0       # its reference count when nobody else holds it

    def _class_buffer(self, name, v):
        """A per-class vector argument (weight, pos_weight), validated and kept
        as a buffer (saved with the state); None stays None."""
        a = _class_vector(self._who, name, v)
        if a is None:
            setattr(self, name, None)
        else:
            self.register_buffer(name, a)

    @property
    def _who(self):
        return type(self).__name__

    def forward(self, input, target):
        raise NotImplementedError

    def __call__(self, input, target):
        return self.forward(input, target)

    def _buffer(self, shape):
        """The gradient buffer, reused when its shape matches and no one
        outside the loss still references it (else a fresh array)."""
        g = self._grad
        if g is not None and g.shape == shape and sys.getrefcount(g) <= self._grad_refs:
            return g
        g = np.empty(shape, dtype=np.float32)
        _set(self, "_grad", g)
        _set(self, "_grad_refs", sys.getrefcount(g))
        return g

    def _start(self):
        _reduction(self._who, self.reduction)     # the attribute may have been reassigned

    def _fuse(self):
        """Compute the gradient in the forward pass? Only when it is saved."""
        return self.training and self.reduction != "none" and is_grad_enabled()

    def _finish(self, total, per_sample, denom):
        """The value forward returns: float for mean/sum, float32 array for none."""
        if self.reduction != "none":
            return LossValue(total / denom if self.reduction == "mean" else total)
        return per_sample.astype(np.float32)

    def backward(self, grad_out=None):
        """dL/d(input) of the newest unconsumed forward (its context is
        consumed), float32, shape of input.

        For 'mean'/'sum', ``grad_out`` is an optional scalar multiplying the
        gradient (dLoss_total/dL; default 1). For 'none' it is required: the
        gradient with respect to the per-sample losses, shaped like them."""
        who = self._who
        s, fused = self.saved_tensors()
        if s["reduction"] == "none":
            if grad_out is None:
                raise ValueError(f"{who}: reduction='none' needs grad_out, the gradient with "
                                 f"respect to the per-sample losses, of shape {s['loss_shape']}")
            go = as_f32(grad_out, who, "grad_out")
            if go.shape != s["loss_shape"]:
                raise ValueError(f"{who}: grad_out has shape {go.shape}, expected "
                                 f"{s['loss_shape']} (the shape of the per-sample losses)")
            g = self._buffer(s["grad_shape"])
            self._backward(s, 1.0, contig(who, go, "grad_out"), g)
            return g
        k = 1.0 if grad_out is None else real(who, "grad_out", _scalar(who, grad_out))
        if fused is not None and k == 1.0:
            return fused
        g = fused if fused is not None else self._buffer(s["grad_shape"])
        self._backward(s, s["scale"] * k, None, g)
        return g

    def _backward(self, s, scale, per_sample_scale, g):
        raise NotImplementedError


def _scalar(who, v):
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise ValueError(f"{who}: grad_out must be a scalar for reduction 'mean'/'sum', "
                             f"got shape {v.shape}")
        return v.reshape(()).item()
    return v


# -------------------------------------------------------- cross-entropy --

class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits, as ``torch.nn.CrossEntropyLoss``.

    input: float32 logits (N, C). target: integer class indices (N,) (any
    integer dtype, each in [0, C)) or float32 class probabilities (N, C)
    (finite, non-negative; rows are used as given, not renormalised: a row
    summing to s contributes s times the loss of its normalised version).
    ``weight`` (C,): per-class rescaling; with class indices and reduction
    'mean' the sum is divided by the summed weight of the targets, with
    probabilities by N (PyTorch's rules). ``label_smoothing`` in [0, 1] mixes
    the target with the uniform distribution: (1-e) target + e/C.
    """

    def __init__(self, weight=None, *, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        who = self._who
        self._class_buffer("weight", weight)
        self.label_smoothing = real(who, "label_smoothing", label_smoothing, lo=0.0, hi=1.0)

    def extra_repr(self):
        s = f"reduction={self.reduction!r}"
        if self.label_smoothing:
            s += f", label_smoothing={self.label_smoothing}"
        if self.weight is not None:
            s += f", weight=<{self.weight.shape[0]} classes>"
        return s

    def forward(self, input, target):
        who = self._who
        self._start()
        x = _input_2d(who, input)
        N, C = x.shape
        w = _weight_for(who, self.weight, C)
        probs = _is_prob_target(who, target, N, C)
        if probs:
            t = _same_shape_target(who, target, (N, C))
            denom = float(N)
        else:
            t = _labels(who, target, N, C)
            denom = float(np.sum(w[t], dtype=np.float64)) if w is not None else float(N)
            if self.reduction == "mean" and not denom > 0.0:
                raise ValueError(f"{who}: the targets' class weights sum to 0, so the weighted "
                                 f"mean is undefined")
        scale = 1.0 / denom if self.reduction == "mean" else 1.0
        grad = self._buffer((N, C)) if self._fuse() else None
        row_max = np.empty(N, dtype=np.float32)
        row_coef = np.empty(N, dtype=np.float64)
        row_loss = np.empty(N, dtype=np.float64)
        ls = self.label_smoothing
        kern = _C.cross_entropy_prob_forward if probs else _C.cross_entropy_forward
        total = kern(x, t, w, ls, scale, grad, row_max, row_coef, row_loss)
        if not math.isfinite(total):
            _check_finite(who, "input", x)
            if probs:
                _check_finite(who, "target", t)
                if np.any(t < 0):
                    raise ValueError(f"{who}: target probabilities must be non-negative, got "
                                     f"min {float(t.min())}")
            _not_finite(who, total)
        saved = {"x": x, "t": t, "w": w, "probs": probs, "row_max": row_max,
                 "row_coef": row_coef, "scale": scale, "loss_shape": (N,),
                 "grad_shape": (N, C), "reduction": self.reduction}
        self.save_for_backward(saved, grad)
        return self._finish(total, row_loss, denom)

    def _backward(self, s, scale, rs, g):
        kern = _C.cross_entropy_prob_backward if s["probs"] else _C.cross_entropy_backward
        kern(s["x"], s["t"], s["w"], self.label_smoothing, s["row_max"], s["row_coef"],
             scale, rs, g)


def _weight_for(who, w, C):
    if w is not None and w.shape[0] != C:
        raise ValueError(f"{who}: weight has {w.shape[0]} entries but input has C={C} classes")
    return w


def _is_prob_target(who, target, N, C):
    """Class probabilities (float) or class indices (integer)?"""
    kind = (target.dtype if isinstance(target, np.ndarray) else np.asarray(target).dtype).kind
    if kind == "f":
        shape = np.shape(target)
        if shape != (N, C):
            raise ValueError(f"{who}: a floating-point target holds class probabilities and must "
                             f"have the shape of input ({N}, {C}), got {shape} (class indices "
                             f"must be an integer array of shape ({N},))")
        return True
    if kind not in "iu":
        raise TypeError(f"{who}: target must be integer class indices of shape ({N},) or float32 "
                        f"class probabilities of shape ({N}, {C}), got dtype "
                        f"{np.asarray(target).dtype}")
    return False


# ------------------------------------------------------------------ NLL --

class NLLLoss(_Loss):
    """Negative log-likelihood, as ``torch.nn.NLLLoss``: input (N, C) holds
    log-probabilities (e.g. a LogSoftmax output), target integer class
    indices (N,). Loss of row i: -weight[y_i] * input[i, y_i]; 'mean' divides
    by the summed weight of the targets (N without weight)."""

    def __init__(self, weight=None, *, reduction="mean"):
        super().__init__(reduction)
        self._class_buffer("weight", weight)

    def extra_repr(self):
        s = f"reduction={self.reduction!r}"
        if self.weight is not None:
            s += f", weight=<{self.weight.shape[0]} classes>"
        return s

    def forward(self, input, target):
        who = self._who
        self._start()
        x = _input_2d(who, input)
        N, C = x.shape
        w = _weight_for(who, self.weight, C)
        t = _labels(who, target, N, C)
        denom = float(np.sum(w[t], dtype=np.float64)) if w is not None else float(N)
        if self.reduction == "mean" and not denom > 0.0:
            raise ValueError(f"{who}: the targets' class weights sum to 0, so the weighted mean "
                             f"is undefined")
        scale = 1.0 / denom if self.reduction == "mean" else 1.0
        grad = self._buffer((N, C)) if self._fuse() else None
        row_loss = np.empty(N, dtype=np.float64)
        total = _C.nll_forward(x, t, w, scale, grad, row_loss)
        if not math.isfinite(total):
            _check_finite(who, "input", x)
            _not_finite(who, total)
        saved = {"t": t, "w": w, "scale": scale, "loss_shape": (N,),
                 "grad_shape": (N, C), "reduction": self.reduction}
        self.save_for_backward(saved, grad)
        return self._finish(total, row_loss, denom)

    def _backward(self, s, scale, rs, g):
        _C.nll_backward(s["t"], s["w"], scale, rs, g)


# ---------------------------------------------------------- multi-margin --

class MultiMarginLoss(_Loss):
    """Multi-class hinge loss, as ``torch.nn.MultiMarginLoss``: for row i with
    class y, sum over j != y of max(0, margin - x[y] + x[j])**p / C, times
    weight[y] if given. p is 1 or 2; 'mean' divides by N."""

    def __init__(self, p=1, margin=1.0, weight=None, *, reduction="mean"):
        super().__init__(reduction)
        who = self._who
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"{who}: p must be 1 or 2, got {p!r}")
        self.p = int(p)
        self.margin = real(who, "margin", margin)
        self._class_buffer("weight", weight)

    def extra_repr(self):
        s = f"p={self.p}, margin={self.margin}, reduction={self.reduction!r}"
        if self.weight is not None:
            s += f", weight=<{self.weight.shape[0]} classes>"
        return s

    def forward(self, input, target):
        who = self._who
        self._start()
        x = _input_2d(who, input)
        N, C = x.shape
        w = _weight_for(who, self.weight, C)
        t = _labels(who, target, N, C)
        scale = 1.0 / N if self.reduction == "mean" else 1.0
        grad = self._buffer((N, C)) if self._fuse() else None
        row_loss = np.empty(N, dtype=np.float64)
        total = _C.multi_margin_forward(x, t, w, self.p, self.margin, scale, grad, row_loss)
        if not math.isfinite(total):
            _check_finite(who, "input", x)
            _not_finite(who, total)
        saved = {"x": x, "t": t, "w": w, "scale": scale, "loss_shape": (N,),
                 "grad_shape": (N, C), "reduction": self.reduction}
        self.save_for_backward(saved, grad)
        return self._finish(total, row_loss, float(N))

    def _backward(self, s, scale, rs, g):
        _C.multi_margin_backward(s["x"], s["t"], s["w"], self.p, self.margin, scale, rs, g)


# ------------------------------------------------------------------ MSE --

class MSELoss(_Loss):
    """Mean squared error, as ``torch.nn.MSELoss``: input and target float32
    of the same (any) shape; 'mean' averages over all elements, 'none'
    returns the element-wise squared errors (shape of input)."""

    def __init__(self, *, reduction="mean"):
        super().__init__(reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"

    def forward(self, input, target):
        who = self._who
        self._start()
        x = _input_nd(who, input)
        y = _same_shape_target(who, target, x.shape)
        n = x.size
        scale = 1.0 / n if self.reduction == "mean" else 1.0
        grad = self._buffer(x.shape) if self._fuse() else None
        eloss = np.empty(x.shape, dtype=np.float32) if self.reduction == "none" else None
        total = _C.mse_forward(x, y, scale, grad, eloss)
        if not math.isfinite(total):
            _check_finite(who, "input", x)
            _check_finite(who, "target", y)
            _not_finite(who, total)
        saved = {"x": x, "y": y, "scale": scale, "loss_shape": x.shape,
                 "grad_shape": x.shape, "reduction": self.reduction}
        self.save_for_backward(saved, grad)
        if self.reduction == "none":
            return eloss
        return self._finish(total, None, float(n))

    def _backward(self, s, scale, es, g):
        _C.mse_backward(s["x"], s["y"], scale, es, g)


# ----------------------------------------------------- BCE with logits --

class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable step, as
    ``torch.nn.BCEWithLogitsLoss``: input logits and float32 targets in [0, 1]
    of the same shape; loss = max(x,0) - x*y + log1p(exp(-|x|)) per element.
    ``pos_weight`` (length input.shape[-1], or 1) weighs the positive term:
    (1-y) x + (1 + (pos_weight-1) y) softplus(-x). 'mean' averages over all
    elements. (PyTorch's per-element ``weight`` is not supported.)"""

    def __init__(self, *, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self._class_buffer("pos_weight", pos_weight)

    def extra_repr(self):
        s = f"reduction={self.reduction!r}"
        if self.pos_weight is not None:
            s += f", pos_weight=<{self.pos_weight.shape[0]}>"
        return s

    def forward(self, input, target):
        who = self._who
        self._start()
        x = _input_nd(who, input)
        y = _same_shape_target(who, target, x.shape)
        pw = self.pos_weight
        if pw is not None:
            C = x.shape[-1] if x.ndim else 1
            if pw.shape[0] == 1 and C != 1:
                pw = np.full(C, pw[0], dtype=np.float32)
            elif pw.shape[0] != C:
                raise ValueError(f"{who}: pos_weight has {pw.shape[0]} entries but the last axis "
                                 f"of input has {C} (input shape {x.shape})")
        n = x.size
        scale = 1.0 / n if self.reduction == "mean" else 1.0
        grad = self._buffer(x.shape) if self._fuse() else None
        eloss = np.empty(x.shape, dtype=np.float32) if self.reduction == "none" else None
        total = _C.bce_logits_forward(x, y, pw, scale, grad, eloss)
        if not math.isfinite(total):
            _check_finite(who, "input", x)
            _check_finite(who, "target", y)
            if np.any((y < 0) | (y > 1)):
                raise ValueError(f"{who}: target must be in [0, 1], got values in "
                                 f"[{float(y.min())}, {float(y.max())}]")
            _not_finite(who, total)
        saved = {"x": x, "y": y, "pw": pw, "scale": scale, "loss_shape": x.shape,
                 "grad_shape": x.shape, "reduction": self.reduction}
        self.save_for_backward(saved, grad)
        if self.reduction == "none":
            return eloss
        return self._finish(total, None, float(n))

    def _backward(self, s, scale, es, g):
        _C.bce_logits_backward(s["x"], s["y"], s["pw"], scale, es, g)
