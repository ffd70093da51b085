"""Convolution cases: per-layer forward and backward GFLOP/s beside the GEMM's
rate on the same product, and a LeNet-style CNN training step.

Layers (NCHW, stride 1, 'same' padding), batch 64 and 128:
  lenet-c2   32 -> 64, 5x5, 14x14 (LeNet-style CNN's second convolution)
  c3x3-32    32 -> 32, 3x3, 28x28
conv/fwd: forward, no context saved (torch under no_grad); conv/bwd: the
backward kernel alone (dX, dW, db; torch's aten.convolution_backward);
conv/gemm: one GEMM (O, C k k) x (C k k, N Ho Wo) of the forward's flops.
Rates are effective: the direct method's flops over the time. Both layers
take fastnn's Winograd path for the forward and dX (fewer multiplies), so
their "% of peak" can pass 100%.

train/lenet/b64: fastnn.models.cnn, conv5x5-32 pad 2, ReLU, maxpool 2,
conv5x5-64 pad 2, ReLU, maxpool 2, fc-1024, ReLU, fc-10; Adam(lr=1e-3),
batch 64, the README's loop.
"""
import numpy as np

import fastnn
from fastnn._ext import _C

from . import report
from .cases_train import EPOCH, _data, train_step_impls
from .harness import Case, register

LAYERS = {"lenet-c2": (32, 64, 14, 5), "c3x3-32": (32, 32, 28, 3)}


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _layer(name, B):
    Ci, Co, H, k = LAYERS[name]
    fastnn.manual_seed(0)
    m = fastnn.nn.Conv2d(Ci, Co, k, padding=k // 2)
    x = _rand((B, Ci, H, H), 1)
    return m, x, 2.0 * B * Co * H * H * Ci * k * k


def _fwd_setup(name, B):
    def setup(want):
        m, x, _ = _layer(name, B)

        def run():
            with fastnn.no_grad():
                m.forward(x)
        impls = {"fastnn": run}
        torch = _torch() if "torch" in want else None
        if torch is not None:
            mt = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                 padding=m.padding)
            xt = torch.from_numpy(x)

            def run_torch():
                with torch.no_grad():
                    mt(xt)
            impls["torch"] = run_torch
        for f in impls.values():
            f()
        return impls
    return setup


def _bwd_setup(name, B):
    def setup(want):
        m, x, _ = _layer(name, B)
        shape = m._shape(x)[1]
        y = m.forward(x)
        m.clear_contexts()
        dy = _rand(y.shape, 2)
        w, b = m.weight.data, m.bias.data
        dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
        impls = {"fastnn": lambda: _C.conv2d_backward(shape, x, w, dy, dx, dw, db, False)}
        torch = _torch() if "torch" in want else None
        if torch is not None:
            xt, wt, dyt = (torch.from_numpy(a) for a in (x, w, dy))
            p = m.kernel_size[0] // 2
            impls["torch"] = lambda: torch.ops.aten.convolution_backward(
                dyt, xt, wt, [m.out_channels], [1, 1], [p, p], [1, 1], False, [0, 0], 1,
                [True, True, True])
        for f in impls.values():
            f()
        return impls
    return setup


def _gemm_setup(name, B):
    def setup(want):
        Ci, Co, H, k = LAYERS[name]
        M, N, K = Co, B * H * H, Ci * k * k
        a, bm, c = _rand((M, K), 3), _rand((K, N), 4), np.empty((M, N), np.float32)
        impls = {"fastnn": lambda: _C.sgemm(False, False, M, N, K, 1.0, a, bm, 0.0, c,
                                            None, 0, False)}
        torch = _torch() if "torch" in want else None
        if torch is not None:
            at, bt, ct = (torch.from_numpy(v) for v in (a, bm, c))
            impls["torch"] = lambda: torch.mm(at, bt, out=ct)
        for f in impls.values():
            f()
        return impls
    return setup


for _name, (_ci, _co, _h, _k) in LAYERS.items():
    for _B in (64, 128):
        _flops = 2.0 * _B * _co * _h * _h * _ci * _k * _k
        _params = {"layer": f"{_ci}->{_co} k{_k}", "shape": f"{_B}x{_ci}x{_h}x{_h}"}
        for _kind, _setup, _work, _what in (
                ("fwd", _fwd_setup, _flops, "Conv2d forward (no context saved)"),
                ("bwd", _bwd_setup, 2 * _flops, "Conv2d backward kernel: dX, dW, db (2x forward flops)"),
                ("gemm", _gemm_setup, _flops, "one GEMM with the forward's product shape")):
            register(Case(f"conv/{_kind}/{_name}/b{_B}", group=f"conv-{_kind}", unit="flop",
                          work=_work, setup=_setup(_name, _B), params=dict(_params),
                          description=f"{_what}: {_name}, batch {_B}"))


def fastnn_lenet():
    """The LeNet-style CNN of fastnn.models (``fastnn train --model cnn``)."""
    from fastnn import models
    return models.cnn((1, 28, 28), 10)


def torch_lenet(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


def _cnn_setup(batch, fastnn_model, torch_model):
    """The README-loop step of a CNN on MNIST-shaped data, Adam(1e-3), both sides."""
    def setup(want):
        x, y = _data()
        return train_step_impls(want, x.reshape(-1, 1, 28, 28), y, batch, fastnn_model,
                                lambda params: fastnn.optim.Adam(params, lr=1e-3), torch_model,
                                lambda torch, params: torch.optim.Adam(params, lr=1e-3),
                                warmup=2)
    return setup


register(Case("train/lenet/b64", group="training", unit="sample", work=64,
              setup=_cnn_setup(64, fastnn_lenet, torch_lenet), epoch_samples=EPOCH, rss=True,
              params={"model": "lenet", "optimizer": "adam", "batch": 64},
              description="one Adam step of the LeNet-style CNN (conv5x5-32, pool, "
                          "conv5x5-64, pool, fc-1024, fc-10)"))


def torch_bn_cnn(torch):
    """fastnn.models.cnn_bn (issue 12's BN CNN) in torch."""
    nn = torch.nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Linear(128, 10))


register(Case("train/bn-cnn/b128", group="training", unit="sample", work=128,
              setup=_cnn_setup(128, lambda: fastnn.models.cnn_bn((1, 28, 28), 10), torch_bn_cnn), epoch_samples=EPOCH, rss=True,
              params={"model": "bn-cnn", "optimizer": "adam", "batch": 128},
              description="one Adam step of the BN CNN (3 x [conv3x3, BN, ReLU] with two "
                          "max-pools, fc-128, fc-10)"))


for _t in (
        report.Target("T21", "LeNet-style CNN training step, x torch, 2 threads", ">=", 1.5,
                      report.vs_torch_at_2_threads("train/lenet/b64", "training")),
        report.Target("T22", "BN CNN training step, x torch, 2 threads", ">=", 1.5,
                      report.vs_torch_at_2_threads("train/bn-cnn/b128", "training")),
        report.Target("T23", "BatchNorm2d (128, 32, 28, 28) forward + backward, x torch, "
                      "2 threads", ">=", 2.0,
                      report.vs_torch_at_2_threads("norm/batchnorm2d/128x32x28x28", "norm"))):
    if all(t.key != _t.key for t in report.TARGETS):
        report.TARGETS.append(_t)
