#!/usr/bin/env bash
# tools/core_pingpong.sh [CPU_A CPU_B [ROUNDS]]   (default 0 1 100000)
#
# The round trip of a cache line between two CPUs (tools/core_pingpong.c):
# tens of ns when they share an L3, hundreds when they do not. On a VM, run
# it before and after a benchmark run: the hypervisor may move the vCPUs
# between L3s within minutes, and 2-thread figures move with it (bench/
# RESULTS.md, "Issue 11: an eleventh session"). Not while a benchmark runs:
# it keeps both CPUs busy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fastnn-pingpong.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
gcc -O2 -std=c11 -pthread -o "$tmp/core_pingpong" "$root/tools/core_pingpong.c"
"$tmp/core_pingpong" "$@"
