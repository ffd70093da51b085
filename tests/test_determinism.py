"""Same seed, same bits on 1 and 2 threads, end to end, with a model big
enough that every kernel of the step really runs on 2 threads -- and a check
that it did.

How "it did" is observed: the nanoseconds of CPU time each OS thread of the
process has run (/proc/self/task/*/schedstat). After a pause, OpenMP's idle
workers sleep; a kernel call that runs on 2 threads wakes one and its CPU
time grows, a single-threaded call leaves every thread but the caller's at
rest."""
import os
import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/task") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux /proc and 2 usable cores")

N, D, H, C, B = 512, 784, 1024, 1000, 256    # every kernel above the 1-thread threshold


def _worker_cpu_ns():
    me = threading.get_native_id()
    out = {}
    for t in os.listdir("/proc/self/task"):
        if int(t) != me:
            try:
                with open(f"/proc/self/task/{t}/schedstat") as f:
                    out[t] = int(f.read().split()[0])
            except OSError:          # a thread that just ended
                pass
    return out


def _ran_on_a_worker(fn):
    """CPU nanoseconds other threads spent during one call of fn."""
    fn()                             # warm: buffers, the thread pool
    time.sleep(0.05)                 # idle workers stop spinning and sleep
    before = _worker_cpu_ns()
    fn()
    time.sleep(0.05)                 # a worker's run time is booked when it stops running
    after = _worker_cpu_ns()
    return sum(v - before.get(t, 0) for t, v in after.items())


def _data():
    rng = np.random.default_rng(0)
    return rng.random((N, D), dtype=np.float32), rng.integers(0, C, N)


def _model():
    return nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Dropout(0.3), nn.Linear(H, H),
                         nn.ReLU(), nn.Dropout(0.3), nn.Linear(H, C))


def _train(threads, steps=3):
    fastnn.set_num_threads(threads)
    fastnn.manual_seed(123)
    model = _model()
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    x, y = _data()
    losses = []
    loader = fastnn.data.DataLoader(x, y, batch_size=B, shuffle=True, seed=5)
    for i, (xb, yb) in enumerate(loader):
        if i == steps:
            break
        losses.append(loss(model(xb), yb))
        opt.zero_grad()
        model.backward(loss.backward())
        opt.step()
    return losses, opt.flat_data.tobytes()


def test_same_seed_same_bits_on_1_and_2_threads():
    one, two = _train(1), _train(2)
    assert one[0] == two[0]
    assert one[1] == two[1]


def test_every_kernel_of_the_step_runs_on_2_threads():
    fastnn.set_num_threads(2)
    fastnn.manual_seed(1)
    x, y = _data()
    xb, yb = x[:B], y[:B]
    lin, relu, drop = nn.Linear(D, H), nn.ReLU(), nn.Dropout(0.3)
    loss = nn.CrossEntropyLoss()
    h = lin(xb)
    logits = np.random.default_rng(1).standard_normal((B, C)).astype(np.float32)
    g = np.ones((B, H), np.float32)
    opt = optim.Adam(_model().parameters())
    for p in opt.param_groups[0]["params"]:
        p.grad = np.full(p.shape, 1e-3, np.float32)
    loader = fastnn.data.DataLoader(x, y, batch_size=B, shuffle=True, seed=0)

    def fwd_bwd(m, inp, grad):
        def run():
            m(inp)
            m.backward(grad, input_grad=True)
        return run

    def loss_step():
        loss(logits, yb)
        loss.backward()

    calls = {
        "linear forward": lambda: lin.forward(xb),
        "linear forward+backward": fwd_bwd(lin, xb, g),
        "relu forward": lambda: relu.forward(h),
        "relu forward+backward": fwd_bwd(relu, h, g),
        "dropout forward": lambda: drop.forward(h),
        "dropout forward+backward": fwd_bwd(drop, h, g),
        "cross-entropy (fused gradient)": loss_step,
        "adam step": opt.step,
        "data loader batch": lambda: next(iter(loader)),
    }
    lin.clear_contexts()
    idle = [name for name, fn in calls.items() if _ran_on_a_worker(fn) == 0]
    for m in (lin, relu, drop):
        m.clear_contexts()
    assert not idle, f"ran on one thread only: {idle}"
    assert _ran_on_a_worker(lambda: relu.forward(h[:4, :8])) == 0   # the probe can fail


def test_cnn_step_same_bits_on_1_and_2_threads():
    """The BN CNN of the benchmark (direct convolutions, BatchNorm + ReLU
    fused both ways, 2x2 max pooling) at a batch where every layer threads:
    output, input gradient and every parameter gradient bitwise equal."""
    from fastnn import models
    x = np.random.default_rng(0).standard_normal((32, 1, 28, 28)).astype(np.float32)
    outs = []
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        fastnn.manual_seed(0)
        model = models.cnn_bn((1, 28, 28), 10)
        y = model.forward(x)
        model.zero_grad()
        dx = model.backward(np.cos(y), input_grad=True)
        outs.append([y, dx] + [p.grad.copy() for p in model.parameters()])
    assert len(outs[0]) == 2 + len(list(model.parameters()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
