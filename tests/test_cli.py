"""python -m fastnn train / info, and the accuracy records the report renders."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.benchmark.report import accuracy_section


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
