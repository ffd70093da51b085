# Batch gather for the DataLoader (csrc/data.c). Arguments are validated by
# fastnn.data.loader.

from libc.stdint cimport int64_t

cdef extern from "fastnn.h" nogil:
    void fnn_gather_rows(const void *src, Py_ssize_t src_stride,
                         const int64_t *idx, Py_ssize_t B, size_t row_bytes,
                         void *dst)


def gather_rows(cnp.ndarray src, cnp.ndarray idx, cnp.ndarray dst,
                Py_ssize_t row_bytes):
    """dst[b] = src[idx[b]] row by row. src: rows of row_bytes contiguous bytes
    at stride src.strides[0]; idx: contiguous int64 in [0, len(src)); dst:
    C-contiguous, len(idx) rows of row_bytes."""
    cdef const void *ps = cnp.PyArray_DATA(src)
    cdef Py_ssize_t stride = cnp.PyArray_STRIDE(src, 0)
    cdef const int64_t *pi = <const int64_t *>cnp.PyArray_DATA(idx)
    cdef Py_ssize_t B = cnp.PyArray_DIM(idx, 0)
    cdef void *pd = cnp.PyArray_DATA(dst)
    with nogil:
        fnn_gather_rows(ps, stride, pi, B, <size_t>row_bytes, pd)
