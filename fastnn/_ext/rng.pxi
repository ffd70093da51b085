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


def rng_bits(uint64_t seed, uint64_t offset, cnp.ndarray out):
    """out: C-contiguous uint32 array; filled with stream words offset + i."""
    cdef uint32_t *p = <uint32_t *>cnp.PyArray_DATA(out)
    cdef size_t n = out.size
    with nogil:
        fnn_rng_bits(seed, offset, p, n)


def rng_uniform(uint64_t seed, uint64_t offset, cnp.ndarray out):
    """out: C-contiguous float32 array; filled with U[0, 1)."""
    cdef float *p = <float *>cnp.PyArray_DATA(out)
    cdef size_t n = out.size
    with nogil:
        fnn_rng_uniform(seed, offset, p, n)


def rng_normal(uint64_t seed, uint64_t offset, cnp.ndarray out, float mean=0.0,
               float std=1.0, bint naive=False):
    """out: C-contiguous float32 array; filled with mean + std * N(0, 1)."""
    cdef float *p = <float *>cnp.PyArray_DATA(out)
    cdef size_t n = out.size
    with nogil:
        if naive:
            fnn_rng_normal_naive(seed, offset, p, n, mean, std)
        else:
            fnn_rng_normal(seed, offset, p, n, mean, std)


def dropout_forward(uint64_t seed, cnp.ndarray x, cnp.ndarray y, cnp.ndarray mask,
                    double p):
    """x, y float32 and mask uint8, C-contiguous, same size; 0 <= p < 1."""
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef float *py = <float *>cnp.PyArray_DATA(y)
    cdef uint8_t *pm = <uint8_t *>cnp.PyArray_DATA(mask)
    cdef size_t n = x.size
    with nogil:
        fnn_dropout_forward(seed, px, py, pm, n, p)


def dropout_backward(cnp.ndarray dy, cnp.ndarray mask, cnp.ndarray dx, double p):
    """dy, dx float32 and mask uint8, C-contiguous, same size; 0 <= p < 1."""
    cdef const float *pdy = <const float *>cnp.PyArray_DATA(dy)
    cdef const uint8_t *pm = <const uint8_t *>cnp.PyArray_DATA(mask)
    cdef float *pdx = <float *>cnp.PyArray_DATA(dx)
    cdef size_t n = dy.size
    with nogil:
        fnn_dropout_backward(pdy, pm, pdx, n, p)


def gaussian_noise_forward(uint64_t seed, cnp.ndarray x, cnp.ndarray y, float std):
    """y = x + std * N(0, 1); x, y float32, C-contiguous, same size."""
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef float *py = <float *>cnp.PyArray_DATA(y)
    cdef size_t n = x.size
    with nogil:
        fnn_gaussian_noise_forward(seed, px, py, n, std)
