#!/usr/bin/env bash
# Runs every test: set-up (packages, configure, build), then ctest.
# FRESHET_SANITIZE=1 builds into build-asan/ with AddressSanitizer and UndefinedBehaviorSanitizer
# (leaks fail) and runs the same suite against that binary, then a short run of each libFuzzer
# target (clang, build-fuzz/; FRESHET_FUZZ_SECONDS each, 20 by default).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${FRESHET_SANITIZE:-0}" = "1" ]; then
    build="$root/build-asan"
    "$root/scripts/setup.sh" "$build" -DFRESHET_SANITIZE=ON
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=23"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
else
    build="$root/build"
    "$root/scripts/setup.sh" "$build"
fi
cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"

if [ "${FRESHET_SANITIZE:-0}" = "1" ]; then
    fuzz="$root/build-fuzz"
    cmake -S "$root" -B "$fuzz" -DCMAKE_C_COMPILER=clang -DFRESHET_FUZZ=ON \
        -DFRESHET_FUZZ_SECONDS="${FRESHET_FUZZ_SECONDS:-20}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$fuzz" --target fuzz_all -j"$(nproc)"
    cd "$fuzz"
    ctest -L fuzz --output-on-failure
fi
