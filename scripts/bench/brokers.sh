#!/usr/bin/env bash
# Memory broker vs Redis broker, side by side in one run: N subscribers on one topic, a publisher
# at R msg/s. Memory: one node serves both. Redis: subscribers on node B, publisher on node A,
# so every event crosses Redis. Rounds alternate (memory, redis, memory, redis…) so both see
# the same machine noise; the table gives each round and the medians.
# Usage: scripts/bench/brokers.sh [subscribers=10000] [rate=5] [seconds=15] [rounds=2]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
subs="${1:-10000}" rate="${2:-5}" secs="${3:-15}" rounds="${4:-2}"
bin="$root/build/freshet" bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua"
[ -x "$bin" ] && [ -x "$bench" ] || { echo "build first: scripts/setup.sh" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is missing" >&2; exit 2; }
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; return 1; }

rport=$(free_port)
redis-server --port "$rport" --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
sleep 0.5

run_one() { # kind round
    local kind=$1 round=$2 a b pa pb
    a=$(free_port)
    if [ "$kind" = memory ]; then
        "$bin" "$app" --listen "127.0.0.1:$a" --log-level warn 2>>"$work/node.log" & pa=$!
        b=$a; pb=$pa
    else
        b=$(free_port)
        FRESHET_BROKER="redis://127.0.0.1:$rport" "$bin" "$app" --listen "127.0.0.1:$a" \
            --log-level warn 2>>"$work/node.log" & pa=$!
        FRESHET_BROKER="redis://127.0.0.1:$rport" "$bin" "$app" --listen "127.0.0.1:$b" \
            --log-level warn 2>>"$work/node.log" & pb=$!
    fi
    wait_http "$a"; wait_http "$b"
    "$bench" -p "$b" --pub-port "$a" -c "$subs" -t 1 -r "$rate" -d "$secs" --prefix "r$round$kind" \
        --server-pid "$pb" --json -q >"$work/$kind.$round.json" || true
    kill "$pa" 2>/dev/null || true
    wait "$pa" 2>/dev/null || true
    if [ "$pb" != "$pa" ]; then
        kill "$pb" 2>/dev/null || true
        wait "$pb" 2>/dev/null || true
    fi
}

for round in $(seq 1 "$rounds"); do
    run_one memory "$round"
    run_one redis "$round"
done

python3 - "$work" "$subs" "$rate" "$secs" "$rounds" <<'PY'
import json, statistics, sys, os
work, subs, rate, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rows = {"memory": [], "redis": []}
for kind in rows:
    for r in range(1, rounds + 1):
        with open(os.path.join(work, f"{kind}.{r}.json")) as f:
            rows[kind].append(json.load(f))
print(f"{subs} subscribers on one topic, {rate} msg/s for {secs} s; Redis: subscribers on node B, "
      f"publisher on node A")
print()
print("| broker | round | delivered / expected | deliveries/s | p50 ms | p99 ms | max ms | gaps | dups | sub-node CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|")
for kind, rs in rows.items():
    for i, j in enumerate(rs, 1):
        lat = j["latency_ms"]
        print(f"| {kind} | {i} | {j['delivered']} / {j['expected']} | {j['deliveries_per_s']:.0f} | "
              f"{lat['p50']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} | {j['gaps']} | "
              f"{j['duplicates']} | {j.get('server', {}).get('cpu_pct', 0):.0f} |")
print()
for kind, rs in rows.items():
    p50 = statistics.median(j["latency_ms"]["p50"] for j in rs)
    p99 = statistics.median(j["latency_ms"]["p99"] for j in rs)
    dps = statistics.median(j["deliveries_per_s"] for j in rs)
    print(f"median {kind}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {dps:.0f} deliveries/s")
m = statistics.median(j["latency_ms"]["p99"] for j in rows["memory"])
r = statistics.median(j["latency_ms"]["p99"] for j in rows["redis"])
print(f"redis/memory p99 ratio: {r / m:.2f}" if m else "")
PY
