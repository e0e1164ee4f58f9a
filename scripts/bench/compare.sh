#!/usr/bin/env bash
# freshet, nginx+nchan and the Node.js reference server, side by side, in one run: every
# workload against every server, a fresh server per measurement, rounds interleaved
#
#   round 1: idle 1k  [freshet 1w, freshet auto, nchan 1w, nchan 2w, node], idle 10k [...], ...
#   round 2: the same again
#
# so that all servers see the same machine noise. Figures come from build/freshet-bench --json
# with --server-pid (for nginx: the master and its workers, summed). The medians over the
# rounds, the freshet/peer ratios and whether each target is met go into docs/BENCHMARKS.md
# between <!-- compare:begin --> and <!-- compare:end --> (nothing else in the file changes).
#
# Usage: scripts/bench/compare.sh [--quick] [--rounds N] [--duration S] [--streams N]
#                                 [--servers a,b] [--workloads a,b] [--no-write] [--keep]
#                                 [--ref BIN]
#
#   --quick        1,000 streams, 5 s, one round: a smoke run of a couple of minutes
#   --rounds N     rounds (2; 1 with --quick)
#   --duration S   measured seconds of the fan-out, flat-out and many-topics workloads
#                  (30 for the fan-outs and 20 for the others; 5 with --quick)
#   --streams N    streams of the fan-out, many-topics and storm workloads (10000; 1000 with
#                  --quick); the flat-out workload always has 1,000
#   --servers L    a subset of freshet-1w,freshet-auto,nchan-1w,nchan-2w,node
#   --workloads L  a subset of idle,fanout20,fanout5,flat,topics,storm
#   --no-write     print the section on stdout instead of writing docs/BENCHMARKS.md
#   --keep         keep the work directory (raw JSON of every run, server logs)
#   --from DIR     measure nothing: write the section again from a directory kept by --keep
#   --ref BIN      also run another freshet binary (1 worker) as "freshet-ref", e.g. a build of
#                  an earlier commit, and give freshet 1w / freshet-ref ratios: a change's
#                  effect measured side by side, in the same run
#
# The full run (no option) takes about half an hour on 2 cores. Everything listens on
# 127.0.0.1; only the processes this script starts are stopped, by PID.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
invocation="scripts/bench/compare.sh${*:+ $*}"

quick=0 rounds="" duration="" streams="" write=1 keep=0 from="" ref=""
servers="freshet-1w,freshet-auto,nchan-1w,nchan-2w,node"
workloads="idle,fanout20,fanout5,flat,topics,storm"
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds="${2:?--rounds N}"; shift ;;
    --duration) duration="${2:?--duration S}"; shift ;;
    --streams) streams="${2:?--streams N}"; shift ;;
    --servers) servers="${2:?--servers LIST}"; shift ;;
    --workloads) workloads="${2:?--workloads LIST}"; shift ;;
    --no-write) write=0 ;;
    --keep) keep=1 ;;
    --from) from="${2:?--from DIR}"; shift ;;
    --ref) ref="$(realpath "${2:?--ref BIN}")"; shift ;;
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    rounds="${rounds:-1}" streams="${streams:-1000}"
    d_fan="${duration:-5}" d_other="${duration:-5}" d_storm=5
    idle_sizes="1000"
else
    rounds="${rounds:-2}" streams="${streams:-10000}"
    d_fan="${duration:-30}" d_other="${duration:-20}" d_storm=10
    idle_sizes="1000 10000 19000"
fi
flat_streams=1000
topics_rate=0 # many topics: publish flat out, round-robin, as the flat-out workload does
pipeline=16

bin="$root/build/freshet" bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua"
if [ -n "$ref" ]; then
    [ -x "$ref" ] || { echo "compare.sh: --ref $ref is not an executable" >&2; exit 2; }
    case ",$servers," in *,freshet-ref,*) ;; *) servers="$servers,freshet-ref" ;; esac
fi
peers="$root/scripts/bench/peers"
{ [ -x "$bin" ] && [ -x "$bench" ]; } || { echo "compare.sh: build first (scripts/setup.sh)" >&2; exit 2; }
for s in ${servers//,/ }; do
    case "$s" in
    freshet-1w | freshet-auto) ;;
    freshet-ref) [ -n "$ref" ] || { echo "compare.sh: freshet-ref needs --ref BIN" >&2; exit 2; } ;;
    nchan-1w | nchan-2w)
        dpkg -L libnginx-mod-nchan 2>/dev/null | grep -q 'ngx_nchan_module\.so$' ||
            { echo "compare.sh: nchan is missing (scripts/setup.sh installs it)" >&2; exit 2; } ;;
    node) command -v node >/dev/null || { echo "compare.sh: node is missing" >&2; exit 2; } ;;
    *) echo "compare.sh: unknown server $s" >&2; exit 2 ;;
    esac
done
for w in ${workloads//,/ }; do
    case "$w" in idle | fanout20 | fanout5 | flat | topics | storm) ;;
    *) echo "compare.sh: unknown workload $w" >&2; exit 2 ;;
    esac
done

# Every server may use every descriptor the hard limit allows (19,000 idle streams need them).
ulimit -n "$(ulimit -Hn)"

if [ -n "$from" ]; then
    [ -f "$from/run.env" ] || { echo "compare.sh: $from has no run.env (see --keep)" >&2; exit 2; }
    work="$(cd "$from" && pwd)" keep=1
else
    work="$(mktemp -d /tmp/freshet-compare-XXXXXX)"
fi
started=()   # PIDs this script started (servers; nginx's workers are added while it runs)
cleanup() {
    local p
    for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${started[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "$keep" = 1 ]; then echo "compare.sh: raw results kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts server $1 on port $2, logging to $3. Sets srv_pid (what to stop) and srv_pids (what to
# measure: the nginx master and its workers), or returns 1 when it does not come up.
start_server() {
    local name=$1 port=$2 log=$3 dir n
    case "$name" in
    freshet-1w)
        (exec env FRESHET_WORKERS=1 FRESHET_STREAMS_AT=0.99 \
            "$bin" "$app" --listen "127.0.0.1:$port" --log-level warn) >"$log" 2>&1 &
        ;;
    freshet-auto)
        (exec env FRESHET_WORKERS=auto FRESHET_STREAMS_AT=0.99 \
            "$bin" "$app" --listen "127.0.0.1:$port" --log-level warn) >"$log" 2>&1 &
        ;;
    freshet-ref)
        (exec env FRESHET_WORKERS=1 FRESHET_STREAMS_AT=0.99 \
            "$ref" "$app" --listen "127.0.0.1:$port" --log-level warn) >"$log" 2>&1 &
        ;;
    nchan-1w | nchan-2w)
        dir="$work/nginx.$port" n="${name#nchan-}"
        (exec "$peers/nchan.sh" "$dir" "$port" "${n%w}") >"$log" 2>&1 &
        ;;
    node)
        (exec node "$peers/node_server.js" "$port") >"$log" 2>&1 &
        ;;
    esac
    srv_pid=$!
    started+=("$srv_pid")
    srv_pids=$srv_pid
    for _ in $(seq 100); do
        if ! kill -0 "$srv_pid" 2>/dev/null; then
            return 1
        fi
        if curl -sf -o /dev/null "http://127.0.0.1:$port/health"; then
            case "$name" in nchan-*)
                local kids
                kids=$(pgrep -P "$srv_pid" | paste -sd, || true)
                srv_pids="$srv_pid${kids:+,$kids}"
                for k in ${kids//,/ }; do started+=("$k"); done ;;
            esac
            return 0
        fi
        sleep 0.1
    done
    return 1
}

stop_server() {
    local p
    for p in ${srv_pids//,/ }; do kill -TERM "$p" 2>/dev/null || true; done
    for p in ${srv_pids//,/ }; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    started=() # one server at a time: nothing of ours is left running
}

# The freshet-bench arguments of each measurement.
bench_args() {
    case "$1" in
    idle*) echo "-c ${1#idle} -t 1 -r 1 -d 1 --warmup 0 --tail 2" ;;
    fanout20) echo "-c $streams -t 1 -r 20 -d $d_fan --tail 10" ;;
    fanout5) echo "-c $streams -t 1 -r 5 -d $d_fan --tail 10" ;;
    flat) echo "-c $flat_streams -t 1 -r 0 --pipeline $pipeline -d $d_other" ;;
    topics) echo "-c $streams -t $streams -r $topics_rate --pipeline $pipeline -d $d_other" ;;
    storm) echo "-c $streams -t 1 -r 5 -d $d_storm --warmup 2 --storm --tail 10" ;;
    esac
}

measurements=()
for w in ${workloads//,/ }; do
    if [ "$w" = idle ]; then
        for n in $idle_sizes; do measurements+=("idle$n"); done
    else
        measurements+=("$w")
    fi
done

t0=$(date +%s) when="$(date -u '+%Y-%m-%d %H:%M UTC')"
[ -n "$from" ] && rounds=0 # the measurements are in $from already
for round in $(seq 1 "$rounds"); do
    for m in "${measurements[@]}"; do
        for s in ${servers//,/ }; do
            out="$work/$round.$m.$s.json" log="$work/$round.$m.$s.log"
            port=$(free_port)
            if ! start_server "$s" "$port" "$log"; then
                echo "compare.sh: round $round, $m: $s did not start" >&2
                tail -n 3 "$log" >&2 || true
                python3 -c 'import json,sys; print(json.dumps({"not_started": open(sys.argv[1], errors="replace").read()[-300:]}))' \
                    "$log" >"$out"
                stop_server
                continue
            fi
            threads=$(awk '/^Threads:/ {print $2}' "/proc/$srv_pid/status" 2>/dev/null || echo 0)
            echo "compare.sh: round $round/$rounds, $m, $s (pid $srv_pids, port $port)" >&2
            # shellcheck disable=SC2046
            if ! "$bench" -p "$port" $(bench_args "$m") --prefix "r$round" \
                    --server-pid "$srv_pids" --json -q >"$out.tmp" 2>"$out.err"; then
                echo "compare.sh: freshet-bench failed: $(tail -n 1 "$out.err")" >&2
            fi
            python3 - "$out.tmp" "$out" "$threads" "$(tail -c 300 "$out.err")" <<'PY'
import json, sys
src, dst, threads, err = sys.argv[1:5]
try:
    with open(src) as f:
        j = json.load(f)
except (OSError, ValueError):
    j = {"bench_failed": err}
j["server_threads"] = int(threads or 0)
with open(dst, "w") as f:
    json.dump(j, f)
PY
            stop_server
        done
    done
done
elapsed=$(( $(date +%s) - t0 ))

# What the section says about the run, kept with the results so that --from can say it again.
if [ -z "$from" ]; then
    v_freshet="$("$bin" --version 2>/dev/null || echo freshet)"
    v_ref="${ref:+$ref}"
    v_nginx="$(nginx -v 2>&1 | sed 's/.*nginx\///')"
    v_nchan="$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null | sed 's/^[0-9]*://; s/+.*//')"
    v_node="$(node --version 2>/dev/null || echo none)"
    kernel="$(uname -r)" cores="$(nproc)"
    declare -p rounds servers measurements invocation elapsed quick streams d_fan d_other \
        d_storm pipeline flat_streams v_freshet v_ref v_nginx v_nchan v_node kernel cores when \
        >"$work/run.env"
else
    # shellcheck disable=SC1091
    source "$work/run.env"
fi

section="$work/section.md"
python3 - "$work" "$rounds" "$servers" "$(IFS=,; echo "${measurements[*]}")" "$invocation" \
    "$elapsed" "$quick" "$streams" "$d_fan" "$d_other" "$d_storm" "$pipeline" "$flat_streams" \
    "$v_freshet" "$v_nginx" "$v_nchan" "$v_node" "$kernel" "$cores" "$when" "${v_ref:-}" \
    >"$section" <<'PY'
import json, os, statistics, sys

(work, rounds, servers, measurements, invocation, elapsed, quick, streams, d_fan, d_other,
 d_storm, pipeline, flat_streams, v_freshet, v_nginx, v_nchan, v_node, kernel, cores,
 when, v_ref) = sys.argv[1:]
rounds, quick, streams, pipeline = int(rounds), quick == "1", int(streams), int(pipeline)
elapsed, flat_streams = int(elapsed), int(flat_streams)
servers = servers.split(",")
measurements = measurements.split(",")
label = {"freshet-1w": "freshet, 1 worker", "freshet-auto": "freshet, workers auto",
         "freshet-ref": "freshet-ref, 1 worker",
         "nchan-1w": "nginx+nchan, 1 worker", "nchan-2w": "nginx+nchan, 2 workers",
         "node": "Node.js"}
short = {"freshet-1w": "freshet 1w", "freshet-auto": "freshet auto", "freshet-ref": "freshet-ref",
         "nchan-1w": "nchan 1w",
         "nchan-2w": "nchan 2w", "node": "Node.js"}
pairs = [("freshet-1w", "nchan-1w"), ("freshet-auto", "nchan-2w")]

def load(r, m, s):
    try:
        with open(os.path.join(work, f"{r}.{m}.{s}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

runs = {(m, s): [j for r in range(1, rounds + 1) if (j := load(r, m, s))]
        for m in measurements for s in servers}

def ok(j):
    return j is not None and "not_started" not in j and "bench_failed" not in j

def why_not(m, s):
    js = runs.get((m, s), [])
    if not js:
        return "not run"
    if all("not_started" in j for j in js):
        return "did not start"
    return "failed"

# ---- figures ---------------------------------------------------------------------------
def srv(j, k):
    v = (j.get("server") or {}).get(k)
    return v

def f_rss(j): return srv(j, "rss_kb_per_stream")
def f_pss(j):
    v = srv(j, "pss_kb_per_stream")
    return v if v is not None else f_rss(j)
def f_rss_mb(j):
    v = srv(j, "rss_kb_connected")
    return v / 1024 if v is not None else None
def f_dps(j): return j["deliveries_per_s"]
def f_p50(j): return j["latency_ms"]["p50"]
def f_p99(j): return j["latency_ms"]["p99"]
def f_max(j): return j["latency_ms"]["max"]
def f_missing(j): return j["missing"]
def f_cpu_pct(j): return srv(j, "cpu_pct")
def f_cpu_per_m(j):   # server CPU-seconds per million deliveries
    v = srv(j, "cpu_us_per_delivery")
    return v if v else None   # µs per delivery = CPU-s per million
def f_per_cpu_s(j):   # deliveries per server CPU-second
    v = srv(j, "cpu_s")
    return j["delivered"] / v if v else None
def f_storm_s(j): return (j.get("storm") or {}).get("storm_s")
def f_catchup_s(j): return (j.get("storm") or {}).get("catchup_s")
def f_storm_p99(j): return ((j.get("storm") or {}).get("reconnect_ms") or {}).get("p99")
def f_storm_gaps(j): return (j.get("storm") or {}).get("gaps")
def f_storm_dups(j): return (j.get("storm") or {}).get("duplicates")
def f_storm_failed(j): return (j.get("storm") or {}).get("failed")
def f_connected(j): return j["connected"]
def f_errors(j): return j["errors"]

def values(m, s, f):
    out = []
    for j in runs.get((m, s), []):
        if ok(j):
            v = f(j)
            if v is not None:
                out.append(v)
    return out

def med(m, s, f):
    v = values(m, s, f)
    return statistics.median(v) if v else None

def worst(m, s, f):
    v = values(m, s, f)
    return max(v) if v else None

def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, int) or (abs(v) >= 1000 and digits <= 1):
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"

def cell(m, s, f, digits=1):
    """Median, with the value of each round in brackets when there are several."""
    if not any(ok(j) for j in runs.get((m, s), [])):
        return why_not(m, s)
    v = values(m, s, f)
    if not v:
        return "—"
    text = fmt(statistics.median(v), digits)
    if len(v) > 1:
        text += " (" + " / ".join(fmt(x, digits) for x in v) + ")"
    return text

def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b

def rfmt(x):
    return "—" if x is None else f"{x:.2f}×"

have = lambda m: m in measurements
lines = []
p = lines.append
p("```sh")
p(invocation)
p("```")
p("")
p(f"Run of {when}, {rounds} round{'s' if rounds != 1 else ''}, {elapsed // 60} min "
  f"{elapsed % 60} s, on this machine ({cores} cores, Linux {kernel}), which is shared "
  f"and noisy. Servers: {v_freshet} (`build/freshet scripts/bench/app.lua`, "
  f"memory broker), nginx {v_nginx} + nchan {v_nchan} (Debian packages, "
  f"`scripts/bench/peers/nchan.conf.in`), Node.js {v_node} "
  f"(`scripts/bench/peers/node_server.js`: `http` module, no packages). Every server keeps "
  f"1,000 events per topic for 300 s and sends a heartbeat after 15 s. Each measurement starts "
  f"a fresh server; rounds run every workload against every server in turn, so all see the "
  f"same machine noise. The load client, `build/freshet-bench`, runs on the same cores: a "
  f"server that writes each event on its own costs it one read per event (5–6 µs of a core, "
  f"see BENCH_TOOL.md), which can bound that server's deliveries/s here, while CPU per "
  f"delivery is the server's own. Figures are medians over the rounds, with each round's "
  f"value in brackets.")
def threads(name):
    t = [j.get("server_threads", 0) for (m, s), js in runs.items() if s == name
         for j in js if ok(j)]
    return max(t) if t else None
if v_ref:
    p("")
    p(f"freshet-ref is another build of freshet, run with 1 worker: `{v_ref}`.")
if threads("freshet-auto") is not None:
    p("")
    one = threads("freshet-1w")
    p(f"The freshet process ran {threads('freshet-auto')} threads with `FRESHET_WORKERS=auto`"
      + (f" and {one} with `FRESHET_WORKERS=1`." if one is not None else "."))
if quick:
    p("")
    p(f"**A quick run** ({streams:,} streams, {d_fan} s): it shows the format and that every "
      f"server answers; its figures are too short and too small to compare servers by. The full "
      f"run is `scripts/bench/compare.sh` (10,000 streams, 30 s and 20 s, two rounds).")

# ---- targets ---------------------------------------------------------------------------
p("")
p("**Targets** (freshet against nchan with the same number of workers; "
  "`workers auto` is one per core, two here):")
p("")
p("| target | " + " | ".join(f"{label[a]} vs {label[b]}" for a, b in pairs) + " |")
p("|---|" + "---|" * len(pairs))

def verdict(good, text):
    if good is None:
        return "not measured" + (f": {text}" if text else "")
    return ("**met**" if good else "**not met**") + (f": {text}" if text else "")

def t_latency(m, limit):
    out = []
    for a, b in pairs:
        if not have(m) or not values(m, a, f_p99):
            out.append(verdict(None, why_not(m, a) if have(m) else ""))
            continue
        p99, miss = med(m, a, f_p99), worst(m, a, f_missing)
        gaps = max(j["gaps"] for j in runs[(m, a)] if ok(j))
        unsent = max(j["publish_unsent"] + j["publish_errors"] for j in runs[(m, a)] if ok(j))
        good = p99 < limit and miss == 0 and gaps == 0 and unsent == 0
        text = f"p99 {fmt(p99)} ms, {fmt(miss)} missing at worst"
        if unsent:
            text += f", {fmt(unsent)} never published (the publisher fell behind)"
        out.append(verdict(good, text))
    return out

def t_memory():
    """Met when freshet's memory per stream is at most a third of nchan's at every size."""
    out = []
    sizes = [m for m in measurements if m.startswith("idle")]
    for a, b in pairs:
        parts, results = [], []
        for m in sizes:
            x, y = med(m, a, f_pss), med(m, b, f_pss)
            if x is None or y is None:
                parts.append(f"{int(m[4:]) // 1000}k: not measured")
                results.append(None)
                continue
            results.append(x <= y / 3)
            parts.append(f"{int(m[4:]) // 1000}k: {fmt(x, 2)} vs {fmt(y, 2)} KB "
                         f"({rfmt(ratio(x, y))})")
        if False in results:
            good = False
        elif not results or None in results:
            good = None
        else:
            good = True
        out.append(verdict(good, "; ".join(parts)))
    return out

def t_cpu():
    out = []
    for a, b in pairs:
        x, y = med("flat", a, f_per_cpu_s), med("flat", b, f_per_cpu_s)
        if x is None or y is None:
            out.append(verdict(None, ""))
            continue
        out.append(verdict(x >= 2 * y, f"{fmt(x)} vs {fmt(y)} deliveries per CPU-second "
                                       f"({rfmt(ratio(x, y))})"))
    return out

# Headline figures of each workload: (measurement, name, function, higher is better, digits).
headline = []
for m in measurements:
    if m.startswith("idle"):
        headline.append((m, f"memory per stream at {int(m[4:]) // 1000}k (PSS KB)", f_pss, False, 2))
for m, name in (("fanout20", "20 msg/s"), ("fanout5", "5 msg/s")):
    if have(m):
        headline += [(m, f"fan-out {name}: deliveries/s", f_dps, True, 0),
                     (m, f"fan-out {name}: p99 ms", f_p99, False, 1),
                     (m, f"fan-out {name}: CPU-s per M deliveries", f_cpu_per_m, False, 2)]
if have("flat"):
    headline += [("flat", "flat out: deliveries/s", f_dps, True, 0),
                 ("flat", "flat out: CPU-s per M deliveries", f_cpu_per_m, False, 2)]
if have("topics"):
    headline += [("topics", "many topics: deliveries/s", f_dps, True, 0),
                 ("topics", "many topics: p99 ms", f_p99, False, 1)]
if have("storm"):
    headline += [("storm", "storm: all live again, s", f_storm_s, False, 3),
                 ("storm", "storm: gaps + duplicates",
                  lambda j: (f_storm_gaps(j) or 0) + (f_storm_dups(j) or 0), False, 0)]
MARGIN = 0.05
LATENCY_FLOOR_MS = 1.0  # below this a latency difference is the machine's, not the server's

def t_never_behind():
    out = []
    for a, b in pairs:
        behind, compared = [], 0
        for m, name, f, higher, digits in headline:
            x, y = med(m, a, f), med(m, b, f)
            if x is None or y is None:
                continue
            compared += 1
            worse = x < y * (1 - MARGIN) if higher else x > y * (1 + MARGIN)
            if name.endswith(" ms") and x - y <= LATENCY_FLOOR_MS:
                worse = False
            if name.startswith("storm: gaps"):
                worse = x > y
            if worse:
                behind.append(f"{name} {fmt(x, digits)} vs {fmt(y, digits)}")
        if not compared:
            out.append(verdict(None, ""))
        else:
            out.append(verdict(not behind, "behind on " + "; ".join(behind) if behind
                               else f"ahead or level on all {compared} headline figures"))
    return out

p("| (2) every event delivered, p99 < 100 ms at 20 msg/s | " + " | ".join(t_latency("fanout20", 100)) + " |")
p("| (2) every event delivered, p99 < 20 ms at 5 msg/s | " + " | ".join(t_latency("fanout5", 20)) + " |")
p("| (1) memory per idle stream at most 1/3 of nchan's | " + " | ".join(t_memory()) + " |")
p("| (3) at least 2× nchan's deliveries per server CPU-second (flat out) | " + " | ".join(t_cpu()) + " |")
p(f"| never behind nchan (headline figures below; worse by more than {MARGIN:.0%}, and by more "
  f"than {LATENCY_FLOOR_MS:g} ms for a latency, counts as behind) | " + " | ".join(t_never_behind()) + " |")
p("")
p("Memory is the growth of the server's proportional set size (PSS, summed over nginx's master "
  "and workers, so pages they share count once) from before connecting to after the last stream "
  "started, divided by the streams; RSS is given too. CPU is user + system time of every "
  "process and thread of the server, from measure start to the end of the run.")

# ---- tables ----------------------------------------------------------------------------
def table(title, note, cols, ms=None):
    ms = ms or []
    p("")
    p(f"**{title}**")
    if note:  # its own line, so that wrapping never splits the command
        p(note)
    p("")
    p("| server | " + " | ".join(c[0] for c in cols) + " |")
    p("|---|" + "---|" * len(cols))
    for s in servers:
        p(f"| {label[s]} | " + " | ".join(cell(c[1], s, c[2], c[3]) for c in cols) + " |")

idle = [m for m in measurements if m.startswith("idle")]
if idle:
    cols = []
    for m in idle:
        k = f"{int(m[4:]) // 1000}k"
        cols += [(f"{k}: PSS KB/stream", m, f_pss, 2), (f"{k}: RSS KB/stream", m, f_rss, 2)]
    cols.append((f"RSS MB at {int(idle[-1][4:]) // 1000}k", idle[-1], f_rss_mb, 1))
    cols.append((f"streams at {int(idle[-1][4:]) // 1000}k", idle[-1], f_connected, 0))
    table("1. Idle streams", "(`-c N -r 1 -d 1`): memory per stream.", cols)

def fan(m, rate):
    table(f"2. {streams:,} subscribers on one topic at {rate} msg/s for {d_fan} s",
          f"(`{bench_line(m)}`)",
          [("deliveries/s", m, f_dps, 0), ("missing", m, f_missing, 0),
           ("never published", m, lambda j: j["publish_unsent"], 0),
           ("p50 ms", m, f_p50, 1), ("p99 ms", m, f_p99, 1), ("max ms", m, f_max, 1),
           ("CPU %", m, f_cpu_pct, 0), ("CPU-s per M deliveries", m, f_cpu_per_m, 2)])

def bench_line(m):
    args = {"fanout20": f"-c {streams} -t 1 -r 20 -d {d_fan}",
            "fanout5": f"-c {streams} -t 1 -r 5 -d {d_fan}",
            "flat": f"-c {flat_streams} -t 1 -r 0 --pipeline {pipeline} -d {d_other}",
            "topics": f"-c {streams} -t {streams} -r 0 --pipeline {pipeline} -d {d_other}",
            "storm": f"-c {streams} -t 1 -r 5 -d {d_storm} --warmup 2 --storm"}
    return "freshet-bench " + args[m]

if have("fanout20"):
    fan("fanout20", 20)
if have("fanout5"):
    fan("fanout5", 5)
if have("flat"):
    table(f"3. {flat_streams:,} subscribers on one topic, publisher flat out with {pipeline} "
          f"requests in flight, {d_other} s", f"(`{bench_line('flat')}`)",
          [("deliveries/s", "flat", f_dps, 0), ("CPU-s per M deliveries", "flat", f_cpu_per_m, 2),
           ("deliveries per CPU-s", "flat", f_per_cpu_s, 0), ("p99 ms", "flat", f_p99, 1),
           ("CPU %", "flat", f_cpu_pct, 0)])
if have("topics"):
    table(f"4. {streams:,} topics with one subscriber each, published round-robin flat out "
          f"({pipeline} in flight), {d_other} s", f"(`{bench_line('topics')}`)",
          [("deliveries/s", "topics", f_dps, 0), ("missing", "topics", f_missing, 0),
           ("p50 ms", "topics", f_p50, 1), ("p99 ms", "topics", f_p99, 1),
           ("CPU-s per M deliveries", "topics", f_cpu_per_m, 2)])
if have("storm"):
    table(f"5. Reconnect storm: {streams:,} streams on one topic at 5 msg/s, all dropped at once "
          f"and resumed with Last-Event-ID", f"(`{bench_line('storm')}`)",
          [("all live again, s", "storm", f_storm_s, 3), ("reconnect p99 ms", "storm", f_storm_p99, 1),
           ("all caught up, s", "storm", f_catchup_s, 3), ("gaps", "storm", f_storm_gaps, 0),
           ("duplicates", "storm", f_storm_dups, 0), ("failed", "storm", f_storm_failed, 0)])

# ---- ratios ----------------------------------------------------------------------------
if headline:
    cmp = pairs + [("freshet-1w", "node"), ("freshet-1w", "freshet-ref")]
    cmp = [(a, b) for a, b in cmp if a in servers and b in servers]
    if cmp:
        p("")
        p("**freshet / peer**, medians (for deliveries/s above 1 is better; for memory, latency, "
          "CPU and time below 1 is better):")
        p("")
        p("| figure | " + " | ".join(f"{short[a]} / {short[b]}" for a, b in cmp) + " |")
        p("|---|" + "---|" * len(cmp))
        for m, name, f, higher, digits in headline:
            if name.startswith("storm: gaps"):
                continue
            p(f"| {name} | " + " | ".join(rfmt(ratio(med(m, a, f), med(m, b, f))) for a, b in cmp) + " |")

errs = []
for (m, s), js in runs.items():
    for r, j in enumerate(js, 1):
        if ok(j) and j.get("errors"):
            errs.append(f"{label[s]}, {m}, round {r}: {j['errors']} errors"
                        + (f" (first: {j['first_error']})" if j.get("first_error") else ""))
        elif j and "bench_failed" in j:
            errs.append(f"{label[s]}, {m}, round {r}: freshet-bench failed: {j['bench_failed'].strip()[-120:]}")
        elif j and "not_started" in j:
            errs.append(f"{label[s]}, {m}, round {r}: the server did not start")
if errs:
    p("")
    p("Errors seen by the load client:")
    p("")
    for e in sorted(errs):
        p(f"- {e}")
# Prose wraps at 100 columns like the rest of the file; tables and code stay on one line.
import textwrap
out, code = [], False
for line in lines:
    if line.startswith("```"):
        code = not code
    if code or line.startswith("```") or line.startswith("|") or len(line) <= 100:
        out.append(line)
    elif line.startswith("- "):
        out.append(textwrap.fill(line, 100, subsequent_indent="  ", break_long_words=False,
                                 break_on_hyphens=False))
    else:
        out.append(textwrap.fill(line, 100, break_long_words=False, break_on_hyphens=False))
print("\n".join(out))
PY

if [ "$write" = 1 ]; then
    python3 - "$root/docs/BENCHMARKS.md" "$section" <<'PY'
import sys
path, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(path).read()
begin, end = "<!-- compare:begin -->", "<!-- compare:end -->"
i, k = text.find(begin), text.find(end)
if i < 0 or k < i:
    sys.exit(f"compare.sh: the markers {begin} and {end} are missing from {path}")
text = text[:i + len(begin)] + "\n" + section + "\n" + text[k:]
open(path, "w").write(text)
PY
    echo "compare.sh: wrote docs/BENCHMARKS.md (between the compare markers)" >&2
else
    cat "$section"
fi
