#!/usr/bin/env bash
# TLB fills per second and guest run time of a page-touching loop under
# native paging and under 4-level EPT ("4x4": 4 KiB pages in a 4-level guest
# page table, each of whose accesses and the final address go through a
# 4-level EPT walk with 4 KiB EPT pages).
#   native: bench/pagetouch.S, a 64-bit flat image without VMX;
#   EPT:    the minivisor (the built-in demo) in "touch=N touch_rounds=R" mode,
#           the same four-instruction loop as its guest.
# Each reads and writes the first quadword of N distinct 4-KiB pages, R
# rounds. With N = 4096 the working set exceeds the TLBs (vmxsim's
# architectural TLB holds 512 4-KiB translations, Unicorn's starts at 256), so
# nearly every touch is a TLB fill ("TLB fills" of VMXSIM_STATS=1: calls of
# Unicorn's TLB-fill hook, each a vmxsim translation). The baseline runs the
# same number of touches over 64 pages, which fit: its time is the loop, the
# boot and (for EPT) the minivisor's set-up without fills, so
#   cost per fill = (time(N pages) - time(64 pages)) / (fills(N) - fills(64)).
# A third run over 384 pages (a fill per touch, but vmxsim's TLB hits, so no
# walk) splits that cost into the hook and the page walk. Wall-clock times,
# best of three runs each.
# usage: bench/paging.sh [BUILD_DIR] [N] [R]     (defaults: build 4096 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
n=${2:-4096}
r=${3:-1000}
small=64 # fits Unicorn's TLB: no fills in the loop
mid=384  # misses Unicorn's TLB (256 entries) but fits vmxsim's (64 sets x 8 ways): fills without walks
cmake --build "$build" -j"$(nproc)" --target vmxsim guest_bench_pagetouch >/dev/null
native_img="$build/guests/bench_pagetouch.flat"
err="$build/bench_paging.err"
now() { date +%s.%N; }

# run MODE PAGES ROUNDS: sets best (seconds, best of three) and fills (TLB fills)
run() {
    local mode=$1 pages=$2 rounds=$3 t0 t1 rc
    local -a img=()
    [ "$mode" = native ] && img=("$native_img")
    best=999999
    for _ in 1 2 3; do
        t0=$(now)
        rc=0
        VMXSIM_STATS=1 "$build/vmxsim" run "${img[@]}" --append "touch=$pages touch_rounds=$rounds" \
            >/dev/null 2>"$err" || rc=$?
        t1=$(now)
        if [ "$rc" != 1 ]; then # 1: the image wrote 0 to port 0xF4 (every round counted)
            echo "bench/paging.sh: $mode touch=$pages touch_rounds=$rounds: exit status $rc" >&2
            cat "$err" >&2
            exit 1
        fi
        best=$(awk -v a="$best" -v t0="$t0" -v t1="$t1" 'BEGIN { s = t1 - t0; print (s < a) ? s : a }')
    done
    fills=$(awk '/TLB fills/ { print $4 }' "$err")
}

touches=$((n * r))
rounds_for() { echo $(((touches + $1 - 1) / $1)); }
printf "page-touching loop: %d pages x %d rounds = %d touches; the same touches over %d pages (baseline)\n" \
    "$n" "$r" "$touches" "$small"
printf "and over %d pages (vmxsim's TLB hits, Unicorn's misses); best of 3 runs each\n" "$mid"
run native "$n" "$r"; nat_t=$best nat_f=$fills
run native "$mid" "$(rounds_for "$mid")"; nat_mt=$best nat_mf=$fills
run native "$small" "$(rounds_for "$small")"; nat_bt=$best nat_bf=$fills
run ept "$n" "$r"; ept_t=$best ept_f=$fills
run ept "$mid" "$(rounds_for "$mid")"; ept_mt=$best ept_mf=$fills
run ept "$small" "$(rounds_for "$small")"; ept_bt=$best ept_bf=$fills
awk -v nt="$nat_t" -v nf="$nat_f" -v nmt="$nat_mt" -v nmf="$nat_mf" -v nbt="$nat_bt" -v nbf="$nat_bf" \
    -v et="$ept_t" -v ef="$ept_f" -v emt="$ept_mt" -v emf="$ept_mf" -v ebt="$ept_bt" -v ebf="$ept_bf" \
    -v touches="$touches" -v mid="$mid" 'function cost(t, f, bt, bf) { return (f > bf) ? (t - bt) / (f - bf) : 0 }
BEGIN {
    nc = cost(nt, nf, nbt, nbf); ec = cost(et, ef, ebt, ebf);
    nm = cost(nmt, nmf, nbt, nbf); em = cost(emt, emf, ebt, ebf);
    printf "%-8s %9s %11s %8s %12s %9s %15s %15s\n", "paging", "time (s)", "TLB fills", "per touch",
           "fills/s", "base (s)", "us/fill (walk)", "us/fill (" mid ")";
    printf "%-8s %9.3f %11d %8.2f %12.0f %9.3f %15.3f %15.3f\n", "native", nt, nf, nf / touches, nf / nt, nbt,
           nc * 1e6, nm * 1e6;
    printf "%-8s %9.3f %11d %8.2f %12.0f %9.3f %15.3f %15.3f\n", "4x4 EPT", et, ef, ef / touches, ef / et, ebt,
           ec * 1e6, em * 1e6;
    printf "EPT/native: time %.2f, TLB fills %.2f, fills per second %.2f, cost per fill %.2f\n",
           et / nt, ef / nf, (ef / et) / (nf / nt), (nc > 0) ? ec / nc : 0;
    printf "per fill: native %.3f us, EPT %.3f us (+%.3f us for the 2-D walk)\n", nc * 1e6, ec * 1e6, (ec - nc) * 1e6;
    printf "per fill without a walk (%d pages: Unicorn'"'"'s TLB misses, vmxsim'"'"'s hits): native %.3f us, EPT %.3f us\n",
           mid, nm * 1e6, em * 1e6;
    printf "the walk alone: native %.3f us, EPT %.3f us (EPT/native %.2f)\n", (nc - nm) * 1e6, (ec - em) * 1e6,
           (nc > nm) ? (ec - em) / (nc - nm) : 0;
}'
