#!/usr/bin/env bash
# HTTP/1.1 in cleartext, HTTP/1.1 over TLS and HTTP/2 over TLS, side by side, in one run: the
# same freshet binary and app (scripts/bench/app.lua, 1 worker), cleartext or with
# tls = { cert, key } (FRESHET_TLS_CERT, FRESHET_TLS_KEY: a P-256 certificate made here with
# openssl), a fresh server per measurement, rounds interleaved so all see the same machine noise:
#
#   round r: idle [clear, tls], fan-out 10,000 x 5/s [clear, tls]            (freshet-bench)
#            idle [h1 clear, h1 tls, h2 tls], fan-out 10,000 x 5/s [same]   (h2load)
#
# Figures come from build/freshet-bench --json --server-pid (with --tls against the TLS server),
# and from scripts/bench/h2load_run.py, which drives h2load (nghttp2-client: HTTP/2 with
# 10,000 / --h2-conns streams per connection, or --h1 with one connection per stream) and reads
# the server's own counters and /proc entry.
# The medians over the rounds, with each round's value, go into docs/BENCHMARKS.md between
# <!-- tls:begin --> and <!-- tls:end -->, and what build/tests/unit/test_tls_memory counts of
# OpenSSL's memory per idle connection between <!-- tlsmem:begin --> and <!-- tlsmem:end -->
# (nothing else in the file changes).
#
# Usage: scripts/bench/tls.sh [--rounds N] [--streams N] [--duration S] [--no-write] [--keep]
#
#   --rounds N     rounds (2)
#   --streams N    streams of both workloads (10000)
#   --duration S   measured seconds of the fan-out (30)
#   --h2-conns N   HTTP/2 connections the streams share (200)
#   --no-write     print the section on stdout instead of writing docs/BENCHMARKS.md
#   --keep         keep the work directory (raw JSON of every run, server logs)
#
# About 12 minutes with the defaults on 2 cores. Everything listens on 127.0.0.1; only the
# processes this script starts are stopped, by PID.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
invocation="scripts/bench/tls.sh${*:+ $*}"

rounds=2 streams=10000 duration=30 write=1 keep=0 h2conns=200
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds="${2:?--rounds N}"; shift ;;
    --streams) streams="${2:?--streams N}"; shift ;;
    --duration) duration="${2:?--duration S}"; shift ;;
    --h2-conns) h2conns="${2:?--h2-conns N}"; shift ;;
    --no-write) write=0 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tls.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

bin="$root/build/freshet" bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua"
{ [ -x "$bin" ] && [ -x "$bench" ]; } || { echo "tls.sh: build first (scripts/setup.sh)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "tls.sh: openssl is missing (scripts/setup.sh)" >&2; exit 2; }
command -v h2load >/dev/null || { echo "tls.sh: h2load is missing (scripts/setup.sh: nghttp2-client)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d /tmp/freshet-tls-bench-XXXXXX)"
srv_pid=""
cleanup() {
    if [ -n "$srv_pid" ]; then
        kill -TERM "$srv_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$srv_pid" 2>/dev/null || true
    fi
    if [ "$keep" = 1 ]; then echo "tls.sh: raw results kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts the server in mode $1 (clear | tls) on port $2, logging to $3; sets srv_pid.
start_server() {
    local mode=$1 port=$2 log=$3 scheme=http
    if [ "$mode" = tls ]; then
        scheme=https
        (exec env FRESHET_WORKERS=1 FRESHET_STREAMS_AT=0.99 FRESHET_TLS_CERT="$work/cert.pem" \
            FRESHET_TLS_KEY="$work/key.pem" "$bin" "$app" --listen "127.0.0.1:$port" \
            --log-level warn) >"$log" 2>&1 &
    else
        (exec env FRESHET_WORKERS=1 FRESHET_STREAMS_AT=0.99 "$bin" "$app" \
            --listen "127.0.0.1:$port" --log-level warn) >"$log" 2>&1 &
    fi
    srv_pid=$!
    [ "$(readlink "/proc/$srv_pid/exe" 2>/dev/null)" = "$(readlink -f "$bin")" ] || sleep 0.2
    [ "$(readlink "/proc/$srv_pid/exe" 2>/dev/null)" = "$(readlink -f "$bin")" ] ||
        { echo "tls.sh: pid $srv_pid is not the server" >&2; return 1; }
    for _ in $(seq 100); do
        kill -0 "$srv_pid" 2>/dev/null || return 1
        curl -skf -o /dev/null "$scheme://127.0.0.1:$port/health" && return 0
        sleep 0.1
    done
    return 1
}

stop_server() {
    kill -TERM "$srv_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
}

bench_args() {
    case "$1" in
    idle) echo "-c $streams -t 1 -r 1 -d 1 --warmup 0 --tail 2" ;;
    fanout5) echo "-c $streams -t 1 -r 5 -d $duration --tail 10" ;;
    esac
}

t0=$(date +%s) when="$(date -u '+%Y-%m-%d %H:%M UTC')"
for round in $(seq 1 "$rounds"); do
    for w in idle fanout5; do
        for mode in clear tls; do
            out="$work/$round.$w.$mode.json" log="$work/$round.$w.$mode.log"
            port=$(free_port)
            if ! start_server "$mode" "$port" "$log"; then
                echo "tls.sh: round $round, $w: the $mode server did not start" >&2
                tail -n 3 "$log" >&2 || true
                stop_server
                continue
            fi
            echo "tls.sh: round $round/$rounds, $w, $mode (pid $srv_pid, port $port)" >&2
            tls_arg=""
            [ "$mode" = tls ] && tls_arg="--tls"
            # shellcheck disable=SC2046
            "$bench" -p "$port" $(bench_args "$w") $tls_arg --prefix "r$round" \
                --server-pid "$srv_pid" --json -q >"$out" 2>"$out.err" ||
                echo "tls.sh: freshet-bench failed: $(tail -n 1 "$out.err")" >&2
            stop_server
        done
    done
    for w in idle fanout5; do
        for mode in h1clear h1tls h2tls; do
            out="$work/$round.$w.$mode.json" log="$work/$round.$w.$mode.log"
            port=$(free_port)
            smode=tls
            [ "$mode" = h1clear ] && smode=clear
            if ! start_server "$smode" "$port" "$log"; then
                echo "tls.sh: round $round, $w: the $mode server did not start" >&2
                stop_server
                continue
            fi
            echo "tls.sh: round $round/$rounds, $w, $mode with h2load (pid $srv_pid, port $port)" >&2
            args=(--port "$port" --pid "$srv_pid" --streams "$streams" --conns "$h2conns"
                  --duration "$duration" --rate 5)
            [ "$w" = idle ] && args+=(--mode idle) || args+=(--mode fanout)
            [ "$smode" = tls ] && args+=(--tls)
            [ "$mode" != h2tls ] && args+=(--h1)
            python3 "$root/scripts/bench/h2load_run.py" "${args[@]}" >"$out" 2>"$out.err" ||
                echo "tls.sh: h2load_run.py failed: $(tail -n 1 "$out.err")" >&2
            stop_server
        done
    done
done
elapsed=$(( $(date +%s) - t0 ))

memtest="$root/build/tests/unit/test_tls_memory"
if [ -x "$memtest" ]; then
    { echo '```sh'; echo 'build/tests/unit/test_tls_memory'; echo '```'; echo
      echo '```'; "$memtest" | sed -n 's/^    //p'; echo '```'; } >"$work/tlsmem.md"
else
    echo "(build/tests/unit/test_tls_memory is not built)" >"$work/tlsmem.md"
fi

section="$work/section.md"
python3 - "$work" "$rounds" "$streams" "$duration" "$invocation" "$elapsed" "$when" \
    "$("$bin" --version)" "$(openssl version | cut -d' ' -f1-2)" "$(nproc)" "$(uname -r)" \
    "$h2conns" "$(h2load --version | head -n 1)" >"$section" <<'PY'
import json, os, statistics, sys

(work, rounds, streams, duration, invocation, elapsed, when, v_freshet, v_openssl, cores,
 kernel, h2conns, v_h2load) = sys.argv[1:]
h2conns = int(h2conns)
rounds, streams, elapsed = int(rounds), int(streams), int(elapsed)

def load(r, w, m):
    try:
        with open(os.path.join(work, f"{r}.{w}.{m}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def vals(w, m, f):
    out = []
    for r in range(1, rounds + 1):
        j = load(r, w, m)
        if j is None:
            continue
        try:
            v = f(j)
        except (KeyError, TypeError, ZeroDivisionError):
            v = None
        if v is not None:
            out.append(v)
    return out

def med(w, m, f):
    v = vals(w, m, f)
    return statistics.median(v) if v else None

def fmt(v, d=1):
    if v is None:
        return "—"
    if abs(v) >= 1000 and d <= 1:
        return f"{v:,.0f}"
    return f"{v:,.{d}f}"

def cell(w, m, f, d=1):
    v = vals(w, m, f)
    if not v:
        return "failed"
    t = fmt(statistics.median(v), d)
    if len(v) > 1:
        t += " (" + " / ".join(fmt(x, d) for x in v) + ")"
    return t

srv = lambda j, k: j["server"][k]
pss = lambda j: srv(j, "pss_kb_per_stream") if srv(j, "pss_kb_per_stream") is not None else srv(j, "rss_kb_per_stream")
rss = lambda j: srv(j, "rss_kb_per_stream")
connected = lambda j: j["connected"]
connect_p50 = lambda j: j["connect_ms"]["p50"]
connect_p99 = lambda j: j["connect_ms"]["p99"]
dps = lambda j: j["deliveries_per_s"]
per_cpu = lambda j: j["delivered"] / srv(j, "cpu_s")
us_per = lambda j: srv(j, "cpu_us_per_delivery")
cpu_pct = lambda j: srv(j, "cpu_pct")
missing = lambda j: j["missing"]
errors = lambda j: j["errors"]
p50 = lambda j: j["latency_ms"]["p50"]
p99 = lambda j: j["latency_ms"]["p99"]

label = {"clear": "HTTP/1.1, cleartext", "tls": "HTTP/1.1 over TLS"}
L = []
p = L.append
p("```sh")
p(invocation)
p("```")
p("")
p(f"Run of {when}, {rounds} round{'s' if rounds != 1 else ''}, {elapsed // 60} min "
  f"{elapsed % 60} s, on this machine ({cores} cores, Linux {kernel}), shared and noisy. "
  f"{v_freshet}, 1 worker, `scripts/bench/app.lua` (memory broker), cleartext or with "
  f"`tls = {{ cert, key }}` (a P-256 certificate; {v_openssl}; TLS 1.3, "
  f"TLS_AES_256_GCM_SHA384 with the bench's OpenSSL client). A fresh server per measurement; "
  f"each round runs both in turn. The load client, `build/freshet-bench` (with `--tls` for "
  f"the TLS server), runs on the same two cores and decrypts what it reads there too. Figures "
  f"are medians over the rounds, each round's value in brackets.")
p("")
p(f"**Idle streams** (`freshet-bench -c {streams} -t 1 -r 1 -d 1 --warmup 0 --tail 2`, "
  "`--tls` for TLS): the server's growth from before connecting to after the last stream "
  "started, per stream; user-space memory (PSS and RSS), socket buffers are the kernel's.")
p("")
p("| server | PSS KB/stream | RSS KB/stream | streams | connect p50 ms | connect p99 ms |")
p("|---|---|---|---|---|---|")
for m in ("clear", "tls"):
    p(f"| {label[m]} | {cell('idle', m, pss, 2)} | {cell('idle', m, rss, 2)} | "
      f"{cell('idle', m, connected, 0)} | {cell('idle', m, connect_p50)} | "
      f"{cell('idle', m, connect_p99)} |")
p("")
p(f"**Fan-out** (`freshet-bench -c {streams} -t 1 -r 5 -d {duration} --tail 10`, `--tls` for "
  f"TLS): {streams:,} streams on one topic, 5 events/s for {duration} s; CPU is the server's "
  "user + system time from measure start to the end of the run.")
p("")
p("| server | deliveries/s | deliveries per CPU-second | CPU µs per delivery | CPU % | "
  "missing | errors | p50 ms | p99 ms |")
p("|---|---|---|---|---|---|---|---|---|")
for m in ("clear", "tls"):
    p(f"| {label[m]} | {cell('fanout5', m, dps)} | {cell('fanout5', m, per_cpu)} | "
      f"{cell('fanout5', m, us_per, 2)} | {cell('fanout5', m, cpu_pct, 0)} | "
      f"{cell('fanout5', m, missing, 0)} | {cell('fanout5', m, errors, 0)} | "
      f"{cell('fanout5', m, p50)} | {cell('fanout5', m, p99)} |")
p("")
mc, mt = med("idle", "clear", pss), med("idle", "tls", pss)
uc, ut = med("fanout5", "clear", us_per), med("fanout5", "tls", us_per)
dc, dt = med("fanout5", "clear", per_cpu), med("fanout5", "tls", per_cpu)
parts = []
if mc is not None and mt is not None:
    parts.append(f"an idle stream over TLS holds {mt:.2f} KB of user space against {mc:.2f} KB "
                 f"in cleartext, {mt - mc:.2f} KB more ({mt / mc:.1f}×); the target was at most "
                 f"12 KB: **{'met' if mt <= 12 else 'not met'}**")
if uc and ut and dc and dt:
    parts.append(f"a delivery costs {ut:.2f} µs of server CPU over TLS against {uc:.2f} µs in "
                 f"cleartext ({ut / uc:.2f}×), {dt:,.0f} against {dc:,.0f} deliveries per "
                 f"CPU-second: TLS costs {(1 - dt / dc) * 100:.0f}% of the deliveries a CPU-second "
                 f"buys")
if parts:
    p("In this run " + "; ".join(parts) + ".")
p("")
hl = {"h1clear": "HTTP/1.1, cleartext", "h1tls": "HTTP/1.1 over TLS",
      "h2tls": f"HTTP/2 over TLS ({streams // h2conns} streams per connection)"}
p(f"**The same with HTTP/2**, the load client {v_h2load} (`h2load -t 1 --h1 -c {streams} -m 1` "
  f"for HTTP/1.1, one connection per stream; `h2load -t 1 -c {h2conns} -m {streams // h2conns}` "
  f"for HTTP/2 over TLS, ALPN h2), all {streams:,} streams on one topic; h2load reads the "
  "streams without parsing them, so the figures are the server's: its memory growth per open "
  "stream (PSS, RSS), the events it wrote (freshet_events_delivered_total) per second of its "
  f"CPU while 5 events/s were published for {duration} s, and those it did not write.")
p("")
g = lambda k: (lambda j: j[k])
p("| server | PSS KB/stream | RSS KB/stream | streams | connect s | deliveries/s | "
  "deliveries per CPU-second | CPU µs per delivery | CPU % | missing |")
p("|---|---|---|---|---|---|---|---|---|---|")
for m in ("h1clear", "h1tls", "h2tls"):
    p(f"| {hl[m]} | {cell('idle', m, g('pss_kb_per_stream'), 2)} | "
      f"{cell('idle', m, g('rss_kb_per_stream'), 2)} | {cell('idle', m, g('connected'), 0)} | "
      f"{cell('idle', m, g('connect_s'))} | {cell('fanout5', m, g('deliveries_per_s'))} | "
      f"{cell('fanout5', m, g('deliveries_per_cpu_s'))} | "
      f"{cell('fanout5', m, g('cpu_us_per_delivery'), 2)} | {cell('fanout5', m, g('cpu_pct'), 0)} | "
      f"{cell('fanout5', m, g('missing'), 0)} |")
p("")
m1, m2 = med("idle", "h1clear", g("pss_kb_per_stream")), med("idle", "h2tls", g("pss_kb_per_stream"))
t1 = med("idle", "h1tls", g("pss_kb_per_stream"))
c1 = med("fanout5", "h1clear", g("deliveries_per_cpu_s"))
ct, c2 = med("fanout5", "h1tls", g("deliveries_per_cpu_s")), med("fanout5", "h2tls", g("deliveries_per_cpu_s"))
parts = []
if m1 is not None and m2 is not None:
    parts.append(f"an idle HTTP/2 stream over TLS, {streams // h2conns} to a connection, holds "
                 f"{m2:.2f} KB against {m1:.2f} KB for a cleartext HTTP/1.1 stream, "
                 f"{m2 - m1:+.2f} KB; the target was at most 1.5 KB above: "
                 f"**{'met' if m2 - m1 <= 1.5 else 'not met'}**")
if t1 is not None:
    parts.append(f"HTTP/1.1 over TLS holds {t1:.2f} KB per stream")
if c1 and ct and c2:
    parts.append(f"per CPU-second the server writes {c1:,.0f} deliveries over cleartext "
                 f"HTTP/1.1, {ct:,.0f} over HTTP/1.1 with TLS ({ct / c1:.2f}×) and {c2:,.0f} over "
                 f"HTTP/2 with TLS ({c2 / c1:.2f}×): {streams // h2conns} streams share one "
                 "connection's writes and records")
if parts:
    p("In this run " + "; ".join(parts) + ".")
print("\n".join(L))
PY

if [ "$write" = 1 ]; then
    python3 - "$root/docs/BENCHMARKS.md" "$section" "$work/tlsmem.md" <<'PY'
import sys
doc, section, tlsmem = sys.argv[1:]
text = open(doc).read()
for name, path in (("tls", section), ("tlsmem", tlsmem)):
    body = open(path).read().rstrip("\n")
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        sys.exit(f"tls.sh: docs/BENCHMARKS.md has no {begin} ... {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = f"{head}{begin}\n{body}\n{end}{tail}"
open(doc, "w").write(text)
PY
    echo "tls.sh: wrote the sections of docs/BENCHMARKS.md" >&2
else
    cat "$section" "$work/tlsmem.md"
fi
