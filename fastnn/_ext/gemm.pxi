# SGEMM (csrc/gemm.c). fastnn.ops.matmul validates the arguments; shapes,
# strides and dtypes are checked again here before C sees a pointer.

from libc.float cimport FLT_MAX

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
    ctypedef struct fnn_packed_b:
        int K, N
    size_t fnn_sgemm_packed_floats(int K, int N)
    void fnn_sgemm_pack_b(int trans_b, int K, int N, const float *B, Py_ssize_t ldb,
                          float *data, fnn_packed_b *out)
    int fnn_sgemm_pb(int trans_a, int M, float alpha, const float *A, Py_ssize_t lda,
                     const fnn_packed_b *B, float beta, float *C, Py_ssize_t ldc,
                     const float *bias, int bias_mode, int relu)
    ctypedef struct fnn_packed_a:
        int M, K
    size_t fnn_sgemm_packed_a_floats(int M, int K)
    void fnn_sgemm_pack_a(int trans_a, int M, int K, const float *A, Py_ssize_t lda,
                          float *data, fnn_packed_a *out)
    int fnn_sgemm_pa(const fnn_packed_a *A, int trans_b, int N, float alpha, const float *B,
                     Py_ssize_t ldb, float beta, float *C, Py_ssize_t ldc)
    void fnn_sum_rows(Py_ssize_t rows, Py_ssize_t cols, const float *x, Py_ssize_t ldx,
                      float *out, int acc)
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
          c, bias, int bias_mode, bint relu, bint naive=False, prepacked=False):
    """C = alpha op(A) op(B) + beta C (+ bias, ReLU). 2-D float32 arrays with a
    unit-stride last dimension; every shape and stride checked here.
    prepacked (for the tests of the paths the recurrent layers take): True or
    "b", op(B) packed first (fnn_sgemm_pack_b), then fnn_sgemm_pb; "a", op(A)
    packed first (fnn_sgemm_pack_a), then fnn_sgemm_pa (no bias or ReLU)."""
    if prepacked not in (False, True, "a", "b"):
        raise ValueError(f"sgemm: prepacked must be False, True, 'a' or 'b', got {prepacked!r}")
    if prepacked == "a" and (bias_mode != 0 or relu):
        raise ValueError("sgemm: prepacked='a' takes no bias and no ReLU")
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
    cdef fnn_packed_b packed
    cdef fnn_packed_a packed_a
    cdef cnp.ndarray P
    cdef float *pp
    if prepacked == "a" and not naive:
        P = np.empty(max(<Py_ssize_t>fnn_sgemm_packed_a_floats(M, K), 1), np.float32)
        pp = <float *>cnp.PyArray_DATA(P)
        with nogil:
            fnn_sgemm_pack_a(trans_a, M, K, pa, lda, pp, &packed_a)
            status = fnn_sgemm_pa(&packed_a, trans_b, N, alpha, pb, ldb, beta, pc, ldc)
        check_status(status)
        return
    if prepacked and not naive:
        P = np.empty(max(<Py_ssize_t>fnn_sgemm_packed_floats(K, N), 1), np.float32)
        pp = <float *>cnp.PyArray_DATA(P)
        with nogil:
            fnn_sgemm_pack_b(trans_b, K, N, pb, ldb, pp, &packed)
            status = fnn_sgemm_pb(trans_a, M, alpha, pa, lda, &packed, beta, pc, ldc, pbias,
                                  bias_mode, relu)
        check_status(status)
        return
    with nogil:
        if naive:
            fnn_sgemm_naive(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb,
                            beta, pc, ldc, pbias, bias_mode, relu)
        else:
            status = fnn_sgemm(trans_a, trans_b, M, N, K, alpha, pa, lda, pb,
                               ldb, beta, pc, ldc, pbias, bias_mode, relu)
    check_status(status)


cdef inline int _plain2d(object x, bint out, Py_ssize_t *rows, Py_ssize_t *cols,
                         Py_ssize_t *ld):
    """The layouts ops.matmul's fast path takes: x an exact ndarray, float32,
    2-D, aligned, not overlapping itself, writeable for an output. 1: rows
    contiguous at a stride of ld >= cols floats; 2 (not for an output): columns
    contiguous, as x.T of such an array (a ``w.T`` view), described as that
    array: rows x cols at stride ld. 0: anything else."""
    if type(x) is not np.ndarray:
        return 0
    cdef cnp.ndarray a = <cnp.ndarray>x
    if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or cnp.PyArray_NDIM(a) != 2:
        return 0
    if not cnp.PyArray_ISALIGNED(a) or (out and not cnp.PyArray_ISWRITEABLE(a)):
        return 0
    cdef Py_ssize_t r = a.shape[0], c = a.shape[1]
    cdef Py_ssize_t s0 = cnp.PyArray_STRIDE(a, 0), s1 = cnp.PyArray_STRIDE(a, 1)
    cdef int kind = 1
    if c > 1 and s1 != 4:
        if out or s0 != 4 or r <= 1:
            return 0
        kind, r, c, s0 = 2, c, r, s1         # the transpose, rows contiguous
    rows[0], cols[0], ld[0] = r, c, (s0 // 4 if r > 1 else max(c, 1))
    return kind if r <= 1 or (s0 % 4 == 0 and s0 >= 4 * c) else 0


cdef inline bint _disjoint(const float *x, Py_ssize_t xr, Py_ssize_t xc, Py_ssize_t xld,
                           const float *y, Py_ssize_t yr, Py_ssize_t yc, Py_ssize_t yld):
    """The ranges of two row-major blocks (rows x cols at stride ld) do not meet."""
    if xr * xc == 0 or yr * yc == 0:
        return True
    return x + (xr - 1) * xld + xc <= y or y + (yr - 1) * yld + yc <= x


def sgemm_plain(a, b, bint trans_a, bint trans_b, alpha, beta, out):
    """ops.matmul's common case -- float32 operands with rows or (a .T view)
    columns contiguous, an out with rows contiguous overlapping neither,
    finite float alpha and beta, no bias -- checked at C speed (the Python
    checks cost 4-8 us, as much as a 64 x 10 x 256 product). Returns True
    when done, False (nothing done) for anything else, which the Python path
    then takes and explains."""
    cdef Py_ssize_t ra = 0, ca = 0, lda = 0, rb = 0, cb = 0, ldb = 0, M = 0, N = 0, ldc = 0
    cdef int ka = _plain2d(a, False, &ra, &ca, &lda)
    cdef int kb = _plain2d(b, False, &rb, &cb, &ldb)
    if ka == 0 or kb == 0 or _plain2d(out, True, &M, &N, &ldc) != 1:
        return False
    if type(alpha) is not float or type(beta) is not float:
        return False
    cdef double al = alpha, be = beta
    if not (-FLT_MAX <= al <= FLT_MAX and -FLT_MAX <= be <= FLT_MAX):
        return False
    cdef bint ta = trans_a != (ka == 2), tb = trans_b != (kb == 2)
    cdef Py_ssize_t K = ra if ta else ca
    if (ca if ta else ra) != M or (cb if tb else rb) != K or (rb if tb else cb) != N:
        return False
    if max(M, N, K) > 2147483647:
        return False
    cdef const float *pa = <const float *>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef float *pc = <float *>cnp.PyArray_DATA(<cnp.ndarray>out)
    if not (_disjoint(pc, M, N, ldc, pa, ra, ca, lda) and _disjoint(pc, M, N, ldc, pb, rb, cb, ldb)):
        return False
    cdef int status
    with nogil:
        status = fnn_sgemm(ta, tb, <int>M, <int>N, <int>K, <float>al, pa, lda, pb,
                           ldb, <float>be, pc, ldc, NULL, FNN_BIAS_NONE, 0)
    check_status(status)
    return True


def sum_rows(x, out, bint acc):
    """out (C,) = [out +] x.sum(axis=0) for a C-contiguous float32 x (N, C),
    each column summed in float64 over the rows in order."""
    cdef cnp.ndarray xa = _arr(x, "x", cnp.NPY_FLOAT32, -1, False, 2)
    cdef Py_ssize_t n = xa.shape[0], c = xa.shape[1]
    cdef float *po = <float *>_ptr(out, "out", cnp.NPY_FLOAT32, c, True, False, 1)
    cdef const float *px = <const float *>cnp.PyArray_DATA(xa)
    if not _disjoint(px, 1, n * c, n * c, po, 1, c, c):
        raise ValueError("out: must not overlap x")
    with nogil:
        fnn_sum_rows(n, c, px, c, po, acc)


def gemm_blocking():
    cdef int mr, nr, kc, mc, nc
    fnn_gemm_blocking(&mr, &nr, &kc, &mc, &nc)
    return {"mr": mr, "nr": nr, "kc": kc, "mc": mc, "nc": nc}


cdef extern from "gemm_kernels.h" nogil:
    ctypedef struct fnn_cache:
        long size
        int ways, line, sets, shared
    ctypedef struct fnn_caches:
        fnn_cache l1d, l2, l3
        int source
    int fnn_cache_cpuid(fnn_caches *cs)
    int fnn_cache_sysfs(fnn_caches *cs, const char *root)
    const fnn_caches *fnn_caches_detected()
    void fnn_cache_defaults(fnn_caches *cs)
    void fnn_gemm_block_model(const fnn_caches *cs, int mr, int nr, int elem,
                              int *kc, int *mc, int *nc)
    ctypedef struct fnn_gemm_blocks:
        int kc, mc, nc
        const char *source
    int fnn_gemm_nc_far(const fnn_gemm_blocks *b, const fnn_caches *cs, int mr, int nr, int kc,
                        ptrdiff_t ldc, int elem)
    int fnn_gemm_set_blocking(int kc, int mc, int nc)
    const char *fnn_gemm_blocking_source()
    const char *fnn_gemm_kernel_name()

CACHE_SOURCES = ("defaults", "cpuid", "sysfs")


cdef dict _cache_dict(const fnn_cache *c):
    return {"size": c.size, "ways": c.ways, "line": c.line, "sets": c.sets,
            "shared": c.shared}


cdef dict _caches_dict(const fnn_caches *cs):
    return {"l1d": _cache_dict(&cs.l1d), "l2": _cache_dict(&cs.l2),
            "l3": _cache_dict(&cs.l3), "source": CACHE_SOURCES[cs.source]}


def cache_info(str source="detected", str root=None):
    """Caches as a dict per level: 'detected' (what the GEMM uses: cpuid, then
    sysfs, then defaults), or only 'cpuid' / 'sysfs' / 'defaults' (None if
    unavailable). root: a sysfs cache directory other than cpu0's (tests)."""
    cdef fnn_caches cs
    cdef bytes broot
    if source == "detected":
        return _caches_dict(fnn_caches_detected())
    if source == "cpuid":
        return _caches_dict(&cs) if fnn_cache_cpuid(&cs) else None
    if source == "defaults":
        fnn_cache_defaults(&cs)
        return _caches_dict(&cs)
    if source == "sysfs":
        if root is None:
            return _caches_dict(&cs) if fnn_cache_sysfs(&cs, NULL) else None
        broot = root.encode()
        return _caches_dict(&cs) if fnn_cache_sysfs(&cs, broot) else None
    raise ValueError("cache_info: source must be 'detected', 'cpuid', 'sysfs' or 'defaults', "
                     f"got {source!r}")


cdef void _fill_cache(fnn_cache *c, level):
    size, ways, line, shared = level
    c.size = size
    c.ways = ways
    c.line = line
    c.sets = size // (ways * line) if size and ways and line else 0
    c.shared = shared


def gemm_block_model(l1, l2, l3, int mr, int nr):
    """The blocking model (gemm_blocking.c) on a described machine: each level
    is (size_bytes, ways, line_bytes, cpus_sharing); l3 size 0 = no L3.
    Returns (kc, mc, nc). For tests and docs; needs no such CPU."""
    cdef fnn_caches cs
    cdef int kc, mc, nc
    _fill_cache(&cs.l1d, l1)
    _fill_cache(&cs.l2, l2)
    _fill_cache(&cs.l3, l3)
    cs.source = 0
    fnn_gemm_block_model(&cs, mr, nr, 4, &kc, &mc, &nc)
    return kc, mc, nc


def gemm_nc_far(l1, l2, l3, int mr, int nr, Py_ssize_t ldc, bint model=True):
    """The NC the GEMM takes on a described machine (as gemm_block_model)
    where C streams from memory with rows ldc floats apart: the model's NC with
    L2 ways left to C's rows (gemm_blocking.c, fnn_gemm_nc_far). model=False:
    blocks that are not the model's (tuned or overridden), kept as they are.
    For tests and docs."""
    cdef fnn_caches cs
    cdef fnn_gemm_blocks b
    _fill_cache(&cs.l1d, l1)
    _fill_cache(&cs.l2, l2)
    _fill_cache(&cs.l3, l3)
    cs.source = 0
    fnn_gemm_block_model(&cs, mr, nr, 4, &b.kc, &b.mc, &b.nc)
    b.source = b"model" if model else b"tuned"
    return fnn_gemm_nc_far(&b, &cs, mr, nr, b.kc, ldc, 4)


def gemm_kernel_name():
    """The GEMM micro-kernel in use, e.g. 'avx512 8x48' or 'neon 8x12'."""
    return fnn_gemm_kernel_name().decode()


def gemm_blocking_source():
    """Where the blocking of the path in use comes from: 'model', 'tuned' or
    'FASTNN_GEMM_BLOCKING'."""
    return fnn_gemm_blocking_source().decode()


def set_gemm_blocking(int kc, int mc, int nc):
    """Override the blocking of every path (0, 0, 0 restores the default).
    Returns 0, or -1 if out of range."""
    return fnn_gemm_set_blocking(kc, mc, nc)
