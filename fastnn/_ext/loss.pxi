# Losses (csrc/loss*.c). fastnn.nn.loss validates values and shapes; every
# array is checked again here (dtype, C-contiguity, size, writeable outputs)
# and the C kernels bound-check the class indices (FNN_EINDEX -> ValueError
# naming the index). Optional arrays are passed as None (NULL in C).

from libc.stdint cimport int64_t

cdef extern from "fastnn.h" nogil:
    int fnn_cross_entropy_forward(int N, int C, const float *x, const int64_t *target,
                                     const float *weight, float smoothing, double scale,
                                     float *grad, float *row_max, double *row_coef,
                                     double *row_loss, double *total)
    int fnn_cross_entropy_backward(int N, int C, const float *x, const int64_t *target,
                                    const float *weight, float smoothing,
                                    const float *row_max, const double *row_coef,
                                    double scale, const float *row_scale, float *grad)
    int fnn_cross_entropy_prob_forward(int N, int C, const float *x, const float *prob,
                                          const float *weight, float smoothing, double scale,
                                          float *grad, float *row_max, double *row_coef,
                                          double *row_loss, double *total)
    int fnn_cross_entropy_prob_backward(int N, int C, const float *x, const float *prob,
                                         const float *weight, float smoothing,
                                         const float *row_max, const double *row_coef,
                                         double scale, const float *row_scale, float *grad)
    int fnn_nll_forward(int N, int C, const float *x, const int64_t *target,
                           const float *weight, double scale, float *grad, double *row_loss, double *total)
    int fnn_nll_backward(int N, int C, const int64_t *target, const float *weight,
                          double scale, const float *row_scale, float *grad)
    int fnn_multi_margin_forward(int N, int C, const float *x, const int64_t *target,
                                    const float *weight, int p, float margin, double scale,
                                    float *grad, double *row_loss, double *total)
    int fnn_multi_margin_backward(int N, int C, const float *x, const int64_t *target,
                                   const float *weight, int p, float margin, double scale,
                                   const float *row_scale, float *grad)
    int fnn_mse_forward(Py_ssize_t n, const float *x, const float *y, double scale,
                        float *grad, float *elem_loss, double *total)
    int fnn_mse_backward(Py_ssize_t n, const float *x, const float *y, double scale,
                          const float *elem_scale, float *grad)
    int fnn_bce_logits_forward(Py_ssize_t n, const float *x, const float *y,
                               const float *pos_weight, Py_ssize_t C, double scale,
                               float *grad, float *elem_loss, double *total)
    int fnn_bce_logits_backward(Py_ssize_t n, const float *x, const float *y,
                                 const float *pos_weight, Py_ssize_t C, double scale,
                                 const float *elem_scale, float *grad)


cdef int64_t *_i64(object a, str name, Py_ssize_t size) except? NULL:
    return <int64_t *>_ptr(a, name, cnp.NPY_INT64, size)


cdef tuple _logits(object x):
    """(N, C) of a checked 2-D float32 logits array."""
    cdef cnp.ndarray a = _arr(x, "x", cnp.NPY_FLOAT32, -1, False, 2)
    return _as_int(a.shape[0], "N"), _as_int(a.shape[1], "C")


def cross_entropy_forward(x, target, weight, float smoothing, double scale, grad,
                          row_max, row_coef, row_loss):
    """Class-index targets (int64, N). Returns the float64 sum of row_loss."""
    cdef int N, C
    N, C = _logits(x)
    cdef const float *px = _f32(x, "x")
    cdef const int64_t *pt = _i64(target, "target", N)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef float *pg = _f32(grad, "grad", <Py_ssize_t>N * C, True, True)
    cdef float *pm = _f32(row_max, "row_max", N, True)
    cdef double *pc = _f64(row_coef, "row_coef", N, True)
    cdef double *pl = _f64(row_loss, "row_loss", N, True)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_cross_entropy_forward(N, C, px, pt, pw, smoothing, scale, pg, pm, pc, pl,
                                           &total)
    check_loss_status(status, target, C)
    return total


def cross_entropy_backward(x, target, weight, float smoothing, row_max, row_coef,
                           double scale, row_scale, grad):
    cdef int N, C
    N, C = _logits(x)
    cdef const float *px = _f32(x, "x")
    cdef const int64_t *pt = _i64(target, "target", N)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef const float *pm = _f32(row_max, "row_max", N)
    cdef const double *pc = _f64(row_coef, "row_coef", N)
    cdef const float *ps = _f32(row_scale, "row_scale", N, False, True)
    cdef float *pg = _f32(grad, "grad", <Py_ssize_t>N * C, True)
    cdef int status
    with nogil:
        status = fnn_cross_entropy_backward(N, C, px, pt, pw, smoothing, pm, pc, scale, ps, pg)
    check_loss_status(status, target, C)


def cross_entropy_prob_forward(x, prob, weight, float smoothing, double scale, grad,
                               row_max, row_coef, row_loss):
    """Probability targets (float32, N x C). Returns the float64 sum of row_loss."""
    cdef int N, C
    N, C = _logits(x)
    cdef const float *px = _f32(x, "x")
    cdef const float *pt = _f32(prob, "prob", <Py_ssize_t>N * C)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef float *pg = _f32(grad, "grad", <Py_ssize_t>N * C, True, True)
    cdef float *pm = _f32(row_max, "row_max", N, True)
    cdef double *pc = _f64(row_coef, "row_coef", N, True)
    cdef double *pl = _f64(row_loss, "row_loss", N, True)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_cross_entropy_prob_forward(N, C, px, pt, pw, smoothing, scale, pg, pm,
                                                pc, pl, &total)
    check_status(status)
    return total


def cross_entropy_prob_backward(x, prob, weight, float smoothing, row_max, row_coef,
                                double scale, row_scale, grad):
    cdef int N, C
    N, C = _logits(x)
    cdef const float *px = _f32(x, "x")
    cdef const float *pt = _f32(prob, "prob", <Py_ssize_t>N * C)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef const float *pm = _f32(row_max, "row_max", N)
    cdef const double *pc = _f64(row_coef, "row_coef", N)
    cdef const float *ps = _f32(row_scale, "row_scale", N, False, True)
    cdef float *pg = _f32(grad, "grad", <Py_ssize_t>N * C, True)
    cdef int status
    with nogil:
        status = fnn_cross_entropy_prob_backward(N, C, px, pt, pw, smoothing, pm, pc, scale,
                                                 ps, pg)
    check_status(status)


def nll_forward(x, target, weight, double scale, grad, row_loss):
    cdef int N, C
    N, C = _logits(x)
    cdef const float *px = _f32(x, "x")
    cdef const int64_t *pt = _i64(target, "target", N)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef float *pg = _f32(grad, "grad", <Py_ssize_t>N * C, True, True)
    cdef double *pl = _f64(row_loss, "row_loss", N, True)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_nll_forward(N, C, px, pt, pw, scale, pg, pl, &total)
    check_loss_status(status, target, C)
    return total


def nll_backward(target, weight, double scale, row_scale, grad):
    cdef cnp.ndarray g = _arr(grad, "grad", cnp.NPY_FLOAT32, -1, True, 2)
    cdef int N = _as_int(g.shape[0], "N"), C = _as_int(g.shape[1], "C")
    cdef const int64_t *pt = _i64(target, "target", N)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef const float *ps = _f32(row_scale, "row_scale", N, False, True)
    cdef float *pg = _f32(grad, "grad")
    cdef int status
    with nogil:
        status = fnn_nll_backward(N, C, pt, pw, scale, ps, pg)
    check_loss_status(status, target, C)


cdef int _margin_p(int p) except -1:
    if p != 1 and p != 2:
        raise ValueError(f"multi_margin: p must be 1 or 2, got {p}")
    return p


def multi_margin_forward(x, target, weight, int p, float margin, double scale, grad,
                         row_loss):
    cdef int N, C
    N, C = _logits(x)
    _margin_p(p)
    cdef const float *px = _f32(x, "x")
    cdef const int64_t *pt = _i64(target, "target", N)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef float *pg = _f32(grad, "grad", <Py_ssize_t>N * C, True, True)
    cdef double *pl = _f64(row_loss, "row_loss", N, True)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_multi_margin_forward(N, C, px, pt, pw, p, margin, scale, pg, pl, &total)
    check_loss_status(status, target, C)
    return total


def multi_margin_backward(x, target, weight, int p, float margin, double scale, row_scale,
                          grad):
    cdef int N, C
    N, C = _logits(x)
    _margin_p(p)
    cdef const float *px = _f32(x, "x")
    cdef const int64_t *pt = _i64(target, "target", N)
    cdef const float *pw = _f32(weight, "weight", C, False, True)
    cdef const float *ps = _f32(row_scale, "row_scale", N, False, True)
    cdef float *pg = _f32(grad, "grad", <Py_ssize_t>N * C, True)
    cdef int status
    with nogil:
        status = fnn_multi_margin_backward(N, C, px, pt, pw, p, margin, scale, ps, pg)
    check_loss_status(status, target, C)


def mse_forward(x, y, double scale, grad, elem_loss):
    """Returns the float64 sum of squared errors."""
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef const float *py = _f32(y, "y", n)
    cdef float *pg = _f32(grad, "grad", n, True, True)
    cdef float *pe = _f32(elem_loss, "elem_loss", n, True, True)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_mse_forward(n, px, py, scale, pg, pe, &total)
    check_status(status)
    return total


def mse_backward(x, y, double scale, elem_scale, grad):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef const float *py = _f32(y, "y", n)
    cdef const float *ps = _f32(elem_scale, "elem_scale", n, False, True)
    cdef float *pg = _f32(grad, "grad", n, True)
    cdef int status
    with nogil:
        status = fnn_mse_backward(n, px, py, scale, ps, pg)
    check_status(status)


cdef Py_ssize_t _last_dim(object x):
    cdef cnp.ndarray a = <cnp.ndarray>x
    return a.shape[a.ndim - 1] if a.ndim and a.shape[a.ndim - 1] > 0 else 1


def bce_logits_forward(x, y, pos_weight, double scale, grad, elem_loss):
    """pos_weight: None or float32 of length x.shape[-1]. Returns the float64 sum."""
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef Py_ssize_t C = _last_dim(x)
    cdef const float *px = _f32(x, "x")
    cdef const float *py = _f32(y, "y", n)
    cdef const float *pp = _f32(pos_weight, "pos_weight", C, False, True)
    cdef float *pg = _f32(grad, "grad", n, True, True)
    cdef float *pe = _f32(elem_loss, "elem_loss", n, True, True)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_bce_logits_forward(n, px, py, pp, C, scale, pg, pe, &total)
    check_status(status)
    return total


def bce_logits_backward(x, y, pos_weight, double scale, elem_scale, grad):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef Py_ssize_t C = _last_dim(x)
    cdef const float *px = _f32(x, "x")
    cdef const float *py = _f32(y, "y", n)
    cdef const float *pp = _f32(pos_weight, "pos_weight", C, False, True)
    cdef const float *ps = _f32(elem_scale, "elem_scale", n, False, True)
    cdef float *pg = _f32(grad, "grad", n, True)
    cdef int status
    with nogil:
        status = fnn_bce_logits_backward(n, px, py, pp, C, scale, ps, pg)
    check_status(status)
