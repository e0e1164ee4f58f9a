"""Descriptor guard: the binary runs under `prlimit --nofile=200:200`.

It logs its limits and the capacity they leave: streams (open, and opening) up to
floor(0.9 * 200) less what was open at start; connections accepted up to 200 less a reserve,
past which accepting pauses (clients wait in the listen backlog) instead of failing. A burst
of clients opening at once, as after a restart, gets exactly that many streams, and every other
client an answer: 200 + `event: freshet-refused` for a browser's EventSource, 503 with
Retry-After for a client that reads statuses. Nobody is closed without an answer, refusals are
counted and logged. At 80% it warns once; /health and /metrics answer throughout; open streams
keep flowing; once clients leave, new streams succeed again."""

import collections
import math
import re
import selectors
import shutil
import socket
import time

import frtest as ft

LIMIT = 200
ACCEPT_RESERVE = 8 + 1 + LIMIT // 128  # 8, one per worker, 1/128 of the limit


def classify(buf, final=False):
    """What a burst client got: 'stream' (200 and the stream's opening retry:), 'in-band:<reason>'
    (200 + freshet-refused), a status with its Retry-After ('503 5'), 'closed' (no answer at
    all), or None while the answer is incomplete."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return "closed" if final else None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
               for l in lines[1:] if ":" in l}
    if status != 200:
        length = int(headers.get("content-length", "0"))
        if len(body) < length and not final:
            return None
        return f"{status} {headers.get('retry-after', '-')}"
    if "content-length" in headers:
        if len(body) < int(headers["content-length"]):
            return "closed" if final else None
        m = re.fullmatch(rb'retry: \d+\nevent: freshet-refused\ndata: \{"reason":"([a-z_]+)".*\n\n',
                         body, re.S)
        return f"in-band:{m.group(1).decode()}" if m else "bad in-band body"
    if b"retry:" in body:
        return "stream"
    return "closed" if final else None


def burst(port, path, waves, per_wave, gap=0.0, timeout=20):
    """waves × per_wave clients: each wave connects at once (every TCP handshake first, then
    every GET), `gap` seconds after the one before. Returns (outcomes, sockets): one outcome per
    client (see classify; 'no answer' when none came in time) and the sockets, still open (the
    streams among them hold their place until closed)."""
    sel = selectors.DefaultSelector()
    req = (f"GET {path} HTTP/1.1\r\nHost: {ft.HOST}:{port}\r\n"
           f"Accept: text/event-stream\r\n\r\n").encode()
    socks, bufs, out = [], [], {}
    start = time.monotonic()
    deadline = start + waves * gap + timeout
    next_wave = 0
    while time.monotonic() < deadline:
        if next_wave < waves and time.monotonic() >= start + next_wave * gap:
            for _ in range(per_wave):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex((ft.HOST, port))
                sel.register(s, selectors.EVENT_WRITE, len(socks))
                socks.append(s)
                bufs.append(b"")
            next_wave += 1
        if next_wave == waves and len(out) == len(socks):
            break
        for key, ev in sel.select(0.05):
            i, s = key.data, key.fileobj
            if ev & selectors.EVENT_WRITE:
                try:
                    s.send(req)
                    sel.modify(s, selectors.EVENT_READ, i)
                except OSError:
                    out[i] = "closed"
                    sel.unregister(s)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                bufs[i] += data
            got = classify(bufs[i], final=not data)
            if got:
                out[i] = got
                sel.unregister(s)
    sel.close()
    return [out.get(i, "no answer") for i in range(len(socks))], socks


def close_all(socks):
    for s in socks:
        s.close()
    socks.clear()


def refusals_logged(srv):
    """The sum of fd_limit counts over the refusal log lines."""
    return sum(int(n) for n in re.findall(r"warn refused \d+ new streams? \([^)]*fd_limit (\d+)",
                                          srv.log()))


def run():
    ft.check(shutil.which("prlimit") is not None,
             "prlimit (util-linux) is not installed; scripts/setup.sh installs it")
    ft.raise_nofile()
    app = ft.pubsub_app("heartbeat = 30,")
    streams, extra = [], []
    with ft.Server(app, wrapper=["prlimit", f"--nofile={LIMIT}:{LIMIT}"]) as srv:
        try:
            with ft.subtest("the start-up log names the limit and the capacity it leaves"):
                srv.wait_log(rf"open files: soft limit {LIMIT} \(was {LIMIT}\), hard limit {LIMIT}")
                m = re.search(r"descriptors: (\d+) open at start; up to (\d+) streams \(90% of "
                              rf"{LIMIT}\), connections accepted up to (\d+)", srv.log())
                ft.check(m is not None, "no capacity line in the start-up log", srv.log_tail())
                base, capacity, accept_cap = (int(g) for g in m.groups())
                ft.check_eq(capacity, math.floor(0.9 * LIMIT) - base, "stream capacity")
                ft.check_eq(accept_cap, LIMIT - ACCEPT_RESERVE, "connections accepted at most")
                ft.check(5 <= base <= 30, f"{base} descriptors open at start?")
                metrics = srv.metrics()
                ft.check_eq(ft.metric(metrics, "process_max_fds"), float(LIMIT), "process_max_fds")
                ft.check_eq(ft.metric(metrics, "freshet_stream_capacity"), float(capacity),
                            "freshet_stream_capacity")
                print(f"    {base} descriptors at start: capacity {capacity} streams, "
                      f"accepting up to {accept_cap} connections", flush=True)

            refused_before = 0

            def burst_case(n_waves, per_wave, gap, path, refusal):
                nonlocal refused_before
                t0 = time.monotonic()
                out, socks = burst(srv.port, path, n_waves, per_wave, gap)
                took = time.monotonic() - t0
                counts = collections.Counter(out)
                total = n_waves * per_wave
                print(f"    {n_waves} x {per_wave} clients: {dict(counts)} in {took:.2f}s",
                      flush=True)
                served = min(total, capacity)
                ft.check_eq(dict(counts), {k: v for k, v in
                                           (("stream", served), (refusal, total - served)) if v},
                            f"outcomes of {total} clients with capacity {capacity}")
                srv.wait_streams(served)
                refused_before += total - served
                return socks

            with ft.subtest("170 EventSources at once: every stream up to capacity, the rest "
                            "refused in the stream"):
                socks = burst_case(1, 170, 0, "/sub/burst", "in-band:fd_limit")
                close_all(socks)
                srv.wait_streams(0)

            with ft.subtest("250 EventSources at once (past the descriptor limit): capacity "
                            "served, every other client answered, refusals counted and logged"):
                paused_before = ft.metric(srv.metrics(), "freshet_accept_paused_total")
                socks = burst_case(1, 250, 0, "/sub/burst", "in-band:fd_limit")
                m = srv.metrics()
                ft.check(ft.metric(m, "freshet_accept_paused_total") > paused_before,
                         "250 clients at a limit of 200 and accepting never paused")
                ft.check_eq(ft.metric(m, "freshet_streams_refused_fd_total"),
                            float(refused_before), "freshet_streams_refused_fd_total")
                ft.check_eq(ft.metric(m, "freshet_streams_refused_in_band_total"),
                            float(refused_before), "freshet_streams_refused_in_band_total")
                srv.wait_log(r"accepting paused until connections close")
                deadline = time.monotonic() + 4
                while refusals_logged(srv) < refused_before and time.monotonic() < deadline:
                    time.sleep(0.1)
                ft.check_eq(refusals_logged(srv), refused_before,
                            "fd_limit refusals counted in the refusal log lines")
                close_all(socks)
                srv.wait_streams(0)

            with ft.subtest("paced bursts (6 waves of 50, 100 ms apart) asking for statuses: "
                            "capacity served, the rest 503 with Retry-After: 5"):
                socks = burst_case(6, 50, 0.1, "/sub/burst?refusal=status", "503 5")
                close_all(socks)
                srv.wait_streams(0)

            with ft.subtest("one at a time: exactly capacity streams, then 503 with Retry-After"):
                for _ in range(capacity):
                    s = ft.SSEStream(srv.port, "/sub/full?refusal=status")
                    ft.check_eq(s.status, 200, f"stream {len(streams) + 1} of {capacity}")
                    s.wait_retry()
                    streams.append(s)
                s = ft.SSEStream(srv.port, "/sub/full?refusal=status")
                s.close()
                err = s.response.check_error(503, "the stream past capacity")
                ft.check_eq(s.response.header("retry-after"), "5", "Retry-After of the 503")
                ft.check("connection limit" in err, "the 503 says why", err)
                s = ft.SSEStream(srv.port, "/sub/full")
                s.close()
                s.response.check_refused("fd_limit", 503, "an EventSource past capacity",
                                         retry_ms=(5000, 7500))

            with ft.subtest("/health and /metrics answer at capacity"):
                ft.check_eq(srv.health().get("streams"), capacity, "/health streams")
                m = srv.metrics()
                # The streams, and the connection asking for /metrics.
                ft.check_eq(ft.metric(m, "process_open_fds"), float(base + capacity + 1),
                            "process_open_fds")

            with ft.subtest("open streams keep flowing while new ones are refused"):
                eid = srv.publish("/pub/full", "still flowing")
                for s in (streams[0], streams[len(streams) // 2], streams[-1]):
                    ev = s.next_event(timeout=5)
                    ft.check_eq((ev.id, ev.data), (eid, "still flowing"), "event on an open stream")

            with ft.subtest("the 80% warning is logged exactly once"):
                lines = [l for l in srv.log().splitlines() if re.search(r"\bwarn\b.*80%", l)]
                ft.check_eq(len(lines), 1, "warn lines about 80% descriptor use")
                ft.check(re.search(rf"\b{LIMIT}\b", lines[0]), "the warning does not name the limit",
                         lines[0])

            with ft.subtest("silent connections past the accept cap wait; the loop does not spin; "
                            "they are accepted once room frees"):
                # Connections that never send a request: accepted up to the cap, then the rest
                # wait in the backlog (the kernel completed their handshakes).
                for _ in range(40):
                    extra.append(socket.create_connection((ft.HOST, srv.port), timeout=2))
                time.sleep(0.5)
                used = srv.fd_count()
                ft.check(used <= LIMIT - ACCEPT_RESERVE + 2,
                         f"{used} descriptors open: accepting went past its cap")
                cpu0 = srv.cpu_seconds()
                time.sleep(2.0)
                cpu = srv.cpu_seconds() - cpu0
                print(f"    {used} descriptors open; {cpu:.2f}s CPU in 2 s", flush=True)
                ft.check(cpu < 0.5, f"the server used {cpu:.2f}s of CPU in 2 s while accepting "
                                    f"was paused (a spinning loop?)")
                ft.check(srv.alive(), "the server died while accepting was paused", srv.log_tail())
                # Room frees: the waiting connections are accepted and can be served.
                for s in streams[:40]:
                    s.close()
                del streams[:40]
                for sock in extra:
                    sock.sendall(ft.build_request("GET", "/health", None, None, srv.port))
                for sock in extra:
                    sock.settimeout(10)
                    head = sock.recv(64)
                    ft.check(head.startswith(b"HTTP/1.1 200"),
                             "a connection that waited in the backlog got no answer", head)
                close_all(extra)

            with ft.subtest("after the clients leave, new streams succeed again"):
                close_all(streams)
                srv.wait_streams(0, timeout=10)
                time.sleep(1.2)  # the warning re-arms on the next housekeeping tick (<= 1 s)
                s = ft.open_stream(srv.port, "/sub/full")
                try:
                    eid = srv.publish("/pub/full", "again")
                    ev = s.next_event(timeout=5)
                    ft.check_eq((ev.id, ev.data), (eid, "again"), "event on the new stream")
                finally:
                    s.close()
                # Back under 75% and up again: a new crossing warns again, once.
                for _ in range(capacity + 1):
                    s = ft.SSEStream(srv.port, "/sub/full?refusal=status")
                    if s.status != 200:
                        s.close()
                        break
                    streams.append(s)
                time.sleep(0.3)
                lines = [l for l in srv.log().splitlines() if re.search(r"\bwarn\b.*80%", l)]
                ft.check_eq(len(lines), 2, "80% warnings after a second crossing")
        finally:
            close_all(streams)
            close_all(extra)


ft.main(run, limit=120)
