# Losses (csrc/loss.c). Arguments are validated by fastnn.nn.loss: float32 /
# int64 / float64 arrays, C-contiguous, shapes consistent, targets in range.
# Optional arrays are passed as None (NULL in C).

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


cdef inline float *_lf(object a):
    """float32 data pointer, NULL for None."""
    return NULL if a is None else <float *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline double *_ld(cnp.ndarray a):
    return <double *>cnp.PyArray_DATA(a)


cdef inline int64_t *_li(cnp.ndarray a):
    return <int64_t *>cnp.PyArray_DATA(a)


def cross_entropy_forward(cnp.ndarray x, cnp.ndarray target, object weight, float smoothing,
                          double scale, object grad, cnp.ndarray row_max,
                          cnp.ndarray row_coef, cnp.ndarray row_loss):
    """Class-index targets (int64, N). Returns the float64 sum of row_loss."""
    cdef int N = x.shape[0], C = x.shape[1]
    cdef const float *px = _lf(x)
    cdef const int64_t *pt = _li(target)
    cdef const float *pw = _lf(weight)
    cdef float *pg = _lf(grad)
    cdef float *pm = _lf(row_max)
    cdef double *pc = _ld(row_coef)
    cdef double *pl = _ld(row_loss)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_cross_entropy_forward(N, C, px, pt, pw, smoothing, scale, pg, pm, pc, pl, &total)
    check_loss_status(status, target, C)
    return total


def cross_entropy_backward(cnp.ndarray x, cnp.ndarray target, object weight, float smoothing,
                           cnp.ndarray row_max, cnp.ndarray row_coef, double scale,
                           object row_scale, cnp.ndarray grad):
    cdef int N = x.shape[0], C = x.shape[1]
    cdef const float *px = _lf(x)
    cdef const int64_t *pt = _li(target)
    cdef const float *pw = _lf(weight)
    cdef const float *pm = _lf(row_max)
    cdef const double *pc = _ld(row_coef)
    cdef const float *ps = _lf(row_scale)
    cdef float *pg = _lf(grad)
    cdef int status
    with nogil:
        status = fnn_cross_entropy_backward(N, C, px, pt, pw, smoothing, pm, pc, scale, ps, pg)
    check_loss_status(status, target, C)


def cross_entropy_prob_forward(cnp.ndarray x, cnp.ndarray prob, object weight,
                               float smoothing, double scale, object grad,
                               cnp.ndarray row_max, cnp.ndarray row_coef,
                               cnp.ndarray row_loss):
    """Probability targets (float32, N x C). Returns the float64 sum of row_loss."""
    cdef int N = x.shape[0], C = x.shape[1]
    cdef const float *px = _lf(x)
    cdef const float *pt = _lf(prob)
    cdef const float *pw = _lf(weight)
    cdef float *pg = _lf(grad)
    cdef float *pm = _lf(row_max)
    cdef double *pc = _ld(row_coef)
    cdef double *pl = _ld(row_loss)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_cross_entropy_prob_forward(N, C, px, pt, pw, smoothing, scale, pg, pm,
                                               pc, pl, &total)
    check_status(status)
    return total


def cross_entropy_prob_backward(cnp.ndarray x, cnp.ndarray prob, object weight,
                                float smoothing, cnp.ndarray row_max, cnp.ndarray row_coef,
                                double scale, object row_scale, cnp.ndarray grad):
    cdef int N = x.shape[0], C = x.shape[1]
    cdef const float *px = _lf(x)
    cdef const float *pt = _lf(prob)
    cdef const float *pw = _lf(weight)
    cdef const float *pm = _lf(row_max)
    cdef const double *pc = _ld(row_coef)
    cdef const float *ps = _lf(row_scale)
    cdef float *pg = _lf(grad)
    cdef int status
    with nogil:
        status = fnn_cross_entropy_prob_backward(N, C, px, pt, pw, smoothing, pm, pc, scale, ps, pg)
    check_status(status)


def nll_forward(cnp.ndarray x, cnp.ndarray target, object weight, double scale, object grad,
                cnp.ndarray row_loss):
    cdef int N = x.shape[0], C = x.shape[1]
    cdef const float *px = _lf(x)
    cdef const int64_t *pt = _li(target)
    cdef const float *pw = _lf(weight)
    cdef float *pg = _lf(grad)
    cdef double *pl = _ld(row_loss)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_nll_forward(N, C, px, pt, pw, scale, pg, pl, &total)
    check_loss_status(status, target, C)
    return total


def nll_backward(cnp.ndarray target, object weight, double scale, object row_scale,
                 cnp.ndarray grad):
    cdef int N = grad.shape[0], C = grad.shape[1]
    cdef const int64_t *pt = _li(target)
    cdef const float *pw = _lf(weight)
    cdef const float *ps = _lf(row_scale)
    cdef float *pg = _lf(grad)
    cdef int status
    with nogil:
        status = fnn_nll_backward(N, C, pt, pw, scale, ps, pg)
    check_loss_status(status, target, C)


def multi_margin_forward(cnp.ndarray x, cnp.ndarray target, object weight, int p,
                         float margin, double scale, object grad, cnp.ndarray row_loss):
    cdef int N = x.shape[0], C = x.shape[1]
    cdef const float *px = _lf(x)
    cdef const int64_t *pt = _li(target)
    cdef const float *pw = _lf(weight)
    cdef float *pg = _lf(grad)
    cdef double *pl = _ld(row_loss)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_multi_margin_forward(N, C, px, pt, pw, p, margin, scale, pg, pl, &total)
    check_loss_status(status, target, C)
    return total


def multi_margin_backward(cnp.ndarray x, cnp.ndarray target, object weight, int p,
                          float margin, double scale, object row_scale, cnp.ndarray grad):
    cdef int N = x.shape[0], C = x.shape[1]
    cdef const float *px = _lf(x)
    cdef const int64_t *pt = _li(target)
    cdef const float *pw = _lf(weight)
    cdef const float *ps = _lf(row_scale)
    cdef float *pg = _lf(grad)
    cdef int status
    with nogil:
        status = fnn_multi_margin_backward(N, C, px, pt, pw, p, margin, scale, ps, pg)
    check_loss_status(status, target, C)


def mse_forward(cnp.ndarray x, cnp.ndarray y, double scale, object grad, object elem_loss):
    """Returns the float64 sum of squared errors."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef const float *px = _lf(x)
    cdef const float *py = _lf(y)
    cdef float *pg = _lf(grad)
    cdef float *pe = _lf(elem_loss)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_mse_forward(n, px, py, scale, pg, pe, &total)
    check_status(status)
    return total


def mse_backward(cnp.ndarray x, cnp.ndarray y, double scale, object elem_scale,
                 cnp.ndarray grad):
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef const float *px = _lf(x)
    cdef const float *py = _lf(y)
    cdef const float *ps = _lf(elem_scale)
    cdef float *pg = _lf(grad)
    cdef int status
    with nogil:
        status = fnn_mse_backward(n, px, py, scale, ps, pg)
    check_status(status)


def bce_logits_forward(cnp.ndarray x, cnp.ndarray y, object pos_weight, double scale,
                       object grad, object elem_loss):
    """pos_weight: None or float32 of length x.shape[-1]. Returns the float64 sum."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t C = x.shape[x.ndim - 1] if x.ndim else 1
    cdef const float *px = _lf(x)
    cdef const float *py = _lf(y)
    cdef const float *pp = _lf(pos_weight)
    cdef float *pg = _lf(grad)
    cdef float *pe = _lf(elem_loss)
    cdef double total = 0.0
    cdef int status
    with nogil:
        status = fnn_bce_logits_forward(n, px, py, pp, C, scale, pg, pe, &total)
    check_status(status)
    return total


def bce_logits_backward(cnp.ndarray x, cnp.ndarray y, object pos_weight, double scale,
                        object elem_scale, cnp.ndarray grad):
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t C = x.shape[x.ndim - 1] if x.ndim else 1
    cdef const float *px = _lf(x)
    cdef const float *py = _lf(y)
    cdef const float *pp = _lf(pos_weight)
    cdef const float *ps = _lf(elem_scale)
    cdef float *pg = _lf(grad)
    cdef int status
    with nogil:
        status = fnn_bce_logits_backward(n, px, py, pp, C, scale, ps, pg)
    check_status(status)
