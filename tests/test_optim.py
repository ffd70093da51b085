"""Optimizers, regularization and gradient clipping against float64
references of the published update rules (written out here), against
torch.optim when torch is installed, across thread counts and through
state_dict round trips."""
import math

import numpy as np
import pytest

import fastnn
from fastnn.nn import Parameter
from fastnn.nn.utils import clip_grad_norm_, clip_grad_value_
from fastnn import optim

F64 = np.float64

# torch.optim's defaults, stated independently of the implementation.
DEFAULTS = {
    "SGD": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                maximize=False),
    "Adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                    eps=1e-10, maximize=False),
    "RMSprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                    centered=False, maximize=False),
    "Adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False),
    "Adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False, decoupled_weight_decay=False),
    "AdamW": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                  maximize=False, decoupled_weight_decay=True),
}
REG_DEFAULTS = dict(l1=0.0, l1_mode="gradient", max_norm=None)


# ------------------------------------------------------------ references --

def ref_step(name, hp, w, g, st):
    """One float64 step of the published rule (torch.optim's documented
    algorithm), with fastnn's regularization options. Returns the new w."""
    lr = hp["lr"]
    if hp["maximize"]:
        g = -g
    decoupled = hp.get("decoupled_weight_decay", False)
    if hp["weight_decay"] and not decoupled:
        g = g + hp["weight_decay"] * w
    if hp["l1"] and hp["l1_mode"] == "gradient":
        g = g + hp["l1"] * np.sign(w)
    if decoupled:
        w = w * (1 - lr * hp["weight_decay"])
    st["t"] = t = st.get("t", 0) + 1
    if name == "SGD":
        if hp["momentum"]:
            b = g.copy() if t == 1 else hp["momentum"] * st["b"] + (1 - hp["dampening"]) * g
            st["b"] = b
            g = g + hp["momentum"] * b if hp["nesterov"] else b
        w = w - lr * g
    elif name == "Adagrad":
        clr = lr / (1 + (t - 1) * hp["lr_decay"])
        st["sum"] = st.get("sum", np.full_like(w, hp["initial_accumulator_value"])) + g * g
        w = w - clr * g / (np.sqrt(st["sum"]) + hp["eps"])
    elif name == "RMSprop":
        a = hp["alpha"]
        st["v"] = a * st.get("v", 0.0) + (1 - a) * g * g
        v = st["v"]
        if hp["centered"]:
            st["ga"] = a * st.get("ga", 0.0) + (1 - a) * g
            v = v - st["ga"] ** 2
        if hp["momentum"] > 0:
            st["b"] = hp["momentum"] * st.get("b", 0.0) + g / (np.sqrt(v) + hp["eps"])
            w = w - lr * st["b"]
        else:
            w = w - lr * g / (np.sqrt(v) + hp["eps"])
    elif name == "Adadelta":
        rho, eps = hp["rho"], hp["eps"]
        st["v"] = rho * st.get("v", 0.0) + (1 - rho) * g * g
        delta = np.sqrt(st.get("u", 0.0) + eps) / np.sqrt(st["v"] + eps) * g
        st["u"] = rho * st.get("u", 0.0) + (1 - rho) * delta * delta
        w = w - lr * delta
    elif name in ("Adam", "AdamW"):
        b1, b2 = hp["betas"]
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
        v = st["v"]
        if hp["amsgrad"]:
            st["vmax"] = v = np.maximum(st.get("vmax", 0.0), v)
        mhat = st["m"] / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        w = w - lr * mhat / (np.sqrt(vhat) + hp["eps"])
    else:
        raise AssertionError(name)
    if hp["l1"] and hp["l1_mode"] == "proximal":
        w = np.sign(w) * np.maximum(np.abs(w) - lr * hp["l1"], 0.0)
    if hp["max_norm"] is not None and w.ndim >= 2:
        rows = w.reshape(w.shape[0], -1)
        norms = np.sqrt((rows ** 2).sum(axis=1, keepdims=True))
        scale = np.where(norms > hp["max_norm"], hp["max_norm"] / (norms + 1e-7), 1.0)
        w = (rows * scale).reshape(w.shape)
    return w


class Problem:
    """A fixed noisy quadratic: grad(w, k) = s * H * (w - C) + noise[k], with
    s = -1 for maximisation (so ascent converges too)."""

    def __init__(self, shape=(6, 8), steps=100, seed=0, maximize=False, small_rows=0):
        rng = np.random.default_rng(seed)
        self.H = rng.uniform(0.5, 2.0, shape)
        self.C = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.5, shape)
        self.C[:small_rows] *= 0.05           # optima an L1 penalty pulls to exactly 0
        self.noise = 0.3 * rng.standard_normal((steps,) + shape)
        self.w0 = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        self.s = -1.0 if maximize else 1.0
        self.steps = steps

    def grad(self, w, k):
        return self.s * self.H * (np.asarray(w, F64) - self.C) + self.noise[k]


def full_hp(name, kw):
    hp = dict(DEFAULTS[name], **REG_DEFAULTS)
    hp.update(kw)
    return hp


def run_fastnn(name, kw, prob):
    p = Parameter(prob.w0)
    opt = getattr(optim, name)([p], **kw)
    traj = []
    for k in range(prob.steps):
        p.grad[...] = prob.grad(p.data, k).astype(np.float32)
        opt.step()
        traj.append(p.data.copy())
    return np.array(traj)


def run_ref(name, kw, prob):
    hp = full_hp(name, kw)
    w, st, traj = prob.w0.astype(F64), {}, []
    for k in range(prob.steps):
        w = ref_step(name, hp, w, prob.grad(w, k), st)
        traj.append(w.copy())
    return np.array(traj)


VARIANTS = [
    ("SGD", {}),
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, maximize=True)),
    ("Adagrad", {}),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, maximize=True)),
    ("RMSprop", {}),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(momentum=0.9, lr=1e-3)),
    ("RMSprop", dict(centered=True, momentum=0.5, lr=3e-3, alpha=0.98)),
    ("RMSprop", dict(weight_decay=0.1, maximize=True)),
    ("Adadelta", {}),
    ("Adadelta", dict(rho=0.95, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, maximize=True)),
    ("Adam", {}),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", {}),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]


def _id(v):
    name, kw = v
    return name + "-" + ("-".join(f"{k}={x}" for k, x in kw.items()) or "defaults")


@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_trajectory_matches_float64_reference(variant):
    name, kw = variant
    prob = Problem(maximize=kw.get("maximize", False))
    got = run_fastnn(name, kw, prob)
    want = run_ref(name, kw, prob)
    assert np.abs(got[-1] - prob.w0).max() > 1e-3          # it moved
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_trajectory_matches_torch(variant):
    torch = pytest.importorskip("torch")
    name, kw = variant
    prob = Problem(maximize=kw.get("maximize", False))
    got = run_fastnn(name, kw, prob)
    t = torch.tensor(prob.w0.copy(), requires_grad=True)
    opt = getattr(torch.optim, name)([t], **kw)
    traj = []
    for k in range(prob.steps):
        t.grad = torch.from_numpy(prob.grad(t.detach().numpy(), k).astype(np.float32))
        opt.step()
        traj.append(t.detach().numpy().copy())
    np.testing.assert_allclose(got, np.array(traj), rtol=1e-5, atol=1e-6)


# -------------------------------------------------------- regularization --

REG_VARIANTS = [
    ("SGD", dict(lr=0.05, momentum=0.9, l1=0.2)),
    ("SGD", dict(lr=0.05, weight_decay=0.2, l1=0.2)),                    # elastic net
    ("SGD", dict(lr=0.05, l1=0.5, l1_mode="proximal")),
    ("SGD", dict(lr=0.02, momentum=0.5, weight_decay=0.1, l1=1.0, l1_mode="proximal")),
    ("Adam", dict(lr=0.02, l1=1.5, l1_mode="proximal")),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, l1=0.8, l1_mode="proximal", max_norm=1.5)),
    ("Adagrad", dict(lr=0.1, l1=0.1, max_norm=1.0)),
    ("RMSprop", dict(lr=3e-3, centered=True, momentum=0.5, weight_decay=0.05, l1=3.0,
                     l1_mode="proximal")),
    ("Adadelta", dict(l1=0.1, max_norm=1.2, maximize=True)),
]


@pytest.mark.parametrize("variant", REG_VARIANTS, ids=_id)
def test_regularized_trajectory_matches_reference(variant):
    name, kw = variant
    prob = Problem(maximize=kw.get("maximize", False), seed=3, small_rows=2)
    got = run_fastnn(name, kw, prob)
    want = run_ref(name, kw, prob)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if kw.get("l1_mode") == "proximal":
        # soft-thresholding puts the weights with small optima at exactly 0
        zeros = np.count_nonzero(got[-1][:2] == 0.0)
        assert zeros >= 8 and zeros == np.count_nonzero(want[-1][:2] == 0.0)
        assert np.count_nonzero(got[-1][2:]) > 0
    if kw.get("max_norm"):
        norms = np.sqrt((got.astype(F64) ** 2).sum(axis=2))    # (steps, rows)
        assert norms.max() <= kw["max_norm"] * (1 + 1e-6)
        assert norms.max() > 0.999 * kw["max_norm"]             # the constraint was active


def test_l1_gradient_term_sign_of_zero_is_zero():
    p = Parameter(np.array([0.0, 2.0, -2.0], np.float32))
    opt = optim.SGD([p], lr=0.5, l1=1.0)
    opt.step()                                                  # zero gradient
    np.testing.assert_array_equal(p.data, [0.0, 1.5, -1.5])


def test_max_norm_rows_channels_and_biases():
    rng = np.random.default_rng(1)
    lin = Parameter(3 * rng.standard_normal((5, 7)))
    conv = Parameter(3 * rng.standard_normal((4, 3, 2, 2)))
    bias = Parameter(10 * np.ones(6))
    small = Parameter(0.01 * rng.standard_normal((3, 4)))
    ps = [lin, conv, bias, small]
    before = [p.data.astype(F64) for p in ps]
    opt = optim.SGD(ps, lr=0.0, max_norm=2.0)                   # lr 0: only the constraint
    opt.step()
    for p, b in zip(ps, before):
        if b.ndim < 2:
            np.testing.assert_array_equal(p.data, b.astype(np.float32))
            continue
        rows = b.reshape(b.shape[0], -1)
        n = np.sqrt((rows ** 2).sum(1, keepdims=True))
        want = np.where(n > 2.0, rows * (2.0 / (n + 1e-7)), rows).reshape(b.shape)
        np.testing.assert_allclose(p.data, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(small.data, before[3].astype(np.float32))


def test_max_norm_and_soft_threshold_functions():
    rng = np.random.default_rng(2)
    w = Parameter(rng.standard_normal((8, 30)))
    optim.max_norm_([w], 1.0)
    assert np.sqrt((w.data.astype(F64) ** 2).sum(1)).max() <= 1.0 + 1e-6
    v = Parameter(np.array([-3.0, -0.5, 0.0, 0.2, 1.0, np.nan], np.float32))
    optim.soft_threshold_(v, 0.5)
    np.testing.assert_array_equal(v.data[:5], [-2.5, 0.0, 0.0, 0.0, 0.5])
    assert np.isnan(v.data[5])
    with pytest.raises(ValueError, match="max_norm_: max_norm"):
        optim.max_norm_([w], -1.0)
    with pytest.raises(ValueError, match="soft_threshold_: threshold"):
        optim.soft_threshold_([w], -0.1)
    with pytest.raises(TypeError, match=r"parameters\[0\]"):
        optim.max_norm_([w.data], 1.0)


# ------------------------------------------------------------ the API --

def test_param_groups_with_different_hyperparameters():
    prob_a, prob_b = Problem(seed=5), Problem(seed=6)
    a, b = Parameter(prob_a.w0), Parameter(prob_b.w0)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01, "weight_decay": 0.1}],
                    lr=0.05, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[1]["lr"] == 0.01
    assert opt.param_groups[1]["momentum"] == 0.9                   # from the defaults
    ha, hb = full_hp("SGD", dict(lr=0.05, momentum=0.9)), \
        full_hp("SGD", dict(lr=0.01, momentum=0.9, weight_decay=0.1))
    wa, wb, sa, sb = prob_a.w0.astype(F64), prob_b.w0.astype(F64), {}, {}
    for k in range(50):
        a.grad[...] = prob_a.grad(a.data, k).astype(np.float32)
        b.grad[...] = prob_b.grad(b.data, k).astype(np.float32)
        opt.step()
        wa = ref_step("SGD", ha, wa, prob_a.grad(wa, k), sa)
        wb = ref_step("SGD", hb, wb, prob_b.grad(wb, k), sb)
    np.testing.assert_allclose(a.data, wa, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.data, wb, rtol=1e-5, atol=1e-6)


GROUP_VARIANTS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("RMSprop", dict(centered=True, momentum=0.5, l1=0.01)),
    ("Adadelta", dict(maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, l1=0.05, l1_mode="proximal", max_norm=1.0)),
    ("AdamW", dict(lr=0.01)),
]


@pytest.mark.parametrize("variant", GROUP_VARIANTS, ids=_id)
def test_group_update_equals_separate_updates(variant):
    """Updating several arrays in one call gives bitwise what separate
    optimizers give, also when some arrays skip steps (grad None), so that
    per-array step counts (bias corrections, first momentum step) differ."""
    name, kw = variant
    rng = np.random.default_rng(14)
    shapes = [(5, 7), (7,), (4, 3, 2), (1,)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    together = [Parameter(w) for w in w0]
    alone = [Parameter(w) for w in w0]
    opt = getattr(optim, name)(together, **kw)
    opts = [getattr(optim, name)([p], **kw) for p in alone]
    for k in range(12):
        for i, s in enumerate(shapes):
            g = rng.standard_normal(s).astype(np.float32)
            skip = (i * k) % 3 == 1               # arrays 1, 2 skip a third of the steps
            for p in (together[i], alone[i]):
                if skip:
                    p.grad = None
                else:
                    p.grad = g.copy()
        opt.step()
        for o, p in zip(opts, alone):
            o.step()
    for a, b in zip(together, alone):
        assert np.array_equal(a.data, b.data)
    steps = {opt.state[p].get("step") for p in together}
    assert name == "SGD" or len(steps) > 1


def test_assignment_copies_so_parameters_never_share_memory():
    base = Parameter(np.ones(10))
    other = Parameter(np.ones(4))
    other.data = base.data[2:6]                                  # copies the values
    other.grad = np.zeros(4, np.float32)
    assert not np.shares_memory(other.data, base.data)
    opt = optim.Adam([base, other])
    base.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(other.data, 1.0)               # zero gradient: unchanged
    assert np.all(base.data < 1.0)


def test_add_param_group_and_lr_changes_take_effect():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["dampening"] == 0.0
    a.grad[...] = 1.0
    b.grad[...] = 1.0
    opt.step()
    np.testing.assert_allclose(a.data, 0.9, rtol=1e-7)
    np.testing.assert_allclose(b.data, 0.5, rtol=1e-7)
    opt.param_groups[0]["lr"] = 0.2                             # as a scheduler does
    opt.param_groups[0]["initial_lr"] = 0.1
    opt.step()
    np.testing.assert_allclose(a.data, 0.7, rtol=1e-6)
    assert opt.state_dict()["param_groups"][0]["initial_lr"] == 0.1
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="SGD: lr"):
        opt.add_param_group({"params": [Parameter(np.ones(2))], "lr": -1.0})


def test_zero_grad_keeps_the_arrays():
    a, b = Parameter(np.ones((2, 3))), Parameter(np.ones(4))
    ga = a.grad
    a.grad[...] = 3.0
    b.grad[...] = -1.0
    opt = optim.Adam([a, b])                 # the grads move into the flat buffer
    assert a.grad is not ga and np.all(a.grad == 3.0) and np.shares_memory(a.grad, opt.flat_grad)
    ga = a.grad
    opt.zero_grad()
    assert a.grad is ga and not a.grad.any() and not b.grad.any()


def test_frozen_parameters_and_closure():
    a, frozen = Parameter(np.ones(3)), Parameter(np.ones(3), requires_grad=False)
    assert frozen.grad is None                           # no gradient slot
    a.grad[...] = 1.0
    opt = optim.Adam([a, frozen], lr=0.1, weight_decay=0.5)
    assert opt.step(lambda: 42.0) == 42.0
    np.testing.assert_array_equal(frozen.data, 1.0)
    assert frozen not in opt.state and opt.state[a]["step"] == 1
    assert np.all(a.data < 1.0)


def test_empty_parameters_are_fine():
    e, a = Parameter(np.zeros((0, 4))), Parameter(np.ones(2))
    for cls in (optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adadelta, optim.Adam):
        opt = cls([e, a], max_norm=1.0)
        opt.step()
        del opt
    assert clip_grad_norm_([e], 1.0) == 0.0


BAD = [
    (optim.SGD, dict(lr=-0.1), ValueError, "SGD: lr"),
    (optim.SGD, dict(lr="0.1"), TypeError, "SGD: lr"),
    (optim.SGD, dict(momentum=-0.5), ValueError, "SGD: momentum"),
    (optim.SGD, dict(dampening=1.5), ValueError, "SGD: dampening"),
    (optim.SGD, dict(weight_decay=float("nan")), ValueError, "SGD: weight_decay"),
    (optim.SGD, dict(nesterov=True), ValueError, "SGD: nesterov"),
    (optim.SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), ValueError, "SGD: nesterov"),
    (optim.SGD, dict(nesterov=1), TypeError, "SGD: nesterov"),
    (optim.SGD, dict(maximize="yes"), TypeError, "SGD: maximize"),
    (optim.Adagrad, dict(lr_decay=-1), ValueError, "Adagrad: lr_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=-1), ValueError,
     "Adagrad: initial_accumulator_value"),
    (optim.Adagrad, dict(eps=-1e-10), ValueError, "Adagrad: eps"),
    (optim.RMSprop, dict(alpha=1.5), ValueError, "RMSprop: alpha"),
    (optim.RMSprop, dict(momentum=-0.1), ValueError, "RMSprop: momentum"),
    (optim.RMSprop, dict(eps=-1.0), ValueError, "RMSprop: eps"),
    (optim.Adadelta, dict(rho=1.1), ValueError, "Adadelta: rho"),
    (optim.Adadelta, dict(lr=math.inf), ValueError, "Adadelta: lr"),
    (optim.Adam, dict(betas=(1.0, 0.999)), ValueError, r"Adam: betas\[0\]"),
    (optim.Adam, dict(betas=(0.9, -0.1)), ValueError, r"Adam: betas\[1\]"),
    (optim.Adam, dict(betas=0.9), ValueError, "Adam: betas"),
    (optim.Adam, dict(eps=-1e-8), ValueError, "Adam: eps"),
    (optim.Adam, dict(amsgrad=None), TypeError, "Adam: amsgrad"),
    (optim.AdamW, dict(weight_decay=-0.01), ValueError, "AdamW: weight_decay"),
    (optim.AdamW, dict(l1=-1.0), ValueError, "AdamW: l1"),
    (optim.Adam, dict(l1_mode="prox"), ValueError, "Adam: l1_mode"),
    (optim.Adam, dict(max_norm=0.0), ValueError, "Adam: max_norm"),
    (optim.RMSprop, dict(max_norm="big"), TypeError, "RMSprop: max_norm"),
]


@pytest.mark.parametrize("cls,kw,exc,msg", BAD, ids=[f"{c.__name__}-{m}" for c, _, _, m in BAD])
def test_bad_hyperparameters_raise(cls, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        cls([Parameter(np.ones(2))], **kw)
    with pytest.raises(exc, match=msg):                 # in a group dict too
        cls([{"params": [Parameter(np.ones(2))], **kw}])


def test_bad_params_raise():
    p = Parameter(np.ones(2))
    with pytest.raises(TypeError, match="Adam: params"):
        optim.Adam(p)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="not a set"):
        optim.Adam({p})
    with pytest.raises(TypeError, match=r"params\[1\]"):
        optim.SGD([p, np.ones(2)])
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}])


def test_bad_gradient_assignments_raise():
    p = Parameter(np.ones(4))
    opt = optim.Adam([p])
    p.grad = np.ones(4)                                         # float64: copied as float32
    assert p.grad.dtype == np.float32 and p.grad.base is not None   # still the flat view
    with pytest.raises(ValueError, match=r"Parameter.grad: cannot assign an array of shape \(5,\)"):
        p.grad = np.ones(5, np.float32)
    with pytest.raises(TypeError, match="Parameter.grad: expected a numeric array"):
        p.grad = np.array(["a"] * 4)
    p.grad = np.ones(8, np.float32)[::2]                        # strided: copied
    opt.step()
    assert np.all(p.data < 1.0)


def test_defaults_and_repr():
    p = Parameter(np.ones(2))
    for name, want in DEFAULTS.items():
        opt = getattr(optim, name)([p])
        got = {k: opt.defaults[k] for k in want}
        assert got == want, name
        assert all(opt.defaults[k] == v for k, v in REG_DEFAULTS.items())
        assert f"{name} (" in repr(opt) and "lr:" in repr(opt)
        del opt                     # a Parameter belongs to one live optimizer at a time


# -------------------------------------------------------------- threads --

@pytest.fixture
def restore_threads():
    n = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(n)


THREAD_VARIANTS = [
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.01, momentum=0.9, weight_decay=0.01, l1=0.01, max_norm=3.0)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01)),
    ("RMSprop", dict(centered=True, momentum=0.5, l1=0.01, l1_mode="proximal")),
    ("Adadelta", dict(weight_decay=0.01)),
    ("Adam", dict(amsgrad=True, max_norm=2.0)),
    ("AdamW", dict(lr=0.01, maximize=True, l1=0.01, l1_mode="proximal")),
]


@pytest.mark.parametrize("variant", THREAD_VARIANTS, ids=_id)
def test_one_and_two_threads_bitwise_equal(variant, restore_threads):
    name, kw = variant
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((1000, 1000)).astype(np.float32)   # 1M elements
    grads = rng.standard_normal((3, 1000, 1000)).astype(np.float32)
    out = []
    for nt in (1, 2):
        fastnn.set_num_threads(nt)
        p = Parameter(w0)
        opt = getattr(optim, name)([p], **kw)
        for g in grads:
            p.grad[...] = g
            clip_grad_norm_([p], 500.0)
            opt.step()
        out.append(p.data)
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], w0)


@pytest.mark.parametrize("variant", THREAD_VARIANTS, ids=_id)
def test_group_of_arrays_one_and_two_threads_bitwise_equal(variant, restore_threads):
    """Each thread takes the same share of every array of a group: the
    boundaries fall inside arrays of odd sizes, and an array smaller than a
    share's 16-element cut goes whole to one thread. 2 and 3 threads give
    the bits of 1 (an element skipped or updated twice would not)."""
    name, kw = variant
    rng = np.random.default_rng(13)
    shapes = [(17,), (300_001,), (701, 1001), (3, 5)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    out = []
    for nt in (1, 2, 3):
        fastnn.set_num_threads(nt)
        ps = [Parameter(w) for w in w0]
        opt = getattr(optim, name)(ps, **kw)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad[...] = g
            opt.step()
        out.append([p.data for p in ps])
    for other in out[1:]:
        for a, b in zip(out[0], other):
            assert np.array_equal(a, b)


ISA_VARIANTS = THREAD_VARIANTS + [
    ("SGD", dict(lr=0.01)),
    ("Adagrad", dict(lr=0.05, weight_decay=0.1, l1=0.01)),
    ("RMSprop", dict(momentum=0.5)),
    ("Adadelta", dict(l1=0.01, l1_mode="proximal")),
    ("Adam", {}),
    ("Adam", dict(amsgrad=True, weight_decay=0.1, l1=0.01)),
]


@pytest.mark.parametrize("variant", ISA_VARIANTS, ids=_id)
def test_avx512_and_baseline_loops_bitwise_equal(variant):
    """The update loops have an AVX-512 clone; it must give the same bits."""
    if "avx512" not in fastnn.available_isas():
        pytest.skip("no AVX-512 on this CPU")
    name, kw = variant
    rng = np.random.default_rng(12)
    w0 = rng.standard_normal(100_003).astype(np.float32)    # odd size: vector tails
    grads = rng.standard_normal((3, w0.size)).astype(np.float32)
    out = []
    isa = fastnn.get_isa()
    try:
        for path in ("ref", "avx512"):
            fastnn.set_isa(path)
            p = Parameter(w0)
            opt = getattr(optim, name)([p], **kw)
            for g in grads:
                p.grad[...] = g
                opt.step()
            out.append(p.data)
    finally:
        fastnn.set_isa(isa)
    assert np.array_equal(out[0], out[1])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_norm_and_max_norm_same_bits_on_any_threads_and_isa(norm_type, restore_threads):
    rng = np.random.default_rng(8)
    shapes = [(1000, 1003), (7,), (0,), (3, 33333), (5000,)]      # odd sizes: vector tails
    ws = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    res = []
    isa = fastnn.get_isa()
    try:
        for nt, path in [(1, "ref"), (2, "ref"), (1, isa), (2, isa)]:
            fastnn.set_num_threads(nt)
            fastnn.set_isa(path)
            ps = [Parameter(w) for w in ws]
            for p, g in zip(ps, gs):
                p.grad[...] = g
            total = clip_grad_norm_(ps, 1.0, norm_type)
            optim.max_norm_(ps, 30.0)
            res.append((total, [p.grad.copy() for p in ps], [p.data.copy() for p in ps]))
    finally:
        fastnn.set_isa(isa)
    for total, grads, datas in res[1:]:
        assert total == res[0][0]
        assert all(np.array_equal(a, b) for a, b in zip(grads, res[0][1]))
        assert all(np.array_equal(a, b) for a, b in zip(datas, res[0][2]))
    assert not np.array_equal(res[0][2][0], ws[0])              # some rows were rescaled
    assert not np.array_equal(res[0][1][0], gs[0])              # the grads were clipped


# ---------------------------------------------------------- state dicts --

STATE_VARIANTS = [
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1)),
    ("RMSprop", dict(centered=True, momentum=0.5)),
    ("Adadelta", {}),
    ("Adam", dict(lr=0.01, amsgrad=True, l1=0.1, l1_mode="proximal", max_norm=1.0)),
    ("AdamW", dict(lr=0.01)),
]


def _two_group_opt(name, kw, params):
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": kw.get("lr", 0.01) / 2}]
    return getattr(optim, name)(groups, **kw)


@pytest.mark.parametrize("variant", STATE_VARIANTS, ids=_id)
def test_resume_from_state_dict_is_bitwise_identical(variant):
    name, kw = variant
    rng = np.random.default_rng(9)
    shapes = [(4, 5), (5,), (3, 2, 2)]
    params = [Parameter(rng.standard_normal(s)) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(10)]
    opt = _two_group_opt(name, kw, params)

    def step(opt, params, gs):
        for p, g in zip(params, gs):
            p.grad[...] = g
        opt.step()

    for gs in grads[:5]:
        step(opt, params, gs)
    sd = opt.state_dict()
    saved_params = [p.data.copy() for p in params]
    for gs in grads[5:]:
        step(opt, params, gs)

    # the snapshot did not move with the optimizer
    for entry in sd["state"].values():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                assert not any(v is s for st in opt.state.values() for s in st.values())
    assert sd["param_groups"][0]["params"] == [0, 1] and sd["param_groups"][1]["params"] == [2]

    params2 = [Parameter(d) for d in saved_params]
    opt2 = _two_group_opt(name, dict(kw, lr=123.0), params2)   # hyper-parameters come from sd
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == opt.param_groups[1]["lr"]
    for gs in grads[5:]:
        step(opt2, params2, gs)
    for p, q in zip(params, params2):
        assert np.array_equal(p.data, q.data)


def test_load_state_dict_validates():
    rng = np.random.default_rng(10)
    a, b = Parameter(rng.standard_normal((3, 4))), Parameter(rng.standard_normal(4))
    opt = optim.Adam([a, b], amsgrad=True)
    a.grad[...] = 1.0
    b.grad[...] = 1.0
    opt.step()
    good = opt.state_dict()
    fresh = lambda: optim.Adam([Parameter(np.ones((3, 4))), Parameter(np.ones(4))])  # noqa: E731

    def bad(mutate, exc, msg):
        sd = opt.state_dict()
        mutate(sd)
        o = fresh()
        before = o.state_dict()
        with pytest.raises(exc, match=msg):
            o.load_state_dict(sd)
        assert o.state_dict()["param_groups"] == before["param_groups"] and not o.state

    bad(lambda sd: sd.pop("state"), ValueError, "keys 'state' and 'param_groups'")
    bad(lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), ValueError,
        "2 param groups")
    bad(lambda sd: sd["param_groups"][0]["params"].pop(), ValueError, "1 parameters in the state")
    bad(lambda sd: sd["state"][0].__setitem__("exp_avg", np.zeros((4, 3), np.float32)),
        ValueError, r"shape \(4, 3\)")
    bad(lambda sd: sd["state"][1].__setitem__("momentum_buffer", np.zeros(4, np.float32)),
        ValueError, "unknown entries")
    bad(lambda sd: sd["state"][1].pop("max_exp_avg_sq"), ValueError, "lacks")
    bad(lambda sd: sd["state"][1].__setitem__("step", -2), ValueError, "non-negative integer")
    bad(lambda sd: sd["state"].__setitem__(7, {}), ValueError, "state key 7")
    bad(lambda sd: sd["param_groups"][0].__setitem__("betas", (0.9, 1.5)), ValueError,
        r"betas\[1\]")
    bad(lambda sd: sd["state"][0].__setitem__("exp_avg", np.zeros((3, 4), np.int32)), TypeError,
        "float array")
    o = fresh()
    o.load_state_dict(good)
    assert o.state_dict()["state"][1]["step"] == 1
    np.testing.assert_array_equal(o.state_dict()["state"][0]["exp_avg"],
                                  good["state"][0]["exp_avg"])


def test_state_names_match_torch():
    a = Parameter(np.ones(3))
    a.grad[...] = 1.0
    expect = {
        "SGD": (dict(momentum=0.9), {"momentum_buffer"}),
        "Adagrad": ({}, {"step", "sum"}),
        "RMSprop": (dict(momentum=0.9, centered=True), {"step", "square_avg", "momentum_buffer",
                                                         "grad_avg"}),
        "Adadelta": ({}, {"step", "square_avg", "acc_delta"}),
        "Adam": (dict(amsgrad=True), {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}),
    }
    for name, (kw, names) in expect.items():
        opt = getattr(optim, name)([a], **kw)
        opt.step()
        assert set(opt.state_dict()["state"][0]) == names, name
        del opt
    opt = optim.SGD([a], lr=0.1)
    opt.step()
    assert opt.state_dict()["state"] == {}                       # no momentum, no state


# ------------------------------------------------------------- clipping --

def _grad_params(seed=11):
    rng = np.random.default_rng(seed)
    ps = [Parameter(np.zeros(s)) for s in [(30, 20), (20,), (5, 4, 3)]]
    for p in ps:
        p.grad[...] = rng.standard_normal(p.shape) * 3
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [1.0, 1e6])
def test_clip_grad_norm_matches_reference(norm_type, max_norm):
    ps = _grad_params()
    g64 = [p.grad.astype(F64) for p in ps]
    flat = np.concatenate([g.ravel() for g in g64])
    nt = math.inf if norm_type == "inf" else norm_type
    want = np.abs(flat).max() if math.isinf(nt) else (np.abs(flat) ** nt).sum() ** (1 / nt)
    before = [p.grad.copy() for p in ps]
    total = clip_grad_norm_(ps, max_norm, norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(want, rel=1e-12)
    coef = max_norm / (want + 1e-6)
    for p, g, b in zip(ps, g64, before):
        if coef < 1:
            np.testing.assert_allclose(p.grad, g * coef, rtol=1e-6)
        else:
            assert np.array_equal(p.grad, b)
    if coef < 1:
        after = np.concatenate([p.grad.astype(F64).ravel() for p in ps])
        got = np.abs(after).max() if math.isinf(nt) else (np.abs(after) ** nt).sum() ** (1 / nt)
        assert got == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    for nt in (2.0, 1.0, 3.0, math.inf):
        ps = _grad_params()
        ts = [torch.zeros(p.shape, requires_grad=True) for p in ps]
        for t, p in zip(ts, ps):
            t.grad = torch.from_numpy(p.grad.copy())
        total = clip_grad_norm_(ps, 2.0, nt)
        ttotal = torch.nn.utils.clip_grad_norm_(ts, 2.0, nt)
        assert total == pytest.approx(float(ttotal), rel=1e-6)
        for t, p in zip(ts, ps):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-6)


def test_clip_grad_norm_nonfinite():
    ps = _grad_params()
    ps[1].grad[3] = np.nan
    with pytest.raises(RuntimeError, match="clip_grad_norm_"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert math.isnan(clip_grad_norm_(ps, 1.0))
    assert np.isnan(ps[0].grad).all()                           # scaled by NaN, as torch
    for nt in (2.0, math.inf):
        ps = _grad_params()
        ps[2].grad[0, 0, 0] = np.inf
        assert clip_grad_norm_(ps, 1.0, nt) == math.inf
        assert not ps[0].grad.any()                             # scaled by 0, as torch
    ps = _grad_params()
    ps[0].grad[0, 0] = np.nan
    assert math.isnan(clip_grad_norm_(ps, 1.0, math.inf))     # NaN wins the max


def test_clip_grad_norm_arguments():
    ps = _grad_params()
    with pytest.raises(ValueError, match="clip_grad_norm_: max_norm"):
        clip_grad_norm_(ps, -1.0)
    with pytest.raises(ValueError, match="clip_grad_norm_: norm_type"):
        clip_grad_norm_(ps, 1.0, 0)
    with pytest.raises(TypeError, match="clip_grad_norm_: max_norm"):
        clip_grad_norm_(ps, "1")
    with pytest.raises(TypeError, match=r"clip_grad_norm_: parameters\[0\]"):
        clip_grad_norm_([np.ones(3)], 1.0)
    assert clip_grad_norm_([], 1.0) == 0.0
    single = _grad_params()[0]
    want = np.sqrt((single.grad.astype(F64) ** 2).sum())
    assert clip_grad_norm_(single, 1e9) == pytest.approx(want, rel=1e-12)


def test_clip_grad_value():
    ps = _grad_params()
    ps[0].grad[0, 0] = np.nan
    want = [np.clip(p.grad, -2.5, 2.5) for p in ps]
    assert clip_grad_value_(ps, 2.5) is None
    for p, w in zip(ps, want):
        np.testing.assert_array_equal(p.grad, w)            # NaN stays NaN (equal_nan)
    assert np.isnan(ps[0].grad[0, 0])
    with pytest.raises(ValueError, match="clip_grad_value_: clip_value"):
        clip_grad_value_(ps, -1.0)
    torch = pytest.importorskip("torch")
    ps = _grad_params()
    ts = [torch.from_numpy(p.grad.copy()) for p in ps]
    clip_grad_value_(ps, 0.5)
    for p, t in zip(ps, ts):
        np.testing.assert_array_equal(p.grad, t.clamp(-0.5, 0.5).numpy())
