# Runtime: ISA dispatch, threads, build facts (csrc/cpu.c).

cdef extern from "fastnn.h" nogil:
    int FNN_OK
    int FNN_ENOMEM
    int FNN_EINDEX
    double fnn_get_par_flops()
    double fnn_pool_handoff_ns()
    void fnn_pool_set_far(int mode)
    void fnn_set_par_flops(double flops)
    void fnn_ws_release()
    size_t fnn_ws_bytes()
    size_t fnn_ws_allocs()
    int fnn_cpu_best_isa()
    int fnn_get_isa()
    int fnn_set_isa(int isa)
    const char *fnn_isa_name(int isa)
    void fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    int fnn_tune_malloc()

cdef extern from *:
    """
    #ifndef FNN_BUILD_CFLAGS
    #define FNN_BUILD_CFLAGS "unknown"
    #endif
    #ifndef FNN_BUILD_CC
    #define FNN_BUILD_CC "cc"
    #endif
    #ifdef __VERSION__
    #define FNN_CC_VERSION __VERSION__
    #else
    #define FNN_CC_VERSION "unknown"
    #endif
    """
    const char *FNN_BUILD_CFLAGS
    const char *FNN_BUILD_CC
    const char *FNN_CC_VERSION

ISA_NAMES = ("ref", "avx2", "avx512")


# ------------------------------------------------ the trust boundary --
# Every wrapper checks what it hands to C through these: a wrong call from
# Python raises TypeError (not an array, wrong dtype) or ValueError (layout,
# size, read-only output), never reaches C with a bad pointer.

cdef dict _DTYPE_NAMES = {cnp.NPY_FLOAT32: "float32", cnp.NPY_FLOAT64: "float64",
                          cnp.NPY_INT64: "int64", cnp.NPY_INT32: "int32",
                          cnp.NPY_UINT32: "uint32", cnp.NPY_UINT8: "uint8"}


cdef cnp.ndarray _arr(object a, str name, int typenum, Py_ssize_t size=-1, bint out=False,
                      int ndim=-1, bint contig=True):
    """a, checked: an ndarray of dtype `typenum`, C-contiguous (if contig),
    with `size` elements and `ndim` dimensions (when >= 0), writeable (if out)."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name}: expected a numpy {_DTYPE_NAMES[typenum]} array, "
                        f"got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{name}: expected dtype {_DTYPE_NAMES[typenum]}, got {arr.dtype}")
    if ndim >= 0 and cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {(<object>arr).shape}")
    if contig and not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name}: must be C-contiguous")
    if size >= 0 and cnp.PyArray_SIZE(arr) != size:
        raise ValueError(f"{name}: expected {size} elements, got shape {(<object>arr).shape}")
    if out and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name}: is read-only")
    return arr


cdef void *_ptr(object a, str name, int typenum, Py_ssize_t size=-1, bint out=False,
                bint opt=False, int ndim=-1) except? NULL:
    """Data pointer of a checked array (_arr); None gives NULL when opt."""
    if a is None and opt:
        return NULL
    return cnp.PyArray_DATA(_arr(a, name, typenum, size, out, ndim))


cdef inline float *_f32(object a, str name, Py_ssize_t size=-1, bint out=False,
                        bint opt=False) except? NULL:
    return <float *>_ptr(a, name, cnp.NPY_FLOAT32, size, out, opt)


cdef inline double *_f64(object a, str name, Py_ssize_t size=-1, bint out=False,
                         bint opt=False) except? NULL:
    return <double *>_ptr(a, name, cnp.NPY_FLOAT64, size, out, opt)


cdef inline Py_ssize_t _size(object a, str name, int typenum) except -1:
    """Element count of a checked (any-shape, C-contiguous) array."""
    return cnp.PyArray_SIZE(_arr(a, name, typenum))


cdef inline int _as_int(Py_ssize_t v, str name) except -1:
    if v < 0 or v > 2147483647:
        raise ValueError(f"{name}: {v} does not fit the kernel's int")
    return <int>v


cdef inline int check_status(int status) except -1:
    if status == FNN_ENOMEM:
        raise MemoryError("fastnn: kernel could not allocate its workspace")
    if status != FNN_OK:
        raise RuntimeError(f"fastnn: kernel failed with status {status}")
    return 0


cdef int check_loss_status(int status, object target, Py_ssize_t C) except -1:
    """FNN_EINDEX: name the first class index outside [0, C)."""
    if status == FNN_EINDEX:
        t = cnp.PyArray_Ravel(<cnp.ndarray>target, cnp.NPY_CORDER)
        bad = t[(t < 0) | (t >= C)]
        first = int(bad[0]) if bad.size else None
        raise ValueError(f"target: class index {first} is out of range [0, {C})")
    return check_status(status)


def best_isa():
    return ISA_NAMES[fnn_cpu_best_isa()]


def get_isa():
    return ISA_NAMES[fnn_get_isa()]


def set_isa(int isa):
    return fnn_set_isa(isa)


def set_num_threads(int n):
    fnn_set_num_threads(n)


def get_num_threads():
    return fnn_get_num_threads()


def tune_malloc():
    return bool(fnn_tune_malloc())


def build_info():
    return {
        "compiler": FNN_BUILD_CC.decode(),
        "compiler_version": FNN_CC_VERSION.decode(),
        "cflags": FNN_BUILD_CFLAGS.decode(),
    }


def release_workspace():
    """Free the scratch arenas of the calling thread and its worker threads."""
    with nogil:
        fnn_ws_release()


def workspace_bytes():
    return fnn_ws_bytes()


def workspace_allocations():
    return fnn_ws_allocs()


def get_parallel_flops():
    return fnn_get_par_flops()


def pool_handoff_ns():
    return fnn_pool_handoff_ns()


def set_pool_far(mode):
    """Plan multi-thread kernels as if the threads were near (0, one L3) or
    far (1); None goes back to the measured handoff. Tests and experiments."""
    if mode is None:
        fnn_pool_set_far(-1)
    elif mode in (0, 1) and not isinstance(mode, float):
        fnn_pool_set_far(int(mode))
    else:
        raise ValueError(f"set_pool_far: mode must be 0, 1 or None, not {mode!r}")


def set_parallel_flops(double flops):
    fnn_set_par_flops(flops)
