"""Kernel benchmark cases: SGEMM now; activations, losses, optimizer steps,
convolution and batch norm as soon as their modules exist in the installed
fastnn (each family is guarded, so the suite grows as layers land).

GEMM shapes
  squares     n x n x n, n in SQUARES (4096 only outside --quick; 4096 without
              the portable path, 7 s a call on 1 thread, 2048 measures it)
  training    the three products of a fully-connected layer with `I` inputs,
              `O` outputs and batch `B`, with each dimension in its real role:
                NT  forward        y (B,O)  = x (B,I)  . W (O,I)^T   M=B N=O K=I
                NN  input grad     dx (B,I) = dy (B,O) . W (O,I)     M=B N=I K=O
                TN  weight grad    dW (O,I) = dy (B,O)^T . x (B,I)   M=O N=I K=B
              for B in BATCHES and (I, O) in LAYERS.
  output      the output layer's forward product with 10 classes, C (B,10) =
              op(x) op(W), in all four transpose cases (NT is the layer's own),
              for B in BATCHES and I in OUTPUT_INPUTS; and, as output-k, its
              input gradient's shape with K = 10, C (B,I) = op(dy) op(W)
              (NN is the layer's own), likewise (target T13).
  rows        inference with few rows: the forward y (B,O) = x (B,I) . W (O,I)^T
              for B in ROW_BATCHES (batch 1: numpy calls sgemv) and the first
              two LAYERS.
Every implementation writes into a preallocated output (out=), so only the
product is timed."""
import numpy as np

import fastnn
from fastnn import ops

from .harness import Case, register

SQUARES = (256, 512, 1024, 2048, 4096)
QUICK_SQUARES = (256, 512, 1024, 2048)
BATCHES = (64, 128, 256)
QUICK_BATCHES = (128,)
# (inputs, outputs) of the layers: MNIST MLP 784 -> 1024, hidden 1024 -> 1024,
# a conv net's flattened 64x7x7 = 3136 -> 1024, and a 1024 -> 256 bottleneck.
LAYERS = ((784, 1024), (1024, 1024), (3136, 1024), (1024, 256))
# inputs of a 10-class output layer: 784-256-10 and 784-1024-1024-10
OUTPUT_INPUTS = (256, 1024)
CLASSES = 10
ROW_BATCHES = (1, 4, 16, 32)

OPS = {
    "NT": ("forward y = x W^T", False, True),
    "NN": ("input grad dx = dy W", False, False),
    "TN": ("weight grad dW = dy^T x", True, False),
}


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def gemm_setup(op, M, N, K):
    """setup(want) for C (M,N) = op(A) op(B) with the storage of `op`."""
    _, ta, tb = OPS.get(op, (None, op[0] == "T", op[1] == "T"))

    def setup(want):
        a = _rand((K, M) if ta else (M, K), 1)
        b = _rand((N, K) if tb else (K, N), 2)
        c = np.empty((M, N), np.float32)
        impls = {"fastnn": lambda: ops.matmul(a, b, trans_a=ta, trans_b=tb, out=c)}
        av, bv = (a.T if ta else a), (b.T if tb else b)
        if "numpy" in want:
            cn = np.empty((M, N), np.float32)
            impls["numpy"] = lambda: np.matmul(av, bv, out=cn)
        if "torch" in want:
            torch = _torch()
            if torch is not None:
                at, bt = torch.from_numpy(a), torch.from_numpy(b)
                atv, btv = (at.t() if ta else at), (bt.t() if tb else bt)
                ct = torch.empty((M, N), dtype=torch.float32)
                impls["torch"] = lambda: torch.mm(atv, btv, out=ct)
        return impls
    return setup


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def register_gemm():
    for n in SQUARES:
        register(Case(f"matmul/square/{n}", group="matmul-square", unit="flop",
                      work=2.0 * n * n * n, setup=gemm_setup("NN", n, n, n),
                      params={"M": n, "N": n, "K": n, "op": "NN", "shape": f"{n}^3"},
                      isa_sensitive=True, quick=n in QUICK_SQUARES,
                      skip_isas=("ref",) if n > 2048 else (),
                      description=f"C = A B, {n} x {n} squares"))
    for op, (role, ta, tb) in OPS.items():
        for B in BATCHES:
            for I, O in LAYERS:
                M, N, K = {"NT": (B, O, I), "NN": (B, I, O), "TN": (O, I, B)}[op]
                register(Case(f"matmul/train/{op}/b{B}-{I}x{O}", group="matmul-train",
                              unit="flop", work=2.0 * M * N * K, setup=gemm_setup(op, M, N, K),
                              params={"M": M, "N": N, "K": K, "op": op, "batch": B,
                                      "layer": f"{I}->{O}", "role": role,
                                      "shape": f"{M}x{N}x{K}"},
                              isa_sensitive=True, quick=B in QUICK_BATCHES,
                              description=f"{role}, layer {I}->{O}, batch {B}"))
    for op in ("NN", "NT", "TN", "TT"):
        for B in BATCHES:
            for I in OUTPUT_INPUTS:
                # the forward's shape, N = 10, and its input gradient's, K = 10:
                # dx (B,I) = dy (B,10) . W (10,I)
                for kind, (M, N, K), note in (("output", (B, CLASSES, I), ""),
                                              ("output-k", (B, I, CLASSES), ", K = 10")):
                    register(Case(f"matmul/{kind}/{op}/b{B}-{I}x{CLASSES}",
                                  group="matmul-output", unit="flop", work=2.0 * M * N * K,
                                  setup=gemm_setup(op, M, N, K),
                                  params={"M": M, "N": N, "K": K, "op": op, "batch": B,
                                          "layer": f"{I}->{CLASSES}", "shape": f"{M}x{N}x{K}"},
                                  isa_sensitive=True, quick=B in QUICK_BATCHES,
                                  description=f"output layer {I}->{CLASSES}{note} ({op}), "
                                              f"batch {B}"))

    for B in ROW_BATCHES:
        for I, O in LAYERS[:2]:
            M, N, K = B, O, I
            register(Case(f"matmul/rows/NT/b{B}-{I}x{O}", group="matmul-rows", unit="flop",
                          work=2.0 * M * N * K, setup=gemm_setup("NT", M, N, K),
                          params={"M": M, "N": N, "K": K, "op": "NT", "batch": B,
                                  "layer": f"{I}->{O}", "shape": f"{M}x{N}x{K}"},
                          isa_sensitive=True, quick=B == 1,
                          description=f"inference y = x W^T, layer {I}->{O}, batch {B}"))


register_gemm()


# --------------------------------------------------------------------------
# Layer families, registered only when the installed fastnn has them. Each
# setup runs every implementation once before returning it, so an API
# mismatch shows up as a skipped case with the error, never as a crash.
# Convention assumed (fastnn.nn.Module): y = m.forward(x) caches what
# backward needs; dx = m.backward(dy, input_grad=True); parameter grads accumulate.

def _nn():
    return getattr(fastnn, "nn", None)


def _module_fwd_bwd(make_fastnn, make_torch, x_shape, numpy_impl=None, seed=3):
    """setup(want) timing forward + backward of one layer on one batch."""
    def setup(want):
        x = _rand(x_shape, seed)
        m = make_fastnn()
        y = m.forward(x)
        g = _rand(np.shape(y), seed + 1)
        m.backward(g, input_grad=True)

        def run_fastnn():
            m.forward(x)
            m.backward(g, input_grad=True)      # as torch: x requires grad
        impls = {"fastnn": run_fastnn}
        if numpy_impl is not None and "numpy" in want:
            impls["numpy"] = numpy_impl(x, g)
        if make_torch is not None and "torch" in want:
            torch = _torch()
            if torch is not None:
                mt = make_torch(torch)
                xt = torch.from_numpy(x.copy()).requires_grad_(True)
                gt = torch.from_numpy(g.copy())

                def run_torch():
                    xt.grad = None
                    mt(xt).backward(gt)
                run_torch()
                impls["torch"] = run_torch
        for f in impls.values():
            f()
        return impls
    return setup


def _numpy_relu(x, g):
    y = np.empty_like(x)
    dx = np.empty_like(x)

    def run():
        np.maximum(x, 0.0, out=y)
        np.multiply(g, y > 0.0, out=dx)
    return run


def _numpy_sigmoid(x, g):
    y = np.empty_like(x)
    dx = np.empty_like(x)

    def run():
        np.negative(x, out=y)
        np.exp(y, out=y)
        np.add(y, 1.0, out=y)
        np.reciprocal(y, out=y)
        np.subtract(1.0, y, out=dx)
        np.multiply(dx, y, out=dx)
        np.multiply(dx, g, out=dx)
    return run


def _numpy_tanh(x, g):
    y = np.empty_like(x)
    dx = np.empty_like(x)

    def run():
        np.tanh(x, out=y)
        np.multiply(y, y, out=dx)
        np.subtract(1.0, dx, out=dx)
        np.multiply(dx, g, out=dx)
    return run


ACT_SHAPE = (256, 4096)          # one batch of a wide hidden layer
ACTIVATIONS = {                  # fastnn.nn class -> (torch module name, numpy twin)
    "ReLU": ("ReLU", _numpy_relu),
    "Sigmoid": ("Sigmoid", _numpy_sigmoid),
    "Tanh": ("Tanh", _numpy_tanh),
    "GELU": ("GELU", None),
    "SiLU": ("SiLU", None),
    "LeakyReLU": ("LeakyReLU", None),
    "ELU": ("ELU", None),
}


def register_activations():
    nn = _nn()
    if nn is None:
        return
    n = ACT_SHAPE[0] * ACT_SHAPE[1]
    for cls, (tname, np_impl) in ACTIVATIONS.items():
        if not hasattr(nn, cls):
            continue
        # forward reads x, writes y; backward reads dy and x or y, writes dx
        register(Case(f"act/{cls.lower()}/{ACT_SHAPE[0]}x{ACT_SHAPE[1]}", group="activation",
                      unit="byte", work=20.0 * n,
                      setup=_module_fwd_bwd(lambda c=cls: getattr(nn, c)(),
                                            lambda torch, t=tname: getattr(torch.nn, t)(),
                                            ACT_SHAPE, np_impl),
                      params={"shape": f"{ACT_SHAPE[0]}x{ACT_SHAPE[1]}", "layer": cls},
                      description=f"{cls} forward + backward (20 bytes per element)"))


LOSS_SHAPE = (256, 1000)


def register_losses():
    nn = _nn()
    if nn is None or not hasattr(nn, "CrossEntropyLoss"):
        return
    B, C = LOSS_SHAPE

    def setup(want):
        logits = _rand((B, C), 5)
        target = np.random.default_rng(6).integers(0, C, B).astype(np.int64)
        crit = nn.CrossEntropyLoss()
        crit(logits, target)
        crit.backward()

        def run_fastnn():
            crit(logits, target)
            crit.backward()
        impls = {"fastnn": run_fastnn}
        if "torch" in want:
            torch = _torch()
            if torch is not None:
                lt = torch.from_numpy(logits.copy()).requires_grad_(True)
                tt = torch.from_numpy(target)
                ct = torch.nn.CrossEntropyLoss()

                def run_torch():
                    lt.grad = None
                    ct(lt, tt).backward()
                run_torch()
                impls["torch"] = run_torch
        return impls
    # log-softmax reads logits twice, backward reads them once more and writes the grad
    register(Case(f"loss/cross_entropy/{B}x{C}", group="loss", unit="byte",
                  work=16.0 * B * C, setup=setup, params={"shape": f"{B}x{C}"},
                  description="CrossEntropyLoss forward + backward (16 bytes per logit)"))


MEGA = 1 << 20
OPT_SIZES = (MEGA,)                  # about one million parameters in four tensors
ADAM_TARGET_SIZE = 10 * MEGA         # the optimizer issue's target: an Adam step over 10M


def register_optimizers():
    try:
        from fastnn import optim
    except ImportError:
        return
    nn = _nn()
    # (class, kwargs -- torch.optim's defaults otherwise, bytes per parameter moved, sizes)
    specs = [("SGD", {"lr": 0.01, "momentum": 0.9}, 20, OPT_SIZES),
             ("Adam", {"lr": 1e-3}, 28, OPT_SIZES + (ADAM_TARGET_SIZE,)),
             ("AdamW", {"lr": 1e-3, "weight_decay": 0.01}, 28, OPT_SIZES)]
    for cls, kw, bpp, sizes in specs:
        if not hasattr(optim, cls):
            continue
        for n in sizes:
            def setup(want, cls=cls, kw=kw, n=n):
                shapes = [(n // 4 // 256, 256)] * 4     # n is a multiple of 1024
                params = [nn.Parameter(_rand(s, 10 + i)) for i, s in enumerate(shapes)]
                for i, p in enumerate(params):
                    p.grad[...] = _rand(p.shape, 20 + i) * 1e-3
                opt = getattr(optim, cls)(params, **kw)
                opt.step()
                impls = {"fastnn": opt.step}
                if "torch" in want:
                    torch = _torch()
                    if torch is not None:
                        tps = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]
                        for tp, p in zip(tps, params):
                            tp.grad = torch.from_numpy(p.grad.copy())
                        topt = getattr(torch.optim, cls)(tps, **kw)
                        topt.step()
                        impls["torch"] = topt.step
                return impls
            register(Case(f"optim/{cls.lower()}/{n}", group="optimizer", unit="byte",
                          work=float(bpp) * n, setup=setup,
                          params={"params": n, "optimizer": cls},
                          description=f"{cls} step over {n} parameters ({bpp} bytes each)"))


def register_conv_bn():
    nn = _nn()
    if nn is None:
        return
    # (batch, in channels, out channels, size, kernel, padding): a small conv net
    convs = [(64, 1, 32, 28, 3, 1), (64, 32, 64, 14, 3, 1)]
    if hasattr(nn, "Conv2d"):
        for (B, Ci, Co, H, k, pad) in convs:
            Ho = H + 2 * pad - k + 1
            fwd = 2.0 * B * Co * Ho * Ho * Ci * k * k
            register(Case(f"conv/conv2d/b{B}-{Ci}to{Co}-{H}px-k{k}", group="conv",
                          unit="flop", work=3.0 * fwd,   # forward, input grad, weight grad
                          setup=_module_fwd_bwd(
                              lambda Ci=Ci, Co=Co, k=k, pad=pad: nn.Conv2d(Ci, Co, k, padding=pad),
                              lambda torch, Ci=Ci, Co=Co, k=k, pad=pad:
                                  torch.nn.Conv2d(Ci, Co, k, padding=pad),
                              (B, Ci, H, H)),
                          params={"shape": f"{B}x{Ci}x{H}x{H}", "layer": f"{Ci}->{Co} k{k}"},
                          isa_sensitive=True,
                          description="Conv2d forward + backward (3x the forward flops)"))
    if hasattr(nn, "BatchNorm2d"):
        B, C, H = 64, 32, 28
        n = B * C * H * H
        register(Case(f"norm/batchnorm2d/{B}x{C}x{H}x{H}", group="norm", unit="byte",
                      work=28.0 * n,    # fwd: 2 reads + write; bwd: 2 reads x2 + write
                      setup=_module_fwd_bwd(lambda: nn.BatchNorm2d(C),
                                            lambda torch: torch.nn.BatchNorm2d(C),
                                            (B, C, H, H)),
                      params={"shape": f"{B}x{C}x{H}x{H}"},
                      description="BatchNorm2d training forward + backward (28 bytes per element)"))


register_activations()
register_losses()
register_optimizers()
register_conv_bn()
