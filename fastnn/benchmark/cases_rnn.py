"""Recurrent-network cases (issue 13): fastnn against PyTorch on the same data,
model and optimizer.

  train/seqmnist-lstm128/b64  sequential MNIST (each image as 28 steps of 28
                              features): LSTM(28, 128), last step, Linear(128,
                              10); Adam(lr=1e-3), batch 64, one optimizer step
                              per call, written as the README's loop
  train/seqmnist-gru128/b64   the same with GRU(28, 128)
  infer/seqmnist-lstm128/b1   eval-mode forward of the LSTM model on one image
                              (latency: 28 steps at batch 1)
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


def _t_rnn_vs_torch(case, group):
    def collect(results, machine, run):
        best = report._best_fastnn([r for r in results if r["case"] == case])
        return report._ratio_rows(results, (group,), best, "torch",
                                  lambda r: r["case"] == case and r["threads"] == 2)
    return collect


for _t in (
        report.Target("T31", "seq-MNIST LSTM-128 training step, x torch, 2 threads", ">=", 1.5,
                      _t_rnn_vs_torch(f"train/seqmnist-lstm128/b{BATCH}", "training")),
        report.Target("T32", "seq-MNIST GRU-128 training step, x torch, 2 threads", ">=", 1.5,
                      _t_rnn_vs_torch(f"train/seqmnist-gru128/b{BATCH}", "training")),
        report.Target("T33", "LSTM-128 batch-1 inference latency, x torch, 2 threads", ">=", 2.0,
                      _t_rnn_vs_torch("infer/seqmnist-lstm128/b1", "inference"))):
    if all(t.key != _t.key for t in report.TARGETS):
        report.TARGETS.append(_t)
