"""Graceful drain: with 500 open streams and drain = 2, SIGTERM makes every stream receive a
`retry:` (retry plus jitter) at its own moment within the window and end its body (or close),
new streams are refused (503 or a refused connection), and the process exits 0 within
drain + 3 s. Serial (5x): 500 streams and a timed window."""

import signal
import socket
import time

import frtest as ft

STREAMS = 500
DRAIN = 2.0
RETRY = 3000

APP_SETTINGS = f"""
    heartbeat = 30,
    retry = {RETRY},
    drain = {DRAIN:g},
"""


def run():
    hard = ft.raise_nofile()
    ft.check(hard >= STREAMS + 100, f"RLIMIT_NOFILE hard limit {hard} is too low for {STREAMS} streams")
    app = ft.pubsub_app(APP_SETTINGS)
    srv = ft.Server(app, ready_timeout=20).start()
    swarm = ft.StreamSwarm(srv.port, "/sub/drain")
    late = None
    try:
        clients = swarm.open(STREAMS, timeout=40)
        srv.wait_streams(STREAMS, timeout=10)
        # A connection accepted before the signal whose request comes during the drain.
        late = socket.create_connection((ft.HOST, srv.port), timeout=5)
        deadline = time.monotonic() + 5
        while srv.health()["connections"] < STREAMS + 2:  # the late one and this /health
            ft.check(time.monotonic() < deadline, "the late connection was never accepted",
                     srv.health())
            time.sleep(0.05)
        before = {id(c): len(c.parser.items) for c in clients}

        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)

        with ft.subtest("a stream requested during the drain is refused"):
            time.sleep(0.1)
            late.sendall(ft.build_request("GET", "/sub/drain?refusal=status",
                                          {"Accept": "text/event-stream"}, None, srv.port))
            late.settimeout(3)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = late.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, ConnectionResetError):
                pass
            status_line = data.split(b"\r\n")[0]
            ft.check(data == b"" or status_line.split(b" ")[1:2] == [b"503"],
                     "a stream requested during the drain was not refused", data[:300])
            if data:
                ft.check(b"retry-after:" in data.lower(), "the 503 has no Retry-After", data[:300])
            print(f"    request on a connection accepted before SIGTERM: "
                  f"{status_line.decode('latin-1') or 'closed without an answer'}", flush=True)
            # A brand new connection: refused outright (the listener is closed), or, asked as a
            # browser's EventSource asks, refused in the stream so that it comes back later.
            try:
                fresh = ft.SSEStream(srv.port, "/sub/drain", timeout=3)
                fresh.close()
                fresh.response.check_refused("shutting_down", 503, "a new stream during the drain",
                                             retry_ms=(1000, 1500))
                print("    a new connection during the drain: 200 + freshet-refused", flush=True)
            except (ConnectionRefusedError, ConnectionResetError) as exc:
                print(f"    a new connection during the drain: {exc.__class__.__name__}",
                      flush=True)

        with ft.subtest(f"every one of {STREAMS} streams gets retry: and its end within the "
                        f"window"):
            swarm.pump_until(lambda: all(c.done or c.body_end_t for c in clients),
                             DRAIN + 4, "streams ending")
            problems = []
            retry_values = []
            retry_times = []
            for n, c in enumerate(clients):
                new = c.parser.items[before[id(c)]:]
                retries = [i for i in new if isinstance(i, ft.Retry)]
                events = [i for i in new if isinstance(i, ft.Event)]
                if c.error:
                    problems.append(f"stream {n}: {c.error}")
                elif not retries:
                    problems.append(f"stream {n}: no retry: before the end "
                                    f"({'body ended' if c.body_end_t else 'closed'})")
                elif events:
                    problems.append(f"stream {n}: unexpected events {events[:2]}")
                else:
                    retry_values.append(retries[-1].ms)
                    retry_times.append(retries[-1].t - t0)
            ft.check(not problems, f"{len(problems)} of {STREAMS} streams did not end cleanly",
                     problems[:10])
            lo, hi = min(retry_values), max(retry_values)
            print(f"    retry values {lo}..{hi} ms ({len(set(retry_values))} distinct); sent "
                  f"between {min(retry_times):.2f}s and {max(retry_times):.2f}s after SIGTERM",
                  flush=True)
            ft.check(lo >= RETRY, f"a retry below the app's {RETRY} ms", lo)
            ft.check(hi <= RETRY * 2, f"a retry above twice the app's {RETRY} ms", hi)
            ft.check(len(set(retry_values)) > 10, "retry values have no jitter",
                     sorted(set(retry_values))[:20])
            ft.check(max(retry_times) <= DRAIN * 0.8 + 0.7,
                     f"a stream got its retry {max(retry_times):.2f}s after SIGTERM, past 80% of "
                     f"the {DRAIN:g}s window")
            ft.check(max(retry_times) - min(retry_times) >= DRAIN * 0.3,
                     "the streams were not ended at spread moments over the window",
                     (min(retry_times), max(retry_times)))
            ended = sum(1 for c in clients if c.body_end_t is not None)
            print(f"    {ended} bodies ended with the chunked terminator, "
                  f"{sum(1 for c in clients if c.eof_t is not None)} sockets closed", flush=True)

        with ft.subtest("the process exits 0 within drain + 3 s"):
            rc = srv.wait_exit(timeout=max(0.1, DRAIN + 3 - (time.monotonic() - t0)))
            took = time.monotonic() - t0
            ft.check(rc is not None, f"the server was still running {took:.1f}s after SIGTERM "
                                     f"(drain = {DRAIN:g})", srv.log_tail(20))
            ft.check_eq(rc, 0, f"exit code after SIGTERM ({srv.log_tail(20)})")
            print(f"    exited {rc} {took:.2f}s after SIGTERM", flush=True)

        with ft.subtest("every stream's CLOSED line says shutdown"):
            entries = ft.state_log_entries(srv.log())
            active = {e["conn"] for e in entries if e["event"] == "ACTIVE"}
            closed = {e["conn"]: e.get("reason") for e in entries if e["event"] == "CLOSED"}
            ft.check_eq(len(active), STREAMS, "ACTIVE lines")
            reasons = [closed.get(c) for c in active]
            ft.check(all(r == "shutdown" for r in reasons),
                     "streams closed for another reason than shutdown",
                     {r: reasons.count(r) for r in set(reasons)})
    finally:
        swarm.close_all()
        if late is not None:
            late.close()
        if srv.alive():
            srv.kill()


ft.main(run, limit=100)
