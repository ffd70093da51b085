# Batch norm and layer norm (csrc/norm.c). Every array is checked here
# (runtime.pxi's _f32: float32, C-contiguous, sizes from the explicit
# dimensions, outputs writeable); gamma/beta and optional outputs may be None.

cdef extern from "fastnn.h" nogil:
    int fnn_batchnorm_forward(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, const float *x,
                              const float *gamma, const float *beta, double eps, float *y,
                              float *mean, float *var, float *invstd, int relu)
    int fnn_batchnorm_forward_eval(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, const float *x,
                                   const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var,
                                   double eps, float *y, int relu)
    int fnn_batchnorm_backward(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, const float *x,
                               const float *dy, const float *mean, const float *invstd,
                               const float *gamma, const float *beta, int relu, float *dgamma,
                               float *dbeta, float *dx)
    int fnn_layernorm_forward(Py_ssize_t R, Py_ssize_t D, const float *x, const float *gamma,
                              const float *beta, double eps, float *y, float *mean,
                              float *rstd)
    int fnn_layernorm_backward(Py_ssize_t R, Py_ssize_t D, const float *x, const float *dy,
                               const float *mean, const float *rstd, const float *gamma,
                               float *dgamma, float *dbeta, float *dx)
    void fnn_batchnorm_forward_naive(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, const float *x,
                                     const float *gamma, const float *beta, double eps,
                                     float *y, float *mean, float *var, float *invstd)
    void fnn_batchnorm_backward_naive(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
                                      const float *x, const float *dy, const float *mean,
                                      const float *invstd, const float *gamma, float *dgamma,
                                      float *dbeta, float *dx)
    void fnn_layernorm_forward_naive(Py_ssize_t R, Py_ssize_t D, const float *x,
                                     const float *gamma, const float *beta, double eps,
                                     float *y, float *mean, float *rstd)
    void fnn_layernorm_backward_naive(Py_ssize_t R, Py_ssize_t D, const float *x,
                                      const float *dy, const float *mean, const float *rstd,
                                      const float *gamma, float *dgamma, float *dbeta,
                                      float *dx)


cdef int _dims(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) except -1:
    if a < 0 or b < 1 or c < 0:
        raise ValueError(f"norm: bad dimensions ({a}, {b}, {c})")
    return 0


cdef int _eps(double eps) except -1:
    if not eps > 0.0:
        raise ValueError(f"norm: eps must be > 0, got {eps}")
    return 0


def batchnorm_forward(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, x, gamma, beta, double eps,
                      y, mean, var, invstd, bint naive=False, bint relu=False):
    """Training forward over x (N, C, S); gamma/beta (C) or None; relu: a
    following ReLU fused (not for naive)."""
    _dims(N, C, S)
    _eps(eps)
    cdef Py_ssize_t n = N * C * S
    cdef const float *px = _f32(x, "x", n)
    cdef const float *pg = _f32(gamma, "gamma", C, False, True)
    cdef const float *pb = _f32(beta, "beta", C, False, True)
    cdef float *py = _f32(y, "y", n, True)
    cdef float *pm = _f32(mean, "mean", C, True)
    cdef float *pv = _f32(var, "var", C, True)
    cdef float *ps = _f32(invstd, "invstd", C, True)
    cdef int st = 0
    if N * S == 0:
        raise ValueError("batchnorm_forward: no values per channel")
    with nogil:
        if naive:
            fnn_batchnorm_forward_naive(N, C, S, px, pg, pb, eps, py, pm, pv, ps)
        else:
            st = fnn_batchnorm_forward(N, C, S, px, pg, pb, eps, py, pm, pv, ps, relu)
    check_status(st)


def batchnorm_forward_eval(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, x, gamma, beta,
                           running_mean, running_var, double eps, y, bint relu=False):
    """Eval forward with running statistics (C each)."""
    _dims(N, C, S)
    _eps(eps)
    cdef Py_ssize_t n = N * C * S
    cdef const float *px = _f32(x, "x", n)
    cdef const float *pg = _f32(gamma, "gamma", C, False, True)
    cdef const float *pb = _f32(beta, "beta", C, False, True)
    cdef const float *pm = _f32(running_mean, "running_mean", C)
    cdef const float *pv = _f32(running_var, "running_var", C)
    cdef float *py = _f32(y, "y", n, True)
    cdef int st
    with nogil:
        st = fnn_batchnorm_forward_eval(N, C, S, px, pg, pb, pm, pv, eps, py, relu)
    check_status(st)


def batchnorm_backward(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, x, dy, mean, invstd, gamma,
                       dgamma, dbeta, dx, bint naive=False, beta=None, bint relu=False):
    """dgamma, dbeta (C) overwritten; dx (N, C, S) or None; relu: the forward
    had a ReLU fused (dy is its output's gradient; needs beta if affine)."""
    _dims(N, C, S)
    cdef Py_ssize_t n = N * C * S
    cdef const float *px = _f32(x, "x", n)
    cdef const float *pdy = _f32(dy, "dy", n)
    cdef const float *pm = _f32(mean, "mean", C)
    cdef const float *ps = _f32(invstd, "invstd", C)
    cdef const float *pg = _f32(gamma, "gamma", C, False, True)
    cdef const float *pbeta = _f32(beta, "beta", C, False, True)
    cdef float *pdg = _f32(dgamma, "dgamma", C, True)
    cdef float *pdb = _f32(dbeta, "dbeta", C, True)
    cdef float *pdx = _f32(dx, "dx", n, True, True)
    cdef int st = 0
    with nogil:
        if naive:
            fnn_batchnorm_backward_naive(N, C, S, px, pdy, pm, ps, pg, pdg, pdb, pdx)
        else:
            st = fnn_batchnorm_backward(N, C, S, px, pdy, pm, ps, pg, pbeta, relu, pdg, pdb,
                                        pdx)
    check_status(st)


def layernorm_forward(Py_ssize_t R, Py_ssize_t D, x, gamma, beta, double eps, y, mean, rstd,
                      bint naive=False):
    """Rows of x (R, D); gamma/beta (D) both or None; mean/rstd (R) both or None."""
    _dims(R, D, 1)
    _eps(eps)
    if (gamma is None) != (beta is None) or (mean is None) != (rstd is None):
        raise ValueError("layernorm_forward: gamma/beta and mean/rstd come in pairs")
    if naive and mean is None:
        raise ValueError("layernorm_forward: the naive twin needs mean and rstd")
    cdef Py_ssize_t n = R * D
    cdef const float *px = _f32(x, "x", n)
    cdef const float *pg = _f32(gamma, "gamma", D, False, True)
    cdef const float *pb = _f32(beta, "beta", D, False, True)
    cdef float *py = _f32(y, "y", n, True)
    cdef float *pm = _f32(mean, "mean", R, True, True)
    cdef float *ps = _f32(rstd, "rstd", R, True, True)
    cdef int st = 0
    with nogil:
        if naive:
            fnn_layernorm_forward_naive(R, D, px, pg, pb, eps, py, pm, ps)
        else:
            st = fnn_layernorm_forward(R, D, px, pg, pb, eps, py, pm, ps)
    check_status(st)


def layernorm_backward(Py_ssize_t R, Py_ssize_t D, x, dy, mean, rstd, gamma, dgamma, dbeta,
                       dx, bint naive=False):
    """dgamma/dbeta (D) both or None (overwritten); dx (R, D) or None."""
    _dims(R, D, 1)
    if (dgamma is None) != (dbeta is None):
        raise ValueError("layernorm_backward: dgamma and dbeta come in pairs")
    if naive and (dgamma is None or dx is None):
        raise ValueError("layernorm_backward: the naive twin needs dgamma, dbeta and dx")
    cdef Py_ssize_t n = R * D
    cdef const float *px = _f32(x, "x", n)
    cdef const float *pdy = _f32(dy, "dy", n)
    cdef const float *pm = _f32(mean, "mean", R)
    cdef const float *ps = _f32(rstd, "rstd", R)
    cdef const float *pg = _f32(gamma, "gamma", D, False, True)
    cdef float *pdg = _f32(dgamma, "dgamma", D, True, True)
    cdef float *pdb = _f32(dbeta, "dbeta", D, True, True)
    cdef float *pdx = _f32(dx, "dx", n, True, True)
    cdef int st = 0
    with nogil:
        if naive:
            fnn_layernorm_backward_naive(R, D, px, pdy, pm, ps, pg, pdg, pdb, pdx)
        else:
            st = fnn_layernorm_backward(R, D, px, pdy, pm, ps, pg, pdg, pdb, pdx)
    check_status(st)
