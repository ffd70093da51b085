"""Recurrent layers (csrc/rnn.c, fastnn/nn/rnn.py): float64 references and
finite differences, torch parity, variable lengths, threads, bad inputs."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn._ext import _C

from helpers import numeric_grad

MODES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


def _make(name, *args, **kw):
    return getattr(nn, name)(*args, **kw)


# ------------------------------------------------------ float64 reference --

def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _ref_layer(kind, relu, x, w_ih, w_hh, b_ih, b_hh, h, c, lengths, reverse):
    T, N, _ = x.shape
    H = w_hh.shape[1]
    y = np.zeros((T, N, H))
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        act = (t < lengths)[:, None]
        gx = x[t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if kind == "LSTM":
            a = gx + gh
            i, f, g, o = (_sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]),
                          _sig(a[:, 3 * H:]))
            cn = f * c + i * g
            hn = o * np.tanh(cn)
            c = np.where(act, cn, c)
        elif kind == "GRU":
            r = _sig(gx[:, :H] + gh[:, :H])
            z = _sig(gx[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
            hn = (1 - z) * n + z * h
        else:
            a = gx + gh
            hn = np.maximum(a, 0) if relu else np.tanh(a)
        h = np.where(act, hn, h)
        y[t] = np.where(act, hn, 0.0)
    return y, h, c


def _ref_forward(m, P, x, h0, c0, lengths):
    """The whole stacked layer in float64 from parameters P (name -> array)."""
    kind = type(m).__name__
    relu = getattr(m, "nonlinearity", "tanh") == "relu"
    D = 2 if m.bidirectional else 1
    T, N, _ = x.shape
    lengths = np.full(N, T) if lengths is None else np.asarray(lengths)
    hn, cn = np.zeros_like(h0), np.zeros_like(h0)
    inp = x
    for k in range(m.num_layers):
        outs = []
        for d in range(D):
            s = f"_l{k}" + ("_reverse" if d else "")
            b_ih = P.get("bias_ih" + s, 0.0)
            b_hh = P.get("bias_hh" + s, 0.0)
            y, h, c = _ref_layer(kind, relu, inp, P["weight_ih" + s], P["weight_hh" + s], b_ih,
                                 b_hh, h0[k * D + d], c0[k * D + d], lengths, d == 1)
            outs.append(y)
            hn[k * D + d], cn[k * D + d] = h, c
        inp = np.concatenate(outs, axis=2)
    return inp, hn, cn


@pytest.mark.parametrize("name,kw", MODES, ids=IDS)
def test_forward_backward_match_float64_reference_and_finite_differences(name, kw, rng):
    """2 layers, both directions, several steps, unsorted lengths, hx given:
    the output, h_n (c_n) match a float64 reference, and every gradient
    (x, hx, each weight and bias) matches central differences of it."""
    fastnn.manual_seed(1)
    m = _make(name, 3, 4, num_layers=2, bidirectional=True, **kw)
    T, N = 5, 3
    lengths = np.array([3, 5, 2])
    x = rng.standard_normal((T, N, 3)).astype(np.float32)
    h0 = rng.standard_normal((4, N, 4)).astype(np.float32) * 0.5
    c0 = rng.standard_normal((4, N, 4)).astype(np.float32) * 0.5
    lstm = name == "LSTM"
    hx = (h0, c0) if lstm else h0
    out, hn = m(x, hx, lengths=lengths)
    P = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    X, H0, C0 = x.astype(np.float64), h0.astype(np.float64), c0.astype(np.float64)
    ry, rh, rc = _ref_forward(m, P, X, H0, C0, lengths)
    np.testing.assert_allclose(out, ry, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hn[0] if lstm else hn, rh, rtol=1e-5, atol=1e-6)
    if lstm:
        np.testing.assert_allclose(hn[1], rc, rtol=1e-5, atol=1e-6)

    wy = rng.standard_normal(out.shape)
    wh = rng.standard_normal(rh.shape)
    wc = rng.standard_normal(rh.shape)

    def loss():
        y, h, c = _ref_forward(m, P, X, H0, C0, lengths)
        return np.sum(wy * y) + np.sum(wh * h) + (np.sum(wc * c) if lstm else 0.0)

    gs = (wh.astype(np.float32), wc.astype(np.float32)) if lstm else wh.astype(np.float32)
    dx, dhx = m.backward(wy.astype(np.float32), gs, input_grad=True)
    tol = dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(dx, numeric_grad(loss, X, 1e-6), **tol, err_msg="dx")
    np.testing.assert_allclose(dhx[0] if lstm else dhx, numeric_grad(loss, H0, 1e-6), **tol)
    if lstm:
        np.testing.assert_allclose(dhx[1], numeric_grad(loss, C0, 1e-6), **tol)
    for pname, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, numeric_grad(loss, P[pname], 1e-6), **tol,
                                   err_msg=pname)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("N,H", [(5, 7), (2, 37), (1, 20)])
def test_fast_kernel_matches_its_naive_twin(mode, N, H, rng):
    """The C time loop with the blocked GEMM vs the same loop over the naive
    float64-accumulating GEMM, forward and backward, reverse direction."""
    G = {0: 1, 1: 1, 2: 4, 3: 3}[mode]
    T, I = 4, 6
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    w_ih = rng.standard_normal((G * H, I)).astype(np.float32) * 0.3
    w_hh = rng.standard_normal((G * H, H)).astype(np.float32) * 0.3
    b = rng.standard_normal((2, G * H)).astype(np.float32)
    L = np.array([4, 2, 3, 1, 4][:N], np.int32)
    res = []
    for naive in (False, True):
        h = np.ones((N, H), np.float32) * 0.1
        c = np.ones((N, H), np.float32) * 0.2 if mode == 2 else None
        y = np.empty((T, N, 2 * H), np.float32)
        sv = [np.empty((T, N, G * H), np.float32)] + [np.empty((T, N, H), np.float32)
                                                        for _ in range(3)]
        _C.rnn_forward(mode, T, N, I, H, True, x, w_ih, w_hh, b[0], b[1], L, h, c, y, H,
                       *sv, naive)
        dh, dc = np.ones((N, H), np.float32), (np.ones((N, H), np.float32) if c is not None
                                               else None)
        dx = np.zeros((T, N, I), np.float32)
        gr = [np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(G * H, np.float32),
              np.zeros(G * H, np.float32)]
        _C.rnn_backward(mode, T, N, I, H, True, x, w_ih, w_hh, L, *sv, y, H, dh, dc, dx, True,
                        *gr, 15, True, naive)
        res.append([y[:, :, H:], h, dh, dx] + gr + ([c, dc] if c is not None else []))
    for a, b_ in zip(*res):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ torch parity --

def _torch_pair(name, kw, *args, **kw2):
    torch = pytest.importorskip("torch")
    m = _make(name, *args, **kw, **kw2)
    t = getattr(torch.nn, name)(*args, **kw, **kw2).double()
    t.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in m.state_dict().items()})
    return torch, m, t


@pytest.mark.parametrize("name,kw", MODES, ids=IDS)
@pytest.mark.parametrize("cfg", [(False, False, 1, False), (True, True, 2, True),
                                 (False, True, 1, True), (True, False, 2, False)],
                         ids=["plain", "bf-bi-2l-hx", "bi-hx", "bf-2l"])
def test_matches_torch(name, kw, cfg, rng):
    batch_first, bi, layers, give_hx = cfg
    torch, m, t = _torch_pair(name, kw, 5, 6, num_layers=layers, batch_first=batch_first,
                              bidirectional=bi)
    D = 2 if bi else 1
    T, N = 7, 4
    x = rng.standard_normal((N, T, 5) if batch_first else (T, N, 5)).astype(np.float32)
    lstm = name == "LSTM"
    hx = None
    if give_hx:
        h0 = rng.standard_normal((layers * D, N, 6)).astype(np.float32)
        c0 = rng.standard_normal((layers * D, N, 6)).astype(np.float32)
        hx = (h0, c0) if lstm else h0
    out, hn = m(x, hx)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    hxt = None
    if give_hx:
        hxt = tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in hx) \
            if lstm else torch.tensor(hx, dtype=torch.float64, requires_grad=True)
    ot, hnt = t(xt, hxt)
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out, ot.detach().numpy(), **tol)
    for a, b in zip(hn if lstm else (hn,), hnt if lstm else (hnt,)):
        np.testing.assert_allclose(a, b.detach().numpy(), **tol)
    g = rng.standard_normal(out.shape).astype(np.float32)
    gh = [rng.standard_normal((layers * D, N, 6)).astype(np.float32) for _ in range(2)]
    r = m.backward(g, (gh[0], gh[1]) if lstm else gh[0], input_grad=True)
    loss = (ot * torch.tensor(g, dtype=torch.float64)).sum()
    for a, b in zip(hnt if lstm else (hnt,), gh):
        loss = loss + (a * torch.tensor(b, dtype=torch.float64)).sum()
    loss.backward()
    dx = r[0] if give_hx else r
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    if give_hx:
        for a, b in zip(r[1] if lstm else (r[1],), hxt if lstm else (hxt,)):
            np.testing.assert_allclose(a, b.grad.numpy(), **tol)
    tp = dict(t.named_parameters())
    for pname, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, tp[pname].grad.numpy(), **tol, err_msg=pname)


@pytest.mark.parametrize("name,kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}),
                                     ("LSTMCell", {}), ("GRUCell", {})],
                         ids=["tanh", "relu", "lstm", "gru"])
def test_cells_in_a_python_loop_match_torch(name, kw, rng):
    """Four steps in a user loop, backward through them (contexts LIFO)."""
    torch, m, t = _torch_pair(name, kw, 5, 6)
    lstm = name == "LSTMCell"
    xs = rng.standard_normal((4, 3, 5)).astype(np.float32)
    h0 = rng.standard_normal((3, 6)).astype(np.float32)
    state = (h0, np.zeros((3, 6), np.float32)) if lstm else h0
    outs = []
    for x in xs:
        state = m(x, state)
        outs.append(state[0] if lstm else state)
    gy = rng.standard_normal((4, 3, 6)).astype(np.float32)
    dh, dc = np.zeros((3, 6), np.float32), np.zeros((3, 6), np.float32)
    dxs = []
    for k in range(3, -1, -1):
        dx, ds = m.backward((dh + gy[k], dc) if lstm else dh + gy[k], input_grad=True)
        dh, dc = ds if lstm else (ds, None)
        dxs.append(dx)
    xt = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    h0t = torch.tensor(h0, dtype=torch.float64, requires_grad=True)
    st = (h0t, torch.zeros(3, 6, dtype=torch.float64)) if lstm else h0t
    loss = 0
    for k in range(4):
        st = t(xt[k], st)
        ht = st[0] if lstm else st
        np.testing.assert_allclose(outs[k], ht.detach().numpy(), rtol=1e-4, atol=1e-5)
        loss = loss + (ht * torch.tensor(gy[k], dtype=torch.float64)).sum()
    loss.backward()
    np.testing.assert_allclose(np.stack(dxs[::-1]), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dh, h0t.grad.numpy(), rtol=1e-4, atol=1e-5)
    tp = dict(t.named_parameters())
    for pname, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, tp[pname].grad.numpy(), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------- variable lengths --

@pytest.mark.parametrize("name,kw", MODES[1:], ids=IDS[1:])
def test_variable_lengths_match_each_sequence_alone(name, kw, rng):
    fastnn.manual_seed(2)
    m = _make(name, 4, 5, num_layers=2, bidirectional=True, **kw)
    T, N = 6, 4
    L = np.array([3, 6, 1, 4])
    x = rng.standard_normal((T, N, 4)).astype(np.float32)
    gy = rng.standard_normal((T, N, 10)).astype(np.float32)
    gh = rng.standard_normal((4, N, 5)).astype(np.float32)
    lstm = name == "LSTM"
    out, hn = m(x, lengths=L)
    m.zero_grad()
    dx = m.backward(gy, (gh, None) if lstm else gh, input_grad=True)
    grads = {k: p.grad.copy() for k, p in m.named_parameters()}
    acc = {k: np.zeros_like(v) for k, v in grads.items()}
    for n in range(N):
        ln = L[n]
        assert not out[ln:, n].any() and not dx[ln:, n].any()
        o1, h1 = m(x[:ln, n:n + 1])
        np.testing.assert_allclose(out[:ln, n:n + 1], o1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose((hn[0] if lstm else hn)[:, n:n + 1], h1[0] if lstm else h1,
                                   rtol=1e-5, atol=1e-6)
        m.zero_grad()
        g1 = gh[:, n:n + 1]
        d1 = m.backward(gy[:ln, n:n + 1], (g1, None) if lstm else g1, input_grad=True)
        np.testing.assert_allclose(dx[:ln, n:n + 1], d1, rtol=1e-4, atol=1e-5)
        for k, p in m.named_parameters():
            acc[k] += p.grad
    for k in grads:
        np.testing.assert_allclose(grads[k], acc[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_classifier_sequential_with_lengths_matches_torch(rng):
    """Sequential(LSTM, LastStep, Linear) fed (x, lengths): the lengths travel
    with the LSTM's output to LastStep."""
    torch = pytest.importorskip("torch")
    fastnn.manual_seed(3)
    model = nn.Sequential(nn.LSTM(3, 8, batch_first=True), nn.LastStep(), nn.Linear(8, 2))
    lstm_t, lin_t = torch.nn.LSTM(3, 8, batch_first=True).double(), torch.nn.Linear(8, 2).double()
    sd = {k: torch.tensor(v, dtype=torch.float64) for k, v in model.state_dict().items()}
    lstm_t.load_state_dict({k[2:]: v for k, v in sd.items() if k.startswith("0.")})
    lin_t.load_state_dict({k[2:]: v for k, v in sd.items() if k.startswith("2.")})
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    L = np.array([7, 2, 5, 1, 3])
    y = model((x, L))
    g = rng.standard_normal(y.shape).astype(np.float32)
    model.backward(g)
    ot, _ = lstm_t(torch.tensor(x, dtype=torch.float64))
    yt = lin_t(ot[torch.arange(5), torch.tensor(L - 1)])
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    (yt * torch.tensor(g, dtype=torch.float64)).sum().backward()
    tp = {"0." + k: p for k, p in lstm_t.named_parameters()}
    tp.update({"2." + k: p for k, p in lin_t.named_parameters()})
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, tp[k].grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_time_pool_and_last_step(mode, rng):
    T, N, F = 5, 3, 4
    y = rng.standard_normal((T, N, F)).astype(np.float32)
    L = np.array([2, 5, 3])
    pool = nn.TimePool(mode)
    out = pool(nn.RNNOutput((y, None), L.astype(np.int32)))
    for n in range(N):
        ref = (y[:L[n], n].mean(0) if mode == "mean" else y[:L[n], n].max(0))
        np.testing.assert_allclose(out[n], ref, rtol=1e-6)
    w = rng.standard_normal(out.shape)
    d = pool.backward(w.astype(np.float32), input_grad=True)

    def loss():
        with fastnn.no_grad():
            return np.sum(w * pool(y, lengths=L))
    np.testing.assert_allclose(d, numeric_grad(loss, y, 1e-3), rtol=1e-3, atol=1e-3)
    last = nn.LastStep(batch_first=True)
    yb = np.ascontiguousarray(y.transpose(1, 0, 2))
    o = last(yb, lengths=L)
    np.testing.assert_array_equal(o, y[L - 1, np.arange(N)])
    d = last.backward(np.ones((N, F), np.float32), input_grad=True)
    assert d.shape == yb.shape and d.sum() == N * F and np.all(d[np.arange(N), L - 1] == 1)


# -------------------------------------------------------------------- misc --

def _fwd_bwd(threads, rng_seed=0):
    fastnn.set_num_threads(threads)
    fastnn.manual_seed(5)
    m = nn.LSTM(64, 256, num_layers=2, bidirectional=True, dropout=0.2)
    r = np.random.default_rng(rng_seed)
    x = r.standard_normal((6, 64, 64)).astype(np.float32)
    L = r.integers(1, 7, 64)
    out, (h, c) = m(x, lengths=L)
    dx = m.backward(r.standard_normal(out.shape).astype(np.float32), input_grad=True)
    return [out, h, c, dx] + [p.grad.copy() for p in m.parameters()]


def test_same_bits_on_1_and_2_threads():
    """Sizes that thread: the recurrent GEMM is 64 x 1024 x 256 (33 MFLOP)."""
    a, b = _fwd_bwd(1), _fwd_bwd(2)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


def test_gru_same_bits_on_1_and_2_threads():
    res = []
    for th in (1, 2):
        fastnn.set_num_threads(th)
        fastnn.manual_seed(6)
        m = nn.GRU(32, 256)
        x = np.random.default_rng(1).standard_normal((5, 64, 32)).astype(np.float32)
        out, h = m(x)
        dx = m.backward(out, input_grad=True)
        res.append([out, h, dx] + [p.grad.copy() for p in m.parameters()])
    for u, v in zip(*res):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("kind,H,N", [("LSTM", 64, 37), ("GRU", 48, 45), ("RNN", 96, 61),
                                      ("LSTM", 512, 24)])
def test_time_loop_same_bits_on_1_and_2_threads(kind, H, N):
    """Small recurrent weights run the time loop split over the batch (one part
    per thread, rows not a multiple of 8 here); LSTM-512's are too large for
    that and run each step's GEMM threaded instead. Either way: same bits."""
    res = []
    for th in (1, 2):
        fastnn.set_num_threads(th)
        fastnn.manual_seed(7)
        m = getattr(nn, kind)(20, H, bidirectional=True)
        r = np.random.default_rng(2)
        x = r.standard_normal((9, N, 20)).astype(np.float32)
        L = r.integers(1, 10, N)
        out, st = m(x, lengths=L)
        dx = m.backward(r.standard_normal(out.shape).astype(np.float32), input_grad=True)
        st = list(st) if isinstance(st, tuple) else [st]
        res.append([out, dx] + st + [p.grad.copy() for p in m.parameters()])
    for u, v in zip(*res):
        assert np.array_equal(u, v)


def test_torch_names_init_and_eval(rng):
    fastnn.manual_seed(0)
    m = nn.GRU(3, 16, num_layers=2, bidirectional=True, bias=True)
    names = [k for k, _ in m.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert "weight_ih_l1_reverse" in names and m.weight_ih_l1.shape == (48, 32)
    for p in m.parameters():
        assert np.abs(p.data).max() <= 0.25 and np.abs(p.data).max() > 0.2
    assert len(list(nn.LSTM(3, 4, bias=False).parameters())) == 2
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    m.eval()
    o1, _ = m(x)
    m.train()
    o2, _ = m(x)
    np.testing.assert_array_equal(o1, o2)          # dropout 0: eval = train
    m.clear_contexts()
    m.eval()
    m(x)
    assert not m._contexts                         # eval saves nothing


def test_dropout_between_layers_only_in_training(rng):
    fastnn.manual_seed(0)
    m = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    fastnn.manual_seed(1)
    a = m(x)[0]
    fastnn.manual_seed(1)
    b = m(x)[0]
    np.testing.assert_array_equal(a, b)           # same seed, same mask
    m.eval()
    c = m(x)[0]
    assert not np.allclose(a, c)
    m.train()

    def loss():
        fastnn.manual_seed(1)
        with fastnn.no_grad():
            return np.sum(m(x)[0].astype(np.float64))
    fastnn.manual_seed(1)
    m(x)
    dx = m.backward(np.ones((4, 2, 8), np.float32), input_grad=True)
    np.testing.assert_allclose(dx, numeric_grad(loss, x, 1e-2), rtol=2e-2, atol=2e-3)


def test_embedding(rng):
    torch = pytest.importorskip("torch")
    fastnn.manual_seed(0)
    e = nn.Embedding(10, 4, padding_idx=2)
    assert not e.weight.data[2].any()
    idx = rng.integers(0, 10, (5, 6))
    y = e(idx)
    np.testing.assert_array_equal(y, e.weight.data[idx])
    g = rng.standard_normal(y.shape).astype(np.float32)
    e.zero_grad()
    e.backward(g)
    t = torch.nn.Embedding(10, 4, padding_idx=2)
    t.weight.data = torch.tensor(e.weight.data)
    (t(torch.tensor(idx)) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(e.weight.grad, t.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    ref = np.zeros((10, 4))
    np.add.at(ref, idx.reshape(-1), g.reshape(-1, 4).astype(np.float64))
    ref[2] = 0
    np.testing.assert_allclose(e.weight.grad, ref, rtol=1e-5, atol=1e-6)
    e(idx)
    e.backward(g)                  # accumulates
    np.testing.assert_allclose(e.weight.grad, 2 * ref, rtol=1e-5, atol=1e-5)
    for bad in (10, -1):
        with pytest.raises(ValueError, match=f"index {bad} is out of range"):
            e(np.array([[1, bad]]))
    with pytest.raises(TypeError, match="integers"):
        e(np.array([1.0]))


def test_bad_inputs():
    m = nn.LSTM(3, 4, num_layers=2)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(ValueError, match="input_size=3"):
        m(np.zeros((5, 2, 4), np.float32))
    with pytest.raises(ValueError, match="3-D"):
        m(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"h_0 has shape \(1, 2, 4\), expected \(2, 2, 4\)"):
        m(x, (np.zeros((1, 2, 4), np.float32), np.zeros((2, 2, 4), np.float32)))
    with pytest.raises(ValueError, match="c_0 has shape"):
        m(x, (np.zeros((2, 2, 4), np.float32), np.zeros((2, 3, 4), np.float32)))
    with pytest.raises(TypeError, match="pair"):
        m(x, np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="hx has shape"):
        nn.GRU(3, 4)(x, np.zeros((1, 2, 5), np.float32))
    for L, what in (([0, 5], r"in \[1, 5\].*got 0"), ([6, 1], r"in \[1, 5\].*got 6"),
                    ([1, 2, 3], r"shape \(2,\)"), ([[1, 2]], r"shape \(2,\)")):
        with pytest.raises(ValueError, match=what):
            m(x, lengths=L)
    with pytest.raises(TypeError, match="lengths must be integers"):
        m(x, lengths=[1.0, 2.0])
    with pytest.raises(ValueError, match="lengths: every length"):
        _C.rnn_forward(0, 5, 2, 3, 4, False, x, np.zeros((4, 3), np.float32),
                       np.zeros((4, 4), np.float32), None, None, np.array([9, 1], np.int32),
                       np.zeros((2, 4), np.float32), None, None, 0, None, None, None, None)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match=r"expected \(N, 3\)"):
        nn.GRUCell(3, 4)(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="hx has shape"):
        nn.RNNCell(3, 4)(np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32))
    m(x)
    with pytest.raises(ValueError, match="grad_output has shape"):
        m.backward(np.zeros((5, 2, 5), np.float32))


def test_embedding_gru_timepool_model_trains_and_saves(tmp_path, rng):
    """Embedding -> bidirectional 2-layer GRU -> TimePool -> Linear in a
    Sequential: backward reaches the embedding, and save/load round-trips."""
    fastnn.manual_seed(0)
    m = nn.Sequential(nn.Embedding(10, 4), nn.GRU(4, 8, num_layers=2, bidirectional=True),
                      nn.TimePool("max"), nn.Linear(16, 3))
    idx = rng.integers(0, 10, (5, 3))
    y = m(idx)
    m.zero_grad()
    m.backward(np.ones_like(y))
    assert np.abs(m[0].weight.grad).sum() > 0
    fastnn.save(m, str(tmp_path / "m.fnn"))
    m2 = fastnn.load(str(tmp_path / "m.fnn"))
    np.testing.assert_array_equal(m.eval()(idx), m2.eval()(idx))


def test_stacked_layers_in_sequential_pass_lengths_on(rng):
    """LSTM -> GRU -> LastStep in a Sequential fed (x, lengths): the GRU
    gets the LSTM's output with its lengths, and backward reaches x."""
    fastnn.manual_seed(4)
    lstm, gru = nn.LSTM(3, 5), nn.GRU(5, 4)
    model = nn.Sequential(lstm, gru, nn.LastStep())
    x = rng.standard_normal((6, 3, 3)).astype(np.float32)
    L = np.array([2, 6, 4])
    with fastnn.no_grad():
        o1, _ = lstm(x, lengths=L)
        _, h2 = gru(o1, lengths=L)
    y = model((x, L))
    np.testing.assert_array_equal(y, h2[0])          # last valid step = h_n
    dx = model.backward(np.ones_like(y), input_grad=True)
    assert dx.shape == x.shape and np.abs(dx).sum() > 0
    for n in range(3):
        assert not dx[L[n]:, n].any()


def test_batch_first_gradients_pass_without_copies(rng):
    """A batch-first layer's output is a view of a time-major array, and so
    is LastStep's gradient for it: both reach the time loop as that
    time-major array, uncopied (two 0.9 MB copies per seq-MNIST step
    before); other layouts are still copied or rejected as before."""
    from fastnn.nn.rnn import _time_major
    tm = rng.standard_normal((5, 3, 4)).astype(np.float32)
    got = _time_major("LSTM", "grad_output", tm.transpose(1, 0, 2), True)
    assert got.flags.c_contiguous and np.shares_memory(got, tm)
    np.testing.assert_array_equal(got, tm)
    bf = np.ascontiguousarray(tm.transpose(1, 0, 2))          # a plain batch-first array
    np.testing.assert_array_equal(_time_major("LSTM", "x", bf, True), tm)
    np.testing.assert_array_equal(_time_major("LSTM", "x", bf.tolist(), True), tm)
    with pytest.raises(ValueError, match="3-D"):
        _time_major("LastStep", "output", tm[0], True)
    m = nn.Sequential(nn.LSTM(4, 6, batch_first=True), nn.LastStep())
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    out = m(x)
    g = m[1].backward(np.ones_like(out), input_grad=True)
    assert g.shape == (3, 5, 6) and not g.flags.c_contiguous and g.transpose(1, 0, 2).flags.c_contiguous
    assert m[0].backward(g, input_grad=True).shape == x.shape
