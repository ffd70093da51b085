#!/usr/bin/env bash
# Cross-compile every kernel for aarch64 (portable paths only) and run the C
# GEMM check under qemu. Needs Debian's gcc-aarch64-linux-gnu and
# qemu-user-static (apt-get install gcc-aarch64-linux-gnu qemu-user-static).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
aarch64-linux-gnu-gcc -O3 -std=c11 -ffp-contract=off -fno-math-errno -fopenmp -Wall \
    -Wno-unused-function -static csrc/*.c tools/gemm_check.c -lm -o "$out/gemm_check"
qemu-aarch64-static "$out/gemm_check"
