"""Normalisation cases: BatchNorm2d at the issue's target shape and LayerNorm
at a transformer-like shape, training forward + backward (input gradient
included, as torch with x.requires_grad), fastnn against torch.

norm/batchnorm2d/128x32x28x28   issue 12's target: >= 2x torch at 2 threads
norm/batchnorm1d/4096x256       (N, C) layout
norm/layernorm/32x128x512       rows of 512 (a transformer block's width)

Work is counted in bytes: the forward reads x and writes y (plus a re-read
of x from cache), the backward reads x and dy twice and writes dx: 28
bytes per element, as cases_kernels' BatchNorm2d case counts it."""
import numpy as np

from .cases_kernels import _module_fwd_bwd, _nn
from .harness import Case, register

BN2D = (128, 32, 28, 28)
BN1D = (4096, 256)
LN = (32, 128, 512)


def register_norm():
    nn = _nn()
    if nn is None or not hasattr(nn, "BatchNorm2d"):
        return
    cases = [
        ("batchnorm2d", BN2D, lambda: nn.BatchNorm2d(BN2D[1]),
         lambda torch: torch.nn.BatchNorm2d(BN2D[1])),
        ("batchnorm1d", BN1D, lambda: nn.BatchNorm1d(BN1D[1]),
         lambda torch: torch.nn.BatchNorm1d(BN1D[1])),
        ("layernorm", LN, lambda: nn.LayerNorm(LN[-1]),
         lambda torch: torch.nn.LayerNorm(LN[-1])),
    ]
    for name, shape, make, make_torch in cases:
        text = "x".join(map(str, shape))
        register(Case(f"norm/{name}/{text}", group="norm", unit="byte",
                      work=28.0 * float(np.prod(shape)),
                      setup=_module_fwd_bwd(make, make_torch, shape),
                      params={"shape": text, "layer": name},
                      quick=name != "batchnorm1d",
                      description=f"{name} training forward + backward (28 bytes per element)"))


register_norm()
