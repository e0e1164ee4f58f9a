#!/usr/bin/env python3
"""One measurement of scripts/bench/tls.sh with h2load (Debian nghttp2-client) as the load
client: N event streams over HTTP/1.1 (one connection each, h2load --h1) or HTTP/2 (N / C
streams on each of C connections), cleartext or TLS, against a running server whose pid is
given. h2load reads the streams and gives the windows back; it does not parse events, so what
is counted is the server's: its /metrics (streams open, events written) and its /proc entry
(memory, CPU time).

  idle     the server's memory growth (PSS and RSS) from before connecting to 5 s after the
           last stream opened, per stream
  fanout   R events/s for D seconds on the streams' topic (one keep-alive publisher): events the
           server wrote per second of its CPU, and how many it did not write

Prints one JSON object.

Usage: h2load_run.py --port P --pid PID --mode idle|fanout [--tls] [--h1] [--streams N]
                     [--conns C] [--rate R] [--duration D]"""

import argparse
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time


def proc_mem_kb(pid):
    pss = rss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return pss, rss


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, port, tls):
        self.port, self.tls = port, tls
        self.conn = None

    def _connect(self):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method, path, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def metric(self, name):
        status, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def streams(self):
        status, body = self.request("GET", "/health")
        return json.loads(body)["streams"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--mode", choices=("idle", "fanout"), required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--h1", action="store_true")
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--duration", type=float, default=30)
    a = ap.parse_args()

    srv = Server(a.port, a.tls)
    conns = a.streams if a.h1 else a.conns
    per_conn = 1 if a.h1 else max(1, a.streams // a.conns)
    url = f"{'https' if a.tls else 'http'}://127.0.0.1:{a.port}/sub/bench"
    cmd = ["h2load", "-n", str(conns * per_conn), "-c", str(conns), "-m", str(per_conn),
           "-t", "1", "-T", "120"]
    if a.h1:
        cmd.append("--h1")
    cmd.append(url)
    out = {"client": " ".join(cmd[:-1]), "streams": conns * per_conn, "connections": conns}
    pss0, rss0 = proc_mem_kb(a.pid)
    t0 = time.monotonic()
    load = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        want = conns * per_conn
        open_ = 0
        while time.monotonic() - t0 < 180:
            open_ = srv.streams()
            if open_ >= want or load.poll() is not None:
                break
            time.sleep(0.2)
        out["connected"] = open_
        out["connect_s"] = round(time.monotonic() - t0, 2)
        time.sleep(5)  # the worker trims the heap within ~2 s of a burst of handshakes
        pss1, rss1 = proc_mem_kb(a.pid)
        if open_:
            out["pss_kb_per_stream"] = (pss1 - pss0) / open_ if pss0 and pss1 else None
            out["rss_kb_per_stream"] = (rss1 - rss0) / open_
        if a.mode == "fanout":
            time.sleep(3)
            d0, c0, w0 = srv.metric("freshet_events_delivered_total"), proc_cpu_s(a.pid), time.monotonic()
            sent = 0
            start = time.monotonic()
            while time.monotonic() - start < a.duration:
                due = start + sent / a.rate
                if time.monotonic() < due:
                    time.sleep(due - time.monotonic())
                status, _ = srv.request("POST", "/pub/bench", body=b"x" * 64)
                sent += status == 201
            expected = sent * open_
            deadline = time.monotonic() + 10
            while srv.metric("freshet_events_delivered_total") - d0 < expected and time.monotonic() < deadline:
                time.sleep(0.2)
            d1, c1, w1 = srv.metric("freshet_events_delivered_total"), proc_cpu_s(a.pid), time.monotonic()
            delivered = d1 - d0
            out.update(published=sent, delivered=delivered, missing=max(0, expected - delivered),
                       cpu_s=round(c1 - c0, 3), wall_s=round(w1 - w0, 2),
                       deliveries_per_s=delivered / (w1 - w0),
                       deliveries_per_cpu_s=delivered / (c1 - c0) if c1 > c0 else None,
                       cpu_us_per_delivery=(c1 - c0) * 1e6 / delivered if delivered else None,
                       cpu_pct=100 * (c1 - c0) / (w1 - w0))
    finally:
        load.send_signal(signal.SIGTERM)
        try:
            load.wait(5)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()
    print(json.dumps(out))
    return 0 if out.get("connected") else 1


if __name__ == "__main__":
    sys.exit(main())
