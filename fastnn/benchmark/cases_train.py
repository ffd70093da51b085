"""End-to-end training-step cases: fastnn against PyTorch on the same data,
batch size, model and optimizer. One call = one optimizer step on the next
mini-batch of a 60,000-sample MNIST-shaped training set (the real MNIST when
it is found, else random data of the same shape: the speed is the same);
s/epoch is reported for 60,000 samples.

Models (from the issues):
  mlp-small  784-256-10, ReLU, SGD(lr=0.01, momentum=0.9), batch 64
  mlp-large  784-1024-1024-10, ReLU, Dropout(0.5), Adam(lr=1e-3), batch 128
"""
import os

import numpy as np

import fastnn

from .harness import Case, register

EPOCH = 60000

MODELS = {
    # name: (hidden sizes, dropout, optimizer, batch)
    "mlp-small": ((256,), 0.0, "sgd", 64),
    "mlp-large": ((1024, 1024), 0.5, "adam", 128),
}


def _mnist_or_random():
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.environ.get("FASTNN_MNIST_DIR"),
              os.path.join(os.getcwd(), "..", "shared", "data", "mnist"),
              os.path.join(here, "..", "..", "..", "shared", "data", "mnist")):
        if d and os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
            x, y = fastnn.datasets.load_mnist(d, kind="train", flatten=True)
            return x, y.astype(np.int64)
    rng = np.random.default_rng(0)
    return rng.random((EPOCH, 784), dtype=np.float32), rng.integers(0, 10, EPOCH)


_DATA = None


def _data():
    global _DATA
    if _DATA is None:
        _DATA = _mnist_or_random()
    return _DATA


def fastnn_model(hidden, p):
    from fastnn import nn
    layers, prev = [], 784
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        if p:
            layers.append(nn.Dropout(p))
        prev = h
    return nn.Sequential(*layers, nn.Linear(prev, 10))


def torch_model(torch, hidden, p):
    layers, prev = [], 784
    for h in hidden:
        layers += [torch.nn.Linear(prev, h), torch.nn.ReLU()]
        if p:
            layers.append(torch.nn.Dropout(p))
        prev = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(prev, 10))


def train_step_impls(want, x, y, batch, fastnn_model, fastnn_opt, torch_model, torch_opt,
                     warmup=3):
    """The harness's implementations of one training step on (x, y): fastnn's as
    the README's loop writes it (a shuffling DataLoader, restarted when it runs
    out) and, when wanted and installed, torch's usual loop on the same data and
    batch size. fastnn_model() / fastnn_opt(params) and torch_model(torch) /
    torch_opt(torch, params) build the models and optimizers."""
    fastnn.manual_seed(0)
    model = fastnn_model()
    opt = fastnn_opt(model.parameters())
    loss = fastnn.nn.CrossEntropyLoss()
    loader = fastnn.data.DataLoader(x, y, batch_size=batch, shuffle=True, seed=0,
                                    drop_last=True)
    state = {"it": iter(loader)}

    def step_fastnn():
        try:
            xb, yb = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            xb, yb = next(state["it"])
        out = model(xb)
        loss(out, yb)
        opt.zero_grad()
        model.backward(loss.backward())
        opt.step()

    impls = {"fastnn": step_fastnn}
    torch = None
    if "torch" in want:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        torch.manual_seed(0)
        tm = torch_model(torch)
        topt = torch_opt(torch, tm.parameters())
        tloss = torch.nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
        ts = {"perm": torch.randperm(len(x)), "i": 0}

        def step_torch():
            i = ts["i"]
            if i + batch > len(x):
                ts["perm"], i = torch.randperm(len(x)), 0
            idx = ts["perm"][i:i + batch]
            ts["i"] = i + batch
            lv = tloss(tm(xt[idx]), yt[idx])
            topt.zero_grad()
            lv.backward()
            topt.step()
        impls["torch"] = step_torch
    for f in impls.values():       # warm up (and surface API errors early)
        for _ in range(warmup):
            f()
    return impls


def _setup(name):
    hidden, p, opt_name, batch = MODELS[name]

    def fastnn_opt(params):
        return (fastnn.optim.SGD(params, lr=0.01, momentum=0.9) if opt_name == "sgd"
                else fastnn.optim.Adam(params, lr=1e-3))

    def torch_opt(torch, params):
        return (torch.optim.SGD(params, lr=0.01, momentum=0.9) if opt_name == "sgd"
                else torch.optim.Adam(params, lr=1e-3))

    def setup(want):
        x, y = _data()
        return train_step_impls(want, x, y, batch, lambda: fastnn_model(hidden, p), fastnn_opt,
                                lambda torch: torch_model(torch, hidden, p), torch_opt)
    return setup


for _name, (_hidden, _p, _opt, _batch) in MODELS.items():
    register(Case(f"train/{_name}/b{_batch}", group="training", unit="sample", work=_batch,
                  setup=_setup(_name), epoch_samples=EPOCH, rss=True, quick=True,
                  params={"model": _name, "optimizer": _opt, "batch": _batch,
                          "dropout": _p},
                  description=f"one {_opt} step of {_name} ({'-'.join(map(str, (784,) + _hidden + (10,)))})"))
