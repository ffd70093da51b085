#!/usr/bin/env bash
# Cross-compile every kernel for aarch64 (the NEON GEMM kernel and the
# portable paths) and run the C GEMM check (tools/gemm_check.c: against the
# naive twin, 1 vs 2 threads bitwise) under qemu user-mode emulation.
# Needs gcc-aarch64-linux-gnu and qemu-user or qemu-user-static (Debian:
# apt-get install gcc-aarch64-linux-gnu qemu-user). Exit status 77 (and a
# message) when either is missing, so callers can skip.
set -euo pipefail
cd "$(dirname "$0")/.."
cc=${AARCH64_CC:-aarch64-linux-gnu-gcc}
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if ! command -v "$cc" >/dev/null || [ -z "$qemu" ]; then
    echo "aarch64_check: needs $cc and qemu-aarch64(-static); not found" >&2
    exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$cc" -O2 -std=c11 -ffp-contract=off -fno-math-errno -pthread -Wall \
    -Wno-unused-function -Wno-unknown-pragmas -static csrc/*.c tools/gemm_check.c -lm -o "$out/gemm_check"
OMP_NUM_THREADS=2 "$qemu" "$out/gemm_check"
