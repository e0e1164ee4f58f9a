"""freshet.http.request over https:// against real HTTPS backends (tests/integration/backend.py
with Python's ssl), with a CA and server certificates the openssl command makes for the test:
GET and POST with `ca =` (absolute, and relative to the app file); without the CA, or with a
certificate for another name, the call comes back nil, "certificate verify failed: …" and the
script decides; `verify = false` takes any certificate; keep-alive over TLS (several calls,
one connection and one handshake); a backend that never answers the handshake is
nil, "timeout" within the call's timeout; https to a cleartext server is "tls handshake
failed: wrong version number", http to a TLS one "connection closed"; a client that leaves mid-handshake cancels the call
(the backend sees the connection close at once) and, under ASan, nothing leaks."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time

import frtest as ft
from backend import Backend, Reply


def openssl(*args):
    exe = shutil.which("openssl")
    ft.check(exe is not None, "the openssl command is missing (scripts/setup.sh installs it)")
    r = subprocess.run([exe, *args], capture_output=True, timeout=30)
    ft.check(r.returncode == 0, f"openssl {args[0]} failed", r.stderr[-800:])


def make_pki(d):
    """A CA, and two server certificates it signs: one for 127.0.0.1 and localhost, one for
    wrong.example only. Returns paths: ca, good (cert, key), wrong (cert, key)."""
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca-key.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-sha256", "-days", "2", "-keyout", ca_key, "-out", ca,
            "-subj", "/CN=freshet test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, san):
        cert, key = os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}-key.pem")
        csr, ext = os.path.join(d, f"{name}.csr"), os.path.join(d, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-sha256", "-days", "2", "-extfile", ext, "-out", cert)
        return cert, key

    return ca, leaf("backend", "DNS:localhost,IP:127.0.0.1"), leaf("wrong", "DNS:wrong.example")


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def handler(req):
    if req.path.startswith("/echo"):
        return Reply(200, json.dumps({"method": req.method, "path": req.path,
                                      "host": req.headers.get("host"),
                                      "body": req.body.decode()}).encode())
    return Reply(404, b"no such thing")


class Staller:
    """Accepts TCP connections on 127.0.0.1 and never says a word (a TLS server stuck before
    its ServerHello), or with `answer`, answers the first bytes with it and closes (a cleartext
    server meeting a ClientHello). Records when each connection was closed by its peer."""

    def __init__(self, answer=None):
        self.answer = answer
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.hellos = 0
        self.closed_at = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                s, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._hold, args=(s,), daemon=True).start()

    def _hold(self, s):
        with s:
            first = True
            while True:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.closed_at.append(time.monotonic())
                    return
                if first and data[:1] == b"\x16":  # a TLS handshake record: the ClientHello
                    self.hellos += 1
                first = False
                if self.answer:
                    s.sendall(self.answer)
                    return

    def close(self):
        self.listener.close()


APP = """
local freshet = require "freshet"
local app = freshet.app {
  timeouts = { hook = 4 },
}
app:stream("/sub/:topics", "routes/sub.lua")
app:stream("/call", "routes/call.lua")
return app
"""

# auth makes the call the query describes and answers what came back, as an error body.
CALL = """
    local freshet = require "freshet"
    local route = {}
    function route.auth(req)
      local q = req.query
      local res, err
      for _ = 1, tonumber(q.n or "1") do
        res, err = freshet.http.request {
          url = q.url, method = q.method, body = q.body, ca = q.ca,
          verify = q.verify ~= "0", timeout = tonumber(q.timeout) }
        if not res then break end
      end
      if not res then return nil, 502, "backend: " .. err end
      return nil, 418, ("%d %s"):format(res.status, res.body)
    end
    function route.topics() return { "never" } end
    return route
"""


def call(srv, **query):
    from urllib.parse import urlencode
    resp = srv.get("/call?" + urlencode(query), headers={"Accept": "text/event-stream"},
                   timeout=10)
    return resp.status, resp.json().get("error", "")


def run():
    pki = ft.tempdir("freshet-pki-")
    ca, (good_cert, good_key), (wrong_cert, wrong_key) = make_pki(pki)
    with open(ca, "rb") as f:
        ca_bytes = f.read()
    app = ft.pubsub_app(files={"app.lua": APP.encode(), "routes/call.lua": CALL,
                               "certs/ca.pem": ca_bytes})
    staller = Staller()
    cleartext = Staller(answer=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
    try:
        with Backend(handler, tls=server_context(good_cert, good_key)) as good, \
             Backend(handler, tls=server_context(wrong_cert, wrong_key)) as wrong, \
             ft.Server(app) as srv:
            checks(srv, ca, good, wrong, staller, cleartext)
    finally:
        staller.close()
        cleartext.close()


def checks(srv, ca, good, wrong, staller, cleartext):
    with ft.subtest("GET and POST over https with ca =: the backend reads the request"):
        status, text = call(srv, url=good.url("/echo?x=1"), ca=ca)
        ft.check_eq(status, 418, f"the hook's answer ({text})")
        code, _, body = text.partition(" ")
        ft.check_eq(code, "200", f"the backend's status ({text})")
        echo = json.loads(body)
        ft.check_eq((echo["method"], echo["path"]), ("GET", "/echo?x=1"), "request line")
        ft.check_eq(echo["host"], f"127.0.0.1:{good.port}", "Host header")
        status, text = call(srv, url=good.url("/echo"), method="POST", body="over tls", ca=ca)
        echo = json.loads(text.partition(" ")[2])
        ft.check_eq((echo["method"], echo["body"]), ("POST", "over tls"), "a POST and its body")

    with ft.subtest("ca relative to the app file's directory"):
        status, text = call(srv, url=good.url("/echo"), ca="certs/ca.pem")
        ft.check_eq((status, text[:4]), (418, "200 "), f"trusted through certs/ca.pem ({text})")

    with ft.subtest("keep-alive over TLS: several calls, one connection"):
        before = good.accepted
        for _ in range(5):
            ft.check_eq(call(srv, url=good.url("/echo"), ca=ca)[0], 418, "a call")
        status, text = call(srv, url=good.url("/echo"), ca=ca, n="4")
        ft.check_eq(status, 418, f"four calls in one hook ({text})")
        ft.check_eq(good.accepted - before, 0,
                    "connections (and handshakes) the backend saw for 9 calls after the first")

    with ft.subtest("without the CA: nil, 'certificate verify failed: …' and the script answers"):
        status, text = call(srv, url=good.url("/echo"))
        ft.check_eq(status, 502, f"the script's answer ({text})")
        ft.check(text.startswith("backend: certificate verify failed: "), "the error", text)
        ft.check("unable to get local issuer certificate" in text, "OpenSSL's reason", text)

    with ft.subtest("a certificate for another name is refused, even with its CA"):
        before = len(wrong.requests)
        status, text = call(srv, url=wrong.url("/echo"), ca=ca)
        ft.check_eq((status, text), (502, "backend: certificate verify failed: IP address mismatch"),
                    "an address the certificate does not carry")
        ft.check_eq(len(wrong.requests), before, "no request reached the backend")
        status, text = call(srv, url=wrong.url("/echo", host="localhost"), ca=ca)
        ft.check_eq((status, text), (502, "backend: certificate verify failed: hostname mismatch"),
                    "a name the certificate does not carry")

    with ft.subtest("verify = false takes any certificate, and is pooled apart"):
        status, text = call(srv, url=wrong.url("/echo"), verify="0")
        ft.check_eq((status, text[:4]), (418, "200 "), f"an unchecked call ({text})")
        status, text = call(srv, url=wrong.url("/echo"), ca=ca)
        ft.check_eq(status, 502, "a checked call after it does not ride its connection")
        ft.check("certificate verify failed" in text, "refused again", text)

    with ft.subtest("https to a cleartext backend, http to a TLS one: errors, not answers"):
        status, text = call(srv, url=f"https://127.0.0.1:{cleartext.port}/x", timeout="2000")
        ft.check_eq(status, 502, f"https to cleartext ({text})")
        ft.check(text.startswith("backend: tls handshake failed: "), "a handshake failure", text)
        print(f"    https to a cleartext server: {text}", flush=True)
        status, text = call(srv, url=good.url("/echo").replace("https://", "http://"),
                            timeout="2000")
        ft.check(text in ("backend: connection closed", "backend: connection reset"),
                 "a TLS server closes on cleartext", text)

    with ft.subtest("a backend that stalls the handshake: nil, 'timeout' within the call's timeout"):
        started = time.monotonic()
        status, text = call(srv, url=f"https://127.0.0.1:{staller.port}/x", ca=ca, timeout="300")
        took = time.monotonic() - started
        ft.check_eq((status, text), (502, "backend: timeout"), "the call's deadline")
        ft.check(took < 2.0, f"the 300 ms timeout answered after {took:.2f}s")
        ft.check(staller.hellos >= 1, "the backend got a ClientHello")

    with ft.subtest("a client that leaves mid-handshake: the call is cancelled at once"):
        hellos, closed = staller.hellos, len(staller.closed_at)
        path = "/call?url=" + f"https://127.0.0.1:{staller.port}/x".replace(":", "%3A")
        with ft.Conn(srv.port) as c:
            c.send(ft.build_request("GET", path, {"Accept": "text/event-stream"}, None, srv.port))
            deadline = time.monotonic() + 3
            while staller.hellos == hellos and time.monotonic() < deadline:
                time.sleep(0.01)
            ft.check(staller.hellos > hellos, "the hook's call sent its ClientHello")
            left = time.monotonic()
        deadline = time.monotonic() + 3
        while len(staller.closed_at) == closed and time.monotonic() < deadline:
            time.sleep(0.01)
        ft.check(len(staller.closed_at) > closed, "the backend connection was closed")
        ft.check(staller.closed_at[-1] - left < 1.0,
                 f"closed {staller.closed_at[-1] - left:.2f}s after the client left "
                 "(the hook's own limit is 4 s)")
        ft.check_eq(srv.get("/health").status, 200, "the server after the cancelled call")


if __name__ == "__main__":
    ft.main(run, limit=90)
