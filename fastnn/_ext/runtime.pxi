# Runtime: ISA dispatch, threads, build facts (csrc/cpu.c).

cdef extern from "fastnn.h" nogil:
    int FNN_OK
    int FNN_ENOMEM
    int FNN_EINDEX
    double fnn_get_par_flops()
    void fnn_set_par_flops(double flops)
    int fnn_forked_single()
    void fnn_ws_release()
    size_t fnn_ws_bytes()
    size_t fnn_ws_allocs()
    int fnn_cpu_best_isa()
    int fnn_get_isa()
    int fnn_set_isa(int isa)
    const char *fnn_isa_name(int isa)
    void fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    int fnn_have_openmp()

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


def build_info():
    return {
        "openmp": bool(fnn_have_openmp()),
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


def forked_single_threaded():
    return bool(fnn_forked_single())


def get_parallel_flops():
    return fnn_get_par_flops()


def set_parallel_flops(double flops):
    fnn_set_par_flops(flops)
