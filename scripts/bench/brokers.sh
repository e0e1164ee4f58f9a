#!/usr/bin/env bash
# The brokers side by side in one run. Memory: one node serves subscribers and publisher.
# Redis (one server), Redis Cluster (three primaries, no replicas, made with redis-cli --cluster
# create), NATS JetStream with one server (nats1, stream R1) and with a cluster of three (nats3,
# stream R3): subscribers on node B, publisher on node A, so every event crosses the broker.
# Each round and broker runs two loads on the same nodes:
#   fan-out:    N subscribers on one topic, a publisher at R msg/s;
#   throughput: 100 subscribers on one topic, publishes as fast as C keep-alive connections with
#               P requests in flight on each allow (-r 0 --pub-conns C --pipeline P; default
#               16 x 1): publishes answered per second, and publish-to-delivery latency at that
#               rate. Several connections, not one pipelined one, because a node answers one
#               connection's pipelined requests in order: one connection would hold one publish
#               at a time in the broker, whatever --pipeline says.
# One topic lives in one hash slot, so on Redis Cluster both loads go to one primary through
# the cluster client (scripts/bench/redis_cluster.py measures how the shards share the load).
# Rounds alternate (memory, redis, redis-cluster, nats1, nats3, memory…) so all see the same
# machine noise; the tables give each round and the medians, and the load average before and
# after.
# "errors" counts every error class of a run (publishes not answered 2xx, streams the server
# closed, failed connects: freshet-bench's "errors"); "ooo" counts events that arrived after a
# later one of the same publishing connection; "drop notices" counts the `event: dropped`
# notices of the server's flow control (a stream over its queue budget drops events and says
# so, and one too far behind is closed): gaps that come with them are not a broker losing
# events.
# Usage: scripts/bench/brokers.sh [subscribers=10000] [rate=5] [seconds=15] [rounds=2]
#                                 [pub-conns=16] [pipeline=1]
# BROKERS_KINDS="nats1 nats3" runs only those kinds. BROKERS_KEEP=<dir> keeps every run's JSON
# report, node B's /health after both loads and the processes' logs there;
# BROKERS_REPORT=<dir> prints the tables again from such a directory, running nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
subs="${1:-10000}" rate="${2:-5}" secs="${3:-15}" rounds="${4:-2}" conns="${5:-16}"
pipeline="${6:-1}"
bin="$root/build/freshet" bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua"
read -r -a kinds <<<"${BROKERS_KINDS:-memory redis redis-cluster nats1 nats3}"
# The tables, from the JSON reports in directory $1 (<kind>.<round>.json and .max.json).
report() {
    python3 - "$1" "$subs" "$rate" "$secs" "$rounds" "$conns" "$pipeline" "${kinds[@]}" <<'PY'
import json, statistics, sys, os
work, subs, rate, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
conns, pipeline, kinds = sys.argv[6], sys.argv[7], sys.argv[8:]
names = {"memory": "memory", "redis": "redis", "redis-cluster": "redis cluster",
         "nats1": "nats R1", "nats3": "nats R3"}
medname = {"memory": "memory (one node)", "redis": "Redis", "redis-cluster": "Redis Cluster (3)",
           "nats1": "NATS R1", "nats3": "NATS R3"}

def load(path):
    """A run's JSON report, or None when the run printed none (it failed to start)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

rows = {k: [load(os.path.join(work, f"{k}.{r}.json")) for r in range(1, rounds + 1)] for k in kinds}
maxrows = {k: [load(os.path.join(work, f"{k}.{r}.max.json")) for r in range(1, rounds + 1)]
           for k in kinds}

def med(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")

def pubs_per_s(j):
    return j["published"] / j["measured_s"] if j.get("measured_s") else 0.0

def cpu(j):
    return (j.get("server") or {}).get("cpu_pct", 0)

def table(header, runs, cells):
    """One markdown table: a row per broker and round, "no report" for a run that printed none."""
    print("| broker | round | " + " | ".join(header) + " |")
    print("|---|---|" + "---|" * len(header))
    for kind, rs in runs.items():
        for i, j in enumerate(rs, 1):
            row = cells(j) if j else ["no report"] + [""] * (len(header) - 1)
            print(f"| {names[kind]} | {i} | " + " | ".join(row) + " |")
    print()

print(f"Throughput: 100 subscribers on one topic, publishes as fast as {conns} connections x "
      f"{pipeline} in flight allow (-r 0 --pub-conns {conns} --pipeline {pipeline}), {secs} s")
print()
table(["publishes/s (201)", "errors", "ack p99 ms", "delivery p50 ms", "delivery p99 ms",
       "delivered / expected", "gaps", "dups", "ooo", "drop notices", "CPU % (both nodes)"],
      maxrows,
      lambda j: [f"{pubs_per_s(j):.0f}", f"{j['errors']}",
                 f"{j['publish_ack_ms']['p99']:.1f}", f"{j['latency_ms']['p50']:.1f}",
                 f"{j['latency_ms']['p99']:.1f}", f"{j['delivered']} / {j['expected']}",
                 f"{j['gaps']}", f"{j['duplicates']}", f"{j['out_of_order']}",
                 f"{j['dropped_notices']}", f"{cpu(j):.0f}"])
nats = {k: [load(os.path.join(work, f"{k}.{r}.health.json")) for r in range(1, rounds + 1)]
        for k in kinds if k.startswith("nats")}
if any(h for hs in nats.values() for h in hs):
    print("Node B's NATS broker after both loads (/health): live events that showed a gap, fills "
          "read from the stream, topics lost, reconnects")
    print()
    table(["gaps", "fills", "lost", "reconnects"], nats,
          lambda h: [str((h.get("broker") or {}).get(f, "")) for f in
                     ("gaps", "fills", "lost", "reconnects")])
print(f"{subs} subscribers on one topic, {rate} msg/s for {secs} s; all but memory: subscribers "
      f"on node B, publisher on node A")
print()
table(["delivered / expected", "errors", "deliveries/s", "p50 ms", "p99 ms", "max ms", "gaps",
       "dups", "ooo", "drop notices", "sub-node CPU %"], rows,
      lambda j: [f"{j['delivered']} / {j['expected']}", f"{j['errors']}",
                 f"{j['deliveries_per_s']:.0f}",
                 f"{j['latency_ms']['p50']:.1f}", f"{j['latency_ms']['p99']:.1f}",
                 f"{j['latency_ms']['max']:.1f}", f"{j['gaps']}", f"{j['duplicates']}",
                 f"{j['out_of_order']}", f"{j['dropped_notices']}", f"{cpu(j):.0f}"])
print("Medians over the rounds")
print()
print("| broker | publishes/s | delivery p99 ms at that rate | fan-out p50 ms | fan-out p99 ms | fan-out deliveries/s |")
print("|---|---|---|---|---|---|")
for kind in kinds:
    mx = [j for j in maxrows[kind] if j]
    fo = [j for j in rows[kind] if j]
    print(f"| {medname[kind]} | {med(pubs_per_s(j) for j in mx):,.0f} | "
          f"{med(j['latency_ms']['p99'] for j in mx):.1f} | "
          f"{med(j['latency_ms']['p50'] for j in fo):.1f} | "
          f"{med(j['latency_ms']['p99'] for j in fo):.1f} | "
          f"{med(j['deliveries_per_s'] for j in fo):,.0f} |")
PY
}

# BROKERS_REPORT=<dir>: only the tables, from reports BROKERS_KEEP kept there (same arguments).
if [ -n "${BROKERS_REPORT:-}" ]; then report "$BROKERS_REPORT"; exit; fi
[ -x "$bin" ] && [ -x "$bench" ] || { echo "build first: scripts/setup.sh" >&2; exit 2; }
for tool in redis-server redis-cli nats-server; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${BROKERS_KEEP:-}" ]; then
        mkdir -p "$BROKERS_KEEP" && cp "$work"/*.json "$work"/*.log "$BROKERS_KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A Redis Cluster node also listens on its port + 10000 (the cluster bus): both must be free.
free_bus_port() {
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import redis_cluster as rc; print(rc.free_port(bus=True))' \
        "$root/scripts/bench"
}
wait_http() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; return 1; }

echo "started $(date -u '+%Y-%m-%d %H:%M:%S') UTC; load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >"$work/redis.log" 2>&1 &
pids+=($!)
# Redis Cluster: three primaries, the slots split by redis-cli.
rc=()
for i in 0 1 2; do
    p=$(free_bus_port); rc+=("127.0.0.1:$p")
    mkdir -p "$work/rc$i"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/rc$i" \
        --cluster-enabled yes --cluster-config-file nodes.conf >"$work/rc$i.log" 2>&1 &
    pids+=($!)
done
for hp in "${rc[@]}"; do
    for _ in $(seq 100); do redis-cli -p "${hp#*:}" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
redis-cli --cluster create "${rc[@]}" --cluster-yes >"$work/rc-create.log" 2>&1 ||
    { cat "$work/rc-create.log" >&2; exit 1; }
for hp in "${rc[@]}"; do
    for _ in $(seq 200); do
        redis-cli -p "${hp#*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
        sleep 0.1
    done
    redis-cli -p "${hp#*:}" cluster info | grep -q 'cluster_state:ok' ||
        { echo "Redis Cluster node $hp never reached cluster_state:ok" >&2; exit 1; }
done
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
declare -A url=([redis]="redis://127.0.0.1:$rport"
                [redis-cluster]="redis-cluster://$(IFS=,; echo "${rc[*]}")"
                [nats1]="nats://127.0.0.1:$n1"
                [nats3]="nats://$(IFS=,; echo "${n3[*]}")?replicas=3")

run_one() { # kind round
    local kind=$1 round=$2 a b pa pb tag=${1//-/}
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
    "$bench" -p "$b" --pub-port "$a" -c "$subs" -t 1 -r "$rate" -d "$secs" --prefix "r$round$tag" \
        --server-pid "$pb" --json -q >"$work/$kind.$round.json" || true
    # Memory has one node: naming its PID twice would count its CPU twice.
    local both="$pa,$pb"
    [ "$pb" != "$pa" ] || both=$pa
    "$bench" -p "$b" --pub-port "$a" -c 100 -t 1 -r 0 --pub-conns "$conns" \
        --pipeline "$pipeline" -d "$secs" --prefix "x$round$tag" --server-pid "$both" \
        --json -q >"$work/$kind.$round.max.json" || true
    # The broker's own counters on node B (NATS: live gaps seen, fills read from the stream).
    curl -sf "http://127.0.0.1:$b/health" >"$work/$kind.$round.health.json" || true
    kill "$pa" 2>/dev/null || true
    wait "$pa" 2>/dev/null || true
    if [ "$pb" != "$pa" ]; then
        kill "$pb" 2>/dev/null || true
        wait "$pb" 2>/dev/null || true
    fi
}

for round in $(seq 1 "$rounds"); do
    for kind in "${kinds[@]}"; do run_one "$kind" "$round"; done
done

echo "finished $(date -u '+%Y-%m-%d %H:%M:%S') UTC; load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
report "$work"
