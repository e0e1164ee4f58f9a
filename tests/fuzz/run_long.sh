#!/usr/bin/env bash
# Runs fuzz targets for a long time each (by hand, not in CI) and prints libFuzzer's final
# figures, for docs/RELIABILITY.md.
#
#   tests/fuzz/run_long.sh BUILD_DIR SECONDS TARGET...     e.g. build-fuzz 600 http ws
#
# Each target fuzzes into its own work corpus under BUILD_DIR/fuzz-long/<target> (kept between
# runs), reads the committed seeds, and logs to BUILD_DIR/fuzz-long/<target>.log. Crashes land in
# BUILD_DIR/fuzz-long/<target>-crash-*. UBSan findings listed in known.supp (reported, not yet
# fixed) are let through so the time goes to new ones.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "$1" && pwd)"
seconds="$2"
shift 2
out="$build/fuzz-long"
mkdir -p "$out"
declare -A max_len=([http]=16384 [ws]=8192 [id]=2048 [sse]=8192 [url]=4096 [app]=8192
                   [http_response]=16384)
for t in "$@"; do
    bin="$build/fuzz_$t"
    [ -x "$bin" ] || bin="$build/tests/fuzz/fuzz_$t"
    [ -x "$bin" ] || { echo "no fuzz_$t in $build" >&2; exit 2; }
    mkdir -p "$out/$t"
    dict=()
    [ -f "$here/dict/$t.dict" ] && dict=(-dict="$here/dict/$t.dict")
    echo "fuzz_$t: ${seconds}s, log $out/$t.log"
    rc=0
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$here/known.supp" \
        nice -n 10 "$bin" -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" -artifact_prefix="$out/$t-" \
        "$out/$t" "$here/corpus/$t" > "$out/$t.log" 2>&1 || rc=$?
    # The last status line has cov: and ft:; the final stats give the executions.
    grep -E "^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)" "$out/$t.log" | tail -1 || true
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" \
        "$out/$t.log" || true
    [ "$rc" -eq 0 ] || echo "fuzz_$t exited $rc: see $out/$t.log" >&2
done
