"""Stream integrity under network jitter: a freshet server in one network namespace, clients in
another, and between them delay 30 ms ± 20 ms and 1% loss each way. Over about 15 s of
publishing (with a quiet spell in the middle) every client must get every event exactly once,
in order, with ids strictly increasing, across reconnects that resume with Last-Event-ID; and
during the quiet spell heartbeats (heartbeat = 1) must keep coming about once a second.

    [ns a: freshet + publisher] a0 ──veth── ma [ns m] mb ──veth── b0 [ns b: clients]

The impairment is `tc qdisc add dev <veth> root netem delay 30ms 20ms loss 1%` on both middle
veths when the kernel has sch_netem. A kernel without it (this machine's has none: "Specified
qdisc kind is unknown") gets the same delay, jitter and loss from a user-space bridge in the
middle namespace that forwards each Ethernet frame itself: TCP then sees the same late,
reordered and lost segments. The output says which ran; FRESHET_CHAOS_REQUIRE_NETEM=1 turns a
missing netem into a failure. Needs root; if namespaces cannot be created the test fails, with
the reason, and never skips. Everything it creates is named fr-chaos-<pid>-* and deleted at the
end, also on failure; the host's interfaces are never touched."""

import json
import os
import shutil
import subprocess
import sys
import time

import frtest as ft

HEARTBEAT = 1.0
# Server-side a heartbeat is due after 1 s idle and sent at the next tick (250 ms); the path adds
# 30 ± 20 ms and, for a lost segment, one retransmission (a few hundred ms).
MAX_HEARTBEAT_GAP = 2.0
PORT = 8080  # the server's namespace is its own: no other listener can hold it
PHASES = [(40, 6.0), (0, 6.0), (40, 3.0)]  # (events per second, seconds)


# ----------------------------------------------------------------------------------------------
# Namespaces and impairment

IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"


def _run(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        ft.fail(f"`{' '.join(args)}` failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


BRIDGE = r'''
import heapq, os, random, select, socket, struct, sys, threading, time
delay, jitter, loss, ifa, ifb, seed = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
rng = random.Random(seed)
ETH_P_ALL = 3
def open_if(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s
a, b = open_if(ifa), open_if(ifb)
peer = {a.fileno(): b, b.fileno(): a}
heap, lock, cv = [], threading.Lock(), threading.Condition(threading.Lock())
seq = 0
stats = {"frames": 0, "dropped": 0}
import signal
def on_term(signum, frame):
    print(f"frames {stats['frames']} dropped {stats['dropped']}", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
def sender():
    while True:
        with cv:
            while not heap or heap[0][0] > time.monotonic():
                cv.wait(None if not heap else max(0.0, heap[0][0] - time.monotonic()))
            _, _, out, frame = heapq.heappop(heap)
        try:
            out.send(frame)
        except OSError:
            pass
threading.Thread(target=sender, daemon=True).start()
print("ready", flush=True)
while True:
    r, _, _ = select.select([a, b], [], [], 1.0)
    for s in r:
        frame, addr = s.recvfrom(65536)
        if addr[2] == socket.PACKET_OUTGOING:
            continue  # what this end sent itself
        stats["frames"] += 1
        if rng.random() < loss:
            stats["dropped"] += 1
            continue
        when = time.monotonic() + max(0.0, delay + rng.uniform(-jitter, jitter))
        with cv:
            seq += 1
            heapq.heappush(heap, (when, seq, peer[s.fileno()], frame))
            cv.notify()
'''


# Frames the bridge copies must carry finished checksums and be no larger than the MTU: with
# checksum offload or TSO/GSO a veth hands over segments whose checksum the kernel would only
# fill in on a real NIC, and the copy would be dropped by the receiver. This turns those off
# through the legacy ethtool ioctls (no ethtool binary needed).
OFFLOADS_OFF = r'''
import ctypes, fcntl, socket, struct, sys
SIOCETHTOOL = 0x8946
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for dev in sys.argv[1:]:
    for cmd in (0x17, 0x19, 0x1f, 0x24, 0x2c):  # tx checksum, sg, tso, gso, gro
        data = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, struct.pack("16sQ", dev.encode(), ctypes.addressof(data)))
'''


class Chaos:
    """Creates the namespaces; `impair(delay_ms, jitter_ms, loss_pct)` starts the impairment;
    `exec_args(side)` is the command prefix to run something in the server ('a') or client
    ('b') namespace. Use as a context manager."""

    def __init__(self):
        pid = os.getpid()
        self.prefix = f"fr-chaos-{pid}"
        self.ns = {k: f"{self.prefix}-{k}" for k in ("a", "m", "b")}
        short = f"frc{pid % 10000000}"
        self.dev = {"a0": short + "a0", "ma": short + "ma", "mb": short + "mb", "b0": short + "b0"}
        net = 1 + pid % 250
        self.addr = {"a": f"10.213.{net}.1", "b": f"10.213.{net}.2"}
        self.bridge = None
        self.impairment = None
        self.created = []

    def __enter__(self):
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def open(self):
        ft.check(os.geteuid() == 0, "the chaos tests need root (they create network namespaces)")
        ft.check(os.access(IP, os.X_OK) and os.access(TC, os.X_OK),
                 "ip and tc (iproute2) are needed for the chaos tests")
        for ns in self.ns.values():
            r = _run(IP, "netns", "add", ns, check=False)
            if r.returncode != 0:
                ft.fail(f"cannot create network namespace {ns}: {r.stderr.strip()} "
                        "(the chaos tests need CAP_SYS_ADMIN and a kernel with network "
                        "namespaces; they fail rather than skip)")
            self.created.append(ns)
        d, ns = self.dev, self.ns
        _run(IP, "link", "add", d["a0"], "netns", ns["a"], "type", "veth", "peer", "name", d["ma"],
             "netns", ns["m"])
        _run(IP, "link", "add", d["b0"], "netns", ns["b"], "type", "veth", "peer", "name", d["mb"],
             "netns", ns["m"])
        _run(IP, "-n", ns["a"], "addr", "add", self.addr["a"] + "/24", "dev", d["a0"])
        _run(IP, "-n", ns["b"], "addr", "add", self.addr["b"] + "/24", "dev", d["b0"])
        for side, dev in (("a", d["a0"]), ("b", d["b0"]), ("m", d["ma"]), ("m", d["mb"])):
            _run(IP, "-n", ns[side], "link", "set", dev, "up")
        for side in ("a", "b", "m"):
            _run(IP, "-n", ns[side], "link", "set", "lo", "up")
        for dev in (d["ma"], d["mb"]):
            _run(IP, "-n", ns["m"], "link", "set", dev, "promisc", "on")

    def impair(self, delay_ms, jitter_ms, loss_pct):
        """netem on both middle veths (both directions) if the kernel has it, else the user-space
        bridge with the same parameters. Without either, frames do not cross at all."""
        spec = ["delay", f"{delay_ms}ms", f"{jitter_ms}ms", "loss", f"{loss_pct}%"]
        r = _run(IP, "netns", "exec", self.ns["m"], TC, "qdisc", "add", "dev", self.dev["ma"],
                 "root", "netem", *spec, check=False)
        if r.returncode == 0:
            _run(IP, "netns", "exec", self.ns["m"], TC, "qdisc", "add", "dev", self.dev["mb"],
                 "root", "netem", *spec)
            # With netem on the veths the middle namespace forwards in the kernel, as a bridge.
            _run(IP, "-n", self.ns["m"], "link", "add", "br0", "type", "bridge")
            for dev in (self.dev["ma"], self.dev["mb"]):
                _run(IP, "-n", self.ns["m"], "link", "set", dev, "master", "br0")
            _run(IP, "-n", self.ns["m"], "link", "set", "br0", "up")
            self.impairment = f"tc netem {' '.join(spec)} (kernel)"
            return self.impairment
        if os.environ.get("FRESHET_CHAOS_REQUIRE_NETEM") == "1":
            ft.fail(f"tc netem is not available: {r.stderr.strip()} (the kernel lacks sch_netem; "
                    "FRESHET_CHAOS_REQUIRE_NETEM=1 asks for the kernel qdisc)")
        for side, devs in (("a", [self.dev["a0"]]), ("b", [self.dev["b0"]]),
                           ("m", [self.dev["ma"], self.dev["mb"]])):
            _run(*self.exec_args(side), sys.executable, "-c", OFFLOADS_OFF, *devs)
        print(f"    NOTE: tc netem is not available here ({r.stderr.strip()}): the kernel has no "
              "sch_netem. The same delay, jitter and loss are applied by a user-space bridge "
              "between the veths instead.", flush=True)
        self.bridge = subprocess.Popen(
            [IP, "netns", "exec", self.ns["m"], sys.executable, "-c", BRIDGE,
             str(delay_ms / 1000), str(jitter_ms / 1000), str(loss_pct / 100), self.dev["ma"],
             self.dev["mb"], str(os.getpid())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.bridge.stdout.readline()
        ft.check(line.strip() == "ready", "the user-space bridge did not start", line)
        self.impairment = (f"user-space netem emulation: delay {delay_ms}ms ±{jitter_ms}ms, "
                           f"loss {loss_pct}% each way")
        return self.impairment

    def exec_args(self, side):
        return [IP, "netns", "exec", self.ns[side]]

    def close(self):
        if self.bridge is not None:
            if self.bridge.poll() is None:
                self.bridge.terminate()
            try:
                out, _ = self.bridge.communicate(timeout=5)
                if out.strip():
                    print(f"    bridge: {out.strip()}", flush=True)
            except subprocess.TimeoutExpired:
                self.bridge.kill()
                self.bridge.wait(timeout=5)
            self.bridge = None
        # Deleting a namespace deletes the veth ends inside it, and with them their peers.
        for ns in reversed(self.created):
            for _ in range(10):
                r = _run(IP, "netns", "del", ns, check=False)
                if r.returncode == 0 or ns not in _run(IP, "netns", "list", check=False).stdout:
                    break
                time.sleep(0.2)
        self.created = []
        left = _run(IP, "netns", "list", check=False).stdout
        if self.prefix in left:
            print(f"    WARNING: namespaces left behind (delete with `ip netns del`): {left}",
                  flush=True)


# ----------------------------------------------------------------------------------------------
# The programs that run inside the namespaces (python3 -c, with frtest on the path)

CLIENT = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
import frtest as ft
ft.HOST = sys.argv[2]
port, duration, reconnect_every, heartbeat = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
out = {"events": [], "comments": [], "connects": [], "errors": []}
last = None
start = time.monotonic()
deadline = start + duration
conn_no = 0
while time.monotonic() < deadline:
    try:
        s = ft.SSEStream(port, "/sub/chaos", last_event_id=last, timeout=10)
    except (OSError, ft.Failure) as exc:
        out["errors"].append(f"{time.monotonic() - start:.2f}: connect: {exc!r}")
        time.sleep(0.2)
        continue
    conn_no += 1
    out["connects"].append([round(time.monotonic() - start, 3), s.status, last])
    if s.status != 200:
        out["errors"].append(f"status {s.status} resuming after {last}: {s.response.text[:200]}")
        s.close()
        time.sleep(0.5)
        continue
    opened = heard = time.monotonic()
    seen = 0
    while True:
        now = time.monotonic()
        if now > deadline or (reconnect_every and now - opened > reconnect_every) or s.ended:
            break
        if now - heard > 3 * heartbeat:
            out["errors"].append(f"{now - start:.2f}: nothing for {3 * heartbeat}s, reconnecting")
            break
        try:
            got = s.pump(0.1)
        except OSError as exc:
            out["errors"].append(f"{now - start:.2f}: read: {exc!r}")
            break
        items = s.parser.items
        for item in items[seen:]:
            t = round(item.t - start, 3)
            if isinstance(item, ft.Event):
                out["events"].append([item.id, item.data, t, conn_no])
            elif isinstance(item, ft.Comment):
                out["comments"].append([t, conn_no])
        if len(items) > seen:
            heard = time.monotonic()
            seen = len(items)
    last = s.parser.last_event_id or last
    s.close()
print(json.dumps(out))
'''

PUBLISHER = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
import frtest as ft
ft.HOST = sys.argv[2]
port, want_streams, phases = int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
deadline = time.monotonic() + 20
while ft.request(port, "GET", "/health").json()["streams"] < want_streams:
    if time.monotonic() > deadline:
        print(json.dumps({"error": "the clients' streams never opened"})); sys.exit(0)
    time.sleep(0.05)
start = time.monotonic()
log, seq = [], 0
conn = ft.Conn(port, timeout=10)
for rate, seconds in phases:
    t0 = time.monotonic()
    if rate == 0:
        log.append(["quiet", round(t0 - start, 3), round(t0 - start + seconds, 3)])
        time.sleep(seconds)
        continue
    n = int(rate * seconds)
    for k in range(n):
        due = t0 + k / rate
        time.sleep(max(0.0, due - time.monotonic()))
        seq += 1
        r = conn.request("POST", "/pub/chaos", None, str(seq))
        if r.status != 201:
            print(json.dumps({"error": f"publish {seq}: {r.status} {r.text[:200]}"})); sys.exit(0)
        log.append(["pub", seq, r.json()["id"]])
print(json.dumps({"log": log, "count": seq}))
'''


def run_json(args, timeout, what):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        ft.fail(f"{what} did not finish within {timeout}s", (exc.stdout or "")[-2000:])
    ft.check(r.returncode == 0, f"{what} exited {r.returncode}", r.stderr[-3000:])
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        ft.fail(f"{what} printed no JSON", (r.stdout[-1000:], r.stderr[-2000:]))


def check_client(name, got, published, reconnect_every):
    datas = [e[1] for e in got["events"]]
    ids = [ft.parse_id(e[0]) for e in got["events"]]
    want = [str(i) for i in range(1, published + 1)]
    dupes = sorted({d for d in datas if datas.count(d) > 1}, key=int)
    missing = sorted(set(want) - set(datas), key=int)
    ft.check(not dupes, f"{name}: events received twice", dupes[:20])
    ft.check(not missing, f"{name}: events never received ({len(missing)} of {published})",
             {"missing": missing[:20], "connects": got["connects"], "errors": got["errors"][:10]})
    ft.check_eq(datas, want, f"{name}: order of the events")
    bad = [(a, b) for a, b in zip(ids, ids[1:]) if not a < b]
    ft.check(not bad, f"{name}: ids not strictly increasing", bad[:10])
    statuses = [c[1] for c in got["connects"]]
    ft.check(all(s == 200 for s in statuses), f"{name}: a (re)connection was refused",
             got["connects"])
    if reconnect_every:
        resumed = [c for c in got["connects"] if c[2]]
        ft.check(len(resumed) >= 3, f"{name}: only {len(resumed)} reconnections resumed with "
                                    "Last-Event-ID", got["connects"])
    return len(got["connects"])


def run():
    server_log = None
    with Chaos() as net:
        what = net.impair(30, 20, 1)
        print(f"    impairment: {what}", flush=True)
        app = ft.pubsub_app(f"heartbeat = {HEARTBEAT}, retry = 500,")
        logdir = ft.tempdir("freshet-chaos-")
        server_log = os.path.join(logdir, "server.log")
        with open(server_log, "wb") as logf:
            srv = subprocess.Popen(net.exec_args("a") + [ft.BIN, app.app, "--listen",
                                                         f"{net.addr['a']}:{PORT}"],
                                   stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        try:
            deadline = time.monotonic() + 10
            while b"listening on" not in open(server_log, "rb").read():
                ft.check(srv.poll() is None and time.monotonic() < deadline,
                         "the server in the namespace did not start",
                         open(server_log, "rb").read()[-2000:])
                time.sleep(0.05)
            here = os.path.dirname(os.path.abspath(__file__))
            total = sum(s for _, s in PHASES) + 6
            clients = {
                "steady client": subprocess.Popen(
                    net.exec_args("b") + [sys.executable, "-c", CLIENT, here, net.addr["a"],
                                          str(PORT), str(total), "0", str(HEARTBEAT)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                "reconnecting client": subprocess.Popen(
                    net.exec_args("b") + [sys.executable, "-c", CLIENT, here, net.addr["a"],
                                          str(PORT), str(total), "2.0", str(HEARTBEAT)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            }
            pub = run_json(net.exec_args("a") + [sys.executable, "-c", PUBLISHER, here,
                                                 net.addr["a"], str(PORT), "2", json.dumps(PHASES)],
                           timeout=total + 30, what="the publisher")
            ft.check("error" not in pub, "publisher", pub)
            results = {}
            for name, p in clients.items():
                try:
                    out, err = p.communicate(timeout=total + 30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    ft.fail(f"{name} did not finish")
                ft.check(p.returncode == 0, f"{name} exited {p.returncode}", err[-3000:])
                results[name] = json.loads(out.strip().splitlines()[-1])

            with ft.subtest(f"every event exactly once, in order, ids increasing ({what})"):
                for name, got in results.items():
                    n = check_client(name, got, pub["count"], name.startswith("reconnecting"))
                    print(f"    {name}: {len(got['events'])} events over {n} connection(s); "
                          f"client notes: {got['errors'][:3]}", flush=True)

            with ft.subtest(f"heartbeats about once a second while nothing is published "
                            f"(max gap {MAX_HEARTBEAT_GAP}s)"):
                quiet = [x for x in pub["log"] if x[0] == "quiet"][0]
                got = results["steady client"]
                # The publisher's clock starts later than the client's: place the quiet spell by
                # the events around it instead.
                last_before = int(PHASES[0][0] * PHASES[0][1])
                before = [e for e in got["events"] if int(e[1]) == last_before]
                after = [e for e in got["events"] if int(e[1]) == last_before + 1]
                ft.check(before and after, "the events around the quiet spell", got["events"][-5:])
                q0, q1 = before[0][2] + HEARTBEAT + 0.3, after[0][2] - 0.1
                beats = [c[0] for c in got["comments"] if q0 <= c[0] <= q1]
                ft.check(len(beats) >= 3, f"only {len(beats)} heartbeats in a {q1 - q0:.1f}s "
                                          "quiet spell", got["comments"])
                gaps = [b - a for a, b in zip(beats, beats[1:])]
                print(f"    heartbeat gaps: {[round(g, 3) for g in gaps]} (quiet {quiet[2] - quiet[1]:.1f}s)",
                      flush=True)
                ft.check(max(gaps) <= MAX_HEARTBEAT_GAP, f"a heartbeat gap of {max(gaps):.2f}s", gaps)
                mean = sum(gaps) / len(gaps)
                ft.check(0.9 <= mean <= 1.4, f"mean heartbeat gap {mean:.2f}s for heartbeat = 1", gaps)
        finally:
            if srv.poll() is None:
                srv.terminate()
            try:
                rc = srv.wait(timeout=10)
            except subprocess.TimeoutExpired:
                srv.kill()
                rc = srv.wait(timeout=5)
            log = open(server_log, "rb").read().decode("utf-8", "replace")
        with ft.subtest("the server exits cleanly and logged no error"):
            ft.check_eq(rc, 0, "server exit code after SIGTERM")
            errors = [l for l in log.splitlines() if " error " in l]
            ft.check(not errors, "error lines in the server log", errors[:10])


ft.main(run, limit=110)
