"""Throughput of fastnn.data.augment's RandomAffine and RandomCrop on an
MNIST-sized batch (128, 1, 28, 28), on 1 and 2 threads, against equivalent
numpy implementations (same semantics: inverse-mapped bilinear warp with
fill outside; pad then crop at per-sample offsets).

    python bench/bench_augment.py [--batch 128] [--size 28] [--channels 1] [--reps 200]
"""
import argparse
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import fastnn
from fastnn.data import augment as A


def numpy_affine(x, angle, scale, tx, ty, fill):
    """The same warp in numpy, vectorised over the batch (float32 maths)."""
    n, c, h, w = x.shape
    pad = 2
    xp = np.full((n, c, h + 2 * pad, w + 2 * pad), fill, dtype=np.float32)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a = np.deg2rad(angle)
    cs, sn = (np.cos(a) / scale).astype(np.float32), (np.sin(a) / scale).astype(np.float32)
    u = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, None, :] - tx.astype(np.float32)[:, None, None]
    v = (np.arange(h, dtype=np.float32) - np.float32(cy))[None, :, None] - ty.astype(np.float32)[:, None, None]
    xs = cs[:, None, None] * u - sn[:, None, None] * v + np.float32(cx)
    ys = sn[:, None, None] * u + cs[:, None, None] * v + np.float32(cy)
    np.clip(xs, -2, w, out=xs)
    np.clip(ys, -2, h, out=ys)
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    wp = w + 2 * pad
    plane_p = (h + 2 * pad) * wp
    # flat index of each output pixel's top-left tap in the padded batch
    idx = ((y0.astype(np.intp) + pad) * wp + (x0.astype(np.intp) + pad)
           + (np.arange(n, dtype=np.intp) * (c * plane_p))[:, None, None])
    flat = xp.reshape(-1)
    out = np.empty_like(x)
    for ch in range(c):
        i = idx + ch * plane_p
        top = (1 - fx) * np.take(flat, i) + fx * np.take(flat, i + 1)
        bot = (1 - fx) * np.take(flat, i + wp) + fx * np.take(flat, i + wp + 1)
        out[:, ch] = (1 - fy) * top + fy * bot
    return out


def numpy_crop(x, size, padding, fill, rng):
    """Pad the batch, then one window per sample (vectorised gather)."""
    n = x.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    nh, nw = xp.shape[2] - size + 1, xp.shape[3] - size + 1
    top, left = rng.integers(0, nh, n), rng.integers(0, nw, n)
    win = sliding_window_view(xp, (size, size), axis=(2, 3))     # (n, c, nh, nw, s, s)
    return win[np.arange(n), :, top, left]                       # (n, c, s, s), a copy


def numpy_crop_loop(x, size, padding, fill, rng):
    """Pad the batch, then slice sample by sample (the usual Python loop)."""
    n = x.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    nh, nw = xp.shape[2] - size + 1, xp.shape[3] - size + 1
    top, left = rng.integers(0, nh, n), rng.integers(0, nw, n)
    out = np.empty(x.shape[:2] + (size, size), dtype=x.dtype)
    for i in range(n):
        out[i] = xp[i, :, top[i]:top[i] + size, left[i]:left[i] + size]
    return out


def best(f, reps):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts), float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--reps", type=int, default=200)
    a = ap.parse_args()
    n, s, c = a.batch, a.size, a.channels
    x = np.random.default_rng(0).random((n, c, s, s), dtype=np.float32)
    rng = np.random.default_rng(1)
    affine = A.RandomAffine(15, (0.1, 0.1), (0.9, 1.1), seed=0)
    crop = A.RandomCrop(s, padding=2, seed=0)
    y = affine(x)
    p = affine.last_params
    err = float(np.abs(numpy_affine(x, p["angle"], p["scale"], p["tx"], p["ty"], 0.0) - y).max())
    print(f"batch ({n}, {c}, {s}, {s}); numpy twin max |diff| = {err:.2e}; "
          f"best / median of {a.reps}, images/s from the best")
    rows = []
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        rows.append((f"RandomAffine fastnn, {threads} thread(s)", best(lambda: affine(x), a.reps)))
        rows.append((f"RandomCrop   fastnn, {threads} thread(s)", best(lambda: crop(x), a.reps)))
    rows.append(("RandomAffine numpy (vectorised)", best(
        lambda: numpy_affine(x, p["angle"], p["scale"], p["tx"], p["ty"], 0.0), a.reps)))
    rows.append(("RandomCrop   numpy (vectorised)", best(lambda: numpy_crop(x, s, 2, 0.0, rng), a.reps)))
    rows.append(("RandomCrop   numpy (loop)", best(lambda: numpy_crop_loop(x, s, 2, 0.0, rng), a.reps)))
    for name, (tb, tm) in rows:
        print(f"{name:40s} {tb * 1e6:9.1f} us  {tm * 1e6:9.1f} us  {n / tb:12,.0f} img/s")


if __name__ == "__main__":
    main()
