"""fastnn.optim.averaging: Polyak and EMA against float64 references, exact
swap/restore, Module parameters, state round trip, errors."""
import numpy as np
import pytest

from fastnn.nn import Module, Parameter
from fastnn.optim.averaging import EMA, PolyakAveraging

STEPS = 100


class Inner(Module):
    def __init__(self):
        self.w = Parameter(np.zeros((3, 4), np.float32))
        self.b = Parameter(np.zeros(4, np.float32))


class Net(Module):
    def __init__(self):
        self.scale = Parameter(np.ones(1, np.float32))
        self.inner = Inner()
        self.head = Parameter(np.zeros((4, 2), np.float32))


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    net = Net()
    for p in net.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32)
    return net


def walk(params, rng):
    """One 'optimizer step': an in-place random move of every weight (the
    arrays stay the same objects, as with a real optimizer)."""
    for p in params:
        p.data += (0.1 * rng.standard_normal(p.shape) + 0.01).astype(np.float32)


def sgd_step(params, lr=0.05):
    for p in params:
        p.data -= np.float32(lr) * p.grad


# -- float64 references -----------------------------------------------------

@pytest.mark.parametrize("start_step", [0, 30])
def test_polyak_matches_float64_mean(start_step):
    net = make_params()
    params = net.parameters()
    avg = PolyakAveraging(params, start_step=start_step)
    rng = np.random.default_rng(1)
    history = [[] for _ in params]
    for t in range(1, STEPS + 1):
        walk(params, rng)
        avg.update()
        if t > start_step:
            for h, p in zip(history, params):
                h.append(p.data.astype(np.float64))
    assert avg.num_updates == STEPS and avg.n_averaged == STEPS - start_step
    for got, h in zip(avg.averages(), history):
        assert got.dtype == np.float64
        ref = np.mean(np.stack(h), axis=0)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-15)
    with avg.averaged():
        for p, h in zip(params, history):
            ref32 = np.mean(np.stack(h), axis=0).astype(np.float32)
            # rounding of a float64 value that differs by ~1e-16: equal up to 1 ulp
            assert np.max(np.abs(p.data.view(np.int32) - ref32.view(np.int32))) <= 1


@pytest.mark.parametrize("decay,warmup", [(0.9, False), (0.99, True), (0.999, False),
                                          (0.95, True), (0.0, False), (1.0, False)])
def test_ema_matches_float64_reference(decay, warmup):
    net = make_params(2)
    params = net.parameters()
    ema = EMA(params, decay=decay, warmup=warmup)
    ref = [p.data.astype(np.float64) for p in params]
    rng = np.random.default_rng(3)
    for t in range(1, STEPS + 1):
        walk(params, rng)
        d = min(decay, (1 + t) / (10 + t)) if warmup else decay
        assert ema.current_decay() == d
        ema.update()
        ref = [d * r + (1 - d) * p.data.astype(np.float64) for r, p in zip(ref, params)]
    for got, r in zip(ema.averages(), ref):
        np.testing.assert_allclose(got, r, rtol=1e-12, atol=1e-14)
    if decay == 0.0:
        for got, p in zip(ema.averages(), params):
            np.testing.assert_array_equal(got, p.data.astype(np.float64))


def test_ema_float64_keeps_small_increments():
    # decay close to 1 and a weight far from 0: a float32 EMA would never move
    p = Parameter(np.full(8, 1000.0, np.float32))
    ema = EMA([p], decay=0.9999)
    p.data[...] = 1000.5
    for _ in range(100):
        ema.update()
    want = 1000.5 - 0.5 * 0.9999 ** 100
    np.testing.assert_allclose(ema.averages()[0], want, rtol=1e-13)
    acc32 = np.float32(1000.0)
    for _ in range(100):
        acc32 = np.float32(0.9999) * acc32 + np.float32(1e-4) * np.float32(1000.5)
    assert acc32 == np.float32(1000.0)          # what a plain float32 EMA would give


# -- swap / restore ---------------------------------------------------------

def bits(params):
    return [p.data.view(np.uint32).copy() for p in params]


@pytest.mark.parametrize("cls", [PolyakAveraging, EMA])
def test_swap_and_restore_is_exact(cls):
    net = make_params(4)
    params = net.parameters()
    # awkward values: negative zero, subnormals, huge and tiny magnitudes
    params[1].data.flat[:5] = [-0.0, 1e-45, -3e-42, 3.4e38, 1e-30]
    avg = cls(params)
    rng = np.random.default_rng(5)
    for _ in range(20):
        walk(params, rng)
        avg.update()
    walk(params, rng)                      # trained weights differ from the average
    objects = [p.data for p in params]
    trained = bits(params)
    with avg.averaged() as a:
        assert a is avg and avg.swapped
        for p, m in zip(params, avg.averages()):
            np.testing.assert_array_equal(p.data, m.astype(np.float32))
        assert any(not np.array_equal(b, t) for b, t in zip(bits(params), trained))
    assert not avg.swapped
    assert all(np.array_equal(b, t) for b, t in zip(bits(params), trained))
    assert all(p.data is o for p, o in zip(params, objects))   # in place, never rebound
    # the explicit toggle does the same, and repeated swaps stay exact
    for _ in range(3):
        avg.swap()
        avg.swap()
    assert all(np.array_equal(b, t) for b, t in zip(bits(params), trained))


def test_restore_on_exception_and_guards():
    net = make_params(6)
    params = net.parameters()
    ema = EMA(params, decay=0.5)
    walk(params, np.random.default_rng(0))
    ema.update()
    trained = bits(params)
    with pytest.raises(KeyError):
        with ema.averaged():
            raise KeyError("boom")
    assert all(np.array_equal(b, t) for b, t in zip(bits(params), trained))
    ema.swap()
    with pytest.raises(RuntimeError, match="EMA.update: the averaged weights are swapped in"):
        ema.update()
    with pytest.raises(RuntimeError, match="EMA.averaged"):
        with ema.averaged():
            pass
    with pytest.raises(RuntimeError, match="EMA.load_state_dict"):
        ema.load_state_dict(ema.state_dict())
    ema.swap()
    assert all(np.array_equal(b, t) for b, t in zip(bits(params), trained))


def test_polyak_needs_an_iterate():
    net = make_params()
    avg = PolyakAveraging(net.parameters(), start_step=2)
    avg.update()
    avg.update()
    for call in (avg.swap, avg.copy_to, lambda: avg.averaged().__enter__()):
        with pytest.raises(RuntimeError, match="no iterate has been averaged yet .*start_step=2"):
            call()
    avg.update()
    assert avg.n_averaged == 1
    np.testing.assert_array_equal(avg.averages()[0], net.parameters()[0].data)


# -- Modules, copy_to, a training loop ---------------------------------------

def test_module_parameters_and_training_loop():
    net = make_params(7)
    ema = EMA(net.parameters(), decay=0.9)
    polyak = PolyakAveraging(net)              # a Module is accepted too
    assert [id(p) for p in polyak.params] == [id(p) for p in net.parameters()]
    rng = np.random.default_rng(8)
    ref_e = [p.data.astype(np.float64) for p in net.parameters()]
    ref_p = [np.zeros(p.shape) for p in net.parameters()]
    for t in range(1, STEPS + 1):
        net.zero_grad()
        for p in net.parameters():
            p.grad[...] = (p.data - 1.0) + 0.1 * rng.standard_normal(p.shape).astype(np.float32)
        sgd_step(net.parameters())
        ema.update()
        polyak.update()
        ref_e = [0.9 * r + 0.1 * p.data.astype(np.float64) for r, p in zip(ref_e, net.parameters())]
        ref_p = [r + (p.data.astype(np.float64) - r) / t for r, p in zip(ref_p, net.parameters())]
    for got, r in zip(ema.averages(), ref_e):
        np.testing.assert_allclose(got, r, rtol=1e-12)
    for got, r in zip(polyak.averages(), ref_p):
        np.testing.assert_allclose(got, r, rtol=1e-12)
    # evaluation weights through the Module's own state_dict
    trained = net.state_dict()
    with ema.averaged():
        inside = net.state_dict()
    for k, p in zip(inside, ema.averages()):
        np.testing.assert_array_equal(inside[k], p.astype(np.float32))
    after = net.state_dict()
    assert all(np.array_equal(after[k].view(np.uint32), trained[k].view(np.uint32)) for k in after)


def test_copy_to():
    net = make_params(9)
    ema = EMA(net.parameters(), decay=0.8)
    walk(net.parameters(), np.random.default_rng(1))
    ema.update()
    other = make_params(10)
    ema.copy_to(other)
    for p, a in zip(other.parameters(), ema.averages()):
        np.testing.assert_array_equal(p.data, a.astype(np.float32))
    ema.copy_to()                               # permanent, into the tracked params
    for p, a in zip(net.parameters(), ema.averages()):
        np.testing.assert_array_equal(p.data, a.astype(np.float32))
    with pytest.raises(ValueError, match="EMA.copy_to: got 2 parameters, the averager tracks 4"):
        ema.copy_to(other.parameters()[:2])
    wrong = other.parameters()
    wrong[3] = Parameter(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="EMA.copy_to: params\\[3\\] has shape \\(2, 4\\)"):
        ema.copy_to(wrong)


# -- state ------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda ps: EMA(ps, decay=0.95, warmup=True),
                                  lambda ps: PolyakAveraging(ps, start_step=10)],
                         ids=["ema", "polyak"])
def test_state_dict_round_trip(make):
    def run(net, avg, seed, steps):
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            walk(net.parameters(), rng)
            avg.update()

    net = make_params(11)
    full = make(net.parameters())
    rng = np.random.default_rng(12)
    for _ in range(STEPS):
        walk(net.parameters(), rng)
        full.update()

    net1 = make_params(11)
    a1 = make(net1.parameters())
    rng = np.random.default_rng(12)
    for _ in range(40):
        walk(net1.parameters(), rng)
        a1.update()
    saved = a1.state_dict()
    weights = net1.state_dict()
    net2 = make_params(99)
    net2.load_state_dict(weights)
    a2 = make(net2.parameters())
    a2.load_state_dict(saved)
    for _ in range(STEPS - 40):
        walk(net2.parameters(), rng)
        a2.update()
    s_full, s2 = full.state_dict(), a2.state_dict()
    assert {k: v for k, v in s_full.items() if k != "averages"} == \
        {k: v for k, v in s2.items() if k != "averages"}
    for x, y in zip(s_full["averages"], s2["averages"]):
        assert np.array_equal(x, y)
    # the saved state is a copy, not a view of the live buffers
    saved["averages"][0][...] = 7.0
    assert not np.any(a1.averages()[0] == 7.0)


def test_load_state_dict_rejects_bad_state():
    net = make_params()
    ema = EMA(net.parameters())
    good = ema.state_dict()
    before = ema.averages()
    bad_shape = dict(good, averages=[np.zeros((5,))] + good["averages"][1:])
    with pytest.raises(ValueError, match="averages\\[0\\] has shape \\(5,\\)"):
        ema.load_state_dict(bad_shape)
    nan = [a.copy() for a in good["averages"]]
    nan[2][0] = np.nan
    with pytest.raises(ValueError, match="averages\\[2\\] contains NaN"):
        ema.load_state_dict(dict(good, averages=nan))
    with pytest.raises(ValueError, match="decay must be a number in \\[0, 1\\]"):
        ema.load_state_dict(dict(good, decay=1.5, num_updates=3))
    with pytest.raises(KeyError, match="missing keys \\['warmup'\\]"):
        ema.load_state_dict({k: v for k, v in good.items() if k != "warmup"})
    assert ema.num_updates == 0 and ema.decay == 0.999
    assert all(np.array_equal(a, b) for a, b in zip(ema.averages(), before))
    p = PolyakAveraging(net)
    with pytest.raises(ValueError, match="n_averaged=5 does not match"):
        p.load_state_dict(dict(p.state_dict(), n_averaged=5))


def test_invalid_arguments():
    net = make_params()
    with pytest.raises(ValueError, match="EMA: decay"):
        EMA(net, decay=1.01)
    with pytest.raises(ValueError, match="EMA: decay"):
        EMA(net, decay=float("nan"))
    with pytest.raises(ValueError, match="EMA: warmup"):
        EMA(net, warmup="yes")
    with pytest.raises(ValueError, match="PolyakAveraging: start_step"):
        PolyakAveraging(net, start_step=-1)
    with pytest.raises(ValueError, match="EMA: params is empty"):
        EMA([])
    ps = net.parameters()
    with pytest.raises(ValueError, match="EMA: params\\[4\\] appears more than once"):
        EMA(ps + [ps[0]])
    with pytest.raises(TypeError, match="EMA: params\\[0\\] must be a fastnn.nn.Parameter"):
        EMA([np.zeros(3, np.float32)])
    with pytest.raises(TypeError, match="single Parameter"):
        EMA(ps[0])
    EMA(ps)
    with pytest.raises(ValueError, match="Parameter.data: cannot assign"):
        ps[0].data = np.zeros((7,), np.float32)        # a Parameter never changes shape
