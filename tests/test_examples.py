"""The examples run end to end (short versions of the recorded runs)."""
import importlib.util
import json
import os

import pytest

from fastnn import nn, optim
from helpers import MNIST_DIR, ROOT, have_mnist


def _load(name):
    path = os.path.join(ROOT, "examples", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_momentum_ramp_averaged_and_classic():
    ex = _load("dropout_mnist")
    for averaged in (True, False):
        opt = optim.SGD(nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.5)
        trainer = type("T", (), {"optimizer": opt})()
        ramp = ex.MomentumRamp(0.5, 0.99, 10, averaged)
        ramp.trainer = trainer
        for epoch, want in ((1, 0.5), (6, 0.5 + 0.49 * 0.5), (11, 0.99), (50, 0.99)):
            ramp.on_epoch_begin(epoch)
            g = opt.param_groups[0]
            assert g["momentum"] == pytest.approx(want)
            # averaged: v <- m v + (1 - m) g, i.e. dampening follows momentum
            assert g["dampening"] == (pytest.approx(want) if averaged else 0)


@pytest.mark.skipif(not have_mnist(), reason="MNIST not found (../shared/data/mnist)")
def test_dropout_mnist_short_run_records(tmp_path, capsys):
    ex = _load("dropout_mnist")
    rec = tmp_path / "rec.json"
    err = ex.main(["--data-dir", MNIST_DIR, "--epochs", "2", "--train-size", "5000",
                   "--momentum-ramp", "2", "--record", str(rec)])
    assert err < 30.0          # chance is 90%; 2 epochs over 5000 images reach about 16%
    d = json.loads(rec.read_text())
    assert d["test_error_pct"] == pytest.approx(err) and d["epochs"] == 2
    assert d["wall_seconds"] > 0 and "final test error" in capsys.readouterr().out


@pytest.mark.skipif(not have_mnist(), reason="MNIST not found (../shared/data/mnist)")
@pytest.mark.parametrize("name, epochs", [("mnist_lenet5", 5), ("mnist_bn_cnn", 2),
                                          ("mnist_resnet", 3)])
def test_mnist_cnn_examples_short_run_learns_and_records(name, epochs, tmp_path, capsys):
    """500 training images, a few epochs (seconds) with the example's recipe
    (augmentation, one cycle): far below chance (90%). Measured: lenet5 ~24%
    after 5 epochs, bn_cnn ~13% after 2, resnet 12-22% after 3."""
    ex = _load(name)
    rec = tmp_path / "rec.json"
    err = ex.main(["--data-dir", MNIST_DIR, "--epochs", str(epochs), "--train-size", "500",
                   "--test-size", "500", "--batch-size", "25", "--quiet", "--record", str(rec)])
    assert err < 50.0
    d = json.loads(rec.read_text())
    assert d["test_error_pct"] == pytest.approx(err) and d["epochs"] == epochs
    assert d["goal"] == ex.GOAL and d["wall_seconds"] > 0
    assert "final test error" in capsys.readouterr().out


def test_mnist_cnn_examples_augmentation_flags():
    common = _load("_mnist_cnn")
    args = common.parser("doc", 1, 1e-3, 0, 0, degrees=10, translate=0.1,
                         scale=0.1).parse_args([])
    aug = common.augmentation(args)
    assert (aug.degrees, aug.translate, aug.scale) == ((-10, 10), (0.1, 0.1), (0.9, 1.1))
    args.degrees = args.translate = args.scale = 0
    assert common.augmentation(args) is None


# ------------------------------------------- issue 13: recurrent examples --

SHAKESPEARE = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare", "input.txt")
SYNTHETIC = ("the quick brown fox jumps over the lazy dog. " * 40
             + "a stitch in time saves nine; " * 40)


def test_char_lm_vocab_split_streams_and_chunks():
    import numpy as np
    ex = _load("char_lm")
    v = ex.Vocab(SYNTHETIC)
    assert v.chars == sorted(set(SYNTHETIC)) and len(v) == len(set(SYNTHETIC))
    data = v.encode(SYNTHETIC)
    assert data.dtype == np.int32 and v.decode(data) == SYNTHETIC
    with pytest.raises(ValueError, match="'Z' is not in the vocabulary"):
        v.encode("Z")
    tr, va = ex.split_train_val(data, 0.1)
    n_val = int(len(data) * 0.1)
    assert len(va) == n_val and np.array_equal(np.concatenate([tr, va]), data)
    assert np.array_equal(va, data[-n_val:])          # validation is the last 10%
    B = 7
    s = ex.batch_streams(tr, B)
    L = len(tr) // B
    assert s.shape == (L, B) and s.flags.c_contiguous
    for b in range(B):                                 # column b: the b-th contiguous piece
        assert np.array_equal(s[:, b], tr[b * L:(b + 1) * L])
    T = 16
    got = list(ex.chunks(s, T))
    assert len(got) == ex.num_chunks(s, T) == -(-(L - 1) // T)
    assert all(x.shape == y.shape and x.shape[0] <= T for x, y in got)
    xs = np.concatenate([x for x, _ in got])
    ys = np.concatenate([y for _, y in got])
    assert np.array_equal(xs, s[:-1]) and np.array_equal(ys, s[1:])   # y is the next character
    with pytest.raises(ValueError, match="too few"):
        ex.batch_streams(tr[:5], 4)
    with pytest.raises(ValueError, match="too short"):
        ex.split_train_val(data[:10], 0.1)


def test_char_lm_state_carried_across_chunks_matches_one_long_pass():
    """Evaluation over chunks of 5 steps with the state carried gives the loss
    of one pass over the whole stream: h_n/c_n feed the next chunk exactly."""
    import fastnn
    import numpy as np
    ex = _load("char_lm")
    fastnn.manual_seed(1)
    v = ex.Vocab(SYNTHETIC)
    s = ex.batch_streams(v.encode(SYNTHETIC), 4)
    model = ex.CharLSTM(len(v), 8, 16, 2, dropout=0.3)
    loss = fastnn.nn.CrossEntropyLoss()
    whole = ex.evaluate(model, s, s.shape[0], loss)
    chunked = ex.evaluate(model, s, 5, loss)
    assert chunked == pytest.approx(whole, rel=1e-5)
    assert model.training                              # evaluate restores train mode
    out = ex.sample(model, v, 30, temperature=0.5, prime="the ")
    assert out.startswith("the ") and len(out) == 34 and set(out) <= set(v.chars)


def test_char_lm_backward_matches_torch_on_one_chunk_with_state():
    """The example's model (Embedding, 2-layer LSTM, Linear; dropout off)
    given a carried state: loss and every gradient as torch's, the state
    treated as a constant (truncated BPTT)."""
    torch = pytest.importorskip("torch")
    import numpy as np
    ex = _load("char_lm")
    V, E, H, T, B = 11, 6, 8, 5, 3
    m = ex.CharLSTM(V, E, H, 2, dropout=0.0)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, V, (T, B)).astype(np.int32)
    tgt = rng.integers(0, V, T * B)
    h0 = rng.standard_normal((2, B, H)).astype(np.float32)
    c0 = rng.standard_normal((2, B, H)).astype(np.float32)
    loss = fastnn_loss = __import__("fastnn").nn.CrossEntropyLoss()
    logits, (hn, cn) = m(idx, (h0, c0))
    lv = fastnn_loss(logits, tgt)
    m.zero_grad()
    m.backward(loss.backward())

    emb = torch.nn.Embedding(V, E)
    lstm = torch.nn.LSTM(E, H, 2)
    lin = torch.nn.Linear(H, V)
    sd = m.state_dict()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(sd["embed.weight"]))
        for k, p in lstm.named_parameters():
            p.copy_(torch.from_numpy(sd["lstm." + k]))
        lin.weight.copy_(torch.from_numpy(sd["head.weight"]))
        lin.bias.copy_(torch.from_numpy(sd["head.bias"]))
    out, (thn, tcn) = lstm(emb(torch.from_numpy(idx).long()),
                           (torch.from_numpy(h0), torch.from_numpy(c0)))
    tl = torch.nn.functional.cross_entropy(lin(out.reshape(T * B, H)), torch.from_numpy(tgt))
    tl.backward()
    assert lv == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(hn, thn.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cn, tcn.detach().numpy(), rtol=1e-5, atol=1e-6)
    grads = {"embed.weight": emb.weight.grad, "head.weight": lin.weight.grad,
             "head.bias": lin.bias.grad,
             **{"lstm." + k: p.grad for k, p in lstm.named_parameters()}}
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_char_lm_trains_on_synthetic_text(tmp_path):
    """The whole script on a small made-up text (no data needed): the loss
    falls well below uniform, and the curve, plot-free JSON and record are
    written."""
    import math
    ex = _load("char_lm")
    args = ex.parse_args(["unused", "--epochs", "20", "--time-budget", "0", "--hidden", "32",
                          "--embed", "8", "--batch-size", "8", "--seq-len", "20",
                          "--lr", "1e-2", "--log-every", "10", "--eval-every", "20",
                          "--sample-chars", "40", "--curve", str(tmp_path / "curve.json"),
                          "--record", str(tmp_path / "acc" / "lm.json"),
                          "--save", str(tmp_path / "lm.npz")])
    lines = []
    res = ex.train(args, text=SYNTHETIC, log=lines.append)
    V = len(set(SYNTHETIC))
    curve = res["curve"]
    assert curve[0]["step"] == 0 and curve[0]["val_loss"] == pytest.approx(math.log(V), abs=0.3)
    assert res["val_loss"] < 0.8 < curve[0]["val_loss"] - 2.0      # uniform is ln 24 = 3.18
    assert res["val_bpc"] == pytest.approx(res["val_loss"] / math.log(2))
    assert res["epochs"] == pytest.approx(20) and res["chars_per_second"] > 0
    assert any(ln.startswith("final validation loss") for ln in lines)
    d = json.loads((tmp_path / "curve.json").read_text())
    assert d["curve"] == json.loads(json.dumps(curve)) and d["sample"] == res["sample"]
    assert len(d["train_curve"]) == math.ceil(res["steps"] / 10) and d["train_curve"][-1]["step"] == res["steps"]
    rec = json.loads((tmp_path / "acc" / "lm.json").read_text())
    assert rec["test_error_pct"] is None and rec["val_loss_nats"] == pytest.approx(res["val_loss"])
    assert "bpc" in rec["result"] and rec["epochs"] == 20
    from fastnn.benchmark.report import accuracy_section
    assert any(rec["result"] in ln for ln in accuracy_section(str(tmp_path / "acc")))
    import fastnn
    m2 = fastnn.load(str(tmp_path / "lm.npz"))
    assert type(m2).__name__ == "CharLSTM"


def test_char_lm_argument_errors(capsys):
    ex = _load("char_lm")
    for bad in (["--time-budget", "0"], ["--hidden", "0"], ["--temperature", "0"]):
        with pytest.raises(SystemExit):
            ex.parse_args(["x"] + bad)
    assert "--temperature" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists(SHAKESPEARE),
                    reason="Tiny Shakespeare not found (../shared/data/tinyshakespeare)")
def test_char_lm_short_run_on_tiny_shakespeare(tmp_path, capsys):
    ex = _load("char_lm")
    res = ex.main([SHAKESPEARE, "--text-chars", "60000", "--epochs", "1", "--time-budget", "0",
                   "--hidden", "64", "--embed", "16", "--batch-size", "16", "--seq-len", "50",
                   "--lr", "5e-3", "--log-every", "20", "--eval-every", "1000",
                   "--sample-chars", "50"])
    first, last = res["curve"][0]["val_loss"], res["val_loss"]
    assert last < first - 0.8                   # from about ln 65 = 4.17 to below 3.4
    assert "final validation loss" in capsys.readouterr().out


@pytest.mark.skipif(not have_mnist(), reason="MNIST not found (../shared/data/mnist)")
def test_seq_mnist_short_run_records(tmp_path, capsys):
    ex = _load("seq_mnist")
    rec, gn = tmp_path / "rec.json", tmp_path / "norms.json"
    acc = ex.main(["--data-dir", MNIST_DIR, "--epochs", "1", "--train-size", "3000",
                   "--test-size", "1000", "--norm-every", "5", "--record", str(rec),
                   "--grad-norms", str(gn)])
    assert acc > 30.0          # chance is 10%; one epoch over 3000 images reaches about 50%
    d = json.loads(rec.read_text())
    assert d["test_error_pct"] == pytest.approx(100 - acc) and d["epochs"] == 1
    n = json.loads(gn.read_text())
    assert len(n["total_before_clipping"]) == len(n["per_layer"]) == 9 and n["total_max"] > 0
    step, layers = n["per_layer"][0]
    assert step == 5 and set(layers) == {"0", "2"} and all(v > 0 for v in layers.values())
    out = capsys.readouterr().out
    assert "final test accuracy" in out and "0:LSTM" in out and "0.weight_hh_l0" in out
