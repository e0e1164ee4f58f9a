#!/usr/bin/env python3
"""Hooks that wait, measured: streams opened per second, and the server's CPU per stream, when
`auth` makes one HTTP call to a local backend (over cleartext, or over HTTPS with the
certificate checked), or one freshet.redis GET on a local redis-server, against the same
stream route with an `auth` that only computes. The routes are served by one
freshet process; rounds rotate them, so all see the same machine noise; figures are medians over
the rounds.

    scripts/bench/hooks.py [--streams 4000] [--rounds 5] [--concurrency 500] [--delay 0]

The backend is an asyncio HTTP/1.1 server in a process of its own on 127.0.0.1 (keep-alive),
answering after --delay seconds; the HTTPS one is the same server in another process, with
Python's ssl and a self-signed certificate for 127.0.0.1 that the openssl command makes, which
the route names as its `ca`. The client opens --streams event streams, at most --concurrency at a time,
each closed once its head arrived; a round's rate is streams / seconds until the last head. CPU
is the time the freshet process's threads spent on a CPU over the round (/proc schedstat, ns). The difference between the
two routes' CPU per stream is the cost of one waiting call: the coroutine, the request, the
pooled connection and the response parse; for Redis, the command joining the worker's pipeline
and the reply mapped to Lua. The redis-server (from PATH) runs on a free port without
persistence."""

import argparse
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "freshet")

APP = """
local freshet = require "freshet"
local app = freshet.app { heartbeat = 60, limits = { backend_calls = 4096, redis_calls = 4096 },
                          redis = os.getenv("BENCH_REDIS"), log = { level = "warn" } }
app:stream("/sync", "sync.lua")
app:stream("/http", "http.lua")
app:stream("/https", "https.lua")
app:stream("/redis", "redis.lua")
app:stream("/redis8", "redis8.lua")
return app
"""

SYNC = """
local route = {}
function route.auth(req)
  local sid = req.headers.cookie or ""
  if not sid:find("sid=", 1, true) then return nil, 401, "no session" end
  return { id = sid:sub(5) }
end
function route.topics() return { "bench" } end
return route
"""

HTTP = """
local freshet = require "freshet"
local cjson = require "cjson"
local backend = os.getenv("BENCH_BACKEND")
local route = {}
function route.auth(req)
  local res, err = freshet.http.request { url = backend .. "/session",
                                          headers = { Cookie = req.headers.cookie } }
  if not res then return nil, 503, err end
  if res.status ~= 200 then return nil, 401, "no session" end
  return cjson.decode(res.body)
end
function route.topics() return { "bench" } end
return route
"""

REDIS = """
local freshet = require "freshet"
local route = {}
function route.auth(req)
  local sid = (req.headers.cookie or ""):match("sid=(.*)")
  if not sid then return nil, 401, "no session" end
  local user, err = freshet.redis("GET", "session:" .. sid)
  if not user then return nil, 503, err end
  if user == freshet.null then return nil, 401, "no session" end
  return { id = user }
end
function route.topics() return { "bench" } end
return route
"""

# The same call over TLS, the certificate checked against the backend's own (its CA file).
HTTPS = HTTP.replace('os.getenv("BENCH_BACKEND")', 'os.getenv("BENCH_HTTPS_BACKEND")').replace(
    'headers = { Cookie = req.headers.cookie } }',
    'headers = { Cookie = req.headers.cookie },\n'
    '                                          ca = os.getenv("BENCH_CA") }')

# Eight calls in turn: the cost of a call, apart from the stream's own, is a difference eight
# times as large as with one, so it stands out of the rounds' noise.
REDIS8 = REDIS.replace('local user, err = freshet.redis("GET", "session:" .. sid)',
                       'local user, err\n  for _ = 1, 8 do user, err = '
                       'freshet.redis("GET", "session:" .. sid) end')


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


BACKEND = r"""
import asyncio, ssl, sys
delay = float(sys.argv[1])
tls = None
if len(sys.argv) > 3:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[2], sys.argv[3])
body = b'{"id":"bench"}'
answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
          + str(len(body)).encode() + b"\r\n\r\n" + body)
async def serve(reader, writer):
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            if delay:
                await asyncio.sleep(delay)
            writer.write(answer)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=4096, ssl=tls)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def cpu_seconds(pid):
    """Time on a CPU of every thread of pid, in seconds (nanosecond counters)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def open_streams(port, path, n, concurrency):
    """Opens n streams, concurrency at a time; returns seconds until the last head."""
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
           f"Cookie: sid=bench\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    started = time.monotonic()
    opened = done = bad = 0
    why = None
    live = 0
    while done < n:
        while live < concurrency and opened < n:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE, b"")
            opened += 1
            live += 1
        for key, mask in sel.select(5):
            s = key.fileobj
            if mask & selectors.EVENT_WRITE:
                try:
                    s.send(req)
                except OSError:
                    pass
                sel.modify(s, selectors.EVENT_READ, b"")
                continue
            try:
                data = s.recv(512)
            except OSError:
                data = b""
            if data[:12] != b"HTTP/1.1 200":
                bad += 1
                why = why or data.split(b"\r\n\r\n")[-1][:120]
            sel.unregister(s)
            s.close()
            live -= 1
            done += 1
    if bad:
        sys.exit(f"hooks.py: {bad} of {n} streams on {path} were not opened (first: {why!r})")
    return time.monotonic() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"hooks.py: build freshet first ({BIN})")
    backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(args.delay)],
                               stdout=subprocess.PIPE)
    backend_port = int(backend.stdout.readline())
    work = tempfile.mkdtemp(prefix="freshet-bench-hooks-")
    cert, key = os.path.join(work, "backend.pem"), os.path.join(work, "backend-key.pem")
    subprocess.run([shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-keyout", key, "-out", cert, "-subj", "/CN=bench backend",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls_backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(args.delay), cert, key],
                                   stdout=subprocess.PIPE)
    tls_backend_port = int(tls_backend.stdout.readline())
    redis_port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port",
                              str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", work],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", redis_port), timeout=1) as c:
                c.sendall(b"*3\r\n$3\r\nSET\r\n$13\r\nsession:bench\r\n$5\r\nbench\r\n")
                if c.recv(16).startswith(b"+OK"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit("hooks.py: redis-server did not start")
    for name, text in (("app.lua", APP), ("sync.lua", SYNC), ("http.lua", HTTP),
                       ("https.lua", HTTPS), ("redis.lua", REDIS), ("redis8.lua", REDIS8)):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    port = free_port()
    env = dict(os.environ, BENCH_BACKEND=f"http://127.0.0.1:{backend_port}",
               BENCH_HTTPS_BACKEND=f"https://127.0.0.1:{tls_backend_port}", BENCH_CA=cert,
               BENCH_REDIS=f"redis://127.0.0.1:{redis_port}")
    log = open(os.path.join(work, "server.log"), "wb")
    proc = subprocess.Popen([BIN, os.path.join(work, "app.lua"), "--listen", f"127.0.0.1:{port}"],
                            stdout=log, stderr=log, env=env)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        open_streams(port, "/http", 200, 100)  # warm the pool and the VM
        open_streams(port, "/https", 200, 100)
        open_streams(port, "/sync", 200, 100)
        open_streams(port, "/redis", 200, 100)
        open_streams(port, "/redis8", 200, 100)
        paths = ["/sync", "/http", "/https", "/redis", "/redis8"]
        figures = {p: [] for p in paths}
        for r in range(args.rounds):
            for path in paths[r % len(paths):] + paths[:r % len(paths)]:
                cpu0 = cpu_seconds(proc.pid)
                took = open_streams(port, path, args.streams, args.concurrency)
                time.sleep(0.3)  # the closes are counted in the round that made them
                cpu = cpu_seconds(proc.pid) - cpu0
                figures[path].append((args.streams / took, cpu / args.streams * 1e6))
    finally:
        proc.terminate()
        proc.wait(10)
        backend.terminate()
        backend.wait(10)
        tls_backend.terminate()
        tls_backend.wait(10)
        redis.terminate()
        redis.wait(10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    def med(path, i):
        return statistics.median(f[i] for f in figures[path])

    print(f"```sh\nscripts/bench/hooks.py --streams {args.streams} --rounds {args.rounds} "
          f"--concurrency {args.concurrency} --delay {args.delay}\n```\n")
    print("| auth | streams opened per second | server CPU µs per stream (open + close) |")
    print("|---|---|---|")
    for path, label in (("/sync", "computes (no call)"),
                        ("/http", "one freshet.http.request to a local backend"),
                        ("/https", "the same over https (certificate checked, `ca =`)"),
                        ("/redis", "one freshet.redis GET on a local redis-server"),
                        ("/redis8", "eight freshet.redis GETs in turn")):
        rates = " / ".join(f"{f[0]:,.0f}" for f in figures[path])
        cpus = " / ".join(f"{f[1]:.1f}" for f in figures[path])
        print(f"| {label} | {med(path, 0):,.0f} ({rates}) | {med(path, 1):.1f} ({cpus}) |")
    extra = med("/http", 1) - med("/sync", 1)
    print(f"\nOne waiting call costs the server {extra:.1f} µs of CPU (the difference of the "
          f"medians); opening is {med('/http', 0) / med('/sync', 0):.2f}× as fast with it.")
    extra = med("/https", 1) - med("/sync", 1)
    print(f"Over https a call costs {extra:.1f} µs of CPU, "
          f"{med('/https', 1) - med('/http', 1):.1f} µs more than in cleartext.")
    extra = med("/redis", 1) - med("/sync", 1)
    per = (med("/redis8", 1) - med("/sync", 1)) / 8
    print(f"One freshet.redis call costs {extra:.1f} µs of CPU ({per:.1f} µs each from eight "
          f"in turn); opening is {med('/redis', 0) / med('/sync', 0):.2f}× as fast with it.")


if __name__ == "__main__":
    main()
