# Activations (csrc/act.c). Arguments arrive validated by fastnn.functional /
# fastnn.nn.activation: C-contiguous float32 arrays of matching sizes (int32
# for the maxout indices). Elementwise kernels see the arrays flattened.
from libc.stdint cimport int32_t

cdef extern from "fastnn.h" nogil:
    void fnn_relu_forward(Py_ssize_t n, const float *x, float *y)
    void fnn_relu_backward(Py_ssize_t n, const float *y, const float *dy, float *dx)
    void fnn_leaky_relu_forward(Py_ssize_t n, float negative_slope, const float *x, float *y)
    void fnn_leaky_relu_backward(Py_ssize_t n, float negative_slope, const float *ref,
                                 const float *dy, float *dx)
    void fnn_sigmoid_forward(Py_ssize_t n, const float *x, float *y)
    void fnn_sigmoid_backward(Py_ssize_t n, const float *y, const float *dy, float *dx)
    void fnn_tanh_forward(Py_ssize_t n, const float *x, float *y)
    void fnn_tanh_backward(Py_ssize_t n, const float *y, const float *dy, float *dx)
    void fnn_softplus_forward(Py_ssize_t n, float beta, float threshold, const float *x,
                              float *y)
    void fnn_softplus_backward(Py_ssize_t n, float beta, float threshold, const float *x,
                               const float *dy, float *dx)
    void fnn_hardtanh_forward(Py_ssize_t n, float min_val, float max_val, const float *x,
                              float *y)
    void fnn_hardtanh_backward(Py_ssize_t n, float min_val, float max_val, const float *ref,
                               const float *dy, float *dx)
    void fnn_elu_forward(Py_ssize_t n, float alpha, const float *x, float *y)
    void fnn_elu_backward(Py_ssize_t n, float alpha, const float *ref, const float *y,
                          const float *dy, float *dx)
    void fnn_gelu_forward(Py_ssize_t n, int approximate_tanh, const float *x, float *y)
    void fnn_gelu_backward(Py_ssize_t n, int approximate_tanh, const float *x,
                           const float *dy, float *dx)
    void fnn_softmax_forward(Py_ssize_t rows, Py_ssize_t cols, const float *x, float *y)
    void fnn_softmax_backward(Py_ssize_t rows, Py_ssize_t cols, const float *y,
                              const float *dy, float *dx)
    void fnn_log_softmax_forward(Py_ssize_t rows, Py_ssize_t cols, const float *x, float *y)
    void fnn_log_softmax_backward(Py_ssize_t rows, Py_ssize_t cols, const float *y,
                                  const float *dy, float *dx)
    void fnn_maxout_forward(Py_ssize_t groups, Py_ssize_t pieces, const float *x, float *y,
                            int32_t *idx)
    void fnn_maxout_backward(Py_ssize_t groups, Py_ssize_t pieces, const int32_t *idx,
                             const float *dy, float *dx)
    void fnn_act_mathfn(int fn, Py_ssize_t n, const float *x, float *y)


cdef inline float *fdata(cnp.ndarray a):
    return <float *>cnp.PyArray_DATA(a)


cdef inline Py_ssize_t nelem(cnp.ndarray a):
    return cnp.PyArray_SIZE(a)


def relu_forward(cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_relu_forward(n, px, py)


def relu_backward(cnp.ndarray y, cnp.ndarray dy, cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(y)
    cdef const float *py = fdata(y)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_relu_backward(n, py, pg, pd)


def leaky_relu_forward(float negative_slope, cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_leaky_relu_forward(n, negative_slope, px, py)


def leaky_relu_backward(float negative_slope, cnp.ndarray ref, cnp.ndarray dy,
                        cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(ref)
    cdef const float *pr = fdata(ref)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_leaky_relu_backward(n, negative_slope, pr, pg, pd)


def sigmoid_forward(cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_sigmoid_forward(n, px, py)


def sigmoid_backward(cnp.ndarray y, cnp.ndarray dy, cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(y)
    cdef const float *py = fdata(y)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_sigmoid_backward(n, py, pg, pd)


def tanh_forward(cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_tanh_forward(n, px, py)


def tanh_backward(cnp.ndarray y, cnp.ndarray dy, cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(y)
    cdef const float *py = fdata(y)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_tanh_backward(n, py, pg, pd)


def softplus_forward(float beta, float threshold, cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_softplus_forward(n, beta, threshold, px, py)


def softplus_backward(float beta, float threshold, cnp.ndarray x, cnp.ndarray dy,
                      cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_softplus_backward(n, beta, threshold, px, pg, pd)


def hardtanh_forward(float min_val, float max_val, cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_hardtanh_forward(n, min_val, max_val, px, py)


def hardtanh_backward(float min_val, float max_val, cnp.ndarray ref, cnp.ndarray dy,
                      cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(ref)
    cdef const float *pr = fdata(ref)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_hardtanh_backward(n, min_val, max_val, pr, pg, pd)


def elu_forward(float alpha, cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_elu_forward(n, alpha, px, py)


def elu_backward(float alpha, cnp.ndarray ref, cnp.ndarray y, cnp.ndarray dy,
                 cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(y)
    cdef const float *pr = fdata(ref)
    cdef const float *py = fdata(y)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_elu_backward(n, alpha, pr, py, pg, pd)


def gelu_forward(bint approximate_tanh, cnp.ndarray x, cnp.ndarray y):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_gelu_forward(n, approximate_tanh, px, py)


def gelu_backward(bint approximate_tanh, cnp.ndarray x, cnp.ndarray dy, cnp.ndarray dx):
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_gelu_backward(n, approximate_tanh, px, pg, pd)


def softmax_forward(Py_ssize_t rows, Py_ssize_t cols, cnp.ndarray x, cnp.ndarray y,
                    bint log=False):
    """Row-wise (log-)softmax of a C-contiguous (rows, cols) float32 array."""
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        if log:
            fnn_log_softmax_forward(rows, cols, px, py)
        else:
            fnn_softmax_forward(rows, cols, px, py)


def softmax_backward(Py_ssize_t rows, Py_ssize_t cols, cnp.ndarray y, cnp.ndarray dy,
                     cnp.ndarray dx, bint log=False):
    cdef const float *py = fdata(y)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        if log:
            fnn_log_softmax_backward(rows, cols, py, pg, pd)
        else:
            fnn_softmax_backward(rows, cols, py, pg, pd)


def maxout_forward(Py_ssize_t groups, Py_ssize_t pieces, cnp.ndarray x, cnp.ndarray y,
                   cnp.ndarray idx):
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    cdef int32_t *pi = <int32_t *>cnp.PyArray_DATA(idx)
    with nogil:
        fnn_maxout_forward(groups, pieces, px, py, pi)


def maxout_backward(Py_ssize_t groups, Py_ssize_t pieces, cnp.ndarray idx, cnp.ndarray dy,
                    cnp.ndarray dx):
    cdef const int32_t *pi = <const int32_t *>cnp.PyArray_DATA(idx)
    cdef const float *pg = fdata(dy)
    cdef float *pd = fdata(dx)
    with nogil:
        fnn_maxout_backward(groups, pieces, pi, pg, pd)


ACT_MATHFNS = ("exp", "expm1", "log1p", "tanh", "ncdf", "npdf", "sigmoid")


def act_mathfn(str name, cnp.ndarray x, cnp.ndarray y):
    """Test access to act.c's vectorised float32 functions (see fastnn.h)."""
    cdef int fn = ACT_MATHFNS.index(name)
    cdef Py_ssize_t n = nelem(x)
    cdef const float *px = fdata(x)
    cdef float *py = fdata(y)
    with nogil:
        fnn_act_mathfn(fn, n, px, py)
