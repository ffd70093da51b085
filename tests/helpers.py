"""Shared test helpers: finite-difference gradient checks and data paths.

Import as ``from helpers import ...`` (pytest puts tests/ on sys.path)."""
import os

import numpy as np

from fastnn import no_grad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_DIR = os.environ.get("FASTNN_MNIST_DIR",
                           os.path.join(ROOT, "..", "shared", "data", "mnist"))


def have_mnist():
    return os.path.exists(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz"))


def numeric_grad(f, x, eps=1e-3):
    """Central differences of scalar f() with respect to array x (modified in
    place and restored), evaluated in float64 around float32 storage."""
    g = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f())
        flat[i] = old - eps
        fm = float(f())
        flat[i] = old
        gf[i] = (fp - fm) / (2 * eps)
    return g


def check_module_grads(module, x, rtol=2e-2, atol=2e-3, eps=1e-3, seed=0):
    """Finite-difference check of a Module's backward: the gradient of
    L = sum(w * module(x)) for a fixed random w, with respect to x and every
    parameter. Returns nothing; asserts."""
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float32, order="C")   # numeric_grad edits x through reshape(-1)
    y = module.forward(x)
    w = rng.standard_normal(np.shape(y)).astype(np.float32)

    def loss():
        with no_grad():
            return np.sum(w.astype(np.float64) * module.forward(x).astype(np.float64))

    module.zero_grad()
    module.clear_contexts()
    module.forward(x)
    dx = module.backward(w.copy(), input_grad=True)
    analytic = {name: p.grad.copy() for name, p in module.named_parameters()}
    np.testing.assert_allclose(dx, numeric_grad(loss, x, eps), rtol=rtol, atol=atol,
                               err_msg=f"{type(module).__name__}: d/dx")
    for name, p in module.named_parameters():
        np.testing.assert_allclose(analytic[name], numeric_grad(loss, p.data, eps),
                                   rtol=rtol, atol=atol,
                                   err_msg=f"{type(module).__name__}: d/d{name}")
