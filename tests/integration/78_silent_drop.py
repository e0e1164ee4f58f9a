"""Silent drops: a peer whose packets vanish (no FIN, no RST: an expired NAT entry, a firewall)
is closed within heartbeat + timeouts.ack, logged as CLOSED with reason ack_timeout and counted
in /metrics, whether it holds a stream, a long-poll or an idle keep-alive connection. A healthy
slow reader on the same server (its window closed, its probes answered) stays open and gets
every event.

The drop is an iptables DROP on loopback for one dedicated source address (127.0.0.2), both
ways, limited to the server's port; the rules are removed in a finally block. The test runs as
root and fails (never skips) when it cannot set them."""

import os
import shutil
import socket
import subprocess
import threading
import time

import frtest as ft

HEARTBEAT = 1.0
ACK = 2.0
DEAD = "127.0.0.2"
# Loop ticks (a quarter heartbeat) and the kernel's timers; a sanitized build under ctest -j
# runs its loop several times slower.
SLACK = 3.0 if ft.SANITIZED else 1.5


class DropRules:
    """DROP everything between DEAD and the server's port, in both directions."""

    def __init__(self, port):
        self.port = port
        self.rules = [
            ["INPUT", "-s", DEAD, "-p", "tcp", "--dport", str(port), "-j", "DROP"],
            ["OUTPUT", "-d", DEAD, "-p", "tcp", "--sport", str(port), "-j", "DROP"],
        ]
        self.active = []
        ft._cleanups.append(self.remove)

    def add(self):
        exe = shutil.which("iptables")
        ft.check(exe is not None, "iptables is not installed (scripts/setup.sh installs it)")
        ft.check(os.geteuid() == 0, "this test needs root to set iptables rules")
        for rule in self.rules:
            r = subprocess.run([exe, "-I"] + rule, capture_output=True, text=True)
            ft.check(r.returncode == 0, f"iptables -I {' '.join(rule)} failed", r.stderr)
            self.active.append(rule)

    def remove(self):
        exe = shutil.which("iptables") or "iptables"
        while self.active:
            rule = self.active.pop()
            subprocess.run([exe, "-D"] + rule, capture_output=True)


def connect_from(addr, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((addr, 0))
    sock.settimeout(5)
    sock.connect((ft.HOST, port))
    return sock


def server_sockets(port):
    """Remote (addr, port) pairs of the server's connections, from /proc/net/tcp."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            local, remote, state = line.split()[1:4]
            lport = int(local.split(":")[1], 16)
            if lport != port or state == "0A":
                continue
            rhex, rport = remote.split(":")
            raddr = socket.inet_ntoa(bytes.fromhex(rhex)[::-1])
            out.add((raddr, int(rport, 16)))
    return out


def closed_lines(srv):
    return [e for e in ft.state_log_entries(srv.log()) if e.get("event") == "CLOSED"]


def conn_ids_from(srv, addr):
    return {e["conn"] for e in ft.state_log_entries(srv.log())
            if e.get("event") == "CONNECTING" and e.get("remote") == addr}


def run():
    app = ft.pubsub_app(settings=f"""
        heartbeat = {HEARTBEAT}, timeouts = {{ ack = {ACK}, idle = 60 }}, poll_timeout = 60,
        tiers = {{ slow = {{ queue = 4096, bytes = 16777216, lag = 100000 }} }},
    """, files={"routes/sub.lua": """
        local route = {}
        function route.topics(req, who) return { req.params.topics } end
        function route.tier(req, who) return "slow" end
        return route
    """})
    with ft.Server(app, args=("--log-level", "info")) as srv:
        port = srv.port
        rules = DropRules(port)

        # The connections that will be cut: a stream, a long-poll, an idle keep-alive one.
        dead_stream = ft.SSEStream(port, "/sub/t", sock=connect_from(DEAD, port))
        ft.check_eq(dead_stream.status, 200, "the dead peer's stream opens")
        dead_stream.wait_retry()
        dead_poll = ft.Conn(port, sock=connect_from(DEAD, port))
        dead_poll.send(ft.build_request("GET", "/sub/quiet?transport=poll", None, None, port))
        dead_idle = ft.Conn(port, sock=connect_from(DEAD, port))
        r = dead_idle.request("GET", "/health")
        ft.check_eq(r.status, 200, "the idle keep-alive connection's first request")
        dead_ports = {dead_stream.conn.sock.getsockname()[1], dead_poll.sock.getsockname()[1],
                      dead_idle.sock.getsockname()[1]}

        # The healthy slow reader: a 4 KB receive window it leaves full for a while.
        slow = ft.SSEStream(port, "/sub/t", sock=ft.small_rcvbuf_socket(port, 4096))
        ft.check_eq(slow.status, 200, "the slow reader's stream opens")
        slow.wait_retry()
        srv.wait_streams(3)  # two SSE streams and the held long-poll
        ft.check(all((DEAD, p) in server_sockets(port) for p in dead_ports),
                 "the server holds the three connections from the dead address",
                 server_sockets(port))

        stop = threading.Event()
        published = []

        def publisher():
            with ft.Publisher(port) as pub:
                n = 0
                while not stop.is_set():
                    body = f"{n:06d}".encode() + b"x" * 4000
                    resp = pub.publish_many([("/pub/t", body, None)])[0]
                    if resp.status == 201:
                        published.append(n)
                    n += 1
                    time.sleep(0.2)

        pub_thread = threading.Thread(target=publisher, daemon=True)
        pub_thread.start()
        time.sleep(0.5)

        bound = HEARTBEAT + ACK + SLACK
        try:
            rules.add()
            cut = time.monotonic()

            with ft.subtest("the dead stream is closed within heartbeat + timeouts.ack, "
                            "logged ack_timeout"):
                ids = conn_ids_from(srv, DEAD)
                ft.check_eq(len(ids), 3, "three connections came from the dead address")
                deadline = cut + bound + 6
                gone = None
                while time.monotonic() < deadline:
                    left = server_sockets(port)
                    if gone is None and not any((DEAD, p) in left for p in dead_ports):
                        gone = time.monotonic() - cut
                        break
                    time.sleep(0.1)
                ft.check(gone is not None,
                         f"the server still holds connections from the dead peer "
                         f"{bound + 6:.1f}s after the drop",
                         sorted(server_sockets(port)))
                ft.check(gone <= bound,
                         f"all three dead connections closed in {gone:.2f}s, over heartbeat + "
                         f"ack + slack = {bound:.1f}s")
                print(f"    the three dead connections were gone {gone:.2f}s after the drop "
                      f"(heartbeat {HEARTBEAT}s, ack {ACK}s)")
                srv.wait_log(r'"event":"CLOSED".*"reason":"ack_timeout"', timeout=2)
                reasons = {e["conn"]: e.get("reason") for e in closed_lines(srv)}
                stream_id = min(ids)  # the stream connected first
                ft.check_eq(reasons.get(stream_id), "ack_timeout",
                            "the dead stream's CLOSED line names the reason")
                idle_id = max(ids)
                ft.check_eq(reasons.get(idle_id), "ack_timeout",
                            "the idle keep-alive connection's CLOSED line names the reason")

            with ft.subtest("each dead connection is counted in /metrics"):
                m = srv.metrics()
                ft.check_eq(ft.metric(m, "freshet_ack_timeouts_total"), 3.0,
                            "freshet_ack_timeouts_total")
                ft.check(ft.metric(m, "freshet_connections_reset_total") >= 3.0,
                         "dead connections are closed abortively (reset)",
                         ft.metric(m, "freshet_connections_reset_total"))

            with ft.subtest("the healthy slow reader is still open and gets every event"):
                # It has not read since it opened: its window has been closed for seconds.
                time.sleep(max(0.0, cut + bound + 1 - time.monotonic()))
                stop.set()
                pub_thread.join(5)
                ft.check(len(published) >= 15, "the publisher kept publishing", len(published))
                want = len(published)
                got = slow.take(want, timeout=15)
                nums = [int(e.data[:6]) for e in got]
                ft.check_eq(nums, published, "the slow reader got every event in order")
                ft.check(not slow.ended, "the slow reader's stream is still open")
                item = slow.next_item(timeout=HEARTBEAT * 3)
                ft.check(isinstance(item, ft.Comment), "a heartbeat follows", item)
                ft.check_eq(srv.health()["streams"], 1, "only the slow reader's stream is left")
                m = srv.metrics()
                ft.check_eq(ft.metric(m, "freshet_ack_timeouts_total"), 3.0,
                            "the slow reader was not counted as a silent drop")
        finally:
            stop.set()
            rules.remove()
            for c in (dead_stream, dead_poll, dead_idle, slow):
                c.close()


ft.main(run, limit=90)
