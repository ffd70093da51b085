#!/usr/bin/env bash
# tools/asan.sh [pytest args...]
#
# Build fastnn with AddressSanitizer (FASTNN_SANITIZE=address) into a throwaway
# virtual environment and run pytest there with libasan preloaded, e.g.
#     tools/asan.sh -q tests/test_gemm.py
# The exit status is pytest's. The source tree is copied first, so neither its
# in-place extension (pip install -e) nor its build/ directory is touched or
# reused. PYTHON picks the interpreter (default python3); FASTNN_ASAN_KEEP=1
# keeps the scratch directory for a look afterwards.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fastnn-asan.XXXXXX")
if [ "${FASTNN_ASAN_KEEP:-0}" = 1 ]; then
    echo "asan: scratch directory $tmp" >&2
else
    trap 'rm -rf "$tmp"' EXIT
fi

libasan=$(gcc -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
    echo "asan: gcc has no libasan.so ($libasan); install libasan for your gcc" >&2
    exit 2
fi

# 1. Source copy without build products.
mkdir "$tmp/src"
tar -C "$root" --exclude=./.git --exclude=./build --exclude='*.so' --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=./fastnn/_ext/_C.c \
    --exclude=./.venv --exclude=./venv -cf - . | tar -C "$tmp/src" -xf -

# 2. Instrumented build in a fresh venv (numpy/pytest may come from the
#    system site-packages; the build itself runs in pip's isolated env).
"$py" -m venv --system-site-packages "$tmp/venv"
vpy=$tmp/venv/bin/python
echo "asan: building with -fsanitize=address (log: $tmp/build.log)" >&2
if ! FASTNN_SANITIZE=address "$vpy" -m pip install --no-cache-dir "$tmp/src" >"$tmp/build.log" 2>&1; then
    tail -n 30 "$tmp/build.log" >&2
    echo "asan: build failed" >&2
    exit 2
fi
"$vpy" -c "import pytest" 2>/dev/null || "$vpy" -m pip install -q pytest >&2

# 3. Run pytest from the checkout (so relative test paths work) but import the
#    instrumented package: drop the checkout from sys.path before pytest starts.
cd "$root"
run_py() {
    LD_PRELOAD="$libasan" ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}" \
        "$vpy" -c '
import os, sys
here = os.getcwd()
sys.path[:] = [p for p in sys.path if p not in ("", ".", here)]
exec(sys.argv.pop(1))
' "$@"
}
so=$(run_py 'import fastnn._ext._C as m; print(m.__file__)')
case "$so" in
    "$tmp"/venv/*) ;;
    *) echo "asan: imported $so instead of the instrumented build" >&2; exit 2 ;;
esac
if ! ldd "$so" | grep -q libasan; then
    echo "asan: $so is not linked against libasan" >&2
    exit 2
fi
echo "asan: running pytest $* against $so" >&2
set +e
run_py 'import pytest; sys.exit(pytest.main(sys.argv[1:] + ["-p", "no:cacheprovider"]))' "$@"
status=$?
set -e
echo "asan: pytest exited with status $status" >&2
exit $status
