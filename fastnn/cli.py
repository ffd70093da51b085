"""python -m fastnn train: train an MLP on the bundled digits or on MNIST."""
import argparse
import sys
import time

import numpy as np

PRESETS = {
    # name: (hidden sizes, dropout on hidden units, dropout on inputs)
    "mlp": ((256,), 0.0, 0.0),
    "mlp-small": ((256,), 0.0, 0.0),
    "mlp-large": ((1024, 1024), 0.5, 0.0),
    "mlp-dropout": ((1024, 1024), 0.5, 0.2),
}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
SCHEDULES = ("none", "step", "cosine", "exponential", "onecycle", "plateau")


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m fastnn train",
        description="Train a multilayer perceptron and report test accuracy. "
                    "Default: the bundled UCI 8x8 digits, in a few seconds.")
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument("--data-dir", default=None,
                   help="directory with the MNIST IDX files (default: ../shared/data/mnist "
                        "or ./data/mnist)")
    p.add_argument("--model", default="mlp",
                   help=f"preset ({', '.join(PRESETS)}) or hidden sizes like 512,256")
    p.add_argument("--activation", default="relu",
                   choices=("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"))
    p.add_argument("--dropout", type=float, default=None, help="dropout on hidden units")
    p.add_argument("--input-dropout", type=float, default=None, help="dropout on the inputs")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument("--momentum", type=float, default=0.9, help="for sgd and rmsprop")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--max-norm", type=float, default=None,
                   help="max-norm constraint on each unit's incoming weights")
    p.add_argument("--schedule", choices=SCHEDULES, default="none")
    p.add_argument("--warmup", type=int, default=0, help="linear warmup epochs")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--val-split", type=float, default=0.0,
                   help="fraction of the training data held out for validation")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without val_loss improvement "
                        "(needs --val-split)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="save the best model (by val_loss, else every epoch) to PATH")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, metavar="PATH", help="save the final model to PATH")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--record", default=None, metavar="PATH",
                   help="write the test error and timing as JSON (rendered by the benchmark "
                        "report's accuracy table, e.g. bench/accuracy/NAME.json)")
    p.add_argument("--goal", default="", help="the target to show next to --record's result")
    return p


def _defaults(args):
    mnist = args.dataset == "mnist"
    if args.epochs is None:
        args.epochs = 10 if mnist else 30
    if args.batch_size is None:
        args.batch_size = 128 if mnist else 32
    if args.lr is None:
        args.lr = {"sgd": 0.05 if mnist else 0.1, "rmsprop": 1e-3, "adagrad": 1e-2,
                   "adadelta": 1.0}.get(args.optimizer, 1e-3)
    return args


def _load(args):
    import os
    from . import datasets
    from .data import train_test_split
    if args.dataset == "digits":
        x, y = datasets.load_digits()
        return train_test_split(x, y, test_size=0.2, seed=0, stratify=True)
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [args.data_dir] if args.data_dir else [
        os.path.join(os.getcwd(), "..", "shared", "data", "mnist"),
        os.path.join(here, "..", "..", "shared", "data", "mnist"),
        os.path.join(os.getcwd(), "data", "mnist")]
    for d in candidates:
        if d and os.path.isdir(d):
            xtr, ytr = datasets.load_mnist(d, kind="train", flatten=True)
            xte, yte = datasets.load_mnist(d, kind="test", flatten=True)
            return xtr, xte, ytr, yte
    raise SystemExit(f"fastnn train: MNIST not found (looked in {candidates}); pass --data-dir")


def build_model(n_in, n_out, args):
    from . import nn
    if args.model in PRESETS:
        hidden, drop, in_drop = PRESETS[args.model]
    else:
        try:
            hidden = tuple(int(h) for h in args.model.split(",") if h.strip())
        except ValueError:
            raise SystemExit(f"fastnn train: --model must be a preset ({', '.join(PRESETS)}) "
                             f"or sizes like 512,256, got {args.model!r}") from None
        drop, in_drop = 0.0, 0.0
    if args.dropout is not None:
        drop = args.dropout
    if args.input_dropout is not None:
        in_drop = args.input_dropout
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
           "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus}[args.activation]
    layers = [nn.Dropout(in_drop)] if in_drop > 0 else []
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), act()]
        if drop > 0:
            layers.append(nn.Dropout(drop))
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def build_optimizer(model, args):
    from . import optim
    common = {"lr": args.lr, "weight_decay": args.weight_decay}
    if args.max_norm is not None:
        common["max_norm"] = args.max_norm
    if args.optimizer == "sgd":
        return optim.SGD(model.parameters(), momentum=args.momentum, **common)
    if args.optimizer == "rmsprop":
        return optim.RMSprop(model.parameters(), momentum=args.momentum, **common)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "adagrad": optim.Adagrad,
           "adadelta": optim.Adadelta}[args.optimizer]
    return cls(model.parameters(), **common)


def build_scheduler(opt, args, steps_per_epoch):
    from .optim import lr_scheduler as S
    sched, interval = None, "epoch"
    if args.schedule == "step":
        sched = S.StepLR(opt, step_size=max(1, args.epochs // 3), gamma=0.1)
    elif args.schedule == "cosine":
        sched = S.CosineAnnealingLR(opt, T_max=max(1, args.epochs - args.warmup))
    elif args.schedule == "exponential":
        sched = S.ExponentialLR(opt, gamma=0.95)
    elif args.schedule == "plateau":
        sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    elif args.schedule == "onecycle":
        sched = S.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                             steps_per_epoch=steps_per_epoch)
        interval = "step"
    if args.warmup:
        if args.schedule in ("onecycle", "plateau"):
            raise SystemExit(f"fastnn train: --warmup does not combine with --schedule {args.schedule}")
        if sched is None:
            sched = S.LambdaLR(opt, lambda e: 1.0)
        sched = S.WarmupLR(sched, warmup_steps=args.warmup)
    return sched, interval


def train_main(argv):
    args = _defaults(build_parser().parse_args(argv))
    import fastnn
    from . import nn, train
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)
    if args.early_stopping is not None and args.val_split <= 0:
        raise SystemExit("fastnn train: --early-stopping needs --val-split")
    xtr, xte, ytr, yte = _load(args)
    if args.val_split > 0:   # the held-out part is the last fraction: shuffle first
        perm = np.random.default_rng(args.seed).permutation(len(xtr))
        xtr, ytr = xtr[perm], ytr[perm]
    n_classes = int(max(ytr.max(), yte.max())) + 1
    model = build_model(xtr.shape[1], n_classes, args)
    opt = build_optimizer(model, args)
    n_train = int(len(xtr) * (1 - args.val_split))
    sched, interval = build_scheduler(opt, args, -(-n_train // args.batch_size))
    callbacks = []
    if args.early_stopping is not None:
        callbacks.append(train.EarlyStopping("val_loss", patience=args.early_stopping))
    if args.checkpoint:
        callbacks.append(train.ModelCheckpoint(args.checkpoint, save_best_only=args.val_split > 0))
    trainer = train.Trainer(model, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), opt,
                            scheduler=sched, scheduler_interval=interval, callbacks=callbacks)
    info = fastnn.info()
    print(f"fastnn {info['version']} | {info['isa']} | {info['num_threads']} threads | "
          f"{args.dataset}: {len(xtr)} train / {len(xte)} test | "
          f"{model.num_parameters():,} parameters", file=sys.stderr)
    if not args.quiet:
        print(model, file=sys.stderr)
    t0 = time.perf_counter()
    hist = trainer.fit(xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                       validation_split=args.val_split, seed=args.seed, verbose=not args.quiet)
    wall = time.perf_counter() - t0
    res = trainer.evaluate(xte, yte)
    if hist.best and hist.best.get("epoch") is not None:
        print(f"early stopping: best val_loss {hist.best['score']:.4f} at epoch "
              f"{hist.best['epoch']} (step {hist.best['step']})")
    print(f"test loss {res['loss']:.4f}  test accuracy {100 * res['accuracy']:.2f}%  "
          f"(error {100 * (1 - res['accuracy']):.2f}%)  train time {wall:.1f}s "
          f"({wall / len(hist.epochs):.2f}s/epoch)")
    if args.record:
        from .benchmark.record import write_record
        write_record(args.record, f"{args.dataset} {args.model} {args.optimizer}",
                     100 * (1 - res["accuracy"]), len(hist.epochs), wall, goal=args.goal)
    if args.save:
        fastnn.save(model, args.save, optimizer=opt)
        print(f"saved model to {args.save}")
    return 0
