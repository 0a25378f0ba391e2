#!/usr/bin/env bash
# Run one guest program through the CLI and check what its source promises:
#   # ARGS: ...            extra vmxsim options
#   # EXPECT-OUT: text     a stdout line containing text (in this order)
#   # EXPECT-ERR: text     stderr contains text
#   # EXPECT-EXIT: n       exit status
# "# VARIANT v ..." lines add runs of the same image with other options
# (vmxsim_add_variants in tests/CMakeLists.txt).
# usage: run_scenario.sh VMXSIM GUEST_IMAGE GUEST_SOURCE
set -u
vmxsim=$1 image=$2 src=$3
args=$(sed -n 's/^# ARGS: //p' "$src")
want_exit=$(sed -n 's/^# EXPECT-EXIT: //p' "$src")
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
# shellcheck disable=SC2086
timeout 120 "$vmxsim" run "$image" $args >"$out" 2>"$err"
rc=$?
fail=0
if [ -n "$want_exit" ] && [ "$rc" != "$want_exit" ]; then
    echo "FAIL: exit status $rc, expected $want_exit"; fail=1
fi
# Expected stdout lines, in order.
line=0
while IFS= read -r want; do
    found=0
    while IFS= read -r got; do
        line=$((line + 1))
        case "$got" in *"$want"*) found=1; break ;; esac
    done < <(tail -n +"$((line + 1))" "$out")
    if [ $found = 0 ]; then echo "FAIL: stdout lacks (in order): $want"; fail=1; break; fi
done < <(sed -n 's/^# EXPECT-OUT: //p' "$src")
while IFS= read -r want; do
    grep -qF -- "$want" "$err" || { echo "FAIL: stderr lacks: $want"; fail=1; }
done < <(sed -n 's/^# EXPECT-ERR: //p' "$src")
if [ $fail != 0 ]; then
    echo "--- stdout"; head -c 4000 "$out"; echo "--- stderr"; head -c 4000 "$err"
fi
exit $fail
