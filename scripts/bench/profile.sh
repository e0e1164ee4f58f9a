#!/usr/bin/env bash
# Profiles the delivery hot path and writes what it finds into docs/BENCHMARKS.md, between
# <!-- profile:begin --> and <!-- profile:end --> (the section is also printed on stdout).
#
# 1. callgrind: the server runs under valgrind with instrumentation off, so start-up, the
#    connect phase and warmup cost nothing; `callgrind_control -i on` starts the count once every
#    stream is open and the measured window of freshet-bench has begun, and `--dump` ends it
#    while freshet-bench is still publishing. The window's instructions (Ir, user space only) are
#    divided by the deliveries inside the same window (calls of the per-stream delivery
#    callback, with /metrics read around the window as a cross-check). Two workloads, 1,000
#    streams on one topic: one event per write (4 events/s, so each stream gets one event
#    per loop pass) and batched (publisher flat out, 16 requests in flight).
# 2. perf: the server runs natively under 10,000 streams × 5 events/s; `perf record -e cpu-clock
#    -g` samples it (user and kernel) over a window, and /proc/PID/stat gives its CPU time over
#    the same window, divided by the deliveries /metrics counted in it.
#
# Needs root (perf's kernel samples), valgrind, perf, python3, curl, and a build
# (build/freshet, build/freshet-bench). Takes about three minutes.
# Usage: scripts/bench/profile.sh [--no-doc]    (--no-doc: print the section, leave the doc)
# PROFILE_KEEP=1 keeps the profiles and reports in the temporary directory and names it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
write_doc=1
[ "${1:-}" = "--no-doc" ] && write_doc=0
bench="$root/build/freshet-bench" app="$root/scripts/bench/app.lua" doc="$root/docs/BENCHMARKS.md"
[ -x "$root/build/freshet" ] && [ -x "$bench" ] || { echo "build first: scripts/setup.sh" >&2; exit 2; }
for tool in valgrind callgrind_control callgrind_annotate perf python3 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 2; }
done
grep -q '<!-- profile:begin -->' "$doc" && grep -q '<!-- profile:end -->' "$doc" ||
    { echo "$doc has no profile markers" >&2; exit 2; }

# Workloads. Callgrind slows the instrumented server about 50 times: 4 events/s to 1,000 streams
# is then still one event per stream per loop pass, and the flat-out publisher adapts by itself.
cg_subs=1000 cg_rate=4 cg_warmup=3 cg_secs=22 cg_window=12
pf_subs=10000 pf_rate=5 pf_warmup=2 pf_secs=16 pf_window=8
export FRESHET_WORKERS="${FRESHET_WORKERS:-1}"

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null || true
    done
    [ "${PROFILE_KEEP:-0}" = 1 ] && echo "profile: files kept in $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The binary is copied, so a rebuild while this runs changes nothing under it.
bin="$work/freshet"
cp "$root/build/freshet" "$bin"
build_time="$(date -u -r "$root/build/freshet" '+%Y-%m-%d %H:%M UTC')"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=0
[ -n "$(git -C "$root" status --porcelain -- src 2>/dev/null)" ] && dirty=1

# A process waited for is forgotten, so that its PID, if reused, is never signalled.
forget() { local keep=() p; for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; pids=("${keep[@]}"); }
log() { echo "profile: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; return 1; }
metric() { # port name: the sum of a counter's samples
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 ~ "^"n"($|[{])" {s += $2} END {print s + 0}'
}
streams() { curl -sf "http://127.0.0.1:$1/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["streams"])' 2>/dev/null || echo 0; }
# Waits until every stream is open and publishing has begun (the measured window starts
# `warmup` seconds later).
wait_publishing() { # port subscribers
    for _ in $(seq 600); do
        if [ "$(streams "$1")" -ge "$2" ] && [ "$(metric "$1" freshet_events_published_total)" -gt 0 ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
stop() { # pid: TERM, then KILL after 15 s
    kill "$1" 2>/dev/null || true
    for _ in $(seq 75); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$1" 2>/dev/null || true
}

# ---- 1. callgrind ---------------------------------------------------------------------------
run_callgrind() { # name, then freshet-bench's load options
    local name=$1 port sp bp d0 d1
    shift
    port=$(free_port)
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.$name.%p" \
        "$bin" "$app" --listen "127.0.0.1:$port" --log-level warn >"$work/valgrind.$name.log" 2>&1 &
    sp=$!
    pids+=("$sp")
    wait_http "$port" || { log "the server under valgrind did not answer"; exit 1; }
    timeout 240 "$bench" -p "$port" -c "$cg_subs" "$@" --warmup "$cg_warmup" -d "$cg_secs" \
        --tail 60 --json -q >"$work/bench.$name.json" 2>"$work/bench.$name.err" &
    bp=$!
    pids+=("$bp")
    wait_publishing "$port" "$cg_subs" || { log "$name: streams did not open"; exit 1; }
    sleep $((cg_warmup + 1))
    d0=$(metric "$port" freshet_events_delivered_total)
    callgrind_control -i on "$sp" >/dev/null 2>&1
    sleep "$cg_window"
    kill -0 "$bp" 2>/dev/null || { log "$name: freshet-bench ended inside the window"; exit 1; }
    callgrind_control --dump="window" "$sp" >/dev/null 2>&1
    callgrind_control -i off "$sp" >/dev/null 2>&1
    d1=$(metric "$port" freshet_events_delivered_total)
    echo "$((d1 - d0))" >"$work/metrics.$name"
    wait "$bp" || true
    forget "$bp"
    stop "$sp"
    wait "$sp" 2>/dev/null || true
    forget "$sp"
    mv "$work"/cg."$name".*.1 "$work/cg.$name" 2>/dev/null ||
        { log "$name: callgrind wrote no window dump"; exit 1; }
    callgrind_annotate --auto=no --threshold=100 "$work/cg.$name" >"$work/self.$name.txt" 2>/dev/null
    callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$work/cg.$name" >"$work/incl.$name.txt" 2>/dev/null
}

log "callgrind, one event per write: $cg_subs streams, $cg_rate events/s"
run_callgrind single -r "$cg_rate"
log "callgrind, batched: $cg_subs streams, publisher flat out, 16 in flight"
run_callgrind batched -r 0 --pipeline 16

# ---- 2. perf, native ------------------------------------------------------------------------
log "perf: $pf_subs streams, $pf_rate events/s"
port=$(free_port)
"$bin" "$app" --listen "127.0.0.1:$port" --log-level warn >"$work/native.log" 2>&1 &
sp=$!
pids+=("$sp")
wait_http "$port" || { log "the server did not answer"; exit 1; }
timeout 240 "$bench" -p "$port" -c "$pf_subs" -r "$pf_rate" --warmup "$pf_warmup" -d "$pf_secs" \
    --server-pid "$sp" --json -q >"$work/bench.perf.json" 2>"$work/bench.perf.err" &
bp=$!
pids+=("$bp")
wait_publishing "$port" "$pf_subs" || { log "perf: streams did not open"; exit 1; }
sleep $((pf_warmup + 1))
tck=$(getconf CLK_TCK)
d0=$(metric "$port" freshet_events_delivered_total)
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$sp/stat")
perf record -q -e cpu-clock -g -p "$sp" -o "$work/perf.data" -- sleep "$pf_window" 2>"$work/perf.err"
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$sp/stat")
d1=$(metric "$port" freshet_events_delivered_total)
kill -0 "$bp" 2>/dev/null || { log "perf: freshet-bench ended inside the window"; exit 1; }
echo "$((d1 - d0)) $((u1 - u0)) $((s1 - s0)) $tck" >"$work/proc.perf"
wait "$bp" || true
forget "$bp"
stop "$sp"
wait "$sp" 2>/dev/null || true
forget "$sp"
perf script -i "$work/perf.data" -F comm,tid,ip,sym,dso >"$work/perf.txt" 2>/dev/null

# ---- 3. the section ---------------------------------------------------------------------------
PF_COMMIT="$commit" PF_DIRTY="$dirty" PF_BUILD_TIME="$build_time" \
PF_SETTINGS="$cg_subs $cg_rate $cg_warmup $cg_secs $cg_window $pf_subs $pf_rate $pf_warmup $pf_secs $pf_window" \
    python3 - "$work" "$doc" "$write_doc" <<'PY'
import collections, datetime, json, os, re, sys, textwrap

work, doc, write_doc = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
env = os.environ
meta = dict(commit=env["PF_COMMIT"], dirty=env["PF_DIRTY"] == "1", build_time=env["PF_BUILD_TIME"],
            workers=env["FRESHET_WORKERS"])
meta.update(zip(("cg_subs", "cg_rate", "cg_warmup", "cg_secs", "cg_window", "pf_subs", "pf_rate",
                 "pf_warmup", "pf_secs", "pf_window"), (int(x) for x in env["PF_SETTINGS"].split())))
problems = []

def fail(msg):
    print("profile: " + msg, file=sys.stderr)
    sys.exit(1)

def short_obj(path):
    base = os.path.basename(path or "?")
    for key, label in (("libuv", "libuv"), ("libluajit", "LuaJIT"), ("libc.so", "libc"),
                       ("ld-linux", "ld.so"), ("kallsyms", "kernel"), ("vdso", "vdso")):
        if key in base:
            return label
    return "freshet" if base == "freshet" else base

def fmt(n):
    return f"{n:,.0f}"

# ---- callgrind: a reader of the profile format, for call counts and callees -----------------
def read_callgrind(path):
    """Self cost per function, calls received per function and, per function, its callees."""
    tables = {"fn": {}, "fl": {}, "ob": {}}
    kind = {"fn": "fn", "cfn": "fn", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl",
            "cfl": "fl", "ob": "ob", "cob": "ob"}
    selfc, calls = collections.Counter(), collections.Counter()
    callees = collections.defaultdict(collections.Counter)
    files = {}
    fn = ob = fl = cfn = cob = None
    ncalls = None
    total = 0
    rx = re.compile(r"^(fn|cfn|fl|fi|fe|cfi|cfl|ob|cob)=(?:\((\d+)\))?\s*(.*)$")
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = rx.match(line)
        if m:
            k, idx, name = m.groups()
            t = tables[kind[k]]
            if idx and name:
                t[idx] = name
            elif idx:
                name = t[idx]
            if k == "ob":
                ob = name
            elif k == "fl":
                fl = name
            elif k == "fn":
                fn = (name, ob)
                files.setdefault(fn, fl)
            elif k == "cfn":
                cfn = name
            elif k == "cob":
                cob = name
            continue
        if line.startswith("calls="):
            ncalls = int(line[6:].split()[0])
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            cost = int(parts[1]) if len(parts) > 1 else 0
            if ncalls is not None:
                target = (cfn, cob or ob)
                calls[target] += ncalls
                callees[fn][target] += ncalls
                ncalls, cob = None, None
            else:
                selfc[fn] += cost
            continue
        if line.startswith(("totals:", "summary:")):
            total = int(line.split()[1])
    return dict(total=total, selfc=selfc, calls=calls, callees=callees, files=files)

def calls_named(cg, names):
    return sum(n for (f, o), n in cg["calls"].items() if f in names)

def label(cg, fn_name, obj):
    """A readable name; an unnamed (stripped) function is named by the named functions it calls,
    directly or through other unnamed ones."""
    if not fn_name.startswith("0x"):
        return fn_name
    addr = "0x" + fn_name[2:].lstrip("0")
    key = next((k for k in cg["callees"] if k[0] == fn_name and short_obj(k[1]) == short_obj(obj)), None)
    named, seen, todo = [], {key}, [key]
    while todo and len(named) < 2:
        k = todo.pop(0)
        for c, _ in cg["callees"].get(k, collections.Counter()).most_common():
            if not c[0].startswith("0x"):
                if c[0] not in named:
                    named.append(c[0])
            elif c not in seen and len(seen) < 8:
                seen.add(c)
                todo.append(c)
    return f"{addr} (→ {', '.join(named[:2])})" if named else addr

def annotate_rows(path, data, inclusive):
    """callgrind_annotate's lines (cost, file, function, object), one per function: the parts of
    a function that inlined code from other files are summed (self) or the largest kept
    (inclusive); a line without an object takes the function's object from the profile."""
    objs = {}
    for key in data["selfc"]:
        if key:
            objs.setdefault(key[0], key[1])
    merged, files = collections.Counter(), collections.defaultdict(list)
    rx = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+?):(\S+)(?:\s+\[(.*)\])?\s*$")
    for line in open(path, errors="replace"):
        m = rx.match(line)
        if not m:
            continue
        cost, file, fn, obj = int(m.group(1).replace(",", "")), m.group(2), m.group(3), m.group(4)
        key = (fn, obj or objs.get(fn, ""))
        files[key].append(file)
        merged[key] = max(merged[key], cost) if inclusive else merged[key] + cost
    # The function's own source file rather than a header it inlined from.
    pick = lambda fs: next((f for f in fs if re.search(r"(^|/)src/", f) or "llhttp" in f), fs[0])
    return [(c, pick(files[k]), k[0], k[1]) for k, c in merged.most_common()]

ALLOC = re.compile(r"^(malloc|free|calloc|realloc|cfree|_int_malloc|_int_free|_int_realloc|"
                   r"unlink_chunk.*|alloc_perturb|malloc_consolidate|sysmalloc|systrim|tcache.*|"
                   r"__libc_(malloc|free|calloc|realloc))$")
FORMAT = re.compile(r"(printf|^_IO_|_itoa|strchrnul|^__printf_fp)")

def category(fn, obj, file):
    o = short_obj(obj)
    if o == "libc" and ALLOC.match(fn):
        return "malloc/free (libc)"
    if o == "libc" and FORMAT.search(fn):
        return "snprintf and stdio (libc)"
    if o == "freshet":
        return "llhttp (request parsing)" if file and "llhttp" in file else "freshet's own code"
    return {"libc": "libc, other", "libuv": "libuv", "LuaJIT": "LuaJIT"}.get(o, "other")

SYSCALLS = {"writev": "writev", "write": "write", "read": "read", "epoll_ctl": "epoll_ctl",
            "epoll_wait": "epoll_wait", "epoll_pwait": "epoll_wait", "accept4": "accept4",
            "close": "close", "sendmsg": "sendmsg"}

cg = {}
for name in ("single", "batched"):
    bj = json.load(open(f"{work}/bench.{name}.json"))
    data = read_callgrind(f"{work}/cg.{name}")
    if bj["connected"] != meta["cg_subs"] or bj["missing"] or bj["gaps"] or bj["errors"] or bj["delivered"] != bj["expected"]:
        problems.append(f"{name}: freshet-bench saw {bj['delivered']} of {bj['expected']} delivered, "
                        f"{bj['gaps']} gaps, {bj['errors']} errors")
    self_rows = annotate_rows(f"{work}/self.{name}.txt", data, False)
    incl_rows = annotate_rows(f"{work}/incl.{name}.txt", data, True)
    ann_total = sum(r[0] for r in self_rows)
    if abs(ann_total - data["total"]) > data["total"] * 0.001:
        fail(f"{name}: callgrind_annotate sums to {ann_total}, the profile says {data['total']}")
    deliveries = calls_named(data, {"on_deliver"})
    from_metrics = int(open(f"{work}/metrics.{name}").read())
    counted_by = "calls of on_deliver"
    if deliveries == 0:
        deliveries, counted_by = from_metrics, "/metrics around the window"
    if deliveries == 0:
        fail(f"{name}: no delivery inside the window")
    sysc = collections.Counter()
    for (f, o), n in data["calls"].items():
        if short_obj(o) == "libc" and f in SYSCALLS:
            sysc[SYSCALLS[f]] += n
    cats = collections.Counter()
    for key, c in data["selfc"].items():
        f, o = key or ("?", "?")
        cats[category(f, o, data["files"].get(key))] += c
    cg[name] = dict(bench=bj, data=data, self_rows=self_rows, incl_rows=incl_rows,
                    deliveries=deliveries, from_metrics=from_metrics, counted_by=counted_by,
                    syscalls=sysc, cats=cats, writes=sysc["writev"] + sysc["write"])

# ---- perf ---------------------------------------------------------------------------------------
pdel, putime, pstime, tck = (int(x) for x in open(f"{work}/proc.perf").read().split())
pbench = json.load(open(f"{work}/bench.perf.json"))
if pbench["connected"] != meta["pf_subs"] or pbench["missing"] or pbench["gaps"] or pbench["errors"]:
    problems.append(f"perf: freshet-bench saw {pbench['delivered']} of {pbench['expected']} delivered, "
                    f"{pbench['gaps']} gaps, {pbench['errors']} errors")
if pdel == 0:
    fail("perf: no delivery inside the window")
cpu_us = (putime + pstime) / tck * 1e6 / pdel

samples = []  # (frames, leaf dso): frames leaf first, as (symbol, dso)
frames = []
for line in open(f"{work}/perf.txt", errors="replace"):
    if not line.strip():
        if frames:
            samples.append(frames)
        frames = []
        continue
    if not line.startswith(("\t", " ")):
        continue
    m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
    if m:
        sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
        frames.append((sym, m.group(2)))
if frames:
    samples.append(frames)
if not samples:
    fail("perf recorded no sample")

KMARK = [("write", ("do_writev", "ksys_write", "__x64_sys_writev", "__x64_sys_write")),
         ("epoll_ctl", ("do_epoll_ctl", "__x64_sys_epoll_ctl")),
         ("epoll_wait", ("do_epoll_wait", "__x64_sys_epoll_wait", "__x64_sys_epoll_pwait")),
         ("read", ("ksys_read", "__x64_sys_read")),
         ("accept", ("__sys_accept4", "do_accept")),
         ("close", ("__x64_sys_close", "close_fd"))]
RECV = ("net_rx_action", "__netif_receive_skb", "process_backlog", "tcp_v4_rcv")

# libc's wrapper at the bottom of a chain names the call when the kernel frames do not (entry
# and exit of the system call).
WRAPPERS = [("write", re.compile(r"write")), ("epoll_ctl", re.compile(r"epoll_ctl")),
            ("epoll_wait", re.compile(r"epoll_p?wait")), ("read", re.compile(r"(^|_)read$")),
            ("accept", re.compile(r"accept")), ("close", re.compile(r"close"))]

def kernel_class(fr):
    syms = [s for s, _ in fr]
    if any(s in ("asm_exc_page_fault", "exc_page_fault") for s in syms):
        return "kernel: page faults (heap growth under malloc)"
    if "schedule" in syms and "exit_to_user_mode_loop" in syms:
        return "kernel: context switches (preempted as a system call returns)"
    if "__do_sys_brk" in syms:
        return "kernel: brk (malloc growing and trimming the heap)"
    what = next((w for w, marks in KMARK if any(s in marks for s in syms)), None)
    if what is None and "do_syscall_64" in syms:
        user = [s for s, d in fr if short_obj(d) != "kernel"]
        what = next((w for w, rx in WRAPPERS for u in user[:1] if rx.search(u)), None)
        if what is None:
            return "kernel: other system calls"
    if what == "write":
        if any(s in RECV for s in syms):
            return "kernel: write/writev, loopback receive (tcp_v4_rcv, waking the reader)"
        return "kernel: write/writev, send side (tcp_sendmsg, copy, IP output, syscall entry)"
    if what:
        return f"kernel: {what}"
    return "kernel: interrupts and timers"

def user_class(sym, dso):
    o = short_obj(dso)
    if o == "libc" and ALLOC.match(sym):
        return "user: malloc/free (libc)"
    if o == "libc" and FORMAT.search(sym):
        return "user: snprintf and stdio (libc)"
    return {"freshet": "user: freshet (its own code and llhttp)", "libuv": "user: libuv",
            "libc": "user: libc, other", "LuaJIT": "user: LuaJIT", "vdso": "user: vdso (clock_gettime)"}.get(o, "user: other")

pclass, psym = collections.Counter(), collections.Counter()
kernel_n = 0
for fr in samples:
    sym, dso = fr[0]
    if short_obj(dso) == "kernel":
        kernel_n += 1
        pclass[kernel_class(fr)] += 1
    else:
        pclass[user_class(sym, dso)] += 1
    psym[(sym, short_obj(dso))] += 1
nsamp = len(samples)

# ---- the Markdown --------------------------------------------------------------------------
out = []
w = out.append
today = datetime.date.today().isoformat()
src = f"checkout at {meta['commit']}" + (", with uncommitted changes in src/" if meta["dirty"] else "")
w(f"Written by `scripts/bench/profile.sh` on {today}: build/freshet of {meta['build_time']} "
  f"({src}), {meta['workers']} worker, memory broker, `scripts/bench/app.lua`, 128-byte events. "
  "The machine is shared: instruction counts are exact and repeatable, CPU times are rough.")
w("")
if problems:
    w("**This run is not clean:** " + "; ".join(problems) + ".")
    w("")
w("### User-space instructions per delivered event (callgrind)")
w("")
w("```sh")
w("valgrind --tool=callgrind --instr-atstart=no build/freshet scripts/bench/app.lua --listen 127.0.0.1:PORT --log-level warn")
w(f"build/freshet-bench -p PORT -c {meta['cg_subs']} -r {meta['cg_rate']} --warmup {meta['cg_warmup']} -d {meta['cg_secs']} --tail 60 --json      # one event per write")
w(f"build/freshet-bench -p PORT -c {meta['cg_subs']} -r 0 --pipeline 16 --warmup {meta['cg_warmup']} -d {meta['cg_secs']} --tail 60 --json   # batched")
w(f"# once every stream is open and the measured window has begun ({meta['cg_warmup'] + 1} s after the first publish):")
w(f"callgrind_control -i on PID; sleep {meta['cg_window']}; callgrind_control --dump PID; callgrind_control -i off PID")
w("```")
w("")
w("Only the window is counted: start-up, connecting and warmup run uninstrumented, and the window "
  "ends while the publisher is still sending. Deliveries are the calls of `on_deliver` (one per "
  "event per stream) inside the window; `freshet_events_delivered_total` read from /metrics just "
  "outside it is given beside them. System calls are the calls of libc's wrappers.")
w("")
w("| workload | freshet-bench: delivered / expected | deliveries in the window (/metrics) | Ir in the window | **Ir per delivery** | events per write | syscalls per delivery |")
w("|---|---|---|---|---|---|---|")
titles = {"single": f"one event per write ({meta['cg_rate']}/s)", "batched": "batched (flat out, pipeline 16)"}
for name, r in cg.items():
    d = r["deliveries"]
    per_write = d / r["writes"] if r["writes"] else 0
    sc = r["syscalls"]
    parts = [f"{k} {sc[k] / d:.2f}" for k in ("writev", "write", "epoll_ctl", "epoll_wait", "read") if sc[k]]
    b = r["bench"]
    w(f"| {titles[name]} | {b['delivered']:,} / {b['expected']:,} | {d:,} ({r['from_metrics']:,}) | {fmt(r['data']['total'])} | "
      f"**{r['data']['total'] / d:,.0f}** | {per_write:.1f} | {', '.join(parts)} |")
w("")
w("Where the instructions go (self cost, grouped):")
w("")
w("| share of Ir | one event per write | batched |")
w("|---|---|---|")
cat_order = [c for c, _ in (cg["single"]["cats"] + cg["batched"]["cats"]).most_common()]
for c in cat_order:
    cells = []
    for name in ("single", "batched"):
        r = cg[name]
        v = r["cats"][c]
        cells.append(f"{100 * v / r['data']['total']:.1f}% ({v / r['deliveries']:,.0f} per delivery)")
    w(f"| {c} | {cells[0]} | {cells[1]} |")
w("")

def rows_table(name, rows, what, n=10):
    r = cg[name]
    total, d = r["data"]["total"], r["deliveries"]
    w(f"| {what} | object | Ir per delivery | share |")
    w("|---|---|---|---|")
    shown = []
    for cost, file, fn, obj in rows:
        if what.startswith("inclusive"):
            if cost >= total * 0.995:
                continue  # the loop itself: everything
            if shown and abs(shown[-1][0] - cost) <= cost * 0.01:
                # A wrapper and what it wraps cost the same: keep the one with a name.
                if shown[-1][2].startswith("0x") and not fn.startswith("0x"):
                    shown[-1] = (cost, file, fn, obj)
                continue
        shown.append((cost, file, fn, obj))
        if len(shown) == n:
            break
    for cost, file, fn, obj in shown:
        where = short_obj(obj)
        if where == "freshet" and re.search(r"(^|/)src/", file):
            where = "freshet, " + file[file.rindex("src/"):]
        elif where == "freshet" and "llhttp" in file:
            where = "llhttp"
        w(f"| `{label(r['data'], fn, obj)}` | {where} | {cost / d:,.0f} | {100 * cost / total:.1f}% |")
    w("")

w(f"Batched, the instrumented server is slower than the flat-out publisher, so each write carries "
  f"what piled up during the previous one: {cg['batched']['deliveries'] / max(cg['batched']['writes'], 1):.0f} "
  "events on average. libuv's internal functions have no symbols in Debian's package: they are shown by address, "
  "with the named functions they lead to.")
w("")
w("Top 10 functions by self cost, one event per write:")
w("")
rows_table("single", cg["single"]["self_rows"], "function (self)")
w("Top 10 by inclusive cost, one event per write (the loop itself left out):")
w("")
rows_table("single", cg["single"]["incl_rows"], "inclusive: function")
w("Top 10 by self cost, batched:")
w("")
rows_table("batched", cg["batched"]["self_rows"], "function (self)")

w("### CPU time, user space and kernel (perf, native)")
w("")
w("```sh")
w("build/freshet scripts/bench/app.lua --listen 127.0.0.1:PORT --log-level warn")
w(f"build/freshet-bench -p PORT -c {meta['pf_subs']} -r {meta['pf_rate']} --warmup {meta['pf_warmup']} -d {meta['pf_secs']} --server-pid PID --json")
w(f"perf record -e cpu-clock -g -p PID -- sleep {meta['pf_window']}   # once every stream is open, {meta['pf_warmup'] + 1} s into publishing")
w("```")
w("")
lat = pbench["latency_ms"]
ut, st = putime / tck, pstime / tck
w(f"freshet-bench: {pbench['delivered']:,} of {pbench['expected']:,} delivered, {pbench['gaps']} gaps, "
  f"latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms; "
  f"{(pbench['server'] or {}).get('cpu_us_per_delivery', 0):.1f} µs of server CPU per delivery over its whole window.")
w(f"Inside the perf window: {pdel:,} deliveries, {ut + st:.2f} s of CPU (/proc: user {ut:.2f} s, system {st:.2f} s), "
  f"**{cpu_us:.1f} µs per delivered event: {100 * ut / (ut + st) if ut + st else 0:.0f}% user space, "
  f"{100 * st / (ut + st) if ut + st else 0:.0f}% kernel**; {nsamp:,} samples, {100 * kernel_n / nsamp:.0f}% of them in the kernel.")
w("")
w("| where (samples by leaf function; kernel ones by the system call above them) | share | µs per delivery |")
w("|---|---|---|")
small = 0
for c, n in pclass.most_common():
    if n / nsamp < 0.005:
        small += n
        continue
    w(f"| {c} | {100 * n / nsamp:.1f}% | {cpu_us * n / nsamp:.2f} |")
if small:
    w(f"| the rest, under 0.5% each | {100 * small / nsamp:.1f}% | {cpu_us * small / nsamp:.2f} |")
w("")
w("Top symbols (self):")
w("")
w("| symbol | object | share |")
w("|---|---|---|")
for (s, o), n in psym.most_common(12):
    w(f"| `{s}` | {o} | {100 * n / nsamp:.1f}% |")
w("")
top_syms = {sym for (sym, _), _ in psym.most_common(12)}
w("In a VM, `cpu-clock` samples that fall while interrupts are off are charged where they come "
  "back on: `_raw_spin_unlock_irqrestore` under `sock_def_readable` is the wake-up of the reading "
  "client, inside the server's write"
  + (", and `finish_task_switch` is the server being switched back in after a preemption (the "
     "load client shares the two cores)." if any(x.startswith("finish_task_switch") for x in top_syms) else "."))
w("")

# ---- the reading, from the figures ------------------------------------------------------------
s1, b1 = cg["single"], cg["batched"]
ir1, irb = s1["data"]["total"] / s1["deliveries"], b1["data"]["total"] / b1["deliveries"]
top_cats = s1["cats"].most_common(3)
share = lambda r, c: 100 * r["cats"][c] / r["data"]["total"]
kshare = 100 * st / (ut + st) if ut + st else 0
pct = lambda n: 100 * n / nsamp
kwrite_send = sum(n for c, n in pclass.items() if c.startswith("kernel: write/writev, send"))
kwrite_recv = sum(n for c, n in pclass.items() if c.startswith("kernel: write/writev, loopback"))
kother = [(c[len("kernel: "):].split(" (")[0], n) for c, n in pclass.most_common()
          if c.startswith("kernel") and "write/writev" not in c and pct(n) >= 3]
uclasses = [(c[len("user: "):].split(" (")[0], n) for c, n in pclass.most_common() if c.startswith("user")]
per_write = lambda r: r["deliveries"] / r["writes"] if r["writes"] else 0
reading = [
    f"In user space a delivery costs {ir1:,.0f} instructions when each event is a write of its own "
    f"and {irb:,.0f} when a write carries {per_write(b1):.0f} events: "
    + ("most of it is paid per write, not per event. " if irb < ir1 / 2 else "most of it is paid per event. "),
    "With one event per write the largest groups are "
    + ", ".join(f"{c} ({share(s1, c):.0f}%)" for c, _ in top_cats)
    + f"; each write also makes {s1['syscalls']['writev'] / max(s1['writes'], 1):.2f} writev and "
    f"{s1['syscalls']['epoll_ctl'] / max(s1['writes'], 1):.2f} epoll_ctl calls. ",
    f"Natively, at {meta['pf_subs']:,} streams × {meta['pf_rate']}/s (one event per write), "
    f"{kshare:.0f}% of the server's CPU is in the kernel: the writes take {pct(kwrite_send + kwrite_recv):.0f}% "
    f"of the samples ({pct(kwrite_send):.0f}% sending, {pct(kwrite_recv):.0f}% the loopback receive they run for the reader)"
    + "".join(f", {c} {pct(n):.0f}%" for c, n in kother)
    + "; in user space " + ", ".join(f"{c} {pct(n):.0f}%" for c, n in uclasses[:3]) + ". ",
    ("What dominates is therefore the kernel's cost per write: fewer writes per delivered event and "
     "fewer system calls per write save the most; the user-space groups above come after."
     if kshare > 50 else
     "What dominates is user space: the largest groups above are where to cut first."),
]
w("**Reading.** " + "".join(reading))

# Prose is wrapped at 100 columns like the rest of the docs; tables and code stay on their lines.
lines, code = [], False
for line in out:
    if line.startswith("```"):
        code = not code
    if code or line.startswith(("```", "|", "#")) or not line:
        lines.append(line)
    else:
        lines.extend(textwrap.wrap(line, 100, break_long_words=False, break_on_hyphens=False))
section = "\n".join(lines).rstrip() + "\n"
print(section)
if write_doc:
    text = open(doc).read()
    begin, end = "<!-- profile:begin -->", "<!-- profile:end -->"
    i, j = text.index(begin) + len(begin), text.index(end)
    open(doc, "w").write(text[:i] + "\n" + section + text[j:])
    print(f"profile: wrote the section into {doc}", file=sys.stderr)
if problems:
    sys.exit(1)
PY
