"""Socket states: /metrics counts the listening port's TCP sockets by state as the kernel sees
them (freshet_tcp_sockets{state=...}). 500 streams are opened and drained twice: once by their
clients leaving (the server closes its side at once: no CLOSE_WAIT left, and no TIME_WAIT on
the server's side, since the client closed first), once by the server's SIGTERM drain (each
stream gets its retry: and a graceful close: every client reads to the end, nothing is left
established or in CLOSE_WAIT)."""

import signal
import socket
import time

import frtest as ft

N = 500
STATES = {1: "established", 6: "time_wait", 8: "close_wait", 9: "last_ack", 4: "fin_wait1",
          5: "fin_wait2", 10: "listen"}


def kernel_states(port):
    """The port's sockets by state name, read by the test itself from /proc/net/tcp{,6}."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) != port:
                    continue
                name = STATES.get(int(fields[3], 16), fields[3])
                out[name] = out.get(name, 0) + 1
    return out


def states(srv):
    m = srv.metrics()
    return {dict(k[1])["state"]: int(v) for k, v in m.items() if k[0] == "freshet_tcp_sockets"}


def run():
    ft.raise_nofile()
    app = ft.pubsub_app(settings="heartbeat = 5, drain = 1,")
    with ft.Server(app) as srv:
        port = srv.port

        with ft.subtest("the metric lists every state, and the listener"):
            before = states(srv)
            for name in ("established", "time_wait", "close_wait", "fin_wait1", "fin_wait2",
                         "last_ack", "syn_recv", "listen", "closing"):
                ft.check(name in before, f"freshet_tcp_sockets{{state={name!r}}}", before)
            ft.check_eq(before["listen"], 1, "one listening socket")
            ft.check(before["established"] <= 1, "only the scrape itself is established", before)
            print(f"    before: {before}")

        swarm = ft.StreamSwarm(port, "/sub/many")
        with ft.subtest(f"{N} open streams are {N} established sockets"):
            swarm.open(N, timeout=60)
            srv.wait_streams(N, timeout=20)
            during = states(srv)
            print(f"    {N} streams: {during}")
            # Plus the scrape, /health polls the server has not closed yet, and under load
            # connections the kernel completed that the loop has not accepted yet.
            ft.check(N <= during["established"] <= N + 100, "established", during)
            ft.check_eq(during["close_wait"], 0, "close_wait")

        with ft.subtest(f"{N} clients leave: the server closes each side, no CLOSE_WAIT left"):
            swarm.close_all()
            srv.wait_streams(0, timeout=20)
            deadline = time.monotonic() + 5
            while True:
                after = states(srv)
                if after["established"] <= 1 and after["close_wait"] == 0:
                    break
                ft.check(time.monotonic() < deadline, "sockets left behind after 5 s", after)
                time.sleep(0.1)
            print(f"    after the clients left: {after}")
            ft.check_eq(after["close_wait"], 0, "close_wait")
            # The scrapes and /health polls (Connection: close) leave a few on the server's
            # side; the streams, whose clients closed first, leave none.
            ft.check(after["time_wait"] - before["time_wait"] < 60,
                     "no TIME_WAIT on the server's side for the streams: the clients closed "
                     "first", after)
            # The scrape's own connection may sit in CLOSE_WAIT for the instant between the
            # client's close and the server's: what counts is that nothing stays there.
            deadline = time.monotonic() + 2
            while kernel_states(port).get("close_wait", 0) and time.monotonic() < deadline:
                time.sleep(0.05)
            ft.check_eq(kernel_states(port).get("close_wait", 0), 0,
                        "the kernel agrees: no close_wait")

        swarm = ft.StreamSwarm(port, "/sub/many")
        with ft.subtest(f"SIGTERM drains {N} streams gracefully: every client reads to the end"):
            swarm.open(N, timeout=60)
            srv.wait_streams(N, timeout=20)
            srv.send_signal(signal.SIGTERM)
            swarm.pump_until(lambda: all(c.body_end_t or c.eof_t for c in swarm.clients), 15,
                             "every stream ends")
            ended = sum(1 for c in swarm.clients if c.body_end_t)
            ft.check_eq(ended, N, "streams that got their last chunk (a graceful close)")
            retries = sum(1 for c in swarm.clients
                          if any(isinstance(i, ft.Retry) for i in c.parser.items[1:]))
            ft.check_eq(retries, N, "streams told when to come back")
            swarm.close_all()
            srv.wait_exit(15)
            kernel = kernel_states(port)
            print(f"    after the drain (server gone): {kernel}")
            ft.check_eq(kernel.get("close_wait", 0), 0, "close_wait")
            ft.check_eq(kernel.get("established", 0), 0, "established")


ft.main(run, limit=110)
