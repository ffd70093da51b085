# cython: language_level=3
"""fastnn's compiled core: one extension module, one included .pxi per C
kernel family (csrc/<family>.c <-> fastnn/_ext/<family>.pxi). The wrappers are
thin: arguments arrive validated from the Python layer; they take raw
pointers, release the GIL and call C."""
cimport numpy as cnp

cnp.import_array()

include "runtime.pxi"
include "gemm.pxi"
include "data.pxi"
include "rng.pxi"
include "augment.pxi"
include "loss.pxi"
include "optim.pxi"
include "bench.pxi"
include "act.pxi"
