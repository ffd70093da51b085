# SGEMM (csrc/gemm.c). fastnn.ops.matmul validates the arguments; shapes,
# strides and dtypes are checked again here before C sees a pointer.

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
    int FNN_BIAS_NONE
    int FNN_BIAS_COL
    int FNN_BIAS_ROW


cdef cnp.ndarray _operand(object x, str name, Py_ssize_t rows, Py_ssize_t cols, bint out):
    """A 2-D float32 array of shape (rows, cols) whose rows are contiguous
    (unit last stride) at a row stride that is a multiple of 4 bytes: any for
    an input (negative: reversed rows, 0: a broadcast row), at least a row
    apart for the output."""
    cdef cnp.ndarray a = _arr(x, name, cnp.NPY_FLOAT32, -1, out, 2, False)
    if a.shape[0] != rows or a.shape[1] != cols:
        raise ValueError(f"{name}: expected shape ({rows}, {cols}), got {(<object>a).shape}")
    cdef Py_ssize_t rs = cnp.PyArray_STRIDE(a, 0)
    if rows > 0 and cols > 0:
        if cols > 1 and cnp.PyArray_STRIDE(a, 1) != 4:
            raise ValueError(f"{name}: rows must be contiguous (unit last stride)")
        if rows > 1 and (rs % 4 != 0 or (out and abs(rs) < 4 * cols)):
            raise ValueError(f"{name}: row stride of {rs} bytes is not usable")
    return a


cdef inline Py_ssize_t rowstride(cnp.ndarray x):
    return cnp.PyArray_STRIDE(x, 0) // 4 if x.shape[0] > 1 else max(x.shape[1], 1)


def sgemm(bint trans_a, bint trans_b, int M, int N, int K, float alpha, a, b, float beta,
          c, bias, int bias_mode, bint relu, bint naive=False):
    """C = alpha op(A) op(B) + beta C (+ bias, ReLU). 2-D float32 arrays with a
    unit-stride last dimension; every shape and stride checked here."""
    if M < 0 or N < 0 or K < 0:
        raise ValueError(f"sgemm: M, N, K must be >= 0, got {M}, {N}, {K}")
    if bias_mode not in (FNN_BIAS_NONE, FNN_BIAS_COL, FNN_BIAS_ROW):
        raise ValueError(f"sgemm: bias_mode must be 0, 1 or 2, got {bias_mode}")
    cdef cnp.ndarray A = _operand(a, "a", K if trans_a else M, M if trans_a else K, False)
    cdef cnp.ndarray B = _operand(b, "b", N if trans_b else K, K if trans_b else N, False)
    cdef cnp.ndarray Cm = _operand(c, "c", M, N, True)
    cdef const float *pbias = NULL
    if bias_mode != FNN_BIAS_NONE:
        pbias = _f32(bias, "bias", N if bias_mode == FNN_BIAS_COL else M)
    cdef const float *pa = <const float *>cnp.PyArray_DATA(A)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(B)
    cdef float *pc = <float *>cnp.PyArray_DATA(Cm)
    cdef Py_ssize_t lda = rowstride(A), ldb = rowstride(B), ldc = rowstride(Cm)
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
