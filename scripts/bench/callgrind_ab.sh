#!/usr/bin/env bash
# Two freshet binaries side by side under callgrind: the user-space instructions each spends per
# delivered event on the same workloads. Instruction counts barely move with machine load, so
# this A/B holds on a shared, noisy machine where wall-clock and CPU-time ratios swing.
#
#   fan-out:     1,000 streams on one topic, 20 events/s (one event per stream per loop pass)
#   many topics: 2,000 topics with one stream each, the publisher flat out (16 in flight)
#
# Each server runs under valgrind with instrumentation off; it is switched on once every stream
# is open and the warm-up is over, and the counts are dumped while the publisher still runs, so
# start-up and connecting cost nothing. Deliveries in the window come from /metrics
# (freshet_events_delivered_total) read right before and after it.
#
# Usage: scripts/bench/callgrind_ab.sh A_BINARY B_BINARY     (e.g. build/freshet and an older
#        build of another commit). Needs valgrind, python3, curl and build/freshet-bench.
# Takes about four minutes. Only the processes it starts are stopped, by PID.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
[ $# -eq 2 ] || { echo "usage: $0 A_BINARY B_BINARY" >&2; exit 2; }
bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua"
for tool in valgrind callgrind_control python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done
[ -x "$bench" ] || { echo "build first: scripts/setup.sh" >&2; exit 2; }
work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
delivered() {
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^freshet_events_delivered_total/ {print $2; exit}'
}

# measure BIN NAME -- bench arguments: prints "instructions deliveries"
measure() {
    local bin=$1 name=$2; shift 3
    local port out="$work/$name.cg"
    port=$(free_port)
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$bin" "$app" --listen "127.0.0.1:$port" --log-level warn >"$work/$name.log" 2>&1 &
    server=$!
    for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.2; done
    "$bench" -p "$port" "$@" --warmup 1 --tail 5 --connect-timeout 120 -q >/dev/null 2>&1 &
    local load=$!
    # Every stream open and the warm-up over: callgrind slows the server ~50x.
    sleep 25
    local d0 d1
    d0=$(delivered "$port")
    callgrind_control -i on "$server" >/dev/null
    sleep 15
    callgrind_control --dump "$server" >/dev/null
    callgrind_control -i off "$server" >/dev/null
    d1=$(delivered "$port")
    wait "$load" || true
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
    local ir
    ir=$(cat "$out".* 2>/dev/null | awk '/^summary:/ {s += $2} END {printf "%d\n", s}')
    echo "$ir $((d1 - d0))"
}

row() {
    local label=$1; shift
    read -r ia da <<<"$(measure "$A" a -- "$@")"
    read -r ib db <<<"$(measure "$B" b -- "$@")"
    python3 - "$label" "$ia" "$da" "$ib" "$db" <<'EOF'
import sys
label, ia, da, ib, db = sys.argv[1], *map(int, sys.argv[2:])
pa, pb = ia / max(da, 1), ib / max(db, 1)
print(f"| {label} | {pa:,.0f} ({ia/1e6:,.1f}M / {da:,}) | {pb:,.0f} ({ib/1e6:,.1f}M / {db:,}) | {pa/pb:.2f}x |")
EOF
}

A=$1 B=$2
echo "| workload | A: instructions per delivery (Ir / deliveries) | B: the same | A / B |"
echo "|---|---|---|---|"
row "fan-out, 1,000 streams x 20/s" -c 1000 -t 1 -r 20 -d 60
row "many topics, 2,000 x 1, flat out" -c 2000 -t 2000 -r 0 --pipeline 16 -d 60
