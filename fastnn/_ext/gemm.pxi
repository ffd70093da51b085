# SGEMM (csrc/gemm.c). Arguments are validated by fastnn.ops.matmul.

cdef extern from "fastnn.h" nogil:
    int fnn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, Py_ssize_t lda, const float *B, Py_ssize_t ldb,
                  float beta, float *C, Py_ssize_t ldc, const float *bias,
                  int bias_mode, int relu)
    void fnn_sgemm_naive(int trans_a, int trans_b, int M, int N, int K,
                         float alpha, const float *A, Py_ssize_t lda,
                         const float *B, Py_ssize_t ldb, float beta, float *C,
                         Py_ssize_t ldc, const float *bias, int bias_mode,
                         int relu)
    void fnn_gemm_blocking(int *mr, int *nr, int *kc, int *mc, int *nc)


cdef inline float *fptr(cnp.ndarray x):
    return <float *>cnp.PyArray_DATA(x)


cdef inline Py_ssize_t rowstride(cnp.ndarray x):
    return cnp.PyArray_STRIDE(x, 0) // 4


def sgemm(bint trans_a, bint trans_b, int M, int N, int K, float alpha,
          cnp.ndarray a, cnp.ndarray b, float beta, cnp.ndarray c,
          cnp.ndarray bias, int bias_mode, bint relu, bint naive=False):
    """C = alpha op(A) op(B) + beta C (+ bias, ReLU). 2-D float32 arrays with a
    unit-stride last dimension; shapes already checked by the caller."""
    cdef const float *pa = fptr(a)
    cdef const float *pb = fptr(b)
    cdef float *pc = fptr(c)
    cdef const float *pbias = fptr(bias) if bias is not None else NULL
    cdef Py_ssize_t lda = rowstride(a), ldb = rowstride(b), ldc = rowstride(c)
    cdef int status = 0
    with nogil:
        if naive:
            fnn_sgemm_naive(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb,
                            beta, pc, ldc, pbias, bias_mode, relu)
        else:
            status = fnn_sgemm(trans_a, trans_b, M, N, K, alpha, pa, lda, pb,
                               ldb, beta, pc, ldc, pbias, bias_mode, relu)
    check_status(status)


def gemm_blocking():
    cdef int mr, nr, kc, mc, nc
    fnn_gemm_blocking(&mr, &nr, &kc, &mc, &nc)
    return {"mr": mr, "nr": nr, "kc": kc, "mc": mc, "nc": nc}
