#!/usr/bin/env bash
# VM exit + VM entry round trips per second: the minivisor's guest executes
# CPUID N times; every CPUID exits and the minivisor resumes the guest.
# Prints the rate and the emulation stops / TLB fills per round trip.
# usage: bench/exits.sh [BUILD_DIR] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-200000}
cmake --build "$build" -j"$(nproc)" --target vmxsim >/dev/null
now() { date +%s.%N; }
best=999999
for _ in 1 2 3; do
    t0=$(now)
    VMXSIM_STATS=1 "$build/vmxsim" run --append "bench=$n" >/dev/null 2>"$build/bench_exits.err" || [ $? = 1 ]
    t1=$(now)
    best=$(awk -v a="$best" -v t0="$t0" -v t1="$t1" 'BEGIN { s = t1 - t0; print (s < a) ? s : a }')
done
stats=$(grep 'stops' "$build/bench_exits.err" || true)
awk -v n="$n" -v s="$best" -v st="$stats" 'BEGIN {
    split(st, f, " ");
    printf "cpuid round trips: %d in %.3f s = %.0f per second (target 1000000: ratio %.3f)\n", n, s, n / s, n / s / 1e6;
    if (f[2] != "") printf "per round trip: %.1f emulation stops, %.1f TLB fills\n", f[2] / n, f[4] / n;
}'
