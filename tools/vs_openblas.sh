#!/usr/bin/env bash
# tools/vs_openblas.sh OP M N K [threads] [rounds]
# (env FASTNN_ISA=ref|avx2|avx512 picks fastnn's path, OPENBLAS_CORETYPE=Haswell
# OpenBLAS's AVX2 kernels: the AVX2 paths side by side on an AVX-512 CPU)
#
# fnn_sgemm against the OpenBLAS that numpy links, timed from C (no Python
# call costs), e.g. `tools/vs_openblas.sh NN 256 256 10`: OP is NN, NT, TN or
# TT (op(A) op(B), row-major as ops.matmul). Builds csrc/ with the
# extension's flags into a throwaway directory first. Needs numpy from a
# wheel (its bundled libscipy_openblas64_); PYTHON picks the interpreter.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-python3}
lib=$("$py" - <<'PY'
import glob, os, numpy
d = os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs")
libs = glob.glob(os.path.join(d, "libscipy_openblas64_*.so"))
print(os.path.abspath(libs[0]) if libs else "")
PY
)
if [ -z "$lib" ]; then
    echo "vs_openblas: numpy has no bundled libscipy_openblas64_ (not a wheel install?)" >&2
    exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fastnn-vsob.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
gcc -O3 -std=c11 -ffp-contract=off -fno-math-errno -fno-trapping-math -pthread -Wno-psabi \
    -I"$root/csrc" -o "$tmp/vs_openblas" "$root/tools/vs_openblas.c" "$root"/csrc/*.c \
    "$lib" -Wl,-rpath,"$(dirname "$lib")" -lm
"$tmp/vs_openblas" "$@"
