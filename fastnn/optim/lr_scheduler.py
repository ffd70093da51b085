"""Learning-rate schedules with PyTorch's names, arguments and step protocol.

An optimizer here is anything with ``param_groups``: a list of dicts, each
holding ``'lr'`` (and, for momentum cycling, ``'momentum'`` or ``'betas'``),
plus a ``defaults`` dict. A scheduler writes ``group['lr']`` in place.

The protocol is torch's: constructing a scheduler with ``last_epoch=-1`` stores
each group's current lr as ``group['initial_lr']`` (the *base lr*, unless the
key is already there) and performs the first step, to epoch 0; after that call
``step()`` once per epoch (once per batch for ``OneCycleLR``), *after*
``optimizer.step()``. ``get_last_lr()`` returns the lrs the last step wrote.

Every schedule except ``ReduceLROnPlateau`` is evaluated in closed form: the lr
of group ``i`` at epoch ``t`` is a function of ``base_lrs[i]`` and ``t`` only
(torch updates most of them recursively, multiplying the current lr; the values
agree to rounding). Consequences, all deliberate:
  * resuming from ``state_dict()`` reproduces the uninterrupted run exactly;
  * an lr changed by hand in ``param_groups`` is overwritten at the next step
    rather than carried along, and two schedulers stepping the same optimizer
    do not compose (combine them with ``SequentialLR`` or ``WarmupLR``).

``state_dict()`` holds plain Python values only (ints, floats, strings, bools,
lists, dicts). ``load_state_dict()`` validates them, restores the schedule and
also writes the restored lrs (and ``OneCycleLR`` momenta) into the optimizer's
groups, so the order of loading optimizer and scheduler does not matter.

Invalid arguments raise ``ValueError`` naming the scheduler and the argument.
"""
import bisect
import copy
import math
import types

from .._check import bool_arg as _bool_arg, int_arg as _int_arg, is_int as _is_int
from .._check import is_real as _is_real
from .._check import real_arg as _real_arg

__all__ = ["LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "LinearLR", "SequentialLR", "WarmupLR", "OneCycleLR",
           "ReduceLROnPlateau"]


# -- argument checks --------------------------------------------------------

def _per_group(who, name, v, n, check):
    """A scalar broadcast to n groups, or a list/tuple of n values; each checked."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"{who}: {name} has {len(v)} values but the optimizer has "
                             f"{n} param groups")
        return [check(f"{name}[{i}]", x) for i, x in enumerate(v)]
    x = check(name, v)
    return [x] * n


def _float_list(who, name, v, n, lo=0.0):
    if not isinstance(v, list) or len(v) != n:
        raise ValueError(f"{who}: {name} must be a list of {n} numbers, got {v!r}")
    return [_real_arg(who, f"{name}[{i}]", x, lo=lo) for i, x in enumerate(v)]


def _param_groups(who, optimizer):
    """The optimizer's param_groups, checked: a non-empty list of dicts with a
    finite, non-negative 'lr'."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise TypeError(f"{who}: optimizer must have param_groups, a non-empty list of dicts; "
                        f"got {type(optimizer).__name__}")
    for i, g in enumerate(groups):
        if "lr" not in g:
            raise ValueError(f"{who}: optimizer.param_groups[{i}] has no 'lr'")
        _real_arg(who, f"optimizer.param_groups[{i}]['lr']", g["lr"], lo=0.0)
    return groups


# -- the base class ---------------------------------------------------------

class LRScheduler:
    """Base of the closed-form schedules. A subclass implements ``_lr_at(t)``
    (the lrs at epoch ``t``, one per group) and ``_validate()`` (checks and
    normalises its hyper-parameters, named in ``_hyper``)."""

    _hyper = ()

    def __init__(self, optimizer, last_epoch=-1):
        who = type(self).__name__
        groups = _param_groups(who, optimizer)
        if not _is_int(last_epoch) or last_epoch < -1:
            raise ValueError(f"{who}: last_epoch must be an integer >= -1, got {last_epoch!r}")
        if last_epoch == -1:
            for g in groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(groups):
                if "initial_lr" not in g:
                    raise KeyError(f"{who}: optimizer.param_groups[{i}] has no 'initial_lr', which "
                                   f"resuming with last_epoch={last_epoch} needs; load the optimizer "
                                   f"state of the run being resumed first, or construct with "
                                   f"last_epoch=-1 and use load_state_dict")
        self.optimizer = optimizer
        self.base_lrs = [_real_arg(who, f"optimizer.param_groups[{i}]['initial_lr']",
                                   g["initial_lr"], lo=0.0) for i, g in enumerate(groups)]
        self.last_epoch = int(last_epoch)
        self._step_count = 0
        self._last_lr = [float(g["lr"]) for g in groups]
        self._validate()
        self.step()

    # -- the schedule ------------------------------------------------------
    def _validate(self):
        pass

    def _lr_at(self, t):
        raise NotImplementedError(f"{type(self).__name__}._lr_at")

    def _extra_at(self, t):
        """Other group values set at epoch t: None, or (key, values) with key
        'momentum' or 'betas' (the first beta)."""
        return None

    def _set_epoch(self, t, lrs):
        """Record that epoch t wrote lrs (composites also move their children)."""
        self.last_epoch = t
        self._last_lr = list(lrs)

    def get_lr(self):
        """The lrs of the current epoch (``last_epoch``), computed, not read."""
        return self._lr_at(self.last_epoch)

    def get_last_lr(self):
        """The lrs the last ``step()`` wrote into the optimizer (a copy)."""
        return list(self._last_lr)

    def _groups_checked(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__}: the optimizer has {len(groups)} param groups "
                             f"but the scheduler was created for {len(self.base_lrs)}")
        return groups

    def _write(self, lrs, extra):
        groups = self._groups_checked()
        for g, lr in zip(groups, lrs):
            g["lr"] = lr
        if extra is not None:
            key, vals = extra
            for g, m in zip(groups, vals):
                if key == "betas":
                    g["betas"] = (m, *tuple(g["betas"])[1:])
                else:
                    g["momentum"] = m

    def step(self):
        """Advance one epoch and write its lrs into the optimizer. Nothing is
        changed if the new epoch is invalid (e.g. past OneCycleLR's end)."""
        self._groups_checked()
        t = self.last_epoch + 1
        lrs = self._lr_at(t)
        extra = self._extra_at(t)
        self._step_count += 1
        self._set_epoch(t, lrs)
        self._write(lrs, extra)

    # -- state -------------------------------------------------------------
    def _state_keys(self):
        return ("last_epoch", "_step_count", "base_lrs", "_last_lr") + self._hyper

    def _state_extra(self):
        return {}

    def _load_state_extra(self, state_dict):
        pass

    def state_dict(self):
        """The schedule's position and hyper-parameters as plain Python values."""
        sd = {k: copy.deepcopy(getattr(self, k)) for k in self._state_keys()}
        sd.update(self._state_extra())
        return sd

    def _validate_state(self):
        who = type(self).__name__
        n = len(self.optimizer.param_groups)
        if not _is_int(self.last_epoch) or self.last_epoch < 0:
            raise ValueError(f"{who}: last_epoch must be an integer >= 0, got {self.last_epoch!r}")
        _int_arg(who, "_step_count", self._step_count, 0)
        self.base_lrs = _float_list(who, "base_lrs", self.base_lrs, n)
        self._last_lr = _float_list(who, "_last_lr", self._last_lr, n)
        self._validate()

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()``; checked completely before anything changes."""
        who = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{who}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        keys = self._state_keys()
        extra = tuple(self._state_extra())
        missing = [k for k in keys + extra if k not in state_dict]
        unexpected = [k for k in state_dict if k not in keys + extra]
        if missing or unexpected:
            raise KeyError(f"{who}.load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected} (is this the state of a different scheduler?)")
        old = {k: getattr(self, k) for k in keys}
        try:
            for k in keys:
                setattr(self, k, copy.deepcopy(state_dict[k]))
            self._validate_state()
            self._load_state_extra(state_dict)
            extra_vals = self._extra_at(self.last_epoch)
        except Exception:
            for k, v in old.items():
                setattr(self, k, v)
            raise
        self._write(self._last_lr, extra_vals)


# -- the closed-form schedules ----------------------------------------------

class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch). ``lr_lambda``: one callable for every
    group or a list with one per group; it must return a finite number >= 0.

    ``state_dict`` saves, like torch, the ``__dict__`` of callable *objects*
    (so a stateful schedule object resumes) and None for plain functions and
    lambdas, which the caller recreates."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        groups = _param_groups("LambdaLR", optimizer)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(groups):
                raise ValueError(f"LambdaLR: lr_lambda has {len(lr_lambda)} functions but the "
                                 f"optimizer has {len(groups)} param groups")
            fns = list(lr_lambda)
        else:
            fns = [lr_lambda] * len(groups)
        for i, fn in enumerate(fns):
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda[{i}] must be callable, got {type(fn).__name__}")
        self.lr_lambdas = fns
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, t):
        out = []
        for i, (fn, b) in enumerate(zip(self.lr_lambdas, self.base_lrs)):
            f = fn(t)
            if not _is_real(f) or not math.isfinite(f) or f < 0:
                raise ValueError(f"LambdaLR: lr_lambda[{i}]({t}) returned {f!r}; "
                                 f"it must return a finite number >= 0")
            out.append(b * float(f))
        return out

    def _state_extra(self):
        saved = []
        for fn in self.lr_lambdas:
            plain = isinstance(fn, (types.FunctionType, types.MethodType,
                                    types.BuiltinFunctionType))
            d = None if plain else getattr(fn, "__dict__", None)
            saved.append(None if d is None else dict(d))
        return {"lr_lambdas": saved}

    def _load_state_extra(self, state_dict):
        saved = state_dict["lr_lambdas"]
        if not isinstance(saved, list) or len(saved) != len(self.lr_lambdas):
            raise ValueError(f"LambdaLR.load_state_dict: lr_lambdas must be a list of "
                             f"{len(self.lr_lambdas)} entries, got {saved!r}")
        for i, d in enumerate(saved):
            if d is not None and not isinstance(d, dict):
                raise ValueError(f"LambdaLR.load_state_dict: lr_lambdas[{i}] must be None or a dict")
        for fn, d in zip(self.lr_lambdas, saved):
            if d is not None:
                fn.__dict__.update(d)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    _hyper = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _validate(self):
        self.step_size = _int_arg("StepLR", "step_size", self.step_size, 1)
        self.gamma = _real_arg("StepLR", "gamma", self.gamma, lo=0.0, lo_open=True)

    def _lr_at(self, t):
        f = self.gamma ** (t // self.step_size)
        return [b * f for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones <= epoch). Milestones are
    epoch indices >= 0 in any order; one listed n times decays by gamma**n."""

    _hyper = ("milestones", "gamma")

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        try:
            self.milestones = list(milestones)
        except TypeError:
            raise ValueError(f"MultiStepLR: milestones must be a list of epoch indices, "
                             f"got {milestones!r}") from None
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _validate(self):
        if not isinstance(self.milestones, list):
            raise ValueError(f"MultiStepLR: milestones must be a list, got {self.milestones!r}")
        self.milestones = sorted(_int_arg("MultiStepLR", f"milestones[{i}]", m, 0)
                                 for i, m in enumerate(self.milestones))
        self.gamma = _real_arg("MultiStepLR", "gamma", self.gamma, lo=0.0, lo_open=True)

    def _lr_at(self, t):
        f = self.gamma ** bisect.bisect_right(self.milestones, t)
        return [b * f for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch."""

    _hyper = ("gamma",)

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _validate(self):
        self.gamma = _real_arg("ExponentialLR", "gamma", self.gamma, lo=0.0, lo_open=True)

    def _lr_at(self, t):
        f = self.gamma ** t
        return [b * f for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2,
    the closed form in torch's documentation (SGDR without restarts). Past
    ``T_max`` the cosine continues, rising again over the next ``T_max``
    epochs, as torch's recursive update does."""

    _hyper = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def _validate(self):
        self.T_max = _int_arg("CosineAnnealingLR", "T_max", self.T_max, 1)
        self.eta_min = _real_arg("CosineAnnealingLR", "eta_min", self.eta_min, lo=0.0)

    def _lr_at(self, t):
        c = (1.0 + math.cos(math.pi * t / self.T_max)) / 2.0
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LinearLR(LRScheduler):
    """lr = base_lr * (start_factor + (end_factor - start_factor) *
    min(epoch, total_iters) / total_iters): a straight line from
    start_factor*base_lr at epoch 0 to end_factor*base_lr at total_iters, flat
    after. Both factors in [0, 1] (torch also excludes start_factor == 0
    because its update divides by the previous factor; this one does not)."""

    _hyper = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def _validate(self):
        self.start_factor = _real_arg("LinearLR", "start_factor", self.start_factor, 0.0, 1.0)
        self.end_factor = _real_arg("LinearLR", "end_factor", self.end_factor, 0.0, 1.0)
        self.total_iters = _int_arg("LinearLR", "total_iters", self.total_iters, 1)

    def _lr_at(self, t):
        f = self.start_factor + (self.end_factor - self.start_factor) * \
            min(self.total_iters, t) / self.total_iters
        return [b * f for b in self.base_lrs]


def _check_child(who, name, sched, optimizer):
    if not isinstance(sched, LRScheduler):
        raise TypeError(f"{who}: {name} must be a fastnn LRScheduler, got {type(sched).__name__}")
    if isinstance(sched, ReduceLROnPlateau):
        raise ValueError(f"{who}: {name} is a ReduceLROnPlateau, which needs a metric at every "
                         f"step and cannot be driven by {who}")
    if optimizer is not None and sched.optimizer is not optimizer:
        raise ValueError(f"{who}: {name} ({type(sched).__name__}) drives a different optimizer")


class SequentialLR(LRScheduler):
    """Runs ``schedulers[0]`` from epoch 0, then each ``schedulers[i]`` from
    epoch ``milestones[i-1]``, restarted at its own epoch 0 there (torch's
    semantics): at epoch t the lr is ``schedulers[i]``'s at t - milestones[i-1].
    Milestones: positive, strictly increasing, one fewer than schedulers. Step
    only this scheduler; it moves the active child's ``last_epoch``."""

    _hyper = ("_milestones",)

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        who = "SequentialLR"
        _param_groups(who, optimizer)
        if not isinstance(schedulers, (list, tuple)) or not schedulers:
            raise ValueError(f"{who}: schedulers must be a non-empty list of schedulers, "
                             f"got {schedulers!r}")
        for i, s in enumerate(schedulers):
            _check_child(who, f"schedulers[{i}]", s, optimizer)
        if not isinstance(milestones, (list, tuple)):
            raise ValueError(f"{who}: milestones must be a list of epochs, got {milestones!r}")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{who}: milestones must have one entry fewer than schedulers; got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        super().__init__(optimizer, last_epoch)

    def _validate(self):
        if not isinstance(self._milestones, list) or len(self._milestones) != len(self._schedulers) - 1:
            raise ValueError(f"SequentialLR: milestones must be a list of "
                             f"{len(self._schedulers) - 1} epochs, got {self._milestones!r}")
        ms = [_int_arg("SequentialLR", f"milestones[{i}]", m, 1)
              for i, m in enumerate(self._milestones)]
        if any(a >= b for a, b in zip(ms, ms[1:])):
            raise ValueError(f"SequentialLR: milestones must be strictly increasing, got {ms}")
        self._milestones = ms

    def _locate(self, t):
        i = bisect.bisect_right(self._milestones, t)
        return self._schedulers[i], t - (self._milestones[i - 1] if i else 0)

    def _lr_at(self, t):
        s, local = self._locate(t)
        return s._lr_at(local)

    def _extra_at(self, t):
        s, local = self._locate(t)
        return s._extra_at(local)

    def _set_epoch(self, t, lrs):
        super()._set_epoch(t, lrs)
        s, local = self._locate(t)
        s._set_epoch(local, lrs)

    def _state_extra(self):
        return {"_schedulers": [s.state_dict() for s in self._schedulers]}

    def _load_state_extra(self, state_dict):
        states = state_dict["_schedulers"]
        if not isinstance(states, list) or len(states) != len(self._schedulers):
            raise ValueError(f"SequentialLR.load_state_dict: _schedulers must be a list of "
                             f"{len(self._schedulers)} states")
        for s, sd in zip(self._schedulers, states):
            s.load_state_dict(sd)


class WarmupLR(LRScheduler):
    """Linear warm-up in front of another schedule, which keeps its own clock.

    With W = warmup_steps, s = start_factor, b = the wrapped scheduler's base
    lr and L(t) its lr at epoch t:

        lr(t) = s*b + (L(W) - s*b) * t / W    for t < W
        lr(t) = L(t)                          for t >= W

    so the lr rises on a straight line from s*b at epoch 0 to exactly the
    wrapped schedule's value at epoch W, and follows the wrapped schedule from
    there. The wrapped schedule is *not* delayed: its epochs 0..W-1 are
    replaced by the ramp (e.g. CosineAnnealingLR(T_max=N) under a warm-up
    still ends at epoch N). For a ramp followed by a schedule that starts at
    its own epoch 0, use SequentialLR([LinearLR(...), sched], [W]).

    Step only the WarmupLR; it keeps the wrapped scheduler's ``last_epoch``
    equal to its own. W = 0 means no warm-up. The wrapped schedule must be a
    function of the epoch (all built-in ones are; a LambdaLR's function is
    also evaluated at W during the warm-up)."""

    _hyper = ("warmup_steps", "start_factor")

    def __init__(self, scheduler, warmup_steps, start_factor=0.0, last_epoch=-1):
        _check_child("WarmupLR", "scheduler", scheduler, None)
        self.scheduler = scheduler
        self.warmup_steps = warmup_steps
        self.start_factor = start_factor
        super().__init__(scheduler.optimizer, last_epoch)

    def _validate(self):
        self.warmup_steps = _int_arg("WarmupLR", "warmup_steps", self.warmup_steps, 0)
        self.start_factor = _real_arg("WarmupLR", "start_factor", self.start_factor, 0.0, 1.0)

    def _lr_at(self, t):
        w = self.warmup_steps
        if t >= w:
            return self.scheduler._lr_at(t)
        target = self.scheduler._lr_at(w)
        s = self.start_factor
        return [s * b + (tg - s * b) * t / w for b, tg in zip(self.scheduler.base_lrs, target)]

    def _extra_at(self, t):
        return self.scheduler._extra_at(t)

    def _set_epoch(self, t, lrs):
        super()._set_epoch(t, lrs)
        self.scheduler._set_epoch(t, lrs if t >= self.warmup_steps else self.scheduler._lr_at(t))

    def _state_extra(self):
        return {"scheduler": self.scheduler.state_dict()}

    def _load_state_extra(self, state_dict):
        self.scheduler.load_state_dict(state_dict["scheduler"])


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), torch's version, stepped once per batch.

    The lr goes from initial_lr = max_lr/div_factor up to max_lr over the first
    pct_start of ``total_steps`` (or epochs*steps_per_epoch), then down to
    min_lr = initial_lr/final_div_factor; with three_phase=True it comes back
    to initial_lr symmetrically and only then falls to min_lr. Each phase
    anneals by half a cosine ('cos') or a line ('linear'). With cycle_momentum
    the momentum moves inversely, between max_momentum (at initial_lr) and
    base_momentum (at max_lr): ``group['momentum']`` for SGD-style optimizers,
    the first of ``group['betas']`` when ``'betas'`` is in the optimizer's
    ``defaults``. Like torch, this sets ``initial_lr``, ``max_lr``, ``min_lr``
    (and ``max_momentum``, ``base_momentum``) in each group.

    The schedule is defined for steps 0..total_steps (the construction is step
    0, so ``step()`` may be called total_steps times); stepping further raises
    ValueError and leaves everything unchanged. Phase boundaries that would
    make a phase empty (e.g. pct_start*total_steps == 1, or pct_start=1)
    are rejected at construction."""

    _hyper = ("total_steps", "pct_start", "anneal_strategy", "three_phase", "cycle_momentum",
              "use_beta1", "max_lrs", "base_momentums", "max_momentums", "div_factor",
              "final_div_factor")

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        who = "OneCycleLR"
        groups = _param_groups(who, optimizer)
        n = len(groups)
        if total_steps is not None:
            self.total_steps = _int_arg(who, "total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_int_arg(who, "epochs", epochs, 1)
                                * _int_arg(who, "steps_per_epoch", steps_per_epoch, 1))
        else:
            raise ValueError(f"{who}: give total_steps, or both epochs and steps_per_epoch")

        def positive(name, v):
            return _real_arg(who, name, v, lo=0.0, lo_open=True)

        def unit(name, v):
            return _real_arg(who, name, v, 0.0, 1.0)

        self.max_lrs = _per_group(who, "max_lr", max_lr, n, positive)
        self.base_momentums = _per_group(who, "base_momentum", base_momentum, n, unit)
        self.max_momentums = _per_group(who, "max_momentum", max_momentum, n, unit)
        self.pct_start = pct_start
        self.anneal_strategy = anneal_strategy
        self.three_phase = three_phase
        self.cycle_momentum = cycle_momentum
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.use_beta1 = False
        self.optimizer = optimizer
        if _bool_arg(who, "cycle_momentum", cycle_momentum):
            defaults = getattr(optimizer, "defaults", None)
            defaults = defaults if isinstance(defaults, dict) else {}
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError(f"{who}: cycle_momentum=True needs an optimizer with 'momentum' "
                                 f"or 'betas' in its defaults; pass cycle_momentum=False")
            self.use_beta1 = "betas" in defaults
            key = "betas" if self.use_beta1 else "momentum"
            for i, g in enumerate(groups):
                if key not in g:
                    raise ValueError(f"{who}: optimizer.param_groups[{i}] has no {key!r} to cycle")
        self._validate()
        if last_epoch == -1:
            for g, mx in zip(groups, self.max_lrs):
                g["initial_lr"] = mx / self.div_factor
                g["max_lr"] = mx
                g["min_lr"] = g["initial_lr"] / self.final_div_factor
            if self.cycle_momentum:
                for g, mm, bm in zip(groups, self.max_momentums, self.base_momentums):
                    if self.use_beta1:
                        g["betas"] = (mm, *tuple(g["betas"])[1:])
                    else:
                        g["momentum"] = mm
                    g["max_momentum"] = mm
                    g["base_momentum"] = bm
        super().__init__(optimizer, last_epoch)

    def _validate(self):
        who = "OneCycleLR"
        n = len(self.optimizer.param_groups)
        self.total_steps = _int_arg(who, "total_steps", self.total_steps, 1)
        self.pct_start = _real_arg(who, "pct_start", self.pct_start, 0.0, 1.0)
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{who}: anneal_strategy must be 'cos' or 'linear', "
                             f"got {self.anneal_strategy!r}")
        self.three_phase = _bool_arg(who, "three_phase", self.three_phase)
        self.cycle_momentum = _bool_arg(who, "cycle_momentum", self.cycle_momentum)
        self.use_beta1 = _bool_arg(who, "use_beta1", self.use_beta1)
        self.div_factor = _real_arg(who, "div_factor", self.div_factor, lo=0.0, lo_open=True)
        self.final_div_factor = _real_arg(who, "final_div_factor", self.final_div_factor,
                                          lo=0.0, lo_open=True)
        for name in ("max_lrs", "base_momentums", "max_momentums"):
            setattr(self, name, _float_list(who, name, getattr(self, name), n))
        if any(v == 0 for v in self.max_lrs):
            raise ValueError(f"{who}: max_lr must be > 0, got {self.max_lrs}")
        T, p = self.total_steps, self.pct_start
        # (end_step, lr from, lr to, momentum from, momentum to); names index
        # the per-group values of _values(): 0 initial, 1 max, 2 min lr;
        # 0 max momentum, 1 base momentum.
        if self.three_phase:
            phases = [(p * T - 1, 0, 1, 0, 1), (2 * p * T - 2, 1, 0, 1, 0), (T - 1, 0, 2, 0, 0)]
        else:
            phases = [(p * T - 1, 0, 1, 0, 1), (T - 1, 1, 2, 1, 0)]
        if phases[0][0] == 0:
            raise ValueError(f"{who}: pct_start*total_steps = 1 makes the rising phase a single "
                             f"step (it would divide by zero); change pct_start or total_steps")
        if phases[-2][0] >= phases[-1][0]:
            raise ValueError(f"{who}: pct_start={p} leaves no steps for the last phase of "
                             f"{T} total_steps; use a smaller pct_start"
                             + (" (below about 0.5 with three_phase=True)" if self.three_phase else ""))
        self._phases = phases

    def _locate(self, t):
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step to step {t}, but total_steps is "
                             f"{self.total_steps}; create the scheduler with more steps")
        start = 0.0
        last = len(self._phases) - 1
        for i, ph in enumerate(self._phases):
            if t <= ph[0] or i == last:
                return ph, (t - start) / (ph[0] - start)
            start = ph[0]

    def _anneal(self, a, b, pct):
        if self.anneal_strategy == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1.0)
        return (b - a) * pct + a

    def _lr_at(self, t):
        ph, pct = self._locate(t)
        out = []
        for b, mx in zip(self.base_lrs, self.max_lrs):
            v = (b, mx, b / self.final_div_factor)
            out.append(self._anneal(v[ph[1]], v[ph[2]], pct))
        return out

    def _extra_at(self, t):
        if not self.cycle_momentum:
            return None
        ph, pct = self._locate(t)
        vals = [self._anneal((mm, bm)[ph[3]], (mm, bm)[ph[4]], pct)
                for mm, bm in zip(self.max_momentums, self.base_momentums)]
        return ("betas" if self.use_beta1 else "momentum", vals)


# -- the metric-driven schedule ---------------------------------------------

class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a metric has not improved for more
    than ``patience`` epochs; ``step(metric)`` once per epoch.

    A metric improves on the best so far when, in 'min' mode, it is below
    best - threshold ('abs') or best - |best|*threshold ('rel'); 'max' mode
    mirrors this. (torch's 'rel' test is best*(1 -/+ threshold), the same for
    the usual positive metrics, but for a negative best it accepts slightly
    *worse* values as improvements; the |best| form does not.) A NaN metric is
    never an improvement. After a reduction the counting pauses for
    ``cooldown`` epochs. The new lr is max(lr*factor, min_lr) and is applied
    only if it is more than ``eps`` below the old one. Unlike the closed-form
    schedules this one reads and scales the group's current lr."""

    _state_names = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                    "min_lrs", "default_min_lr", "eps", "last_epoch", "best", "num_bad_epochs",
                    "cooldown_counter", "_last_lr")

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        who = "ReduceLROnPlateau"
        groups = _param_groups(who, optimizer)
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
        else:
            self.default_min_lr = _real_arg(who, "min_lr", min_lr, lo=0.0)
        self.min_lrs = _per_group(who, "min_lr", min_lr, len(groups),
                                  lambda name, v: _real_arg(who, name, v, lo=0.0))
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = [float(g["lr"]) for g in groups]
        self._validate()
        self.best = self._worst()
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _validate(self):
        who = "ReduceLROnPlateau"
        if self.mode not in ("min", "max"):
            raise ValueError(f"{who}: mode must be 'min' or 'max', got {self.mode!r}")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{who}: threshold_mode must be 'rel' or 'abs', "
                             f"got {self.threshold_mode!r}")
        self.factor = _real_arg(who, "factor", self.factor, 0.0, 1.0, hi_open=True)
        self.patience = _int_arg(who, "patience", self.patience, 0)
        self.threshold = _real_arg(who, "threshold", self.threshold, lo=0.0)
        self.cooldown = _int_arg(who, "cooldown", self.cooldown, 0)
        self.eps = _real_arg(who, "eps", self.eps, lo=0.0)

    def _worst(self):
        return math.inf if self.mode == "min" else -math.inf

    def _is_better(self, a, best):
        if math.isinf(best):
            return a < best if self.mode == "min" else a > best
        margin = self.threshold * (abs(best) if self.threshold_mode == "rel" else 1.0)
        return a < best - margin if self.mode == "min" else a > best + margin

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def step(self, metrics):
        """Record this epoch's metric (a number or 0-d array); maybe reduce."""
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number, "
                            f"got {type(metrics).__name__}") from None
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise ValueError(f"ReduceLROnPlateau: the optimizer has {len(groups)} param groups "
                                 f"but min_lr lists {len(self.min_lrs)}")
            self.min_lrs = [self.default_min_lr] * len(groups)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, lo in zip(groups, self.min_lrs):
                old = float(g["lr"])
                new = max(old * self.factor, lo)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in groups]

    def state_dict(self):
        return {k: copy.deepcopy(getattr(self, k)) for k in self._state_names}

    def load_state_dict(self, state_dict):
        who = "ReduceLROnPlateau"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{who}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        missing = [k for k in self._state_names if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._state_names]
        if missing or unexpected:
            raise KeyError(f"{who}.load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected} (is this the state of a different scheduler?)")
        old = {k: getattr(self, k) for k in self._state_names}
        n = len(self.optimizer.param_groups)
        try:
            for k in self._state_names:
                setattr(self, k, copy.deepcopy(state_dict[k]))
            self._validate()
            self.min_lrs = _float_list(who, "min_lrs", self.min_lrs, n)
            self._last_lr = _float_list(who, "_last_lr", self._last_lr, n)
            if self.default_min_lr is not None:
                self.default_min_lr = _real_arg(who, "default_min_lr", self.default_min_lr, lo=0.0)
            if not _is_real(self.best) or math.isnan(self.best):
                raise ValueError(f"{who}: best must be a number, got {self.best!r}")
            self.best = float(self.best)
            _int_arg(who, "last_epoch", self.last_epoch, 0)
            _int_arg(who, "num_bad_epochs", self.num_bad_epochs, 0)
            _int_arg(who, "cooldown_counter", self.cooldown_counter, 0)
        except Exception:
            for k, v in old.items():
                setattr(self, k, v)
            raise
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr
