"""The access log (`access_log = {path, format}`): off by default; one line per HTTP answer
and per stream end with method, target (secret query values redacted), status, body bytes,
duration, client and transport; text lines stay one line and JSON lines stay valid JSON
whatever bytes the path holds; the file is reopened on SIGUSR1 and SIGHUP (logrotate); a path
that cannot be opened stops the start."""

import json
import os
import re
import signal
import socket
import time

import frtest as ft

TEXT_RE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) "(\S+) (\S+)" (\d{3}) '
                     r'(\d+) (\d+\.\d{3}) (http|sse|ws|poll)$')


def read_lines(path, n, timeout=5, keep=lambda lines: lines):
    """The file's lines (those keep() leaves) once there are at least n: the writer thread
    writes them soon."""
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        if os.path.exists(path):
            with open(path, "rb") as f:
                lines = keep(f.read().decode("utf-8", "replace").splitlines())
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def app_lines(lines):
    """Without the harness's own GET /health (start-up, wait_streams)."""
    return [x for x in lines if '"GET /health"' not in x and '"path":"/health"' not in x]


def started(path):
    """Lines already there once the server is up: the harness's own GET /health."""
    return len(read_lines(path, 1))


def raw_request(port, data):
    c = socket.create_connection((ft.HOST, port), timeout=5)
    c.sendall(data)
    out = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        out += chunk
    c.close()
    return out


def app_with(log_path, fmt):
    return ft.pubsub_app(f'access_log = {{ path = "{log_path}", format = "{fmt}" }},'
                         f'heartbeat = 30,')


def text_format():
    with ft.subtest("text: one line per answer and per stream end, secrets redacted"):
        d = ft.tempdir()
        path = os.path.join(d, "access.log")
        with ft.Server(app_with(path, "text")) as srv:
            n0 = started(path)
            ft.check_eq(ft.request(srv.port, "GET", "/health?token=abc123&x=1&Api%5FKey=k9&sig=s")
                        .status, 200, "GET /health")
            ft.check_eq(ft.request(srv.port, "GET", "/nowhere").status, 404, "GET /nowhere")
            first = srv.publish("/pub/t", "hello")
            srv.publish("/pub/t", "again")
            s = srv.stream("/sub/t?password=hunter2")
            s.wait_retry()
            time.sleep(0.3)
            s.close()
            srv.wait_streams(0)
            ws = ft.ws_connect(srv.port, "/sub/t?jwt=eyJ.x.y")
            ws.close()
            srv.wait_streams(0)
            p = ft.request(srv.port, "GET", ft.poll_path("/sub/t", last_id=first))
            ft.check_eq(p.status, 200, "long-poll with a backlog")
            r = ft.request(srv.port, "GET", "/health?token=abc123&x=1&Api%5FKey=k9&sig=s")
            health_len = len(r.body)
            metrics = ft.request(srv.port, "GET", "/metrics").text
            ft.promtool_check(metrics)
            ft.check_eq(ft.metric(ft.parse_metrics(metrics),
                                  "freshet_access_log_lines_dropped_total"), 0.0,
                        "access-log lines dropped")
            lines = [x for x in read_lines(path, 9, keep=app_lines) if '"GET /metrics"' not in x]
        ft.check_eq(len(lines), 8, "access-log lines (health twice, 404, two publishes, sse, "
                                   "ws, poll)")
        parsed = []
        for line in lines:
            m = TEXT_RE.match(line)
            ft.check(m is not None, "a line is not in the text format", line)
            parsed.append(m.groups())
        text = "\n".join(lines)
        for secret in ("abc123", "hunter2", "eyJ.x.y", "k9", "=s "):
            ft.check(secret not in text, f"the secret {secret!r} is in the access log", text)
        by_target = {g[3].split("?")[0] + ":" + g[7]: g for g in parsed}  # the last of each
        h = by_target.get("/health:http")
        ft.check(h is not None, "no line for GET /health", text)
        ft.check_eq((h[1], h[2], h[3], h[4], int(h[5])),
                    ("127.0.0.1", "GET",
                     "/health?token=REDACTED&x=1&Api%5FKey=REDACTED&sig=REDACTED", "200",
                     health_len), "the /health line (client, method, target, status, bytes)")
        ft.check_eq(by_target["/nowhere:http"][4], "404", "status of /nowhere")
        pub = by_target["/pub/t:http"]
        ft.check_eq((pub[2], pub[4]), ("POST", "201"), "the publish line (method, status)")
        sse = by_target["/sub/t:sse"]
        ft.check_eq((sse[3], sse[4]), ("/sub/t?password=REDACTED", "200"), "the SSE line")
        ft.check(float(sse[6]) >= 300, "the SSE stream's duration is below the 0.3 s it was open",
                 sse)
        ft.check(int(sse[5]) > 0, "the SSE stream's bytes", sse)
        ft.check_eq((by_target["/sub/t:ws"][3], by_target["/sub/t:ws"][4]),
                    ("/sub/t?jwt=REDACTED", "101"), "the WebSocket line (target, status)")
        poll = by_target["/sub/t:poll"]
        ft.check_eq((poll[4], int(poll[5])), ("200", len(p.body)), "the poll line (status, bytes)")

    with ft.subtest("text: hostile bytes in the target stay inside one line"):
        d = ft.tempdir()
        path = os.path.join(d, "access.log")
        with ft.Server(app_with(path, "text")) as srv:
            n0 = started(path)
            raw_request(srv.port, b'GET /a\xff\xc3b\tc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            lines = read_lines(path, n0 + 1)[n0:]
        ft.check_eq(len(lines), 1, "lines for one request")
        ft.check(TEXT_RE.match(lines[0]) is not None, "the line is not in the text format", lines)
        ft.check('"GET /a\\xff\\xc3b' in lines[0], "escapes of the hostile bytes", lines)


def json_format():
    with ft.subtest("json: every line parses, invalid UTF-8 becomes U+FFFD, secrets redacted"):
        d = ft.tempdir()
        path = os.path.join(d, "access.json")
        with ft.Server(app_with(path, "json")) as srv:
            n0 = started(path)
            raw_request(srv.port, b"GET /nope/\xff\xfe\xc3?password=hunter2&q=%22 HTTP/1.1\r\n"
                                  b"Host: x\r\nConnection: close\r\n\r\n")
            with ft.open_stream(srv.port, "/sub/j?auth=zzz") as s:
                s.wait_retry()
            srv.wait_streams(0)
            lines = read_lines(path, 2, keep=app_lines)
        ft.check_eq(len(lines), 2, "lines (the 404 and the stream)")
        objs = []
        for line in lines:
            try:
                objs.append(json.loads(line))
            except ValueError as exc:
                ft.fail(f"an access-log line is not JSON: {exc}", line)
        first = objs[0]
        ft.check_eq(sorted(first), ["bytes", "client", "duration_ms", "method", "path", "status",
                                    "transport", "ts"], "keys of a JSON line")
        ft.check_eq((first["method"], first["status"], first["transport"], first["client"]),
                    ("GET", 404, "http", "127.0.0.1"), "the 404 line")
        ft.check_eq(first["path"], "/nope/\ufffd\ufffd\ufffd?password=REDACTED&q=%22",
                    "path with invalid UTF-8 and a redacted password")
        ft.check_eq((objs[1]["path"], objs[1]["status"], objs[1]["transport"]),
                    ("/sub/j?auth=REDACTED", 200, "sse"), "the stream line")
        ft.check(isinstance(objs[1]["duration_ms"], float), "duration_ms is a number", objs[1])
        ft.check("hunter2" not in "".join(lines) and "zzz" not in "".join(lines),
                 "a secret is in the log", lines)


def reopen_and_errors():
    for sig in (signal.SIGUSR1, signal.SIGHUP):
        with ft.subtest(f"{sig.name} reopens the file (logrotate moved it away)"):
            d = ft.tempdir()
            path = os.path.join(d, "access.log")
            with ft.Server(app_with(path, "text")) as srv:
                n0 = started(path)
                ft.request(srv.port, "GET", "/before")
                ft.check_eq(len(read_lines(path, n0 + 1)), n0 + 1, "a line before the rotation")
                os.rename(path, path + ".1")
                mark = srv.log_size()
                srv.send_signal(sig)
                srv.wait_log(rf"{sig.name}: reopening the access log", start=mark)
                time.sleep(0.2)
                ft.request(srv.port, "GET", "/after")
                new = read_lines(path, 1)
                old = read_lines(path + ".1", 1)
            ft.check(len(new) == 1 and "/after" in new[0], "the new file's lines", new)
            ft.check(len(old) == n0 + 1 and "/before" in old[-1], "the rotated file's lines", old)

    with ft.subtest("off by default: no access lines anywhere"):
        with ft.Server(ft.pubsub_app()) as srv:
            ft.request(srv.port, "GET", "/health?token=t")
            time.sleep(0.2)
            log = srv.log()
        ft.check('"GET /health' not in log and "token=t" not in log,
                 "an access line without access_log", log[-2000:])

    with ft.subtest("a path that cannot be opened stops the start (exit 1)"):
        bad = os.path.join(ft.tempdir(), "no", "such", "dir", "access.log")
        p = ft.run_cli([app_with(bad, "text").app, "--listen", f"{ft.HOST}:{ft.free_port()}"])
        ft.check_eq(p.returncode, 1, "exit code")
        ft.check(f"access_log: cannot open {bad}" in p.stderr.decode(), "stderr",
                 p.stderr.decode())

    with ft.subtest("--check names a bad access_log setting"):
        app = ft.pubsub_app('access_log = { path = "x.log", format = "xml" },')
        p = ft.run_cli(["--check", app.app])
        ft.check_eq(p.returncode, 1, "exit code of --check")
        ft.check('access_log.format must be "text" or "json"' in p.stderr.decode(), "stderr",
                 p.stderr.decode())


def run():
    text_format()
    json_format()
    reopen_and_errors()


ft.main(run, limit=90)
