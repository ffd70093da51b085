"""The README's training loop, written as a PyTorch user writes it (no flags),
against fastnn's Trainer and against PyTorch, on the same model, data and batch.

    python bench/loop_vs_trainer.py                 # both models, 2 threads
    python bench/loop_vs_trainer.py --steps 200 --rounds 7 --threads 1

Each round times `--steps` optimizer steps of each contender, interleaved
(the order rotates every round), and the report gives the median time per
step over the rounds and the ratios. The Trainer runs `fit(..., epochs=1)` on
exactly steps*batch samples (no validation, no callbacks) so it does the same
number of steps as the loop. Models (issue 10's targets):

  mlp-small  784-256-10, ReLU, SGD(lr=0.01, momentum=0.9), batch 64
  mlp-large  784-1024-1024-10, ReLU, Dropout(0.5), Adam(lr=1e-3), batch 128
"""
import argparse
import statistics
import sys
import time

import numpy as np

import fastnn
from fastnn import nn, optim

MODELS = {
    "mlp-small": ((256,), 0.0, "sgd", 64),
    "mlp-large": ((1024, 1024), 0.5, "adam", 128),
}


def fastnn_model(hidden, p):
    layers, prev = [], 784
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()] + ([nn.Dropout(p)] if p else [])
        prev = h
    return nn.Sequential(*layers, nn.Linear(prev, 10))


def fastnn_opt(name, params):
    return (optim.SGD(params, lr=0.01, momentum=0.9) if name == "sgd"
            else optim.Adam(params, lr=1e-3))


def make_loop(x, y, hidden, p, opt_name, batch):
    """The README's loop, exactly as a user writes it."""
    fastnn.manual_seed(0)
    model = fastnn_model(hidden, p)
    opt = fastnn_opt(opt_name, model.parameters())
    loss = nn.CrossEntropyLoss()
    loader = fastnn.data.DataLoader(x, y, batch_size=batch, shuffle=True)

    def run():
        for xb, yb in loader:
            out = model(xb)
            loss(out, yb)
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()
    return run


def make_trainer(x, y, hidden, p, opt_name, batch):
    fastnn.manual_seed(0)
    model = fastnn_model(hidden, p)
    trainer = fastnn.Trainer(model, nn.CrossEntropyLoss(), fastnn_opt(opt_name, model.parameters()))

    def run():
        trainer.fit(x, y, epochs=1, batch_size=batch, verbose=False)
    return run


def make_torch(x, y, hidden, p, opt_name, batch):
    import torch
    torch.manual_seed(0)
    layers, prev = [], 784
    for h in hidden:
        layers += [torch.nn.Linear(prev, h), torch.nn.ReLU()] + ([torch.nn.Dropout(p)] if p else [])
        prev = h
    model = torch.nn.Sequential(*layers, torch.nn.Linear(prev, 10))
    opt = (torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if opt_name == "sgd"
           else torch.optim.Adam(model.parameters(), lr=1e-3))
    lossf = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def run():
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            out = model(xt[idx])
            lv = lossf(out, yt[idx])
            opt.zero_grad()
            lv.backward()
            opt.step()
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="optimizer steps per round")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args(argv)
    fastnn.set_num_threads(args.threads)
    contenders = {"loop": make_loop, "trainer": make_trainer}
    try:
        import torch
        torch.set_num_threads(args.threads)
        contenders["torch"] = make_torch
    except ImportError:
        print("torch not installed: comparing the loop with the Trainer only", file=sys.stderr)
    print(f"cpu: {fastnn.info()['cpu']}  isa: {fastnn.get_isa()}  threads: {args.threads}  "
          f"steps/round: {args.steps}  rounds: {args.rounds}")
    for name in args.models.split(","):
        hidden, p, opt_name, batch = MODELS[name]
        rng = np.random.default_rng(0)
        n = args.steps * batch
        x = rng.random((n, 784), dtype=np.float32)
        y = rng.integers(0, 10, n).astype(np.int64)
        runs = {k: make(x, y, hidden, p, opt_name, batch) for k, make in contenders.items()}
        for r in runs.values():          # warm up: workspaces, thread pools, torch's allocator
            r()
        times = {k: [] for k in runs}
        names = list(runs)
        for i in range(args.rounds):
            # rotate who goes first: torch's OpenMP threads keep spinning for a
            # while after its step, which slows whoever runs right after it
            for k in names[i % len(names):] + names[:i % len(names)]:
                r = runs[k]
                t0 = time.perf_counter()
                r()
                times[k].append((time.perf_counter() - t0) / args.steps)
        med = {k: statistics.median(v) for k, v in times.items()}
        line = "  ".join(f"{k} {1e3 * v:.3f} ms/step" for k, v in med.items())
        print(f"{name} (batch {batch}): {line}")
        print(f"  loop/trainer time ratio {med['loop'] / med['trainer']:.3f}"
              + (f"  speed vs torch: loop {med['torch'] / med['loop']:.2f}x, "
                 f"trainer {med['torch'] / med['trainer']:.2f}x" if "torch" in med else ""))


if __name__ == "__main__":
    main()
