"""python -m fastnn train: train an MLP or a CNN on the bundled digits, MNIST or any IDX
data set."""
import argparse
import math
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
# The convolutional models of fastnn.models, on (N, 1, H, W) images, and their
# defaults for what the command line leaves unset: optimizer, schedule,
# (epochs, batch size, lr) on digits, (epochs, batch size, lr) on mnist/idx.
# The digits defaults are measured (README: each reaches >= 97% test accuracy).
CNN_MODELS = {
    "lenet5": ("adam", "onecycle", (20, 16, 1e-2), (10, 128, 3e-3)),
    "cnn": ("adam", "onecycle", (15, 32, 2e-3), (5, 128, 1e-3)),
    "cnn-bn": ("adam", "onecycle", (10, 32, 3e-3), (5, 128, 3e-3)),
    "resnet": ("adam", "onecycle", (10, 32, 3e-3), (5, 128, 3e-3)),
}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
SCHEDULES = ("none", "step", "cosine", "exponential", "onecycle", "plateau")


DATA_DIR_DATASETS = ("mnist", "idx")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _number(kind, lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse ``type=``: ``kind`` (int or float), finite, within the
    bounds; a bad value becomes argparse's one-line usage error (exit 2)."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        bad = (not math.isfinite(v)
               or (lo is not None and (v <= lo if lo_open else v < lo))
               or (hi is not None and (v >= hi if hi_open else v > hi)))
        if bad:
            want = " and ".join(w for w in (
                None if lo is None else f"{'>' if lo_open else '>='} {lo}",
                None if hi is None else f"{'<' if hi_open else '<='} {hi}") if w)
            raise argparse.ArgumentTypeError(f"must be {want or 'finite'}, got {text}")
        return v
    parse.__name__ = kind.__name__       # argparse names the type in some messages
    return parse


_pos_int = _number(int, 1)
_nonneg_int = _number(int, 0)
_pos_float = _number(float, 0, lo_open=True)
_nonneg_float = _number(float, 0)
_fraction = _number(float, 0, 1, hi_open=True)       # [0, 1)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show '(default: X)' where there is a fixed default (not for None/False,
    whose meaning the help text gives)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == "":
            return action.help
        return super()._get_help_string(action)


def build_parser(prog="python -m fastnn train"):
    p = argparse.ArgumentParser(
        prog=prog, usage="%(prog)s [options]", formatter_class=_HelpFormatter,
        description="Train a multilayer perceptron or a convolutional network and report its "
                    "test accuracy.\nWithout options: an MLP on the bundled UCI 8x8 digits, in a "
                    "few seconds.",
        epilog=f"""examples:
  {prog}
  {prog} --optimizer adam --epochs 50 --val-split 0.1 --early-stopping 5
  {prog} --model cnn-bn
  {prog} --dataset mnist --data-dir DIR --model resnet --epochs 8
  {prog} --dataset mnist --data-dir DIR --model mlp-dropout --optimizer adam --epochs 20
  {prog} --dataset idx --data-dir ~/fashion-mnist --model 512,256

--dataset idx reads any data set in MNIST's IDX layout from --data-dir:
{", ".join(IDX_FILES)}
(each may be gzip-compressed, NAME.gz, or named with a dot, e.g. train-images.idx3-ubyte);
the labels must be bytes 0..K-1, the images uint8 (N, rows, cols).""")
    p.add_argument("--dataset", choices=("digits", "mnist", "idx"), default="digits",
                   help="digits: bundled 8x8 digits; mnist: MNIST from --data-dir or the default "
                        "places (../shared/data/mnist, ./data/mnist); idx: any MNIST-format data "
                        "set in --data-dir")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="directory with the IDX files (for --dataset mnist or idx)")
    p.add_argument("--model", default="mlp",
                   help=f"an MLP preset ({', '.join(PRESETS)}), MLP hidden sizes like 512,256, "
                        f"or a CNN of fastnn.models ({', '.join(CNN_MODELS)}) on the images "
                        f"as (N, 1, H, W)")
    p.add_argument("--activation", default=None,
                   choices=("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"),
                   help="activation after each hidden layer of an MLP (default: relu)")
    p.add_argument("--dropout", type=_fraction, default=None, metavar="P",
                   help="dropout on hidden units (default: the preset's)")
    p.add_argument("--input-dropout", type=_fraction, default=None, metavar="P",
                   help="dropout on the inputs (default: the preset's)")
    p.add_argument("--epochs", type=_pos_int, default=None, metavar="N",
                   help="training epochs (default: 30 on digits, 10 on mnist/idx) for an MLP; "
                        "a CNN has its own default (see the README)")
    p.add_argument("--batch-size", type=_pos_int, default=None, metavar="N",
                   help="mini-batch size (default: 32 on digits, 128 on mnist/idx; lenet5 "
                        "on digits: 16)")
    p.add_argument("--lr", type=_pos_float, default=None,
                   help="learning rate (default: sgd 0.1 on digits / 0.05 on mnist/idx, adam "
                        "and adamw 1e-3, rmsprop 1e-3, adagrad 1e-2, adadelta 1.0; a CNN "
                        "with its default optimizer: the model's)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help="optimizer (default: sgd for an MLP, adam for a CNN)")
    p.add_argument("--momentum", type=_nonneg_float, default=None, metavar="M",
                   help="momentum for sgd and rmsprop (default: 0.9)")
    p.add_argument("--weight-decay", type=_nonneg_float, default=0.0, metavar="L2",
                   help="L2 penalty")
    p.add_argument("--max-norm", type=_pos_float, default=None, metavar="C",
                   help="max-norm constraint on each unit's incoming weights (default: none)")
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning-rate schedule (default: none for an MLP, onecycle for a CNN, "
                        "cosine for a CNN with --warmup)")
    p.add_argument("--warmup", type=_nonneg_int, default=0, metavar="EPOCHS",
                   help="linear warmup epochs")
    p.add_argument("--label-smoothing", type=_number(float, 0, 1), default=0.0, metavar="EPS",
                   help="cross-entropy label smoothing, in [0, 1]")
    p.add_argument("--val-split", type=_fraction, default=0.0, metavar="FRACTION",
                   help="fraction of the training data held out for validation")
    p.add_argument("--early-stopping", type=_nonneg_int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs in a row without val_loss improvement and "
                        "keep the best weights (needs --val-split)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="save the best model (by val_loss, else every epoch) to PATH")
    p.add_argument("--threads", type=_pos_int, default=None, metavar="N",
                   help="worker threads (default: FASTNN_NUM_THREADS, else the usable cores)")
    p.add_argument("--seed", type=_nonneg_int, default=0,
                   help="seed of every random draw (init, dropout, shuffling, split)")
    p.add_argument("--save", default=None, metavar="PATH", help="save the final model to PATH")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--record", default=None, metavar="PATH",
                   help="write the test error and timing as JSON (rendered by the benchmark "
                        "report's accuracy table, e.g. bench/accuracy/NAME.json)")
    p.add_argument("--goal", default="", help="the target to show next to --record's result")
    return p


def _hidden_sizes(spec):
    """'512,256' -> (512, 256); None if it is not a list of positive sizes."""
    parts = [h.strip() for h in spec.split(",")]
    if not all(h.isdigit() and int(h) > 0 for h in parts):
        return None
    return tuple(int(h) for h in parts)


def _check(parser, args):
    """Cross-option checks argparse cannot express: each a usage error (exit 2)."""
    if (args.model not in PRESETS and args.model not in CNN_MODELS
            and _hidden_sizes(args.model) is None):
        parser.error(f"argument --model: expected a preset ({', '.join(PRESETS)}), positive "
                     f"hidden-layer sizes like 512,256, or a CNN ({', '.join(CNN_MODELS)}), "
                     f"got {args.model!r}")
    if args.model in CNN_MODELS:
        for flag, value in (("--activation", args.activation), ("--dropout", args.dropout),
                            ("--input-dropout", args.input_dropout)):
            if value is not None:
                parser.error(f"argument {flag}: applies to the MLPs, not to --model "
                             f"{args.model}")
    if args.data_dir is not None and args.dataset not in DATA_DIR_DATASETS:
        parser.error(f"argument --data-dir: --dataset {args.dataset} does not read a directory; "
                     f"use --dataset mnist or --dataset idx with --data-dir")
    if args.dataset == "idx" and args.data_dir is None:
        parser.error("--dataset idx needs --data-dir DIR (the folder with the IDX files)")
    if args.early_stopping is not None and args.val_split <= 0:
        parser.error("argument --early-stopping: needs --val-split (the data it watches)")
    if args.momentum is not None and args.optimizer is None and args.model in CNN_MODELS:
        parser.error(f"argument --momentum: --model {args.model} trains with adam unless "
                     f"--optimizer sgd or rmsprop is given")
    if args.momentum is not None and args.optimizer not in (None, "sgd", "rmsprop"):
        parser.error(f"argument --momentum: --optimizer {args.optimizer} has no momentum "
                     f"(it applies to sgd and rmsprop)")
    if args.goal and not args.record:
        parser.error("argument --goal: needs --record (the result it annotates)")
    if args.warmup and args.schedule in ("onecycle", "plateau"):
        parser.error(f"argument --warmup: does not combine with --schedule {args.schedule}")


def _defaults(args):
    small = args.dataset == "digits"
    if args.model in CNN_MODELS:
        opt, sched, on_digits, on_mnist = CNN_MODELS[args.model]
        epochs, batch, lr = on_digits if small else on_mnist
        if args.optimizer is None:
            args.optimizer = opt
            if args.lr is None:
                args.lr = lr
        if args.schedule is None:
            args.schedule = "cosine" if args.warmup else sched
        if args.epochs is None:
            args.epochs = epochs
        if args.batch_size is None:
            args.batch_size = batch
    if args.optimizer is None:
        args.optimizer = "sgd"
    if args.schedule is None:
        args.schedule = "none"
    if args.epochs is None:
        args.epochs = 30 if small else 10
    if args.momentum is None:
        args.momentum = 0.9
    if args.batch_size is None:
        args.batch_size = 32 if small else 128
    if args.lr is None:
        args.lr = {"sgd": 0.1 if small else 0.05, "rmsprop": 1e-3, "adagrad": 1e-2,
                   "adadelta": 1.0}.get(args.optimizer, 1e-3)
    return args


def _load(args):
    """(x_train, x_test, y_train, y_test), x as (N, 1, H, W) images;
    OSError/ValueError name the file."""
    import os
    from . import datasets
    from .data import train_test_split
    if args.dataset == "digits":
        x, y = datasets.load_digits(flatten=False)
        return train_test_split(x, y, test_size=0.2, seed=0, stratify=True)
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [args.data_dir] if args.data_dir else [
        os.path.join(os.getcwd(), "..", "shared", "data", "mnist"),
        os.path.join(here, "..", "..", "shared", "data", "mnist"),
        os.path.join(os.getcwd(), "data", "mnist")]
    for d in candidates:
        if os.path.isdir(d):
            xtr, ytr = datasets.load_mnist(d, kind="train")
            xte, yte = datasets.load_mnist(d, kind="test")
            return xtr, xte, ytr, yte
    if args.data_dir:
        raise FileNotFoundError(f"{args.data_dir!r} is not a directory")
    raise FileNotFoundError(f"MNIST not found (looked in {', '.join(map(repr, candidates))}); "
                            f"pass --data-dir DIR")


def build_model(image_shape, n_out, args):
    """The model --model names for (C, H, W) images and n_out classes: a CNN
    of fastnn.models, or an MLP with C*H*W inputs (fed the flattened images)."""
    from . import models, nn
    if args.model in CNN_MODELS:
        return models.build(args.model, tuple(image_shape), n_out)
    n_in = int(np.prod(image_shape))
    if args.model in PRESETS:
        hidden, drop, in_drop = PRESETS[args.model]
    else:
        hidden, drop, in_drop = _hidden_sizes(args.model), 0.0, 0.0
    if args.dropout is not None:
        drop = args.dropout
    if args.input_dropout is not None:
        in_drop = args.input_dropout
    act = {None: nn.ReLU, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
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
        if sched is None:
            sched = S.LambdaLR(opt, lambda e: 1.0)
        sched = S.WarmupLR(sched, warmup_steps=args.warmup)
    return sched, interval


def train_main(argv, prog="python -m fastnn train"):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check(parser, args)
    _defaults(args)
    import fastnn
    from . import nn, train
    from . import distributed as dist
    distributed = dist.launched_world_size() > 1      # under mpiexec -n K: data-parallel
    if distributed:
        dist.init()                # threads: the node's cores / its ranks, unless --threads
    main = dist.is_main()          # only rank 0 prints and writes files
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)
    try:
        xtr, xte, ytr, yte = _load(args)
    except (OSError, ValueError) as e:
        parser.error(f"argument --data-dir: {e}")
    n_val = int(round(len(xtr) * args.val_split))
    if args.val_split > 0 and not 1 <= n_val < len(xtr):
        parser.error(f"argument --val-split: {args.val_split} of {len(xtr)} training samples "
                     f"leaves {n_val} for validation")
    if args.val_split > 0:   # the held-out part is the last fraction: shuffle first
        perm = np.random.default_rng(args.seed).permutation(len(xtr))
        xtr, ytr = xtr[perm], ytr[perm]
    n_classes = int(max(ytr.max(), yte.max())) + 1
    image_shape = xtr.shape[1:]
    if args.model not in CNN_MODELS:        # an MLP sees the flattened pixels
        xtr, xte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
    try:
        model = build_model(image_shape, n_classes, args)
    except ValueError as e:          # e.g. images too small for a CNN
        parser.error(f"argument --model: {e}")
    opt = build_optimizer(model, args)
    sched, interval = build_scheduler(opt, args, -(-(len(xtr) - n_val)
                                                   // (args.batch_size * dist.world_size())))
    callbacks = []
    if args.early_stopping is not None:
        callbacks.append(train.EarlyStopping("val_loss", patience=args.early_stopping,
                                             verbose=not args.quiet))
    if args.checkpoint:
        callbacks.append(train.ModelCheckpoint(args.checkpoint, save_best_only=args.val_split > 0))
    trainer = train.Trainer(model, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), opt,
                            scheduler=sched, scheduler_interval=interval, callbacks=callbacks,
                            distributed=distributed)
    info = fastnn.info()
    ranks = (f"{dist.world_size()} ranks x {info['num_threads']} threads, batch "
             f"{args.batch_size} per rank" if distributed else f"{info['num_threads']} threads")
    if main:
        print(f"fastnn {info['version']} | {info['isa']} | {ranks} | "
              f"{args.dataset}: {len(xtr) - n_val} train"
              f"{f' / {n_val} validation' if n_val else ''} / {len(xte)} test | "
              f"{model.num_parameters():,} parameters", file=sys.stderr)
    if not args.quiet and main:
        print(model, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        hist = trainer.fit(xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                           validation_split=args.val_split, seed=args.seed,
                           verbose=not args.quiet)
    except FloatingPointError as e:     # diverged: a result, not a bug; no traceback
        print(f"{prog}: error: {e}", file=sys.stderr)
        if distributed:
            dist._abort(f"rank {dist.rank()} diverged")
        return 1
    wall = time.perf_counter() - t0
    res = trainer.evaluate(xte, yte)
    if not main:
        return 0
    if hist.best and hist.best.get("epoch") is not None:
        b = hist.best
        how = (f"stopped after epoch {b['stopped_epoch']}" if b.get("stopped_epoch")
               else "did not stop early")
        print(f"early stopping: {how}; best val_loss {b['score']:.4f} at epoch {b['epoch']} "
              f"(step {b['step']}), whose weights are tested")
    fmt = train._format_seconds
    print(f"test loss {res['loss']:.4f}  test accuracy {100 * res['accuracy']:.2f}%  "
          f"(error {100 * (1 - res['accuracy']):.2f}%)  train time {fmt(wall)} "
          f"({fmt(wall / len(hist.epochs))}/epoch, {len(hist.epochs)} "
          f"epoch{'s' if len(hist.epochs) > 1 else ''})")
    if args.record:
        from .benchmark.record import write_record
        write_record(args.record, f"{args.dataset} {args.model} {args.optimizer}",
                     100 * (1 - res["accuracy"]), len(hist.epochs), wall, goal=args.goal)
    if args.save:
        fastnn.save(model, args.save, optimizer=opt)
        print(f"saved model to {args.save}")
    return 0
