"""Runtime cases: the checks of the one C runtime (csrc/parallel.h) end to end.

threads/mlp-w{w}/b64
    One Adam step of an MLP 10-w-w-10 on a batch of 64, for widths from 8 to
    1024. Run at 1 and 2 threads, the thread-scaling table shows the 2-thread
    speedup per width: it must never fall below 1 (a second thread must never
    slow a small model down: the single-thread threshold of parallel.h, about
    a megaflop of work per extra thread, decides when it joins).
runtime/denormal/{normal,denormal}
    One SGD step of an MLP 784-256-256-10 (batch 64), once with ordinary
    weights and inputs and once with both scaled by 1e-39 into the float32
    denormal range. The kernels run with flush-to-zero, so the two rates must
    stay within 1.5x of each other.
"""
import numpy as np

import fastnn

from .harness import Case, register

SWEEP_WIDTHS = (8, 32, 46, 64, 128, 256, 512, 1024)
SWEEP_BATCH = 64


def _mlp(sizes):
    from fastnn import nn
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _torch_step(torch, sizes, x, y, opt_name):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if opt_name == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.01))
    loss = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss(model(xt), yt).backward()
        opt.step()
    return step


def _step_setup(sizes, batch, opt_name, scale=None):
    def setup(want):
        fastnn.manual_seed(0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], batch)
        model = _mlp(sizes)
        if scale is not None:
            x = x * np.float32(scale)
            for p in model.parameters():
                p.data[...] = p.data * np.float32(scale)
        opt = (fastnn.optim.Adam(model.parameters(), lr=1e-3) if opt_name == "adam"
               else fastnn.optim.SGD(model.parameters(), lr=0.01))
        loss = fastnn.nn.CrossEntropyLoss()

        def step():
            loss(model(x), y)
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()
        impls = {"fastnn": step}
        if "torch" in want and scale is None:
            try:
                import torch
                impls["torch"] = _torch_step(torch, sizes, x, y, opt_name)
            except ImportError:
                pass
        for f in impls.values():
            for _ in range(3):
                f()
        return impls
    return setup


for _w in SWEEP_WIDTHS:
    _sizes = (10, _w, _w, 10)
    register(Case(f"threads/mlp-w{_w}/b{SWEEP_BATCH}", group="threads", unit="sample",
                  work=SWEEP_BATCH, setup=_step_setup(_sizes, SWEEP_BATCH, "adam"),
                  epoch_samples=60000, quick=True,
                  params={"model": "-".join(map(str, _sizes)), "optimizer": "adam",
                          "batch": SWEEP_BATCH},
                  description=f"one adam step of MLP {'-'.join(map(str, _sizes))}: "
                              f"2 threads never slower than 1"))

for _kind, _scale in (("normal", None), ("denormal", 1e-39)):
    register(Case(f"runtime/denormal/{_kind}", group="denormal", unit="sample", work=64,
                  setup=_step_setup((784, 256, 256, 10), 64, "sgd", _scale),
                  epoch_samples=60000, quick=True,
                  params={"model": "784-256-256-10", "optimizer": "sgd", "batch": 64,
                          "weights": _kind},
                  description=f"one sgd step of MLP 784-256-256-10, {_kind} weights and "
                              f"inputs (the two within 1.5x)"))
