# Per-sample random augmentation (csrc/augment.c). Arguments are validated by
# fastnn.data.augment: C-contiguous float32 images (N, C, H, W), outputs of
# the right shape, parameter arrays of the stated dtype and shape.
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t

cdef extern from "fastnn.h" nogil:
    void fnn_aug_shift(uint64_t seed, Py_ssize_t N, int C, int H, int W,
                       const float *x, int Ho, int Wo, float *y, int oy_lo,
                       uint32_t oy_n, int ox_lo, uint32_t ox_n, float fill,
                       int32_t *offsets)
    void fnn_aug_hflip(uint64_t seed, Py_ssize_t N, Py_ssize_t rows, int W,
                       const float *x, float *y, double p, uint8_t *flipped)
    void fnn_aug_color(uint64_t seed, Py_ssize_t N, Py_ssize_t D, const float *x,
                       float *y, double b_lo, double b_hi, double c_lo,
                       double c_hi, int clamp, float lo, float hi, double *params)
    int fnn_aug_affine(uint64_t seed, Py_ssize_t N, int C, int H, int W,
                       const float *x, float *y, double deg_lo, double deg_hi,
                       double s_lo, double s_hi, double tx_max, double ty_max,
                       float fill, double *params)


cdef cnp.ndarray _images(object x, str name, bint out=False):
    return _arr(x, name, cnp.NPY_FLOAT32, -1, out, 4)


cdef int _fits_int(cnp.ndarray a) except -1:
    cdef int d
    for d in range(1, a.ndim):
        _as_int(a.shape[d], "image dimension")
    return 0


def aug_shift(uint64_t seed, x, y, int oy_lo, uint32_t oy_n, int ox_lo, uint32_t ox_n,
              float fill, offsets):
    """y (N,C,Ho,Wo)[i,c,r,k] = x (N,C,H,W)[i,c,r+oy_i,k+ox_i] or fill;
    offsets: int32 (N,2) receives (oy_i, ox_i); oy_n, ox_n >= 1."""
    cdef cnp.ndarray a = _images(x, "x"), b = _images(y, "y", True)
    _fits_int(a)
    _fits_int(b)
    if b.shape[0] != a.shape[0] or b.shape[1] != a.shape[1]:
        raise ValueError(f"y: shape {(<object>b).shape} does not match x {(<object>a).shape} in (N, C)")
    if oy_n < 1 or ox_n < 1:
        raise ValueError("aug_shift: oy_n and ox_n must be >= 1")
    if np.may_share_memory(a, b):
        raise ValueError("y: must not overlap x")
    cdef Py_ssize_t N = a.shape[0]
    cdef int C = <int>a.shape[1], H = <int>a.shape[2], W = <int>a.shape[3]
    cdef int Ho = <int>b.shape[2], Wo = <int>b.shape[3]
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y")
    cdef int32_t *po = <int32_t *>_ptr(offsets, "offsets", cnp.NPY_INT32, N * 2, True)
    with nogil:
        fnn_aug_shift(seed, N, C, H, W, px, Ho, Wo, py, oy_lo, oy_n, ox_lo, ox_n,
                      fill, po)


cdef int _same_images(cnp.ndarray a, cnp.ndarray b) except -1:
    if (<object>a).shape != (<object>b).shape:
        raise ValueError(f"y: shape {(<object>b).shape} does not match x {(<object>a).shape}")
    if np.may_share_memory(a, b):
        raise ValueError("y: must not overlap x")
    return 0


def aug_hflip(uint64_t seed, x, y, double p, flipped):
    """y = x with rows reversed for the samples drawn to flip; x, y (N,C,H,W);
    flipped: uint8 (N,)."""
    cdef cnp.ndarray a = _images(x, "x"), b = _images(y, "y", True)
    _fits_int(a)
    _same_images(a, b)
    cdef Py_ssize_t N = a.shape[0]
    cdef int W = <int>a.shape[3]
    cdef Py_ssize_t rows = a.shape[1] * a.shape[2]
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y")
    cdef uint8_t *pf = <uint8_t *>_ptr(flipped, "flipped", cnp.NPY_UINT8, N, True)
    with nogil:
        fnn_aug_hflip(seed, N, rows, W, px, py, p, pf)


def aug_color(uint64_t seed, x, y, double b_lo, double b_hi, double c_lo, double c_hi,
              bint clamp, float lo, float hi, params):
    """Brightness/contrast per sample over x, y (N, ...); params: float64
    (N,2) receives (brightness, contrast) factors."""
    cdef cnp.ndarray a = _arr(x, "x", cnp.NPY_FLOAT32)
    cdef cnp.ndarray b = _arr(y, "y", cnp.NPY_FLOAT32, -1, True)
    if a.ndim < 1:
        raise ValueError("x: needs a sample dimension")
    _same_images(a, b)
    cdef Py_ssize_t N = a.shape[0]
    cdef Py_ssize_t D = a.size // N if N > 0 else 0
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y")
    cdef double *pp = _f64(params, "params", N * 2, True)
    with nogil:
        fnn_aug_color(seed, N, D, px, py, b_lo, b_hi, c_lo, c_hi, clamp, lo, hi, pp)


def aug_affine(uint64_t seed, x, y, double deg_lo, double deg_hi, double s_lo,
               double s_hi, double tx_max, double ty_max, float fill, params):
    """Random rotation/scale/translation with bilinear sampling; x, y
    (N,C,H,W); params: float64 (N,4) receives (angle, scale, tx, ty)."""
    cdef cnp.ndarray a = _images(x, "x"), b = _images(y, "y", True)
    _fits_int(a)
    _same_images(a, b)
    if (a.shape[2] + 4) * (a.shape[3] + 4) > 2147483647:
        raise ValueError(f"x: images of {a.shape[2]} x {a.shape[3]} are too large")
    cdef Py_ssize_t N = a.shape[0]
    cdef int C = <int>a.shape[1], H = <int>a.shape[2], W = <int>a.shape[3]
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y")
    cdef double *pp = _f64(params, "params", N * 4, True)
    cdef int status = 0
    with nogil:
        status = fnn_aug_affine(seed, N, C, H, W, px, py, deg_lo, deg_hi, s_lo,
                                s_hi, tx_max, ty_max, fill, pp)
    check_status(status)
