"""Recurrent layers: RNN, LSTM, GRU (the time loop in C, csrc/rnn.c), their
cells, Embedding, and the sequence heads LastStep and TimePool.

Weights, their names, layouts and gate order are torch's
(``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
and ``_reverse`` twins; LSTM gates i, f, g, o; GRU r, z, n), so a state_dict
moves between the two unchanged. See docs/rnn.md."""
import math
import numbers

import numpy as np

from .. import runtime
from .._check import F32, as_f32, contig, positive_int as _positive_int, real as _real
from .._check import bool_arg as _bool_arg
from .._ext import _C
from . import init
from .module import Module, Parameter, is_grad_enabled

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Embedding",
           "LastStep", "TimePool", "RNNOutput"]

_TANH, _RELU, _LSTM, _GRU = 0, 1, 2, 3
_GATES = {_TANH: 1, _RELU: 1, _LSTM: 4, _GRU: 3}


class RNNOutput(tuple):
    """What a recurrent layer's forward returns: the tuple ``(output, h_n)``
    (``(output, (h_n, c_n))`` for the LSTM), carrying ``lengths`` (the
    int32 lengths given to forward, or None) and ``batch_first``, so that a
    head (``LastStep``, ``TimePool``) placed after it in a ``Sequential``
    knows where each sequence ends."""

    def __new__(cls, items, lengths=None, batch_first=False):
        t = super().__new__(cls, items)
        t.lengths = lengths
        t.batch_first = batch_first
        return t


def _mode_of(who, nonlinearity):
    if nonlinearity == "tanh":
        return _TANH
    if nonlinearity == "relu":
        return _RELU
    raise ValueError(f"{who}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")


def _param(p):
    d = p.data
    if not (type(d) is np.ndarray and d.dtype == F32 and d.flags.c_contiguous):
        raise ValueError(f"parameter of shape {p.shape} must be C-contiguous float32")
    return d


def _grads(params):
    """(grad arrays or None, acc bit mask) for w_ih, w_hh, b_ih, b_hh."""
    out, acc = [], 0
    for bit, p in enumerate(params):
        if p is None or not p.requires_grad:
            out.append(None)
            continue
        g, a = p.grad_for_write()
        out.append(g)
        acc |= (1 << bit) if a else 0
    return out, acc


def _check_lengths(who, lengths, T, N):
    if lengths is None:
        return None
    L = np.asarray(lengths)
    if L.dtype.kind not in "iu":
        raise TypeError(f"{who}: lengths must be integers, got dtype {L.dtype}")
    if L.shape != (N,):
        raise ValueError(f"{who}: lengths must have shape ({N},) (one per sequence), "
                         f"got shape {L.shape}")
    if N and (L.min() < 1 or L.max() > T):
        bad = L[(L < 1) | (L > T)][0]
        raise ValueError(f"{who}: lengths must be in [1, {T}] (T = the input's time steps), "
                         f"got {int(bad)}")
    return np.ascontiguousarray(L, dtype=np.int32)


def _state(who, name, v, shape):
    v = as_f32(v, who, name)
    if v.shape != shape:
        raise ValueError(f"{who}: {name} has shape {v.shape}, expected {shape}")
    return np.array(v, dtype=np.float32, order="C", copy=True)


def _saves(pool, mode, T, N, H):
    """The arrays one direction's forward saves for backward: from the
    module's pool of those a finished backward gave back (a training loop
    then allocates, and page-faults, nothing per step), else new."""
    G = _GATES[mode]
    key = (mode, T, N, H)
    free = pool.get(key)
    if free:
        return free.pop()
    return (np.empty((T, N, G * H), F32), np.empty((T, N, H), F32),
            np.empty((T, N, H), F32) if mode in (_LSTM, _GRU) else None,
            np.empty((T, N, H), F32) if mode == _LSTM else None)


def _give_back(pool, mode, saves):
    T, N, H = saves[1].shape
    free = pool.setdefault((mode, T, N, H), [])
    if len(free) < 64:
        free.append(saves)


def _forward_dir(mode, x, T, N, I, H, reverse, params, lengths, h, c, y, off, pool):
    """One layer, one direction through the C time loop: h (and c) are
    updated in place to h_n (c_n); returns the saves (or None when pool is
    None: inference)."""
    w_ih, w_hh, b_ih, b_hh = params
    s = None if pool is None else _saves(pool, mode, T, N, H)
    _C.rnn_forward(mode, T, N, I, H, reverse, x, _param(w_ih), _param(w_hh),
                   None if b_ih is None else _param(b_ih),
                   None if b_hh is None else _param(b_hh), lengths, h, c, y, off,
                   *(s if s else (None, None, None, None)))
    return s


def _backward_dir(mode, x, T, N, I, H, reverse, params, lengths, saves, dy, off, dh, dc, dx,
                  dx_acc, need_dh0):
    w_ih, w_hh, b_ih, b_hh = params
    grads, acc = _grads(params)
    _C.rnn_backward(mode, T, N, I, H, reverse, x, _param(w_ih), _param(w_hh), lengths,
                    *saves, dy, off, dh, dc, dx, dx_acc, *grads, acc, need_dh0)


class _RNNBase(Module):
    _who = "RNN"

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False):
        super().__init__()
        who = self._who
        self.mode = mode
        self.input_size = _positive_int(who, "input_size", input_size)
        self.hidden_size = _positive_int(who, "hidden_size", hidden_size)
        self.num_layers = _positive_int(who, "num_layers", num_layers)
        self.bias = _bool_arg(who, "bias", bias)
        self.batch_first = _bool_arg(who, "batch_first", batch_first)
        self.bidirectional = _bool_arg(who, "bidirectional", bidirectional)
        self.dropout = _real(who, "dropout", dropout, lo=0.0, hi=1.0)
        if self.dropout == 1.0:
            raise ValueError(f"{who}: dropout must be in [0, 1), got 1.0")
        G, H, D = _GATES[mode], self.hidden_size, 2 if self.bidirectional else 1
        for k in range(self.num_layers):
            I = self.input_size if k == 0 else D * H
            for sfx in ("", "_reverse")[:D]:
                setattr(self, f"weight_ih_l{k}{sfx}", Parameter(np.empty((G * H, I), F32)))
                setattr(self, f"weight_hh_l{k}{sfx}", Parameter(np.empty((G * H, H), F32)))
                if self.bias:
                    setattr(self, f"bias_ih_l{k}{sfx}", Parameter(np.empty(G * H, F32)))
                    setattr(self, f"bias_hh_l{k}{sfx}", Parameter(np.empty(G * H, F32)))
        object.__setattr__(self, "_pool", {})
        self.reset_parameters()

    def reset_parameters(self):
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (torch's)."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -k, k)

    def _params(self, k, d):
        sfx = "_reverse" if d else ""
        g = lambda n: getattr(self, f"{n}_l{k}{sfx}", None)  # noqa: E731
        return (g("weight_ih"), g("weight_hh"), g("bias_ih") if self.bias else None,
                g("bias_hh") if self.bias else None)

    def forward(self, x, hx=None, lengths=None):
        who, H, L = self._who, self.hidden_size, self.num_layers
        D = 2 if self.bidirectional else 1
        if isinstance(x, tuple):          # an RNNOutput (stacked layers) or (x, lengths)
            if isinstance(x, RNNOutput):
                x, given = x[0], x.lengths
            elif len(x) == 2:
                x, given = x
            else:
                raise TypeError(f"{who}: x must be an array or a pair (x, lengths), "
                                f"got a tuple of {len(x)}")
            lengths = given if lengths is None else lengths
        x = as_f32(x, who, "x")
        if x.ndim != 3:
            raise ValueError(f"{who}: x must be 3-D ({'N, T' if self.batch_first else 'T, N'}, "
                             f"{self.input_size}), got shape {x.shape}")
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, N, I = x.shape
        if I != self.input_size:
            raise ValueError(f"{who}: x has {I} features per step, expected "
                             f"input_size={self.input_size}")
        if T < 1 or N < 1:
            raise ValueError(f"{who}: x must have at least one time step and one sequence, "
                             f"got shape {x.shape}")
        x = np.ascontiguousarray(x)
        lengths = _check_lengths(who, lengths, T, N)
        lstm = self.mode == _LSTM
        shape = (L * D, N, H)
        if hx is None:
            hn = np.zeros(shape, F32)
            cn = np.zeros(shape, F32) if lstm else None
        elif lstm:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"{who}: hx must be a pair (h_0, c_0), got {type(hx).__name__}")
            hn, cn = _state(who, "h_0", hx[0], shape), _state(who, "c_0", hx[1], shape)
        else:
            hn, cn = _state(who, "hx", hx, shape), None
        save = self.training and is_grad_enabled()
        layers = []
        inp = x
        for k in range(L):
            Ik = inp.shape[2]
            out = np.empty((T, N, D * H), F32)
            saves = []
            for d in range(D):
                saves.append(_forward_dir(self.mode, inp, T, N, Ik, H, d == 1, self._params(k, d),
                                          lengths, hn[k * D + d], cn[k * D + d] if lstm else None,
                                          out, d * H, self._pool if save else None))
            mask = None
            if k < L - 1 and self.dropout > 0.0 and self.training:
                mask = np.empty(out.shape, np.uint8)
                dropped = np.empty_like(out)
                _C.dropout_forward(runtime.next_seed(), out, dropped, mask, self.dropout)
                out = dropped
            layers.append((inp, saves, mask))
            inp = out
        if save:
            self.save_for_backward(layers, lengths, hx is not None, (T, N))
        out = inp.transpose(1, 0, 2) if self.batch_first else inp
        return RNNOutput((out, (hn, cn) if lstm else hn), lengths, self.batch_first)

    def backward(self, grad_output, grad_state=None):
        """dL/dx from dL/d(output) (None: zero) and dL/d(h_n) (``grad_state``;
        for the LSTM a pair (dh_n, dc_n), either may be None). grad_output
        may also be the pair (d output, d state). Returns dL/dx, or (dL/dx,
        dL/dhx) when forward was given hx."""
        layers, lengths, had_hx, (T, N) = self.saved_tensors()
        who, H, L = self._who, self.hidden_size, self.num_layers
        D = 2 if self.bidirectional else 1
        lstm = self.mode == _LSTM
        if isinstance(grad_output, tuple) and grad_state is None:
            grad_output, grad_state = grad_output
        shape = (L * D, N, H)
        if lstm:
            gs = grad_state if grad_state is not None else (None, None)
            if not (isinstance(gs, (tuple, list)) and len(gs) == 2):
                raise TypeError(f"{who}: grad_state must be a pair (dh_n, dc_n)")
            dh = np.zeros(shape, F32) if gs[0] is None else _state(who, "grad_state[0]", gs[0], shape)
            dc = np.zeros(shape, F32) if gs[1] is None else _state(who, "grad_state[1]", gs[1], shape)
        else:
            dh = (np.zeros(shape, F32) if grad_state is None
                  else _state(who, "grad_state", grad_state, shape))
            dc = None
        g = None
        if grad_output is not None:
            oshape = (N, T, D * H) if self.batch_first else (T, N, D * H)
            g = _time_major(who, "grad_output", grad_output, self.batch_first)
            if g.shape != (T, N, D * H):
                shape = (g.shape[1], g.shape[0], g.shape[2]) if self.batch_first else g.shape
                raise ValueError(f"{who}: grad_output has shape {shape}, expected {oshape} "
                                 f"(the shape of the output)")
            g = np.ascontiguousarray(g)
        need_dx = self.needs_input_grad
        for k in range(L - 1, -1, -1):
            inp, saves, _ = layers[k]
            Ik = inp.shape[2]
            dx = np.empty((T, N, Ik), F32) if (k > 0 or need_dx) else None
            for d in range(D):
                _backward_dir(self.mode, inp, T, N, Ik, H, d == 1, self._params(k, d), lengths,
                              saves[d], g, d * H, dh[k * D + d], dc[k * D + d] if lstm else None,
                              dx, d == 1, had_hx)
                _give_back(self._pool, self.mode, saves[d])
            mask = layers[k - 1][2] if k > 0 else None     # dropout on layer k-1's output
            if mask is not None:
                _C.dropout_backward(dx, mask, dx, self.dropout)
            g = dx
        if need_dx and self.batch_first:
            g = np.ascontiguousarray(g.transpose(1, 0, 2))
        if had_hx:
            return g, ((dh, dc) if lstm else dh)
        return g

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(_RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act
    tanh or relu. See docs/rnn.md."""
    _who = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False):
        super().__init__(_mode_of("RNN", nonlinearity), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """Long short-term memory, torch's gates i, f, g, o. forward returns
    (output, (h_n, c_n))."""
    _who = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False):
        super().__init__(_LSTM, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional)


class GRU(_RNNBase):
    """Gated recurrent unit, torch's gates r, z, n with b_hn inside the reset
    product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    _who = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False):
        super().__init__(_GRU, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional)


class _CellBase(Module):
    """One step of a recurrent layer: the same C kernels with T = 1."""
    _who = "RNNCell"

    def __init__(self, mode, input_size, hidden_size, bias=True):
        super().__init__()
        who = self._who
        self.mode = mode
        self.input_size = _positive_int(who, "input_size", input_size)
        self.hidden_size = _positive_int(who, "hidden_size", hidden_size)
        G, H = _GATES[mode], self.hidden_size
        self.weight_ih = Parameter(np.empty((G * H, self.input_size), F32))
        self.weight_hh = Parameter(np.empty((G * H, H), F32))
        self.bias_ih = Parameter(np.empty(G * H, F32)) if bias else None
        self.bias_hh = Parameter(np.empty(G * H, F32)) if bias else None
        object.__setattr__(self, "_pool", {})
        self.reset_parameters()

    reset_parameters = _RNNBase.reset_parameters

    def forward(self, x, hx=None):
        who, H = self._who, self.hidden_size
        x = contig(who, x)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{who}: x has shape {x.shape}, expected (N, {self.input_size}) "
                             f"(input_size={self.input_size})")
        N = x.shape[0]
        if N < 1:
            raise ValueError(f"{who}: x must hold at least one sample, got shape {x.shape}")
        lstm = self.mode == _LSTM
        if hx is None:
            h = np.zeros((N, H), F32)
            c = np.zeros((N, H), F32) if lstm else None
        elif lstm:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"{who}: hx must be a pair (h, c), got {type(hx).__name__}")
            h, c = _state(who, "h", hx[0], (N, H)), _state(who, "c", hx[1], (N, H))
        else:
            h, c = _state(who, "hx", hx, (N, H)), None
        save = self.training and is_grad_enabled()
        params = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        s = _forward_dir(self.mode, x, 1, N, self.input_size, H, False, params, None, h, c,
                         None, 0, self._pool if save else None)
        if save:
            self.save_for_backward(x, s, hx is not None)
        return (h, c) if lstm else h

    def backward(self, grad_out):
        """grad_out: dL/dh' (a pair (dh', dc') for the LSTMCell, either may be
        None). Returns dL/dx, or (dL/dx, dL/dhx) when forward was given hx."""
        x, s, had_hx = self.saved_tensors()
        who, H = self._who, self.hidden_size
        N = x.shape[0]
        lstm = self.mode == _LSTM
        if lstm:
            if not (isinstance(grad_out, (tuple, list)) and len(grad_out) == 2):
                raise TypeError(f"{who}: grad_out must be a pair (dh, dc)")
            gh, gc = grad_out
            dc = np.zeros((N, H), F32) if gc is None else _state(who, "grad_out[1]", gc, (N, H))
        else:
            gh, dc = grad_out, None
        dh = np.zeros((N, H), F32) if gh is None else _state(who, "grad_out", gh, (N, H))
        need = self.needs_input_grad
        dx = np.empty(x.shape, F32) if need else None
        params = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        _backward_dir(self.mode, x, 1, N, self.input_size, H, False, params, None, s, None, 0,
                      dh, dc, dx, False, had_hx)
        _give_back(self._pool, self.mode, s)
        if had_hx:
            return dx, ((dh, dc) if lstm else dh)
        return dx

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}"
                + ("" if self.bias_ih is not None else ", bias=False"))


class RNNCell(_CellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu."""
    _who = "RNNCell"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh"):
        super().__init__(_mode_of("RNNCell", nonlinearity), input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity


class LSTMCell(_CellBase):
    """(h', c') = LSTM step of (x, (h, c)); hx None means zeros."""
    _who = "LSTMCell"

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__(_LSTM, input_size, hidden_size, bias)


class GRUCell(_CellBase):
    """h' = GRU step of (x, h); hx None means zeros."""
    _who = "GRUCell"

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__(_GRU, input_size, hidden_size, bias)


class Embedding(Module):
    """weight[idx]: rows of a (num_embeddings, embedding_dim) table ~ N(0, 1)
    (torch's default), for integer indices of any shape; the output has
    shape idx.shape + (embedding_dim,). padding_idx: that row starts at zero
    and never gets a gradient. Backward is a deterministic scatter-add:
    indices sorted (stable), each row's gradients summed in input order."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.num_embeddings = _positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) \
                    or not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be an integer in "
                                 f"[-{self.num_embeddings}, {self.num_embeddings}), "
                                 f"got {padding_idx!r}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), F32))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0.0

    def forward(self, idx):
        a = np.asarray(idx)
        if a.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {a.dtype}")
        n = self.num_embeddings
        if a.size:
            lo, hi = a.min(), a.max()
            if lo < 0 or hi >= n:
                bad = lo if lo < 0 else hi
                raise ValueError(f"Embedding: index {int(bad)} is out of range [0, {n}) "
                                 f"(num_embeddings={n})")
        a = a.astype(np.int64, copy=False)
        self.save_for_backward(a)
        return self.weight.data.take(a, axis=0)

    def backward(self, grad_out):
        a, = self.saved_tensors()
        shape = a.shape + (self.embedding_dim,)
        g = as_f32(grad_out, "Embedding", "grad_out")
        if g.shape != shape:
            raise ValueError(f"Embedding: grad_out has shape {g.shape}, expected {shape} "
                             f"(the shape of the forward output)")
        if self.weight.requires_grad and a.size:
            flat = a.reshape(-1)
            order = np.argsort(flat, kind="stable")
            s = flat[order]
            starts = np.concatenate(([0], np.flatnonzero(s[1:] != s[:-1]) + 1))
            sums = np.add.reduceat(g.reshape(-1, self.embedding_dim)[order], starts, axis=0)
            rows = s[starts]
            if self.padding_idx is not None:
                keep = rows != self.padding_idx
                rows, sums = rows[keep], sums[keep]
            gw, acc = self.weight.grad_for_write()
            if not acc:
                gw.fill(0.0)
            gw[rows] += sums
        return None          # indices have no gradient

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


def _time_major(who, name, v, batch_first):
    """A 3-D sequence array as a float32 time-major (T, N, F) array, batch-first
    ones transposed as a view *before* any copy: the batch-first view of a
    time-major array (what the recurrent layers output and LastStep returns
    as a gradient) then needs none."""
    flip = batch_first
    if flip and isinstance(v, np.ndarray) and v.ndim == 3:
        v, flip = v.transpose(1, 0, 2), False
    v = as_f32(v, who, name)
    if v.ndim != 3:
        raise ValueError(f"{who}: expected a 3-D sequence {name}, got shape {v.shape}")
    return v.transpose(1, 0, 2) if flip else v


def _seq_input(who, inp, lengths, batch_first):
    """(output (T, N, F) view, lengths or None, batch_first, was_tuple) from an
    RNN's output tuple or a plain array."""
    was_tuple = isinstance(inp, tuple)
    if was_tuple:
        if lengths is None:
            lengths = getattr(inp, "lengths", None)
        batch_first = getattr(inp, "batch_first", batch_first)
        inp = inp[0]
    y = _time_major(who, "output", inp, batch_first)
    T, N, _ = y.shape
    return y, _check_lengths(who, lengths, T, N), batch_first, was_tuple


class LastStep(Module):
    """The output at each sequence's last valid step: (T, N, F) -> (N, F).

    Takes an RNN's output tuple (as ``Sequential(LSTM(...), LastStep(),
    Linear(...))`` passes it) or a plain output array. The lengths come, in
    this order, from ``forward(out, lengths=...)``, from the tuple (a
    recurrent layer's ``RNNOutput`` carries the lengths it was given), or
    are all T. ``batch_first`` describes a plain array (a tuple says its
    own). For a bidirectional layer this is torch's ``output[len-1]``: the
    forward direction's last step and the reverse direction's first."""

    def __init__(self, batch_first=False):
        super().__init__()
        self.batch_first = _bool_arg("LastStep", "batch_first", batch_first)

    def forward(self, inp, lengths=None):
        y, L, bf, tup = _seq_input("LastStep", inp, lengths, self.batch_first)
        T, N, F = y.shape
        last = np.full(N, T - 1, np.intp) if L is None else L.astype(np.intp) - 1
        self.save_for_backward(y.shape, last, bf, tup)
        return np.ascontiguousarray(y[last, np.arange(N)])

    def backward(self, grad_out):
        (T, N, F), last, bf, tup = self.saved_tensors()
        g = as_f32(grad_out, "LastStep", "grad_out")
        if g.shape != (N, F):
            raise ValueError(f"LastStep: grad_out has shape {g.shape}, expected {(N, F)}")
        d = np.zeros((T, N, F), F32)
        d[last, np.arange(N)] = g
        # batch-first: the (N, T, F) view of the time-major gradient, which
        # is what the recurrent layer's backward takes without a copy
        return d.transpose(1, 0, 2) if bf else d


class TimePool(Module):
    """Mean or max over each sequence's valid steps: (T, N, F) -> (N, F).
    Inputs and lengths as for LastStep. Max routes the gradient to the first
    maximum of each feature."""

    def __init__(self, mode="mean", batch_first=False):
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"TimePool: mode must be 'mean' or 'max', got {mode!r}")
        self.mode = mode
        self.batch_first = _bool_arg("TimePool", "batch_first", batch_first)

    def forward(self, inp, lengths=None):
        y, L, bf, tup = _seq_input("TimePool", inp, lengths, self.batch_first)
        T, N, F = y.shape
        valid = None if L is None else (np.arange(T)[:, None] < L[None, :])  # (T, N)
        if self.mode == "mean":
            cnt = np.full(N, T, F32) if L is None else L.astype(F32)
            s = y.sum(axis=0, dtype=np.float64) if valid is None else \
                np.where(valid[:, :, None], y, 0.0).sum(axis=0, dtype=np.float64)
            out = (s / cnt[:, None]).astype(F32)
            self.save_for_backward(y.shape, valid, cnt, None, bf)
        else:
            m = y if valid is None else np.where(valid[:, :, None], y, -np.inf).astype(F32)
            arg = np.argmax(m, axis=0)                                   # (N, F)
            out = np.ascontiguousarray(np.take_along_axis(m, arg[None], axis=0)[0])
            self.save_for_backward(y.shape, valid, None, arg, bf)
        return out

    def backward(self, grad_out):
        (T, N, F), valid, cnt, arg, bf = self.saved_tensors()
        g = as_f32(grad_out, "TimePool", "grad_out")
        if g.shape != (N, F):
            raise ValueError(f"TimePool: grad_out has shape {g.shape}, expected {(N, F)}")
        if arg is None:
            d = np.broadcast_to(g / cnt[:, None], (T, N, F)).astype(F32)
            if valid is not None:
                d = d * valid[:, :, None]
        else:
            d = np.zeros((T, N, F), F32)
            np.put_along_axis(d, arg[None], g[None], axis=0)
        d = np.ascontiguousarray(d, dtype=F32)
        return d.transpose(1, 0, 2) if bf else d      # a view, as LastStep's

    def extra_repr(self):
        return repr(self.mode)
