#!/usr/bin/env bash
# README command 2: install what is needed, build, and run the whole test
# suite (unit tests, scenario tests). Extra arguments go to ctest.
#   VMXSIM_BUILD=dir        build directory (default build)
#   VMXSIM_SANITIZE=1       ASan + UBSan build (default build-asan)
#   CC=clang                another compiler
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
san=${VMXSIM_SANITIZE:-0}
build=${VMXSIM_BUILD:-build$([ "$san" = 1 ] && echo -asan || true)}
cmake -S . -B "$build" -DVMXSIM_SANITIZE=$([ "$san" = 1 ] && echo ON || echo OFF) >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
