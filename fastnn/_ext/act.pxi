# Activations (csrc/act.c). Every array is checked here (runtime.pxi's _f32:
# float32, C-contiguous, matching sizes, outputs writeable; int32 maxout
# indices). Elementwise kernels see the arrays flattened; y may be x and dx
# may be dy (in place), as csrc/fastnn.h allows.
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



def relu_forward(x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_relu_forward(n, px, py)


def relu_backward(y, dy, dx):
    cdef Py_ssize_t n = _size(y, "y", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(y, "y")
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_relu_backward(n, pr, pg, pd)


def leaky_relu_forward(float negative_slope, x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_leaky_relu_forward(n, negative_slope, px, py)


def leaky_relu_backward(float negative_slope, ref, dy, dx):
    cdef Py_ssize_t n = _size(ref, "ref", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(ref, "ref")
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_leaky_relu_backward(n, negative_slope, pr, pg, pd)


def sigmoid_forward(x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_sigmoid_forward(n, px, py)


def sigmoid_backward(y, dy, dx):
    cdef Py_ssize_t n = _size(y, "y", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(y, "y")
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_sigmoid_backward(n, pr, pg, pd)


def tanh_forward(x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_tanh_forward(n, px, py)


def tanh_backward(y, dy, dx):
    cdef Py_ssize_t n = _size(y, "y", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(y, "y")
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_tanh_backward(n, pr, pg, pd)


def softplus_forward(float beta, float threshold, x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_softplus_forward(n, beta, threshold, px, py)


def softplus_backward(float beta, float threshold, x, dy, dx):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(x, "x")
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_softplus_backward(n, beta, threshold, pr, pg, pd)


def hardtanh_forward(float min_val, float max_val, x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_hardtanh_forward(n, min_val, max_val, px, py)


def hardtanh_backward(float min_val, float max_val, ref, dy, dx):
    cdef Py_ssize_t n = _size(ref, "ref", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(ref, "ref")
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_hardtanh_backward(n, min_val, max_val, pr, pg, pd)


def elu_forward(float alpha, x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_elu_forward(n, alpha, px, py)


def elu_backward(float alpha, ref, y, dy, dx):
    cdef Py_ssize_t n = _size(ref, "ref", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(ref, "ref")
    cdef const float *py = _f32(y, "y", n)
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_elu_backward(n, alpha, pr, py, pg, pd)


def gelu_forward(bint approximate_tanh, x, y):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_gelu_forward(n, approximate_tanh, px, py)


def gelu_backward(bint approximate_tanh, x, dy, dx):
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *pr = _f32(x, "x")
    cdef const float *pg = _f32(dy, "dy", n)
    cdef float *pd = _f32(dx, "dx", n, True)
    with nogil:
        fnn_gelu_backward(n, approximate_tanh, pr, pg, pd)


cdef int _rows_cols(Py_ssize_t rows, Py_ssize_t cols) except -1:
    if rows < 0 or cols < 0:
        raise ValueError(f"softmax: rows and cols must be >= 0, got {rows} x {cols}")
    return 0


def softmax_forward(Py_ssize_t rows, Py_ssize_t cols, x, y, bint log=False):
    """Row-wise (log-)softmax of a C-contiguous (rows, cols) float32 array; y may be x."""
    _rows_cols(rows, cols)
    cdef const float *px = _f32(x, "x", rows * cols)
    cdef float *py = _f32(y, "y", rows * cols, True)
    with nogil:
        if log:
            fnn_log_softmax_forward(rows, cols, px, py)
        else:
            fnn_softmax_forward(rows, cols, px, py)


def softmax_backward(Py_ssize_t rows, Py_ssize_t cols, y, dy, dx, bint log=False):
    """dx may be dy."""
    _rows_cols(rows, cols)
    cdef const float *py = _f32(y, "y", rows * cols)
    cdef const float *pg = _f32(dy, "dy", rows * cols)
    cdef float *pd = _f32(dx, "dx", rows * cols, True)
    with nogil:
        if log:
            fnn_log_softmax_backward(rows, cols, py, pg, pd)
        else:
            fnn_softmax_backward(rows, cols, py, pg, pd)


def maxout_forward(Py_ssize_t groups, Py_ssize_t pieces, x, y, idx):
    if groups < 0 or pieces < 1 and groups > 0:
        raise ValueError(f"maxout: groups must be >= 0 and pieces >= 1, got {groups}, {pieces}")
    cdef const float *px = _f32(x, "x", groups * pieces)
    cdef float *py = _f32(y, "y", groups, True)
    cdef int32_t *pi = <int32_t *>_ptr(idx, "idx", cnp.NPY_INT32, groups, True)
    with nogil:
        fnn_maxout_forward(groups, pieces, px, py, pi)


def maxout_backward(Py_ssize_t groups, Py_ssize_t pieces, idx, dy, dx):
    if groups < 0 or pieces < 1 and groups > 0:
        raise ValueError(f"maxout: groups must be >= 0 and pieces >= 1, got {groups}, {pieces}")
    cdef const int32_t *pi = <const int32_t *>_ptr(idx, "idx", cnp.NPY_INT32, groups)
    cdef const float *pg = _f32(dy, "dy", groups)
    cdef float *pd = _f32(dx, "dx", groups * pieces, True)
    with nogil:
        fnn_maxout_backward(groups, pieces, pi, pg, pd)


ACT_MATHFNS = ("exp", "expm1", "log1p", "tanh", "ncdf", "npdf", "sigmoid")


def act_mathfn(str name, x, y):
    """Test access to fmath.h's vectorised float32 functions (see fastnn.h)."""
    if name not in ACT_MATHFNS:
        raise ValueError(f"act_mathfn: name must be one of {ACT_MATHFNS}, got {name!r}")
    cdef int fn = ACT_MATHFNS.index(name)
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_act_mathfn(fn, n, px, py)
