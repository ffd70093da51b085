# Convolution and pooling (csrc/conv.c, csrc/pool.c). The layers in
# fastnn/nn/conv.py and pool.py validate the user's arguments; here every
# shape number and array is checked again before C sees a pointer (sizes
# match the shape, every index the kernels form fits their int).
from libc.stdint cimport int32_t

cdef extern from "fastnn.h" nogil:
    ctypedef struct fnn_conv2d:
        int N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo
    int fnn_conv2d_forward(const fnn_conv2d *s, const float *x, const float *w,
                           const float *bias, float *y, int relu)
    int fnn_conv2d_backward(const fnn_conv2d *s, const float *x, const float *w,
                            const float *dy, float *dx, float *dw, float *db, int acc)
    void fnn_conv2d_forward_naive(const fnn_conv2d *s, const float *x, const float *w,
                                  const float *bias, float *y)
    void fnn_conv2d_backward_naive(const fnn_conv2d *s, const float *x, const float *w,
                                   const float *dy, float *dx, float *dw, float *db, int acc)
    ctypedef struct fnn_pool2d:
        int H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, mode, divisor
    void fnn_maxpool2d_forward(Py_ssize_t P, const fnn_pool2d *s, const float *x, float *y,
                               int32_t *idx)
    void fnn_maxpool2d_backward(Py_ssize_t P, const fnn_pool2d *s, const int32_t *idx,
                                const float *dy, const float *ymask, float *dx)
    void fnn_avgpool2d_forward(Py_ssize_t P, const fnn_pool2d *s, const float *x, float *y)
    void fnn_avgpool2d_backward(Py_ssize_t P, const fnn_pool2d *s, const float *dy, float *dx)


cdef fnn_conv2d _conv_shape(tuple shape) except *:
    """shape = (N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo)."""
    if len(shape) != 16 or not all(isinstance(v, int) for v in shape):
        raise ValueError(f"conv: shape must be 16 integers, got {shape!r}")
    N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo = shape
    if min(N, C, H, W, O, G, kh, kw, sh, sw, dh, dw, Ho, Wo) < 1 or min(ph, pw) < 0:
        raise ValueError(f"conv: shape numbers must be >= 1 (padding >= 0), got {shape}")
    if C % G or O % G:
        raise ValueError(f"conv: groups={G} must divide C={C} and O={O}")
    lim = 2**31 - 1
    if max(N * max(C * H * W, O * Ho * Wo), C * kh * kw, O * C // G * kh * kw,
           (Ho - 1) * sh + (kh - 1) * dh + ph + H, (Wo - 1) * sw + (kw - 1) * dw + pw + W) > lim:
        raise ValueError(f"conv: shape {shape} has an extent over 2**31-1")
    cdef fnn_conv2d s
    s.N, s.C, s.H, s.W, s.O, s.G, s.kh, s.kw = N, C, H, W, O, G, kh, kw
    s.sh, s.sw, s.ph, s.pw, s.dh, s.dw, s.Ho, s.Wo = sh, sw, ph, pw, dh, dw, Ho, Wo
    return s


def conv2d_forward(tuple shape, x, w, bias, y, bint naive=False, bint relu=False):
    """y = conv(x) [+ bias], then max(y, 0) with relu (not for naive)."""
    cdef fnn_conv2d s = _conv_shape(shape)
    cdef const float *px = _f32(x, "x", s.N * s.C * s.H * s.W)
    cdef const float *pw = _f32(w, "weight", s.O * (s.C // s.G) * s.kh * s.kw)
    cdef const float *pb = _f32(bias, "bias", s.O, False, True)
    cdef float *py = _f32(y, "y", s.N * s.O * s.Ho * s.Wo, True)
    cdef int status = 0
    with nogil:
        if naive:
            fnn_conv2d_forward_naive(&s, px, pw, pb, py)
        else:
            status = fnn_conv2d_forward(&s, px, pw, pb, py, relu)
    check_status(status)


def conv2d_backward(tuple shape, x, w, dy, dx, dw, db, bint acc, bint naive=False):
    """dx, dw, db: arrays to fill, or None (not wanted); acc adds into dw, db."""
    cdef fnn_conv2d s = _conv_shape(shape)
    cdef const float *px = _f32(x, "x", s.N * s.C * s.H * s.W)
    cdef const float *pw = _f32(w, "weight", s.O * (s.C // s.G) * s.kh * s.kw)
    cdef const float *pg = _f32(dy, "dy", s.N * s.O * s.Ho * s.Wo)
    cdef float *pdx = _f32(dx, "dx", s.N * s.C * s.H * s.W, True, True)
    cdef float *pdw = _f32(dw, "dw", s.O * (s.C // s.G) * s.kh * s.kw, True, True)
    cdef float *pdb = _f32(db, "db", s.O, True, True)
    cdef int status = 0
    with nogil:
        if naive:
            fnn_conv2d_backward_naive(&s, px, pw, pg, pdx, pdw, pdb, acc)
        else:
            status = fnn_conv2d_backward(&s, px, pw, pg, pdx, pdw, pdb, acc)
    check_status(status)


cdef fnn_pool2d _pool_shape(tuple shape) except *:
    """shape = (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, mode, divisor)."""
    if len(shape) != 14 or not all(isinstance(v, int) for v in shape):
        raise ValueError(f"pool: shape must be 14 integers, got {shape!r}")
    H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, mode, divisor = shape
    if min(H, W, Ho, Wo, kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw, divisor) < 0:
        raise ValueError(f"pool: shape numbers must be >= 1 (padding, divisor >= 0), got {shape}")
    if mode not in (0, 1, 2) or ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"pool: bad mode or padding over half the kernel: {shape}")
    if max(H * W, Ho * Wo, (Ho - 1) * sh + (kh - 1) * dh + ph + H,
           (Wo - 1) * sw + (kw - 1) * dw + pw + W, (Ho + 1) * H, (Wo + 1) * W) > 2**31 - 1:
        raise ValueError(f"pool: shape {shape} has an extent over 2**31-1")
    cdef fnn_pool2d s
    s.H, s.W, s.Ho, s.Wo, s.kh, s.kw, s.sh, s.sw = H, W, Ho, Wo, kh, kw, sh, sw
    s.ph, s.pw, s.dh, s.dw, s.mode, s.divisor = ph, pw, dh, dw, mode, divisor
    return s


def maxpool2d_forward(Py_ssize_t P, tuple shape, x, y, idx):
    cdef fnn_pool2d s = _pool_shape(shape)
    cdef const float *px = _f32(x, "x", P * s.H * s.W)
    cdef float *py = _f32(y, "y", P * s.Ho * s.Wo, True)
    cdef int32_t *pi = <int32_t *>_ptr(idx, "indices", cnp.NPY_INT32, P * s.Ho * s.Wo, True)
    with nogil:
        fnn_maxpool2d_forward(P, &s, px, py, pi)


def maxpool2d_backward(Py_ssize_t P, tuple shape, idx, dy, dx, ymask=None):
    """dx from dy at the forward's indices; with ymask (the forward's y), dy
    only where ymask > 0 (a fused ReLU's mask)."""
    cdef fnn_pool2d s = _pool_shape(shape)
    cdef cnp.ndarray I = _arr(idx, "indices", cnp.NPY_INT32, P * s.Ho * s.Wo)
    if I.size and (I.min() < -1 or I.max() >= s.H * s.W):
        raise ValueError(f"indices: values must lie in [-1, {s.H * s.W})")
    cdef const int32_t *pi = <const int32_t *>cnp.PyArray_DATA(I)
    cdef const float *pg = _f32(dy, "dy", P * s.Ho * s.Wo)
    cdef float *pd = _f32(dx, "dx", P * s.H * s.W, True)
    cdef const float *pm = NULL if ymask is None else _f32(ymask, "ymask", P * s.Ho * s.Wo)
    with nogil:
        fnn_maxpool2d_backward(P, &s, pi, pg, pm, pd)


def avgpool2d_forward(Py_ssize_t P, tuple shape, x, y):
    cdef fnn_pool2d s = _pool_shape(shape)
    cdef const float *px = _f32(x, "x", P * s.H * s.W)
    cdef float *py = _f32(y, "y", P * s.Ho * s.Wo, True)
    with nogil:
        fnn_avgpool2d_forward(P, &s, px, py)


def avgpool2d_backward(Py_ssize_t P, tuple shape, dy, dx):
    cdef fnn_pool2d s = _pool_shape(shape)
    cdef const float *pg = _f32(dy, "dy", P * s.Ho * s.Wo)
    cdef float *pd = _f32(dx, "dx", P * s.H * s.W, True)
    with nogil:
        fnn_avgpool2d_backward(P, &s, pg, pd)
