#!/usr/bin/env bash
# The brokers side by side in one run. Memory: one node serves subscribers and publisher.
# Redis, NATS JetStream with one server (nats1, stream R1) and with a cluster of three (nats3,
# stream R3): subscribers on node B, publisher on node A, so every event crosses the broker.
# Each round and broker runs two loads on the same nodes:
#   fan-out:    N subscribers on one topic, a publisher at R msg/s;
#   throughput: 100 subscribers on one topic, publishes as fast as P requests in flight on one
#               keep-alive connection allow (-r 0 --pipeline P): publishes answered per second,
#               and publish-to-delivery latency at that rate.
# Rounds alternate (memory, redis, nats1, nats3, memory…) so all see the same machine noise;
# the tables give each round and the medians.
# Usage: scripts/bench/brokers.sh [subscribers=10000] [rate=5] [seconds=15] [rounds=2] [pipeline=16]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
subs="${1:-10000}" rate="${2:-5}" secs="${3:-15}" rounds="${4:-2}" pipeline="${5:-16}"
bin="$root/build/freshet" bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua"
[ -x "$bin" ] && [ -x "$bench" ] || { echo "build first: scripts/setup.sh" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is missing" >&2; exit 2; }
command -v nats-server >/dev/null || { echo "nats-server is missing" >&2; exit 2; }
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; return 1; }

rport=$(free_port)
redis-server --port "$rport" --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
# NATS: one server for R1, three routed into a cluster for R3.
n1=$(free_port)
nats-server -a 127.0.0.1 -p "$n1" -js -sd "$work/n1" >"$work/nats1.log" 2>&1 &
pids+=($!)
c=($(free_port) $(free_port) $(free_port)) n3=()
for i in 0 1 2; do
    p=$(free_port); n3+=("127.0.0.1:$p")
    routes=""
    for k in 0 1 2; do if [ "$k" != "$i" ]; then routes+="nats://127.0.0.1:${c[$k]},"; fi; done
    nats-server -a 127.0.0.1 -p "$p" -js -sd "$work/c$i" -n "c$i" --cluster_name fr \
        --cluster "nats://127.0.0.1:${c[$i]}" --routes "${routes%,}" >"$work/nats3-$i.log" 2>&1 &
    pids+=($!)
done
sleep 3
declare -A url=([redis]="redis://127.0.0.1:$rport" [nats1]="nats://127.0.0.1:$n1"
                [nats3]="nats://$(IFS=,; echo "${n3[*]}")?replicas=3")

run_one() { # kind round
    local kind=$1 round=$2 a b pa pb
    a=$(free_port)
    if [ "$kind" = memory ]; then
        "$bin" "$app" --listen "127.0.0.1:$a" --log-level warn 2>>"$work/node.log" & pa=$!
        b=$a; pb=$pa
    else
        b=$(free_port)
        FRESHET_BROKER="${url[$kind]}" "$bin" "$app" --listen "127.0.0.1:$a" \
            --log-level warn 2>>"$work/node.log" & pa=$!
        FRESHET_BROKER="${url[$kind]}" "$bin" "$app" --listen "127.0.0.1:$b" \
            --log-level warn 2>>"$work/node.log" & pb=$!
    fi
    wait_http "$a"; wait_http "$b"
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$a/health" | grep -q '"status":"ok"' &&
        curl -sf "http://127.0.0.1:$b/health" | grep -q '"status":"ok"' && break; sleep 0.1; done
    "$bench" -p "$b" --pub-port "$a" -c "$subs" -t 1 -r "$rate" -d "$secs" --prefix "r$round$kind" \
        --server-pid "$pb" --json -q >"$work/$kind.$round.json" || true
    "$bench" -p "$b" --pub-port "$a" -c 100 -t 1 -r 0 --pipeline "$pipeline" -d "$secs" \
        --prefix "x$round$kind" --server-pid "$pa,$pb" --json -q \
        >"$work/$kind.$round.max.json" || true
    kill "$pa" 2>/dev/null || true
    wait "$pa" 2>/dev/null || true
    if [ "$pb" != "$pa" ]; then
        kill "$pb" 2>/dev/null || true
        wait "$pb" 2>/dev/null || true
    fi
}

for round in $(seq 1 "$rounds"); do
    for kind in memory redis nats1 nats3; do run_one "$kind" "$round"; done
done

python3 - "$work" "$subs" "$rate" "$secs" "$rounds" "$pipeline" <<'PY'
import json, statistics, sys, os
work, subs, rate, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
pipeline = sys.argv[6]
rows = {"memory": [], "redis": [], "nats1": [], "nats3": []}
maxrows = {k: [] for k in rows}
for kind in rows:
    for r in range(1, rounds + 1):
        with open(os.path.join(work, f"{kind}.{r}.json")) as f:
            rows[kind].append(json.load(f))
        with open(os.path.join(work, f"{kind}.{r}.max.json")) as f:
            maxrows[kind].append(json.load(f))
print(f"{subs} subscribers on one topic, {rate} msg/s for {secs} s; Redis and NATS: subscribers "
      f"on node B, publisher on node A")
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
for kind in ("redis", "nats1", "nats3"):
    r = statistics.median(j["latency_ms"]["p99"] for j in rows[kind])
    print(f"{kind}/memory p99 ratio: {r / m:.2f}" if m else "")
print()
print(f"Throughput: 100 subscribers on one topic, publishes as fast as {pipeline} requests in "
      f"flight allow, {secs} s")
print()
print("| broker | round | publishes/s (201) | errors | ack p99 ms | delivery p50 ms | delivery p99 ms | delivered / expected | gaps | dups | CPU % (both nodes) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
def pubs_per_s(j):
    return j["published"] / j["measured_s"] if j.get("measured_s") else 0.0
for kind, rs in maxrows.items():
    for i, j in enumerate(rs, 1):
        lat, ack = j["latency_ms"], j["publish_ack_ms"]
        print(f"| {kind} | {i} | {pubs_per_s(j):.0f} | {j['publish_errors']} | {ack['p99']:.1f} | "
              f"{lat['p50']:.1f} | {lat['p99']:.1f} | {j['delivered']} / {j['expected']} | "
              f"{j['gaps']} | {j['duplicates']} | {(j.get('server') or {}).get('cpu_pct', 0):.0f} |")
print()
for kind, rs in maxrows.items():
    pps = statistics.median(pubs_per_s(j) for j in rs)
    p99 = statistics.median(j["latency_ms"]["p99"] for j in rs)
    print(f"median {kind}: {pps:.0f} publishes/s, delivery p99 {p99:.1f} ms at that rate")
PY
