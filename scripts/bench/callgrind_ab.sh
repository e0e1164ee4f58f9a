#!/usr/bin/env bash
# Two freshet binaries side by side under callgrind: the user-space instructions each spends per
# delivered event on the same workloads. Instruction counts barely move with machine load, so
# this A/B holds on a shared, noisy machine where wall-clock and CPU-time ratios swing.
#
#   fan-out:     1,000 streams on one topic, 20 events/s (one event per stream per loop pass)
#   many topics: 2,000 topics with one stream each, the publisher flat out (16 in flight)
#   publish (with --publish, instead of the two above): one stream, an HTTP publisher flat out
#                (16 in flight), on the memory broker and on the Redis broker (a redis-server
#                of its own on a free port; the events go through Redis and come back on the
#                node's subscription): with one stream a delivery is a publish
#
# Each server runs under valgrind with instrumentation off; it is switched on once every stream
# is open and the warm-up is over, and the counts are dumped while the publisher still runs, so
# start-up and connecting cost nothing. Deliveries in the window come from /metrics
# (freshet_events_delivered_total) read right before and after it.
#
# Usage: scripts/bench/callgrind_ab.sh [--publish] A_BINARY B_BINARY   (e.g. build/freshet and
#        an older build of another commit). Needs valgrind, python3, curl and
#        build/freshet-bench (and redis-server with --publish).
# Takes about four minutes. Only the processes it starts are stopped, by PID.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
publish=0
[ "${1:-}" = --publish ] && { publish=1; shift; }
[ $# -eq 2 ] || { echo "usage: $0 [--publish] A_BINARY B_BINARY" >&2; exit 2; }
bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua"
for tool in valgrind callgrind_control python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done
[ -x "$bench" ] || { echo "build first: scripts/setup.sh" >&2; exit 2; }
work="$(mktemp -d)"
server="" redis=""
cleanup() {
    for p in $server $redis; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
delivered() {
    curl -sf "http://127.0.0.1:$1/metrics" |
        awk '/^freshet_events_delivered_total/ {print $2; exit}'
}

# measure BIN NAME BROKER -- bench arguments: prints "instructions deliveries"
measure() {
    local bin=$1 name=$2 broker=$3; shift 4
    local port out="$work/$name.cg" url=""
    if [ "$broker" = redis ]; then
        local rport
        rport=$(free_port)
        mkdir -p "$work/$name.redis"
        redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$work/$name.redis" --logfile "$work/$name.redis/log" &
        redis=$!
        url="redis://127.0.0.1:$rport"
    fi
    if [ -n "$url" ]; then export FRESHET_BROKER="$url"; else unset FRESHET_BROKER; fi
    port=$(free_port)
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$bin" "$app" --listen "127.0.0.1:$port" --log-level warn >"$work/$name.log" 2>&1 &
    server=$!
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$port/health" | grep -q '"status":"ok"' && break
        sleep 0.2
    done
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
    if [ -n "$redis" ]; then kill "$redis"; wait "$redis" 2>/dev/null || true; redis=""; fi
    local ir
    ir=$(cat "$out".* 2>/dev/null | awk '/^summary:/ {s += $2} END {printf "%.0f\n", s}')
    echo "$ir $((d1 - d0))"
}

row() {
    local label=$1 broker=$2; shift 2
    read -r ia da <<<"$(measure "$A" "a-$broker" "$broker" -- "$@")"
    read -r ib db <<<"$(measure "$B" "b-$broker" "$broker" -- "$@")"
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
if [ $publish = 1 ]; then
    row "publish, memory broker, 1 stream, flat out" memory -c 1 -r 0 --pub-conns 16 -d 40
    row "publish, Redis broker, 1 stream, flat out" redis -c 1 -r 0 --pub-conns 16 -d 40
else
    row "fan-out, 1,000 streams x 20/s" memory -c 1000 -t 1 -r 20 -d 60
    row "many topics, 2,000 x 1, flat out" memory -c 2000 -t 2000 -r 0 --pipeline 16 -d 60
fi
