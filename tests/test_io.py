"""fastnn.save / fastnn.load: round trips, resume-exactness, corrupt files."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.io import CheckpointError, load_checkpoint


def make_model():
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 3))


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def train_steps(model, opt, x, y, steps, seed=123):
    loss = nn.CrossEntropyLoss()
    fastnn.manual_seed(seed)
    for i in range(steps):
        out = model(x)
        loss(out, y)
        opt.zero_grad()
        model.backward(loss.backward())
        opt.step()


def test_roundtrip_rebuilds_architecture_and_weights(tmp_path):
    fastnn.manual_seed(0)
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p)
    m2 = fastnn.load(p)
    assert repr(m2) == repr(m)
    for (k1, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k1 == k2
        np.testing.assert_array_equal(a, b)
    x, _ = data()
    m.eval(), m2.eval()
    np.testing.assert_array_equal(m(x), m2(x))


def test_save_kill_load_resumes_identically(tmp_path):
    """Train 5 steps, save (model + Adam state) from a separate process that is
    then gone, load, take step 6: identical to training 6 steps straight."""
    x, y = data()
    fastnn.manual_seed(1)
    ref = make_model()
    ref_opt = optim.Adam(ref.parameters(), lr=1e-2)
    train_steps(ref, ref_opt, x, y, 5)
    train_steps(ref, ref_opt, x, y, 1, seed=999)

    ck = tmp_path / "ck.npz"
    code = f"""
import numpy as np, fastnn
from fastnn import nn, optim
import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_io import make_model, data, train_steps
x, y = data()
fastnn.manual_seed(1)
m = make_model()
opt = optim.Adam(m.parameters(), lr=1e-2)
train_steps(m, opt, x, y, 5)
fastnn.save(m, {str(ck)!r}, optimizer=opt)
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    m = fastnn.load(ck)
    opt = optim.Adam(m.parameters(), lr=1e-2)
    fastnn.load(ck, optimizer=opt, model=m)
    train_steps(m, opt, x, y, 1, seed=999)
    for a, b in zip(ref.parameters(), m.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_atomic_write_keeps_old_checkpoint_on_failure(tmp_path, monkeypatch):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        fastnn.save(m, p)
    assert p.read_bytes() == before
    assert [f for f in os.listdir(tmp_path) if f.startswith(".fastnn-")] == []


def test_truncated_file_raises(tmp_path):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p)
    raw = p.read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 5):
        q = tmp_path / f"cut{cut}.npz"
        q.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError):
            fastnn.load(q)


def test_corrupt_bytes_raise(tmp_path):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p)
    raw = bytearray(p.read_bytes())
    rng = np.random.default_rng(0)
    for trial in range(10):
        bad = bytearray(raw)
        for i in rng.integers(0, len(bad), 20):
            bad[i] ^= 0xFF
        q = tmp_path / f"bad{trial}.npz"
        q.write_bytes(bytes(bad))
        try:
            m2 = fastnn.load(q)
        except CheckpointError:
            continue
        # flipped bytes inside stored data that zip's CRC did not cover would
        # be caught by CRC; a load that succeeds must give the right shapes
        assert [p.shape for p in m2.parameters()] == [p.shape for p in m.parameters()]


def test_foreign_files_raise(tmp_path):
    q = tmp_path / "foreign.npz"
    np.savez(q, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a fastnn checkpoint"):
        fastnn.load(q)
    t = tmp_path / "text.npz"
    t.write_text("hello")
    with pytest.raises(CheckpointError):
        fastnn.load(t)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")


def test_future_version_and_pickled_arrays_rejected(tmp_path):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p)
    with zipfile.ZipFile(p) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.load(p)["__fastnn__"].tobytes())
    header["version"] = 99
    q = tmp_path / "v99.npz"
    arrays = {k: v for k, v in np.load(p).items() if k != "__fastnn__"}
    arrays["__fastnn__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(q, **arrays)
    with pytest.raises(CheckpointError, match="version"):
        fastnn.load(q)
    # an object array needs pickle: must be refused, never unpickled
    r = tmp_path / "pickled.npz"
    arrays = {k: v for k, v in np.load(p).items()}
    arrays["model/0.weight"] = np.array([object()], dtype=object)
    np.savez(r, **arrays)
    with pytest.raises(CheckpointError):
        fastnn.load(r)
    assert entries  # the original archive was a real zip


def test_shape_mismatch_names_key(tmp_path):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p)
    other = nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Dropout(0.25), nn.Linear(9, 3))
    with pytest.raises(CheckpointError, match=r"0\.weight"):
        fastnn.load(p, model=other)


def test_optimizer_mismatch_raises(tmp_path):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        fastnn.load(p, optimizer=optim.SGD(m.parameters(), lr=0.1), model=m)
    fastnn.save(m, p, optimizer=optim.SGD(m.parameters(), lr=0.1, momentum=0.9))
    with pytest.raises(CheckpointError, match="SGD"):
        fastnn.load(p, optimizer=optim.Adam(m.parameters()), model=m)


def test_unregistered_class_raises_and_register_fixes(tmp_path):
    class Twice(nn.Module):
        def __init__(self, k=2.0):
            self.k = k

        def forward(self, x):
            return x * self.k

        def backward(self, g):
            return g * self.k

    m = nn.Sequential(nn.Linear(3, 2), Twice(3.0))
    p = tmp_path / "t.npz"
    fastnn.save(m, p)
    with pytest.raises(CheckpointError, match="Twice"):
        fastnn.load(p)
    fastnn.io.register_module(Twice)
    m2 = fastnn.load(p)
    assert m2[1].k == 3.0


def test_load_checkpoint_exposes_header(tmp_path):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p, extra={"epoch": 7})
    ck = load_checkpoint(p)
    assert ck["header"]["format"] == "fastnn" and ck["header"]["extra"] == {"epoch": 7}
