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


def aug_shift(uint64_t seed, cnp.ndarray x, cnp.ndarray y, int oy_lo,
              uint32_t oy_n, int ox_lo, uint32_t ox_n, float fill,
              cnp.ndarray offsets):
    """y (N,C,Ho,Wo)[i,c,r,k] = x (N,C,H,W)[i,c,r+oy_i,k+ox_i] or fill;
    offsets: int32 (N,2) receives (oy_i, ox_i)."""
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef float *py = <float *>cnp.PyArray_DATA(y)
    cdef int32_t *po = <int32_t *>cnp.PyArray_DATA(offsets)
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0)
    cdef int C = <int>cnp.PyArray_DIM(x, 1), H = <int>cnp.PyArray_DIM(x, 2)
    cdef int W = <int>cnp.PyArray_DIM(x, 3)
    cdef int Ho = <int>cnp.PyArray_DIM(y, 2), Wo = <int>cnp.PyArray_DIM(y, 3)
    with nogil:
        fnn_aug_shift(seed, N, C, H, W, px, Ho, Wo, py, oy_lo, oy_n, ox_lo, ox_n,
                      fill, po)


def aug_hflip(uint64_t seed, cnp.ndarray x, cnp.ndarray y, double p,
              cnp.ndarray flipped):
    """y = x with rows reversed for the samples drawn to flip; x, y (N,C,H,W);
    flipped: uint8 (N,)."""
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef float *py = <float *>cnp.PyArray_DATA(y)
    cdef uint8_t *pf = <uint8_t *>cnp.PyArray_DATA(flipped)
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0)
    cdef int W = <int>cnp.PyArray_DIM(x, 3)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 1) * cnp.PyArray_DIM(x, 2)
    with nogil:
        fnn_aug_hflip(seed, N, rows, W, px, py, p, pf)


def aug_color(uint64_t seed, cnp.ndarray x, cnp.ndarray y, double b_lo,
              double b_hi, double c_lo, double c_hi, bint clamp, float lo,
              float hi, cnp.ndarray params):
    """Brightness/contrast per sample over x, y (N, ...); params: float64
    (N,2) receives (brightness, contrast) factors."""
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef float *py = <float *>cnp.PyArray_DATA(y)
    cdef double *pp = <double *>cnp.PyArray_DATA(params)
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0)
    cdef Py_ssize_t D = x.size // N if N > 0 else 0
    with nogil:
        fnn_aug_color(seed, N, D, px, py, b_lo, b_hi, c_lo, c_hi, clamp, lo, hi, pp)


def aug_affine(uint64_t seed, cnp.ndarray x, cnp.ndarray y, double deg_lo,
               double deg_hi, double s_lo, double s_hi, double tx_max,
               double ty_max, float fill, cnp.ndarray params):
    """Random rotation/scale/translation with bilinear sampling; x, y
    (N,C,H,W); params: float64 (N,4) receives (angle, scale, tx, ty)."""
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef float *py = <float *>cnp.PyArray_DATA(y)
    cdef double *pp = <double *>cnp.PyArray_DATA(params)
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0)
    cdef int C = <int>cnp.PyArray_DIM(x, 1), H = <int>cnp.PyArray_DIM(x, 2)
    cdef int W = <int>cnp.PyArray_DIM(x, 3)
    cdef int status = 0
    with nogil:
        status = fnn_aug_affine(seed, N, C, H, W, px, py, deg_lo, deg_hi, s_lo,
                                s_hi, tx_max, ty_max, fill, pp)
    check_status(status)
