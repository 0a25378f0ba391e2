#!/usr/bin/env bash
# Bad input through the CLI ends in a clear message and exit status 2,
# never a crash: missing file, empty file, truncated ELF, wrong machine,
# a segment outside RAM, unknown CPU model, bad options.
# usage: bad_images.sh VMXSIM GOOD_ELF64
set -u
vmxsim=$1 good=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

expect() { # name, expected-substring, command...
    local name=$1 want=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc != 2 ]; then echo "FAIL $name: exit $rc, expected 2"; fail=1; fi
    if ! grep -qi -- "$want" "$tmp/err"; then echo "FAIL $name: stderr lacks '$want':"; cat "$tmp/err"; fail=1; fi
    if grep -qiE 'sanitizer|segmentation|core dumped' "$tmp/err"; then echo "FAIL $name: crashed"; fail=1; fi
}

patch_byte() { # file offset value
    printf "$(printf '\\x%02x' "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

expect missing "cannot open" "$vmxsim" run "$tmp/nonexistent.elf"
: >"$tmp/empty"
expect empty "image" "$vmxsim" run "$tmp/empty"
head -c 40 "$good" >"$tmp/trunc_hdr"
expect truncated-header "trunc" "$vmxsim" run "$tmp/trunc_hdr"
size=$(stat -c %s "$good")
head -c $((size / 2)) "$good" >"$tmp/trunc_half"
"$vmxsim" run "$tmp/trunc_half" >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc != 2 ] && [ $rc != 4 ] && [ $rc != 8 ]; then echo "FAIL truncated-half: exit $rc"; fail=1; fi
cp "$good" "$tmp/arm"; patch_byte "$tmp/arm" 18 0x28   # e_machine = EM_ARM
expect wrong-machine "machine" "$vmxsim" run "$tmp/arm"
cp "$good" "$tmp/far"
phoff=$(od -An -t u8 -j 32 -N 8 "$good" | tr -d ' ')
patch_byte "$tmp/far" $((phoff + 24 + 4)) 0x40          # first p_paddr += 1 TiB
expect outside-ram "ram" "$vmxsim" run "$tmp/far"
expect bad-cpu "unknown" "$vmxsim" run "$good" --cpu no-such-cpu
expect bad-feature "unknown" "$vmxsim" run "$good" --cpu "$("$vmxsim" cpu list | head -1 | cut -d' ' -f1),+no-such-feature"
expect bad-mem "mem" "$vmxsim" run "$good" --mem lots
expect bad-option "usage" "$vmxsim" run "$good" --frobnicate
exit $fail
