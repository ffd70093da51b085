"""The training loop: Trainer, History and callbacks.

    trainer = fastnn.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters()),
                             callbacks=[fastnn.train.EarlyStopping(patience=5)])
    history = trainer.fit(x, y, epochs=20, batch_size=128, validation_split=0.1)

One step is: forward, loss, loss.backward(), optimizer.zero_grad(),
model.backward(grad), optimizer.step(). Callbacks see the trainer and the
logs at each hook and may set ``trainer.stop_training``."""
import csv
import json
import math
import os
import sys
import time

import numpy as np

from .nn.module import Module

__all__ = ["Trainer", "History", "Callback", "EarlyStopping", "ModelCheckpoint",
           "ProgressBar", "LearningRateScheduler", "GradientNormMonitor", "GradientClipping",
           "CSVLogger"]


# ----------------------------------------------------------------- history --

class History:
    """Per-epoch metrics: ``history.history['val_loss'][epoch]``; ``epochs``
    lists each epoch's log dict. Exports to JSON, CSV and a PNG plot."""

    def __init__(self):
        self.epochs = []
        self.history = {}
        self.best = None          # filled by EarlyStopping: best step/epoch/score
        self.main = True          # False on the ranks > 0 of a distributed run: they write nothing

    def append(self, logs):
        self.epochs.append(dict(logs))
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def to_json(self, path=None):
        text = json.dumps({"epochs": self.epochs, "best": self.best}, indent=1)
        if path is not None and self.main:
            with open(path, "w") as f:
                f.write(text)
        return text

    def to_csv(self, path):
        if not self.main:
            return path
        keys = sorted({k for e in self.epochs for k in e}, key=lambda k: (k != "epoch", k))
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for e in self.epochs:
                w.writerow(e)
        return path

    def plot(self, path):
        """Loss and metric curves as a PNG (needs matplotlib, an optional extra)."""
        if not self.main:
            return path
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'fastnn[bench]' "
                              "or pip install matplotlib") from None
        names = sorted({k[4:] if k.startswith("val_") else k for k in self.history}
                       - {"epoch", "lr", "time"})
        fig, axes = plt.subplots(1, max(1, len(names)), figsize=(5 * max(1, len(names)), 3.5))
        axes = np.atleast_1d(axes)
        ep = self.history.get("epoch", list(range(1, len(self.epochs) + 1)))
        for ax, name in zip(axes, names):
            for key in (name, "val_" + name):
                if key in self.history:
                    ax.plot(ep, self.history[key], marker="o", label=key)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def __repr__(self):
        return f"History(epochs={len(self.epochs)}, keys={sorted(self.history)})"


# --------------------------------------------------------------- callbacks --

class Callback:
    """Base class; override any hook. ``self.trainer`` is set by fit().
    ``main_only``: in a distributed run only rank 0 runs it (output, files)."""
    trainer = None
    main_only = False

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_end(self, step, logs=None): pass
    def on_after_backward(self, step): pass
    def on_evaluate(self, step, logs): pass


def _better(mode, monitor):
    if mode == "auto":
        mode = "max" if any(s in monitor for s in ("acc", "auc", "f1")) else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` evaluations in a row (the classic early-stopping
    meta-algorithm, Keras's semantics): with patience 2 and the best score at
    epoch 5, training stops at the end of epoch 7; patience 0 stops at the
    first evaluation without improvement. ``mode`` 'min' or 'max' ('auto':
    'max' for names with acc/auc/f1, else 'min'); an improvement is a score
    below ``best - min_delta`` ('min') or above ``best + min_delta`` ('max').

    Evaluations happen every epoch, or every ``every_n_steps`` optimizer
    steps when given (the trainer then evaluates the validation data at those
    steps). The best parameters seen are kept (a copy of the state dict) and,
    with ``restore_best_weights``, put back at the end. ``best_step``,
    ``best_epoch`` and ``best_score`` report where the best model was; they are
    also stored in ``History.best``, with ``stopped_epoch`` (None if it never
    stopped). ``verbose``: print (to stderr) the epoch it stopped at and the
    best score."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best_weights=True, every_n_steps=None, verbose=False):
        if patience < 0 or int(patience) != patience:
            raise ValueError(f"EarlyStopping: patience must be a non-negative integer, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        if every_n_steps is not None and (int(every_n_steps) != every_n_steps or every_n_steps < 1):
            raise ValueError(f"EarlyStopping: every_n_steps must be a positive integer, got {every_n_steps!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = _better(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.every_n_steps = every_n_steps
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.best_score = math.inf if self.mode == "min" else -math.inf
        self.best_step = self.best_epoch = None
        self.best_state = None
        self.wait = 0
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self._reset()

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best_score - self.min_delta
        return value > self.best_score + self.min_delta

    def on_evaluate(self, step, logs):
        if self.every_n_steps is not None and logs.get("_source") == "epoch":
            return
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping: monitored metric {self.monitor!r} not in logs "
                           f"{sorted(k for k in logs if not k.startswith('_'))} (validation data given?)")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best_score, self.best_step, self.best_epoch = value, step, logs.get("epoch")
            self.best_state = self.trainer.model.state_dict()
            self.wait = 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.trainer.stop_training = True
                self.stopped_epoch = logs.get("epoch")
                if self.verbose and self.trainer.history.main:
                    at = f"step {step}" if logs.get("_source") == "step" else f"epoch {self.stopped_epoch}"
                    print(f"early stopping at {at}: no {self.monitor} improvement in "
                          f"{self.wait} evaluations; best {self.monitor} {self.best_score:.4f} "
                          f"at epoch {self.best_epoch} (step {self.best_step})"
                          + ("; restoring its weights" if self.restore_best_weights else ""),
                          file=sys.stderr)

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_state is not None:
            self.trainer.model.load_state_dict(self.best_state)
        self.trainer.history.best = {"monitor": self.monitor, "score": self.best_score,
                                     "step": self.best_step, "epoch": self.best_epoch,
                                     "stopped_epoch": self.stopped_epoch}


class ModelCheckpoint(Callback):
    """Save the model (and optimizer state) with fastnn.save after each epoch,
    or only when ``monitor`` improves (``save_best_only``). ``path`` may use
    ``{epoch}`` and any log key, e.g. "ckpt-{epoch:03d}-{val_loss:.3f}.npz"."""
    main_only = True

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto",
                 save_optimizer=True):
        self.path, self.monitor, self.save_best_only = os.fspath(path), monitor, save_best_only
        self.mode = _better(mode, monitor)
        self.save_optimizer = save_optimizer
        self.best = None
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        from .io import save
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise KeyError(f"ModelCheckpoint: monitored metric {self.monitor!r} not in logs")
            v = float(logs[self.monitor])
            if self.best is not None and not (v < self.best if self.mode == "min" else v > self.best):
                return
            self.best = v
        path = self.path.format(epoch=epoch, **{k: v for k, v in logs.items() if k != "epoch"})
        save(self.trainer.model, path,
             optimizer=self.trainer.optimizer if self.save_optimizer else None,
             extra={"epoch": epoch, "step": self.trainer.step})
        self.saved.append(path)


class ProgressBar(Callback):
    """Progress on stderr: a live bar with rate, ETA and running loss on a
    terminal; one plain log line per epoch otherwise."""
    main_only = True

    def __init__(self, stream=None, width=24):
        self.stream = stream
        self.width = width

    def on_train_begin(self, logs=None):
        self.out = self.stream or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.of = f"/{logs['epochs']}" if logs and logs.get("epochs") else ""

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.epoch = epoch
        self.last = 0.0

    def on_batch_end(self, step, logs=None):
        if not self.tty:
            return
        now = time.perf_counter()
        done, total = logs["batch"] + 1, logs["batches"]
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        el = now - self.t0
        rate = logs["seen"] / el if el > 0 else 0.0
        eta = el / done * (total - done)
        fill = int(self.width * done / total)
        self.out.write(f"\repoch {self.epoch}{self.of} [{'=' * fill}{' ' * (self.width - fill)}] "
                       f"{done}/{total} {rate:,.0f} samples/s ETA {eta:4.1f} s "
                       f"loss {logs['running_loss']:.4f}")
        self.out.flush()

    def on_epoch_end(self, epoch, logs=None):
        self.out.write(("\r\033[K" if self.tty else "") + _epoch_line(epoch, logs, self.of) + "\n")
        self.out.flush()


def _format_seconds(t):
    """A duration with its unit and three significant digits or so:
    '43.2 s', '2.13 s', '13.2 ms', '870 us'."""
    if t >= 10:
        return f"{t:.1f} s"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


_LABELS = {"loss": "loss", "accuracy": "train acc", "val_loss": "val loss",
           "val_accuracy": "val acc"}


def _epoch_line(epoch, logs, of=""):
    """One epoch's log as a line whose every number is labelled:
    'epoch 3/20  loss 0.1234  train acc 97.12%  val loss 0.1100  val acc 96.80%  lr 0.1  2.13 s'."""
    parts = [f"epoch {epoch}{of}"]
    for k, v in logs.items():
        if k in ("epoch", "time"):
            continue
        name = _LABELS.get(k, k.replace("_", " "))
        if k.endswith("accuracy") and isinstance(v, float):
            parts.append(f"{name} {100 * v:.2f}%")
        elif k == "lr":
            parts.append(f"lr {v:.3g}")
        elif isinstance(v, float):
            parts.append(f"{name} {v:.4f}")
        else:
            parts.append(f"{name} {v}")
    if "time" in logs:
        parts.append(_format_seconds(logs["time"]))
    return "  ".join(parts)


class LearningRateScheduler(Callback):
    """Set every param group's lr from ``schedule(epoch, lr) -> lr`` at the
    start of each epoch (epochs count from 1), Keras-style. For torch-style
    scheduler objects pass ``scheduler=`` to the Trainer instead."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be callable(epoch, lr)")
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        for g in self.trainer.optimizer.param_groups:
            lr = float(self.schedule(epoch, g["lr"]))
            if not (lr >= 0 and math.isfinite(lr)):
                raise ValueError(f"LearningRateScheduler: schedule returned lr={lr}")
            g["lr"] = lr


class GradientNormMonitor(Callback):
    """Record each parameter's gradient L2 norm every ``every`` steps, to
    watch gradients vanish or explode: ``self.records`` is a list of
    (step, {param name: norm}); the epoch log gets the latest max and min."""

    def __init__(self, every=1):
        if int(every) != every or every < 1:
            raise ValueError(f"GradientNormMonitor: every must be a positive integer, got {every!r}")
        self.every = int(every)
        self.records = []

    def on_after_backward(self, step):
        if step % self.every:
            return
        from .nn.module import flat_grads
        named = list(self.trainer.model.named_parameters())
        sq = {}
        for a, spans in zip(*flat_grads([p for _, p in named])):   # the flat buffer, one pass
            a2 = np.square(a.ravel(), dtype=np.float64)
            sq.update((id(p), float(a2[lo:hi].sum())) for p, lo, hi in spans)
        norms = {name: float(np.sqrt(sq.get(id(p), 0.0))) for name, p in named}
        self.records.append((step, norms))

    def on_epoch_end(self, epoch, logs=None):
        if self.records and logs is not None:
            last = self.records[-1][1]
            if last:
                logs["grad_norm_max"] = max(last.values())
                logs["grad_norm_min"] = min(last.values())

    def layer_norms(self):
        """The records per layer: a list of (step, {layer name: norm}), a
        layer's norm being the L2 norm of all its parameters' gradients
        together (the layer's name is the parameter's up to its last dot:
        '0.weight_ih_l0' and '0.weight_hh_l0' belong to layer '0')."""
        out = []
        for step, norms in self.records:
            sq = {}
            for name, v in norms.items():
                layer = name.rsplit(".", 1)[0] if "." in name else ""
                sq[layer] = sq.get(layer, 0.0) + v * v
            out.append((step, {k: math.sqrt(v) for k, v in sq.items()}))
        return out


class GradientClipping(Callback):
    """Clip the gradients to a joint norm of at most ``max_norm`` after every
    backward, before the optimizer step (``nn.utils.clip_grad_norm_`` over
    the model's parameters). ``self.norms`` holds each step's total norm
    before clipping; the epoch log gets its median (``grad_norm_total``) and
    the fraction of steps that were clipped (``clipped``). A
    GradientNormMonitor listed before it in ``callbacks`` sees the gradients
    before clipping, one listed after it the clipped ones."""

    def __init__(self, max_norm, norm_type=2.0):
        from ._check import real_arg
        self.max_norm = float(real_arg("GradientClipping", "max_norm", max_norm, lo=0.0,
                                       lo_open=True))
        if isinstance(norm_type, str) and norm_type.lower() == "inf" or norm_type == math.inf:
            norm_type = math.inf
        else:
            norm_type = real_arg("GradientClipping", "norm_type", norm_type, lo=0.0, lo_open=True)
        self.norm_type = norm_type
        self.norms = []
        self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = len(self.norms)

    def on_after_backward(self, step):
        from .nn.utils import clip_grad_norm_
        self.norms.append(clip_grad_norm_(self.trainer.model.parameters(), self.max_norm,
                                          self.norm_type))

    def on_epoch_end(self, epoch, logs=None):
        seen = self.norms[self._epoch_start:]
        if seen and logs is not None:
            logs["grad_norm_total"] = float(np.median(seen))
            logs["clipped"] = float(np.mean(np.asarray(seen) > self.max_norm))


class CSVLogger(Callback):
    """Append each epoch's logs as a CSV row (header written once)."""
    main_only = True

    def __init__(self, path, append=False):
        self.path, self.append = os.fspath(path), append

    def on_train_begin(self, logs=None):
        self.keys = None
        if not self.append and os.path.exists(self.path):
            os.remove(self.path)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: v for k, v in logs.items() if k != "epoch"}}
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if self.keys is None:
            self.keys = list(row)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.keys, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


# ----------------------------------------------------------------- trainer --

def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Trainer:
    """Fit, evaluate and predict with a model, a loss and an optimizer.

    ``metrics``: names computed every epoch on training and validation data;
    'accuracy' compares argmax of the output with integer labels (or with the
    argmax of one-hot/probability targets). ``scheduler``: a
    fastnn.optim.lr_scheduler object, stepped once per epoch (``step(val
    metric)`` for ReduceLROnPlateau, monitoring ``scheduler_monitor``) or once
    per batch with ``scheduler_interval='step'`` (OneCycleLR).

    ``distributed=True``: data-parallel over the MPI ranks
    (fastnn.distributed; run the same script under ``mpiexec -n K``): the
    model and optimizer are wrapped in ``DistributedDataParallel``
    (broadcast from rank 0, gradients averaged), ``fit`` shards each
    epoch's permutation across the ranks (``batch_size`` is per rank),
    training and validation metrics are reduced over all ranks, and only
    rank 0 runs the ProgressBar, ModelCheckpoint and CSVLogger callbacks and
    writes History files."""

    def __init__(self, model, loss, optimizer, scheduler=None, callbacks=(),
                 metrics=("accuracy",), scheduler_interval="epoch",
                 scheduler_monitor="val_loss", distributed=False):
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a fastnn Module, got {type(model).__name__}")
        for m in metrics:
            if m not in ("accuracy",):
                raise ValueError(f"Trainer: unknown metric {m!r} (available: 'accuracy')")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.scheduler = scheduler
        self.scheduler_interval, self.scheduler_monitor = scheduler_interval, scheduler_monitor
        self.callbacks = list(callbacks)
        self.metrics = tuple(metrics)
        self.stop_training = False
        self.step = 0
        self.history = History()
        self.ddp = None
        if distributed:
            from .distributed import DistributedDataParallel
            self.ddp = DistributedDataParallel(model, optimizer)

    # -- helpers ---------------------------------------------------------
    def _emit(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    @staticmethod
    def _correct(out, y):
        pred = out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else (out.reshape(-1) > 0)
        if y.ndim == 2 and y.shape[1] > 1:
            y = y.argmax(axis=1)
        return int(np.sum(pred == y.reshape(-1)))

    def _split(self, x, y, validation_data, validation_split):
        if validation_data is not None and validation_split:
            raise ValueError("Trainer.fit: give validation_data or validation_split, not both")
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError("Trainer.fit: validation_data must be a pair (x_val, y_val)")
            return x, y, validation_data
        if validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"Trainer.fit: validation_split must be in (0, 1), got {validation_split}")
            n_val = int(round(len(x) * validation_split))
            if n_val < 1 or n_val >= len(x):
                raise ValueError(f"Trainer.fit: validation_split={validation_split} leaves "
                                 f"{n_val} of {len(x)} samples for validation")
            # the last fraction, as in Keras: shuffle first if the data are ordered
            return x[:-n_val], y[:-n_val], (x[-n_val:], y[-n_val:])
        return x, y, None

    # -- public API ------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, seed=None, verbose=True, transform=None):
        """Train for ``epochs`` epochs; returns the History. ``transform``: a
        callable applied to every training batch of x (e.g. a
        ``fastnn.data.augment`` transform, new random draws each epoch);
        validation and ``evaluate`` data are never transformed."""
        from .data import DataLoader
        if int(epochs) != epochs or epochs < 1:
            raise ValueError(f"Trainer.fit: epochs must be a positive integer, got {epochs!r}")
        x_tr, y_tr, val = self._split(x, y, validation_data, validation_split)
        main = True
        if self.ddp is not None:
            from .distributed import DistributedLoader, is_main
            loader = DistributedLoader(x_tr, y_tr, batch_size=batch_size, shuffle=shuffle,
                                       seed=seed, transform=transform)
            main = is_main()
        else:
            loader = DataLoader(x_tr, y_tr, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                transform=transform)
        callbacks = list(self.callbacks)
        if verbose and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(ProgressBar())
        if not main:
            callbacks = [c for c in callbacks if not c.main_only]
        saved_callbacks, self.callbacks = self.callbacks, callbacks
        for cb in self.callbacks:
            cb.trainer = self
        self.stop_training = False
        self.history = History()
        self.history.main = main
        step_evals = [c.every_n_steps for c in self.callbacks
                      if isinstance(c, EarlyStopping) and c.every_n_steps]
        if step_evals and val is None:
            raise ValueError("Trainer.fit: EarlyStopping(every_n_steps=...) needs validation data")
        try:
            self._emit("on_train_begin", {"epochs": int(epochs)})
            for epoch in range(1, int(epochs) + 1):
                self._emit("on_epoch_begin", epoch, {})
                logs = self._train_epoch(loader, epoch, val, step_evals)
                if val is not None:
                    vl = self.evaluate(*val, batch_size=max(256, batch_size))
                    logs.update({f"val_{k}": v for k, v in vl.items()})
                logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
                if self.scheduler is not None and self.scheduler_interval == "epoch":
                    self._step_scheduler(logs)
                self._emit("on_evaluate", self.step, {**logs, "epoch": epoch, "_source": "epoch"})
                self._emit("on_epoch_end", epoch, logs)
                self.history.append({"epoch": epoch, **logs})
                if self.stop_training:
                    break
            self._emit("on_train_end", {})
        finally:
            self.callbacks = saved_callbacks
        return self.history

    def _step_scheduler(self, logs):
        if type(self.scheduler).__name__ == "ReduceLROnPlateau":
            key = self.scheduler_monitor if self.scheduler_monitor in logs else "loss"
            self.scheduler.step(logs[key])
        else:
            self.scheduler.step()

    def _train_epoch(self, loader, epoch, val, step_evals):
        self.model.train()
        t0 = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        want_acc = "accuracy" in self.metrics
        nb = len(loader)
        for b, (xb, yb) in enumerate(loader):
            out = self.model.forward(xb)
            try:
                lval = float(self.loss(out, yb))
            except ValueError:
                if np.all(np.isfinite(out)):
                    raise
                lval = math.nan           # the loss refuses non-finite outputs
            if not math.isfinite(lval):
                raise FloatingPointError(f"Trainer: loss became {lval} at epoch {epoch}, "
                                         f"step {self.step + 1} (diverged: lower the learning rate?)")
            grad = self.loss.backward()
            self.optimizer.zero_grad()
            self.model.backward(grad)
            self.step += 1
            self._emit("on_after_backward", self.step)
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            n = len(xb) if self.ddp is None else loader.real_size
            total_loss += lval * n
            seen += n
            if want_acc and n:
                correct += self._correct(out, yb)
            self._emit("on_batch_end", self.step, {"batch": b, "batches": nb, "seen": seen,
                                                   "loss": lval, "running_loss": total_loss / seen})
            for every in step_evals:
                if self.step % every == 0:
                    vl = self.evaluate(*val)
                    self._emit("on_evaluate", self.step,
                               {**{f"val_{k}": v for k, v in vl.items()}, "epoch": epoch,
                                "_source": "step"})
                    self.model.train()
            if self.stop_training:
                break
        total_loss, correct, seen = self._reduce(total_loss, correct, seen)
        logs = {"loss": total_loss / max(seen, 1)}
        if want_acc:
            logs["accuracy"] = correct / max(seen, 1)
        logs["time"] = time.perf_counter() - t0
        return logs

    def _reduce(self, *values):
        """Sums over the ranks of a distributed run (unchanged otherwise)."""
        if self.ddp is None:
            return values
        from .distributed import all_reduce
        return tuple(all_reduce(np.array(values, dtype=np.float64)))

    def evaluate(self, x, y, batch_size=256):
        """Mean loss and metrics over (x, y), in eval mode. Distributed: each
        rank evaluates every world-size-th sample and the sums are reduced."""
        from .data import DataLoader
        if self.ddp is not None:
            from .distributed import rank, world_size
            x, y = x[rank()::world_size()], y[rank()::world_size()]
        was_training = self.model.training
        self.model.eval()
        total, correct, seen = 0.0, 0, 0
        try:
            for xb, yb in DataLoader(x, y, batch_size=batch_size, shuffle=False):
                out = self.model.forward(xb)
                total += float(self.loss(out, yb)) * len(xb)
                if "accuracy" in self.metrics:
                    correct += self._correct(out, yb)
                seen += len(xb)
        finally:
            self.model.train(was_training)
        total, correct, seen = self._reduce(total, correct, seen)
        res = {"loss": total / max(seen, 1)}
        if "accuracy" in self.metrics:
            res["accuracy"] = correct / max(seen, 1)
        return res

    def predict(self, x, batch_size=256, mc_samples=None, proba=False):
        """Model outputs for x, batch by batch, in eval mode. ``proba``: apply
        softmax to the outputs. ``mc_samples=k``: Monte-Carlo dropout -- only
        the Dropout layers are switched to training mode and the k passes'
        outputs (probabilities when ``proba``) are averaged."""
        from .data import DataLoader
        from .nn import Dropout, no_grad
        if mc_samples is not None and (int(mc_samples) != mc_samples or mc_samples < 1):
            raise ValueError(f"Trainer.predict: mc_samples must be a positive integer, got {mc_samples!r}")
        was_training = self.model.training
        self.model.eval()
        if mc_samples:
            drops = [m for m in self.model.modules() if isinstance(m, Dropout)]
            if not drops:
                raise ValueError("Trainer.predict: mc_samples needs a model with Dropout layers")
            for m in drops:
                object.__setattr__(m, "training", True)
        outs = []
        try:
            for xb in DataLoader(x, batch_size=batch_size, shuffle=False):
                k = int(mc_samples or 1)
                acc = None
                for _ in range(k):
                    with no_grad():                # MC-dropout passes keep no masks
                        o = self.model.forward(xb).astype(np.float64)
                    if proba:
                        o = _softmax(o)
                    acc = o if acc is None else acc + o
                outs.append((acc / k).astype(np.float32))
        finally:
            self.model.train(was_training)
        return np.concatenate(outs, axis=0)
