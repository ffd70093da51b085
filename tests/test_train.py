"""Trainer, History and callbacks, on small synthetic problems."""
import io
import json
import os
import re

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.train import (CSVLogger, EarlyStopping, GradientClipping, GradientNormMonitor, History,
                          LearningRateScheduler, ModelCheckpoint, ProgressBar, Trainer)


def blobs(n=400, d=5, k=3, seed=0, noise=0.6):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 2
    y = rng.integers(0, k, n)
    x = (centers[y] + noise * rng.standard_normal((n, d))).astype(np.float32)
    return x, y


def mlp(d=5, k=3, p=0.0):
    layers = [nn.Linear(d, 32), nn.ReLU()]
    if p:
        layers.append(nn.Dropout(p))
    return nn.Sequential(*layers, nn.Linear(32, k))


def make_trainer(model, lr=0.1, **kw):
    return Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=lr, momentum=0.9), **kw)


def test_fit_learns_and_records_history():
    fastnn.manual_seed(0)
    x, y = blobs()
    t = make_trainer(mlp())
    h = t.fit(x, y, epochs=8, batch_size=32, validation_split=0.25, verbose=False)
    assert len(h.epochs) == 8
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["val_accuracy"][-1] > 0.9
    ev = t.evaluate(x, y)
    assert set(ev) == {"loss", "accuracy"} and ev["accuracy"] > 0.9


def test_fit_transform_applies_to_training_batches_only():
    fastnn.manual_seed(0)
    x, y = blobs(n=100)
    seen = []

    def record(xb):            # a stand-in augmentation: mark every batch it sees
        seen.append(len(xb))
        return xb * 0.0 + 1.0

    t = make_trainer(mlp())
    h = t.fit(x, y, epochs=2, batch_size=32, validation_data=(x[:10], y[:10]), verbose=False,
              transform=record)
    assert seen == [32, 32, 32, 4] * 2          # every training batch, never validation
    # the model saw constant inputs: no better than the class prior, whatever it predicts
    assert h.history["accuracy"][-1] <= np.bincount(y).max() / len(y) + 1e-9
    plain = make_trainer(mlp()).fit(x, y, epochs=4, batch_size=32, verbose=False)
    assert plain.history["accuracy"][-1] > 0.8
    with pytest.raises(TypeError, match="transform"):
        t.fit(x, y, epochs=1, verbose=False, transform=3)


def test_training_is_reproducible_on_1_and_2_threads():
    x, y = blobs(n=600, d=20)
    results = []
    for threads in (1, 2, 1):
        fastnn.set_num_threads(threads)
        fastnn.manual_seed(5)
        m = mlp(d=20, p=0.3)
        make_trainer(m).fit(x, y, epochs=3, batch_size=64, verbose=False, seed=3)
        results.append([p.data.copy() for p in m.parameters()])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_best_weights_and_reports_step():
    fastnn.manual_seed(1)
    x, y = blobs(n=200, noise=2.5, seed=4)
    xv, yv = blobs(n=200, noise=2.5, seed=5)
    m = mlp()
    es = EarlyStopping("val_loss", patience=2, restore_best_weights=True)
    snapshots = {}

    class Snap(fastnn.train.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = (logs["val_loss"], [p.data.copy() for p in m.parameters()])

    t = make_trainer(m, lr=0.5, callbacks=[es, Snap()])
    h = t.fit(x, y, epochs=60, batch_size=16, validation_data=(xv, yv), verbose=False)
    assert len(h.epochs) < 60, "never stopped: a noisy problem at lr 0.5 should overfit"
    best_epoch = min(snapshots, key=lambda e: snapshots[e][0])
    assert es.best_epoch == best_epoch and h.best["epoch"] == best_epoch
    assert len(h.epochs) == best_epoch + es.patience     # Keras: patience evaluations, not +1
    assert es.stopped_epoch == h.best["stopped_epoch"] == len(h.epochs)
    for p, saved in zip(m.parameters(), snapshots[best_epoch][1]):
        np.testing.assert_array_equal(p.data, saved)
    assert h.best["step"] == best_epoch * len(range(0, 200, 16))


class _Stub:
    """Just enough of a Trainer for a callback driven by hand."""
    def __init__(self):
        self.stop_training = False
        self.model = mlp()
        self.history = History()


def _drive(es, scores):
    """Feed the scores as one evaluation per epoch; the epoch it stopped at."""
    es.trainer = _Stub()
    es.on_train_begin()
    for epoch, v in enumerate(scores, 1):
        es.on_evaluate(epoch * 10, {"val_loss": v, "val_accuracy": v, "epoch": epoch,
                                    "_source": "epoch"})
        if es.trainer.stop_training:
            return epoch
    return None


@pytest.mark.parametrize("patience, stop", [(0, 3), (1, 3), (2, 4), (3, 5), (4, None)])
def test_early_stopping_waits_exactly_patience_evaluations(patience, stop):
    scores = [1.0, 0.8, 0.9, 0.85, 0.81, 0.7]   # best at epoch 2, then 3 without improvement
    es = EarlyStopping("val_loss", patience=patience)
    assert _drive(es, scores) == stop
    if stop is not None:
        assert es.stopped_epoch == stop and es.best_epoch == 2 and es.best_score == 0.8
    else:
        assert es.best_epoch == 6


def test_early_stopping_min_delta_and_mode():
    # 0.79 beats 0.8 by less than min_delta: not an improvement
    es = EarlyStopping("val_loss", patience=2, min_delta=0.05)
    assert _drive(es, [1.0, 0.8, 0.79, 0.78, 0.5]) == 4 and es.best_epoch == 2
    es = EarlyStopping("val_loss", patience=2, min_delta=0.005)
    assert _drive(es, [1.0, 0.8, 0.79, 0.78, 0.5]) is None and es.best_epoch == 5
    # 'auto' picks max for accuracies: 0.9 at epoch 2 stays best
    es = EarlyStopping("val_accuracy", patience=1)
    assert es.mode == "max" and _drive(es, [0.5, 0.9, 0.8]) == 3 and es.best_score == 0.9
    es = EarlyStopping("val_loss", patience=1, mode="max")
    assert _drive(es, [0.5, 0.9, 0.8]) == 3 and es.best_epoch == 2
    es = EarlyStopping("val_loss", patience=1)         # NaN never counts as an improvement
    assert _drive(es, [0.5, float("nan"), 0.4]) == 2


def test_early_stopping_verbose_says_where_it_stopped(capsys):
    es = EarlyStopping("val_loss", patience=2, verbose=True)
    assert _drive(es, [1.0, 0.8, 0.9, 0.85]) == 4
    err = capsys.readouterr().err
    assert "early stopping at epoch 4" in err and "best val_loss 0.8000 at epoch 2" in err
    es = EarlyStopping("val_loss", patience=2)            # quiet by default
    _drive(es, [1.0, 0.8, 0.9, 0.85])
    assert capsys.readouterr().err == ""


def test_early_stopping_every_n_steps():
    fastnn.manual_seed(2)
    x, y = blobs(n=256)
    es = EarlyStopping("val_loss", patience=3, every_n_steps=4)
    t = make_trainer(mlp(), callbacks=[es])
    t.fit(x, y, epochs=5, batch_size=32, validation_split=0.25, verbose=False)
    assert es.best_step is not None and es.best_step % 4 == 0


def test_early_stopping_needs_the_metric():
    x, y = blobs()
    t = make_trainer(mlp(), callbacks=[EarlyStopping("val_loss")])
    with pytest.raises(KeyError, match="val_loss"):
        t.fit(x, y, epochs=2, verbose=False)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


def test_model_checkpoint_and_csv_logger(tmp_path):
    fastnn.manual_seed(0)
    x, y = blobs()
    m = mlp()
    ck = ModelCheckpoint(tmp_path / "ck-{epoch:02d}.npz")
    best = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    log = CSVLogger(tmp_path / "log.csv")
    t = make_trainer(m, callbacks=[ck, best, log])
    old = os.umask(0o027)
    try:
        t.fit(x, y, epochs=3, validation_split=0.2, verbose=False)
    finally:
        os.umask(old)
    if os.name != "nt":                      # open()'s permissions, not a temp file's 0600
        assert os.stat(tmp_path / "ck-01.npz").st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.glob("ck-*.npz")) == ["ck-01.npz", "ck-02.npz", "ck-03.npz"]
    m3 = fastnn.load(tmp_path / "ck-03.npz")
    for a, b in zip(m.parameters(), m3.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 4


def test_history_exports(tmp_path):
    h = History()
    h.append({"epoch": 1, "loss": 1.0, "val_loss": 1.2})
    h.append({"epoch": 2, "loss": 0.5, "val_loss": 0.9})
    d = json.loads(h.to_json(tmp_path / "h.json"))
    assert d["epochs"][1]["loss"] == 0.5
    h.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "epoch,loss,val_loss"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            h.plot(tmp_path / "h.png")
    else:
        h.plot(tmp_path / "h.png")
        assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_progress_bar_plain_lines_when_not_a_tty():
    x, y = blobs(n=64)
    out = io.StringIO()
    t = make_trainer(mlp(), callbacks=[ProgressBar(stream=out)])
    t.fit(x, y, epochs=2, batch_size=16, verbose=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  loss ")
    assert re.fullmatch(r"epoch 2/2  loss \d\.\d{4}  train acc \d+\.\d\d%  lr 0\.1  "
                        r"[\d.]+ (s|ms|us)", lines[1]), lines[1]


def test_epoch_line_labels_every_number():
    from fastnn.train import _epoch_line, _format_seconds
    line = _epoch_line(3, {"loss": 0.12341, "accuracy": 0.97123, "val_loss": 0.2,
                           "val_accuracy": 0.968, "lr": 0.05, "time": 2.134}, "/20")
    assert line == ("epoch 3/20  loss 0.1234  train acc 97.12%  val loss 0.2000  "
                    "val acc 96.80%  lr 0.05  2.13 s")
    assert [_format_seconds(t) for t in (0.0132, 0.00087, 0.4, 43.21)] == \
        ["13.2 ms", "870 us", "400 ms", "43.2 s"]


def test_pytorch_habits_get_fastnn_hints():
    x, y = blobs(n=8)
    crit = nn.CrossEntropyLoss()
    loss = crit(mlp()(x), y)
    # still a real float: arithmetic, formatting, comparison, JSON
    assert isinstance(loss, float) and loss > 0 and f"{loss:.2f}" == f"{float(loss):.2f}"
    assert json.loads(json.dumps({"l": loss}))["l"] == float(loss) == loss.item()
    with pytest.raises(TypeError, match=r"criterion.backward\(\)"):
        loss.backward()

    class MLP(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            return self.fc(x)
    m = MLP()
    m(x)
    with pytest.raises(NotImplementedError, match=r"MLP.backward .*implements backward.*Sequential"):
        m.backward(np.ones((8, 3), np.float32))
    with pytest.raises(NotImplementedError, match=r"Module.forward .*Sequential"):
        nn.Module()(x)


def test_lr_scheduler_callback_and_grad_monitor():
    x, y = blobs(n=64)
    lrs = []
    sched = LearningRateScheduler(lambda epoch, lr: 0.1 / epoch)
    gm = GradientNormMonitor(every=2)

    class Rec(fastnn.train.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            lrs.append(self.trainer.optimizer.param_groups[0]["lr"])

    t = make_trainer(mlp(), callbacks=[sched, Rec(), gm])
    h = t.fit(x, y, epochs=3, batch_size=16, verbose=False)
    assert lrs == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert [s for s, _ in gm.records] == [2, 4, 6, 8, 10, 12]
    assert set(gm.records[0][1]) == {n for n, _ in t.model.named_parameters()}
    assert h.history["grad_norm_max"][0] >= h.history["grad_norm_min"][0] > 0


def test_predict_batches_and_mc_dropout():
    fastnn.manual_seed(0)
    x, y = blobs(n=300)
    m = mlp(p=0.5)
    t = make_trainer(m)
    t.fit(x, y, epochs=3, verbose=False)
    out = t.predict(x, batch_size=64)
    m.eval()
    np.testing.assert_allclose(out, m(x), rtol=1e-6, atol=1e-6)
    p1 = t.predict(x, proba=True)
    np.testing.assert_allclose(p1.sum(1), 1, rtol=1e-5)
    pmc = t.predict(x, proba=True, mc_samples=20)
    assert not np.allclose(pmc, p1)          # dropout really was on
    np.testing.assert_allclose(pmc.sum(1), 1, rtol=1e-5)
    assert (pmc.argmax(1) == p1.argmax(1)).mean() > 0.9
    assert not m.training                     # mode restored
    with pytest.raises(ValueError, match="Dropout"):
        make_trainer(mlp()).predict(x, mc_samples=3)


def test_bad_arguments():
    x, y = blobs(n=50)
    t = make_trainer(mlp())
    with pytest.raises(ValueError, match="epochs"):
        t.fit(x, y, epochs=0)
    with pytest.raises(ValueError, match="validation_split"):
        t.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="not both"):
        t.fit(x, y, validation_split=0.2, validation_data=(x, y))
    with pytest.raises(ValueError, match="metric"):
        Trainer(mlp(), nn.CrossEntropyLoss(), optim.SGD(mlp().parameters(), lr=0.1), metrics=("f7",))
    with pytest.raises(FloatingPointError, match="loss became"):
        make_trainer(mlp(), lr=1e6).fit(x * 1e3, y, epochs=5, verbose=False)


def test_grad_monitor_on_an_lstm_per_layer_and_clipping():
    """GradientNormMonitor on a recurrent model gives every LSTM weight's norm
    and, grouped, each layer's; GradientClipping clips before the step, and a
    monitor after it sees the clipped gradients."""
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 7, 4)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.int64)
    model = nn.Sequential(nn.LSTM(4, 12, batch_first=True), nn.LastStep(), nn.Linear(12, 2))
    raw = []

    class Direct(fastnn.train.Callback):       # the norms computed here, from p.grad
        def on_after_backward(self, step):
            raw.append({n: float(np.linalg.norm(p.grad.astype(np.float64)))
                        for n, p in self.trainer.model.named_parameters()})

    before, after = GradientNormMonitor(), GradientNormMonitor()
    clip = GradientClipping(0.05)
    t = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2),
                callbacks=[Direct(), before, clip, after])
    h = t.fit(x, y, epochs=2, batch_size=32, verbose=False)
    names = {n for n, _ in model.named_parameters()}
    assert names == {"0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0", "0.bias_hh_l0",
                     "2.weight", "2.bias"}
    assert len(raw) == len(before.records) == len(clip.norms) == 6
    for r, (step, got), total in zip(raw, before.records, clip.norms):
        assert set(got) == names and all(got[n] == pytest.approx(r[n], rel=1e-5) for n in names)
        assert total == pytest.approx(np.sqrt(sum(v * v for v in r.values())), rel=1e-5)
    for (_, layers), (_, got) in zip(before.layer_norms(), before.records):
        assert set(layers) == {"0", "2"}
        lstm = [got[n] for n in names if n.startswith("0.")]
        assert layers["0"] == pytest.approx(np.sqrt(np.sum(np.square(lstm))))
        assert layers["2"] == pytest.approx(np.hypot(got["2.weight"], got["2.bias"]))
    for (_, got), total in zip(after.records, clip.norms):     # clipped to a joint norm 0.05
        joint = np.sqrt(sum(v * v for v in got.values()))
        assert joint == pytest.approx(min(total, 0.05), rel=1e-4)
    assert h.history["clipped"] == [1.0, 1.0] and h.history["grad_norm_total"][0] > 0.05
    assert GradientClipping(1.0, norm_type="inf").norm_type == float("inf")
    for bad in (0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="GradientClipping: max_norm"):
            GradientClipping(bad)
    with pytest.raises(ValueError, match="GradientClipping: norm_type"):
        GradientClipping(1.0, norm_type=0)
