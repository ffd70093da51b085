"""Ensembles: bootstrap aggregating (bagging) of independently trained models."""
import numpy as np

from . import runtime
from .nn.module import Module
from .train import Trainer

__all__ = ["Bagging"]


class Bagging:
    """Train ``n_models`` models, each on a bootstrap sample (n draws with
    replacement) of the training set, and predict by averaging the members'
    class probabilities (softmax of their outputs).

    ``make_model()`` returns a fresh Module; ``make_optimizer(model)`` an
    optimizer for it; ``loss`` is shared (the members train one after the
    other, and a loss keeps nothing from one step to the next). Each member's bootstrap indices and initialisation come from
    fastnn's seeded generator, so ``fastnn.manual_seed`` makes the ensemble
    reproducible."""

    def __init__(self, make_model, n_models, make_optimizer, loss, callbacks=()):
        if int(n_models) != n_models or n_models < 1:
            raise ValueError(f"Bagging: n_models must be a positive integer, got {n_models!r}")
        if not callable(make_model) or not callable(make_optimizer):
            raise TypeError("Bagging: make_model and make_optimizer must be callables")
        self.make_model, self.make_optimizer, self.loss = make_model, make_optimizer, loss
        self.n_models = int(n_models)
        self.callbacks = tuple(callbacks)
        self.members = []
        self.samples = []        # the bootstrap indices of each member
        self.histories = []

    def fit(self, x, y, epochs=1, batch_size=32, verbose=False, **fit_kwargs):
        x = np.asarray(x)
        y = np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"Bagging.fit: x has {len(x)} samples but y has {len(y)}")
        if len(x) == 0:
            raise ValueError("Bagging.fit: no training samples")
        self.members, self.samples, self.histories = [], [], []
        gen = runtime.generator()
        for _ in range(self.n_models):
            idx = gen.integers(0, len(x), len(x))
            model = self.make_model()
            if not isinstance(model, Module):
                raise TypeError(f"Bagging: make_model() returned {type(model).__name__}, not a Module")
            trainer = Trainer(model, self.loss, self.make_optimizer(model),
                              callbacks=self.callbacks)
            hist = trainer.fit(x[idx], y[idx], epochs=epochs, batch_size=batch_size,
                               verbose=verbose, **fit_kwargs)
            self.members.append(trainer)
            self.samples.append(idx)
            self.histories.append(hist)
        return self

    def predict_proba(self, x, batch_size=256):
        """Mean of the members' softmax probabilities, (N, classes)."""
        if not self.members:
            raise RuntimeError("Bagging: call fit() before predicting")
        acc = None
        for t in self.members:
            p = t.predict(x, batch_size=batch_size, proba=True).astype(np.float64)
            acc = p if acc is None else acc + p
        return (acc / len(self.members)).astype(np.float32)

    def predict(self, x, batch_size=256):
        """Predicted class: argmax of the averaged probabilities."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def oob_score(self, x, y, batch_size=256):
        """Out-of-bag accuracy: each sample is scored only by the members whose
        bootstrap sample missed it (samples no member missed are skipped)."""
        if not self.members:
            raise RuntimeError("Bagging: call fit() before scoring")
        y = np.asarray(y)
        votes = None
        counts = np.zeros(len(x))
        for t, idx in zip(self.members, self.samples):
            out = np.ones(len(x), bool)
            out[idx] = False
            p = t.predict(x, batch_size=batch_size, proba=True).astype(np.float64)
            p[~out] = 0.0
            votes = p if votes is None else votes + p
            counts += out
        scored = counts > 0
        if not scored.any():
            raise ValueError("Bagging.oob_score: every sample is in every bootstrap sample")
        return float(np.mean(votes[scored].argmax(axis=1) == y[scored]))


