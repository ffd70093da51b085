"""Preprocessing: per-feature standardisation and a train/test split."""
import math

import numpy as np

from .. import runtime

__all__ = ["Standardizer", "train_test_split"]

# Rows per chunk so a float64 temporary stays near 8 MB whatever the width.
_CHUNK_ELEMS = 1 << 20


def _as_real(x, who, name="x"):
    """x as a numeric ndarray with a sample axis (any real dtype, no copy)."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{who}: {name} must be a numeric array, got {type(x).__name__}: {e}") from None
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{who}: {name} must be a real numeric array, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{who}: {name} must have a sample axis (shape (N, ...)), got a scalar")
    return x


def _chunks(n, feat):
    step = max(1, _CHUNK_ELEMS // max(1, feat))
    for i in range(0, n, step):
        yield slice(i, min(n, i + step))


class Standardizer:
    """Per-feature standardisation: ``(x - mean) / (std + eps)``.

    ``fit(x)`` takes x of shape (N, ...) and computes, in float64 over axis 0,
    the mean and the (population, ddof=0) standard deviation of every feature,
    where each position of the trailing dimensions is one feature (so for
    images (N, C, H, W) every pixel of every channel has its own statistics).
    ``transform`` returns float32. A feature with zero variance carries no
    information and maps to 0. Inputs of any real dtype are accepted
    (uint8 pixels, float64 tables, ...). ``state_dict()`` holds ``mean`` and
    ``std`` (float64 arrays of the feature shape)."""

    def __init__(self, eps=1e-8):
        try:
            e = float(eps)
        except (TypeError, ValueError):
            raise TypeError(f"Standardizer: eps must be a real number, got {type(eps).__name__}") from None
        if not (math.isfinite(e) and e >= 0.0):
            raise ValueError(f"Standardizer: eps must be finite and >= 0, got {eps!r}")
        self.eps = e
        self.mean = None
        self.std = None
        self._scale = None

    @property
    def feature_shape(self):
        """Shape of one sample (x.shape[1:]) seen by fit, or None before fit."""
        return None if self.mean is None else self.mean.shape

    def _set(self, mean, std):
        self.mean = mean
        self.std = std
        denom = std + self.eps
        scale = np.zeros_like(std)
        np.divide(1.0, denom, out=scale, where=std > 0)
        self._scale = scale

    def fit(self, x):
        who = "Standardizer.fit"
        x = _as_real(x, who)
        n = x.shape[0]
        if n == 0:
            raise ValueError(f"{who}: x has no samples (shape {x.shape})")
        fshape = x.shape[1:]
        d = int(np.prod(fshape, dtype=np.int64))
        total = np.zeros(d, dtype=np.float64)
        for sl in _chunks(n, d):
            total += x[sl].reshape(-1, d).sum(axis=0, dtype=np.float64)
        mean = total / n
        sq = np.zeros(d, dtype=np.float64)
        for sl in _chunks(n, d):
            dev = x[sl].reshape(-1, d) - mean
            sq += np.einsum("ij,ij->j", dev, dev)
        std = np.sqrt(sq / n)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError(f"{who}: x contains NaN or infinity")
        self._set(mean.reshape(fshape), std.reshape(fshape))
        return self

    def _check_fitted(self, who, x):
        if self.mean is None:
            raise RuntimeError(f"{who}: call fit() (or load_state_dict()) before transforming")
        x = _as_real(x, who)
        if x.shape[1:] != self.mean.shape:
            raise ValueError(f"{who}: x has shape {x.shape}, i.e. {x.shape[1:]} features per sample; "
                             f"fitted on samples of shape {self.mean.shape}")
        return x

    def transform(self, x):
        """float32 (x - mean) / (std + eps); zero-variance features give 0."""
        x = self._check_fitted("Standardizer.transform", x)
        out = np.empty(x.shape, dtype=np.float32)
        d = self.mean.size
        for sl in _chunks(x.shape[0], d):
            out[sl] = (x[sl] - self.mean) * self._scale
        return out

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def inverse_transform(self, z):
        """float32 z * (std + eps) + mean (zero-variance features give mean)."""
        z = self._check_fitted("Standardizer.inverse_transform", z)
        out = np.empty(z.shape, dtype=np.float32)
        d = self.mean.size
        denom = self.std + self.eps
        for sl in _chunks(z.shape[0], d):
            out[sl] = z[sl] * denom + self.mean
        return out

    def state_dict(self):
        if self.mean is None:
            raise RuntimeError("Standardizer.state_dict: not fitted yet")
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    def load_state_dict(self, state_dict):
        who = "Standardizer.load_state_dict"
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"{who}: state_dict must be a mapping, got {type(state_dict).__name__}")
        keys = set(state_dict.keys())
        if keys != {"mean", "std"}:
            raise KeyError(f"{who}: expected keys ['mean', 'std'], got {sorted(map(str, keys))}")
        arrs = {}
        for k in ("mean", "std"):
            a = np.asarray(state_dict[k])
            if a.dtype.kind not in "iuf":
                raise TypeError(f"{who}: {k!r} must be a real numeric array, got dtype {a.dtype}")
            a = a.astype(np.float64)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{who}: {k!r} contains NaN or infinity")
            arrs[k] = a
        if arrs["mean"].shape != arrs["std"].shape:
            raise ValueError(f"{who}: mean has shape {arrs['mean'].shape} but std has shape {arrs['std'].shape}")
        if np.any(arrs["std"] < 0):
            raise ValueError(f"{who}: std has negative entries")
        self._set(arrs["mean"], arrs["std"])

    def __repr__(self):
        fs = "unfitted" if self.mean is None else f"features={self.mean.shape}"
        return f"Standardizer(eps={self.eps!r}, {fs})"


def _split_counts(counts, n_test):
    """Per-class test counts proportional to counts, summing to n_test
    (largest remainders, ties to the earlier class)."""
    quota = counts * (n_test / counts.sum())
    base = np.floor(quota).astype(np.int64)
    rest = n_test - int(base.sum())
    if rest:
        order = np.argsort(-(quota - base), kind="stable")
        base[order[:rest]] += 1
    return base


def train_test_split(x, y=None, test_size=0.2, seed=0, stratify=False):
    """Split samples into a shuffled train and test part.

    ``test_size``: a fraction in (0, 1) (the test part gets ceil(test_size*N)
    samples) or a sample count in [1, N-1]. ``seed``: non-negative int, or
    None to draw from fastnn's global generator (``fastnn.manual_seed``).
    ``stratify``: keep the class proportions of the labels ``y`` in both parts
    (each class's test share is within one sample of test_size times its
    count). Returns ``x_train, x_test, y_train, y_test``, or ``x_train,
    x_test`` when y is None. Copies of the selected rows, dtypes kept."""
    who = "train_test_split"
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{who}: x must have a sample axis (shape (N, ...)), got a scalar")
    n = x.shape[0]
    if y is not None:
        if not isinstance(y, np.ndarray):
            y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"{who}: x and y differ in length: x has shape {x.shape}, y has shape {y.shape}")
    if n < 2:
        raise ValueError(f"{who}: need at least 2 samples to split, x has shape {x.shape}")
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"{who}: test_size must be a fraction or a count, got {type(test_size).__name__}")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
        if not 1 <= n_test <= n - 1:
            raise ValueError(f"{who}: test_size={n_test} samples must be in [1, {n - 1}] for {n} samples")
    else:
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"{who}: test_size must be a fraction in (0, 1), got {test_size}")
        n_test = math.ceil(float(test_size) * n)
        if n_test > n - 1:
            raise ValueError(f"{who}: test_size={test_size} leaves no training samples out of {n}")
    if seed is None:
        rng = runtime.generator()
    else:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{who}: seed must be a non-negative integer or None, got {seed!r}")
        rng = np.random.Generator(np.random.Philox(int(seed)))
    if stratify:
        if y is None:
            raise ValueError(f"{who}: stratify=True needs the labels y")
        if y.ndim != 1:
            raise ValueError(f"{who}: stratify=True needs 1-D class labels y, got shape {y.shape}")
        _, inv = np.unique(y, return_inverse=True)
        inv = inv.reshape(-1)
        counts = np.bincount(inv)
        take = _split_counts(counts, n_test)
        by_class = np.argsort(inv, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        test_parts, train_parts = [], []
        for c in range(counts.size):
            members = rng.permutation(by_class[starts[c]:starts[c] + counts[c]])
            test_parts.append(members[:take[c]])
            train_parts.append(members[take[c]:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    else:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    if y is None:
        return x[train_idx], x[test_idx]
    return x[train_idx], x[test_idx], y[train_idx], y[test_idx]
