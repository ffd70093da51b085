"""Functional API over the C kernels: numpy arrays in, numpy arrays out."""
import numpy as np

from ._check import F32_MAX as _F32_MAX, as_f32, check_out
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
    if (bias is None and out is not None and not relu
            and _C.sgemm_plain(a, b, trans_a, trans_b, alpha, beta, out)):
        return out                      # the common case, checked in C
    who = "matmul"
    a, trans_a, flip_a = _rows_view(a, trans_a)
    b, trans_b, flip_b = _rows_view(b, trans_b)
    a = as_f32(a, who, "a", ndim=2)
    b = as_f32(b, who, "b", ndim=2)
    M, Ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if Ka != Kb:
        # shapes and flags as the caller passed them
        sa, ta = (a.shape[::-1], not trans_a) if flip_a else (a.shape, bool(trans_a))
        sb, tb = (b.shape[::-1], not trans_b) if flip_b else (b.shape, bool(trans_b))
        raise ValueError(
            f"{who}: inner dimensions differ: op(a) is ({M}, {Ka}) and op(b) is ({Kb}, {N})"
            f" (a.shape={sa}, trans_a={ta}, b.shape={sb}, trans_b={tb})")
    alpha = _finite_scalar(who, "alpha", alpha)
    beta = _finite_scalar(who, "beta", beta)
    out_given = out is not None
    if out is None:
        if beta != 0.0:
            raise ValueError(f"{who}: beta={beta} needs out= (the C that beta scales)")
        out = np.empty((M, N), dtype=np.float32)
    else:
        check_out(out, who, (M, N))
        if out.size and (_overlap(out, a) or _overlap(out, b)):
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
        if out_given and np.may_share_memory(bias, out):
            bias = bias.copy()          # the kernel writes out while it reads bias
    _C.sgemm(bool(trans_a), bool(trans_b), M, N, Ka, alpha, a, b, beta, out, bias, mode,
             bool(relu))
    return out


_TooHardError = getattr(np, "exceptions", np).TooHardError     # numpy < 1.25: np.TooHardError


def _rows_view(x, trans):
    """A 2-D float32 array whose columns, not rows, are contiguous (a .T view
    of a row-major array) is passed as its transpose with the trans flag
    flipped, so ``a @ w.T`` needs no copy. Returns (x, trans, flipped)."""
    if (isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype == np.float32
            and x.shape[1] > 1 and x.strides[1] != 4 and x.strides[0] == 4):
        return x.T, not trans, True
    return x, trans, False


def _overlap(x, y):
    """True if x and y share an element. may_share_memory only compares
    address ranges, which interleaved column windows of one buffer share."""
    if not np.may_share_memory(x, y):
        return False
    try:
        return np.shares_memory(x, y, max_work=10000)
    except _TooHardError:
        return True


def _finite_scalar(who, name, v):
    """v as a Python float that is finite in float32 (the kernels' type)."""
    if type(v) is float and -_F32_MAX <= v <= _F32_MAX:   # fast path
        return v
    try:
        if isinstance(v, (str, bytes)):
            raise TypeError
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: {name} must be a real number, got {type(v).__name__}") from None
    if not -_F32_MAX <= f <= _F32_MAX:
        raise ValueError(f"{who}: {name} must be finite in float32 (|{name}| <= {_F32_MAX:.8g}), "
                         f"got {f}")
    return f
