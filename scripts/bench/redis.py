#!/usr/bin/env python3
"""The Redis broker at Redis speed, side by side in one run (issue 13's publish targets):

  (a) Redis CPU per publish through freshet, against redis-benchmark running a pipelined
      `XADD … MAXLEN ~ 1000` on the same Redis (target: at most 3x);
  (b) publishes per second through one freshet node on the Redis broker, against the same node
      on the memory broker (target: at least 0.7x);
  (c) p99 publish-to-delivery across two freshet nodes on one Redis, 1,000 publishes/s
      (target: under 5 ms);
  (d) nginx + nchan with its Redis storage (nchan_redis_pass), measured the same way as the peer.

Each measurement starts its own servers: a redis-server on a free port with its data in a temp
dir (stopped by its PID), freshet nodes (scripts/bench/app.lua, one worker) or nginx + nchan
(scripts/bench/peers/nchan.sh). Rounds run every measurement in turn, so all see the same machine
noise; the section written to docs/BENCHMARKS.md (between <!-- redis:begin --> and
<!-- redis:end -->) gives each round's value in brackets and the median. Redis CPU is
used_cpu_user + used_cpu_sys from INFO, before and after the load, divided by the publishes
(XADD calls for freshet and redis-benchmark, publishes answered 201 for nchan). Every
measurement also records how much CPU other processes of the machine used meanwhile (all of
/proc/stat's busy time minus that of the processes measured here), to say how noisy the run was.

Usage: scripts/bench/redis.py [--rounds N] [--duration S] [--latency-duration S] [--quick]
                              [--no-nchan] [--no-write] [--keep] [--base BINARY]

  --rounds N              rounds (3; 1 with --quick)
  --duration S            measured seconds of the flat-out runs (10; 3 with --quick)
  --latency-duration S    measured seconds of the 1,000/s runs (20; 5 with --quick)
  --no-nchan              leave nginx + nchan out
  --no-write              print the section instead of writing docs/BENCHMARKS.md
  --keep                  keep the work directory (raw JSON, logs)
  --base BINARY           also measure another freshet build (e.g. one of the commit before a
                          change) in the same rounds: its one-node runs follow this build's, and
                          the section gets a before/after table
  --base-bench BINARY     the same for another freshet-bench (the load client): freshet's
                          flat-out runs again with it, and a table of both clients' figures

The flat-out runs publish over 16, 64 or 128 keep-alive connections with one request in flight
on each (`--pub-conns N --pipeline 1`): HTTP/1.1 answers come in request order, so requests
pipelined on one connection behind a publish that waits on Redis are only read once it is
answered, and one connection would carry one publish at a time. 128 in flight is what the
XADD baseline (redis-benchmark -c 8 -P 16) keeps; with fewer, the Redis broker's rate is bound by
in flight / round trip, and a node's calls to Redis carry fewer events each.

Everything listens on 127.0.0.1; only the processes this script starts are stopped, by PID.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "freshet")
BENCH = os.path.join(ROOT, "build", "freshet-bench")
APP = os.path.join(ROOT, "scripts", "bench", "app.lua")
NCHAN = os.path.join(ROOT, "scripts", "bench", "peers", "nchan.sh")
DOC = os.path.join(ROOT, "docs", "BENCHMARKS.md")
BEGIN, END = "<!-- redis:begin -->", "<!-- redis:end -->"

PAYLOAD = 128            # bytes per publish, freshet-bench's default
XADD_N = 300000          # XADDs per redis-benchmark run
LAT_SUBS, LAT_TOPICS, LAT_RATE = 100, 10, 1000
# Publishing connections of the flat-out runs, one publish in flight on each. The baseline,
# redis-benchmark -c 8 -P 16, keeps 128 XADDs in flight: the last level is its own.
CONNS = (16, 64, 128)
HZ = os.sysconf("SC_CLK_TCK")


def stop_process(proc, timeout):
    """SIGTERM to a process this script started, SIGKILL if it has not exited in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die(msg):
    print(f"redis.py: {msg}", file=sys.stderr)
    sys.exit(2)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {timeout}s")


def http_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode("utf-8", "replace")
            data += chunk


def proc_cpu(pid):
    """User + system seconds of a process (all its threads); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except OSError:
        return 0.0


def machine_busy():
    """Busy CPU seconds of the whole machine so far (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / HZ


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


class Redis:
    """A redis-server of our own on a free port, data in a temp dir."""

    def __init__(self, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile",
             os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.command("PING") == "PONG", 10, "redis-server")

    def command(self, *args):
        out = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(out)
            data = b""
            while True:
                data += s.recv(1 << 20)
                if data.startswith((b"+", b"-", b":")) and data.endswith(b"\r\n"):
                    return data[1:-2].decode()
                if data.startswith(b"$"):
                    head, _, rest = data.partition(b"\r\n")
                    if len(rest) >= int(head[1:]) + 2:
                        return rest[:int(head[1:])].decode()

    def stats(self):
        """(CPU seconds, {command: calls})."""
        info = self.command("INFO", "all")
        cpu, calls = 0.0, {}
        for line in info.splitlines():
            k, _, v = line.partition(":")
            if k in ("used_cpu_user", "used_cpu_sys"):
                cpu += float(v)
            elif k.startswith("cmdstat_"):
                calls[k[8:]] = int(v.split(",")[0].split("=")[1])
        return cpu, calls

    def pid(self):
        return self.proc.pid

    def wakeups(self):
        """How often Redis has gone to sleep waiting for work and been woken (voluntary
        context switches): each costs it a return from epoll_wait."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        stop_process(self.proc, 10)


class Server:
    """A freshet node, or nginx + nchan (its master and workers)."""

    def __init__(self, work, kind, redis=None, binary=BIN):
        self.kind = kind
        self.port = free_port()
        self.log = open(os.path.join(work, f"{kind}-{self.port}.log"), "wb")
        if kind == "freshet":
            env = dict(os.environ, FRESHET_WORKERS="1")
            env.pop("FRESHET_BROKER", None)
            if redis:
                env["FRESHET_BROKER"] = f"redis://127.0.0.1:{redis.port}"
            self.proc = subprocess.Popen(
                [binary, APP, "--listen", f"127.0.0.1:{self.port}", "--log-level", "warn"],
                env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
            want = '"status":"ok"'
        else:
            d = os.path.join(work, f"nchan-{self.port}")
            args = [NCHAN, d, str(self.port), "1"] + ([f"127.0.0.1:{redis.port}"] if redis else [])
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=self.log)
            want = "ok"
        wait_until(lambda: self.proc.poll() is None and want in http_get(self.port, "/health"),
                   15, f"{kind} on port {self.port}")

    def pids(self):
        pids = [self.proc.pid]
        if self.kind == "nchan":
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    pids += [int(p) for p in f.read().split()]
            except OSError:
                pass
        return pids

    def cpu(self):
        return sum(proc_cpu(p) for p in self.pids())

    def stop(self):
        stop_process(self.proc, 15)
        self.log.close()


def bench(work, tag, port, args, pub_port=None, server_pids=None, client=BENCH):
    """freshet-bench's JSON, with "client_cpu_s": the load client's own user + system time over
    the whole run (connecting, warmup and tail included)."""
    cmd = [client, "-p", str(port), "--json", "-q", "--prefix", tag] + args
    if pub_port:
        cmd += ["--pub-port", str(pub_port)]
    if server_pids:
        cmd += ["--server-pid", ",".join(str(p) for p in server_pids)]
    cpu0 = children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True)
    cpu = children_cpu() - cpu0
    with open(os.path.join(work, f"{tag}.json"), "w") as f:
        f.write(out.stdout)
    try:
        j = json.loads(out.stdout)
    except ValueError:
        raise RuntimeError(f"freshet-bench failed: {out.stderr[-500:]}")
    j["client_cpu_s"] = cpu
    return j


# Sleeps 1 ms at a time and reports how much longer than asked the longest sleep took: a
# process that does nothing else sees the machine's own stalls (the CPU taken by everything
# else, or the virtual machine not running at all).
STALL_PROBE = """
import signal, sys, time
worst, over = 0.0, 0.0
def done(*_):
    print(f"{worst:.1f} {over:.1f}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
t = time.monotonic()
while True:
    time.sleep(0.001)
    n = time.monotonic()
    late = (n - t) * 1000 - 1
    worst = max(worst, late)
    if late > 10:
        over += late
    t = n
"""


PROBES = []  # stopped by main() whatever happens


class Meter:
    """CPU of the processes measured, of this script's children and of the whole machine, and
    the longest stall a sleeping probe saw meanwhile."""

    def __init__(self, procs):
        self.probe = subprocess.Popen([sys.executable, "-c", STALL_PROBE], stdout=subprocess.PIPE,
                                      text=True)
        PROBES.append(self.probe)
        self.procs = procs + [self.probe.pid]  # its own CPU is not the others'
        self.t0, self.m0, self.c0 = time.monotonic(), machine_busy(), children_cpu()
        self.p0 = sum(proc_cpu(p) for p in self.procs)

    def others(self):
        """Cores' worth of CPU used by processes not measured here, over the span."""
        span = time.monotonic() - self.t0
        ours = (sum(proc_cpu(p) for p in self.procs) - self.p0) + (children_cpu() - self.c0)
        return max(0.0, (machine_busy() - self.m0 - ours) / span) if span > 0 else 0.0

    def stalls(self):
        """(longest stall in ms, ms of stalls over 10 ms) seen by the probe; stops it."""
        self.probe.send_signal(signal.SIGTERM)
        out, _ = self.probe.communicate(timeout=10)
        try:
            worst, over = (float(x) for x in out.split())
        except ValueError:
            worst, over = 0.0, 0.0
        return worst, over

    def close(self, res):
        res["others"] = self.others()
        res["stall_ms"], res["stalls_ms"] = self.stalls()
        return res


def redis_benchmark(work, tag, clients, command, count, library=False, calls=XADD_N):
    """redis-benchmark -c clients -P 16 running `command` on a fresh Redis: Redis CPU per call of
    `count` (a commandstats name), and calls per second. With library, a freshet node loads the
    function library first (and stops)."""
    r = Redis(work, tag)
    try:
        if library:
            Server(work, "freshet", r).stop()
        cpu0, calls0 = r.stats()
        wake0 = r.wakeups()
        meter = Meter([r.pid()])
        out = subprocess.run(["redis-benchmark", "-p", str(r.port), "-c", str(clients), "-P", "16",
                              "-n", str(calls), "-q"] + command, capture_output=True, text=True)
        cpu1, calls1 = r.stats()
        wake1 = r.wakeups()
        n = calls1.get(count, 0) - calls0.get(count, 0)
        if n <= 0:
            raise RuntimeError(f"redis-benchmark ran no {count}: {out.stdout[-300:]}"
                               f"{out.stderr[-300:]}")
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        rate = float(line.split(":")[-1].split("requests")[0]) if "requests" in line else 0.0
        return meter.close({"redis_us": (cpu1 - cpu0) * 1e6 / n, "per_s": rate,
                            "wakeups": (wake1 - wake0) / n})
    finally:
        r.stop()


def xadd_baseline(work, tag, clients):
    return redis_benchmark(work, tag, clients,
                           ["XADD", "fr:{bench}:s", "MAXLEN", "~", "1000", "*", "d", "x" * PAYLOAD,
                            "e", "", "p", "normal", "j", "0"], "xadd")


def fcall_baseline(work, tag, checked, events=1):
    """redis-benchmark calling a publish function; `events` per call for the unchecked one
    (a node sends a loop turn's publishes of one topic in one call)."""
    data = "x" * PAYLOAD
    if checked:
        command = ["FCALL", "freshet_publish", "1", "fr:{bench}:s", data, "", "normal", "0", "1000"]
    else:
        command = ["FCALL", "freshet_publish_unchecked", "1", "fr:{bench}:s", "1001",
                   "*1700000000000\n"]
        command += [f"\n\nnormal\n0\n{PAYLOAD}\n", data] * events
    return redis_benchmark(work, tag, 8, command, "xadd", library=True,
                           calls=XADD_N // events)


def flat(work, tag, kind, with_redis, duration, conns, subscribers=1, binary=BIN, client=BENCH):
    """One node, one subscriber (or none), the publisher flat out over `conns` keep-alive
    connections, one request in flight on each."""
    r = Redis(work, tag) if with_redis else None
    s = None
    try:
        s = Server(work, kind, r, binary)
        procs = s.pids() + ([r.pid()] if r else [])
        meter = Meter(procs)
        cpu0, calls0 = r.stats() if r else (0, {})
        wake0 = r.wakeups() if r else 0
        j = bench(work, tag, s.port, ["-c", str(subscribers), "-r", "0", "--pub-conns",
                                      str(conns), "--pipeline", "1",
                                      "-d", str(duration), "--warmup", "1",
                                      "--tail", "5"],
                  server_pids=s.pids(), client=client)
        cpu1, calls1 = r.stats() if r else (0, {})
        wake1 = r.wakeups() if r else 0
        pubs = j["published"] + j["warmup_published"] - j["publish_errors"]
        res = {
            "per_s": j["published"] / j["duration_s"],
            # the server's CPU counts from measure start, like `published`
            "node_us": j["server"]["cpu_s"] * 1e6 / max(1, j["published"]),
            # the whole run's, over every publish answered 2xx in it
            "client_us": j["client_cpu_s"] * 1e6 / max(1, j["publish_ok"]),
            "missing": j["missing"], "errors": j["errors"],
        }
        meter.close(res)
        if r:
            n = calls1.get("xadd", 0) - calls0.get("xadd", 0) if kind == "freshet" else pubs
            res["redis_us"] = (cpu1 - cpu0) * 1e6 / max(1, n)
            res["wakeups"] = (wake1 - wake0) / max(1, n)
            if kind == "freshet":
                res["per_call"] = n / max(1, calls1.get("fcall", 0) - calls0.get("fcall", 0))
        return res
    finally:
        if s:
            s.stop()
        if r:
            r.stop()


def latency(work, tag, kind, two_nodes, duration):
    """Subscribers on node B, the publisher on node A at 1,000 publishes/s (one node: both)."""
    r = Redis(work, tag) if two_nodes else None
    nodes = []
    try:
        nodes = [Server(work, kind, r) for _ in range(2 if two_nodes else 1)]
        a, b = nodes[0], nodes[-1]
        procs = [p for n in nodes for p in n.pids()] + ([r.pid()] if r else [])
        meter = Meter(procs)
        cpu0, calls0 = r.stats() if r else (0, {})
        j = bench(work, tag, b.port, ["-c", str(LAT_SUBS), "-t", str(LAT_TOPICS), "-r",
                                      str(LAT_RATE), "-d", str(duration), "--warmup", "2",
                                      "--tail", "5"],
                  pub_port=a.port if two_nodes else None, server_pids=b.pids())
        cpu1, calls1 = r.stats() if r else (0, {})
        pubs = j["published"] + j["warmup_published"] - j["publish_errors"]
        lat = j["latency_ms"]
        res = {"p50": lat["p50"], "p99": lat["p99"], "max": lat["max"], "missing": j["missing"],
               "gaps": j["gaps"], "duplicates": j["duplicates"], "errors": j["errors"],
               "publisher_lag_ms": j["publisher_lag_max_ms"]}
        meter.close(res)
        if r:
            n = calls1.get("xadd", 0) - calls0.get("xadd", 0) if kind == "freshet" else pubs
            res["redis_us"] = (cpu1 - cpu0) * 1e6 / max(1, n)
        return res
    finally:
        for n in nodes:
            n.stop()
        if r:
            r.stop()


def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else None


def fmt(v, digits=1):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def cell(rows, key, digits=1):
    vals = [r.get(key) for r in rows]
    inside = " / ".join(fmt(v, digits) for v in vals)
    return f"{fmt(med(rows, key), digits)} ({inside})" if len(rows) > 1 else fmt(med(rows, key), digits)


def base_table(R, opts):
    """This build against --base, from the same rounds."""
    ratio = lambda a, b: a / b if a is not None and b else None
    L = ["", f"**This build and the one before** (`--base {opts.base}`, commit "
         f"{R.get('_base_commit', '?')}), measured in the same rounds, one after the other:", "",
         "| | this build | the build before |", "|---|---|---|"]
    for key, what in (("redis-flat16", "Redis µs per publish, one node, 16 connections, one subscriber"),
                      ("redis-flat64", "the same, 64 connections"),
                      ("redis-flat128", "the same, 128 connections"),
                      ("redis-pub16", "the same, 16 connections, no subscriber")):
        L.append(f"| {what} | {cell(R['freshet-' + key], 'redis_us', 2)} | "
                 f"{cell(R['base-' + key], 'redis_us', 2)} |")
    xadd = med(R["xadd-c8"], "redis_us")
    L.append(f"| (a) the first row against `XADD` ({fmt(xadd, 2)} µs) | "
             f"{fmt(ratio(med(R['freshet-redis-flat16'], 'redis_us'), xadd), 2)}× | "
             f"{fmt(ratio(med(R['base-redis-flat16'], 'redis_us'), xadd), 2)}× |")
    # (what, measure, whether Redis is the numerator): the ratios of target (b)
    for what, key, redis_over, digits in (("publishes/s Redis / memory", "per_s", True, 0),
                                          ("node CPU µs per publish, memory / Redis", "node_us",
                                           False, 2)):
        for pl in CONNS:
            cells = []
            for pre in ("freshet", "base"):
                red = med(R[f"{pre}-redis-flat{pl}"], key)
                mem = med(R[f"{pre}-memory-flat{pl}"], key)
                a, b = (red, mem) if redis_over else (mem, red)
                cells.append(f"{fmt(ratio(a, b), 2)} ({fmt(a, digits)} / {fmt(b, digits)})")
            L.append(f"| (b) {what}, {pl} connections | {cells[0]} | {cells[1]} |")
    return L


def base_bench_table(R, opts):
    """freshet's flat-out runs with this load client and with --base-bench, same rounds."""
    ratio = lambda a, b: a / b if a is not None and b else None
    L = ["", f"**This load client and another** (`--base-bench {opts.base_bench}`, commit "
         f"{R.get('_base_bench_commit', '?')}): freshet's flat-out runs once with each "
         "freshet-bench, in the same rounds; the client's CPU is its user + system time over "
         "the whole run per publish answered:", "",
         "| | this client | the other client |", "|---|---|---|"]
    for pl in CONNS:
        for store in ("memory", "redis"):
            cells = []
            for pre in ("freshet", "bbench"):
                rows = R[f"{pre}-{store}-flat{pl}"]
                cells.append(f"{cell(rows, 'per_s', 0)}; node {fmt(med(rows, 'node_us'), 2)} µs, "
                             f"client {fmt(med(rows, 'client_us'), 2)} µs")
            L.append(f"| {pl} connections, {'Redis' if store == 'redis' else 'memory'} broker: "
                     f"publishes/s; CPU per publish | {cells[0]} | {cells[1]} |")
        cells = []
        for pre in ("freshet", "bbench"):
            red, mem = (med(R[f"{pre}-{st}-flat{pl}"], "per_s") for st in ("redis", "memory"))
            cells.append(f"{fmt(ratio(red, mem), 2)}")
        L.append(f"| {pl} connections: (b) publishes/s Redis / memory | {cells[0]} | {cells[1]} |")
    return L


def section(res, opts, started, took, loads):
    R = res
    d, ld = opts.duration, opts.latency_duration
    xadd8, xadd1 = med(R["xadd-c8"], "redis_us"), med(R["xadd-c1"], "redis_us")
    ratio = lambda a, b: a / b if a is not None and b else None
    rate = lambda key: med(R[key], "per_s")
    p99 = med(R["freshet-redis-1000"], "p99")
    runs = {k: v for k, v in R.items() if isinstance(v, list)}
    others = [r["others"] for rows in runs.values() for r in rows]
    met = lambda ok: "**met**" if ok else "**not met**"
    L = ["```sh", "scripts/bench/redis.py" + "".join(
        f" {a}" for a in sys.argv[1:] if a != "--no-write"), "```", ""]
    L.append(f"Run of {started:%Y-%m-%d %H:%M} UTC, {opts.rounds} round(s), {took / 60:.0f} min, on "
             f"this machine ({os.cpu_count()} cores, Linux {platform.release()}); Redis "
             f"{R['_version']} with default settings, a fresh redis-server per measurement; "
             "freshet runs `scripts/bench/app.lua` with one worker, nginx+nchan "
             "`scripts/bench/peers/nchan.conf.in` with one worker (with `nchan_redis_pass` for "
             f"its Redis storage); the load client, `build/freshet-bench` ({PAYLOAD}-byte "
             "publishes), and Redis run on the same cores. Medians over the rounds, each round's "
             "value in brackets.")
    L.append("")
    L.append(f"**Noise.** While each measurement ran, processes outside it used "
             f"{fmt(statistics.median(others), 2)} cores' worth of CPU at the median (from "
             f"{fmt(min(others), 2)} to {fmt(max(others), 2)}; by round: " +
             ", ".join(fmt(statistics.median([rows[i]["others"] for rows in runs.values()
                                               if len(rows) > i]), 2)
                       for i in range(opts.rounds)) +
             f"); load average {loads[0]} at the start and {loads[1]} at the end. A probe that "
             "only sleeps 1 ms at a time saw the machine stall for up to "
             f"{fmt(max(r['stall_ms'] for rows in runs.values() for r in rows), 0)} ms (the "
             "longest stall of each measurement: median "
             f"{fmt(statistics.median(r['stall_ms'] for rows in runs.values() for r in rows), 0)}"
             " ms). Figures that depend on scheduling (publishes per second, latency) are the "
             "noisiest; re-run the command on a quiet machine to compare.")
    L.append("")
    L.append("**Targets**")
    L.append("")
    L.append("| target | result |")
    L.append("|---|---|")
    levels = [pl for pl in CONNS if f"freshet-redis-flat{pl}" in R]
    a_cells, b_cells = [], []
    for pl in levels:
        us = med(R[f"freshet-redis-flat{pl}"], "redis_us")
        ra = ratio(us, xadd8)
        a_cells.append(f"{pl} in flight: {met(ra is not None and ra <= 3)}, {fmt(us, 2)} µs "
                       f"({fmt(ra, 2)}×)")
        red, mem = rate(f"freshet-redis-flat{pl}"), rate(f"freshet-memory-flat{pl}")
        rb = ratio(red, mem)
        cpu = ratio(med(R[f"freshet-memory-flat{pl}"], "node_us"),
                    med(R[f"freshet-redis-flat{pl}"], "node_us"))
        b_cells.append(f"{pl} in flight: {met(rb is not None and rb >= 0.7)}, {fmt(red)} vs "
                       f"{fmt(mem)} ({fmt(rb, 2)}×; node CPU per publish, memory / Redis: "
                       f"{fmt(cpu, 2)})")
    L.append(f"| (a) Redis CPU per publish through freshet at most 3× a pipelined "
             f"`XADD … MAXLEN ~ 1000` ({fmt(xadd8, 2)} µs with 8 connections × 16, 128 in "
             f"flight; {fmt(xadd1, 2)} µs with 1 × 16) | " + "; ".join(a_cells) + " |")
    L.append("| (b) publishes/s through one node on Redis at least 0.7× the memory broker | " +
             "; ".join(b_cells) + " |")
    L.append(f"| (c) p99 publish-to-delivery across two nodes at 1,000 publishes/s under 5 ms | "
             f"{met(p99 is not None and p99 < 5)}: p99 {fmt(p99, 2)} ms |")
    if opts.base:
        L += base_table(R, opts)
    if opts.base_bench:
        L += base_bench_table(R, opts)
    L.append("")
    L.append("**(a) Redis CPU per publish**: used_cpu_user + used_cpu_sys of the Redis server "
             "over the run, per publish (freshet and redis-benchmark: XADD calls; nchan: "
             "publishes answered)")
    L.append("")
    L.append("| what | Redis µs per publish | publishes/s | Redis wake-ups per publish | events per call |")
    L.append("|---|---|---|---|---|")
    L.append(f"| `redis-benchmark -c 8 -P 16 XADD fr:{{bench}}:s MAXLEN ~ 1000 * d <{PAYLOAD} B> "
             f"e \"\" p normal j 0` | {cell(R['xadd-c8'], 'redis_us', 2)} | "
             f"{cell(R['xadd-c8'], 'per_s', 0)} | {cell(R['xadd-c8'], 'wakeups', 2)} | {cell(R['xadd-c8'], 'per_call', 1)} |")
    L.append(f"| the same with `-c 1 -P 16` | {cell(R['xadd-c1'], 'redis_us', 2)} | "
             f"{cell(R['xadd-c1'], 'per_s', 0)} | {cell(R['xadd-c1'], 'wakeups', 2)} | {cell(R['xadd-c1'], 'per_call', 1)} |")
    L.append(f"| `redis-benchmark -c 8 -P 16 FCALL freshet_publish_unchecked …`, one event per "
             f"call (what a node sends for a lone publish, without a node) | "
             f"{cell(R['fcall-unchecked'], 'redis_us', 2)} | "
             f"{cell(R['fcall-unchecked'], 'per_s', 0)} | {cell(R['fcall-unchecked'], 'wakeups', 2)} | {cell(R['fcall-unchecked'], 'per_call', 1)} |")
    if "fcall-unchecked-8" in R:
        L.append(f"| the same with 8 events per call (a node's call for 8 publishes of one topic "
                 f"in one loop turn); publishes/s counts events | "
                 f"{cell(R['fcall-unchecked-8'], 'redis_us', 2)} | "
                 f"{cell([dict(r, per_s=r['per_s'] * 8) for r in R['fcall-unchecked-8']], 'per_s', 0)} | {cell(R['fcall-unchecked-8'], 'wakeups', 2)} | {cell(R['fcall-unchecked-8'], 'per_call', 1)} |")
    L.append(f"| `redis-benchmark -c 8 -P 16 FCALL freshet_publish …` (an external producer's "
             f"call, with its checks) | {cell(R['fcall-checked'], 'redis_us', 2)} | "
             f"{cell(R['fcall-checked'], 'per_s', 0)} | {cell(R['fcall-checked'], 'wakeups', 2)} | {cell(R['fcall-checked'], 'per_call', 1)} |")
    if "freshet-redis-pub16" in R:
        L.append(f"| freshet, one node, flat out, 16 connections, no subscriber (publishing alone) | "
                 f"{cell(R['freshet-redis-pub16'], 'redis_us', 2)} | "
                 f"{cell(R['freshet-redis-pub16'], 'per_s', 0)} | {cell(R['freshet-redis-pub16'], 'wakeups', 2)} | {cell(R['freshet-redis-pub16'], 'per_call', 1)} |")
    for kind, name in (("freshet", "freshet"), ("nchan", "nginx+nchan, Redis storage")):
        for pl in CONNS:
            key = f"{kind}-redis-flat{pl}"
            if key in R:
                L.append(f"| {name}, one node, flat out, {pl} connections, one subscriber | "
                         f"{cell(R[key], 'redis_us', 2)} | {cell(R[key], 'per_s', 0)} | {cell(R[key], 'wakeups', 2)} | {cell(R[key], 'per_call', 1)} |")
        key = f"{kind}-redis-1000"
        if key in R:
            L.append(f"| {name}, two nodes, 1,000 publishes/s ({LAT_SUBS} subscribers, "
                     f"{LAT_TOPICS} topics) | {cell(R[key], 'redis_us', 2)} | 1,000 | — | — |")
    L.append("")
    L.append(f"**(b) Publishes per second through one node**: `freshet-bench -c 1 -r 0 --pub-conns "
             f"{'|'.join(str(pl) for pl in CONNS)} --pipeline 1 -d {d}`, one subscriber on the "
             "same node; node CPU is the server's user + system time per publish")
    L.append("")
    L.append("| server | " + " | ".join(f"{pl} connections: publishes/s | node CPU µs per publish"
                                         for pl in CONNS) + " |")
    L.append("|---" * (1 + 2 * len(CONNS)) + "|")
    for key, name in (("freshet-memory", "freshet, memory broker"),
                      ("freshet-redis", "freshet, Redis broker"),
                      ("nchan-memory", "nginx+nchan, memory"),
                      ("nchan-redis", "nginx+nchan, Redis storage")):
        if all(f"{key}-flat{pl}" in R for pl in CONNS):
            rows = [R[f"{key}-flat{pl}"] for pl in CONNS]
            L.append(f"| {name} | " + " | ".join(f"{cell(r, 'per_s', 0)} | {cell(r, 'node_us', 2)}"
                                                 for r in rows) + " |")
    miss = [(k, r["missing"]) for k, rows in runs.items() if "flat" in k for r in rows
            if r.get("missing")]
    if miss:
        L.append("")
        L.append("Events not delivered to the subscriber within the tail: " +
                 ", ".join(f"{k} {m:,}" for k, m in miss) + ".")
    L.append("")
    L.append(f"**(c) Publish-to-delivery across two nodes**: `freshet-bench -p B --pub-port A -c "
             f"{LAT_SUBS} -t {LAT_TOPICS} -r {LAT_RATE} -d {ld}`, subscribers on node B, the "
             "publisher on node A, so every event crosses Redis; latency counts from the moment "
             "the publisher was scheduled to send")
    L.append("")
    L.append("| server | p50 ms | p99 ms | max ms | missing | gaps | duplicates | publisher "
             "behind, ms | longest machine stall, ms |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for key, name in (("freshet-memory-1000", "freshet, one node, memory broker (reference)"),
                      ("freshet-redis-1000", "freshet, two nodes, Redis broker"),
                      ("nchan-redis-1000", "nginx+nchan, two nginx, Redis storage")):
        if key in R:
            L.append(f"| {name} | {cell(R[key], 'p50', 2)} | {cell(R[key], 'p99', 2)} | "
                     f"{cell(R[key], 'max', 2)} | {cell(R[key], 'missing', 0)} | "
                     f"{cell(R[key], 'gaps', 0)} | {cell(R[key], 'duplicates', 0)} | "
                     f"{cell(R[key], 'publisher_lag_ms', 0)} | {cell(R[key], 'stall_ms', 0)} |")
    L.append("")
    L.append("*Publisher behind* is how late freshet-bench's publisher (one request at a time) "
             "fell on its timetable at worst: a stall anywhere on the way (the machine, a node, "
             "Redis) delays every event after it until the publisher catches up, and counts in "
             "their latency. *Longest machine stall* is what the sleeping probe saw meanwhile.")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(add_help=True, description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--latency-duration", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-nchan", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--base")
    ap.add_argument("--base-bench")
    opts = ap.parse_args()
    opts.rounds = opts.rounds or (1 if opts.quick else 3)
    opts.duration = opts.duration or (3 if opts.quick else 10)
    opts.latency_duration = opts.latency_duration or (5 if opts.quick else 20)
    for path in ((BIN, BENCH) + ((opts.base,) if opts.base else ())
                 + ((opts.base_bench,) if opts.base_bench else ())):
        if not os.access(path, os.X_OK):
            die(f"{path} is missing: build first (scripts/setup.sh)")
    for prog in ["redis-server", "redis-benchmark"] + ([] if opts.no_nchan else ["nginx"]):
        if not shutil.which(prog):
            die(f"{prog} is missing (scripts/setup.sh installs it)")
    work = tempfile.mkdtemp(prefix="freshet-redis-bench-")
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    with open("/proc/loadavg") as f:
        load0 = f.read().split()[0]
    res = {}
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()[2].split("=")[1]
    plan = [
        ("xadd-c8", lambda tag: xadd_baseline(work, tag, 8)),
        ("xadd-c1", lambda tag: xadd_baseline(work, tag, 1)),
        ("fcall-unchecked", lambda tag: fcall_baseline(work, tag, False)),
        ("fcall-unchecked-8", lambda tag: fcall_baseline(work, tag, False, 8)),
        ("fcall-checked", lambda tag: fcall_baseline(work, tag, True)),
        ("freshet-redis-pub16", lambda tag: flat(work, tag, "freshet", True, opts.duration, 16,
                                                 subscribers=0)),
    ]
    servers = [("freshet", "redis", True), ("freshet", "memory", False)]
    if not opts.no_nchan:
        servers += [("nchan", "redis", True), ("nchan", "memory", False)]
    if opts.base:
        plan.append(("base-redis-pub16", lambda tag: flat(work, tag, "freshet", True, opts.duration,
                                                           16, subscribers=0, binary=opts.base)))
    for pipeline in CONNS:
        for kind, store, with_redis in servers:
            plan.append((f"{kind}-{store}-flat{pipeline}",
                         lambda tag, k=kind, w=with_redis, p=pipeline:
                         flat(work, tag, k, w, opts.duration, p)))
            if opts.base and kind == "freshet":
                plan.append((f"base-{store}-flat{pipeline}",
                             lambda tag, w=with_redis, p=pipeline:
                             flat(work, tag, "freshet", w, opts.duration, p, binary=opts.base)))
            if opts.base_bench and kind == "freshet":
                plan.append((f"bbench-{store}-flat{pipeline}",
                             lambda tag, w=with_redis, p=pipeline:
                             flat(work, tag, "freshet", w, opts.duration, p,
                                  client=opts.base_bench)))
    plan += [
        ("freshet-redis-1000", lambda tag: latency(work, tag, "freshet", True,
                                                   opts.latency_duration)),
        ("freshet-memory-1000", lambda tag: latency(work, tag, "freshet", False,
                                                    opts.latency_duration)),
    ]
    if not opts.no_nchan:
        plan.append(("nchan-redis-1000", lambda tag: latency(work, tag, "nchan", True,
                                                             opts.latency_duration)))
    try:
        for rnd in range(1, opts.rounds + 1):
            for name, fn in plan:
                tag = f"r{rnd}-{name}"
                print(f"redis.py: round {rnd}/{opts.rounds}: {name}", file=sys.stderr, flush=True)
                out = fn(tag)
                res.setdefault(name, []).append(out)
                print(f"redis.py:   {json.dumps(out)}", file=sys.stderr, flush=True)
        with open("/proc/loadavg") as f:
            load1 = f.read().split()[0]
        res["_version"] = version
        for opt, key in ((opts.base, "_base_commit"), (opts.base_bench, "_base_bench_commit")):
            if opt:
                commit = os.path.join(os.path.dirname(os.path.abspath(opt)), "COMMIT")
                res[key] = (open(commit).read().strip()[:7] if os.path.exists(commit) else "?")
        took = time.monotonic() - t0
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(res, f, indent=1)
        text = section(res, opts, started, took, (load0, load1))
    finally:
        for probe in PROBES:
            if probe.poll() is None:
                probe.kill()
                probe.wait()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"redis.py: kept {work}", file=sys.stderr)
    if opts.no_write:
        print(text)
        return
    with open(DOC) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        die(f"{DOC} has no {BEGIN} … {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(DOC, "w") as f:
        f.write(head + BEGIN + "\n" + text + END + tail)
    print(f"redis.py: wrote {DOC} (between the redis markers)", file=sys.stderr)


if __name__ == "__main__":
    main()
