"""Strong scaling of data-parallel training (fastnn.distributed).

One training step (forward, loss, backward with the bucketed gradient
all-reduce, optimizer step) at a fixed *global* batch, as one process with
the whole batch and as K ranks with batch/K each, every rank on
``--threads`` threads (default 1):

    python bench/bench_mpi.py --compare                  # 1 process vs mpiexec -n 2, A/B/A/B
    mpiexec -n 2 python bench/bench_mpi.py --model mlp   # one configuration, JSON on stdout

Models (synthetic MNIST-shaped data, the benchmark suite's definitions):
  mlp        784-1024-1024-10, ReLU, Dropout(0.5), Adam    (train/mlp-large)
  mlp-small  784-256-10, ReLU, SGD(momentum 0.9)            (train/mlp-small)
  lenet      conv5x5-32, pool, conv5x5-64, pool, fc-1024, fc-10, Adam (train/lenet)

Reported per configuration: samples/s (global batch x steps / the slowest
rank's time), ms per step, bytes each rank sends per step (the all-reduced
gradient buffer, which must equal the gradient size), the time per step
spent waiting for the all-reduce after backward, and how many buckets
started while backward was still running.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build(name):
    from fastnn import nn, optim
    from fastnn.benchmark.cases_conv import fastnn_lenet
    if name == "mlp":
        m = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(1024, 10))
        return m, optim.Adam(m.parameters(), lr=1e-3), (784,)
    if name == "mlp-small":
        m = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        return m, optim.SGD(m.parameters(), lr=0.01, momentum=0.9), (784,)
    if name == "lenet":
        m = fastnn_lenet()
        return m, optim.Adam(m.parameters(), lr=1e-3), (1, 28, 28)
    raise SystemExit(f"unknown model {name!r}")


def run(args):
    import fastnn
    from fastnn import distributed as dist
    from fastnn import nn
    dist.init(threads=args.threads)
    k, r = dist.world_size(), dist.rank()
    if args.global_batch % k:
        raise SystemExit(f"--global-batch {args.global_batch} is not a multiple of {k} ranks")
    fastnn.manual_seed(0)
    model, opt, shape = build(args.model)
    ddp = dist.DistributedDataParallel(model, opt, bucket_mb=args.bucket_mb)
    n = args.global_batch * (args.warmup + args.steps)
    rng = np.random.default_rng(1)
    x = rng.random((n,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, n)
    loader = dist.DistributedLoader(x, y, batch_size=args.global_batch // k, seed=0)
    loss = nn.CrossEntropyLoss()
    batches = list(loader)
    for i, (xb, yb) in enumerate(batches):
        if i == args.warmup:
            dist.barrier()
            w0, r0 = ddp.stats["wait_s"], ddp.stats["reduce_s"]
            e0 = ddp.stats["early_buckets"]
            t_opt = 0.0
            t0 = time.perf_counter()
        loss(model(xb), yb)
        opt.zero_grad()
        model.backward(loss.backward())
        t1 = time.perf_counter()
        opt.step()
        if i >= args.warmup:
            t_opt += time.perf_counter() - t1
    t = time.perf_counter() - t0
    wait = (ddp.stats["wait_s"] - w0) / args.steps
    red = (ddp.stats["reduce_s"] - r0) / args.steps
    slowest = dist.all_reduce(np.array([t]), op="max")[0]
    res = {"model": args.model, "ranks": k, "threads": fastnn.get_num_threads(),
           "global_batch": args.global_batch, "steps": args.steps,
           "samples_per_s": args.global_batch * args.steps / slowest,
           "ms_per_step": 1e3 * slowest / args.steps,
           "bytes_per_step": ddp.stats["bytes_per_step"] if k > 1 else 0,
           "gradient_bytes": int(opt.flat_grad.nbytes),
           "parameter_bytes": ddp.gradient_bytes,
           "buckets": ddp.num_buckets, "bucket_mb": args.bucket_mb,
           "early_buckets_per_step": (ddp.stats["early_buckets"] - e0) / args.steps,
           "optimizer_ms_per_step": 1e3 * t_opt / args.steps,
           "wait_ms_per_step": 1e3 * dist.all_reduce(np.array([wait]), op="max")[0],
           "reduce_ms_per_step": 1e3 * dist.all_reduce(np.array([red]), op="max")[0]}
    if r == 0:
        print(json.dumps(res), flush=True)


LINKS = ((10, 20e-6), (100, 5e-6))     # (Gbit/s, per-message latency in s)


def ring_allreduce_s(p, nbytes, gbit, latency):
    """The ring all-reduce cost model: 2(p-1)/p * bytes / bandwidth + 2(p-1) * latency."""
    return 2 * (p - 1) / p * nbytes / (gbit * 1e9 / 8) + 2 * (p - 1) * latency


def projection(rows, ranks=(8, 32, 128)):
    """Weak-scaling efficiency compute / (compute + all-reduce) per rank
    (the per-rank batch fixed), without overlap; in brackets the bound with
    perfect overlap, compute / max(compute, all-reduce)."""
    head = "| model (batch per rank) | compute ms/step | gradient MB |"
    for gbit, lat in LINKS:
        head += "".join(f" {p} ranks {gbit} Gbit/s |" for p in ranks)
    lines = [head, "|---" * (3 + len(ranks) * len(LINKS)) + "|"]
    for model, comp_ms, nbytes, batch in rows:
        line = f"| {model} ({batch}) | {comp_ms:.2f} | {nbytes / 1e6:.2f} |"
        for gbit, lat in LINKS:
            for p in ranks:
                t = ring_allreduce_s(p, nbytes, gbit, lat) * 1e3
                line += f" {comp_ms / (comp_ms + t):.0%} ({min(1, comp_ms / t):.0%}) |"
        lines.append(line)
    return "\n".join(lines)


STEPS = {"mlp": (5, 40), "mlp-small": (20, 400), "lenet": (2, 10)}


def compare(args):
    """1 process vs K ranks, alternating, `--repeats` times; the median of each."""
    from fastnn.runtime import info
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("FASTNN_NUM_THREADS", None)
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = "mpiexec"
    inf = info()
    print(f"# cpu: {inf.get('cpu')}  isa: {inf.get('isa')}  threads per rank: {args.threads}")
    rows = []
    for model in args.models.split(","):
        warm, steps = STEPS[model]
        base = [sys.executable, os.path.abspath(__file__), "--model", model,
                "--global-batch", str(args.global_batch), "--threads", str(args.threads),
                "--bucket-mb", str(args.bucket_mb), "--warmup", str(warm), "--steps", str(steps)]
        res = {1: [], args.ranks: [], "part": []}
        part = list(base)
        part[part.index("--global-batch") + 1] = str(args.global_batch // args.ranks)
        for _ in range(args.repeats):
            for k in (1, args.ranks, "part"):
                cmd = (base if k == 1 else part if k == "part"
                       else [mpiexec, "-n", str(k)] + base)
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                res[k].append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {k: sorted(v, key=lambda d: d["samples_per_s"])[len(v) // 2] for k, v in res.items()}
        one, many = med[1], med[args.ranks]
        # the bound with free communication: K x (one process at the per-rank batch)
        one["bound"] = args.ranks * med["part"]["samples_per_s"] / one["samples_per_s"]
        one["part_ms"] = med["part"]["ms_per_step"]
        spread = [round(d["samples_per_s"]) for d in res[args.ranks]]
        rows.append((model, one, many, spread, [round(d["samples_per_s"]) for d in res[1]]))
    print(f"| model | global batch | 1 x {args.threads} thr samples/s | {args.ranks} ranks x "
          f"{args.threads} thr samples/s | speedup | bound without communication | "
          f"ms/step 1 / {args.ranks} | bytes sent/step "
          f"(= gradient buffer) | all-reduce wait ms/step | optimizer ms/step 1 / {args.ranks} "
          f"| buckets (early/step) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model, one, many, spread, spread1 in rows:
        same = "yes" if many["bytes_per_step"] == many["gradient_bytes"] else "NO"
        print(f"| {model} | {one['global_batch']} | {one['samples_per_s']:,.0f} {spread1} | "
              f"{many['samples_per_s']:,.0f} {spread} | "
              f"{many['samples_per_s'] / one['samples_per_s']:.2f}x | {one['bound']:.2f}x | "
              f"{one['ms_per_step']:.2f} / {many['ms_per_step']:.2f} | "
              f"{many['bytes_per_step']:,} ({same}) | {many['wait_ms_per_step']:.2f} | "
              f"{one['optimizer_ms_per_step']:.2f} / {many['optimizer_ms_per_step']:.2f} | "
              f"{many['buckets']} ({many['early_buckets_per_step']:.0f}) |")
    print()
    print(projection([(m, k["ms_per_step"] - k["wait_ms_per_step"], k["bytes_per_step"],
                       k["global_batch"] // k["ranks"]) for m, _, k, _, _ in rows]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"model": m, "one": o, "many": k} for m, o, k, _, _ in rows], f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mlp", choices=sorted(STEPS))
    p.add_argument("--models", default="mlp,mlp-small,lenet", help="with --compare")
    p.add_argument("--global-batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bucket-mb", type=float, default=4.0)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="with --compare: write the results here")
    args = p.parse_args()
    compare(args) if args.compare else run(args)


if __name__ == "__main__":
    main()
