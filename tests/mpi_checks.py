"""Checks of fastnn.distributed, run by tests/test_distributed.py as
``mpiexec -n 2 python tests/mpi_checks.py MODE OUTDIR`` (or without mpiexec,
as one process). Every check asserts; rank 0 prints 'ok NAME' per check.
Many checks share one launch because each mpiexec costs about a second.

MODES
  main      2 ranks: equivalence with one process, buckets, frozen
            parameters, broadcast, SyncBatchNorm, checkpoints both ways,
            Trainer(distributed=True)
  resume    1 process: resume the checkpoint the 2-rank run wrote
  raise     2 ranks: rank 1 raises while rank 0 waits in an all-reduce
  die       2 ranks: rank 1 exits abruptly (os._exit) while rank 0 waits
  exit      2 ranks: rank 1 calls sys.exit(3) while rank 0 waits
"""
import os
import sys
import time

import numpy as np

import fastnn
from fastnn import distributed as dist
from fastnn import nn, optim

B = 4              # per-rank batch; one process uses 2 * B
SEED = 7


def say(msg):
    if dist.is_main():
        print(msg, flush=True)


def make_model(seed, frozen=True):
    """Parameter counts 13*7+7, 7*5+5, 5*3+3: no multiple of any bucket."""
    fastnn.manual_seed(seed)
    m = nn.Sequential(nn.Linear(13, 7), nn.Tanh(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    if frozen:
        m[2].bias.requires_grad = False      # a frozen parameter in the middle
    return m


def data(n):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 13)).astype(np.float32), rng.integers(0, 3, n)


def perm(n, epoch, seed=SEED):
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, epoch]))) \
        .permutation(n)


def train_reference(model, opt, x, y, epochs, first_epoch=0):
    """One process, batch 2B, the same data order as DistributedLoader."""
    loss = nn.CrossEntropyLoss()
    for e in range(first_epoch, first_epoch + epochs):
        p = perm(len(x), e)
        for k in range(0, len(x), 2 * B):
            i = p[k:k + 2 * B]
            loss(model(x[i]), y[i])
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()


def train_ddp(model, opt, x, y, epochs, first_epoch=0, bucket_mb=1e-4):
    ddp = dist.DistributedDataParallel(model, opt, bucket_mb=bucket_mb)
    # the global batch is 2B on any world size (B per rank on 2 ranks)
    loader = dist.DistributedLoader(x, y, batch_size=2 * B // dist.world_size(), seed=SEED)
    loss = nn.CrossEntropyLoss()
    for e in range(first_epoch, first_epoch + epochs):
        loader.set_epoch(e)
        for xb, yb in loader:
            loss(model(xb), yb)
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()
    return ddp


def gathered(a):
    """Every rank's copy of a, as a list (on every rank)."""
    return dist._comm.allgather(np.array(a))


def flat_state(opt):
    sd = opt.state_dict()["state"]
    return [np.asarray(v, np.float64).ravel() for k in sorted(sd) for _, v in sorted(sd[k].items())]


def assert_same_on_all_ranks(arrays, what):
    for i, a in enumerate(arrays):
        copies = gathered(a)
        for c in copies[1:]:
            assert np.array_equal(c, copies[0]), f"{what}[{i}] differs across ranks"


def check_equivalence(n, epochs=2):
    x, y = data(n)
    m = make_model(0)
    opt = optim.Adam(m.parameters(), lr=1e-2)
    frozen_before = m[2].bias.data.copy()
    ddp = train_ddp(m, opt, x, y, epochs)
    ref = make_model(0)
    ropt = optim.Adam(ref.parameters(), lr=1e-2)
    train_reference(ref, ropt, x, y, epochs)
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=2e-5, atol=2e-6, err_msg=name)
    assert np.array_equal(m[2].bias.data, frozen_before), "a frozen parameter changed"
    assert_same_on_all_ranks([p.data for p in m.parameters()], "parameters")
    assert_same_on_all_ranks(flat_state(opt), "optimizer state")
    for a, b in zip(flat_state(opt), flat_state(ropt)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # buckets: several, whole parameters, no frozen one, every trainable element sent once
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert ddp.num_buckets > 1, ddp.num_buckets
    steps = ddp.stats["steps"]
    assert steps == epochs * -(-n // (2 * B)), steps
    # all but the first layer's bucket(s) start while backward is still running
    assert ddp.stats["early_buckets"] >= (ddp.num_buckets - 2) * steps, ddp.stats
    assert ddp.gradient_bytes == 4 * sum(p.size for p in trainable)
    assert ddp.stats["bytes_per_step"] == opt.flat_grad.nbytes, \
        (ddp.stats["bytes_per_step"], opt.flat_grad.nbytes)
    assert all(id(m[2].bias) not in {id(p) for p in b.params} for b in ddp._buckets)
    assert sorted(id(p) for b in ddp._buckets for p in b.params) == sorted(map(id, trainable))
    ddp.remove_hooks()
    say(f"ok equivalence n={n} buckets={ddp.num_buckets}")


def check_one_bucket_and_no_overlap():
    x, y = data(32)
    m = make_model(0, frozen=False)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    ddp = dist.DistributedDataParallel(m, opt, bucket_mb=64, overlap=False)
    assert ddp.num_buckets == 1
    loader = dist.DistributedLoader(x, y, batch_size=B, seed=SEED)
    loss = nn.CrossEntropyLoss()
    for xb, yb in loader:
        loss(m(xb), yb)
        opt.zero_grad()
        m.backward(loss.backward())
        opt.step()
    ref = make_model(0, frozen=False)
    ropt = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    train_reference(ref, ropt, x, y, 1)
    for p, q in zip(m.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=2e-5, atol=2e-6)
    ddp.remove_hooks()
    say("ok one bucket, no overlap")


def check_broadcast():
    m = make_model(100 + dist.rank())           # different weights on every rank
    opt = optim.Adam(m.parameters(), lr=1e-3)
    if dist.is_main():                          # optimizer state only on rank 0
        x, y = data(8)
        loss = nn.CrossEntropyLoss()
        loss(m(x), y)
        m.backward(loss.backward())
        opt.step()
    ddp = dist.DistributedDataParallel(m, opt)
    assert_same_on_all_ranks([p.data for p in m.parameters()], "broadcast parameters")
    assert_same_on_all_ranks(flat_state(opt), "broadcast optimizer state")
    assert len(flat_state(opt)) > 0
    ddp.remove_hooks()
    say("ok broadcast")


def check_sync_batchnorm():
    rng = np.random.default_rng(3)
    r, k = dist.rank(), dist.world_size()
    for shape in ((6, 4), (3, 4, 5, 5)):
        full = (rng.standard_normal((shape[0] * k,) + shape[1:]) * 2 + 1).astype(np.float32)
        g = rng.standard_normal(full.shape).astype(np.float32)
        gamma = rng.uniform(0.5, 2, shape[1]).astype(np.float32)
        beta = rng.standard_normal(shape[1]).astype(np.float32)
        n = shape[0]
        mine = slice(r * n, (r + 1) * n)
        sbn = nn.SyncBatchNorm(shape[1])
        bn = nn.BatchNorm2d(shape[1]) if len(shape) == 4 else nn.BatchNorm1d(shape[1])
        for mod in (sbn, bn):
            mod.weight.data, mod.bias.data = gamma, beta
        y = sbn(full[mine])
        w = dist.batch_weight()
        dx = sbn.backward(g[mine] / w, input_grad=True) * w   # the mean loss of this rank
        dgamma = dist.all_reduce(sbn.weight.grad.astype(np.float64) * w)
        yr = bn(full)
        dxr = bn.backward(g, input_grad=True)
        np.testing.assert_allclose(y, yr[mine], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, dxr[mine], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dgamma, bn.weight.grad, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(sbn.running_var, bn.running_var, rtol=1e-5)
        np.testing.assert_allclose(sbn.running_mean, bn.running_mean, rtol=1e-5, atol=1e-6)
        try:
            import torch
        except ImportError:
            continue
        tb = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(shape[1])
        with torch.no_grad():
            tb.weight.copy_(torch.from_numpy(gamma))
            tb.bias.copy_(torch.from_numpy(beta))
        xt = torch.from_numpy(full).requires_grad_(True)
        yt = tb(xt)
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(y, yt.detach().numpy()[mine], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, xt.grad.numpy()[mine], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(sbn.running_var, tb.running_var.numpy(), rtol=1e-5)
    say("ok SyncBatchNorm")


def check_sync_batchnorm_training():
    """SyncBatchNorm on 2 ranks trains as BatchNorm1d on one process with the
    whole batch, also through an unevenly split short last batch (3 + 2)."""
    x, y = data(45)

    def model(bn):
        fastnn.manual_seed(4)
        return nn.Sequential(nn.Linear(13, 6), bn(6), nn.ReLU(), nn.Linear(6, 3))
    m = model(nn.SyncBatchNorm)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    ddp = train_ddp(m, opt, x, y, 2)
    ref = model(nn.BatchNorm1d)
    ropt = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    train_reference(ref, ropt, x, y, 2)
    for (k, a), b in zip(m.state_dict().items(), ref.state_dict().values()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=k)
    assert_same_on_all_ranks(list(m.state_dict().values()), "SyncBatchNorm model state")
    ddp.remove_hooks()
    say("ok SyncBatchNorm training")


def check_checkpoints(outdir):
    x, y = data(40)
    # 2 ranks train one epoch and rank 0 saves: resumed later by one process (mode resume)
    m = make_model(0)
    opt = optim.Adam(m.parameters(), lr=1e-2)
    ddp = train_ddp(m, opt, x, y, 1)
    if dist.is_main():
        fastnn.save(m, os.path.join(outdir, "ckpt2.npz"), optimizer=opt)
    ddp.remove_hooks()
    # one process trains one epoch and saves (rank 0 alone); 2 ranks resume it
    if dist.is_main():
        m1 = make_model(0)
        o1 = optim.Adam(m1.parameters(), lr=1e-2)
        train_reference(m1, o1, x, y, 1)
        fastnn.save(m1, os.path.join(outdir, "ckpt1.npz"), optimizer=o1)
        ref = make_model(0)
        ropt = optim.Adam(ref.parameters(), lr=1e-2)
        train_reference(ref, ropt, x, y, 2)           # uninterrupted, one process
        np.savez(os.path.join(outdir, "ref.npz"), *[p.data for p in ref.parameters()])
    dist.barrier()
    m2 = make_model(5)
    o2 = optim.Adam(m2.parameters(), lr=1e-2)
    fastnn.load(os.path.join(outdir, "ckpt1.npz"), optimizer=o2, model=m2)
    ddp = train_ddp(m2, o2, x, y, 1, first_epoch=1)
    ref = np.load(os.path.join(outdir, "ref.npz"))
    for i, p in enumerate(m2.parameters()):
        np.testing.assert_allclose(p.data, ref[f"arr_{i}"], rtol=2e-5, atol=2e-6)
    ddp.remove_hooks()
    say("ok checkpoint 1 process -> 2 ranks")


def check_trainer(outdir):
    x, y = data(60)
    xv, yv = data(23)
    m = make_model(0, frozen=False)
    opt = optim.SGD(m.parameters(), lr=0.1)
    ck = os.path.join(outdir, f"trainer-ckpt-rank{dist.rank()}.npz")
    tr = fastnn.Trainer(m, nn.CrossEntropyLoss(), opt, distributed=True,
                        callbacks=[fastnn.train.ModelCheckpoint(ck, save_best_only=False)])
    h = tr.fit(x, y, epochs=2, batch_size=B, validation_data=(xv, yv), seed=SEED, verbose=False)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert_same_on_all_ranks([np.array(h.history[key])], f"History {key}")
    assert os.path.exists(ck) == dist.is_main(), "only rank 0 writes checkpoints"
    h.to_csv(os.path.join(outdir, f"hist-rank{dist.rank()}.csv"))
    assert os.path.exists(os.path.join(outdir, f"hist-rank{dist.rank()}.csv")) == dist.is_main()
    # the reduced validation metrics are those of one process over the whole set
    ref = fastnn.Trainer(m, nn.CrossEntropyLoss(), opt).evaluate(xv, yv)
    np.testing.assert_allclose(h.history["val_loss"][-1], ref["loss"], rtol=1e-5)
    assert abs(h.history["val_accuracy"][-1] - ref["accuracy"]) < 1e-9
    # training matched one process with batch 2B (no dropout, SGD)
    rm = make_model(0, frozen=False)
    ro = optim.SGD(rm.parameters(), lr=0.1)
    train_reference(rm, ro, x, y, 2)
    for p, q in zip(m.parameters(), rm.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=2e-5, atol=2e-6)
    tr.ddp.remove_hooks()
    say("ok Trainer(distributed=True)")


def check_seeds_and_threads():
    from fastnn import runtime
    fastnn.manual_seed(11)
    m = make_model(11, frozen=False)
    opt = optim.SGD(m.parameters(), lr=0.1)
    ddp = dist.DistributedDataParallel(m, opt)
    seeds = gathered(runtime.initial_seed())
    assert len(set(int(s) for s in seeds)) == dist.world_size(), seeds
    assert int(seeds[dist.rank()]) == dist._rank_seed(11, dist.rank())
    cores = runtime.default_num_threads()
    if not os.environ.get("FASTNN_NUM_THREADS"):
        same = sum(1 for c in gathered(sorted(os.sched_getaffinity(0)))
                   if list(c) == sorted(os.sched_getaffinity(0)))
        assert fastnn.get_num_threads() == max(1, cores // same), fastnn.get_num_threads()
    ddp.remove_hooks()
    say(f"ok per-rank seeds, {fastnn.get_num_threads()} threads per rank")


def main(outdir):
    t0 = time.perf_counter()
    dist.init()
    assert dist.world_size() == 2, "run under mpiexec -n 2"
    check_equivalence(45)              # last global batch 5 = 3 + 2 samples
    check_equivalence(41, epochs=1)    # last global batch 1: rank 1 gets a weight-0 sample
    check_one_bucket_and_no_overlap()
    check_broadcast()
    check_sync_batchnorm()
    check_sync_batchnorm_training()
    check_checkpoints(outdir)
    check_trainer(outdir)
    check_seeds_and_threads()
    say(f"all ok in {time.perf_counter() - t0:.1f} s")


def resume(outdir):
    """One process: resume the 2-rank checkpoint and match the uninterrupted run."""
    dist.init()
    assert dist.world_size() == 1
    x, y = data(40)
    m = make_model(9)
    opt = optim.Adam(m.parameters(), lr=1e-2)
    fastnn.load(os.path.join(outdir, "ckpt2.npz"), optimizer=opt, model=m)
    saved = fastnn.load(os.path.join(outdir, "ckpt2.npz"))
    for p, q in zip(m.parameters(), saved.parameters()):
        assert np.array_equal(p.data, q.data)
    train_ddp(m, opt, x, y, 1, first_epoch=1)     # the same script path, world size 1
    ref = np.load(os.path.join(outdir, "ref.npz"))
    for i, p in enumerate(m.parameters()):
        np.testing.assert_allclose(p.data, ref[f"arr_{i}"], rtol=2e-5, atol=2e-6)
    print("ok checkpoint 2 ranks -> 1 process", flush=True)


def failing(how):
    dist.init()
    a = np.ones(1000, np.float32)
    dist.all_reduce(a)
    if dist.rank() == 1:
        time.sleep(0.5)
        if how == "raise":
            raise RuntimeError("deliberate failure on rank 1")
        if how == "exit":
            sys.exit(3)
        os._exit(3)
    dist.all_reduce(a)                 # rank 0 waits here for a partner that is gone
    time.sleep(60)                     # never reached in a healthy abort


if __name__ == "__main__":
    mode, out = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else ".")
    if mode == "main":
        main(out)
    elif mode == "resume":
        resume(out)
    else:
        failing(mode)
