"""Sequential MNIST: each 28x28 image read row by row as a sequence of 28
steps of 28 features by an LSTM with 128 hidden units; the output at the
last step goes through a Linear layer to the 10 classes
(LSTM-128 -> LastStep -> Linear). Adam, batch 64, gradient-norm clipping,
and a cosine learning rate over the run.

    python examples/seq_mnist.py --data-dir ../shared/data/mnist [--epochs 20]

Prints the test accuracy after every epoch (for monitoring only; no model
selection on the test set: the reported number is the final epoch's), the
wall time, and what GradientNormMonitor saw: the gradient norm of each layer
(the LSTM and the Linear head) and of each LSTM weight matrix over training,
before clipping. --grad-norms PATH writes those per-step norms as JSON.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import fastnn
from fastnn import nn, optim
from fastnn.train import Callback, GradientClipping, GradientNormMonitor, Trainer


class TestAccuracy(Callback):
    def __init__(self, x, y):
        self.x, self.y = x, y
        self.accuracies = []

    def on_epoch_end(self, epoch, logs=None):
        self.accuracies.append(100 * self.trainer.evaluate(self.x, self.y)["accuracy"])
        logs["test_accuracy_%"] = self.accuracies[-1]


def make_model(hidden=128):
    return nn.Sequential(nn.LSTM(28, hidden, batch_first=True), nn.LastStep(),
                         nn.Linear(hidden, 10))


def norm_summary(monitor, n_rows=6):
    """Lines: the per-layer and per-parameter gradient norms at a few steps
    spread over training (the median of the records around each)."""
    recs = monitor.records
    if not recs:
        return []
    layers = monitor.layer_norms()
    names = list(recs[0][1])
    lnames = list(layers[0][1])
    kinds = dict(monitor.trainer.model.named_modules())
    label = {n: f"{n}:{type(kinds[n]).__name__}" if n in kinds else n for n in lnames}
    picks = sorted(set(int(round(i)) for i in np.linspace(0, len(recs) - 1, n_rows)))
    w = max(len(n) for n in names + list(label.values())) + 2
    head = "step".rjust(8) + "".join(n.rjust(max(w, 10)) for n in
                                     [label[n] for n in lnames] + names)
    out = ["gradient norms (before clipping): per layer, then per parameter", head]
    for i in picks:
        lo, hi = max(0, i - 5), min(len(recs), i + 6)       # a median over 11 records
        row = [np.median([layers[j][1][n] for j in range(lo, hi)]) for n in lnames]
        row += [np.median([recs[j][1][n] for j in range(lo, hi)]) for n in names]
        out.append(f"{recs[i][0]:8d}" + "".join(f"{v:.4f}".rjust(max(w, 10)) for v in row))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.path.join("..", "shared", "data", "mnist"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=2.0, help="max gradient norm")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="train on the first N training images only (a quick try)")
    p.add_argument("--test-size", type=int, default=None, metavar="N",
                   help="test on the first N test images only (a quick try)")
    p.add_argument("--norm-every", type=int, default=10,
                   help="record the gradient norms every this many steps")
    p.add_argument("--grad-norms", default=None, metavar="PATH",
                   help="write the recorded gradient norms as JSON")
    p.add_argument("--record", default=None, metavar="PATH",
                   help="write the result as JSON for bench/RESULTS.md (bench/accuracy/...)")
    args = p.parse_args(argv)
    if args.threads:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)
    xtr, ytr = fastnn.datasets.load_mnist(args.data_dir, kind="train")
    xte, yte = fastnn.datasets.load_mnist(args.data_dir, kind="test")
    xtr, xte = xtr.reshape(-1, 28, 28), xte.reshape(-1, 28, 28)   # 28 steps of 28 pixels
    if args.train_size:
        xtr, ytr = xtr[:args.train_size], ytr[:args.train_size]
    if args.test_size:
        xte, yte = xte[:args.test_size], yte[:args.test_size]

    model = make_model(args.hidden)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    test = TestAccuracy(xte, yte)
    monitor = GradientNormMonitor(every=args.norm_every)     # before the clipping: raw norms
    clip = GradientClipping(args.clip)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, scheduler=sched,
                      callbacks=[monitor, clip, test])
    info = fastnn.info()
    print(f"fastnn {info['version']} on {info['cpu']} ({info['isa']}, {info['num_threads']} threads)",
          file=sys.stderr)
    t0 = time.perf_counter()
    trainer.fit(xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    wall = time.perf_counter() - t0
    acc = test.accuracies[-1]
    for line in norm_summary(monitor):
        print(line)
    clipped = float(np.mean(np.asarray(clip.norms) > args.clip))
    print(f"total gradient norm: median {np.median(clip.norms):.3f}, max {max(clip.norms):.3f}; "
          f"{100 * clipped:.1f}% of the {len(clip.norms)} steps clipped to {args.clip}")
    print(f"final test accuracy {acc:.2f}% (error {100 - acc:.2f}%) after {args.epochs} epochs; "
          f"wall time {wall:.0f} s ({wall / args.epochs:.1f} s/epoch)")
    if args.grad_norms:
        os.makedirs(os.path.dirname(os.path.abspath(args.grad_norms)), exist_ok=True)
        with open(args.grad_norms, "w") as f:
            r4 = lambda v: float(f"{v:.4g}")       # noqa: E731  (4 significant digits)
            json.dump({"every": args.norm_every, "clip": args.clip,
                       "per_parameter": [(s, {k: r4(v) for k, v in d.items()})
                                         for s, d in monitor.records],
                       "per_layer": [(s, {k: r4(v) for k, v in d.items()})
                                     for s, d in monitor.layer_norms()],
                       "total_before_clipping": [r4(clip.norms[s - 1]) for s, _ in monitor.records],
                       "total_median": float(np.median(clip.norms)),
                       "total_max": float(max(clip.norms)), "clipped_fraction": clipped}, f)
    if args.record:
        from fastnn.benchmark.record import write_record
        write_record(args.record, "sequential MNIST: LSTM-128, LastStep, Linear (Adam, batch 64)",
                     100 - acc, args.epochs, wall, goal="<= 1.5% (>= 98.5% accuracy)",
                     extra={"test_accuracy_pct": acc,
                            "test_accuracy_per_epoch": test.accuracies,
                            "grad_norm_total_median": float(np.median(clip.norms)),
                            "clipped_fraction": clipped,
                            "grad_norms_by_layer": norm_summary(monitor)})
    return acc


if __name__ == "__main__":
    main()
