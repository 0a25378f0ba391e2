#!/usr/bin/env bash
# Guest MIPS of straight-line loops under `vmxsim run` against the same code
# under bare Unicorn with no hooks, in one run. Prints ratios (vmxsim/bare).
# usage: bench/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cmake --build "$build" -j"$(nproc)" --target vmxsim bare_unicorn guest_bench_reg_loop guest_bench_mem_loop >/dev/null
insns=$((100000000 * 8))
now() { date +%s.%N; }
printf "%-10s %12s %12s %8s\n" loop "bare MIPS" "vmxsim MIPS" ratio
for loop in reg_loop mem_loop; do
    img="$build/guests/bench_$loop.flat"
    # best of three runs each (the machine may be busy)
    bare=9999 sim=9999
    for _ in 1 2 3; do
        b=$("$build/bench/bare_unicorn" "$img")
        t0=$(now); "$build/vmxsim" run "$img" --mem 64M >/dev/null || [ $? = 1 ]; t1=$(now)
        bare=$(awk -v a="$bare" -v b="$b" 'BEGIN { print (b < a) ? b : a }')
        sim=$(awk -v a="$sim" -v t0="$t0" -v t1="$t1" 'BEGIN { s = t1 - t0; print (s < a) ? s : a }')
    done
    awk -v n="$insns" -v b="$bare" -v s="$sim" -v l="$loop" \
        'BEGIN { printf "%-10s %12.0f %12.0f %8.2f\n", l, n/b/1e6, n/s/1e6, (n/s)/(n/b) }'
done
