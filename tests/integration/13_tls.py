"""Native TLS: `tls = { cert, key }` makes the listener HTTPS. curl over https (--http1.1 and its
default ALPN offer, -k and --cacert): headers, events, resume with Last-Event-ID, publish,
static, /health, /metrics; ALPN and protocol versions; wss; --check and the start refuse files
that do not load; SIGHUP picks up a new certificate for new connections while open ones keep
theirs, and a broken one keeps the old pair (logged, counted); garbage instead of a ClientHello
and a handshake that stalls are closed while the worker goes on serving; a session ticket from
one worker resumes on another. Each test makes its certificates with openssl in a temp dir.

The suites of streams, replay, WebSocket, transports, slow consumers and timeouts also run over
TLS as integration.tls.* (tests/integration/CMakeLists.txt)."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import frtest as ft

CURL = shutil.which("curl")

ROUTES = """
    app:static("/files", "public")
"""


def tls_app(cert_rel="cert.pem", key_rel="key.pem", extra=""):
    """The pubsub app over HTTPS with cert.pem / key.pem of its own directory."""
    settings = f"""
        heartbeat = 30,
        timeouts = {{ headers = 1 }},
        tls = {{ cert = "{cert_rel}", key = "{key_rel}" }},
        {extra}
    """
    app = ft.pubsub_app(settings, ROUTES, files={"public/hello.txt": b"hello over tls\n"})
    cert, key = ft.make_cert(app.path, cn="first")
    os.replace(cert, app.file("cert.pem"))
    os.replace(key, app.file("key.pem"))
    return app


curl = ft.curl


def peer_der(port, alpn=("http/1.1",)):
    """The certificate a new connection is shown (DER)."""
    with socket.create_connection((ft.HOST, port), timeout=5) as raw:
        ctx = ft.client_tls_context(alpn=alpn)
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def failed_handshakes(srv):
    return ft.metric(srv.metrics(), "freshet_tls_handshakes_total", outcome="failed")


def client_hello():
    """The bytes of a real ClientHello, from Python's TLS client on memory BIOs."""
    ctx = ft.client_tls_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def closed_within(sock, seconds):
    """True when the server closes sock (EOF, reset or alert) within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def check_cases():
    with ft.subtest("--check loads the certificate and key; a file that does not load fails it"):
        app = tls_app()
        r = ft.run_cli(["--check", app.app])
        err = r.stderr.decode()
        ft.check_eq(r.returncode, 0, f"--check of a good TLS app ({err})")
        ft.check("(https)" in err, "--check does not say the listener is HTTPS", err)
        app.write({"key.pem": b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"})
        r = ft.run_cli(["--check", app.app])
        err = r.stderr.decode()
        ft.check_eq(r.returncode, 1, f"--check with a broken key ({err})")
        ft.check("cannot load the key" in err and app.file("key.pem") in err,
                 "the error names the key file", err)
        os.remove(app.file("key.pem"))
        r = ft.run_cli(["--check", app.app])
        err = r.stderr.decode()
        ft.check(r.returncode == 1 and "cannot read the key" in err and "No such file" in err,
                 "a missing key file is named", err)
        other_cert, other_key = ft.make_cert(app.path, cn="other", name="other")
        app.write({"key.pem": open(other_key, "rb").read()})
        r = ft.run_cli(["--check", app.app])
        err = r.stderr.decode()
        ft.check(r.returncode == 1 and "does not match the certificate" in err,
                 "a key of another certificate is refused", err)

    with ft.subtest("tls settings: unknown sub-keys and missing files are errors naming the line"):
        app = ft.AppDir({"app.lua": """
            local freshet = require "freshet"

            local app = freshet.app { tls = { cert = "c.pem", key = "k.pem", ciphers = "ALL" } }
            app:stream("/sub/:topics", "routes/sub.lua")
            return app
        """, "routes/sub.lua": ft.SUB_ROUTE})
        r = ft.run_cli(["--check", app.app])
        err = r.stderr.decode()
        ft.check(r.returncode != 0 and f"{app.app}:3:" in err and "tls: unknown key 'ciphers'" in err,
                 "an unknown tls key is an error at its line", err)
        app.write({"app.lua": """
            local freshet = require "freshet"
            local app = freshet.app { tls = { cert = "c.pem" } }
            app:stream("/sub/:topics", "routes/sub.lua")
            return app
        """})
        r = ft.run_cli(["--check", app.app])
        err = r.stderr.decode()
        ft.check(r.returncode != 0 and f"{app.app}:2:" in err and "tls.key is missing" in err,
                 "tls without a key is an error at its line", err)

    with ft.subtest("the server does not start when the certificate does not load"):
        app = tls_app()
        app.write({"cert.pem": b"garbage\n"})
        port = ft.free_port()
        r = ft.run_cli([app.app, "--listen", f"{ft.HOST}:{port}"], timeout=10)
        err = r.stderr.decode()
        ft.check(r.returncode != 0, "the server ran with a broken certificate", err)
        ft.check("cannot load the certificate" in err and app.file("cert.pem") in err,
                 "the start error names the certificate", err)
        ft.check("listening" not in err, "the server listened before refusing", err)


def curl_cases(srv, app):
    cert = app.file("cert.pem")
    base = srv.url()

    with ft.subtest("curl --http1.1 --cacert: /health, /metrics, static, publish"):
        r = curl(["--http1.1", "--cacert", cert, "-w", "\\n%{http_code} %{http_version} "
                  "%{ssl_verify_result}", f"https://localhost:{srv.port}/health"])
        out = r.stdout.decode()
        ft.check_eq(r.returncode, 0, f"curl /health ({r.stderr.decode()})")
        ft.check(out.endswith("\n200 1.1 0"), "/health over https, certificate verified", out)
        r = curl(["-k", "--http1.1", f"{base}/metrics"])
        ft.check(b"freshet_tls_handshakes_total{outcome=\"ok\"}" in r.stdout,
                 "/metrics over https counts handshakes", r.stdout[-500:])
        r = curl(["-k", "--http1.1", f"{base}/files/hello.txt"])
        ft.check_eq(r.stdout, b"hello over tls\n", "a static file over https")
        r = curl(["-k", "--http1.1", "-X", "POST", "--data-binary", "by curl", f"{base}/pub/c"])
        ft.check(b'"id"' in r.stdout, "publish over https", r.stdout)

    with ft.subtest("curl's default ALPN offer (h2, http/1.1) gets HTTP/2"):
        r = curl(["-k", "-o", "/dev/null", "-w", "%{http_version}", f"{base}/health"])
        ft.check_eq(r.stdout.decode(), "2", "protocol chosen for curl without --http1.1")

    with ft.subtest("curl -N over https: headers, events, resume with Last-Event-ID"):
        ids = [srv.publish("/pub/resume", f"event {i}") for i in range(3)]
        proc = subprocess.Popen([CURL, "-sSN", "--http1.1", "--cacert", cert, "-D", "-",
                                 "-H", f"Last-Event-ID: {ids[0]}", "--max-time", "3",
                                 f"https://localhost:{srv.port}/sub/resume"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            srv.wait_streams(1)
            live = srv.publish("/pub/resume", "live one")
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        head, _, body = out.partition(b"\r\n\r\n")
        ft.check(head.startswith(b"HTTP/1.1 200"), "status line", head)
        ft.check(b"Content-Type: text/event-stream" in head, "SSE content type", head)
        events = ft.parse_sse(body)
        ft.check_eq([(e.id, e.data) for e in events],
                    [(ids[1], "event 1"), (ids[2], "event 2"), (live, "live one")],
                    "the events after Last-Event-ID, then the live one")

    with ft.subtest("a client that checks against another CA refuses the server"):
        other, _ = ft.make_cert(cn="someone else", name="stranger")
        r = curl(["--http1.1", "--cacert", other, f"https://localhost:{srv.port}/health"])
        ft.check_eq(r.returncode, 60, f"curl exit code ({r.stderr.decode()})")


def protocol_cases(srv):
    with ft.subtest("ALPN: a client without ALPN speaks HTTP/1.1; one offering only h2 gets it; one "
                    "offering neither is refused"):
        with socket.create_connection((ft.HOST, srv.port), timeout=5) as raw:
            with ft.client_tls_context(alpn=()).wrap_socket(raw) as s:
                ft.check(s.selected_alpn_protocol() is None, "ALPN chosen without an offer")
                conn = ft.Conn(srv.port, sock=s)
                ft.check_eq(conn.request("GET", "/health").status, 200, "/health without ALPN")
        with socket.create_connection((ft.HOST, srv.port), timeout=5) as raw:
            with ft.client_tls_context(alpn=("h2",)).wrap_socket(raw) as s:
                ft.check_eq(s.selected_alpn_protocol(), "h2", "ALPN chosen for an h2-only offer")
        before = failed_handshakes(srv)
        with socket.create_connection((ft.HOST, srv.port), timeout=5) as raw:
            try:
                with ft.client_tls_context(alpn=("spdy/3.1", "http/1.0")).wrap_socket(raw):
                    ft.fail("the handshake succeeded with no protocol in common")
            except ssl.SSLError as exc:
                ft.check("NO_APPLICATION_PROTOCOL" in str(exc).upper() or "alert" in str(exc).lower(),
                         "the refusal is an alert", str(exc))
        ft.check_eq(failed_handshakes(srv), before + 1, "failed handshakes after the client with no protocol in common")

    with ft.subtest("TLS 1.2 and 1.3 are served; TLS 1.1 is refused"):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = ft.client_tls_context()
            ctx.minimum_version = ctx.maximum_version = version
            with socket.create_connection((ft.HOST, srv.port), timeout=5) as raw:
                with ctx.wrap_socket(raw) as s:
                    ft.check_eq(s.version(), version.name.replace("v1_", "v1."), "version")
                    ft.check(s.compression() is None, "compression is on", s.compression())
                    conn = ft.Conn(srv.port, sock=s)
                    ft.check_eq(conn.request("GET", "/health").status, 200, f"/health {version}")
        openssl = shutil.which("openssl")
        if openssl:
            before = failed_handshakes(srv)
            r = subprocess.run([openssl, "s_client", "-connect", f"{ft.HOST}:{srv.port}",
                                "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                               input=b"", capture_output=True, timeout=10)
            ft.check(r.returncode != 0, "a TLS 1.1 handshake succeeded", r.stdout[-500:])
            ft.check_eq(failed_handshakes(srv), before + 1, "the server refused TLS 1.1 itself")

    with ft.subtest("wss: a WebSocket over TLS gets events"):
        ws = ft.ws_connect(srv.port, "/sub/wss")
        try:
            eid = srv.publish("/pub/wss", "over wss")
            ev = ws.events(1)[0]
            ft.check_eq((ev["id"], ev["data"]), (eid, "over wss"), "the event over wss")
        finally:
            ws.close()

    with ft.subtest("long-poll over TLS"):
        before = srv.publish("/pub/poll", "seen")
        eid = srv.publish("/pub/poll", "polled")
        resp = ft.request(srv.port, "GET", ft.poll_path("/sub/poll", before))
        ft.check_eq(resp.status, 200, f"long-poll status ({resp.text[:200]})")
        ft.check_eq([(e.id, e.data) for e in ft.parse_sse(resp.body)], [(eid, "polled")],
                    "the long-poll answer")


def hostile_cases(srv):
    with ft.subtest("garbage instead of a ClientHello is closed; the worker keeps serving"):
        before = failed_handshakes(srv)
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096),
                     b"\x16\x03\x01\x00\x05hello" + os.urandom(64)):
            with socket.create_connection((ft.HOST, srv.port), timeout=5) as s:
                s.sendall(junk)
                ft.check(closed_within(s, 3), "the server kept a connection that sent garbage",
                         junk[:40])
        ft.check_eq(failed_handshakes(srv), before + 3, "failed handshakes counted")
        ft.check_eq(srv.health()["status"], "ok", "/health after the garbage")

    with ft.subtest("a handshake that stalls is closed after timeouts.headers"):
        hello = client_hello()
        ft.check(len(hello) > 100, "a ClientHello to cut", len(hello))
        before = failed_handshakes(srv)
        mark = srv.log_size()
        started = time.monotonic()
        with socket.create_connection((ft.HOST, srv.port), timeout=5) as half, \
                socket.create_connection((ft.HOST, srv.port), timeout=5) as silent:
            half.sendall(hello[:len(hello) // 2])
            # Meanwhile others are served.
            ft.check_eq(srv.health()["status"], "ok", "/health while handshakes stall")
            ft.check(closed_within(half, 4), "a half ClientHello kept the connection open")
            ft.check(closed_within(silent, 2), "a silent connection was kept open")
        took = time.monotonic() - started
        ft.check(0.8 <= took <= 4, f"the stalled handshakes were closed after {took:.2f}s "
                                   "(timeouts.headers = 1)")
        srv.wait_log(r'"reason":"timeout"', start=mark)
        ft.check_eq(failed_handshakes(srv), before + 2, "stalled handshakes counted as failed")


def reload_cases(srv, app):
    with ft.subtest("SIGHUP: a new certificate for new connections; open ones keep theirs"):
        ft.check_eq(peer_der(srv.port), der_of(app.file("cert.pem")), "the first certificate")
        old = ft.open_stream(srv.port, "/sub/hup")
        cert, key = ft.make_cert(app.path, cn="second", name="second")
        os.replace(cert, app.file("cert.pem"))
        os.replace(key, app.file("key.pem"))
        mark = srv.log_size()
        srv.send_signal(signal.SIGHUP)
        srv.wait_log(r"reloaded the certificate", start=mark)
        ft.check_eq(peer_der(srv.port), der_of(app.file("cert.pem")),
                    "a new connection after SIGHUP sees the new certificate")
        eid = srv.publish("/pub/hup", "after the reload")
        ev = old.next_event()
        ft.check_eq((ev.id, ev.data), (eid, "after the reload"),
                    "a stream opened before the reload goes on")
        old.close()

    with ft.subtest("SIGHUP with a broken certificate keeps the old pair (logged, counted)"):
        good = der_of(app.file("cert.pem"))
        fails = ft.metric(srv.metrics(), "freshet_reload_failures_total")
        app.write({"cert.pem": b"-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"})
        mark = srv.log_size()
        srv.send_signal(signal.SIGHUP)
        line = srv.wait_log(r"reload failed, keeping the old certificate and key: ([^\n]*)",
                            start=mark)
        ft.check(app.file("cert.pem") in line.group(1), "the log line names the file", line.group(0))
        srv.wait_log(r"reloaded \S*app\.lua", start=mark)  # the scripts still reload
        ft.check_eq(ft.metric(srv.metrics(), "freshet_reload_failures_total"), fails + 1,
                    "freshet_reload_failures_total")
        ft.check_eq(peer_der(srv.port), good, "new connections keep the last good certificate")
        ft.check_eq(srv.health()["status"], "ok", "/health after the failed reload")


def resume_cases():
    with ft.subtest("a session ticket from one worker resumes on the others"):
        app = tls_app(extra="workers = 2,")
        with ft.Server(app, tls=True) as srv:
            ctx = ft.client_tls_context()
            session = None
            reused = []
            for i in range(8):
                with socket.create_connection((ft.HOST, srv.port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, session=session) as s:
                        conn = ft.Conn(srv.port, sock=s)
                        resp = conn.request("GET", "/health", {"Connection": "close"})
                        ft.check_eq(resp.status, 200, "/health")
                        if session is None:
                            session = s.session  # the ticket arrived with the answer
                        else:
                            reused.append(s.session_reused)
            ft.check(session is not None, "no session to resume")
            ft.check(all(reused), "a connection was not resumed", reused)


def run():
    check_cases()
    app = tls_app()
    # The harness's clients check no certificate (it changes on SIGHUP); curl checks it.
    with ft.Server(app, tls=True) as srv:
        curl_cases(srv, app)
        protocol_cases(srv)
        hostile_cases(srv)
        reload_cases(srv, app)
    resume_cases()


ft.main(run, limit=100)
