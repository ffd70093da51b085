"""python -m fastnn train / info, and the accuracy records the report renders."""
import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.benchmark.report import accuracy_section
from helpers import MNIST_DIR, have_mnist


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_train_on_digits_reports_test_accuracy_and_saves(tmp_path):
    rec = tmp_path / "accuracy" / "digits.json"
    model_path = tmp_path / "m.npz"
    r = run("train", "--epochs", "8", "--threads", "1", "--seed", "3", "--record", str(rec),
            "--goal", "<= 10%", "--save", str(model_path), "--optimizer", "adam")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout
    err = float(r.stdout.split("(error ")[1].split("%")[0])
    assert err < 10.0
    d = json.loads(rec.read_text())
    assert d["test_error_pct"] == pytest.approx(err, abs=0.006) and d["epochs"] == 8
    lines = accuracy_section(str(tmp_path / "accuracy"))
    assert any("digits mlp adam" in ln and "<= 10%" in ln for ln in lines)
    m = fastnn.load(model_path)
    x, y = fastnn.datasets.load_digits()
    m.eval()
    assert (m(x).argmax(1) == y).mean() > 0.9


def test_train_is_reproducible_from_the_command_line():
    outs = [run("train", "--epochs", "2", "--threads", str(t), "--seed", "7", "--quiet").stdout
            for t in (1, 2)]
    strip = [o.split("train time")[0] for o in outs]
    assert strip[0] == strip[1] and "test accuracy" in strip[0]


def test_train_flags_schedules_and_early_stopping(tmp_path):
    r = run("train", "--epochs", "6", "--optimizer", "sgd", "--schedule", "cosine", "--warmup", "2",
            "--val-split", "0.2", "--early-stopping", "2", "--checkpoint", str(tmp_path / "best.npz"),
            "--weight-decay", "1e-4", "--max-norm", "3", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "best.npz").exists()
    r = run("train", "--early-stopping", "2")
    assert r.returncode != 0 and "--val-split" in r.stderr


def test_bad_model_spec_and_missing_mnist(tmp_path):
    r = run("train", "--model", "12,abc")
    assert r.returncode != 0 and "--model" in r.stderr
    r = run("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nope"))
    assert r.returncode != 0


def test_info_and_usage():
    r = run("info", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["isa"] in ("ref", "avx2", "avx512")
    r = run("nonsense")
    assert r.returncode == 2 and "usage" in r.stderr


# ------------------------------------------------ usage errors and help --

def cli(*args):
    """Run the command line in this process: (exit status, stdout, stderr)."""
    from fastnn.__main__ import main
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["--batch-size", "x"], "argument --batch-size: expected an integer, got 'x'"),
    (["--epochs", "0"], "argument --epochs: must be >= 1"),
    (["--epochs", "2.5"], "argument --epochs: expected an integer"),
    (["--lr", "0"], "argument --lr: must be > 0"),
    (["--lr", "nan"], "argument --lr: must be > 0"),
    (["--lr", "inf"], "argument --lr: must be > 0"),
    (["--momentum", "-0.1"], "argument --momentum: must be >= 0"),
    (["--weight-decay", "-1"], "argument --weight-decay: must be >= 0"),
    (["--max-norm", "0"], "argument --max-norm: must be > 0"),
    (["--dropout", "1"], "argument --dropout: must be >= 0 and < 1"),
    (["--input-dropout", "-0.2"], "argument --input-dropout: must be >= 0 and < 1"),
    (["--val-split", "1.0"], "argument --val-split: must be >= 0 and < 1"),
    (["--label-smoothing", "1.5"], "argument --label-smoothing: must be >= 0 and <= 1"),
    (["--warmup", "-1"], "argument --warmup: must be >= 0"),
    (["--early-stopping", "-1"], "argument --early-stopping: must be >= 0"),
    (["--threads", "0"], "argument --threads: must be >= 1"),
    (["--seed", "-3"], "argument --seed: must be >= 0"),
    (["--model", "512,,256"], "argument --model: expected a preset"),
    (["--model", "512,0"], "argument --model: expected a preset"),
    (["--model", ""], "argument --model: expected a preset"),
    (["--data-dir", "."], "argument --data-dir: --dataset digits does not read a directory"),
    (["--dataset", "idx"], "--dataset idx needs --data-dir"),
    (["--early-stopping", "2"], "argument --early-stopping: needs --val-split"),
    (["--val-split", "0.0001"], "argument --val-split: 0.0001 of 1437 training samples leaves 0"),
    (["--warmup", "2", "--schedule", "onecycle"], "does not combine with --schedule onecycle"),
    (["--optimizer", "adam", "--momentum", "0.5"], "--optimizer adam has no momentum"),
    (["--goal", "<1%"], "argument --goal: needs --record"),
    (["--model", "vgg"], "or a CNN (lenet5, cnn, cnn-bn, resnet), got 'vgg'"),
    (["--model", "cnn", "--dropout", "0.5"], "argument --dropout: applies to the MLPs"),
    (["--model", "lenet5", "--activation", "tanh"], "argument --activation: applies to the MLPs"),
    (["--model", "resnet", "--input-dropout", "0.2"], "argument --input-dropout: applies to"),
    (["--model", "cnn-bn", "--momentum", "0.5"], "--model cnn-bn trains with adam unless"),
    (["--model", "cnn", "--warmup", "1", "--schedule", "onecycle"], "does not combine with"),
])
def test_bad_values_are_usage_errors(args, message):
    code, out, err = cli("train", *args)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("usage: ") and message in lines[1], err


def test_usage_error_has_no_traceback():
    r = run("train", "--batch-size", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        "usage: python -m fastnn train [options]",
        "python -m fastnn train: error: argument --batch-size: must be >= 1, got 0"]


def test_help_describes_commands_and_defaults():
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("info", "train", "bench"):
        assert re.search(rf"^  {command} +\w+ .+", out, re.M), out     # a sentence each
    assert "COMMAND --help" in out and "train --dataset mnist" in out    # examples
    code, out, _ = cli("train", "--help")
    assert code == 0
    out = " ".join(out.split())                  # argparse wraps to the terminal's width
    for default in ("(default: digits)", "(default: mlp)", "(default: sgd for an MLP, adam "
                    "for a CNN)", "(default: 0.9)",
                    "(default: 0.0)", "(default: 30 on digits, 10 on mnist/idx)",
                    "train-images-idx3-ubyte"):
        assert default in out, default
    assert "(default: None)" not in out
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"fastnn {fastnn.__version__}"
    code, _, err = cli("nonsense")
    assert code == 2 and "invalid choice: 'nonsense'" in err
    code, _, err = cli()
    assert code == 2 and "commands:" in err


@pytest.mark.skipif(os.name == "nt", reason="POSIX pipes")
def test_closed_pipe_ends_quietly():
    """`python -m fastnn bench --list | head` must not end in BrokenPipeError:
    the reader is gone before we write (deterministic: its end is closed)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "fastnn", "bench", "--list"], stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert p.returncode == 141 and p.stderr == ""


def test_epoch_lines_label_every_number_and_time_has_a_unit():
    code, out, err = cli("train", "--epochs", "2", "--val-split", "0.2", "--early-stopping", "5")
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2
    assert re.fullmatch(r"epoch 2/2  loss \d\.\d{4}  train acc \d+\.\d\d%  val loss \d\.\d{4}  "
                        r"val acc \d+\.\d\d%  lr 0\.1  \d+(\.\d+)? (s|ms|us)", lines[1]), lines[1]
    m = re.search(r"train time (\d+(?:\.\d+)?) (s|ms|us) \((\d+(?:\.\d+)?) (s|ms|us)/epoch", out)
    assert m and float(m.group(1)) > 0 and float(m.group(3)) > 0, out     # never "0.0s"
    assert "early stopping: did not stop early; best val_loss" in out


def _write_idx(path, arr):
    import struct
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(head + arr.astype(np.uint8).tobytes())


def test_idx_dataset_reads_any_mnist_format_directory(tmp_path):
    x, y = fastnn.datasets.load_digits(flatten=False)        # 8x8 digits as an "MNIST"
    img = np.rint(x.reshape(-1, 8, 8) * 255)
    _write_idx(tmp_path / "train-images-idx3-ubyte", img[:1400])
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y[:1400])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", img[1400:])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[1400:])
    code, out, err = cli("train", "--dataset", "idx", "--data-dir", str(tmp_path), "--epochs",
                         "3", "--batch-size", "32", "--lr", "0.1", "--quiet")
    assert code == 0, err
    assert "idx: 1400 train / 397 test | 19,210 parameters" in err    # 64 inputs, 10 classes
    assert float(out.split("test accuracy ")[1].split("%")[0]) > 80
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    code, out, err = cli("train", "--dataset", "idx", "--data-dir", str(tmp_path), "--quiet")
    assert code == 2 and "t10k-labels-idx1-ubyte" in err.splitlines()[-1]


# ------------------------------------------------ convolutional models --

def _result(out):
    """(test accuracy %, epochs) from the result line."""
    m = re.search(r"test accuracy (\d+\.\d\d)%.*\((?:[^,]+), (\d+) epochs?\)", out)
    assert m, out
    return float(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("model, params, epochs", [
    ("lenet5", "21,386", 20), ("cnn-bn", "62,378", 10), ("cnn", "325,514", 15)])
def test_cnn_default_run_on_digits_reaches_97_percent(model, params, epochs):
    """The README's claim for each model's default run (measured over seeds
    0-4: lenet5 >= 98.06%, cnn-bn >= 99.44%, cnn >= 98.33%)."""
    code, out, err = cli("train", "--model", model, "--quiet")
    assert code == 0, err
    assert f"digits: 1437 train / 360 test | {params} parameters" in err
    acc, n = _result(out)
    assert n == epochs and acc >= 97.0, out


def test_resnet_on_digits_one_epoch_and_save(tmp_path):
    # the default run (10 epochs, about 15 s) is measured in the README; here:
    # one epoch learns, and the saved model (Residual blocks, BatchNorm) reloads
    path = tmp_path / "resnet.npz"
    code, out, err = cli("train", "--model", "resnet", "--epochs", "1", "--save", str(path))
    assert code == 0, err
    assert "174,970 parameters" in err and "Residual(" in err          # the printed model
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 1
    lr = float(re.search(r"  lr (\S+)", lines[0]).group(1))
    assert 0 < lr < 3e-3 / 25           # the one cycle (peak 3e-3, start 3e-3/25) is over
    acc, n = _result(out)
    assert n == 1 and acc > 30.0          # chance is 10%
    m = fastnn.load(path)
    m.eval()
    x, y = fastnn.datasets.load_digits(flatten=False)
    assert m(x[:200]).shape == (200, 10)


def test_cnn_on_28x28_idx_images(tmp_path):
    """28x28 images (the digits enlarged 3x and padded, MNIST's shape) from an
    IDX directory: the CNNs take their 28x28 form."""
    x, y = fastnn.datasets.load_digits(flatten=False)
    img = np.rint(np.pad(x[:, 0].repeat(3, 1).repeat(3, 2), ((0, 0), (2, 2), (2, 2))) * 255)
    _write_idx(tmp_path / "train-images-idx3-ubyte", img[:300])
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y[:300])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", img[1500:])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[1500:])
    for model, params in (("lenet5", "61,706"), ("cnn-bn", "431,018"), ("resnet", "174,970")):
        code, out, err = cli("train", "--dataset", "idx", "--data-dir", str(tmp_path), "--model",
                             model, "--epochs", "1", "--batch-size", "50", "--quiet")
        assert code == 0, err
        assert f"idx: 300 train / 297 test | {params} parameters" in err, err
        assert _result(out)[1] == 1
    _write_idx(tmp_path / "train-images-idx3-ubyte", img[:300, :6, :6])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", img[1500:, :6, :6])
    code, out, err = cli("train", "--dataset", "idx", "--data-dir", str(tmp_path), "--model",
                         "cnn", "--quiet")
    assert code == 2 and "argument --model: cnn: input_shape needs" in err and "8x8" in err


@pytest.mark.skipif(not have_mnist(), reason="MNIST not found (../shared/data/mnist)")
def test_mnist_images_reach_the_cnns_as_28x28():
    from fastnn import cli as cli_mod
    args = cli_mod._defaults(cli_mod.build_parser().parse_args(
        ["--dataset", "mnist", "--data-dir", MNIST_DIR, "--model", "resnet"]))
    xtr, xte, ytr, yte = cli_mod._load(args)
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert (args.optimizer, args.schedule, args.epochs, args.batch_size) == ("adam", "onecycle",
                                                                              5, 128)
    model = cli_mod.build_model(xtr.shape[1:], 10, args)
    assert model.num_parameters() == 174970 and model(xte[:4]).shape == (4, 10)
