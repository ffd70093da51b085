# Runtime: ISA dispatch, threads, build facts (csrc/cpu.c).

cdef extern from "fastnn.h" nogil:
    int FNN_OK
    int FNN_ENOMEM
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
    return 0


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
