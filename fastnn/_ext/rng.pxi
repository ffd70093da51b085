# Counter-based random numbers, dropout and Gaussian noise (csrc/rng.c).
# Arguments are validated by the Python layer (fastnn.nn.layers, tests):
# contiguous arrays of the stated dtype, matching sizes, 0 <= p < 1.
from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef extern from "fastnn.h" nogil:
    void fnn_philox4x32_10(const uint32_t *ctr, const uint32_t *key, uint32_t *out)
    void fnn_rng_bits(uint64_t seed, uint64_t offset, uint32_t *out, size_t n)
    void fnn_rng_uniform(uint64_t seed, uint64_t offset, float *out, size_t n)
    void fnn_rng_normal(uint64_t seed, uint64_t offset, float *out, size_t n,
                        float mean, float std)
    void fnn_rng_normal_naive(uint64_t seed, uint64_t offset, float *out, size_t n,
                              float mean, float std)
    void fnn_dropout_forward(uint64_t seed, const float *x, float *y, uint8_t *mask,
                             size_t n, double p)
    void fnn_dropout_backward(const float *dy, const uint8_t *mask, float *dx,
                              size_t n, double p)
    void fnn_gaussian_noise_forward(uint64_t seed, const float *x, float *y,
                                    size_t n, float std)


def philox4x32_10(ctr, key):
    """One Philox4x32-10 block: 4 counter words, 2 key words -> 4 words."""
    cdef uint32_t c[4]
    cdef uint32_t k[2]
    cdef uint32_t o[4]
    for i in range(4):
        c[i] = ctr[i]
    k[0] = key[0]
    k[1] = key[1]
    fnn_philox4x32_10(c, k, o)
    return (o[0], o[1], o[2], o[3])


def rng_bits(uint64_t seed, uint64_t offset, out):
    """out: C-contiguous uint32 array; filled with stream words offset + i."""
    cdef uint32_t *p = <uint32_t *>_ptr(out, "out", cnp.NPY_UINT32, -1, True)
    cdef size_t n = cnp.PyArray_SIZE(<cnp.ndarray>out)
    with nogil:
        fnn_rng_bits(seed, offset, p, n)


def rng_uniform(uint64_t seed, uint64_t offset, out):
    """out: C-contiguous float32 array; filled with U[0, 1)."""
    cdef float *p = _f32(out, "out", -1, True)
    cdef size_t n = cnp.PyArray_SIZE(<cnp.ndarray>out)
    with nogil:
        fnn_rng_uniform(seed, offset, p, n)


def rng_normal(uint64_t seed, uint64_t offset, out, float mean=0.0,
               float std=1.0, bint naive=False):
    """out: C-contiguous float32 array; filled with mean + std * N(0, 1)."""
    cdef float *p = _f32(out, "out", -1, True)
    cdef size_t n = cnp.PyArray_SIZE(<cnp.ndarray>out)
    with nogil:
        if naive:
            fnn_rng_normal_naive(seed, offset, p, n, mean, std)
        else:
            fnn_rng_normal(seed, offset, p, n, mean, std)


cdef int _drop_p(double p) except -1:
    if not (0.0 <= p < 1.0):
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    return 0


def dropout_forward(uint64_t seed, x, y, mask, double p):
    """x, y float32 and mask uint8, C-contiguous, same size; 0 <= p < 1; y may be x."""
    _drop_p(p)
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    cdef uint8_t *pm = <uint8_t *>_ptr(mask, "mask", cnp.NPY_UINT8, n, True)
    with nogil:
        fnn_dropout_forward(seed, px, py, pm, n, p)


def dropout_backward(dy, mask, dx, double p):
    """dy, dx float32 and mask uint8, C-contiguous, same size; 0 <= p < 1."""
    _drop_p(p)
    cdef Py_ssize_t n = _size(dy, "dy", cnp.NPY_FLOAT32)
    cdef const float *pdy = _f32(dy, "dy")
    cdef const uint8_t *pm = <const uint8_t *>_ptr(mask, "mask", cnp.NPY_UINT8, n)
    cdef float *pdx = _f32(dx, "dx", n, True)
    with nogil:
        fnn_dropout_backward(pdy, pm, pdx, n, p)


def gaussian_noise_forward(uint64_t seed, x, y, float std):
    """y = x + std * N(0, 1); x, y float32, C-contiguous, same size; y may be x."""
    cdef Py_ssize_t n = _size(x, "x", cnp.NPY_FLOAT32)
    cdef const float *px = _f32(x, "x")
    cdef float *py = _f32(y, "y", n, True)
    with nogil:
        fnn_gaussian_noise_forward(seed, px, py, n, std)
