"""Shared by the MNIST CNN examples (mnist_lenet5.py, mnist_bn_cnn.py,
mnist_resnet.py): the command line, the data, one fixed training schedule,
the per-epoch test error (monitoring only) and the --record file.

The recipe is the same for the three: AdamW under a one-cycle learning rate
(Smith & Topin 2019, stepped every batch), a fixed number of epochs on all
60,000 training images, optional random affine distortions of the training
batches, and the test error of the *final* epoch as the result: there is no
model selection on the test set.
"""
import argparse
import os
import sys
import time

import fastnn
from fastnn import nn, optim
from fastnn.data import augment
from fastnn.train import Callback, Trainer


class TestError(Callback):
    """Test error after every epoch, for watching a run (never for choosing one)."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.errors = []

    def on_epoch_end(self, epoch, logs=None):
        acc = self.trainer.evaluate(self.x, self.y)["accuracy"]
        self.errors.append(100 * (1 - acc))
        logs["test_error_%"] = self.errors[-1]


def parser(doc, epochs, lr, weight_decay, label_smoothing, batch_size=128, degrees=0.0,
           translate=0.0, scale=0.0):
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=os.path.join("..", "shared", "data", "mnist"))
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate of the one cycle")
    p.add_argument("--weight-decay", type=float, default=weight_decay, help="AdamW's")
    p.add_argument("--label-smoothing", type=float, default=label_smoothing)
    p.add_argument("--degrees", type=float, default=degrees,
                   help="random rotation in (-D, D) degrees (0 with --translate 0 and "
                        "--scale 0: no augmentation)")
    p.add_argument("--translate", type=float, default=translate,
                   help="random shift up to this fraction of the width/height")
    p.add_argument("--scale", type=float, default=scale,
                   help="random scale factor in [1 - S, 1 + S)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="train on the first N training images only (a quick try)")
    p.add_argument("--test-size", type=int, default=None, metavar="N",
                   help="test on the first N test images only (a quick try)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--record", default=None, metavar="PATH",
                   help="write the result as JSON for bench/RESULTS.md (bench/accuracy/...)")
    return p


def augmentation(args):
    """RandomAffine from --degrees/--translate/--scale, or None when all are 0."""
    if not (args.degrees or args.translate or args.scale):
        return None
    return augment.RandomAffine(
        args.degrees, translate=(args.translate, args.translate) if args.translate else None,
        scale=(1 - args.scale, 1 + args.scale) if args.scale else None, seed=args.seed + 1)


def run(args, build_model, name, goal):
    """Train build_model() on MNIST as args say; print and return the final
    epoch's test error in percent (and write --record)."""
    if args.threads:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)
    xtr, ytr = fastnn.datasets.load_mnist(args.data_dir, kind="train")     # (N, 1, 28, 28)
    xte, yte = fastnn.datasets.load_mnist(args.data_dir, kind="test")
    if args.train_size:
        xtr, ytr = xtr[:args.train_size], ytr[:args.train_size]
    if args.test_size:
        xte, yte = xte[:args.test_size], yte[:args.test_size]
    model = build_model()
    opt = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = -(-len(xtr) // args.batch_size)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                          steps_per_epoch=steps)
    test = TestError(xte, yte)
    trainer = Trainer(model, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), opt,
                      scheduler=sched, scheduler_interval="step", callbacks=[test])
    aug = augmentation(args)
    info = fastnn.info()
    print(f"fastnn {info['version']} on {info['cpu']} ({info['isa']}, {info['num_threads']} "
          f"threads); {name}: {model.num_parameters():,} parameters; {len(xtr)} train / "
          f"{len(xte)} test images; augmentation: {aug}", file=sys.stderr)
    t0 = time.perf_counter()
    trainer.fit(xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                transform=aug, verbose=not args.quiet)
    wall = time.perf_counter() - t0
    err = test.errors[-1]
    print(f"final test error {err:.2f}% after {args.epochs} epochs (goal {goal}); "
          f"wall time {wall:.0f} s ({wall / args.epochs:.1f} s/epoch)")
    if args.record:
        from fastnn.benchmark.record import write_record
        write_record(args.record, name, err, args.epochs, wall, goal=goal)
    return err
