"""Optimizer: the base class of every fastnn optimizer, torch.optim-shaped.

``param_groups`` is a list of dicts, each with ``'params'`` (a list of
Parameters) and that group's hyper-parameters (``'lr'`` ...); ``defaults``
holds the constructor's values, which fill in whatever a group leaves out;
``state`` maps a Parameter to its dict of buffers. ``state_dict()`` /
``load_state_dict()`` save and restore everything a resumed run needs, as
plain numpy arrays and numbers.

Flat parameters: the optimizer owns its parameters' storage. Building it
(and ``add_param_group``) moves every parameter's data into one contiguous
float32 buffer and every trainable parameter's gradient into one gradient
buffer, laid out group by group (trainable parameters first, each aligned to
64 bytes; frozen ones have data but no gradient slot). ``Parameter.data`` and
``.grad`` become views into them, and the state arrays (momentum, Adam's
moments) are views into one flat buffer per group and name. ``step()`` then
runs one fused C call per group over its parameters' views (max-norm adds one
call per constrained parameter); each thread updates the same share of every
parameter, the rows of each weight the GEMMs' row split gave it. A parameter
belongs to one optimizer: passing it to a second raises ValueError (delete
the first one, or give one optimizer several param groups). ``flat_grad`` / ``flat_data`` expose the
buffers (what clipping, gradient monitors and an all-reduce read in one
pass).

Subclasses declare their hyper-parameters (``_hparams``: name -> check), the
state buffers they may keep (``_state_names``) and implement ``_update``."""
import math
import weakref

import numpy as np

from .._check import real
from ..nn.module import Parameter
from . import regularize as _reg

__all__ = ["Optimizer"]


# -- hyper-parameter checks: (who, name, value) -> normalised value --------

def nonneg(who, name, v):
    f = real(who, name, v, finite=False)
    if not (0.0 <= f < math.inf):
        raise ValueError(f"{who}: {name} must be >= 0 and finite, got {v!r}")
    return f


def unit_open(who, name, v):
    """0 <= v < 1 (Adam's betas)."""
    f = real(who, name, v, finite=False)
    if not 0.0 <= f < 1.0:
        raise ValueError(f"{who}: {name} must be in [0, 1), got {v!r}")
    return f


def unit_closed(who, name, v):
    """0 <= v <= 1 (dampening, alpha, rho)."""
    f = real(who, name, v, finite=False)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"{who}: {name} must be in [0, 1], got {v!r}")
    return f


def flag(who, name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be True or False, got {v!r}")
    return bool(v)


def betas_pair(who, name, v):
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise ValueError(f"{who}: {name} must be a pair (beta1, beta2), got {v!r}")
    return (unit_open(who, f"{name}[0]", v[0]), unit_open(who, f"{name}[1]", v[1]))


# Regularization hyper-parameters every optimizer has (fastnn.optim.regularize).
REG_HPARAMS = {"l1": nonneg, "l1_mode": _reg.check_l1_mode, "max_norm": _reg.check_max_norm}


_ALIGN = 16          # floats: every flat slot starts on a 64-byte boundary


def _aligned(n):
    return -(-n // _ALIGN) * _ALIGN


def _aligned_empty(n):
    """A float32 array of n elements whose data starts on 64 bytes."""
    raw = np.empty(n + _ALIGN, dtype=np.float32)
    off = (-raw.ctypes.data % 64) // 4
    return raw[off:off + n]


class _FlatGroup:
    """One param group's slice of the flat buffers: its trainable parameters
    (at flattening time), their data and gradient ranges, each parameter's
    (start, stop) within them and the group's flat state arrays by name."""
    __slots__ = ("params", "data", "grad", "spans", "state", "index")

    def __init__(self, params, data, grad, spans):
        self.params, self.data, self.grad, self.spans = params, data, grad, spans
        self.index = {id(p): i for i, p in enumerate(params)}
        self.state = {}


class Optimizer:
    """Base class. ``params``: an iterable of Parameters, or of dicts (param
    groups) each with a ``'params'`` entry and any hyper-parameters that
    override ``defaults`` for that group."""

    _hparams = {}           # name -> check(who, name, value); set by subclasses
    _state_names = ()       # every per-parameter state entry a subclass may keep

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        who = type(self).__name__
        if isinstance(params, (Parameter, np.ndarray, dict)):
            raise TypeError(f"{who}: params must be an iterable of Parameters or of dicts "
                            f"(param groups), got a single {type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{who}: params must be an ordered iterable (a list), not a set: "
                            "the order of parameters must be the same from run to run")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{who}: params must be an iterable of Parameters or of dicts, "
                            f"got {type(params).__name__}") from None
        if not groups:
            raise ValueError(f"{who}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self._flat = []
        self.flat_data = self.flat_grad = None
        for g in groups:
            self.add_param_group(g, _layout=False)
        self._layout()

    # -- flat buffers -----------------------------------------------------
    def _layout(self):
        """(Re)build the flat data and gradient buffers over every group and
        rebind the Parameters to views of them (values, lazily-zero and None
        gradients are kept). Existing state arrays keep their values."""
        who = type(self).__name__
        me = weakref.ref(self)
        plan, nd, ng = [], 0, 0
        for g in self.param_groups:
            for p in g["params"]:
                o = p._owner() if p._owner is not None else None
                if o is not None and o is not self:
                    raise ValueError(
                        f"{who}: a Parameter of shape {p.shape} already belongs to another "
                        f"optimizer ({type(o).__name__}); its data and gradient live in that "
                        f"optimizer's flat buffers. Use one optimizer with several param groups, "
                        f"or delete the other optimizer first")
            train = [p for p in g["params"] if p.requires_grad]
            frozen = [p for p in g["params"] if not p.requires_grad]
            plan.append((train, frozen, nd, ng))
            size_t = sum(_aligned(p.size) for p in train)
            nd += size_t + sum(_aligned(p.size) for p in frozen)
            ng += size_t
        data, grad = _aligned_empty(nd), _aligned_empty(ng)
        data.fill(0.0)
        grad.fill(0.0)
        old = self._flat
        self._flat = []
        for gi, (train, frozen, d0, g0) in enumerate(plan):
            spans, off = [], 0
            for p in train:
                spans.append((off, off + p.size))
                off += _aligned(p.size)
            for p, (a, b) in zip(train, spans):
                dv = data[d0 + a:d0 + b].reshape(p.shape)
                dv[...] = p._data
                gv = grad[g0 + a:g0 + b].reshape(p.shape)
                if p._grad is not None and p._gstate == 0:
                    gv[...] = p._grad
                p._data, p._grad, p._owner = dv, gv, me
                p._slot = (grad, g0 + a, g0 + b)
            fo = d0 + off
            for p in frozen:
                dv = data[fo:fo + p.size].reshape(p.shape)
                dv[...] = p._data
                p._data, p._owner, p._slot = dv, me, None
                p._grad, p._gstate = None, 2          # frozen: no gradient slot
                fo += _aligned(p.size)
            fg = _FlatGroup(train, data[d0:d0 + off], grad[g0:g0 + off], spans)
            prev = old[gi] if gi < len(old) else None
            if prev is not None and [id(p) for p in prev.params] == [id(p) for p in train]:
                fg.state = prev.state             # the group's state buffers stay valid
            self._flat.append(fg)
        self.flat_data, self.flat_grad = data, grad

    def _state_array(self, p, name, fill=0.0):
        """A new state array for p: a view into its group's flat state buffer
        for `name` when p has a flat slot, else a standalone array."""
        for fg in self._flat:
            i = fg.index.get(id(p))
            if i is not None:
                buf = fg.state.get(name)
                if buf is None:
                    buf = fg.state[name] = _aligned_empty(fg.grad.size)
                    buf.fill(fill)
                a, b = fg.spans[i]
                v = buf[a:b].reshape(p.shape)
                v.fill(fill)
                return v
        return np.full(p.shape, fill, dtype=np.float32)

    @staticmethod
    def _pack(params):
        """The data and gradient arrays of a group's one C call, one per
        parameter (views of the flat buffers when the group is flat): the C
        loops give each thread the same share of every array, the rows of
        each weight that the GEMMs' row split gave it (csrc/optim.h)."""
        return [p.data for p in params], [p.grad for p in params]

    # -- groups -----------------------------------------------------------
    def _check_group(self, group):
        """Validate and normalise the known hyper-parameters of a group, in
        place. Unknown keys (e.g. a scheduler's 'initial_lr') are kept."""
        who = type(self).__name__
        for name, check in self._hparams.items():
            if name in group:
                group[name] = check(who, name, group[name])
        self._check_combination(group)

    def _check_combination(self, group):
        """Constraints between hyper-parameters (subclasses)."""

    def add_param_group(self, param_group, _layout=True):
        """Add a group: a dict with 'params' and optional hyper-parameters;
        the ones left out take the optimizer's defaults. The flat buffers are
        rebuilt to take the new parameters in."""
        who = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{who}: a param group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{who}: a param group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{who}: a group's params must be an ordered iterable, not a set")
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{who}: params[{i}] of a param group is a {type(p).__name__}, "
                                "expected a fastnn.nn.Parameter")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{who}: a param group lists the same Parameter more than once")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError(f"{who}: some parameters appear in more than one parameter group")
        group = dict(param_group)
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_group(group)
        self.param_groups.append(group)
        if _layout:
            self._layout()

    # -- the update -------------------------------------------------------
    def zero_grad(self):
        """Set every gradient to zero, in place (fastnn layers accumulate into
        the Parameter's own grad array, so it is never replaced by None)."""
        for g in self.param_groups:
            for p in g["params"]:
                p.zero_grad()      # lazy: zeros are written when grad is next read

    def step(self, closure=None):
        """One update of every parameter that requires a gradient and has
        one. ``closure``: an optional callable that recomputes the loss and
        the gradients; its value is returned."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.requires_grad and p.grad is not None]
            if not params:
                continue
            lr = float(group["lr"])
            l1 = float(group.get("l1", 0.0))
            proximal = group.get("l1_mode", "gradient") == "proximal"
            reg = {"l1": 0.0 if proximal else l1, "prox": lr * l1 if proximal else 0.0,
                   "maximize": bool(group.get("maximize", False))}
            self._step_group(group, params, reg)
            max_norm = group.get("max_norm")
            if max_norm is not None:
                for p in params:
                    _reg.max_norm_param(p, float(max_norm), type(self).__name__)
        return loss

    def _step_group(self, group, params, reg):
        raise NotImplementedError(f"{type(self).__name__}._step_group")

    # -- state ------------------------------------------------------------
    def _required_state(self, group):
        """State entries a parameter with any state must have, given its
        group's hyper-parameters (subclasses)."""
        return ()

    def state_dict(self):
        """{'state': {index: {name: ndarray or number}}, 'param_groups': [
        {hyper-parameters..., 'params': [indices]}]}. Parameters are numbered
        in group order; arrays are copies, so the dict is a snapshot."""
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in g["params"]]
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                s = self.state.get(p)
                if s:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by ``state_dict()``. The
        structure (groups, parameters per group, state names, array shapes)
        is checked before anything changes; a mismatch raises naming it."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{who}: expected a dict with keys 'state' and 'param_groups', got {keys}")
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not isinstance(saved_state, dict):
            raise TypeError(f"{who}: 'param_groups' must be a list and 'state' a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{who}: the state dict has {len(saved_groups)} param groups, "
                             f"the optimizer has {len(self.param_groups)}")
        new_groups, param_of = [], {}
        for gi, (saved, cur) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(f"{who}: param_groups[{gi}] must be a dict with a 'params' entry")
            idx = list(saved["params"])
            if len(idx) != len(cur["params"]):
                raise ValueError(f"{who}: param_groups[{gi}] has {len(idx)} parameters in the "
                                 f"state dict but {len(cur['params'])} in the optimizer")
            for i, p in zip(idx, cur["params"]):
                if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                    raise TypeError(f"{who}: param_groups[{gi}]['params'] must hold integer "
                                    f"indices, got {i!r}")
                if int(i) in param_of:
                    raise ValueError(f"{who}: parameter index {int(i)} appears twice in param_groups")
                param_of[int(i)] = p
            g = {k: v for k, v in saved.items() if k != "params"}
            for k, v in cur.items():
                if k != "params":
                    g.setdefault(k, v)
            g["params"] = cur["params"]
            try:
                self._check_group(g)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{who}: param_groups[{gi}]: {e}") from None
            new_groups.append(g)
        group_of = {id(p): g for g in new_groups for p in g["params"]}
        new_state = {}
        for key, entries in saved_state.items():
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) \
                    or int(key) not in param_of:
                raise ValueError(f"{who}: state key {key!r} is not a parameter index of param_groups")
            p = param_of[int(key)]
            if not isinstance(entries, dict):
                raise TypeError(f"{who}: state[{key}] must be a dict, got {type(entries).__name__}")
            if not entries:
                continue
            unknown = sorted(set(entries) - set(self._state_names))
            if unknown:
                raise ValueError(f"{who}: state[{key}] has unknown entries {unknown}; "
                                 f"{type(self).__name__} keeps {list(self._state_names)}")
            missing = sorted(set(self._required_state(group_of[id(p)])) - set(entries))
            if missing:
                raise ValueError(f"{who}: state[{key}] lacks {missing}")
            s = {}
            for name, v in entries.items():
                if name == "step":
                    s[name] = _check_step(who, key, v)
                    continue
                a = np.asarray(v)
                if a.dtype.kind != "f":
                    raise TypeError(f"{who}: state[{key}][{name!r}] must be a float array, "
                                    f"got dtype {a.dtype}")
                if a.shape != p.data.shape:
                    raise ValueError(f"{who}: state[{key}][{name!r}] has shape {a.shape}, "
                                     f"the parameter has shape {p.data.shape}")
                s[name] = a
            new_state[p] = s
        for p, s in new_state.items():        # nothing failed: copy into (flat) state arrays
            for name, a in s.items():
                if name != "step":
                    s[name] = self._state_array(p, name)
                    s[name][...] = a
        self.param_groups[:] = new_groups
        self.state = new_state

    # -- printing ---------------------------------------------------------
    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _check_step(who, key, v):
    a = np.asarray(v)
    if a.ndim != 0 or a.dtype.kind not in "iuf":
        raise TypeError(f"{who}: state[{key}]['step'] must be a number, got {v!r}")
    f = float(a)
    if not (math.isfinite(f) and f >= 0 and f == int(f)):
        raise ValueError(f"{who}: state[{key}]['step'] must be a non-negative integer, got {v!r}")
    return int(f)
