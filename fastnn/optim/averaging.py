"""Weight averaging: the Polyak (arithmetic) mean and the exponential moving
average of the iterates a training run visits.

Usage: build the averager over the parameters the optimizer updates, call
``update()`` after every ``optimizer.step()``, and evaluate with the averaged
weights inside ``with avg.averaged(): ...``, which puts them into the
Parameters and, on exit, restores the trained weights bit for bit.

The averages are kept in float64 (one flat buffer, 8 bytes per weight), so the
small increments of a long run or a decay close to 1 are not lost to float32
rounding; they are rounded to float32 (to nearest) only when written into the
Parameters. Each update is three in-place numpy passes per parameter over a
preallocated float64 scratch row: no allocation per step.

Only the given Parameters are averaged. Buffers such as batch-norm running
statistics are not: re-estimate them with the averaged weights (a pass over
some training data in train mode) if the model has them.
"""
import contextlib
import math
import numbers

import numpy as np

from ..nn.module import Module, Parameter

__all__ = ["PolyakAveraging", "EMA"]


class _Averager:
    """Shared machinery: the float64 averages, swap/restore, copy_to, state."""

    def __init__(self, params, who):
        self._who = who
        if isinstance(params, Module):
            params = params.parameters()
        if isinstance(params, Parameter):
            raise TypeError(f"{who}: params must be a list of Parameters (e.g. "
                            f"model.parameters()), got a single Parameter")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{who}: params must be an iterable of Parameters, "
                            f"got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{who}: params is empty")
        seen = set()
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{who}: params[{i}] must be a fastnn.nn.Parameter, "
                                f"got {type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"{who}: params[{i}] appears more than once")
            seen.add(id(p))
            self._check_param(i, p)
        self.params = params
        sizes = [p.data.size for p in params]
        self._flat = np.empty(sum(sizes), dtype=np.float64)
        self._avg = []
        off = 0
        for p, n in zip(params, sizes):
            a = self._flat[off:off + n].reshape(p.data.shape)
            np.copyto(a, p.data)
            self._avg.append(a)
            off += n
        scratch = np.empty(max(sizes), dtype=np.float64)
        self._tmp = [scratch[:n].reshape(p.data.shape) for p, n in zip(params, sizes)]
        self._backup = None
        self._swapped = False
        self.num_updates = 0

    def _check_param(self, i, p):
        d = p.data
        if not isinstance(d, np.ndarray) or d.dtype != np.float32 or not d.flags.c_contiguous:
            raise TypeError(f"{self._who}: params[{i}].data must be a C-contiguous float32 array")

    def _blend(self, scale, divide):
        """avg += (w - avg) / scale  (divide) or  avg += (w - avg) * scale."""
        for p, a, tmp in zip(self.params, self._avg, self._tmp):
            np.subtract(p.data, a, out=tmp)
            if divide:
                tmp /= scale
            else:
                tmp *= scale
            a += tmp

    def _check_not_swapped(self, what):
        if self._swapped:
            raise RuntimeError(f"{self._who}.{what}: the averaged weights are swapped in; "
                               f"call swap() (or leave the averaged() block) first")

    def _check_ready(self, what):
        pass

    # -- using the average -------------------------------------------------
    @property
    def swapped(self):
        """True while the averaged weights are in the Parameters."""
        return self._swapped

    def swap(self):
        """Toggle: the first call saves the trained weights and writes the
        averages (rounded to float32) into the Parameters, in place; the next
        call puts the saved trained weights back exactly. ``update()`` refuses
        to run in between."""
        if self._swapped:
            for p, b in zip(self.params, self._backup):
                np.copyto(p.data, b)
            self._swapped = False
            return
        self._check_ready("swap")
        if self._backup is None:
            self._backup = [np.empty_like(p.data) for p in self.params]
        for p, a, b in zip(self.params, self._avg, self._backup):
            np.copyto(b, p.data)
            np.copyto(p.data, a, casting="same_kind")
        self._swapped = True

    @contextlib.contextmanager
    def averaged(self):
        """``with avg.averaged(): evaluate(model)`` — the averaged weights
        inside the block, the trained weights restored exactly on exit (also
        when the block raises)."""
        self._check_not_swapped("averaged")
        self.swap()
        try:
            yield self
        finally:
            self.swap()

    def copy_to(self, params=None):
        """Write the averaged weights (rounded to float32) into ``params`` (a
        list of Parameters or a Module, same shapes in the same order; default:
        the tracked ones, which makes the average permanent)."""
        self._check_ready("copy_to")
        if params is None:
            self._check_not_swapped("copy_to")
            targets = self.params
        else:
            if isinstance(params, Module):
                params = params.parameters()
            targets = list(params)
            if len(targets) != len(self._avg):
                raise ValueError(f"{self._who}.copy_to: got {len(targets)} parameters, "
                                 f"the averager tracks {len(self._avg)}")
            for i, (p, a) in enumerate(zip(targets, self._avg)):
                if not isinstance(p, Parameter):
                    raise TypeError(f"{self._who}.copy_to: params[{i}] must be a Parameter, "
                                    f"got {type(p).__name__}")
                self._check_param(i, p)
                if p.data.shape != a.shape:
                    raise ValueError(f"{self._who}.copy_to: params[{i}] has shape "
                                     f"{p.data.shape}, the average has {a.shape}")
        for p, a in zip(targets, self._avg):
            np.copyto(p.data, a, casting="same_kind")

    def averages(self):
        """Copies of the float64 averages, one array per parameter."""
        return [a.copy() for a in self._avg]

    # -- state -------------------------------------------------------------
    _hyper = ()

    def state_dict(self):
        """Counters, hyper-parameters and copies of the float64 averages."""
        sd = {k: getattr(self, k) for k in self._hyper + self._counters}
        sd["averages"] = self.averages()
        return sd

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()``: every value is checked before any is
        written. Not allowed while the averaged weights are swapped in."""
        who = f"{self._who}.load_state_dict"
        self._check_not_swapped("load_state_dict")
        if not isinstance(state_dict, dict):
            raise TypeError(f"{who}: expected a dict, got {type(state_dict).__name__}")
        keys = self._hyper + self._counters + ("averages",)
        missing = [k for k in keys if k not in state_dict]
        unexpected = [k for k in state_dict if k not in keys]
        if missing or unexpected:
            raise KeyError(f"{who}: missing keys {missing}, unexpected keys {unexpected}")
        avgs = state_dict["averages"]
        if not isinstance(avgs, (list, tuple)) or len(avgs) != len(self._avg):
            raise ValueError(f"{who}: averages must be a list of {len(self._avg)} arrays")
        staged = []
        for i, (src, dst) in enumerate(zip(avgs, self._avg)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"{who}: averages[{i}] has shape {src.shape}, expected {dst.shape}")
            if src.dtype.kind not in "fiu":
                raise TypeError(f"{who}: averages[{i}] has non-numeric dtype {src.dtype}")
            if not np.all(np.isfinite(src)):
                raise ValueError(f"{who}: averages[{i}] contains NaN or infinity")
            staged.append((dst, src))
        values = self._check_hyper({k: state_dict[k] for k in self._hyper + self._counters}, who)
        for k, v in values.items():
            setattr(self, k, v)
        for dst, src in staged:
            np.copyto(dst, src, casting="unsafe")


def _count(who, name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise ValueError(f"{who}: {name} must be an integer >= 0, got {v!r}")
    return int(v)


class PolyakAveraging(_Averager):
    """The arithmetic mean of the iterates (Polyak-Ruppert averaging).

    Each ``update()`` counts one iterate. The first ``start_step`` are skipped;
    from then on, with k the number averaged so far, ``avg_k = avg_{k-1} +
    (w_k - avg_{k-1}) / k`` (avg_1 = w_1), in float64. Before the first
    averaged iterate there is no average: ``swap``, ``averaged`` and
    ``copy_to`` raise RuntimeError (``n_averaged`` tells)."""

    _hyper = ("start_step",)
    _counters = ("num_updates", "n_averaged")

    def __init__(self, params, start_step=0):
        super().__init__(params, "PolyakAveraging")
        self.start_step = _count("PolyakAveraging", "start_step", start_step)
        self.n_averaged = 0

    def _check_hyper(self, d, who):
        out = {k: _count(who, k, d[k]) for k in ("start_step", "num_updates", "n_averaged")}
        if out["n_averaged"] != max(0, out["num_updates"] - out["start_step"]):
            raise ValueError(f"{who}: n_averaged={out['n_averaged']} does not match "
                             f"num_updates={out['num_updates']} and start_step={out['start_step']}")
        return out

    def _check_ready(self, what):
        if self.n_averaged == 0:
            raise RuntimeError(f"PolyakAveraging.{what}: no iterate has been averaged yet "
                               f"(update() called {self.num_updates} times; averaging starts "
                               f"after start_step={self.start_step})")

    def update(self):
        """Fold in the current weights (call after each optimizer step)."""
        self._check_not_swapped("update")
        self.num_updates += 1
        if self.num_updates <= self.start_step:
            return
        self.n_averaged += 1
        if self.n_averaged == 1:
            for p, a in zip(self.params, self._avg):
                np.copyto(a, p.data)
        else:
            self._blend(float(self.n_averaged), divide=True)


class EMA(_Averager):
    """Exponential moving average of the weights.

    Starts from the weights at construction; each ``update()`` does
    ``avg = d*avg + (1-d)*w`` (computed as avg += (1-d)*(w-avg), in float64)
    with d = ``decay``, or with ``warmup=True`` d = min(decay, (1+t)/(10+t))
    where t is the number of updates including this one (torch-ema's rule),
    so early averages are not dominated by the initial weights."""

    _hyper = ("decay", "warmup")
    _counters = ("num_updates",)

    def __init__(self, params, decay=0.999, warmup=False):
        super().__init__(params, "EMA")
        d = self._check_hyper({"decay": decay, "warmup": warmup, "num_updates": 0}, "EMA")
        self.decay = d["decay"]
        self.warmup = d["warmup"]

    @staticmethod
    def _check_hyper(d, who):
        decay = d["decay"]
        if (isinstance(decay, bool) or not isinstance(decay, numbers.Real)
                or not math.isfinite(decay) or not 0.0 <= decay <= 1.0):
            raise ValueError(f"{who}: decay must be a number in [0, 1], got {decay!r}")
        if not isinstance(d["warmup"], (bool, np.bool_)):
            raise ValueError(f"{who}: warmup must be True or False, got {d['warmup']!r}")
        return {"decay": float(decay), "warmup": bool(d["warmup"]),
                "num_updates": _count(who, "num_updates", d["num_updates"])}

    def current_decay(self):
        """The decay the next ``update()`` will use."""
        if self.warmup:
            t = self.num_updates + 1
            return min(self.decay, (1.0 + t) / (10.0 + t))
        return self.decay

    def update(self):
        """Fold in the current weights (call after each optimizer step)."""
        self._check_not_swapped("update")
        d = self.current_decay()
        self.num_updates += 1
        self._blend(1.0 - d, divide=False)
