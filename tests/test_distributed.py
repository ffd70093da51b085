"""fastnn.distributed: the MPI checks run as `mpiexec -n 2` launches of
tests/mpi_checks.py (several checks per launch; skipped with the reason when
mpi4py, mpiexec or MPI itself is missing), plus single-process tests of the
sharding, the hooks and the argument checks."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import distributed as dist
from fastnn import nn, optim

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = HERE / "mpi_checks.py"


def _mpiexec():
    local = Path(sys.executable).parent / "mpiexec"      # the mpich wheel's, in this venv
    return str(local) if local.exists() else shutil.which("mpiexec")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("FASTNN_NUM_THREADS", None)
    return env


def _launch(args, n=2, timeout=90, cwd=None):
    cmd = [_mpiexec(), "-n", str(n), sys.executable] + [str(a) for a in args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=cwd)
    return p, time.perf_counter() - t0


_probe = {}


def _require_mpi():
    if "reason" not in _probe:
        reason = None
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            reason = 'mpi4py is not installed (pip install "fastnn[mpi]")'
        if reason is None and not _mpiexec():
            reason = 'no mpiexec on PATH (pip install "fastnn[mpi]" brings MPICH\'s)'
        if reason is None:
            try:
                p, _ = _launch(["-c", "from mpi4py import MPI; "
                                "assert MPI.COMM_WORLD.Get_size() == 2"], timeout=60)
                if p.returncode:
                    reason = f"MPI cannot start 2 ranks here: {p.stderr.strip()[-300:]}"
            except (OSError, subprocess.TimeoutExpired) as e:
                reason = f"MPI cannot start 2 ranks here: {e}"
        _probe["reason"] = reason
    if _probe["reason"]:
        pytest.skip(_probe["reason"])


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    _require_mpi()
    out = tmp_path_factory.mktemp("mpi")
    p, dt = _launch([SCRIPT, "main", out], timeout=120)
    return p, dt, out


def test_two_ranks_match_one_process_and_more(main_run):
    """Equivalence (2 x B = 1 x 2B, short last batches, weight-0 sample),
    buckets with ragged parameter counts, frozen parameters left out,
    broadcast, SyncBatchNorm vs BatchNorm and torch, checkpoint 1 -> 2
    ranks, Trainer(distributed=True), per-rank seeds and threads."""
    p, dt, _ = main_run
    assert p.returncode == 0, p.stdout + p.stderr
    for check in ("ok equivalence n=45", "ok equivalence n=41", "ok one bucket",
                  "ok broadcast", "ok SyncBatchNorm", "ok SyncBatchNorm training", "ok checkpoint 1 process -> 2 ranks",
                  "ok Trainer(distributed=True)", "ok per-rank seeds", "all ok"):
        assert check in p.stdout, p.stdout + p.stderr
    assert p.stdout.count("all ok") == 1, "only rank 0 prints"


def test_checkpoint_from_two_ranks_resumes_in_one_process(main_run):
    p, _, out = main_run
    assert p.returncode == 0, p.stderr
    r = subprocess.run([sys.executable, str(SCRIPT), "resume", str(out)], capture_output=True,
                       text=True, timeout=60, env=_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok checkpoint 2 ranks -> 1 process" in r.stdout


@pytest.mark.parametrize("how, message", [
    ("raise", "rank 1 of 2 raised RuntimeError"),
    ("exit", "rank 1 left the script while rank 0 waited"),
    ("die", None),                 # os._exit: the launcher ends the job, with the exit code
])
def test_a_failing_rank_stops_the_job(how, message):
    _require_mpi()
    p, dt = _launch([SCRIPT, how], timeout=60)
    assert p.returncode != 0, p.stdout + p.stderr
    assert dt < 30, f"the job took {dt:.1f} s to stop"
    if message:
        assert message in p.stderr, p.stderr


def test_cli_train_under_mpiexec(tmp_path):
    _require_mpi()
    ck = tmp_path / "ck.npz"
    p, _ = _launch(["-m", "fastnn", "train", "--epochs", "2", "--quiet", "--checkpoint", ck],
                   timeout=90, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("test accuracy") == 1, p.stdout     # rank 0 alone prints
    assert "2 ranks x" in p.stderr
    assert ck.exists()
    acc = float(p.stdout.split("test accuracy")[1].split("%")[0])
    assert acc > 80, p.stdout


# ----------------------------------------------------- single process --

def test_init_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(dist, "_MPI", None)
    with pytest.raises(ImportError, match=r"fastnn\[mpi\]"):
        dist.init()


def test_init_argument_checks():
    if dist.is_initialized():
        pytest.skip("MPI already initialised in this process")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        dist.init(timeout=0)
    with pytest.raises(ValueError, match="timeout must be a number"):
        dist.init(timeout="soon")
    with pytest.raises(ValueError, match="threads must be"):
        dist.init(threads=0)
    assert not dist.is_initialized()


def test_single_process_defaults():
    if dist.is_initialized():
        pytest.skip("MPI already initialised in this process")
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    a = np.arange(3.0)
    assert dist.all_reduce(a) is a and a.tolist() == [0, 1, 2]
    assert dist.batch_weight() == 1.0


@pytest.mark.parametrize("n, b, k", [(45, 4, 2), (41, 4, 2), (10, 3, 4), (7, 2, 3)])
def test_loader_shards_every_kth_sample_of_the_permutation(n, b, k):
    x = np.arange(n, dtype=np.float32)[:, None]
    y = np.arange(n)
    loaders = []
    for r in range(k):
        ld = dist.DistributedLoader(x, y, batch_size=b, seed=5)
        ld.rank, ld.world = r, k
        loaders.append(ld)
    for epoch in range(2):
        order = loaders[0]._order(epoch)
        per_rank = [list(ld.batches(epoch)) for ld in loaders]
        assert len({len(p) for p in per_rank}) == 1          # the same number of steps
        steps = len(per_rank[0])
        assert steps == -(-n // (b * k))
        for s in range(steps):
            block = order[s * b * k:(s + 1) * b * k]
            real = [idx for (idx, w) in (p[s] for p in per_rank) if w > 0]
            assert sorted(np.concatenate(real).tolist()) == sorted(block.tolist())
            for r in range(k):
                idx, w = per_rank[r][s]
                if w:
                    assert idx.tolist() == block[r::k].tolist()
                    assert w == len(idx) / len(block)
                else:
                    assert len(block) <= r and len(idx) == 1
            assert abs(sum(w for _, w in (p[s] for p in per_rank)) - 1) < 1e-12
    # consecutive epochs differ; iteration advances the epoch and yields rows
    assert not np.array_equal(loaders[0]._order(0), loaders[0]._order(1))
    ld = dist.DistributedLoader(x, y, batch_size=b, seed=5)
    first = [yb.tolist() for _, yb in ld]
    assert ld.epoch == 1 and sum(map(len, first)) == n


def test_post_backward_hooks_fire_per_backward_call():
    fastnn.manual_seed(0)
    lin = nn.Linear(3, 2)
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(2, 2))
    calls = []
    h1 = lin.register_post_backward_hook(lambda m: calls.append(("lin", len(m._contexts))))
    model.register_post_backward_hook(lambda m: calls.append(("model", None)))
    x = np.ones((4, 3), np.float32)
    model(x)
    model(x)                                   # the same module twice in one step
    model.backward(np.ones((4, 2), np.float32))
    model.backward(np.ones((4, 2), np.float32))
    assert calls == [("lin", 1), ("model", None), ("lin", 0), ("model", None)]
    h1.remove()
    calls.clear()
    model(x)
    model.backward(np.ones((4, 2), np.float32))
    assert calls == [("model", None)]
    with pytest.raises(TypeError, match="hook must be callable"):
        lin.register_post_backward_hook(3)
    import copy
    twin = copy.deepcopy(model)                # a copy does not call the original's hooks
    assert twin._post_backward_hooks is None and model._post_backward_hooks
    twin(x)
    twin.backward(np.ones((4, 2), np.float32))
    assert calls == [("model", None)]


def test_ddp_argument_checks():
    m = nn.Sequential(nn.Linear(3, 2))
    opt = optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="model must be a fastnn Module"):
        dist.DistributedDataParallel("model", opt)
    with pytest.raises(TypeError, match="optimizer must be a fastnn optimizer"):
        dist.DistributedDataParallel(m, None)
    with pytest.raises(ValueError, match="bucket_mb must be > 0"):
        dist.DistributedDataParallel(m, opt, bucket_mb=0)
    outside = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    opt2 = optim.SGD(outside[0].parameters(), lr=0.1)
    with pytest.raises(ValueError, match="'1.weight'.*not in the optimizer"):
        dist.DistributedDataParallel(outside, opt2)


def test_sync_batchnorm_alone_is_batchnorm(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4, 4)).astype(np.float32) * 2 + 1
    g = rng.standard_normal(x.shape).astype(np.float32)
    a, b = nn.BatchNorm2d(3), nn.SyncBatchNorm(3)
    np.testing.assert_allclose(b(x), a(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.backward(g, input_grad=True), a.backward(g, input_grad=True),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.weight.grad, a.weight.grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.running_var, a.running_var, rtol=1e-6)
    b.eval(), a.eval()
    np.testing.assert_allclose(b(x), a(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        b(np.ones((2, 5), np.float32))
    m = nn.SyncBatchNorm.convert_sync_batchnorm(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.BatchNorm1d(16)))
    assert isinstance(m[1], nn.SyncBatchNorm) and isinstance(m[3], nn.SyncBatchNorm)
    fastnn.save(m, tmp_path / "sbn.npz")
    assert isinstance(fastnn.load(tmp_path / "sbn.npz")[1], nn.SyncBatchNorm)
