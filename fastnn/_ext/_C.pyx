# cython: language_level=3
"""fastnn's compiled core: one extension module, one included .pxi per C
kernel family (csrc/<family>.c <-> fastnn/_ext/<family>.pxi). The wrappers are
thin: they check every array they hand to C (dtype, dimensions, layout,
size, writeable outputs: runtime.pxi's _arr/_ptr), take raw pointers,
release the GIL and call C."""
cimport numpy as cnp
import numpy as np

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
include "conv.pxi"
include "norm.pxi"
include "rnn.pxi"
