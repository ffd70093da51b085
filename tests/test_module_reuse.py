"""Modules that run many times per step (one saved context per training
forward, consumed last-in first-out), no_grad, the lifetime of unconsumed
contexts and the input-gradient rule, checked against torch on the same
weights (forward and every gradient)."""
import threading

import numpy as np
import pytest

import fastnn
from fastnn import nn

torch = pytest.importorskip("torch")

F32 = np.float32


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


def t_linear(lin):
    """A torch Linear with the same weights as a fastnn Linear."""
    tl = torch.nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.data))
        if lin.bias is not None:
            tl.bias.copy_(torch.from_numpy(lin.bias.data))
    return tl


def close(a, b, tol=2e-5):
    b = b.detach().numpy() if hasattr(b, "detach") else b
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


def test_cell_applied_T_times_then_backward_T_times_in_reverse():
    fastnn.manual_seed(0)
    T, N, H = 6, 4, 5
    lin, act = nn.Linear(H, H), nn.Tanh()
    xs = [rand(N, H, seed=s) for s in range(T)]
    tl = t_linear(lin)
    h, ht = np.zeros((N, H), F32), torch.zeros(N, H)
    outs = []
    for x in xs:                                  # h_t = tanh(W (h_{t-1} + x_t) + b)
        h = act(lin(h + x))
        ht = torch.tanh(tl(ht + torch.from_numpy(x)))
        outs.append(h)
        close(h, ht)
    g = rand(N, H, seed=99)
    (ht * torch.from_numpy(g)).sum().backward()
    dh = g
    for _ in range(T):                            # backward T times, newest first
        dh = lin.backward(act.backward(dh, input_grad=True), input_grad=True)
    close(lin.weight.grad, tl.weight.grad)
    close(lin.bias.grad, tl.bias.grad)
    assert not lin._contexts and not act._contexts


def test_same_linear_twice_in_one_sequential():
    fastnn.manual_seed(1)
    lin = nn.Linear(6, 6)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    tl = t_linear(lin)
    x = rand(5, 6)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = model(x)
    yt = tl(torch.relu(tl(xt)))
    close(y, yt)
    g = rand(5, 6, seed=1)
    yt.backward(torch.from_numpy(g))
    dx = model.backward(g, input_grad=True)
    close(dx, xt.grad)
    close(lin.weight.grad, tl.weight.grad)
    close(lin.bias.grad, tl.bias.grad)


def test_one_relu_after_two_layers():
    """Issue 9 item 2: this was silently wrong when the two shapes matched."""
    fastnn.manual_seed(2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))

        def backward(self, g):
            g = self.relu.backward(self.fc3.backward(g))
            g = self.relu.backward(self.fc2.backward(g))
            return self.fc1.backward(g)

    net = Net()
    t1, t2, t3 = t_linear(net.fc1), t_linear(net.fc2), t_linear(net.fc3)
    x = rand(7, 8)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y, yt = net(x), t3(torch.relu(t2(torch.relu(t1(xt)))))
    close(y, yt)
    g = rand(7, 3, seed=3)
    yt.backward(torch.from_numpy(g))
    close(net.backward(g, input_grad=True), xt.grad)
    for m, tm in ((net.fc1, t1), (net.fc2, t2), (net.fc3, t3)):
        close(m.weight.grad, tm.weight.grad)
        close(m.bias.grad, tm.bias.grad)
    # Called from user code, the custom module's backward returns None
    net(x)
    assert net.backward(g) is None


def test_shared_encoder_and_siamese_two_forwards_two_backwards():
    fastnn.manual_seed(3)
    enc = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
    te = torch.nn.Sequential(t_linear(enc[0]), torch.nn.ReLU(), t_linear(enc[2]))
    x1, x2 = rand(8, 10, seed=1), rand(8, 10, seed=2)
    a, b = enc(x1), enc(x2)                       # two forwards
    ta, tb = te(torch.from_numpy(x1)), te(torch.from_numpy(x2))
    close(a, ta)
    close(b, tb)
    d = a - b                                     # siamese loss: mean squared distance
    ((ta - tb) ** 2).sum(1).mean().backward()
    gd = (2 * d / len(d)).astype(F32)
    assert enc.backward(-gd) is None              # newest first: the x2 branch
    enc.backward(gd)
    close(enc[0].weight.grad, te[0].weight.grad)
    close(enc[0].bias.grad, te[0].bias.grad)
    close(enc[2].weight.grad, te[2].weight.grad)
    assert all(not m._contexts for m in enc.modules())


def test_losses_keep_one_context_per_call():
    fastnn.manual_seed(4)
    crit = nn.CrossEntropyLoss()
    x1, x2 = rand(5, 4, seed=1), rand(5, 4, seed=2)
    y = np.array([0, 1, 2, 3, 0])
    crit(x1, y)
    crit(x2, y)
    g2, g1 = crit.backward().copy(), crit.backward()
    t1 = torch.from_numpy(x1.copy()).requires_grad_(True)
    t2 = torch.from_numpy(x2.copy()).requires_grad_(True)
    torch.nn.functional.cross_entropy(t1, torch.from_numpy(y)).backward()
    torch.nn.functional.cross_entropy(t2, torch.from_numpy(y)).backward()
    close(g1, t1.grad)
    close(g2, t2.grad)


def test_custom_module_uses_the_public_context_api():
    class Scale(nn.Module):
        """y = x * s for a learnable scalar s."""

        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(np.array([2.0], F32))

        def forward(self, x):
            self.save_for_backward(x)
            return x * self.s.data[0]

        def backward(self, g):
            x, = self.saved_tensors()
            self.s.grad[0] += float(np.sum(g * x))
            return g * self.s.data[0] if self.needs_input_grad else None

    m = Scale()
    x = rand(3, 2)
    m(x)
    m(2 * x)
    g = np.ones((3, 2), F32)
    np.testing.assert_allclose(m.backward(g, input_grad=True), 2 * g)
    np.testing.assert_allclose(m.s.grad, [2 * x.sum()], rtol=1e-6)
    assert m.backward(g) is None
    np.testing.assert_allclose(m.s.grad, [3 * x.sum()], rtol=1e-6)
    with pytest.raises(RuntimeError, match=r"Scale\.backward: no saved context"):
        m.backward(g)
    seq = nn.Sequential(nn.Linear(2, 2), m)       # inside a container: dL/dx flows
    seq(x)
    assert seq.backward(g, input_grad=True).shape == x.shape


def test_eval_and_no_grad_save_nothing():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2))
    x = rand(3, 4)
    model.eval()
    model(x)
    assert all(not m._contexts for m in model.modules())
    model.train()
    with fastnn.no_grad():
        assert not fastnn.is_grad_enabled()
        with fastnn.no_grad():                    # nestable
            model(x)
        model(x)
        assert not fastnn.is_grad_enabled()
    assert fastnn.is_grad_enabled()
    assert all(not m._contexts for m in model.modules())
    with pytest.raises(RuntimeError, match=r"Linear\.backward: no saved context"):
        model.backward(np.ones((3, 2), F32))

    @fastnn.no_grad()
    def infer(v):
        return model(v)
    infer(x)
    assert all(not m._contexts for m in model.modules())
    seen = []                                     # per thread: another thread still saves
    with fastnn.no_grad():
        th = threading.Thread(target=lambda: seen.append((model(x), fastnn.is_grad_enabled())))
        th.start()
        th.join()
    assert seen[0][1] and model[0]._contexts
    model.clear_contexts()
    assert all(not m._contexts for m in model.modules())


def test_unconsumed_contexts_live_at_most_one_step():
    fastnn.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    crit = nn.CrossEntropyLoss()
    opt = fastnn.optim.SGD(model.parameters(), lr=0.01)
    x, y = rand(4, 6), np.array([0, 1, 2, 0])
    depth = []
    for step in range(20):
        model(x)                                  # a metrics pass left in train mode
        crit(model(x), y)
        if step % 3 == 0:
            model(x)                              # an exception mid-step: no backward
            continue
        opt.zero_grad()                           # between forward and backward: keeps them
        model.backward(crit.backward())
        opt.step()
        depth.append(max(len(m._contexts) for m in model.modules()))
    # Kept: the contexts saved since the last user-level backward (here at most
    # those of a failed step and of the step after it), never more.
    assert max(depth) <= 4 and sorted(set(depth)) == [1, 4]
    assert len(crit._contexts) <= 2
    model(x)                                      # the first forward after a backward
    assert max(len(m._contexts) for m in model.modules()) == 1


def test_user_level_backward_skips_the_first_dx_product(monkeypatch):
    """Residual and Sequential pass 'no input gradient' down to their first
    layer: counting the GEMMs shows the dX product is skipped."""
    from fastnn.nn import layers
    calls = []
    real = layers._C

    class Count:
        def __getattr__(self, name):
            fn = getattr(real, name)
            if name != "sgemm":
                return fn
            return lambda *a: (calls.append(a[:5]), fn(*a))[1]
    monkeypatch.setattr(layers, "_C", Count())
    block = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5))
    model = nn.Sequential(nn.Residual(block, nn.Linear(5, 5)), nn.Linear(5, 2))
    x = rand(4, 5)
    model(x)
    calls.clear()
    assert model.backward(np.ones((4, 2), F32)) is None
    dx_products = [c for c in calls if not c[0] and not c[1]]   # (N,O) @ (O,I)
    # head dX, block's second Linear dX; the shortcut and block[0] skip theirs
    assert len(dx_products) == 2
    model(x)
    calls.clear()
    assert model.backward(np.ones((4, 2), F32), input_grad=True).shape == x.shape
    assert len([c for c in calls if not c[0] and not c[1]]) == 4


def test_forward_only_loop_in_train_mode_is_bounded(monkeypatch):
    monkeypatch.setattr(nn.Module, "max_contexts", 8)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = rand(4, 6)
    with pytest.warns(RuntimeWarning, match="max_contexts"):
        for _ in range(50):                       # inference without eval(): no backward
            model(x)
    assert max(len(m._contexts) for m in model.modules()) == 8
    # the newest contexts are the ones kept: a backward of the last forward works
    g = model.backward(np.ones((4, 3), np.float32), input_grad=True)
    assert g.shape == (4, 6)
