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


def test_unregistered_class_fails_at_save_and_register_fixes(tmp_path):
    class Twice(nn.Module):
        def __init__(self, k=2.0):
            self.k = k

        def forward(self, x):
            return x * self.k

        def backward(self, g):
            return g * self.k

    m = nn.Sequential(nn.Linear(3, 2), Twice(3.0))
    p = tmp_path / "t.npz"
    with pytest.raises(TypeError, match=r"Twice.*register_module"):
        fastnn.save(m, p)
    assert os.listdir(tmp_path) == []          # nothing written, no litter
    fastnn.io.register_module(Twice)
    fastnn.save(m, p)
    m2 = fastnn.load(p)
    assert m2[1].k == 3.0

    class Linear(Twice):                       # shadows a fastnn layer's name
        pass
    with pytest.raises(TypeError, match="name is taken by fastnn"):
        fastnn.save(Linear(1.0), p)


def _with_class_name(src, dst, name):
    arrays = dict(np.load(src).items())
    header = json.loads(arrays["__fastnn__"].tobytes())
    header["model"]["args"][0]["__module__"]["class"] = name
    arrays["__fastnn__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(dst, **arrays)
    return dst


def test_load_never_imports_what_the_file_names(tmp_path, monkeypatch):
    (tmp_path / "fastnn_evil_probe.py").write_text(
        "import fastnn\nclass Evil(fastnn.nn.Module):\n    pass\n"
        "open(__file__ + '.imported', 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = make_model()
    fastnn.save(m, tmp_path / "m.npz")
    for name in ("fastnn_evil_probe.Evil", "fastnn_evil_probe:Evil", "Evil", "os.system",
                 "__import__", "Module.__subclasses__"):
        bad = _with_class_name(tmp_path / "m.npz", tmp_path / "bad.npz", name)
        with pytest.raises(CheckpointError, match="unknown module class"):
            fastnn.load(bad)
    assert "fastnn_evil_probe" not in sys.modules
    assert not (tmp_path / "fastnn_evil_probe.py.imported").exists()


@pytest.mark.skipif(not hasattr(os, "umask"), reason="no umask")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoint_permissions_follow_umask_like_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        fastnn.save(make_model(), tmp_path / "m.npz")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "m.npz").st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(tmp_path / "plain").st_mode & 0o777


@pytest.mark.skipif(not hasattr(os, "chmod") or os.name == "nt", reason="POSIX modes")
def test_overwriting_keeps_the_files_mode(tmp_path):
    p = tmp_path / "m.npz"
    fastnn.save(make_model(), p)
    os.chmod(p, 0o640)
    fastnn.save(make_model(), p)               # as open(p, "w") would: the mode stays
    assert os.stat(p).st_mode & 0o777 == 0o640


def _readline(proc, timeout=60):
    """The child's next stdout line, or '' if it says nothing for ``timeout`` s."""
    import select
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def _temps(d):
    return sorted(f for f in os.listdir(d) if f.startswith(".fastnn-") and f.endswith(".tmp"))


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()          # hold the lock until the parent closes our stdin
"""


@pytest.mark.skipif(os.name == "nt", reason="no fcntl.flock on Windows")
def test_save_removes_dead_writers_temporaries_not_live_ones(tmp_path):
    dead = tmp_path / ".fastnn-0123456789abcdef.tmp"
    dead.write_bytes(b"x" * 1000)              # nobody holds its lock: a crashed save
    live = tmp_path / ".fastnn-fedcba9876543210.tmp"
    other = tmp_path / "fastnn-notes.tmp"      # not ours: never touched
    other.write_text("keep")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(live)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert _readline(holder).strip() == "locked"
        fastnn.save(make_model(), tmp_path / "m.npz")
        assert _temps(tmp_path) == [live.name]       # the live writer's file survives
        assert other.exists()
    finally:
        holder.stdin.close()                     # the writer finishes: lock released
        holder.kill()
        holder.wait(timeout=30)
    assert fastnn.io.remove_stale_temporaries(tmp_path) == [live.name]
    assert _temps(tmp_path) == [] and other.exists()


_SAVE_AND_HANG = """
import os, sys, time
import fastnn
from fastnn import nn
def hang(fd):                # the save has written the data and is about to fsync
    print("writing", flush=True)
    time.sleep(120)
os.fsync = hang
fastnn.save(nn.Sequential(nn.Linear(300, 200)), sys.argv[1])
"""


@pytest.mark.skipif(os.name == "nt", reason="no fcntl.flock or kill -9 on Windows")
def test_killed_save_leaves_litter_the_next_save_cleans(tmp_path):
    import signal
    target = tmp_path / "ck.npz"
    fastnn.save(make_model(), target)
    before = target.read_bytes()
    here = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    writer = subprocess.Popen([sys.executable, "-c", _SAVE_AND_HANG, str(target)],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert _readline(writer).strip() == "writing"
        (litter,) = _temps(tmp_path)
        assert os.path.getsize(tmp_path / litter) > 200_000
        fastnn.save(make_model(), tmp_path / "other.npz")    # a live writer: left alone
        assert _temps(tmp_path) == [litter]
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert _temps(tmp_path) == [litter] and target.read_bytes() == before
    fastnn.load(target)
    fastnn.save(make_model(), tmp_path / "other.npz")        # the writer is dead: cleaned
    assert _temps(tmp_path) == []


@pytest.mark.skipif(os.name == "nt", reason="no fcntl.flock on Windows")
def test_a_cleaner_racing_the_writer_never_breaks_a_save(tmp_path, monkeypatch):
    """The window between creating the temporary and locking it: a cleaner
    that removes the file then makes the writer start over with a new one."""
    real_open, calls = os.open, []

    def open_then_clean(path, flags, *a):
        fd = real_open(path, flags, *a)
        if flags & os.O_CREAT and not calls:
            calls.append(path)
            assert fastnn.io.remove_stale_temporaries(tmp_path)   # takes our new file
        return fd
    monkeypatch.setattr(os, "open", open_then_clean)
    fastnn.save(make_model(), tmp_path / "m.npz")
    monkeypatch.undo()
    assert calls and _temps(tmp_path) == []
    fastnn.load(tmp_path / "m.npz")


def test_load_checkpoint_exposes_header(tmp_path):
    m = make_model()
    p = tmp_path / "m.npz"
    fastnn.save(m, p, extra={"epoch": 7})
    ck = load_checkpoint(p)
    assert ck["header"]["format"] == "fastnn" and ck["header"]["extra"] == {"epoch": 7}
