#!/bin/sh
# Build the minivisor image: build.sh OUTDIR  ->  OUTDIR/minivisor.elf
# Environment: CC (default gcc), LD (default ld: GNU ld).
# Freestanding C + GNU as, linked at 1 MiB with minivisor.ld.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
CC=${CC:-gcc}
LD=${LD:-ld}

# The flags of examples/minivisor/README.md; the last line keeps distribution
# defaults (PIE, CET endbr64, unwind tables) out of a freestanding image.
CFLAGS="-std=gnu11 -ffreestanding -fno-pic -fno-stack-protector -mno-red-zone \
 -mgeneral-regs-only -nostdlib -static -O2 -Wall -Wextra -Werror \
 -fno-pie -fcf-protection=none -fno-asynchronous-unwind-tables"
case $($CC --version 2>/dev/null | head -n 1) in
*clang*) CFLAGS="$CFLAGS -Wno-unused-command-line-argument" ;; # -nostdlib/-static at -c
esac

mkdir -p "$out/obj"
objs=""
for src in entry.S main.c serial.c vmx.c exit.c guest.c; do
    obj="$out/obj/${src%.*}.o"
    # shellcheck disable=SC2086  # CFLAGS is a list of words
    $CC $CFLAGS -c "$here/$src" -o "$obj"
    objs="$objs $obj"
done
# shellcheck disable=SC2086
$LD -m elf_x86_64 -nostdlib -static -z max-page-size=0x1000 -z noexecstack \
    -T "$here/minivisor.ld" -o "$out/minivisor.elf" $objs
echo "$out/minivisor.elf"
