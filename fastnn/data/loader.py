"""DataLoader: shuffled mini-batches over in-memory numpy arrays.

Batches are assembled by a C kernel (csrc/data.c) that copies the selected
rows straight from the data set into a fresh batch array: the data set itself
is never copied or permuted per epoch, only an index permutation is drawn."""
import numpy as np

from .._check import as_f32, int_in
from .._ext import _C
from .. import runtime

__all__ = ["DataLoader"]

_WHO = "DataLoader"


def _check_seed(who, seed):
    if seed is None:
        return None
    return int_in(who, "seed", seed, 0)


def _rows_layout(a):
    """a with each row (a[i]) contiguous in memory and a byte stride for axis 0
    (a view when possible, else one C-contiguous copy)."""
    ok = a.flags.aligned and (a.ndim == 1 or a.shape[0] == 0 or a[:1].flags.c_contiguous)
    return a if ok else np.ascontiguousarray(a)


def _as_targets(who, y, n):
    """Labels (integers -> int64) or float targets (float32), length n."""
    if not isinstance(y, np.ndarray):
        y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"{who}: y must have one entry per sample, got a scalar")
    if y.dtype.kind in "iu":
        if not np.can_cast(y.dtype, np.int64, casting="safe"):
            raise TypeError(f"{who}: y has dtype {y.dtype}, which does not fit int64 labels")
        y = y.astype(np.int64, copy=False)
    elif y.dtype.kind == "b":
        y = y.astype(np.int64)
    elif y.dtype.kind == "f":
        y = as_f32(y, who, "y")
    else:
        raise TypeError(f"{who}: y must hold integer labels or float32 targets, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(f"{who}: x and y differ in length: x has {n} samples, "
                         f"y has {y.shape[0]} (y.shape={y.shape})")
    return _rows_layout(y)


class DataLoader:
    """Iterate over ``x`` (and ``y``) in mini-batches.

    ``x``: float32 array of shape (N, ...) -- (N, D) features, (N, C, H, W)
    images, anything with samples on axis 0. Lossless dtypes (uint8, int16,
    float16, bool, ...) are converted to float32 once, here; float64 raises
    TypeError (convert with ``x.astype(np.float32)``) rather than silently
    halving precision or copying a large array.
    ``y``: optional (N,) integer labels (yielded as int64) or (N, k) float
    targets (float32; float64 raises as for x).

    Each ``iter()`` is one epoch: with ``shuffle`` a new permutation is drawn
    (from a generator seeded by ``seed``, or from fastnn's global generator,
    governed by ``fastnn.manual_seed``, when ``seed`` is None). ``drop_last``
    drops a final short batch. ``len(loader)`` is the number of batches.

    Every batch is a fresh array (``np.empty`` then the C gather), so it is
    safe to keep references to batches; the data set is never copied per
    epoch.

    ``transform``: optional callable applied to every gathered x batch as it
    is yielded (``xb = transform(xb)``; y is untouched), e.g. a
    ``fastnn.data.augment`` transform. It runs on every iteration, so each
    epoch sees new random draws; use a loader without a transform for
    evaluation. It must return an array with the batch's number of samples.
    """

    def __init__(self, x, y=None, batch_size=1, shuffle=True, drop_last=False, seed=None,
                 transform=None):
        if (isinstance(x, tuple) and y is None and len(x) == 2
                and all(isinstance(a, np.ndarray) for a in x)):
            raise TypeError(f"{_WHO}: got one (x, y) tuple; pass the arrays as two arguments, "
                            f"DataLoader(x, y, batch_size=..., shuffle=...) -- there is no "
                            f"TensorDataset wrapper in fastnn (got arrays of shapes "
                            f"{x[0].shape} and {x[1].shape})")
        x = as_f32(x, _WHO, "x")
        if x.ndim == 0:
            raise ValueError(f"{_WHO}: x must have a sample axis (shape (N, ...)), got a scalar")
        self.x = _rows_layout(x)
        n = self.x.shape[0]
        self.y = None if y is None else _as_targets(_WHO, y, n)
        self.batch_size = int_in(_WHO, "batch_size", batch_size, 1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = _check_seed(_WHO, seed)
        if transform is not None and not callable(transform):
            raise TypeError(f"{_WHO}: transform must be callable (e.g. a fastnn.data.augment "
                            f"transform) or None, got {type(transform).__name__}")
        self.transform = transform
        self._rng = (np.random.Generator(np.random.Philox(self.seed))
                     if self.seed is not None else None)
        self._x_row_bytes = self.x.itemsize * int(np.prod(self.x.shape[1:], dtype=np.int64))
        if self.y is not None:
            self._y_row_bytes = self.y.itemsize * int(np.prod(self.y.shape[1:], dtype=np.int64))

    @property
    def num_samples(self):
        return self.x.shape[0]

    def __len__(self):
        n, b = self.x.shape[0], self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _order(self):
        n = self.x.shape[0]
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = self._rng if self._rng is not None else runtime.generator()
        return rng.permutation(n).astype(np.int64, copy=False)

    def _gather(self, a, row_bytes, idx):
        out = np.empty((idx.shape[0],) + a.shape[1:], dtype=a.dtype)
        if idx.shape[0] and row_bytes:
            _C.gather_rows(a, idx, out, row_bytes)
        return out

    def __iter__(self):
        order = self._order()
        x, y, b = self.x, self.y, self.batch_size
        for k in range(len(self)):
            idx = order[k * b:(k + 1) * b]
            xb = self._gather(x, self._x_row_bytes, idx)
            if self.transform is not None:
                xb = self._transformed(xb)
            if y is None:
                yield xb
            else:
                yield xb, self._gather(y, self._y_row_bytes, idx)

    def _transformed(self, xb):
        out = self.transform(xb)
        if not isinstance(out, np.ndarray) or out.ndim == 0 or out.shape[0] != xb.shape[0]:
            got = (f"shape {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__)
            raise ValueError(f"{_WHO}: transform must return an array with the batch's "
                             f"{xb.shape[0]} samples on axis 0, got {got}")
        return out

    def __repr__(self):
        ys = "None" if self.y is None else f"{self.y.shape} {self.y.dtype}"
        tr = "" if self.transform is None else f", transform={self.transform!r}"
        return (f"DataLoader(x={self.x.shape} {self.x.dtype}, y={ys}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}{tr})")
