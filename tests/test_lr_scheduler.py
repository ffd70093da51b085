"""fastnn.optim.lr_scheduler: closed forms, torch parity, resume, validation.

The optimizers are tiny stand-ins defined here that follow the optimizer
contract (param_groups of dicts with 'params' and 'lr', defaults, step,
zero_grad, state_dict, load_state_dict), so these tests do not depend on
fastnn's own optimizers."""
import copy
import json
import math
import warnings

import numpy as np
import pytest

from fastnn.nn import Parameter
from fastnn.optim import lr_scheduler as S

LRS = [0.1, 0.03, 0.5]          # three groups, different base lrs
N = 50


class StandInSGD:
    """Plain SGD with (optional) heavy-ball momentum, in numpy."""

    def __init__(self, params, lr, momentum=0.0):
        self.defaults = {"lr": lr, "momentum": momentum}
        params = list(params)
        if params and isinstance(params[0], dict):
            groups = params
        else:
            groups = [{"params": params}]
        self.param_groups = []
        for g in groups:
            g = dict(g)
            g["params"] = list(g["params"])
            for k, v in self.defaults.items():
                g.setdefault(k, v)
            self.param_groups.append(g)
        self.state = {}

    def zero_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad.fill(0.0)

    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                d = p.grad
                if g.get("momentum"):
                    buf = self.state.setdefault(id(p), np.zeros_like(p.data))
                    buf *= g["momentum"]
                    buf += p.grad
                    d = buf
                p.data -= np.float32(g["lr"]) * d

    def state_dict(self):
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"param_groups": copy.deepcopy(groups)}

    def load_state_dict(self, sd):
        for g, saved in zip(self.param_groups, sd["param_groups"]):
            g.update(copy.deepcopy(saved))


class StandInAdam(StandInSGD):
    """Only the hyper-parameter layout of Adam matters here: 'betas' in defaults."""

    def __init__(self, params, lr, betas=(0.9, 0.999)):
        super().__init__(params, lr)
        for g in self.param_groups:
            del g["momentum"]
            g["betas"] = tuple(betas)
        self.defaults = {"lr": lr, "betas": tuple(betas)}


def make_opt(lrs=LRS, cls=StandInSGD, **kw):
    groups = [{"params": [Parameter(np.zeros(3, np.float32))], "lr": lr} for lr in lrs]
    return cls(groups, lr=lrs[0], **kw)


def trajectory(sched, opt, n=N):
    """lrs of every group after construction and after each of n steps."""
    out = [sched.get_last_lr()]
    assert out[0] == [g["lr"] for g in opt.param_groups]
    for _ in range(n):
        opt.step()
        sched.step()
        lrs = sched.get_last_lr()
        assert lrs == [g["lr"] for g in opt.param_groups]
        out.append(lrs)
    return np.array(out)


def expected(fn, lrs=LRS, n=N):
    return np.array([[fn(b, t) for b in lrs] for t in range(n + 1)])


# -- closed forms -----------------------------------------------------------

CLOSED = {
    "StepLR": (lambda o: S.StepLR(o, step_size=7, gamma=0.5),
               lambda b, t: b * 0.5 ** (t // 7)),
    "StepLR-default": (lambda o: S.StepLR(o, 10),
                       lambda b, t: b * 0.1 ** (t // 10)),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, [30, 4, 12, 12], gamma=0.3),
                    lambda b, t: b * 0.3 ** ((t >= 4) + 2 * (t >= 12) + (t >= 30))),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, 0.93),
                      lambda b, t: b * 0.93 ** t),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, T_max=20, eta_min=0.01),
                          lambda b, t: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * t / 20)) / 2),
    "CosineAnnealingLR-long": (lambda o: S.CosineAnnealingLR(o, T_max=50),
                               lambda b, t: b * (1 + math.cos(math.pi * t / 50)) / 2),
    "LinearLR-default": (lambda o: S.LinearLR(o),
                         lambda b, t: b * (1 / 3 + (2 / 3) * min(t, 5) / 5)),
    "LinearLR-decay": (lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=40),
                       lambda b, t: b * (1 - min(t, 40) / 40)),
    "LambdaLR": (lambda o: S.LambdaLR(o, lambda e: 1.0 / (1 + 0.1 * e)),
                 lambda b, t: b / (1 + 0.1 * t)),
    "SequentialLR": (lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.25, 1.0, 4),
                                                  S.ExponentialLR(o, 0.9),
                                                  S.CosineAnnealingLR(o, 10)], [8, 30]),
                     lambda b, t: (b * (0.25 + 0.75 * min(t, 4) / 4) if t < 8 else
                                   b * 0.9 ** (t - 8) if t < 30 else
                                   b * (1 + math.cos(math.pi * (t - 30) / 10)) / 2)),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_closed_form(name):
    make, fn = CLOSED[name]
    opt = make_opt()
    sched = make(opt)
    got = trajectory(sched, opt)
    np.testing.assert_allclose(got, expected(fn), rtol=1e-13, atol=1e-16)
    assert sched.last_epoch == N
    assert sched.base_lrs == LRS
    assert [g["initial_lr"] for g in opt.param_groups] == LRS
    np.testing.assert_allclose(sched.get_lr(), got[-1], rtol=1e-13)


def test_lambda_per_group():
    fns = [lambda e: 0.5 ** (e // 10), lambda e: 1.0, lambda e: e / 50]
    opt = make_opt()
    got = trajectory(S.LambdaLR(opt, fns), opt)
    want = np.array([[b * f(t) for b, f in zip(LRS, fns)] for t in range(N + 1)])
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_initial_lr_kept_when_present():
    # a second scheduler on the same optimizer uses the first one's base lrs
    opt = make_opt()
    S.ExponentialLR(opt, 0.5)
    opt.step()
    opt.param_groups[0]["lr"] = 123.0
    s2 = S.StepLR(opt, 3)
    assert s2.base_lrs == LRS
    assert s2.get_last_lr() == LRS


def test_step_drives_training():
    # the scheduled lr is what the optimizer uses
    p = Parameter(np.ones(4, np.float32))
    opt = StandInSGD([p], lr=0.5)
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    w = 1.0
    for t in range(5):
        p.grad[...] = 1.0
        opt.step()
        w -= 0.5 * 0.5 ** t
        sched.step()
    np.testing.assert_allclose(p.data, np.full(4, w, np.float32), rtol=1e-6)


# -- WarmupLR ---------------------------------------------------------------

def warmup_expected(inner_fn, W, s, lrs=LRS, n=N):
    out = []
    for t in range(n + 1):
        if t >= W:
            out.append([inner_fn(b, t) for b in lrs])
        else:
            out.append([s * b + (inner_fn(b, W) - s * b) * t / W for b in lrs])
    return np.array(out)


@pytest.mark.parametrize("W,s", [(10, 0.0), (7, 0.1), (1, 0.5), (0, 0.0)])
def test_warmup_cosine(W, s):
    opt = make_opt()
    inner = S.CosineAnnealingLR(opt, T_max=N, eta_min=0.001)
    sched = S.WarmupLR(inner, warmup_steps=W, start_factor=s)
    got = trajectory(sched, opt)
    def fn(b, t):
        return 0.001 + (b - 0.001) * (1 + math.cos(math.pi * t / N)) / 2
    np.testing.assert_allclose(got, warmup_expected(fn, W, s), rtol=1e-13, atol=1e-17)
    assert inner.last_epoch == sched.last_epoch == N
    np.testing.assert_allclose(got[0], [s * b for b in LRS] if W else LRS, rtol=1e-15)
    # the cosine is not delayed: it still reaches eta_min at T_max
    np.testing.assert_allclose(got[N], [0.001] * 3, rtol=1e-12)


def test_warmup_is_linear_and_continuous():
    opt = make_opt()
    sched = S.WarmupLR(S.StepLR(opt, step_size=4, gamma=0.5), warmup_steps=10)
    got = trajectory(sched, opt, n=20)
    ramp = got[:11]
    # equal increments during the warm-up, landing on the step schedule at 10
    np.testing.assert_allclose(np.diff(ramp, axis=0), np.diff(ramp, axis=0)[:1].repeat(10, 0),
                               rtol=1e-12)
    np.testing.assert_allclose(got[10], [b * 0.5 ** 2 for b in LRS], rtol=1e-15)
    np.testing.assert_allclose(got[12], [b * 0.5 ** 3 for b in LRS], rtol=1e-15)
    assert got[0].tolist() == [0.0, 0.0, 0.0]


def test_warmup_around_onecycle_momentum():
    opt = make_opt(momentum=0.9)
    oc = S.OneCycleLR(opt, max_lr=1.0, total_steps=40)
    sched = S.WarmupLR(oc, warmup_steps=5, start_factor=0.2)
    for t in range(1, 41):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["momentum"] == pytest.approx(oc._extra_at(t)[1][0], rel=1e-15)
    with pytest.raises(ValueError, match="OneCycleLR"):
        sched.step()


# -- torch parity -----------------------------------------------------------

def torch_opt(torch, lrs=LRS, adam=False):
    ps = [torch.nn.Parameter(torch.zeros(3)) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(ps, lrs)]
    if adam:
        return torch.optim.Adam(groups, lr=lrs[0], betas=(0.9, 0.999))
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


TORCH_CASES = {
    "StepLR": lambda M, o: M.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, milestones=[3, 10, 10, 31], gamma=0.2),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, gamma=0.95),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, T_max=50),
    "CosineAnnealingLR-restart-region": lambda M, o: M.CosineAnnealingLR(o, T_max=9, eta_min=1e-3),
    "LinearLR-default": lambda M, o: M.LinearLR(o),
    "LinearLR": lambda M, o: M.LinearLR(o, start_factor=0.1, end_factor=0.6, total_iters=30),
    "LambdaLR": lambda M, o: M.LambdaLR(o, [lambda e: 0.97 ** e, lambda e: 1 / (e + 1),
                                            lambda e: (e % 5) / 5]),
    "SequentialLR": lambda M, o: M.SequentialLR(
        o, [M.LinearLR(o, 0.1, 1.0, 5), M.ExponentialLR(o, 0.9), M.CosineAnnealingLR(o, 12)],
        milestones=[5, 20]),
    "SequentialLR-step": lambda M, o: M.SequentialLR(
        o, [M.ExponentialLR(o, 0.8), M.StepLR(o, 4, 0.5)], milestones=[11]),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, max_lr=[1.0, 0.3, 2.0], total_steps=N),
    "OneCycleLR-epochs": lambda M, o: M.OneCycleLR(o, max_lr=0.8, epochs=5, steps_per_epoch=10,
                                                   pct_start=0.25, div_factor=10.0,
                                                   final_div_factor=100.0),
    "OneCycleLR-3phase-linear": lambda M, o: M.OneCycleLR(
        o, max_lr=[1.0, 0.3, 2.0], total_steps=N, three_phase=True, anneal_strategy="linear",
        base_momentum=[0.8, 0.85, 0.7], max_momentum=0.99),
    "OneCycleLR-no-momentum": lambda M, o: M.OneCycleLR(o, max_lr=0.5, total_steps=N,
                                                        cycle_momentum=False),
}


@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_matches_torch(name, adam):
    torch = pytest.importorskip("torch")
    TS = torch.optim.lr_scheduler
    make = TORCH_CASES[name]
    o = make_opt(cls=StandInAdam) if adam else make_opt(momentum=0.9)
    to = torch_opt(torch, adam=adam)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s, ts = make(S, o), make(TS, to)
        key = "betas" if adam else "momentum"
        for t in range(N + 1):
            if t:
                to.step()
                ts.step()
                o.step()
                s.step()
            want = np.array(ts.get_last_lr())
            np.testing.assert_allclose(s.get_last_lr(), want, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name} step {t}")
            for g, tg in zip(o.param_groups, to.param_groups):
                assert g["lr"] == pytest.approx(tg["lr"], rel=1e-12, abs=1e-15)
                if adam:
                    assert g["betas"][1] == tg["betas"][1] == 0.999
                    assert g["betas"][0] == pytest.approx(tg["betas"][0], rel=1e-14)
                else:
                    assert g[key] == pytest.approx(tg[key], rel=1e-14)
                for k in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
                    if k in tg:
                        assert g[k] == pytest.approx(tg[k], rel=1e-15), k


PLATEAU_CASES = [
    dict(),
    dict(patience=0),
    dict(patience=2, cooldown=3),
    dict(mode="max", patience=1),
    dict(mode="max", threshold_mode="abs", threshold=0.05, patience=1, cooldown=1),
    dict(threshold_mode="abs", threshold=0.02, patience=1),
    dict(threshold=0.1, patience=1, factor=0.5, min_lr=[0.02, 0.0, 0.1]),
    dict(patience=0, factor=0.5, min_lr=0.01, eps=1e-3),
]


@pytest.mark.parametrize("kw", PLATEAU_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    # positive metrics: a noisy descent that stalls, then slowly drifts up
    metrics = np.concatenate([np.linspace(2.0, 1.0, 15), np.full(15, 1.0), np.linspace(1.0, 1.3, 30)])
    metrics = metrics * (1 + 0.03 * rng.standard_normal(metrics.size))
    if kw.get("mode") == "max":
        metrics = 3.0 - metrics
    o, to = make_opt(), torch_opt(torch)
    s = S.ReduceLROnPlateau(o, **kw)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(to, **kw)
    reductions = 0
    for m in metrics:
        before = s.get_last_lr()
        s.step(float(m))
        ts.step(float(m))
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-15)
        assert (s.num_bad_epochs, s.cooldown_counter) == (ts.num_bad_epochs, ts.cooldown_counter)
        reductions += s.get_last_lr() != before
    assert reductions >= 2


# -- ReduceLROnPlateau semantics -------------------------------------------

def plateau_run(metrics, **kw):
    o = make_opt(lrs=[1.0])
    s = S.ReduceLROnPlateau(o, **kw)
    out = []
    for m in metrics:
        s.step(m)
        out.append(o.param_groups[0]["lr"])
    return out


def test_plateau_patience():
    # patience=2: the third epoch without improvement reduces
    assert plateau_run([5, 5, 5, 5, 5, 5, 5], patience=2) == \
        pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01])
    # an improvement resets the count
    assert plateau_run([5, 5, 5, 4, 4, 4, 4], patience=2) == \
        pytest.approx([1, 1, 1, 1, 1, 1, 0.1])


def test_plateau_cooldown():
    # after a reduction, cooldown=2 epochs are not counted as bad
    assert plateau_run([5] * 8, patience=0, cooldown=2) == \
        pytest.approx([1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])
    s = S.ReduceLROnPlateau(make_opt(), patience=0, cooldown=2)
    s.step(1.0)
    s.step(1.0)
    assert s.in_cooldown and s.cooldown_counter == 2


def test_plateau_threshold_modes():
    # rel: 1% better than best 10 means below 9.9; abs 0.1: below 9.9 as well
    seq = [10.0, 9.95, 9.95, 9.95]
    assert plateau_run(seq, patience=1, threshold=0.01) == pytest.approx([1, 1, 0.1, 0.1])
    assert plateau_run(seq, patience=1, threshold=0.1, threshold_mode="abs") == \
        pytest.approx([1, 1, 0.1, 0.1])
    assert plateau_run(seq, patience=1, threshold=0.01, threshold_mode="abs") == \
        pytest.approx([1, 1, 1, 0.1])  # 9.95 improves on 10 by more than 0.01
    assert plateau_run(seq, patience=1, threshold=0.001) == pytest.approx([1, 1, 1, 0.1])
    # abs threshold does not scale with the metric
    seq = [100.0, 99.5, 99.0, 98.5]
    assert plateau_run(seq, patience=0, threshold=0.01, threshold_mode="abs") == [1, 1, 1, 1]
    # rel 1% of best 100: only 98.5 is below 99 (99 itself is not, strictly)
    assert plateau_run(seq, patience=0, threshold=0.01, threshold_mode="rel") == \
        pytest.approx([1, 0.1, 0.01, 0.01])
    # max mode
    assert plateau_run([1.0, 1.2, 1.1, 1.3], mode="max", patience=0) == pytest.approx([1, 1, 0.1, 0.1])


def test_plateau_negative_metric_rel():
    # with a negative best, 'rel' uses |best|: a worse value is never an improvement
    assert plateau_run([-100.0, -100.005, -100.006], mode="min", patience=0, threshold=1e-3) == \
        pytest.approx([1, 0.1, 0.01])
    assert plateau_run([-100.0, -99.995, -99.99], mode="max", patience=0, threshold=1e-3) == \
        pytest.approx([1, 0.1, 0.01])
    assert plateau_run([-100.0, -99.0, -98.0], mode="max", patience=0, threshold=1e-3) == [1, 1, 1]


def test_plateau_min_lr_eps_nan():
    assert plateau_run([1] * 6, patience=0, min_lr=0.05) == pytest.approx([1, 0.1, 0.05, 0.05, 0.05, 0.05])
    # a reduction smaller than eps is skipped
    assert plateau_run([1] * 3, patience=0, factor=0.9, eps=0.5) == [1, 1, 1]
    assert plateau_run([1.0, float("nan"), float("nan")], patience=1) == pytest.approx([1, 1, 0.1])
    s = S.ReduceLROnPlateau(make_opt())
    s.step(np.float32(2.5))
    s.step(np.array(2.0))
    assert s.best == 2.0
    with pytest.raises(TypeError, match="ReduceLROnPlateau.step: metrics"):
        s.step("low")


# -- OneCycleLR -------------------------------------------------------------

def test_onecycle_shape_and_momentum():
    T = 100
    opt = make_opt(lrs=[0.0], momentum=0.5)
    s = S.OneCycleLR(opt, max_lr=2.0, total_steps=T, pct_start=0.3)
    g = opt.param_groups[0]
    lrs, moms = [g["lr"]], [g["momentum"]]
    for _ in range(T - 1):
        opt.step()
        s.step()
        lrs.append(g["lr"])
        moms.append(g["momentum"])
    lrs, moms = np.array(lrs), np.array(moms)
    peak = int(0.3 * T) - 1
    assert lrs[0] == pytest.approx(2.0 / 25)
    assert lrs.argmax() == peak and lrs[peak] == pytest.approx(2.0)
    assert lrs[-1] == pytest.approx(2.0 / 25 / 1e4)
    assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    # momentum moves inversely: max at the ends, base at the peak
    assert moms[0] == pytest.approx(0.95) and moms[-1] == pytest.approx(0.95)
    assert moms.argmin() == peak and moms[peak] == pytest.approx(0.85)
    assert np.all(np.diff(moms[:peak + 1]) < 0) and np.all(np.diff(moms[peak:]) > 0)
    # cosine form inside the first phase
    t = 10
    pct = t / (0.3 * T - 1)
    want = 2.0 + (0.08 - 2.0) / 2 * (1 + math.cos(math.pi * pct))
    assert lrs[t] == pytest.approx(want, rel=1e-14)
    # the final step is allowed, one more is not, and it changes nothing
    opt.step()
    s.step()
    state = s.state_dict()
    with pytest.raises(ValueError, match="OneCycleLR.*total_steps is 100"):
        s.step()
    assert s.state_dict() == state and s.last_epoch == T


def test_onecycle_betas_and_no_cycle():
    opt = make_opt(cls=StandInAdam)
    s = S.OneCycleLR(opt, max_lr=1.0, total_steps=20)
    assert [g["betas"] for g in opt.param_groups] == [(0.95, 0.999)] * 3
    for _ in range(3):
        s.step()
    assert all(0.85 < g["betas"][0] < 0.95 and g["betas"][1] == 0.999 for g in opt.param_groups)
    opt = make_opt(momentum=0.7)
    S.OneCycleLR(opt, max_lr=1.0, total_steps=20, cycle_momentum=False).step()
    assert [g["momentum"] for g in opt.param_groups] == [0.7] * 3

    class NoMomentum(StandInSGD):
        pass
    opt = make_opt(cls=NoMomentum)
    del opt.defaults["momentum"]
    with pytest.raises(ValueError, match="OneCycleLR: cycle_momentum"):
        S.OneCycleLR(opt, max_lr=1.0, total_steps=20)
    S.OneCycleLR(opt, max_lr=1.0, total_steps=20, cycle_momentum=False)


# -- state_dict / resume ----------------------------------------------------

RESUME_CASES = {
    "StepLR": lambda o: S.StepLR(o, 6, 0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, [10, 25, 40]),
    "ExponentialLR": lambda o: S.ExponentialLR(o, 0.9),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, 35, 1e-3),
    "LinearLR": lambda o: S.LinearLR(o, 0.2, 0.9, 30),
    "LambdaLR": lambda o: S.LambdaLR(o, lambda e: 0.5 ** (e / 10)),
    "SequentialLR": lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, 1, 10), S.CosineAnnealingLR(o, 30)], [15]),
    "WarmupLR": lambda o: S.WarmupLR(S.CosineAnnealingLR(o, 50), 12, 0.05),
    "Sequential-of-Warmup": lambda o: S.SequentialLR(
        o, [S.WarmupLR(S.ExponentialLR(o, 0.9), 5), S.StepLR(o, 3)], [20]),
    "OneCycleLR": lambda o: S.OneCycleLR(o, [1.0, 2.0, 3.0], total_steps=N, three_phase=True),
}


@pytest.mark.parametrize("load_optimizer", [True, False], ids=["with-opt-state", "sched-only"])
@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_state_dict_resume(name, load_optimizer):
    make = RESUME_CASES[name]
    o = make_opt(momentum=0.9)
    full = trajectory(make(o), o)
    moms_end = [g["momentum"] for g in o.param_groups]

    o1 = make_opt(momentum=0.9)
    s1 = make(o1)
    first = trajectory(s1, o1, n=20)
    # plain Python values: survives JSON
    saved = json.loads(json.dumps(s1.state_dict()))
    saved_opt = json.loads(json.dumps(o1.state_dict()))

    o2 = make_opt(momentum=0.9)
    s2 = make(o2)
    s2.step()                       # a different position, overwritten by the load
    if load_optimizer:
        o2.load_state_dict(saved_opt)
    s2.load_state_dict(saved)
    assert s2.get_last_lr() == first[-1].tolist()
    assert [g["lr"] for g in o2.param_groups] == first[-1].tolist()
    rest = trajectory(s2, o2, n=N - 20)
    assert np.array_equal(np.concatenate([first, rest[1:]]), full)
    assert [g["momentum"] for g in o2.param_groups] == moms_end
    assert s2.state_dict() == make_after(make, N)


def make_after(make, n):
    o = make_opt(momentum=0.9)
    s = make(o)
    for _ in range(n):
        s.step()
    return s.state_dict()


def test_plateau_state_dict_resume():
    metrics = [3, 2, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1.4, 1.4, 1.4, 1.4]
    kw = dict(patience=1, cooldown=1, factor=0.5, min_lr=[0.0, 0.01, 0.0])
    o = make_opt()
    s = S.ReduceLROnPlateau(o, **kw)
    for m in metrics:
        s.step(m)
    o1 = make_opt()
    s1 = S.ReduceLROnPlateau(o1, **kw)
    for m in metrics[:7]:
        s1.step(m)
    saved = json.loads(json.dumps(s1.state_dict()))
    o2 = make_opt()
    s2 = S.ReduceLROnPlateau(o2, **kw)
    s2.load_state_dict(saved)
    assert [g["lr"] for g in o2.param_groups] == s1.get_last_lr()
    for m in metrics[7:]:
        s2.step(m)
    assert s2.state_dict() == s.state_dict()
    assert s2.get_last_lr() == s.get_last_lr() == [g["lr"] for g in o.param_groups]


def test_lambda_object_state_saved():
    class Decay:
        def __init__(self):
            self.rate = 0.5

        def __call__(self, e):
            return self.rate ** e

    o = make_opt()
    f = Decay()
    f.rate = 0.8
    sd = S.LambdaLR(o, f).state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.8}] * 3
    o2 = make_opt()
    g = Decay()
    s2 = S.LambdaLR(o2, g)
    s2.load_state_dict(sd)
    assert g.rate == 0.8
    assert S.LambdaLR(make_opt(), lambda e: 1.0).state_dict()["lr_lambdas"] == [None] * 3


def test_load_state_dict_rejects_bad_state():
    o = make_opt()
    s = S.StepLR(o, 5)
    for _ in range(3):
        s.step()
    before = s.state_dict()
    bad = dict(before, step_size=0)
    with pytest.raises(ValueError, match="StepLR: step_size"):
        s.load_state_dict(bad)
    assert s.state_dict() == before
    with pytest.raises(KeyError, match="unexpected keys \\['T_max'"):
        s.load_state_dict(dict(before, T_max=3))
    with pytest.raises(KeyError, match="missing keys \\['gamma'\\]"):
        s.load_state_dict({k: v for k, v in before.items() if k != "gamma"})
    with pytest.raises(ValueError, match="base_lrs"):
        s.load_state_dict(dict(before, base_lrs=[0.1]))
    assert s.state_dict() == before


def test_resume_with_last_epoch():
    o = make_opt()
    s = S.CosineAnnealingLR(o, 40)
    for _ in range(10):
        s.step()
    o2 = make_opt()
    o2.load_state_dict(o.state_dict())
    s2 = S.CosineAnnealingLR(o2, 40, last_epoch=9)
    assert s2.last_epoch == 10 and s2.get_last_lr() == s.get_last_lr()
    with pytest.raises(KeyError, match="CosineAnnealingLR: optimizer.param_groups\\[0\\] has no 'initial_lr'"):
        S.CosineAnnealingLR(make_opt(), 40, last_epoch=9)


def test_param_group_count_change():
    o = make_opt()
    s = S.ExponentialLR(o, 0.9)
    o.param_groups.append({"params": [], "lr": 0.1, "momentum": 0.0})
    with pytest.raises(ValueError, match="ExponentialLR: the optimizer has 4 param groups"):
        s.step()


# -- argument validation ----------------------------------------------------

BAD = [
    (lambda o: S.StepLR(o, 0), "StepLR: step_size"),
    (lambda o: S.StepLR(o, 2.5), "StepLR: step_size"),
    (lambda o: S.StepLR(o, 3, gamma=0.0), "StepLR: gamma"),
    (lambda o: S.StepLR(o, 3, gamma=float("nan")), "StepLR: gamma"),
    (lambda o: S.MultiStepLR(o, [3, -1]), "MultiStepLR: milestones\\[1\\]"),
    (lambda o: S.MultiStepLR(o, 5), "MultiStepLR: milestones"),
    (lambda o: S.ExponentialLR(o, -0.5), "ExponentialLR: gamma"),
    (lambda o: S.CosineAnnealingLR(o, 0), "CosineAnnealingLR: T_max"),
    (lambda o: S.CosineAnnealingLR(o, 10, eta_min=-1), "CosineAnnealingLR: eta_min"),
    (lambda o: S.LinearLR(o, start_factor=1.5), "LinearLR: start_factor"),
    (lambda o: S.LinearLR(o, end_factor=-0.1), "LinearLR: end_factor"),
    (lambda o: S.LinearLR(o, total_iters=0), "LinearLR: total_iters"),
    (lambda o: S.LambdaLR(o, [lambda e: 1.0]), "LambdaLR: lr_lambda has 1"),
    (lambda o: S.LambdaLR(o, lambda e: -1.0), "LambdaLR: lr_lambda\\[0\\]\\(0\\) returned -1.0"),
    (lambda o: S.StepLR(o, 3, last_epoch=-2), "StepLR: last_epoch"),
    (lambda o: S.SequentialLR(o, [], []), "SequentialLR: schedulers"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(o, 3)], []), "SequentialLR: milestones"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(o, 3), S.StepLR(o, 3)], [5, 5]),
     "SequentialLR: milestones must be strictly increasing"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(o, 3)], [0]), "SequentialLR: milestones\\[0\\]"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.ReduceLROnPlateau(o)], [3]),
     "SequentialLR: schedulers\\[1\\] is a ReduceLROnPlateau"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 2), S.StepLR(make_opt(), 2)], [3]),
     "SequentialLR: schedulers\\[1\\] .* different optimizer"),
    (lambda o: S.WarmupLR(S.StepLR(o, 2), -1), "WarmupLR: warmup_steps"),
    (lambda o: S.WarmupLR(S.StepLR(o, 2), 5, start_factor=2.0), "WarmupLR: start_factor"),
    (lambda o: S.WarmupLR(S.ReduceLROnPlateau(o), 5), "WarmupLR: scheduler is a ReduceLROnPlateau"),
    (lambda o: S.OneCycleLR(o, 1.0), "OneCycleLR: give total_steps"),
    (lambda o: S.OneCycleLR(o, 1.0, epochs=3), "OneCycleLR: give total_steps"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=0), "OneCycleLR: total_steps"),
    (lambda o: S.OneCycleLR(o, 1.0, epochs=0, steps_per_epoch=5), "OneCycleLR: epochs"),
    (lambda o: S.OneCycleLR(o, 0.0, total_steps=10), "OneCycleLR: max_lr"),
    (lambda o: S.OneCycleLR(o, [1.0, 2.0], total_steps=10), "OneCycleLR: max_lr has 2 values"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, pct_start=1.5), "OneCycleLR: pct_start"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, pct_start=0.1), "OneCycleLR: pct_start\\*total_steps = 1"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, pct_start=1.0), "OneCycleLR: pct_start=1.0 leaves"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, pct_start=0.6, three_phase=True), "OneCycleLR: pct_start=0.6"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, anneal_strategy="exp"), "OneCycleLR: anneal_strategy"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, div_factor=0), "OneCycleLR: div_factor"),
    (lambda o: S.OneCycleLR(o, 1.0, total_steps=10, base_momentum=1.2), "OneCycleLR: base_momentum"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), "ReduceLROnPlateau: factor"),
    (lambda o: S.ReduceLROnPlateau(o, mode="lowest"), "ReduceLROnPlateau: mode"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="pct"), "ReduceLROnPlateau: threshold_mode"),
    (lambda o: S.ReduceLROnPlateau(o, patience=-1), "ReduceLROnPlateau: patience"),
    (lambda o: S.ReduceLROnPlateau(o, cooldown=1.5), "ReduceLROnPlateau: cooldown"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.0]), "ReduceLROnPlateau: min_lr has 1 values"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=-1e-3), "ReduceLROnPlateau: min_lr"),
    (lambda o: S.ReduceLROnPlateau(o, threshold=-1), "ReduceLROnPlateau: threshold"),
]


@pytest.mark.parametrize("make,match", BAD, ids=[m for _, m in BAD])
def test_invalid_arguments(make, match):
    o = make_opt(momentum=0.9)
    with pytest.raises(ValueError, match=match):
        make(o)


def test_invalid_optimizer_and_callables():
    with pytest.raises(TypeError, match="StepLR: optimizer must have param_groups"):
        S.StepLR(object(), 3)
    o = make_opt()
    o.param_groups[1]["lr"] = -0.1
    with pytest.raises(ValueError, match="StepLR: optimizer.param_groups\\[1\\]\\['lr'\\]"):
        S.StepLR(o, 3)
    with pytest.raises(TypeError, match="LambdaLR: lr_lambda\\[0\\] must be callable"):
        S.LambdaLR(make_opt(), 0.5)
    with pytest.raises(TypeError, match="WarmupLR: scheduler must be a fastnn LRScheduler"):
        S.WarmupLR(make_opt(), 3)
