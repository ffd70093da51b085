"""Paired A/B of two fastnn builds on one noisy machine.

    python bench/ab_builds.py OLD_TREE NEW_TREE [--rounds 15] [--threads 1,2]
                              [--only SUBSTR,...] [--shapes OP:MxNxK,...]

Each tree is a source checkout with its extension built in place. One worker
process per tree imports that tree's fastnn; the driver asks them in turn
(old, new, new, old, ...) to time each workload for a few repetitions and
keeps the best of each turn, so slow drifts of the machine hit both builds
alike. Reported per workload: the median over rounds of the paired time
ratio new/old (below 1: the new build is faster) and its quartiles. The
workloads are the benchmark's kernel and training shapes, written with the
public API only, so they run on any fastnn version since the first wave.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r'''
import json, sys, time
import numpy as np
import fastnn
from fastnn import nn, optim, ops

rng = np.random.default_rng(0)
W = {}

def mm(m, n, k, ta=False, tb=False):
    a = rng.random((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.random((n, k) if tb else (k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    a = a.T if ta else a
    b = b.T if tb else b
    return lambda: ops.matmul(a, b, out=out)

NEW_API = hasattr(fastnn, "no_grad")      # contexts, input gradient only when asked

def act(name):
    """Forward and backward (with dL/dx), as the bench's act cases."""
    x = rng.standard_normal((256, 4096), dtype=np.float32)
    g = rng.standard_normal((256, 4096), dtype=np.float32)
    m = getattr(nn, name)()
    kw = {"input_grad": True} if NEW_API else {}
    def f():
        m(x)
        m.backward(g, **kw)
    return f

def adam(n):
    p = nn.Parameter(np.zeros(n, np.float32))
    opt = optim.Adam([p], lr=1e-3)
    g = rng.standard_normal(n, dtype=np.float32)
    def f():
        p.grad[...] = g
        opt.step()
    return f

def xent():
    x = rng.standard_normal((1024, 1000), dtype=np.float32)
    y = rng.integers(0, 1000, 1024)
    crit = nn.CrossEntropyLoss()
    def f():
        crit(x, y)
        crit.backward()
    return f

def train(model, x, y, opt="adam"):
    opt = (optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if opt == "sgd"
           else optim.Adam(model.parameters(), lr=1e-3))
    crit = nn.CrossEntropyLoss()
    def f():
        out = model(x)
        crit(out, y)
        opt.zero_grad()
        model.backward(crit.backward())
        opt.step()
    return f

def mlp(hidden, p, opt_name, batch):
    fastnn.manual_seed(0)
    layers, prev = [], 784
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()] + ([nn.Dropout(p)] if p else [])
        prev = h
    model = nn.Sequential(*layers, nn.Linear(prev, 10))
    if hasattr(model, "input_grad"):
        model.input_grad = False          # the old build's flag; the new one skips dX by itself
    x = rng.random((batch, 784), dtype=np.float32)
    return train(model, x, rng.integers(0, 10, batch), opt_name)

def cnn(kind, batch):
    fastnn.manual_seed(0)
    C, P, R = nn.Conv2d, nn.MaxPool2d, nn.ReLU
    if kind == "lenet":
        m = nn.Sequential(C(1, 32, 5, padding=2), R(), P(2), C(32, 64, 5, padding=2), R(), P(2),
                          nn.Flatten(), nn.Linear(3136, 1024), R(), nn.Linear(1024, 10))
    else:
        B = nn.BatchNorm2d
        m = nn.Sequential(C(1, 32, 3, padding=1, bias=False), B(32), R(),
                          C(32, 32, 3, padding=1, bias=False), B(32), R(), P(2),
                          C(32, 64, 3, padding=1, bias=False), B(64), R(), P(2),
                          nn.Flatten(), nn.Linear(3136, 128), R(), nn.Linear(128, 10))
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    return train(m, x, rng.integers(0, 10, batch))

def layer(mod, shape):
    x = rng.standard_normal(shape, dtype=np.float32)
    mod.train()
    g = rng.standard_normal(mod(x).shape, dtype=np.float32)
    kw = {"input_grad": True} if NEW_API else {}
    def f():
        mod(x)
        mod.backward(g, **kw)
    return f

def rnn(kind, batch):
    fastnn.manual_seed(0)
    m = nn.Sequential(getattr(nn, kind)(28, 128, batch_first=True), nn.LastStep(),
                      nn.Linear(128, 10))
    x = rng.random((batch, 28, 28), dtype=np.float32)
    return train(m, x, rng.integers(0, 10, batch))

MAKERS = {
    "matmul 1024^3": lambda: mm(1024, 1024, 1024),
    "matmul 2048^3": lambda: mm(2048, 2048, 2048),
    "matmul 256x1024x1024 NN": lambda: mm(256, 1024, 1024),
    "matmul 256x256x1024 NT": lambda: mm(256, 256, 1024, tb=True),
    "matmul 64x1024x1024 NT": lambda: mm(64, 1024, 1024, tb=True),
    "matmul 128x512x512 NN": lambda: mm(128, 512, 512),
    "matmul 128x1024x784 NT (fwd)": lambda: mm(128, 1024, 784, tb=True),
    "matmul 64x256x784 NT (fwd 784->256)": lambda: mm(64, 256, 784, tb=True),
    "matmul 128x256x1024 NT (fwd 1024->256)": lambda: mm(128, 256, 1024, tb=True),
    "matmul 1024x784x128 TN (dW)": lambda: mm(1024, 784, 128, ta=True),
    "matmul 1024x784x64 TN (dW b64)": lambda: mm(1024, 784, 64, ta=True),
    "matmul 1024x1024x64 TN (dW b64)": lambda: mm(1024, 1024, 64, ta=True),
    "matmul 1024x1024x128 TN (dW b128)": lambda: mm(1024, 1024, 128, ta=True),
    "matmul 128x1024x1024 NT (fwd 1024->1024)": lambda: mm(128, 1024, 1024, tb=True),
    "matmul 256x1024x1024 NT (fwd b256)": lambda: mm(256, 1024, 1024, tb=True),
    "matmul 64x1024x1024 NN (dX b64)": lambda: mm(64, 1024, 1024),
    "matmul 256x3136x1024 NN (dX conv-fc)": lambda: mm(256, 3136, 1024),
    "matmul 256x784x64 TN (dW 784->256 b64)": lambda: mm(256, 784, 64, ta=True),
    "matmul 128x784x1024 NN (dX)": lambda: mm(128, 784, 1024),
    "matmul 128x10x1024 NT (out)": lambda: mm(128, 10, 1024, tb=True),
    "matmul 128x256x10 NN (out dX)": lambda: mm(128, 256, 10),
    "matmul 64x1024x10 TN (out dX)": lambda: mm(64, 1024, 10, ta=True),
    "matmul 256x256x10 TN (out dX)": lambda: mm(256, 256, 10, ta=True),
    "matmul 64x1024x10 NN (out dX)": lambda: mm(64, 1024, 10),
    "matmul 256x1024x10 NT (out dX)": lambda: mm(256, 1024, 10, tb=True),
    "matmul 64x10x256 NT (out b64)": lambda: mm(64, 10, 256, tb=True),
    "matmul 1x1024x784 NT (batch 1)": lambda: mm(1, 1024, 784, tb=True),
    "relu 256x4096": lambda: act("ReLU"),
    "gelu 256x4096": lambda: act("GELU"),
    "sigmoid 256x4096": lambda: act("Sigmoid"),
    "cross-entropy 1024x1000 fwd+bwd": xent,
    "adam step 1M": lambda: adam(1 << 20),
    "train mlp-small b64 (SGD)": lambda: mlp((256,), 0.0, "sgd", 64),
    "train mlp-large b128 (dropout, Adam)": lambda: mlp((1024, 1024), 0.5, "adam", 128),
    "conv 32->64 k5 14px b64 fwd+bwd": lambda: layer(nn.Conv2d(32, 64, 5, padding=2), (64, 32, 14, 14)),
    "conv 32->32 k3 28px b128 fwd+bwd": lambda: layer(nn.Conv2d(32, 32, 3, padding=1), (128, 32, 28, 28)),
    "conv 1->32 k5 28px b64 fwd+bwd": lambda: layer(nn.Conv2d(1, 32, 5, padding=2), (64, 1, 28, 28)),
    "maxpool2 64x32x28x28 fwd+bwd": lambda: layer(nn.MaxPool2d(2), (64, 32, 28, 28)),
    "batchnorm2d 128x32x28x28 fwd+bwd": lambda: layer(nn.BatchNorm2d(32), (128, 32, 28, 28)),
    "train lenet b64 (Adam)": lambda: cnn("lenet", 64),
    "train bn-cnn b128 (Adam)": lambda: cnn("bn", 128),
    "train seq-mnist lstm-128 b64 (Adam)": lambda: rnn("LSTM", 64),
    "train seq-mnist gru-128 b64 (Adam)": lambda: rnn("GRU", 64),
}

for line in sys.stdin:
    req = json.loads(line)
    fastnn.set_num_threads(req["threads"])
    key = (req["name"], req["threads"])
    if key not in W:
        if req["name"] in MAKERS:
            W[key] = MAKERS[req["name"]]()
        else:                               # "gemm OP MxNxK" from --shapes
            op, shape = req["name"].split()[1:]
            m, n, k = map(int, shape.split("x"))
            W[key] = mm(m, n, k, ta=op[0] == "T", tb=op[1] == "T")
        for _ in range(3):
            W[key]()
    f, best = W[key], float("inf")
    t_end = time.perf_counter() + req["budget"]
    reps = 0
    while reps < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    print(json.dumps({"best": best}), flush=True)
'''

NAMES = None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--budget", type=float, default=0.05, help="seconds per turn")
    ap.add_argument("--only", default=None,
                    help="comma-separated substrings: only the workloads whose name has one")
    ap.add_argument("--shapes", default=None,
                    help="comma-separated products OP:MxNxK (e.g. TN:1024x1024x64) timed as "
                         "ops.matmul workloads of their own, instead of the list (with --only, "
                         "besides the workloads it selects)")
    args = ap.parse_args(argv)
    procs = {}
    for tag, tree in (("old", args.old), ("new", args.new)):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
        procs[tag] = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env,
                                      cwd=os.path.abspath(tree))
    names = [n for n in WORKER.split("\nMAKERS = {")[1].split("}\n")[0].splitlines()
             if n.strip().startswith('"')]
    names = [n.strip().split('":')[0].strip('"') for n in names]
    if args.only:
        names = [n for n in names if any(k in n for k in args.only.split(","))]
    if args.shapes:
        extra = []
        for item in args.shapes.split(","):
            op, _, shape = item.partition(":")
            if op not in ("NN", "NT", "TN", "TT") or len(shape.split("x")) != 3:
                ap.error(f"--shapes: {item!r} is not OP:MxNxK with OP one of NN NT TN TT")
            extra.append(f"gemm {op} {shape}")
        names = (names if args.only else []) + extra

    def ask(tag, name, threads):
        p = procs[tag]
        p.stdin.write(json.dumps({"name": name, "threads": threads, "budget": args.budget}) + "\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())["best"]

    import fastnn
    print(f"cpu: {fastnn.info()['cpu']}  paired rounds: {args.rounds}  "
          f"turn budget: {args.budget * 1e3:.0f} ms")
    print(f"{'workload':40s} thr   old best   new best   new/old median [q1, q3]")
    for threads in [int(t) for t in args.threads.split(",")]:
        for name in names:
            ratios, olds, news = [], [], []
            for r in range(args.rounds):
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                got = {tag: ask(tag, name, threads) for tag in order}
                olds.append(got["old"])
                news.append(got["new"])
                ratios.append(got["new"] / got["old"])
            q = statistics.quantiles(ratios, n=4)
            print(f"{name:40s} {threads:3d} {1e3 * min(olds):8.3f}ms {1e3 * min(news):8.3f}ms"
                  f"   {statistics.median(ratios):.3f} [{q[0]:.3f}, {q[2]:.3f}]", flush=True)
    for p in procs.values():
        p.stdin.close()
        p.wait()


if __name__ == "__main__":
    main()
