"""Argument validation shared by every op and layer: the one place that turns
user input into arrays the C kernels may trust, or raises an error naming the
caller, the argument, what it got and what it wanted."""
import math
import numbers

import numpy as np

F32 = np.dtype(np.float32)
INT_MAX = _INT_MAX = 2**31 - 1                   # the kernels' int dimensions
F32_MAX = _F32_MAX = float(np.finfo(np.float32).max)


def real(who, name, v, finite=True, lo=None, hi=None):
    """A real hyper-parameter as a Python float the kernels can take as
    float32. Never NaN; with ``finite`` it must also fit float32, otherwise
    +-inf is allowed (and values beyond float32 range become +-inf).
    ``lo``/``hi``: inclusive bounds, checked when given."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {type(v).__name__} {v!r}")
    v = float(v)
    if finite and not abs(v) <= _F32_MAX:
        raise ValueError(f"{who}: {name} must be finite (within float32 range), got {v}")
    if math.isnan(v):
        raise ValueError(f"{who}: {name} must not be NaN")
    if abs(v) > _F32_MAX:
        v = math.copysign(math.inf, v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"in [{lo}, {hi}]" if lo is not None and hi is not None else (
            f">= {lo}" if lo is not None else f"<= {hi}")
        raise ValueError(f"{who}: {name} must be {rng}, got {v}")
    return v


def int_in(who, name, v, lo, hi=None):
    """An integer (not a bool) in [lo, hi] (hi None: no upper bound):
    TypeError for a non-integer, ValueError out of range."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an integer, got {type(v).__name__} {v!r}")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{who}: {name} must be {rng}, got {v}")
    return v


def positive_int(who, name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {v!r}")
    return int(v)


def is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def int_arg(who, name, v, lo):
    """An integer >= lo (not a bool); ValueError otherwise."""
    if not is_int(v) or v < lo:
        want = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise ValueError(f"{who}: {name} must be {want}, got {v!r}")
    return int(v)


def _range_text(lo, hi, lo_open, hi_open):
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'<' if hi_open else '<='} {hi}"


def real_arg(who, name, v, lo=None, hi=None, lo_open=False, hi_open=False):
    """A finite real within the given (open or closed) bounds; ValueError
    naming the caller and argument otherwise (the schedulers' convention)."""
    ok = is_real(v) and math.isfinite(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        raise ValueError(f"{who}: {name} must be a finite number "
                         f"{_range_text(lo, hi, lo_open, hi_open)}, got {v!r}")
    return float(v)


def bool_arg(who, name, v):
    if not isinstance(v, (bool, int)) or v not in (0, 1):
        raise ValueError(f"{who}: {name} must be True or False, got {v!r}")
    return bool(v)


def as_f32(x, who, name, ndim=None):
    """x as a float32 ndarray whose last dimension has unit stride.

    Arrays that are float32 already and laid out usably are returned as is
    (slices and .T views included); lossless conversions (smaller ints, bool,
    float16, non-native byte order) and layout fixes copy; float64 and other
    lossy types raise TypeError rather than silently losing precision."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x, dtype=F32)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{who}: {name} must be a float32 array, got {type(x).__name__}: {e}") from None
    if x.dtype != F32:
        if x.dtype.kind not in "biuf" or not np.can_cast(x.dtype, F32, casting="safe"):
            raise TypeError(f"{who}: {name} must be float32, got dtype {x.dtype}"
                            + (f" (convert with {name}.astype(np.float32))" if x.dtype.kind in "iuf" else ""))
        x = x.astype(F32)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{who}: {name} must be {ndim}-D, got shape {x.shape}")
    if x.ndim >= 1 and not _rows_usable(x):
        x = np.ascontiguousarray(x)
    if any(d > _INT_MAX for d in x.shape):
        raise ValueError(f"{who}: {name} has a dimension over 2**31-1: shape {x.shape}")
    return x


def is_plain_f32(x):
    """Fast path: a C-contiguous float32 ndarray needs no checks."""
    return type(x) is np.ndarray and x.dtype == F32 and x.flags.c_contiguous


def contig(who, x, name="x"):
    """x as a C-contiguous float32 array of any shape (0-d stays 0-d)."""
    if type(x) is np.ndarray and x.dtype == F32 and x.flags.c_contiguous:
        return x
    x = as_f32(x, who, name)
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def grad_like(who, grad_out, shape):
    """grad_out as a C-contiguous float32 array of the forward output's shape."""
    if not (type(grad_out) is np.ndarray and grad_out.dtype == F32
            and grad_out.flags.c_contiguous):
        grad_out = contig(who, grad_out, "grad_out")
    if grad_out.shape != shape:
        raise ValueError(f"{who}: grad_out has shape {grad_out.shape}, expected {shape} "
                         f"(the shape of the forward output)")
    return grad_out


def _rows_usable(x):
    """Unit-stride last axis, float-aligned strides (outer axes may be strided)."""
    if not x.flags.aligned:
        return False
    if x.shape[-1] > 1 and x.strides[-1] != 4:
        return False
    if x.ndim == 2:
        return x.strides[0] % 4 == 0
    return x.flags.c_contiguous


def check_out(out, who, shape):
    """A caller-supplied output: float32, right shape, writeable, rows that do
    not overlap (so writes cannot alias each other)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{who}: out must be a numpy array, got {type(out).__name__}")
    if out.dtype != F32:
        raise TypeError(f"{who}: out must be float32, got dtype {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{who}: out has shape {out.shape}, expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{who}: out is read-only")
    if out.size and not (out.flags.aligned and (out.shape[-1] == 1 or out.strides[-1] == 4)
                         and (out.ndim < 2 or out.shape[0] == 1
                              or out.strides[0] >= 4 * out.shape[-1] and out.strides[0] % 4 == 0)):
        raise ValueError(f"{who}: out must have a unit-stride last axis and non-overlapping, "
                         f"increasing rows; got strides {out.strides}")
    return out


def int_tuple(who, name, v, n, lo):
    """An integer or a sequence of n integers, each >= lo, as an n-tuple
    (kernel sizes, strides, paddings, dilations); ValueError otherwise."""
    vals = (v,) * n if is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else None
    if vals is None or len(vals) != n or not all(is_int(e) and e >= lo for e in vals):
        want = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise ValueError(f"{who}: {name} must be {want} or a tuple of {n} such, got {v!r}")
    return tuple(int(e) for e in vals)
