"""Recurrent-network cases (issue 13): fastnn against PyTorch on the same data,
model and optimizer.

  train/seqmnist-lstm128/b64  sequential MNIST (each image as 28 steps of 28
                              features): LSTM(28, 128), last step, Linear(128,
                              10); Adam(lr=1e-3), batch 64, one optimizer step
                              per call, written as the README's loop
  train/seqmnist-gru128/b64   the same with GRU(28, 128)
  infer/seqmnist-lstm128/b1   eval-mode forward of the LSTM model on one image
                              (latency: 28 steps at batch 1)
  train/charlm-lstm512/b64    the Tiny Shakespeare model of examples/char_lm.py:
                              Embedding(65, 64), LSTM(64, 512, 2 layers,
                              dropout 0.2), Dropout(0.2), Linear(512, 65);
                              Adam(lr=2e-3), gradient clipping at norm 5, 64
                              streams x 100 steps per call, time-major;
                              samples/s are characters/s (the text here is
                              random: the speed does not depend on it)
"""
import numpy as np

import fastnn

from . import report
from .cases_train import EPOCH, _data, train_step_impls
from .harness import Case, register

BATCH = 64


def _fastnn_model(kind):
    from fastnn import nn
    rnn = nn.LSTM(28, 128, batch_first=True) if kind == "lstm" else nn.GRU(28, 128,
                                                                           batch_first=True)
    return nn.Sequential(rnn, nn.LastStep(), nn.Linear(128, 10))


def _torch_model(torch, kind):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
            self.rnn = cls(28, 128, batch_first=True)
            self.fc = torch.nn.Linear(128, 10)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])
    return Net()


def _seq_data():
    x, y = _data()
    return x.reshape(-1, 28, 28), y


def _adam(params):
    return fastnn.optim.Adam(params, lr=1e-3)


def _torch_adam(torch, params):
    return torch.optim.Adam(params, lr=1e-3)


def _train_setup(kind):
    def setup(want):
        x, y = _seq_data()
        return train_step_impls(want, x, y, BATCH, lambda: _fastnn_model(kind), _adam,
                                lambda torch: _torch_model(torch, kind), _torch_adam)
    return setup


def _torch(want):
    if "torch" not in want:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def _infer_setup(want):
    x, _ = _seq_data()
    one = np.ascontiguousarray(x[:1])
    fastnn.manual_seed(0)
    model = _fastnn_model("lstm").eval()

    def infer_fastnn():
        with fastnn.no_grad():
            model.forward(one)

    impls = {"fastnn": infer_fastnn}
    torch = _torch(want)
    if torch is not None:
        tm = _torch_model(torch, "lstm").eval()
        xt = torch.from_numpy(one)

        def infer_torch():
            with torch.no_grad():
                tm(xt)
        impls["torch"] = infer_torch
    for f in impls.values():
        for _ in range(5):
            f()
    return impls


for _kind in ("lstm", "gru"):
    register(Case(f"train/seqmnist-{_kind}128/b{BATCH}", group="training", unit="sample",
                  work=BATCH, setup=_train_setup(_kind), epoch_samples=EPOCH, quick=True,
                  params={"model": f"{_kind}-128 seq-MNIST", "optimizer": "adam",
                          "batch": BATCH, "dropout": 0.0},
                  description=f"one Adam step of {_kind.upper()}(28, 128) + Linear(128, 10) on "
                              f"28 steps x 28 features"))

register(Case("infer/seqmnist-lstm128/b1", group="inference", unit="sample", work=1,
              setup=_infer_setup, quick=True,
              params={"model": "lstm-128 seq-MNIST", "batch": 1},
              description="eval-mode forward of LSTM(28, 128) + Linear over 28 steps, batch 1"))


VOCAB, EMBED, HIDDEN, SEQ, STREAMS = 65, 64, 512, 100, 64


def _charlm_setup(want):
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (SEQ, STREAMS)).astype(np.int64)
    y = rng.integers(0, VOCAB, SEQ * STREAMS).astype(np.int64)
    nn = fastnn.nn
    fastnn.manual_seed(0)
    emb, lstm = nn.Embedding(VOCAB, EMBED), nn.LSTM(EMBED, HIDDEN, 2, dropout=0.2)
    drop, head = nn.Dropout(0.2), nn.Linear(HIDDEN, VOCAB)
    params = [p for m in (emb, lstm, head) for p in m.parameters()]
    opt, crit = fastnn.optim.Adam(params, lr=2e-3), nn.CrossEntropyLoss()

    def step_fastnn():                # examples/char_lm.py's step
        out, _ = lstm(emb(x))
        crit(head(drop(out.reshape(SEQ * STREAMS, HIDDEN))), y)
        opt.zero_grad()
        g = drop.backward(head.backward(crit.backward(), input_grad=True), input_grad=True)
        emb.backward(lstm.backward(g.reshape(SEQ, STREAMS, HIDDEN), input_grad=True))
        fastnn.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    impls = {"fastnn": step_fastnn}
    torch = _torch(want)
    if torch is not None:
        torch.manual_seed(0)
        tn = torch.nn
        t_emb, t_lstm = tn.Embedding(VOCAB, EMBED), tn.LSTM(EMBED, HIDDEN, 2, dropout=0.2)
        t_drop, t_head = tn.Dropout(0.2), tn.Linear(HIDDEN, VOCAB)
        t_params = [p for m in (t_emb, t_lstm, t_head) for p in m.parameters()]
        t_opt, t_crit = torch.optim.Adam(t_params, lr=2e-3), tn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step_torch():
            out, _ = t_lstm(t_emb(xt))
            loss = t_crit(t_head(t_drop(out.reshape(SEQ * STREAMS, HIDDEN))), yt)
            t_opt.zero_grad()
            loss.backward()
            tn.utils.clip_grad_norm_(t_params, 5.0)
            t_opt.step()
        impls["torch"] = step_torch
    for f in impls.values():
        f()
    return impls


register(Case(f"train/charlm-lstm{HIDDEN}/b{STREAMS}", group="training", unit="sample",
              work=SEQ * STREAMS, setup=_charlm_setup,
              params={"model": "char-LM 2x LSTM-512", "optimizer": "adam",
                      "batch": f"{STREAMS}x{SEQ} chars", "dropout": 0.2},
              description="one Adam step (clip 5) of the Tiny Shakespeare char-LM: 64 streams x "
                          "100 characters; samples/s = characters/s"))


for _t in (
        report.Target("T31", "seq-MNIST LSTM-128 training step, x torch, 2 threads", ">=", 1.5,
                      report.vs_torch_at_2_threads(f"train/seqmnist-lstm128/b{BATCH}", "training")),
        report.Target("T32", "seq-MNIST GRU-128 training step, x torch, 2 threads", ">=", 1.5,
                      report.vs_torch_at_2_threads(f"train/seqmnist-gru128/b{BATCH}", "training")),
        report.Target("T33", "LSTM-128 batch-1 inference latency, x torch, 2 threads", ">=", 2.0,
                      report.vs_torch_at_2_threads("infer/seqmnist-lstm128/b1", "inference")),
        report.Target("T34", "char-LM (2x LSTM-512) training, characters/s x torch, 2 threads",
                      ">=", 1.3, report.vs_torch_at_2_threads(f"train/charlm-lstm{HIDDEN}/b{STREAMS}",
                                                              "training"))):
    if all(t.key != _t.key for t in report.TARGETS):
        report.TARGETS.append(_t)
