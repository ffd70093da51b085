"""Flat parameters: an optimizer lays its parameters' data and gradients out
in one buffer each; Parameters are views; one fused C call per group."""
import gc

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn.utils import clip_grad_norm_


def mlp():
    fastnn.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


class CountC:
    """Stands in for the _C module of fastnn.optim.optimizers: counts calls."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __getattr__(self, name):
        fn = getattr(self.real, name)

        def call(*args):
            self.calls.append((name, args))
            return fn(*args)
        return call


def step_once(model, opt, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    loss = nn.CrossEntropyLoss()
    loss(model(x), y)
    opt.zero_grad()
    model.backward(loss.backward())
    opt.step()


def test_parameters_are_views_of_one_data_and_one_grad_buffer():
    model = mlp()
    before = [p.data.copy() for p in model.parameters()]
    opt = optim.SGD(model.parameters(), lr=0.1)
    for p, b in zip(model.parameters(), before):
        assert np.shares_memory(p.data, opt.flat_data) and np.shares_memory(p.grad, opt.flat_grad)
        assert p.data.flags.c_contiguous and p.data.ctypes.data % 64 == 0
        np.testing.assert_array_equal(p.data, b)
    n = sum(p.size for p in model.parameters())
    assert n <= opt.flat_data.size < n + 16 * 4 and opt.flat_grad.size == opt.flat_data.size


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=1e-3, weight_decay=1e-4)])
def test_one_c_call_per_parameter_group(monkeypatch, make):
    from fastnn.optim import optimizers
    model = mlp()
    opt = make(model.parameters())
    counter = CountC(optimizers._C)
    monkeypatch.setattr(optimizers, "_C", counter)
    for s in range(3):
        step_once(model, opt, s)
    assert len(counter.calls) == 3                      # one per step: one group
    params = list(model.parameters())
    for _, args in counter.calls:                       # every parameter's views, in order
        assert len(args[0]) == len(params) and len(args[1]) == len(params)
        for d, g, p in zip(args[0], args[1], params):
            assert d is p.data and g is p.grad
            assert np.shares_memory(d, opt.flat_data) and np.shares_memory(g, opt.flat_grad)
    counter.calls.clear()
    model2 = mlp()
    weights = [p for n, p in model2.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model2.named_parameters() if n.endswith("bias")]
    opt2 = make([{"params": weights}, {"params": biases, "weight_decay": 0.0}])
    step_once(model2, opt2)
    assert len(counter.calls) == 2
    assert [len(a[0]) for _, a in counter.calls] == [len(weights), len(biases)]


def test_flat_matches_per_parameter_updates():
    """The flat path gives the same bits as updating each parameter alone."""
    a, b = mlp(), mlp()
    opt_a = optim.Adam(a.parameters(), lr=1e-3, weight_decay=1e-2, amsgrad=True)
    opts_b = [optim.Adam([p], lr=1e-3, weight_decay=1e-2, amsgrad=True) for p in b.parameters()]
    for s in range(3):
        step_once(a, opt_a, s)
        rng = np.random.default_rng(s)
        x = rng.standard_normal((64, 784)).astype(np.float32)
        y = rng.integers(0, 10, 64)
        loss = nn.CrossEntropyLoss()
        loss(b(x), y)
        for o in opts_b:
            o.zero_grad()
        b.backward(loss.backward())
        for o in opts_b:
            o.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.data.tobytes() == q.data.tobytes()


def test_assignment_copies_into_the_view():
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    w = model[0].weight
    view = w.data
    w.data = np.ones((256, 784))                        # float64 in, copied as float32
    assert w.data is view and np.all(view == 1.0) and np.shares_memory(w.data, opt.flat_data)
    with pytest.raises(ValueError, match=r"Parameter.data: cannot assign an array of shape "
                                         r"\(784, 256\) to a parameter of shape \(256, 784\)"):
        w.data = np.ones((784, 256), np.float32)
    w.grad = np.full((256, 784), 2.0, np.float32)
    assert np.shares_memory(w.grad, opt.flat_grad) and np.all(w.grad == 2.0)
    w.grad = None                                       # no gradient: skipped by step
    before = w.data.copy()
    model[0].bias.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(w.data, before)
    assert np.all(model[0].bias.data != 0)


def test_a_parameter_belongs_to_one_optimizer():
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"Adam: a Parameter of shape \(256, 784\) already belongs "
                                         r"to another optimizer \(SGD\)"):
        optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="already belongs to another optimizer"):
        optim.Adam([nn.Parameter(np.ones(2))]).add_param_group(
            {"params": model[2].parameters()})
    del opt
    gc.collect()
    opt = optim.Adam(model.parameters())                # the first one is gone: fine
    assert np.shares_memory(model[0].weight.data, opt.flat_data)


def test_frozen_parameters_have_no_gradient_slot_and_can_be_unfrozen():
    model = mlp()
    model[0].weight.requires_grad = False
    opt = optim.SGD(model.parameters(), lr=0.5)
    w = model[0].weight
    assert w.grad is None and np.shares_memory(w.data, opt.flat_data)
    assert opt.flat_grad.size < opt.flat_data.size - w.size + 16
    frozen = w.data.copy()
    step_once(model, opt)
    np.testing.assert_array_equal(w.data, frozen)
    w.requires_grad = True              # its own gradient array at its first backward
    assert w.grad is None
    step_once(model, opt)
    assert w.grad is not None and not np.shares_memory(w.grad, opt.flat_grad)
    assert not np.array_equal(w.data, frozen)


def test_state_is_flat_and_survives_state_dict_round_trip(tmp_path):
    a = mlp()
    opt = optim.Adam(a.parameters(), lr=1e-3)
    step_once(a, opt, 0)
    sd, msd = opt.state_dict(), a.state_dict()
    for p in a.parameters():
        assert opt.state[p]["exp_avg"].base is not None   # a view of the group's buffer
    step_once(a, opt, 1)
    want = [p.data.copy() for p in a.parameters()]
    b = mlp()
    b.load_state_dict(msd)
    opt_b = optim.Adam(b.parameters(), lr=1e-3)
    opt_b.load_state_dict(sd)
    ms = [opt_b.state[p]["exp_avg"] for p in b.parameters()]
    assert all(m.base is ms[0].base for m in ms)
    step_once(b, opt_b, 1)
    for p, w in zip(b.parameters(), want):
        assert p.data.tobytes() == w.tobytes()
    fastnn.save(b, tmp_path / "m.npz", optimizer=opt_b)  # save/load with optimizer state
    c = fastnn.load(tmp_path / "m.npz")
    opt_c = optim.Adam(c.parameters(), lr=1e-3)
    fastnn.load(tmp_path / "m.npz", optimizer=opt_c)
    step_once(b, opt_b, 2)
    step_once(c, opt_c, 2)
    for p, q in zip(b.parameters(), c.parameters()):
        assert p.data.tobytes() == q.data.tobytes()


def test_clip_grad_norm_reads_the_flat_buffer_in_one_array(monkeypatch):
    from fastnn.nn import utils
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = np.random.default_rng(p.size).standard_normal(p.shape)
    want = np.sqrt(sum(np.sum(p.grad.astype(np.float64) ** 2) for p in model.parameters()))
    seen = []
    real = utils._C

    class Spy:
        def __getattr__(self, name):
            fn = getattr(real, name)
            return lambda arrays, *a: (seen.append(len(arrays)), fn(arrays, *a))[1]
    monkeypatch.setattr(utils, "_C", Spy())
    total = clip_grad_norm_(model.parameters(), 1.0)
    assert total == pytest.approx(want, rel=1e-9)
    assert seen == [1, 1]                               # the norm and the scaling: one array
    assert opt.flat_grad.dtype == np.float32
    monkeypatch.undo()
    assert clip_grad_norm_(model.parameters(), 1e9) == pytest.approx(1.0, rel=1e-5)


def test_max_norm_and_groups_with_different_hyper_parameters():
    model = mlp()
    opt = optim.SGD([{"params": [model[0].weight, model[0].bias], "lr": 0.0},
                     {"params": model[2].parameters(), "lr": 0.1, "max_norm": 0.05}])
    first = [p.data.copy() for p in model[0].parameters()]
    step_once(model, opt)
    for p, f in zip(model[0].parameters(), first):
        np.testing.assert_array_equal(p.data, f)         # lr 0
    rows = np.linalg.norm(model[2].weight.data.astype(np.float64), axis=1)
    assert rows.max() <= 0.05 * (1 + 1e-5)


def test_deepcopy_of_a_flattened_model_is_standalone():
    import copy
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step_once(model, opt)
    twin = copy.deepcopy(model)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert np.array_equal(p.data, q.data) and np.array_equal(p.grad, q.grad)
        assert not np.shares_memory(q.data, opt.flat_data) and q._owner is None
    opt2 = optim.SGD(twin.parameters(), lr=0.1)       # not owned by the first optimizer
    step_once(twin, opt2)
    step_once(model, opt)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert p.data.tobytes() == q.data.tobytes()


def test_add_param_group_relays_the_buffers_and_keeps_the_state():
    a, b = mlp(), mlp()
    opt_a = optim.Adam(a[0].parameters(), lr=1e-2)
    opt_b = optim.Adam(b[0].parameters(), lr=1e-2)
    step_once(a, opt_a, 0)
    step_once(b, opt_b, 0)
    opt_a.add_param_group({"params": a[2].parameters(), "lr": 0.0})
    assert np.shares_memory(a[2].weight.data, opt_a.flat_data)
    assert np.shares_memory(a[0].weight.data, opt_a.flat_data)    # moved, values kept
    step_once(a, opt_a, 1)
    step_once(b, opt_b, 1)
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.data.tobytes() == q.data.tobytes()
