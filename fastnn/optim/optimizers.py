"""SGD, Adagrad, RMSprop, Adadelta, Adam and AdamW with torch.optim's update
rules, argument names and defaults. Each step is one fused C loop per param
group (csrc/optim.c) over the group's flat buffers (see fastnn.optim.optimizer):
it reads the gradient and the state and writes the parameter and the state,
with weight decay and the L1 term folded in; no numpy temporaries. When a
group is not flat for a step (a parameter without a gradient, state loaded
with different step counts) the same single call takes one array per
parameter.

Besides torch's arguments every optimizer takes the regularization
hyper-parameters ``l1``, ``l1_mode`` and ``max_norm`` (see
fastnn.optim.regularize), per param group like the rest."""

from .._ext import _C
from .optimizer import REG_HPARAMS, Optimizer, betas_pair, flag, nonneg, unit_closed

__all__ = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW"]

def _reg_args(group, reg, decoupled=False):
    """(weight_decay, l1, decay_mult, prox, maximize) for the C kernels."""
    wd = float(group["weight_decay"])
    if decoupled:
        return 0.0, reg["l1"], 1.0 - float(group["lr"]) * wd, reg["prox"], reg["maximize"]
    return wd, reg["l1"], 1.0, reg["prox"], reg["maximize"]

class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (heavy-ball or
    Nesterov), as torch.optim.SGD. The first step sets the momentum buffer to
    the gradient; after that buf = momentum * buf + (1 - dampening) * g."""

    _hparams = {"lr": nonneg, "momentum": nonneg, "dampening": unit_closed,
                "weight_decay": nonneg, "nesterov": flag, "maximize": flag, **REG_HPARAMS}
    _state_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, l1=0.0, l1_mode="gradient", max_norm=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, l1=l1, l1_mode=l1_mode,
                        max_norm=max_norm)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_combination(self, group):
        if group.get("nesterov") and (group.get("momentum", 0) <= 0 or group.get("dampening", 0) != 0):
            raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0")

    def _step_group(self, group, params, reg):
        lr, momentum = group["lr"], group["momentum"]
        dampening, nesterov = group["dampening"], group["nesterov"]
        wd, l1, mult, prox, maximize = _reg_args(group, reg)
        bufs = init = None
        if momentum != 0:
            bufs, init = [], []
            for p in params:
                st = self.state.setdefault(p, {})
                buf = st.get("momentum_buffer")
                init.append(buf is None)
                if buf is None:
                    buf = st["momentum_buffer"] = self._state_array(p, "momentum_buffer")
                bufs.append(buf)
        data, grads = self._pack(params)
        _C.sgd_step(data, grads, bufs, init, lr,
                    momentum, dampening, nesterov, wd, l1, mult, prox, maximize, "SGD")

class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011) as torch.optim.Adagrad: sum += g^2,
    p -= clr * g / (sqrt(sum) + eps) with clr = lr / (1 + (step - 1) * lr_decay)."""

    _hparams = {"lr": nonneg, "lr_decay": nonneg, "weight_decay": nonneg,
                "initial_accumulator_value": nonneg, "eps": nonneg, "maximize": flag,
                **REG_HPARAMS}
    _state_names = ("step", "sum")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False, l1=0.0, l1_mode="gradient", max_norm=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize, l1=l1, l1_mode=l1_mode, max_norm=max_norm)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _required_state(self, group):
        return ("step", "sum")

    def _step_group(self, group, params, reg):
        lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
        wd, l1, mult, prox, maximize = _reg_args(group, reg)
        sums, clr = [], []
        for p in params:
            st = self.state.get(p)
            if not st:
                st = self.state[p] = {"step": 0, "sum": self._state_array(
                    p, "sum", group["initial_accumulator_value"])}
            st["step"] += 1
            sums.append(st["sum"])
            clr.append(lr / (1 + (st["step"] - 1) * lr_decay))
        data, grads = self._pack(params)
        _C.adagrad_step(data, grads, sums, clr, eps, wd, l1, mult, prox, maximize,
                        "Adagrad")

class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e) as torch.optim.RMSprop:
    square_avg = alpha * square_avg + (1 - alpha) * g^2; with ``centered`` the
    running mean of g is subtracted inside the root; with ``momentum`` the
    scaled gradient goes through a momentum buffer."""

    _hparams = {"lr": nonneg, "alpha": unit_closed, "eps": nonneg, "weight_decay": nonneg,
                "momentum": nonneg, "centered": flag, "maximize": flag, **REG_HPARAMS}
    _state_names = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False, l1=0.0, l1_mode="gradient", max_norm=None):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize, l1=l1,
                        l1_mode=l1_mode, max_norm=max_norm)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _required_state(self, group):
        names = ["step", "square_avg"]
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        if group["centered"]:
            names.append("grad_avg")
        return names

    def _step_group(self, group, params, reg):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        momentum, centered = group["momentum"], group["centered"]
        wd, l1, mult, prox, maximize = _reg_args(group, reg)
        sq = []
        bufs = [] if momentum > 0 else None
        gavgs = [] if centered else None
        for p in params:
            st = self.state.get(p)
            if not st:
                st = self.state[p] = {"step": 0, "square_avg": self._state_array(p, "square_avg")}
            if bufs is not None:
                if st.get("momentum_buffer") is None:
                    st["momentum_buffer"] = self._state_array(p, "momentum_buffer")
                bufs.append(st["momentum_buffer"])
            if gavgs is not None:
                if st.get("grad_avg") is None:
                    st["grad_avg"] = self._state_array(p, "grad_avg")
                gavgs.append(st["grad_avg"])
            st["step"] += 1
            sq.append(st["square_avg"])
        data, grads = self._pack(params)
        _C.rmsprop_step(data, grads, sq, gavgs, bufs, lr,
                        alpha, eps, momentum, wd, l1, mult, prox, maximize, "RMSprop")

class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012) as torch.optim.Adadelta: delta =
    sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g, p -= lr * delta."""

    _hparams = {"lr": nonneg, "rho": unit_closed, "eps": nonneg, "weight_decay": nonneg,
                "maximize": flag, **REG_HPARAMS}
    _state_names = ("step", "square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False,
                 l1=0.0, l1_mode="gradient", max_norm=None):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        l1=l1, l1_mode=l1_mode, max_norm=max_norm)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _required_state(self, group):
        return ("step", "square_avg", "acc_delta")

    def _step_group(self, group, params, reg):
        lr, rho, eps = group["lr"], group["rho"], group["eps"]
        wd, l1, mult, prox, maximize = _reg_args(group, reg)
        sq, acc = [], []
        for p in params:
            st = self.state.get(p)
            if not st:
                st = self.state[p] = {"step": 0, "square_avg": self._state_array(p, "square_avg"),
                                      "acc_delta": self._state_array(p, "acc_delta")}
            st["step"] += 1
            sq.append(st["square_avg"])
            acc.append(st["acc_delta"])
        data, grads = self._pack(params)
        _C.adadelta_step(data, grads, sq, acc, lr, rho, eps, wd, l1,
                         mult, prox, maximize, "Adadelta")

class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) as torch.optim.Adam, bias correction included:
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    ``amsgrad`` normalises by the running maximum of v instead.
    ``weight_decay`` is coupled L2 (added to the gradient) unless
    ``decoupled_weight_decay`` (then p *= 1 - lr * weight_decay first: AdamW)."""

    _hparams = {"lr": nonneg, "betas": betas_pair, "eps": nonneg, "weight_decay": nonneg,
                "amsgrad": flag, "maximize": flag, "decoupled_weight_decay": flag, **REG_HPARAMS}
    _state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False, l1=0.0,
                 l1_mode="gradient", max_norm=None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay, l1=l1,
                        l1_mode=l1_mode, max_norm=max_norm)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _required_state(self, group):
        names = ["step", "exp_avg", "exp_avg_sq"]
        if group["amsgrad"]:
            names.append("max_exp_avg_sq")
        return names

    def _step_group(self, group, params, reg):
        who = type(self).__name__
        lr, eps, amsgrad = group["lr"], group["eps"], group["amsgrad"]
        beta1, beta2 = group["betas"]
        wd, l1, mult, prox, maximize = _reg_args(group, reg, group["decoupled_weight_decay"])
        ms, vs, step_size, bc2_sqrt = [], [], [], []
        vmax = [] if amsgrad else None
        for p in params:
            st = self.state.get(p)
            if not st:
                st = self.state[p] = {"step": 0, "exp_avg": self._state_array(p, "exp_avg"),
                                      "exp_avg_sq": self._state_array(p, "exp_avg_sq")}
            if vmax is not None:
                if st.get("max_exp_avg_sq") is None:
                    st["max_exp_avg_sq"] = self._state_array(p, "max_exp_avg_sq")
                vmax.append(st["max_exp_avg_sq"])
            t = st["step"] = st["step"] + 1
            ms.append(st["exp_avg"])
            vs.append(st["exp_avg_sq"])
            step_size.append(lr / (1 - beta1 ** t))
            bc2_sqrt.append((1 - beta2 ** t) ** 0.5)     # as torch (not math.sqrt)
        data, grads = self._pack(params)
        _C.adam_step(data, grads, ms, vs, vmax,
                     step_size, bc2_sqrt, beta1, beta2, eps, wd, l1, mult, prox, maximize, who)

class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as
    torch.optim.AdamW: p *= 1 - lr * weight_decay, then the Adam step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, l1=0.0, l1_mode="gradient", max_norm=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True, l1=l1,
                         l1_mode=l1_mode, max_norm=max_norm)

    def _check_combination(self, group):
        if group.get("decoupled_weight_decay") is False:
            raise ValueError("AdamW: decoupled_weight_decay must stay True (use Adam for "
                             "coupled L2 weight decay)")
