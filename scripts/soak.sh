#!/usr/bin/env bash
# The soak: a freshet server under 5,000 streams with reconnect churn and steady publishing for
# 10 minutes, its resident memory and descriptor count sampled every 10 s. Run by hand (not in
# CI); the figures of a run go into docs/RELIABILITY.md.
#
#   scripts/soak.sh [seconds] [streams]            defaults: 600 5000
#
# Environment: FRESHET_BIN (default build/freshet), SOAK_TOPICS (50), SOAK_RATE (publishes per
# second over all topics, 50), SOAK_CHURN (reconnects per second, 50), SOAK_PORT (a free port
# is chosen), SOAK_OUT (directory for samples.csv and the server log; a temp dir by default,
# kept).
#
# Each stream follows one topic; every event's data is its topic's sequence number, so the
# driver checks each stream for gaps and duplicates across its reconnects (which resume with
# Last-Event-ID). The server runs the bench app (scripts/bench/app.lua) on the memory broker.
# The run passes when every stream stayed whole and the server exits 0 on SIGTERM; whether RSS
# and descriptors stayed flat is printed for a person to judge (and to copy into the docs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-600}"
streams="${2:-5000}"
bin="${FRESHET_BIN:-$root/build/freshet}"
topics="${SOAK_TOPICS:-50}"
rate="${SOAK_RATE:-50}"
churn="${SOAK_CHURN:-50}"
out="${SOAK_OUT:-$(mktemp -d /tmp/freshet-soak-XXXXXX)}"
mkdir -p "$out"
[ -x "$bin" ] || { echo "soak: no freshet binary at $bin (cmake --build build)" >&2; exit 2; }

ulimit -n "$(ulimit -Hn)"
need=$((streams + 200))
if [ "$(ulimit -n)" -lt "$need" ]; then
    echo "soak: the descriptor limit $(ulimit -n) is below $need (streams + margin)" >&2
    exit 2
fi

port="${SOAK_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
"$bin" "$root/scripts/bench/app.lua" --listen "127.0.0.1:$port" >"$out/server.log" 2>&1 &
server=$!
stop_server() {
    if kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$server" 2>/dev/null && kill -KILL "$server" 2>/dev/null || true
    fi
}
trap stop_server EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$out/server.log" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
    sleep 0.1
done

echo "soak: server pid $server on 127.0.0.1:$port; $streams streams over $topics topics," \
     "$rate publishes/s, $churn reconnects/s, ${seconds}s; output in $out"
rc=0
python3 - "$port" "$server" "$seconds" "$streams" "$topics" "$rate" "$churn" "$out" <<'EOF' || rc=$?
import json, os, random, re, selectors, socket, sys, time

port, server_pid, duration, nstreams, ntopics, rate, churn, out = (
    int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
    float(sys.argv[6]), float(sys.argv[7]), sys.argv[8])
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
rng = random.Random(1)
sel = selectors.DefaultSelector()
EVENT = re.compile(rb"id: ([0-9]+-[0-9]+)\ndata: ([0-9]+)\n\n")


class Stream:
    __slots__ = ("topic", "sock", "buf", "head", "last_id", "last_seq", "events", "opened")

    def __init__(self, topic):
        self.topic, self.sock, self.buf, self.head = topic, None, b"", False
        self.last_id, self.last_seq, self.events, self.opened = None, 0, 0, 0.0


stats = {"gaps": 0, "dupes": 0, "events": 0, "reconnects": 0, "refused": 0, "resets": 0,
         "published": 0, "publish_errors": 0}
first_gap = []


def connect(s):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex(("127.0.0.1", port))
    req = f"GET /sub/t{s.topic} HTTP/1.0\r\nAccept: text/event-stream\r\n"
    if s.last_id:
        req += f"Last-Event-ID: {s.last_id}\r\n"
    s.sock, s.buf, s.head, s.opened = sock, req.encode() + b"\r\n", False, time.monotonic()
    sel.register(sock, selectors.EVENT_WRITE, s)


def drop(s, reconnect=True):
    try:
        sel.unregister(s.sock)
    except (KeyError, ValueError):
        pass
    s.sock.close()
    s.sock = None
    if reconnect:
        stats["reconnects"] += 1
        connect(s)


def on_data(s, data):
    s.buf += data
    if not s.head:
        end = s.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        status = s.buf.split(b" ", 2)[1]
        if status != b"200":
            stats["refused"] += 1
            raise ConnectionError(f"status {status!r}")
        s.head, s.buf = True, s.buf[end + 4:]
    pos = 0
    for m in EVENT.finditer(s.buf):
        seq = int(m.group(2))
        if seq == s.last_seq + 1 or s.last_seq == 0:
            pass
        elif seq <= s.last_seq:
            stats["dupes"] += 1
        else:
            stats["gaps"] += 1
            if len(first_gap) < 5:
                first_gap.append((s.topic, s.last_seq, seq))
        s.last_seq, s.last_id = seq, m.group(1).decode()
        s.events += 1
        stats["events"] += 1
        pos = m.end()
    s.buf = s.buf[pos:]
    if len(s.buf) > 65536:  # heartbeats and retry lines only: keep the tail
        s.buf = s.buf[-4096:]


def rss_kb():
    with open(f"/proc/{server_pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fd_count():
    return len(os.listdir(f"/proc/{server_pid}/fd"))


def health():
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


# The publisher: one keep-alive connection, requests pipelined a few at a time.
class Publisher:
    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.out, self.inbuf, self.pending = b"", b"", 0
        self.seq = [0] * ntopics
        sel.register(self.sock, selectors.EVENT_READ, self)

    def publish(self, topic):
        self.seq[topic] += 1
        body = str(self.seq[topic]).encode()
        self.out += (b"POST /pub/t%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % (topic, len(body))) + body
        self.pending += 1
        self.flush()

    def flush(self):
        while self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            self.out = self.out[n:]

    def on_read(self):
        self.inbuf += self.sock.recv(65536)
        while True:
            end = self.inbuf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.inbuf[:end]
            m = re.search(rb"Content-Length: (\d+)", head)
            n = int(m.group(1)) if m else 0
            if len(self.inbuf) < end + 4 + n:
                return
            if not head.startswith(b"HTTP/1.1 201"):
                stats["publish_errors"] += 1
            else:
                stats["published"] += 1
            self.inbuf = self.inbuf[end + 4 + n:]
            self.pending -= 1


samples_path = os.path.join(out, "samples.csv")
samples = open(samples_path, "w")
samples.write("t_s,rss_kb,fds,connections,streams,topics,published,events_received,"
              "reconnects,gaps,dupes\n")
streams = [Stream(i % ntopics) for i in range(nstreams)]
pub = Publisher()
start = time.monotonic()
# Ramp: open the streams at up to 1,000 per second.
opened = 0
next_sample = start
next_pub = start
next_churn = start
rows = []
while True:
    now = time.monotonic()
    if now - start >= duration:
        break
    while opened < nstreams and opened < (now - start) * 1000:
        connect(streams[opened])
        opened += 1
    while now >= next_pub:
        pub.publish(rng.randrange(ntopics))
        next_pub += 1.0 / rate
    while opened == nstreams and now >= next_churn:
        s = streams[rng.randrange(nstreams)]
        if s.sock is not None and s.head:
            drop(s)
        next_churn += 1.0 / churn
    if now >= next_sample:
        h = health()
        row = [round(now - start, 1), rss_kb(), fd_count(), h["connections"], h["streams"],
               h["topics"], stats["published"], stats["events"], stats["reconnects"],
               stats["gaps"], stats["dupes"]]
        rows.append(row)
        samples.write(",".join(map(str, row)) + "\n")
        samples.flush()
        print(f"  t={row[0]:6.1f}s rss={row[1] / 1024:7.1f}MB fds={row[2]:5d} streams={row[4]:5d} "
              f"published={row[6]:7d} received={row[7]:9d} reconnects={row[8]:6d} "
              f"gaps={row[9]} dupes={row[10]}", flush=True)
        next_sample += 10.0
    for key, mask in sel.select(0.01):
        obj = key.data
        if obj is pub:
            pub.on_read()
            continue
        s = obj
        try:
            if mask & selectors.EVENT_WRITE:
                err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise ConnectionError(os.strerror(err))
                n = s.sock.send(s.buf)
                s.buf = s.buf[n:]
                if not s.buf:
                    sel.modify(s.sock, selectors.EVENT_READ, s)
                continue
            data = s.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            on_data(s, data)
        except (ConnectionError, OSError):
            stats["resets"] += 1
            drop(s)
    pub.flush()

# Let the last deliveries arrive, then count what each stream is missing.
tail_end = time.monotonic() + 5
while time.monotonic() < tail_end:
    for key, mask in sel.select(0.05):
        obj = key.data
        if obj is pub:
            pub.on_read()
        elif mask & selectors.EVENT_READ:
            try:
                data = obj.sock.recv(65536)
                if data:
                    on_data(obj, data)
            except OSError:
                pass
behind = sum(1 for s in streams if s.last_seq and s.last_seq != pub.seq[s.topic])
for s in streams:
    if s.sock is not None:
        drop(s, reconnect=False)
pub.sock.close()

# The bench app replays 300 s: rings fill for that long, so "flat" is judged after it.
settle = min(330.0, duration / 2)
steady = [r for r in rows if r[0] >= settle]
summary = {
    "duration_s": duration, "streams": nstreams, "topics": ntopics, "publish_rate": rate,
    "churn_per_s": churn, **stats, "streams_behind_at_end": behind, "first_gaps": first_gap,
    "settled_after_s": settle,
    "rss_mb": {"first": rows[0][1] / 1024 if rows else None,
               "settled_min": min(r[1] for r in steady) / 1024 if steady else None,
               "settled_max": max(r[1] for r in steady) / 1024 if steady else None,
               "last": rows[-1][1] / 1024 if rows else None},
    "fds": {"settled_min": min(r[2] for r in steady) if steady else None,
            "settled_max": max(r[2] for r in steady) if steady else None,
            "last": rows[-1][2] if rows else None},
    "samples": samples_path,
}
print("soak summary: " + json.dumps(summary, indent=2))
ok = stats["gaps"] == 0 and stats["dupes"] == 0 and stats["publish_errors"] == 0 and \
    stats["refused"] == 0 and behind == 0
sys.exit(0 if ok else 1)
EOF
stop_server
code=0
wait "$server" || code=$?
trap - EXIT
echo "soak: server exit code $code (0 expected after SIGTERM); driver exit code $rc"
if [ "$code" -ne 0 ] || [ "$rc" -ne 0 ]; then
    echo "soak: FAILED (see $out/server.log and $out/samples.csv)" >&2
    exit 1
fi
echo "soak: passed"
