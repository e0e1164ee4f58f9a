#!/usr/bin/env python3
"""Publishes per second and Redis CPU per publish with broker = "redis-cluster://…" on a Redis
Cluster of 1 and of 3 primaries (no replicas), side by side in one run.

Each round and each size starts its own cluster: `redis-server --cluster-enabled yes` on free
ports with data in temp dirs, the slots split evenly (CLUSTER ADDSLOTSRANGE, CLUSTER MEET; a
one-primary cluster cannot be made with redis-cli --cluster create), and two freshet nodes
(scripts/bench/app.lua, one worker each). freshet-bench publishes flat out to node a over 64
topics (32 connections, one publish in flight on each: --pub-conns 32; 128-byte data) while
64 subscribers, one per topic, read node b. Redis
CPU is used_cpu_user + used_cpu_sys from INFO of every primary before and after, divided by the
publishes Redis ran (cmdstat_fcall); "busiest shard" is the largest share of one core a single
primary used during the measured seconds: with N shards the load of the busiest one is what
limits publishing once Redis, not the nodes, is the bottleneck. Sizes alternate within a round,
so both see the same machine noise. All processes are stopped by PID.

Usage: scripts/bench/redis_cluster.py [--rounds N] [--duration S] [--no-write]
Writes the section between <!-- redis-cluster:begin --> and <!-- redis-cluster:end --> of
docs/BENCHMARKS.md (or prints it with --no-write)."""

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis import http_get, wait_until  # noqa: E402  (scripts/bench/redis.py, this directory)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "freshet")
BENCH = os.path.join(ROOT, "build", "freshet-bench")
APP = os.path.join(ROOT, "scripts", "bench", "app.lua")
DOC = os.path.join(ROOT, "docs", "BENCHMARKS.md")
BEGIN, END = "<!-- redis-cluster:begin -->", "<!-- redis-cluster:end -->"
TOPICS = 64


def bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(bus=False):
    """A free port below the ephemeral range; with bus, its cluster bus port (+10000) too."""
    import random
    while True:
        port = random.randrange(10000, 30000)
        if bindable(port) and (not bus or bindable(port + 10000)):
            return port


def command(port, *args):
    """One command on a fresh connection; a simple or bulk reply as text (enough here)."""
    out = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(str(a).encode()), str(a).encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(out)
        data = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise OSError("closed")
            data += chunk
            if data[:1] in (b"+", b"-", b":") and data.endswith(b"\r\n"):
                return data[1:-2].decode()
            if data[:1] == b"$":
                head, _, rest = data.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    return rest[:int(head[1:])].decode()


class Cluster:
    def __init__(self, work, shards):
        self.nodes = []
        for i in range(shards):
            d = tempfile.mkdtemp(dir=work, prefix=f"redis{shards}-{i}-")
            port = free_port(bus=True)
            p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", d,
                                  "--cluster-enabled", "yes", "--logfile",
                                  os.path.join(d, "redis.log")],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            self.nodes.append((port, p))
            wait_until(lambda: command(port, "PING") == "PONG", 10, "redis-server")
        per = 16384 // shards
        for i, (port, _) in enumerate(self.nodes):
            last = 16383 if i == shards - 1 else (i + 1) * per - 1
            command(port, "CLUSTER", "ADDSLOTSRANGE", i * per, last)
            if i:
                command(port, "CLUSTER", "MEET", "127.0.0.1", self.nodes[0][0])
        wait_until(lambda: all("cluster_state:ok" in command(p, "CLUSTER", "INFO")
                               and f"cluster_known_nodes:{shards}" in command(p, "CLUSTER", "INFO")
                               for p, _ in self.nodes), 20, "the cluster")

    def url(self):
        return f"redis-cluster://127.0.0.1:{self.nodes[0][0]}"

    def stats(self):
        """Per primary: (CPU seconds, FCALL calls)."""
        out = []
        for port, _ in self.nodes:
            cpu, calls = 0.0, 0
            for line in command(port, "INFO", "all").splitlines():
                k, _, v = line.partition(":")
                if k in ("used_cpu_user", "used_cpu_sys"):
                    cpu += float(v)
                elif k == "cmdstat_fcall":
                    calls = int(v.split(",")[0].split("=")[1])
            out.append((cpu, calls))
        return out

    def stop(self):
        for _, p in self.nodes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)


class Node:
    def __init__(self, work, url):
        self.port = free_port()
        self.log = open(os.path.join(work, f"freshet-{self.port}.log"), "wb")
        env = dict(os.environ, FRESHET_WORKERS="1", FRESHET_BROKER=url)
        self.proc = subprocess.Popen([BIN, APP, "--listen", f"127.0.0.1:{self.port}",
                                      "--log-level", "warn"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_until(lambda: '"shards_ready":' in (h := http_get(self.port, "/health")) and
                   '"status":"ok"' in h and self.all_ready(h), 20, "freshet")

    @staticmethod
    def all_ready(h):
        body = json.loads(h.split("\r\n\r\n", 1)[1])
        b = body["broker"]
        return b["shards"] == b["shards_ready"] and b["shards"] > 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def measure(work, shards, duration, tag):
    c = Cluster(work, shards)
    a = b = None
    try:
        a, b = Node(work, c.url()), Node(work, c.url())
        s0, t0 = c.stats(), time.monotonic()
        out = subprocess.run([BENCH, "-p", str(b.port), "--pub-port", str(a.port), "--json",
                              "-q", "--prefix", tag, "-c", str(TOPICS), "-t", str(TOPICS),
                              "-r", "0", "--pub-conns", "32", "--pipeline", "1", "-d", str(duration),
                              "--warmup", "1", "--tail", "5"], capture_output=True, text=True)
        s1, t1 = c.stats(), time.monotonic()
        j = json.loads(out.stdout)
        calls = sum(b1 - b0 for (_, b0), (_, b1) in zip(s0, s1))
        cpu = [c1 - c0 for (c0, _), (c1, _) in zip(s0, s1)]
        return {"per_s": j["published"] / j["duration_s"],
                "redis_us": sum(cpu) * 1e6 / max(1, calls),
                "busiest": max(cpu) / (t1 - t0) * 100,
                "missing": j["missing"], "errors": j["errors"] + j["publish_errors"]}
    finally:
        for n in (a, b):
            if n:
                n.stop()
        c.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    for exe in (BIN, BENCH):
        if not os.access(exe, os.X_OK):
            sys.exit(f"redis_cluster.py: {exe} missing (scripts/setup.sh build)")
    work = tempfile.mkdtemp(prefix="freshet-bench-cluster-")
    res = {1: [], 3: []}
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        for r in range(opts.rounds):
            for shards in (1, 3):
                row = measure(work, shards, opts.duration, f"r{r}s{shards}-")
                res[shards].append(row)
                print(f"round {r + 1}, {shards} shard(s): {json.dumps(row)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def cell(rows, key, digits=1):
        vals = [x[key] for x in rows]
        med = statistics.median(vals)
        return f"{med:,.{digits}f} [" + ", ".join(f"{v:,.{digits}f}" for v in vals) + "]"

    lines = [BEGIN, "",
             f"Measured {started:%Y-%m-%d} with `scripts/bench/redis_cluster.py --rounds "
             f"{opts.rounds} --duration {opts.duration:g}` on {platform.machine()}, "
             f"{os.cpu_count()} CPUs (Redis {command_version()}); medians, each round in "
             "brackets. Two freshet nodes (one worker each), 64 topics, publisher flat out on "
             "node a (32 connections, one publish in flight on each), a subscriber per topic on node b; Redis, the "
             "nodes and the load tool share the machine's CPUs.", "",
             "| | 1 shard | 3 shards |", "|---|---|---|",
             f"| publishes/s | {cell(res[1], 'per_s', 0)} | {cell(res[3], 'per_s', 0)} |",
             f"| Redis CPU per publish, all primaries (µs) | {cell(res[1], 'redis_us', 2)} | "
             f"{cell(res[3], 'redis_us', 2)} |",
             f"| busiest primary, % of one core | {cell(res[1], 'busiest')} | "
             f"{cell(res[3], 'busiest')} |",
             f"| events missing / errors | {sum(x['missing'] for x in res[1])} / "
             f"{sum(x['errors'] for x in res[1])} | {sum(x['missing'] for x in res[3])} / "
             f"{sum(x['errors'] for x in res[3])} |", "", END]
    text = "\n".join(lines)
    if opts.no_write:
        print(text)
        return
    with open(DOC) as f:
        doc = f.read()
    if BEGIN in doc:
        doc = doc[:doc.index(BEGIN)] + text + doc[doc.index(END) + len(END):]
    else:
        doc += "\n## Redis Cluster: 1 and 3 shards\n\n" + text + "\n"
    with open(DOC, "w") as f:
        f.write(doc)
    print(text)


def command_version():
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        return out.stdout.split("v=")[1].split()[0]
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    main()
