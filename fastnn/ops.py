"""Functional API over the C kernels: numpy arrays in, numpy arrays out."""
import numpy as np

from ._check import as_f32, check_out
from ._ext import _C

__all__ = ["matmul"]


def matmul(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None,
           bias=None, relu=False):
    """C = alpha * op(a) @ op(b) + beta * C  [+ bias]  [then ReLU], in float32.

    op(x) is x, or x.T when trans_x is set (no copy either way: any 2-D float32
    array whose last axis has unit stride is used in place, so slices and .T
    views cost nothing). ``beta`` needs ``out`` (the C read and overwritten);
    with beta == 0 the old contents of ``out`` are ignored, NaN included.
    ``bias`` of shape (N,) or (1, N) is added to every row, of shape (M, 1) to
    every column; ``relu`` clamps the result at 0. Both are fused into the
    kernel's store. Returns ``out`` (or a new (M, N) array)."""
    who = "matmul"
    a = as_f32(a, who, "a", ndim=2)
    b = as_f32(b, who, "b", ndim=2)
    M, Ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if Ka != Kb:
        raise ValueError(
            f"{who}: inner dimensions differ: op(a) is ({M}, {Ka}) and op(b) is ({Kb}, {N})"
            f" (a.shape={a.shape}, trans_a={bool(trans_a)}, b.shape={b.shape}, trans_b={bool(trans_b)})")
    alpha = _finite_scalar(who, "alpha", alpha)
    beta = _finite_scalar(who, "beta", beta)
    if out is None:
        if beta != 0.0:
            raise ValueError(f"{who}: beta={beta} needs out= (the C that beta scales)")
        out = np.empty((M, N), dtype=np.float32)
    else:
        check_out(out, who, (M, N))
        if out.size and (np.may_share_memory(out, a) or np.may_share_memory(out, b)):
            raise ValueError(f"{who}: out must not overlap a or b")
    mode = 0
    if bias is not None:
        bias = as_f32(bias, who, "bias")
        if bias.shape in ((N,), (1, N)):
            mode = 1
        elif bias.shape == (M, 1):
            mode = 2
        else:
            raise ValueError(f"{who}: bias has shape {bias.shape}, expected ({N},) or (1, {N}) "
                             f"for a per-column bias or ({M}, 1) for a per-row bias")
        bias = np.ascontiguousarray(bias)
    _C.sgemm(bool(trans_a), bool(trans_b), M, N, Ka, alpha, a, b, beta, out, bias, mode,
             bool(relu))
    return out


def _finite_scalar(who, name, v):
    if type(v) is float and v - v == 0.0:     # fast path: a finite Python float
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: {name} must be a real number, got {type(v).__name__}") from None
    if not np.isfinite(f):
        raise ValueError(f"{who}: {name} must be finite, got {f}")
    return f
