"""Helpers for freshet's integration tests: run the real binary and talk to it over raw sockets.

Standard library only. A test is a plain script:

    import frtest as ft

    def run():
        with ft.subtest("health answers"):
            ...
            ft.check(cond, "what went wrong", context)

    ft.main(run)

`check` raises `Failure`; `subtest` records a failure and lets the script go on with the next
subtest; `main` prints a summary, stops leftover servers, removes temp dirs and exits non-zero
when anything failed.

TLS: `Server(app, tls=True)` runs an app whose settings hold `tls = {...}`; with FRESHET_TLS=1
in the environment every Server runs its app over HTTPS (a certificate made with openssl for
the test process). Either way every client helper here (Conn, request, SSEStream, WSClient,
small_rcvbuf_socket, StreamSwarm) speaks TLS to that server's port, so a test written for
cleartext runs unchanged over TLS.
"""

import codecs
import contextlib
import ctypes
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("FRESHET_ROOT") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("FRESHET_BIN") or os.path.join(ROOT, "build", "freshet")
SANITIZED = os.environ.get("FRESHET_SANITIZED", "0") == "1"
# Every Server speaks HTTPS (see the module's comment).
TLS = os.environ.get("FRESHET_TLS", "0") == "1"
HOST = "127.0.0.1"
BENCH_APP = os.path.join(ROOT, "scripts", "bench", "app.lua")
CHAT_APP = os.path.join(ROOT, "scripts", "examples", "chat", "app.lua")

ID_RE = re.compile(r"^[0-9]+-[0-9]+$")


# ----------------------------------------------------------------------------------------------
# Failures and reporting


class Failure(AssertionError):
    """A check that did not hold."""


class Deadline(BaseException):
    """The script ran past its time limit (BaseException so no subtest swallows it)."""


# What a read raises when the server ended the connection: a reset, or over TLS an alert or a
# close without close_notify. Catch it as `except ft.GONE:` where a test reads a raw socket.
GONE = (ConnectionResetError, ssl.SSLError)

_failures = []
_live_servers = []
_cleanups = []


def _show(value, limit=3000):
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more chars)"
    return text


def check(cond, msg, context=None):
    if not cond:
        if context is not None:
            msg = f"{msg}\n    context: {_show(context)}"
        raise Failure(msg)


def check_eq(actual, expected, msg):
    if actual != expected:
        raise Failure(f"{msg}\n    expected: {_show(expected)}\n    actual:   {_show(actual)}")


def fail(msg, context=None):
    check(False, msg, context)


def _indent(text, prefix="    "):
    return "\n".join(prefix + line for line in text.splitlines())


def _record(name, text):
    _failures.append(name)
    print(f"[ FAIL ] {name}\n{_indent(text)}", flush=True)
    for srv in list(_live_servers):
        print(f"    --- server log ({srv.describe()}), last lines ---", flush=True)
        print(_indent(srv.log_tail(40), "    | "), flush=True)
    for rs in list(_live_redis):
        print(f"    --- redis log ({rs.describe()}), last lines ---", flush=True)
        print(_indent(rs.log_tail(15), "    | "), flush=True)


@contextlib.contextmanager
def subtest(name):
    print(f"[ RUN  ] {name}", flush=True)
    started = time.monotonic()
    try:
        yield
    except Failure as exc:
        _record(name, str(exc))
    except Exception:  # a broken helper or an unexpected socket error is a failure too
        _record(name, traceback.format_exc())
    else:
        print(f"[  OK  ] {name} ({time.monotonic() - started:.2f}s)", flush=True)


def main(fn, limit=60):
    """Runs fn() with a hard time limit and exits 0 only if nothing failed."""
    name = os.path.basename(sys.argv[0])

    def on_alarm(signum, frame):
        raise Deadline(f"{name} exceeded its {limit}s limit")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    started = time.monotonic()
    try:
        fn()
    except Failure as exc:
        _record(name, str(exc))
    except Deadline as exc:
        _record(name, f"{exc}\n{traceback.format_exc()}")
    except Exception:
        _record(name, traceback.format_exc())
    finally:
        signal.alarm(0)
        for srv in list(_live_servers):
            srv.kill()
        for cleanup in reversed(_cleanups):
            cleanup()
    took = time.monotonic() - started
    if _failures:
        print(f"{name}: {len(_failures)} failed ({took:.1f}s): {', '.join(_failures)}", flush=True)
        sys.exit(1)
    print(f"{name}: all passed ({took:.1f}s)", flush=True)
    sys.exit(0)


def load_script(filename):
    """Imports another test script of this folder without running it (its module-level main()
    is a no-op while it loads), so a test can reuse its cases and helpers."""
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "script_" + filename.split(".")[0], os.path.join(here, filename))
    module = importlib.util.module_from_spec(spec)
    global main
    real_main = main
    main = lambda *a, **k: None  # noqa: E731
    try:
        spec.loader.exec_module(module)
    finally:
        main = real_main
    return module


def build_lua_modules(tmp, mods):
    """Builds freshet/<mod>.so under tmp for each of mods ("native", "crypto") from the
    rockspec's source lists, as tests/integration/16_busted.sh does, so that freshet.test runs
    under a plain luajit with LUA_CPATH="<tmp>/?.so;;"."""
    for tool in ("luajit", "cc", "pkg-config"):
        check(shutil.which(tool), f"'{tool}' is not installed (scripts/setup.sh installs it)")
    cflags = subprocess.run(["pkg-config", "--cflags", "luajit"], capture_output=True,
                            text=True, check=True).stdout.split()
    os.makedirs(os.path.join(tmp, "freshet"), exist_ok=True)
    for mod in mods:
        args = subprocess.run(["luajit", os.path.join(ROOT, "tests/integration/rock_cmodule.lua"),
                               ROOT, f"freshet.{mod}"], capture_output=True, text=True)
        check(args.returncode == 0, f"cannot read freshet.{mod}'s sources from the rockspec",
              args.stderr)
        cc = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                             *cflags, *args.stdout.splitlines(), "-o",
                             os.path.join(tmp, "freshet", f"{mod}.so")],
                            capture_output=True, text=True)
        check(cc.returncode == 0, f"cannot build freshet.{mod} as a Lua module", cc.stderr)


def require_file(path, what):
    check(os.path.isfile(path), f"{what} not found at {path}")


# ----------------------------------------------------------------------------------------------
# Ports and app directories


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def listener(backlog=16):
    """A TCP socket listening on a free port of HOST (for test-side proxies and fake servers);
    its port is listener.getsockname()[1]."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(backlog)
    return sock


def free_port():
    """A port nobody listens on, chosen below the ephemeral range so that client sockets of
    other tests running in parallel cannot be holding it."""
    lo, _ = _ephemeral_range()
    low, high = (10000, lo) if lo > 12000 else (1024, 65535)
    for _ in range(200):
        port = random.randrange(low, high)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tempdir(prefix="freshet-it-"):
    path = tempfile.mkdtemp(prefix=prefix)
    _cleanups.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def lua(text):
    """Dedents a script written inline; the first line of the result is line 1 of the file."""
    return textwrap.dedent(text).lstrip("\n")


class AppDir:
    """A temp dir holding app.lua and its route scripts, written from strings."""

    def __init__(self, files):
        self.path = tempdir("freshet-app-")
        self.write(files)

    def write(self, files):
        for rel, content in files.items():
            full = os.path.join(self.path, rel)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            data = content if isinstance(content, bytes) else lua(content).encode()
            with open(full + ".tmp", "wb") as f:
                f.write(data)
            os.replace(full + ".tmp", full)

    def file(self, rel):
        return os.path.join(self.path, rel)

    @property
    def app(self):
        return self.file("app.lua")


# A bench-shaped app (GET /sub/a,b streams, POST /pub/t publishes the body as is) whose app
# settings a test can change. Routes are in the route table in this order.
SUB_ROUTE = """
    local route = {}
    function route.topics(req, who)
      local list = {}
      for name in req.params.topics:gmatch("[^,]+") do list[#list + 1] = name end
      return list
    end
    return route
"""

PUB_ROUTE = """
    local route = {}
    function route.publish(req, body, who)
      return { topic = req.params.topic, data = body,
               event = req.headers["x-event"], priority = req.headers["x-priority"] }
    end
    return route
"""


def pubsub_app(settings="", routes="", files=None):
    """settings: Lua table fields for freshet.app{}; routes: extra app:... lines."""
    app = (
        'local freshet = require "freshet"\n'
        "local app = freshet.app {\n"
        + lua(settings)
        + "}\n"
        'app:stream("/sub/:topics", "routes/sub.lua")\n'
        'app:publish("/pub/:topic", "routes/pub.lua")\n'
        + lua(routes)
        + "return app\n"
    )
    all_files = {"app.lua": app.encode(), "routes/sub.lua": SUB_ROUTE, "routes/pub.lua": PUB_ROUTE}
    all_files.update(files or {})
    return AppDir(all_files)


# ----------------------------------------------------------------------------------------------
# TLS: certificates and the ports that speak it


def make_cert(directory=None, cn="localhost", name="cert"):
    """A self-signed P-256 certificate for localhost and 127.0.0.1, made with the openssl
    command: returns (cert_path, key_path), <name>.pem and <name>-key.pem in directory (a new
    temp dir when None)."""
    directory = directory or tempdir("freshet-cert-")
    cert = os.path.join(directory, f"{name}.pem")
    key = os.path.join(directory, f"{name}-key.pem")
    openssl = shutil.which("openssl")
    check(openssl is not None, "the openssl command is missing (scripts/setup.sh installs it)")
    r = subprocess.run([openssl, "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, "openssl req could not make a certificate", r.stderr[-500:])
    return cert, key


CURL = shutil.which("curl")


def curl(args, timeout=15):
    """Runs curl -sS with args; fails when curl is missing. Returns the CompletedProcess."""
    check(CURL is not None, "curl is missing (scripts/setup.sh installs it)")
    return subprocess.run([CURL, "-sS", *args], capture_output=True, timeout=timeout)


_TLS_PORTS = {}      # port -> ssl.SSLContext of the clients that talk to it
_harness_cert = None  # (cert, key) of FRESHET_TLS=1 runs, made once per test process


def client_tls_context(cafile=None, alpn=("http/1.1",)):
    """A client context: checks the certificate against cafile, or (None) checks nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_port(port, ctx):
    """From now on the client helpers speak TLS to port with ctx (None: cleartext again)."""
    if ctx is None:
        _TLS_PORTS.pop(port, None)
    else:
        _TLS_PORTS[port] = ctx


def is_tls(port):
    return port in _TLS_PORTS


def wrap(sock, port):
    """sock, or a TLS socket over it when port speaks TLS (the handshake is done here, within
    the socket's timeout)."""
    ctx = _TLS_PORTS.get(port)
    if ctx is None:
        return sock
    try:
        return ctx.wrap_socket(sock, server_hostname="localhost" if ctx.check_hostname else None)
    except Exception:
        sock.close()
        raise


def _harness_tls_app(app):
    """FRESHET_TLS=1: an app file that runs `app` with the harness's certificate. It sits in the
    app's directory (route scripts are found from there); an app in the source tree is copied
    to a temp dir first, so nothing is written into the repository."""
    global _harness_cert
    if _harness_cert is None:
        _harness_cert = make_cert(name="harness")
    app = os.path.abspath(app)
    directory = os.path.dirname(app)
    if not directory.startswith(os.path.realpath(tempfile.gettempdir()) + os.sep) and \
            not directory.startswith(tempfile.gettempdir() + os.sep):
        copy = os.path.join(tempdir("freshet-tlsapp-"), "app")
        shutil.copytree(directory, copy, symlinks=True)
        directory = copy
        app = os.path.join(copy, os.path.basename(app))
    wrapper = os.path.join(directory, ".frtest-tls-" + os.path.basename(app))
    cert, key = _harness_cert
    with open(wrapper, "w") as f:
        f.write("-- Written by frtest.py (FRESHET_TLS=1): the test's app, over HTTPS.\n"
                f"local app = dofile({json.dumps(app)})\n"
                f"app.config.tls = {{ cert = {json.dumps(cert)}, key = {json.dumps(key)} }}\n"
                "return app\n")
    return wrapper


# ----------------------------------------------------------------------------------------------
# The server process


def _die_with_parent():
    # If the test script is killed (ctest timeout), the server must not outlive it.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def kill_process(proc, timeout=10):
    """SIGKILL to a process this test started, if it still runs, and a bounded wait for it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


def run_cli(args, timeout=15, env=None):
    """Runs the binary to completion (for --check, --version...): CompletedProcess, text."""
    try:
        return subprocess.run([BIN, *args], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env=env, preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as exc:
        fail(f"`freshet {' '.join(args)}` did not finish within {timeout}s",
             {"stdout": exc.stdout, "stderr": exc.stderr})


class Server:
    """One freshet process listening on a free port; a context manager that stops it and
    checks it exited 0."""

    def __init__(self, app, args=(), env=None, port=None, ready_timeout=10, wrapper=(),
                 tls=None, cafile=None, health_port=None):
        self.app = app.app if isinstance(app, AppDir) else app
        # tls: True when the app's settings hold tls = {...}; None: as FRESHET_TLS says (the
        # harness then adds its own certificate); False: cleartext. cafile: the clients check
        # the server's certificate against it (default: they check nothing).
        self.tls = TLS if tls is None else tls
        self._run_app = _harness_tls_app(self.app) if tls is None and TLS else self.app
        self.client_tls = client_tls_context(cafile) if self.tls else None
        # health_port: where GET /health answers when the app moves it to an admin listener.
        self.health_port = health_port
        # wrapper: a command the binary runs under that execs it (same PID), e.g.
        # ["prlimit", "--nofile=200:200"].
        self.wrapper = list(wrapper)
        self.args = list(args)
        self.env = env
        self.fixed_port = port
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self.log_path = None
        self._log_file = None
        self.returncode = None

    # -- lifecycle

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
            return False
        if self in _live_servers:  # the log is gone once main() cleans up
            print(f"    --- server log ({self.describe()}) when the test failed ---", flush=True)
            print(_indent(self.log_tail(40), "    | "), flush=True)
        try:
            self.stop()
        except Failure as stop_failure:
            _record("server shutdown", str(stop_failure))
        return False

    def start(self):
        check(os.path.isfile(BIN) and os.access(BIN, os.X_OK), f"freshet binary not found: {BIN}")
        logdir = tempdir("freshet-log-")
        for attempt in range(4):
            self.port = self.fixed_port or free_port()
            self.log_path = os.path.join(logdir, f"server-{attempt}.log")
            self._log_file = open(self.log_path, "wb")
            cmd = [*self.wrapper, BIN, self._run_app, "--listen", f"{HOST}:{self.port}",
                   *self.args]
            tls_port(self.port, self.client_tls)
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                         stderr=self._log_file, cwd=logdir, env=self.env,
                                         preexec_fn=_die_with_parent)
            self.returncode = None
            _live_servers.append(self)
            if self._wait_ready():
                return self
            log = self.log()
            exited = self.proc.poll() is not None
            self.kill()
            if exited and not self.fixed_port and "in use" in log.lower():
                continue  # lost a race for the port with another test; take another
            state = f"exited with code {self.proc.returncode}" if exited else \
                f"did not answer GET /health within {self.ready_timeout}s"
            fail(f"server {state}: {' '.join(cmd)}\n    log:\n{_indent(log, '    | ')}")
        fail("could not find a free port for the server")

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                resp = request(self.health_port or self.port, "GET", "/health", timeout=1)
                if resp.status == 200:
                    return self.proc.poll() is None
            except (OSError, Failure):
                pass
            time.sleep(0.05)
        return False

    def send_signal(self, sig):
        check(self.proc is not None and self.proc.poll() is None,
              f"server is not running (exit code {self.proc and self.proc.poll()})", self.log_tail())
        os.kill(self.proc.pid, sig)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10, expect_code=0):
        """Sends sig, waits for the exit and checks the exit code (a leak under the sanitizer
        makes it 23)."""
        if self.proc is None or self not in _live_servers:
            return self.returncode
        crashed_before = self.proc.poll() is not None
        if not crashed_before:
            os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            fail(f"server did not exit within {timeout}s of {signal.Signals(sig).name}; killed it",
                 self.log_tail(60))
        self._forget()
        self.returncode = rc
        if crashed_before:
            fail(f"server had already exited (code {rc}) before it was asked to stop",
                 self.log_tail(60))
        if rc != expect_code:
            why = {23: " (the sanitizer found leaks or errors)"}.get(rc, "")
            if rc < 0:
                why = f" (killed by {signal.Signals(-rc).name})"
            fail(f"server exited with code {rc}{why}, expected {expect_code} after "
                 f"{signal.Signals(sig).name}\n    log:\n{_indent(self.log_tail(80), '    | ')}")
        return rc

    def wait_exit(self, timeout=10):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._forget()
        self.returncode = rc
        return rc

    def kill(self):
        """Last resort for a server a failed test left behind."""
        kill_process(self.proc)
        self._forget()

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    def url(self, path=""):
        return f"{self.scheme}://{HOST}:{self.port}{path}"

    def _forget(self):
        if self.port is not None and _TLS_PORTS.get(self.port) is self.client_tls:
            tls_port(self.port, None)
        if self in _live_servers:
            _live_servers.remove(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- observation

    def describe(self):
        pid = self.proc.pid if self.proc else "-"
        return f"pid {pid}, port {self.port}, app {self.app}"

    def log(self):
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=40):
        lines = self.log().splitlines()
        return "\n".join(lines[-n:]) if lines else "(empty)"

    def wait_log(self, pattern, timeout=5, start=0):
        """Waits until the log (from offset start) matches a regex; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(), start)
            if m:
                return m
            if time.monotonic() > deadline:
                fail(f"server log has no line matching /{pattern}/ after {timeout}s",
                     self.log_tail(40))
            time.sleep(0.05)

    def log_size(self):
        return len(self.log())

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        fail("no VmRSS in /proc/PID/status")

    def fd_count(self):
        """Descriptors the server process has open (from /proc/PID/fd)."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self):
        """User + system CPU time the server has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self):
        """GET /metrics, parsed (see parse_metrics); fails unless the answer is 200."""
        resp = request(self.port, "GET", "/metrics")
        check_eq(resp.status, 200, f"GET /metrics status ({resp.text[:300]})")
        return parse_metrics(resp.text)

    def health(self):
        resp = request(self.port, "GET", "/health")
        check_eq(resp.status, 200, "GET /health status")
        return resp.json()

    def wait_streams(self, n, timeout=10):
        """Waits until /health reports n open streams."""
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if h.get("streams") == n:
                return h
            if time.monotonic() > deadline:
                fail(f"/health never reported streams == {n} within {timeout}s", h)
            time.sleep(0.05)

    # -- shortcuts

    def get(self, path, headers=None, **kw):
        return request(self.port, "GET", path, headers=headers, **kw)

    def post(self, path, body=b"", headers=None, **kw):
        return request(self.port, "POST", path, headers=headers, body=body, **kw)

    def publish(self, path, data, headers=None, **kw):
        return publish(self.port, path, data, headers=headers, **kw)

    def stream(self, path, **kw):
        return open_stream(self.port, path, **kw)


# ----------------------------------------------------------------------------------------------
# Raw HTTP


@dataclasses.dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list  # [(name, value)] in order, names as sent
    body: bytes = b""
    head: bytes = b""

    def header(self, name, default=None):
        name = name.lower()
        found = [v for k, v in self.headers if k.lower() == name]
        return found[-1] if found else default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            fail(f"response body is not JSON (status {self.status})", self.summary())

    def summary(self):
        return f"{self.head.decode('latin-1')}{_show(self.text, 1500)}"

    def check_refused(self, reason, status, what, retry_ms=None):
        """A refusal for now in the form a browser's EventSource survives: 200, a whole
        text/event-stream body (`retry: N`, `event: freshet-refused`, a JSON `data:` naming the
        reason, no `id:`), Connection: close. Returns the data as a dict."""
        check_eq(self.status, 200, f"{what}: status of the in-stream refusal")
        ctype = (self.header("content-type") or "").split(";")[0].strip().lower()
        check_eq(ctype, "text/event-stream", f"{what}: Content-Type of the in-stream refusal")
        check(self.header("content-length") is not None,
              f"{what}: the in-stream refusal has no length (it must end)", self.summary())
        check_eq((self.header("connection") or "").lower(), "close",
                 f"{what}: Connection of the in-stream refusal")
        m = re.fullmatch(r"retry: (\d+)\nevent: freshet-refused\ndata: (\{.*\})\n\n", self.text)
        check(m is not None, f"{what}: not retry + event: freshet-refused + data", self.summary())
        data = json.loads(m.group(2))
        check_eq((data.get("reason"), data.get("status"), data.get("retry_ms")),
                 (reason, status, int(m.group(1))), f"{what}: reason, status and retry_ms")
        check(isinstance(data.get("error"), str) and data["error"],
              f"{what}: the refusal has no error message", data)
        if retry_ms is not None:
            lo, hi = retry_ms
            check(lo <= data["retry_ms"] <= hi,
                  f"{what}: retry_ms {data['retry_ms']} is not within [{lo}, {hi}]", data)
        return data

    def check_error(self, status, what):
        """Every error is JSON {"error": "..."} with Content-Type application/json."""
        check_eq(self.status, status, f"{what}: status", )
        ctype = (self.header("content-type") or "").split(";")[0].strip().lower()
        check_eq(ctype, "application/json", f"{what}: Content-Type of the {status} response")
        body = self.json()
        check(isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"],
              f'{what}: body is not {{"error": "<message>"}}', self.summary())
        return body["error"]


def _header_items(headers):
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def _enc(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def exchange(port, data, timeout=3.0, half_close=False):
    """Sends raw bytes on a fresh connection; returns (bytes received, closed by the server)."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    try:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False
    finally:
        sock.close()


def build_request(method, path, headers=None, body=None, port=None):
    """Request bytes. Host is added unless given; a header whose value is None is left out;
    Content-Length is added for a body unless Content-Length or Transfer-Encoding is given."""
    items = _header_items(headers)
    names = {k.lower() for k, _ in items}
    if "host" not in names:
        items.insert(0, ("Host", f"{HOST}:{port}" if port else HOST))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(_enc(body)))))
    out = [_enc(method) + b" " + _enc(path) + b" HTTP/1.1\r\n"]
    for k, v in items:
        if v is not None:
            out.append(_enc(k) + b": " + _enc(v) + b"\r\n")
    out.append(b"\r\n")
    if body is not None:
        out.append(_enc(body))
    return b"".join(out)


class Conn:
    """One client connection with a read buffer; keeps alive across requests."""

    def __init__(self, port, timeout=5, sock=None):
        self.port = port
        self.timeout = timeout
        self.sock = sock or wrap(socket.create_connection((HOST, port), timeout=timeout), port)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, headers=None, body=None):
        self.send(build_request(method, path, headers, body, self.port))
        return self.read_response(method)

    def _recv(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            fail(f"no data from the server within {self.sock.gettimeout()}s",
                 {"buffered": self.buf[:2000]})
        except GONE:
            data = b""
        if not data:
            self.eof = True
        return data

    def _fill(self):
        data = self._recv()
        if not data:
            fail("connection closed by the server in the middle of a response",
                 {"buffered": self.buf[:2000]})
        self.buf += data

    def read_until(self, delim, limit=1 << 20):
        while delim not in self.buf:
            check(len(self.buf) < limit, f"no {delim!r} within {limit} bytes", self.buf[:2000])
            self._fill()
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        """Reads the status line and headers: a Response without a body."""
        head = self.read_until(b"\r\n\r\n", limit=256 * 1024)
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        check(m is not None, "malformed status line", lines[0])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            check(sep == b":", "malformed response header line", line)
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return Response(m.group(1).decode(), int(m.group(2)),
                        (m.group(3) or b"").decode("latin-1"), headers, b"", head)

    def read_body(self, resp, method="GET"):
        if method == "HEAD" or resp.status < 200 or resp.status in (204, 304):
            return b""
        te = (resp.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            dec = ChunkedDecoder()
            out = [dec.feed(self.buf)]
            self.buf = b""
            while not dec.done:
                data = self._recv()
                if not data:
                    fail("connection closed before the last chunk", b"".join(out)[:2000])
                out.append(dec.feed(data))
            self.buf = dec.rest()
            return b"".join(out)
        length = resp.header("content-length")
        if length is not None:
            check(length.isdigit(), "bad Content-Length in response", length)
            return self.read_exact(int(length))
        while True:  # delimited by close
            data = self._recv()
            if not data:
                out, self.buf = self.buf, b""
                return out
            self.buf += data

    def read_response(self, method="GET"):
        resp = self.read_head()
        resp.body = self.read_body(resp, method)
        return resp

    def closed_by_peer(self, timeout=3):
        """True if the server closes the connection (EOF or reset) within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (*GONE, BrokenPipeError):
                return True
            if not data:
                return True
            self.buf += data
        return False


def request(port, method, path, headers=None, body=None, timeout=5, close=True):
    """One request on a fresh connection; returns the whole Response."""
    items = _header_items(headers)
    if close and "connection" not in {k.lower() for k, _ in items}:
        items.append(("Connection", "close"))
    with Conn(port, timeout=timeout) as c:
        return c.request(method, path, items, body)


def publish_raw(port, path, data, headers=None, timeout=5):
    return request(port, "POST", path, headers=headers, body=data, timeout=timeout)


def publish(port, path, data, headers=None, timeout=5):
    """POSTs and returns the id; fails unless the answer is 201 {"id": "<ms>-<seq>"}."""
    resp = publish_raw(port, path, data, headers, timeout)
    check_eq(resp.status, 201, f"POST {path} status ({resp.text[:300]})")
    body = resp.json()
    check(isinstance(body, dict) and isinstance(body.get("id"), str) and ID_RE.match(body["id"]),
          f'POST {path}: body is not {{"id": "<ms>-<seq>"}}', resp.summary())
    return body["id"]


def parse_id(text):
    """'<ms>-<seq>' -> (ms, seq)."""
    check(isinstance(text, str) and ID_RE.match(text), "not an id of the form <ms>-<seq>", text)
    ms, seq = text.split("-")
    return int(ms), int(seq)


V1_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _v1_number(text, at, head):
    """One number of a v1 id from text[at:] -> (value, flags, next index)."""
    value, shift, first = 0, 0, True
    while True:
        check(at < len(text), "a v1 id ends inside a number", text)
        d = V1_DIGITS.find(text[at])
        check(d >= 0, f"a v1 id holds {text[at]!r}", text)
        at += 1
        bits = head if first else 5
        if first:
            flags = (d & 31) >> head
        value |= (d & ((1 << bits) - 1)) << shift
        shift += bits
        first = False
        if not d & 32:
            return value, flags, at


def _v1_digits(value, head, flags=0):
    out = []
    low, rest = value & ((1 << head) - 1), value >> head
    out.append((flags << head) | low | (32 if rest else 0))
    while rest:
        group, rest = rest & 31, rest >> 5
        out.append(group | (32 if rest else 0))
    return "".join(V1_DIGITS[d] for d in out)


def format_ids(positions):
    """[(ms, seq), ...] -> the id a stream following those topics sends: '<ms>-<seq>' for one,
    else the v1 form (src/codec/ids.h: hi, span, then each topic's delta to the nearer end and
    its seq when not 0)."""
    if len(positions) == 1:
        return f"{positions[0][0]}-{positions[0][1]}"
    hi = max(ms for ms, _ in positions)
    lo = min(ms for ms, _ in positions)
    out = "v1" + _v1_digits(hi, 5) + _v1_digits(hi - lo, 5)
    for ms, seq in positions:
        from_lo = ms - lo < hi - ms
        out += _v1_digits(ms - lo if from_lo else hi - ms, 3, (2 if seq else 0) | from_lo)
        if seq:
            out += _v1_digits(seq, 5)
    return out


def parse_ids(text):
    """A stream's id -> [(ms, seq), ...], one per topic: '<ms>-<seq>', the v1 form of several
    topics, or comma-joined ids (what streams sent before the v1 form, still accepted)."""
    check(isinstance(text, str) and text, "not an id", text)
    if not text.startswith("v1"):
        return [parse_id(part) for part in text.split(",")]
    hi, _, at = _v1_number(text, 2, 5)
    span, _, at = _v1_number(text, at, 5)
    out = []
    while at < len(text):
        delta, flags, at = _v1_number(text, at, 3)
        seq = 0
        if flags & 2:
            seq, _, at = _v1_number(text, at, 5)
        out.append((hi - span + delta if flags & 1 else hi - delta, seq))
    check(len(out) >= 2 and format_ids(out) == text, "not a v1 id as the server writes it", text)
    return out


def ids_text(text):
    """A stream's id -> ['<ms>-<seq>', ...], one per topic (see parse_ids)."""
    return [f"{ms}-{seq}" for ms, seq in parse_ids(text)]


# ----------------------------------------------------------------------------------------------
# Chunked transfer coding and Server-Sent Events


class ChunkedDecoder:
    """Incremental decoder for Transfer-Encoding: chunked."""

    def __init__(self):
        self.buf = b""
        self.state = "size"
        self.remaining = 0
        self.done = False
        self.sizes = []

    def rest(self):
        out, self.buf = self.buf, b""
        return out

    def feed(self, data):
        self.buf += data
        out = []
        while not self.done:
            if self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    check(len(self.buf) < 1024, "chunk size line too long", self.buf[:200])
                    break
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                token = line.split(b";")[0].strip()
                check(re.fullmatch(rb"[0-9a-fA-F]+", token) is not None, "bad chunk size line", line)
                size = int(token, 16)
                self.sizes.append(size)
                if size == 0:
                    self.state = "trailer"
                else:
                    self.remaining = size
                    self.state = "data"
            elif self.state == "data":
                take = min(self.remaining, len(self.buf))
                if take == 0:
                    break
                out.append(self.buf[:take])
                self.buf = self.buf[take:]
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buf) < 2:
                    break
                check(self.buf[:2] == b"\r\n", "chunk data not followed by CRLF", self.buf[:200])
                self.buf = self.buf[2:]
                self.state = "size"
            elif self.state == "trailer":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                if line == b"":
                    self.done = True
        return b"".join(out)


@dataclasses.dataclass
class Event:
    type: str
    data: str
    id: object  # the id field of this event's block, None if it had none
    last_event_id: str
    t: float


@dataclasses.dataclass
class Comment:
    text: str
    t: float


@dataclasses.dataclass
class Retry:
    ms: int
    t: float


_EOL = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")


class SSEParser:
    """The event-stream interpretation of the WHATWG HTML spec (server-sent events §9.2.6):
    UTF-8 decoding, BOM, CR/LF/CRLF line ends, fields id/event/data/retry, comments,
    dispatch on a blank line and only when the data buffer is not empty."""

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = ""
        self._started = False
        self._data = []
        self._type = ""
        self._id_field = None
        self.last_event_id = ""
        self.retry = None
        self.items = []

    def feed(self, data, t=None, final=False):
        t = time.monotonic() if t is None else t
        text = self._decoder.decode(data, final)
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        self._text += text
        s, pos = self._text, 0
        while True:
            m = _EOL.search(s, pos)
            if not m:
                break
            if m.group() == "\r" and m.end() == len(s) and not final:
                break  # may be the first half of a CRLF
            self._line(s[pos:m.start()], t)
            pos = m.end()
        self._text = s[pos:]

    def _line(self, line, t):
        if line == "":
            self._dispatch(t)
            return
        if line.startswith(":"):
            self.items.append(Comment(line[1:], t))
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._id_field = value
        elif name == "retry":
            if _DIGITS.fullmatch(value):
                self.retry = int(value)
                self.items.append(Retry(int(value), t))

    def _dispatch(self, t):
        if self._data:
            self.items.append(Event(self._type or "message", "\n".join(self._data),
                                    self._id_field, self.last_event_id, t))
        self._data = []
        self._type = ""
        self._id_field = None


class SSEStream:
    """A GET on a stream route over a raw socket. If the answer is 200 the body is decoded
    (chunked, then SSE) as it arrives; `raw` holds the decoded body bytes seen so far."""

    def __init__(self, port, path, headers=None, accept="text/event-stream", last_event_id=None,
                 timeout=5, sock=None):
        self.port = port
        self.path = path
        items = []
        if accept is not None:
            items.append(("Accept", accept))
        if last_event_id is not None:
            items.append(("Last-Event-ID", last_event_id))
        items += _header_items(headers)
        # sock: an already connected socket (e.g. one with a small receive buffer).
        self.conn = Conn(port, timeout=timeout, sock=sock)
        self.conn.send(build_request("GET", path, items, None, port))
        self.response = self.conn.read_head()
        self.status = self.response.status
        self.raw = b""
        self.parser = SSEParser()
        self._next = 0
        self.closed = False
        self.ended = False  # saw the last chunk or EOF
        self.chunked = "chunked" in (self.response.header("transfer-encoding") or "").lower()
        # An answer with a length is whole: an error, or a refusal in the stream's own form
        # (Response.check_refused).
        if self.status != 200 or self.response.header("content-length") is not None:
            self.response.body = self.conn.read_body(self.response)
            self.ended = True
            return
        self.started = time.monotonic()
        self._decoder = ChunkedDecoder() if self.chunked else None
        leftover, self.conn.buf = self.conn.buf, b""
        if leftover:
            self._consume(leftover)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if not self.closed:
            self.closed = True
            self.conn.close()

    def reset(self):
        """Closes with a TCP reset instead of a FIN, as a client that vanishes does."""
        if not self.closed:
            try:
                self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            except OSError:
                pass
            self.close()

    @property
    def items(self):
        return self.parser.items

    @property
    def refused(self):
        """An error status, or 200 with the in-stream refusal (Response.check_refused)."""
        return self.status != 200 or b"event: freshet-refused" in self.response.body

    def events(self):
        return [i for i in self.parser.items if isinstance(i, Event)]

    def comments(self):
        return [i for i in self.parser.items if isinstance(i, Comment)]

    def retries(self):
        return [i for i in self.parser.items if isinstance(i, Retry)]

    def _consume(self, data, t=None):
        t = time.monotonic() if t is None else t
        if self._decoder is not None:
            payload = self._decoder.feed(data)
            if self._decoder.done:
                self.ended = True
        else:
            payload = data
        self.raw += payload
        self.parser.feed(payload, t)

    def pump(self, timeout):
        """Reads what arrives within timeout; False if nothing did."""
        if self.ended:
            return False
        self.conn.sock.settimeout(max(0.001, timeout))
        try:
            data = self.conn.sock.recv(65536)
        except socket.timeout:
            return False
        except GONE:
            data = b""
        if not data:
            self.ended = True
            self.parser.feed(b"", final=True)
            return False
        self._consume(data)
        return True

    def next_item(self, timeout=5):
        deadline = time.monotonic() + timeout
        while self._next >= len(self.parser.items):
            left = deadline - time.monotonic()
            if self.ended:
                fail(f"stream {self.path} ended while waiting for more", self.raw[-1500:])
            if left <= 0:
                fail(f"nothing more arrived on {self.path} within {timeout}s", self.raw[-1500:])
            self.pump(left)
        item = self.parser.items[self._next]
        self._next += 1
        return item

    def next_event(self, timeout=5):
        """The next dispatched event (comments and retry frames are skipped, still recorded)."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.next_item(max(0.0, deadline - time.monotonic()))
            if isinstance(item, Event):
                return item

    def take(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(self.next_event(max(0.0, deadline - time.monotonic())))
            except Failure as exc:
                fail(f"got {len(out)} of {n} events on {self.path}: {exc}",
                     [(e.id, e.type, e.data) for e in out])
        return out

    def wait_retry(self, timeout=5):
        """Waits for the first `retry:` frame; returns its value."""
        deadline = time.monotonic() + timeout
        while self.parser.retry is None:
            left = deadline - time.monotonic()
            check(left > 0 and not self.ended, f"no retry frame on {self.path}", self.raw[:500])
            self.pump(left)
        return self.parser.retry

    def drain(self, duration):
        """Reads for duration seconds; returns the items that arrived."""
        first = len(self.parser.items)
        deadline = time.monotonic() + duration
        while not self.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.pump(left)
        self._next = len(self.parser.items)
        return self.parser.items[first:]

    def expect_no_event(self, duration):
        got = [i for i in self.drain(duration) if isinstance(i, Event)]
        check(not got, f"unexpected event(s) on {self.path}", got)

    def wait_end(self, timeout=5):
        deadline = time.monotonic() + timeout
        while not self.ended:
            left = deadline - time.monotonic()
            check(left > 0, f"stream {self.path} was not closed within {timeout}s", self.raw[-500:])
            self.pump(left)


def open_stream(port, path, expect=200, **kw):
    """Opens a stream; fails unless the status is `expect`; waits for the retry frame if 200."""
    s = SSEStream(port, path, **kw)
    if s.status != expect:
        s.close()
        fail(f"GET {path}: expected status {expect}, got {s.status}", s.response.summary())
    if expect == 200:
        s.wait_retry()
    return s


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ----------------------------------------------------------------------------------------------
# Flow control, metrics and state logs


def small_rcvbuf_socket(port, rcvbuf=4096, timeout=5, mss=None):
    """A connected socket whose receive buffer was made small before connecting (so the TCP
    window stays small): a client that stops reading fills up after a few KB. With mss, the
    segment size it offers is that small too: the server's send buffer, which Linux sizes from
    the segment size (64 KB on loopback), then holds some hundred KB instead of megabytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if mss:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    sock.settimeout(timeout)
    sock.connect((HOST, port))
    return wrap(sock, port)


class Publisher:
    """Publishes over one keep-alive connection, pipelining up to `window` requests at a time
    so the server sees them at full speed."""

    def __init__(self, port, timeout=10):
        self.port = port
        self.conn = Conn(port, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.conn.close()

    def publish_many(self, items, window=64):
        """items: (path, body, headers) tuples. Returns the responses, in order."""
        out = []
        for i in range(0, len(items), window):
            chunk = items[i:i + window]
            self.conn.send(b"".join(build_request("POST", path, headers, body, self.port)
                                    for path, body, headers in chunk))
            for _ in chunk:
                out.append(self.conn.read_response("POST"))
        return out

    def publish_ids(self, items, window=64):
        """Like publish_many, but fails unless every answer is 201 {"id"}; returns the ids."""
        ids = []
        for resp in self.publish_many(items, window):
            check_eq(resp.status, 201, f"pipelined publish status ({resp.text[:300]})")
            ids.append(resp.json()["id"])
        return ids


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def promtool_check(text):
    """Runs `promtool check metrics` on the exposition; fails on any problem it reports."""
    tool = shutil.which("promtool")
    check(tool is not None,
             "promtool not found: install the Debian package prometheus (scripts/setup.sh does); "
             "this test needs the real parser and is never skipped")
    try:
        p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                           timeout=30)
    except subprocess.TimeoutExpired:
        fail("promtool check metrics did not finish within 30 s")
    out = (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    check(p.returncode == 0 and not out,
             f"promtool check metrics exited {p.returncode}: {out or '(no output)'}", text[:3000])



def parse_metrics(text):
    """Prometheus text format samples -> {(name, ((label, value), ...sorted)): float}. Only
    enough to read values back; promtool is what validates the format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        check(m is not None, "unparseable metrics line", line)
        labels = []
        rest = m.group(3) or ""
        pos = 0
        while pos < len(rest):
            lm = _LABEL.match(rest, pos)
            check(lm is not None and lm.end() > pos, "unparseable labels", line)
            value = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1), lm.group(2))
            labels.append((lm.group(1), value))
            pos = lm.end()
        out[(m.group(1), tuple(sorted(labels)))] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    """The value of one sample; fails if it is not there."""
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        near = sorted({k for k in samples if k[0] == name})
        fail(f"/metrics has no sample {name}{labels}", near or "(no sample of that name)")
    return samples[key]


_TEXT_LOG = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (debug|info|warn|error) (.*)$")


def state_log_entries(log_text, json_format=False):
    """The connection state lines (objects with an "event" field) of a server log, in order.
    Text format: `<time> <level> {<json>}`; JSON format: one object per line with ts and level.
    Each entry is the decoded object (plus "ts" and "level" in the text format)."""
    out = []
    for line in log_text.splitlines():
        if json_format:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
        else:
            m = _TEXT_LOG.match(line)
            if not m or not m.group(3).startswith("{"):
                continue
            try:
                obj = json.loads(m.group(3))
            except ValueError:
                continue
            if isinstance(obj, dict):
                obj = dict(obj, ts=m.group(1), level=m.group(2))
        if isinstance(obj, dict) and "event" in obj:
            out.append(obj)
    return out


class StreamSwarm:
    """Many streams over non-blocking sockets in one selector; each client decodes its body
    (chunked, then SSE) as it arrives and records when its body ended or the socket closed."""

    class Client:
        def __init__(self, sock):
            self.sock = sock
            self.head = b""
            self.status = None
            self.headers = b""
            self.decoder = ChunkedDecoder()
            self.parser = SSEParser()
            self.sent = False
            self.handshaking = False  # TLS: connected, handshake under way
            self.error = None
            self.body_end_t = None   # when the chunked terminator arrived
            self.eof_t = None        # when the server closed the socket (EOF or reset)

        @property
        def ready(self):
            return self.status == 200 and self.parser.retry is not None

        @property
        def done(self):
            return self.eof_t is not None or self.error is not None

        def feed(self, data, t):
            if self.status is None:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.headers, data = self.head[:end], self.head[end + 4:]
                status_line = self.headers.split(b"\r\n")[0]
                parts = status_line.split(b" ")
                self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
                if self.status != 200:
                    self.error = f"status line {status_line!r}"
                    return
            if self.decoder.done:
                return
            self.parser.feed(self.decoder.feed(data), t)
            if self.decoder.done and self.body_end_t is None:
                self.body_end_t = t

    def __init__(self, port, path):
        import selectors
        self.port = port
        self.request = build_request("GET", path, {"Accept": "text/event-stream"}, None, port)
        self.sel = selectors.DefaultSelector()
        self._sel_mod = selectors
        self.clients = []

    def _new(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((HOST, self.port))
        c = StreamSwarm.Client(s)
        self.clients.append(c)
        self.sel.register(s, self._sel_mod.EVENT_WRITE, c)
        return c

    def _forget(self, c):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass

    def _send_request(self, c):
        c.sock.send(self.request)  # a few hundred bytes: fits the empty send buffer
        c.sent = True
        self.sel.modify(c.sock, self._sel_mod.EVENT_READ, c)

    def _handshake(self, c):
        """TLS: one step of a non-blocking handshake; the request goes once it is done."""
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.sel.modify(c.sock, self._sel_mod.EVENT_READ, c)
            return
        except ssl.SSLWantWriteError:
            self.sel.modify(c.sock, self._sel_mod.EVENT_WRITE, c)
            return
        except OSError as exc:
            c.error = f"TLS handshake failed: {exc}"
            self._forget(c)
            return
        c.handshaking = False
        self._send_request(c)

    def step(self, timeout):
        for key, mask in self.sel.select(timeout):
            c = key.data
            t = time.monotonic()
            if c.handshaking:
                self._handshake(c)
            elif mask & self._sel_mod.EVENT_WRITE and not c.sent:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    c.error = f"connect failed: {os.strerror(err)}"
                    self._forget(c)
                    continue
                ctx = _TLS_PORTS.get(self.port)
                if ctx is None:
                    self._send_request(c)
                    continue
                self._forget(c)
                c.sock = ctx.wrap_socket(c.sock, do_handshake_on_connect=False)
                self.sel.register(c.sock, self._sel_mod.EVENT_WRITE, c)
                c.handshaking = True
                self._handshake(c)
            elif mask & self._sel_mod.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                    # Records OpenSSL has decrypted already are not the socket's to signal.
                    while isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():
                        data += c.sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                except GONE:
                    data = b""
                if not data:
                    c.eof_t = t
                    self._forget(c)
                    continue
                try:
                    c.feed(data, t)
                except Failure as exc:
                    c.error = str(exc)
                if c.error:
                    self._forget(c)

    def open(self, n, timeout=30, in_flight=100):
        """Opens n more streams (at most in_flight handshakes at once); waits for their retry
        frames; fails if any is refused."""
        start = len(self.clients)
        deadline = time.monotonic() + timeout
        while True:
            mine = self.clients[start:]
            bad = [c for c in mine if c.error or c.eof_t]
            check(not bad, f"{len(bad)} of {len(mine)} streams failed while opening",
                  [c.error or "closed" for c in bad[:5]])
            ready = sum(1 for c in mine if c.ready)
            if ready == n:
                return mine
            pending = len(mine) - ready
            while len(mine) < n and pending < in_flight:
                mine.append(self._new())
                pending += 1
            check(time.monotonic() < deadline, f"only {ready} of {n} streams open after {timeout}s")
            self.step(0.05)

    def pump_until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            check(time.monotonic() < deadline, f"{what}: not done after {timeout}s")
            self.step(0.05)

    def close_all(self):
        for c in self.clients:
            self._forget(c)
            try:
                c.sock.close()
            except OSError:
                pass
        self.clients = []
        self.sel.close()


def fill_until_stalled(srv, path, size=32768, headers=None, limit=2000):
    """Publishes events of about `size` bytes to `path`, one at a time, until the server stops
    handing stream bytes to sockets (freshet_stream_bytes_written_total unchanged over three
    publishes in a row): a stream whose client is not reading then has full TCP buffers, whatever
    the host's buffer sizes. Meant for a server with that one stream. Returns the ids."""
    ids = []
    last = None
    same = 0
    with Publisher(srv.port) as pub:
        for n in range(limit):
            body = f"fill {n} " + "#" * size
            ids += pub.publish_ids([(path, body, headers or {})])
            written = metric(srv.metrics(), "freshet_stream_bytes_written_total")
            same = same + 1 if written == last else 0
            last = written
            if same >= 3:
                return ids
    fail(f"the stream's socket never filled after {limit} events of {size} bytes")


# ----------------------------------------------------------------------------------------------
# Redis: a redis-server per test, a minimal RESP client, redis-cli


REDIS_SERVER_BIN = os.environ.get("FRESHET_REDIS_SERVER") or shutil.which("redis-server")
REDIS_CLI_BIN = os.environ.get("FRESHET_REDIS_CLI") or shutil.which("redis-cli")

_live_redis = []


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


class RedisConn:
    """One RESP2 connection: command(*args) sends one command and returns its reply (bulk
    strings decoded as UTF-8, arrays as lists, nil as None); an error reply raises RedisError.
    pipeline() sends many commands in one write and returns their replies in order, with error
    replies as RedisError values instead of raising."""

    def __init__(self, port, timeout=5):
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = _enc(a)
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            items = [self._reply() for _ in range(n)]
            return items
        raise ConnectionError(f"unexpected RESP line {line[:100]!r}")

    def command(self, *args):
        self.sock.sendall(self.encode(args))
        reply = self._reply()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self.encode(c) for c in commands))
        return [self._reply() for _ in commands]


class _ServerProcess:
    """What the test servers of other programs (redis-server, redis-sentinel, nats-server)
    share: the process started by a subclass's start() (self.proc, its log at self.log_path),
    killed by its PID, listed in _live_redis while it may run (the failure report names it)."""

    proc = None
    log_path = None
    _out = None  # the process's stdout file, when a subclass keeps one

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _drop_conn(self):
        """A subclass's kept client connection goes (none here)."""

    def kill(self):
        self._drop_conn()
        kill_process(self.proc)
        self._forget()

    def _forget(self):
        if self in _live_redis:
            _live_redis.remove(self)
        if self._out is not None:
            self._out.close()
            self._out = None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except (OSError, TypeError):
            return "(no log)"
        return "\n".join(lines[-n:]) if lines else "(empty)"


class RedisServer(_ServerProcess):
    """A redis-server on a free port of 127.0.0.1 with its data in a temp dir, without RDB
    snapshots (and without the append-only file unless appendonly=True). Fails loudly when
    redis-server is missing or does not start: the Redis tests never skip. stop() and kill()
    signal the process by its PID; start() again reuses the same port and dir (a restart)."""

    def __init__(self, appendonly=False, ready_timeout=10, extra_args=(), port=None):
        self.appendonly = appendonly
        self.ready_timeout = ready_timeout
        self.extra_args = list(extra_args)
        self.dir = None
        self.port = port  # given: the server starts on exactly that port (url is known early)
        self.proc = None
        self.log_path = None
        self._out = None
        self.starts = 0
        self._conn = None

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}"

    def env(self, **extra):
        """The environment for a node of the bench app (FRESHET_BROKER) on this Redis."""
        return dict(os.environ, FRESHET_BROKER=self.url, **extra)

    def start(self):
        check(REDIS_SERVER_BIN and os.access(REDIS_SERVER_BIN, os.X_OK),
              "redis-server not found (install the redis-server package; the Redis tests need "
              "it and never skip)")
        if self.dir is None:
            self.dir = tempdir("freshet-redis-")
            _cleanups.append(self.kill)  # runs before the dir is removed (cleanups run reversed)
        restart = self.port is not None
        for attempt in range(1 if restart else 4):
            if not restart:
                self.port = free_port()
            self.starts += 1
            self.log_path = os.path.join(self.dir, f"redis-{self.starts}.log")
            cmd = self._command()
            self._out = open(os.path.join(self.dir, f"redis-{self.starts}.out"), "wb")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         preexec_fn=_die_with_parent)
            _live_redis.append(self)
            if self._wait_ready():
                return self
            exited = self.proc.poll() is not None
            log = self.log_tail(30)
            self.kill()
            if exited and not restart and "in use" in log.lower():
                continue
            state = f"exited with code {self.proc.returncode}" if exited else \
                f"did not answer PING within {self.ready_timeout}s"
            fail(f"redis-server {state}: {' '.join(cmd)}\n    log:\n{_indent(log, '    | ')}")
        fail("could not find a free port for redis-server")

    def _command(self):
        return [REDIS_SERVER_BIN, "--port", str(self.port), "--bind", HOST,
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--dir", self.dir, "--daemonize", "no", "--logfile", self.log_path,
                *self.extra_args]

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with RedisConn(self.port, timeout=1) as c:
                    # any reply will do: with --requirepass, PING answers NOAUTH
                    c.pipeline([["PING"]])
                    return True
            except (OSError, ConnectionError):
                pass
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the process (SIGTERM: a clean shutdown) and waits for it to exit."""
        self._drop_conn()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self._forget()
                fail(f"redis-server did not exit within {timeout}s of "
                     f"{signal.Signals(sig).name}; killed it", self.log_tail())
        self._forget()
        return self.proc.returncode

    def _drop_conn(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def describe(self):
        pid = self.proc.pid if self.proc else "-"
        return f"redis-server pid {pid}, port {self.port}"

    # -- talking to it

    def command(self, *args):
        """One command over a kept connection (reopened after an error)."""
        if self._conn is None:
            self._conn = RedisConn(self.port)
        try:
            return self._conn.command(*args)
        except (OSError, ConnectionError):
            self._drop_conn()
            raise

    def conn(self, timeout=5):
        return RedisConn(self.port, timeout=timeout)

    def cli(self, *args, json_output=False, timeout=10):
        """Runs redis-cli against this server; returns the CompletedProcess (text). Note that
        redis-cli exits 0 even when the reply is an error: look at stdout."""
        check(REDIS_CLI_BIN and os.access(REDIS_CLI_BIN, os.X_OK),
              "redis-cli not found (it comes with the redis-server package)")
        cmd = [REDIS_CLI_BIN, "-h", HOST, "-p", str(self.port)]
        if json_output:
            cmd += ["--json", "-2"]
        try:
            return subprocess.run([*cmd, *args], stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            fail(f"`{' '.join(cmd + list(args))}` did not finish within {timeout}s",
                 {"stdout": exc.stdout, "stderr": exc.stderr})

    def stream_ids(self, topic):
        """The ids held in a topic's Stream (fr:{topic}:s), oldest first, read with redis-cli."""
        r = self.cli("XRANGE", f"fr:{{{topic}}}:s", "-", "+", json_output=True)
        check(r.returncode == 0, "redis-cli XRANGE failed", r.stderr + r.stdout)
        try:
            entries = json.loads(r.stdout)
        except ValueError:
            fail("redis-cli --json XRANGE printed something that is not JSON", r.stdout[:1000])
        return [e[0] for e in entries]


class SentinelServer(RedisServer):
    """A Redis Sentinel (`redis-server <conf> --sentinel`) on a free port, monitoring the
    primary at master_port as `name`. Its config file is written into its temp dir, where the
    Sentinel rewrites it as it learns. Timings are shortened for tests: down after
    `down_after` ms, and (SENTINEL DEBUG, Redis 7) INFO every second and hello messages every
    half second, so failovers and the return of an old primary are seen in about a second.
    Stopped by PID, like RedisServer. (A down-after below 2 s made Sentinels take a busy new
    primary for a dead one under load, and fail over again.)"""

    def __init__(self, master_port, name="mm", quorum=2, down_after=2000, failover_timeout=5000):
        super().__init__()
        self.master_port = master_port
        self.name = name
        self.quorum = quorum
        self.down_after = down_after
        self.failover_timeout = failover_timeout

    def _command(self):
        conf = os.path.join(self.dir, "sentinel.conf")
        if getattr(self, "_conf_port", None) != self.port:  # kept (and rewritten) on restarts
            self._conf_port = self.port
            with open(conf, "w") as f:
                f.write(f"port {self.port}\nbind {HOST}\ndir {self.dir}\n"
                        f"sentinel monitor {self.name} {HOST} {self.master_port} {self.quorum}\n"
                        f"sentinel down-after-milliseconds {self.name} {self.down_after}\n"
                        f"sentinel failover-timeout {self.name} {self.failover_timeout}\n")
        return [REDIS_SERVER_BIN, conf, "--sentinel", "--logfile", self.log_path,
                "--daemonize", "no"]

    def start(self):
        super().start()
        self.command("SENTINEL", "DEBUG", "INFO-PERIOD", "1000", "PUBLISH-PERIOD", "500")
        return self

    def describe(self):
        pid = self.proc.pid if self.proc else "-"
        return f"redis sentinel pid {pid}, port {self.port}"

    def master(self):
        """SENTINEL MASTER as a dict."""
        flat = self.command("SENTINEL", "MASTER", self.name)
        return dict(zip(flat[0::2], flat[1::2]))


class SentinelGroup:
    """One primary, `replicas` replicas and `sentinels` Sentinels on free ports of 127.0.0.1,
    all in temp dirs, stopped by PID. start() returns once every replica is in sync and every
    Sentinel knows every replica and every other Sentinel (a failover needs that). Fails
    loudly when a process does not start."""

    def __init__(self, replicas=1, sentinels=3, name="mm", down_after=2000):
        self.name = name
        self.nreplicas = replicas
        self.nsentinels = sentinels
        self.down_after = down_after
        self.servers = []   # the primary first, then the replicas (as started)
        self.sentinels = []

    def start(self, timeout=20):
        # A replica (a returning primary too) syncs at once, not after diskless sync's 5 s.
        fast = ["--repl-diskless-sync-delay", "0"]
        primary = RedisServer(extra_args=fast).start()
        self.servers = [primary]
        for _ in range(self.nreplicas):
            self.servers.append(RedisServer(extra_args=[*fast, "--replicaof", HOST,
                                                        str(primary.port)]).start())
        for _ in range(self.nsentinels):
            self.sentinels.append(SentinelServer(primary.port, self.name,
                                                 quorum=self.nsentinels // 2 + 1,
                                                 down_after=self.down_after).start())
        deadline = time.monotonic() + timeout
        while True:
            states = []
            primary.command("SET", "fr:test:synced", "1")  # WAIT counts replicas that have it
            states.append(primary.command("WAIT", str(self.nreplicas), "50") == self.nreplicas)
            for sn in self.sentinels:
                m = sn.master()
                states.append(int(m.get("num-slaves", 0)) == self.nreplicas and
                              int(m.get("num-other-sentinels", 0)) == self.nsentinels - 1)
            if all(states):
                return self
            if time.monotonic() > deadline:
                fail(f"the Sentinel group was not ready within {timeout}s",
                     {"replicas in sync, Sentinels aware": states,
                      "sentinel": self.sentinels[0].master()})
            time.sleep(0.1)

    def url(self, query=""):
        hosts = ",".join(f"{HOST}:{sn.port}" for sn in self.sentinels)
        return f"redis-sentinel://{hosts}/{self.name}" + (f"?{query}" if query else "")

    def primary_port(self):
        """Where a Sentinel that answers says the primary is (None when none answers)."""
        for sn in self.sentinels:
            try:
                addr = sn.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
                return int(addr[1]) if addr else None
            except (OSError, ConnectionError, RedisError):
                continue
        return None

    def server_on(self, port):
        return next(rs for rs in self.servers if rs.port == port)

    def stop(self):
        for sn in self.sentinels:
            sn.kill()
        for rs in self.servers:
            rs.kill()


def wait_replicas(primary, n, timeout=10):
    """Waits until n replicas acknowledge a write on primary (WAIT): a replica that has just
    synced may say its link is up, and be counted by WAIT only a second later."""
    deadline = time.monotonic() + timeout
    with primary.conn() as c:
        while True:
            c.command("SET", "fr:test:synced", "1")
            if c.command("WAIT", str(n), "100") >= n:
                return
            check(time.monotonic() < deadline, f"{n} replicas did not confirm a write within "
                  f"{timeout}s", c.command("INFO", "replication"))


def freshet_clients(redis_server):
    """The names of the freshet connections (CLIENT LIST) on a Redis server: freshet names
    each of its connections freshet-<node>-<role>."""
    with redis_server.conn(timeout=2) as c:  # a kept connection may have been killed
        out = c.command("CLIENT", "LIST")
    names = re.findall(r"\bname=(\S*)", out)
    return sorted(n for n in names if n.startswith("freshet-"))


def wait_health(srv, status="ok", timeout=15):
    """Waits until a node's /health says status ("ok" or "degraded"); returns the body. With
    the Redis broker a node answers /health before it has reached Redis: tests wait for "ok"
    before they publish or stream."""
    deadline = time.monotonic() + timeout
    while True:
        h = srv.health()
        if h.get("status") == status:
            return h
        if time.monotonic() > deadline:
            fail(f"/health did not say status {status!r} within {timeout}s", h)
        time.sleep(0.05)


def broker_state(health):
    """The kind and status of /health's broker object (the Redis broker adds where its primary
    is, its subscriber's probe and its counters, see docs/REDIS.md)."""
    b = health.get("broker") or {}
    return {"kind": b.get("kind"), "status": b.get("status")}


def redis_node(redis, app=None, **kw):
    """A freshet node on this Redis (the bench app by default, broker from FRESHET_BROKER),
    started and connected (/health ok)."""
    srv = Server(app or BENCH_APP, env=redis.env(), **kw).start()
    wait_health(srv, "ok")
    return srv


class StreamReader:
    """Reads an open SSEStream on a thread of its own until stop() or the end of the stream, so
    a test can hold many streams while it publishes from other threads. events() may be called
    at any time."""

    def __init__(self, stream):
        import threading
        self.stream = stream
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set() and not self.stream.ended:
                self.stream.pump(0.1)
        except Exception as exc:  # reported by the test through .error
            self.error = repr(exc)

    def events(self):
        return [i for i in list(self.stream.parser.items) if isinstance(i, Event)]

    def comments(self):
        return [i for i in list(self.stream.parser.items) if isinstance(i, Comment)]

    def wait_events(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.events()) < n:
            if time.monotonic() > deadline or self.error or self.stream.ended:
                fail(f"{self.stream.path}: {len(self.events())} of {n} events after "
                     f"{timeout}s" + (f" ({self.error})" if self.error else "")
                     + (" (the stream ended)" if self.stream.ended else ""),
                     self.stream.raw[-800:])
            time.sleep(0.02)
        return self.events()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.stream.close()


# ----------------------------------------------------------------------------------------------
# WebSocket (RFC 6455): a client that builds every frame byte itself, so a test can send what a
# well-behaved library never would (unmasked frames, reserved bits, odd fragmentation), and
# reads the server's frames exactly as they arrive.


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_CONT, WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_accept_for(key):
    """The Sec-WebSocket-Accept a server must answer for this Sec-WebSocket-Key."""
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_new_key():
    import base64
    return base64.b64encode(os.urandom(16)).decode()


def ws_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length_form=None):
    """One frame's bytes. rsv: the three reserved bits as a number 0-7; mask_key: 4 bytes
    (random when None); length_form: 7, 16 or 64 forces that length encoding (a longer one
    than needed is legal), None picks the shortest."""
    payload = _enc(payload)
    n = len(payload)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    form = length_form or (7 if n <= 125 else 16 if n <= 0xFFFF else 64)
    mbit = 0x80 if mask else 0
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return head + key + masked


def ws_close_payload(code=None, reason=b""):
    if code is None:
        return b""
    return int(code).to_bytes(2, "big") + _enc(reason)


@dataclasses.dataclass
class WSFrame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    masked: bool
    t: float

    @property
    def close_code(self):
        """The close frame's status code (1005, as RFC 6455 reports it, when it has none)."""
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else 1005

    @property
    def close_reason(self):
        return self.payload[2:].decode("utf-8", "replace")

    @property
    def text(self):
        return self.payload.decode("utf-8")

    def describe(self):
        names = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
        what = names.get(self.opcode, f"op{self.opcode}")
        if self.opcode == WS_CLOSE:
            return f"close {self.close_code} {self.close_reason!r}"
        return f"{what}{'' if self.fin else ' (not fin)'} {self.payload[:300]!r}"


class WSClient:
    """A WebSocket connection over a raw socket. The handshake is sent at once; `status` and
    `response` hold the server's answer. With 101 the accept key is checked and frames can be
    sent (masked, as a client must) and read back one by one."""

    def __init__(self, port, path, headers=None, protocols=None, version="13", key=None,
                 origin=None, timeout=5, upgrade=True, host=None, sock=None):
        self.port = port
        self.path = path
        self.key = key if key is not None else ws_new_key()
        items = []
        if upgrade:
            items += [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        if version is not None:
            items.append(("Sec-WebSocket-Version", version))
        if self.key:
            items.append(("Sec-WebSocket-Key", self.key))
        if protocols:
            items.append(("Sec-WebSocket-Protocol", protocols))
        if origin:
            items.append(("Origin", origin))
        if host:
            items.append(("Host", host))
        items += _header_items(headers)
        self.conn = Conn(port, timeout=timeout, sock=sock)
        self.conn.send(build_request("GET", path, items, None, port))
        self.response = self.conn.read_head()
        self.status = self.response.status
        self.eof = False
        self.closed = False
        self.frames = []  # every frame read, in order
        if self.status != 101:
            self.response.body = self.conn.read_body(self.response)
            return
        accept = self.response.header("sec-websocket-accept")
        check_eq(accept, ws_accept_for(self.key), "Sec-WebSocket-Accept of the 101 answer")
        check_eq((self.response.header("upgrade") or "").lower(), "websocket",
                 "Upgrade header of the 101 answer")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if not self.closed:
            self.closed = True
            self.conn.close()

    # -- sending

    def send_raw(self, data):
        self.conn.send(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.conn.send(ws_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(WS_TEXT, _enc(text), **kw)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_close(self, code=None, reason=b""):
        self.send_frame(WS_CLOSE, ws_close_payload(code, reason))

    # -- reading

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        self.conn.sock.settimeout(left)
        try:
            data = self.conn.sock.recv(65536)
        except socket.timeout:
            return None
        except GONE:
            data = b""
        if not data:
            self.eof = True
            return b""
        self.conn.buf += data
        return data

    def recv_frame(self, timeout=5):
        """The next frame; None when the server closed the connection first. Fails when
        nothing arrives within timeout or the frame is one a server may not send (masked)."""
        deadline = time.monotonic() + timeout
        while True:
            buf = self.conn.buf
            frame, used = self._parse(buf)
            if frame is not None:
                self.conn.buf = buf[used:]
                self.frames.append(frame)
                check(not frame.masked, "the server sent a masked frame (RFC 6455 §5.1)",
                      frame.describe())
                return frame
            if self.eof:
                check(not buf, "connection closed in the middle of a frame", buf[:200])
                return None
            got = self._fill(deadline)
            if got is None:
                fail(f"no WebSocket frame from the server within {timeout}s",
                     {"buffered": self.conn.buf[:500],
                      "frames so far": [f.describe() for f in self.frames[-5:]]})

    @staticmethod
    def _parse(buf):
        if len(buf) < 2:
            return None, 0
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None, 0
            n = int.from_bytes(buf[2:4], "big")
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None, 0
            n = int.from_bytes(buf[2:10], "big")
            pos = 10
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None, 0
            key = buf[pos:pos + 4]
            pos += 4
        if len(buf) < pos + n:
            return None, 0
        payload = buf[pos:pos + n]
        if masked:
            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
        return WSFrame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload, masked,
                       time.monotonic()), pos + n

    def next_message(self, timeout=5, answer_pings=True):
        """The next data message (text or binary, reassembled from fragments) as a WSFrame;
        pings are answered with their payload (unless answer_pings is False) and passed over,
        pongs passed over. Fails on a close frame or EOF."""
        deadline = time.monotonic() + timeout
        parts, first = [], None
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                fail(f"connection closed while waiting for a message on {self.path}",
                     [x.describe() for x in self.frames[-5:]])
            if f.opcode == WS_PING:
                if answer_pings:
                    self.send_frame(WS_PONG, f.payload)
                continue
            if f.opcode == WS_PONG:
                continue
            if f.opcode == WS_CLOSE:
                fail(f"the server closed the WebSocket on {self.path} while a message was "
                     f"expected: {f.describe()}", [x.describe() for x in self.frames[-5:]])
            if first is None:
                check(f.opcode in (WS_TEXT, WS_BINARY), "continuation frame without a message",
                      f.describe())
                first = f
            else:
                check_eq(f.opcode, WS_CONT, "frame inside a fragmented message")
            parts.append(f.payload)
            if f.fin:
                return WSFrame(True, first.rsv, first.opcode, b"".join(parts), False, f.t)

    def next_json(self, timeout=5, **kw):
        """The next text message, decoded as JSON."""
        m = self.next_message(timeout, **kw)
        check_eq(m.opcode, WS_TEXT, "opcode of a message from the server")
        try:
            return json.loads(m.payload)
        except ValueError:
            fail("a text message from the server is not JSON", m.payload[:500])

    def next_control(self, type_, timeout=5):
        """Reads messages until a control message {"v":1,"type":type_}; returns it. Events
        that arrive before it are kept in self.skipped."""
        deadline = time.monotonic() + timeout
        self.skipped = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"no {type_!r} message on {self.path} within {timeout}s", self.skipped)
            m = self.next_json(left)
            if m.get("type") == type_:
                return m
            self.skipped.append(m)

    def events(self, n, timeout=5):
        """The next n event envelopes (messages without a "type"); fails on anything else."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"{len(out)} of {n} events on {self.path} within {timeout}s", out)
            m = self.next_json(left)
            check("type" not in m, f"a control message among the events on {self.path}",
                  {"message": m, "events so far": out})
            out.append(m)
        return out

    def expect_no_message(self, duration):
        """Nothing but pings or pongs arrive for duration seconds."""
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not self.conn.buf:
                if self._fill(deadline) is None:
                    return
                if self.eof and not self.conn.buf:
                    fail(f"the server closed {self.path} where it should have stayed open")
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f is None:
                fail(f"the server closed {self.path} where it should have stayed open")
            if f.opcode == WS_PING:
                self.send_frame(WS_PONG, f.payload)
            elif f.opcode != WS_PONG:
                fail(f"unexpected frame on {self.path}", f.describe())

    def expect_close(self, code, timeout=5, skip_messages=False):
        """Reads until a close frame, which must carry `code` (None: no status code at all);
        then the server must close the TCP connection. Returns the close frame. With
        skip_messages, data messages before the close are allowed (kept in self.skipped)."""
        deadline = time.monotonic() + timeout
        self.skipped = []
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                fail(f"the server closed the TCP connection without a close frame "
                     f"(expected close {code})", [x.describe() for x in self.frames[-5:]])
            if f.opcode == WS_CLOSE:
                break
            if f.opcode in (WS_PING, WS_PONG):
                continue
            check(skip_messages, f"expected close {code}, got another frame first",
                  [x.describe() for x in self.frames[-5:]])
            self.skipped.append(f)
        if code is None:
            check_eq(f.payload, b"", "close frame payload (an empty close is answered by one)")
        else:
            check_eq(f.close_code, code, f"close code (reason: {f.close_reason!r})")
            check(len(f.payload) <= 125, "close frame over 125 bytes", len(f.payload))
            try:
                f.payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                fail("close reason not UTF-8", f.payload)
        self.wait_tcp_close(max(1.0, deadline - time.monotonic()))
        return f

    def wait_tcp_close(self, timeout=3):
        """The server ends the TCP connection (after its close frame) within timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            got = self._fill(deadline)
            if got is None:
                fail(f"the server did not close the TCP connection within {timeout}s of its "
                     "close frame", self.conn.buf[:200])
        extra = self.conn.buf
        check(not extra, "bytes after the server's close frame", extra[:200])


def ws_connect(port, path, **kw):
    """A WSClient that must have been answered 101."""
    ws = WSClient(port, path, **kw)
    if ws.status != 101:
        ws.close()
        fail(f"WebSocket upgrade of {path}: expected 101, got {ws.status}", ws.response.summary())
    return ws


# ----------------------------------------------------------------------------------------------
# Long-polling: GET <stream route>?transport=poll answers with SSE-framed events and a length


def parse_sse(body):
    """The events of an SSE-framed body (a long-poll answer)."""
    p = SSEParser()
    p.feed(_enc(body), final=True)
    return [i for i in p.items if isinstance(i, Event)]


def poll_path(path, last_id=None):
    from urllib.parse import quote
    sep = "&" if "?" in path else "?"
    out = f"{path}{sep}transport=poll"
    if last_id is not None:
        out += "&lastEventId=" + quote(last_id, safe="")
    return out


# ---- NATS ---------------------------------------------------------------------------------

NATS_SERVER_BIN = os.environ.get("FRESHET_NATS_SERVER") or shutil.which("nats-server")


class NatsServer(_ServerProcess):
    """A nats-server with JetStream on a free port of 127.0.0.1, its store in a temp dir, and
    its monitoring port (for /healthz and /jsz). With `routes` (the cluster ports of its peers)
    and `cluster_port` it is one node of a cluster named `cluster`. Fails loudly when
    nats-server is missing or does not start: the NATS tests never skip. stop() and kill()
    signal the process by its PID; start() again reuses the same ports and store (a restart)."""

    def __init__(self, name="n1", cluster=None, cluster_port=None, routes=(), ready_timeout=15):
        self.name = name
        self.cluster = cluster
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.ready_timeout = ready_timeout
        self.dir = None
        self.port = None
        self.mport = None
        self.proc = None
        self.log_path = None
        self.starts = 0

    @property
    def url(self):
        return f"nats://{HOST}:{self.port}"

    @property
    def hostport(self):
        return f"{HOST}:{self.port}"

    def env(self, url=None, **extra):
        return dict(os.environ, FRESHET_BROKER=url or self.url, **extra)

    def start(self, wait_js=True):
        check(NATS_SERVER_BIN and os.access(NATS_SERVER_BIN, os.X_OK),
              "nats-server not found (install the nats-server package; the NATS tests need it "
              "and never skip)")
        if self.dir is None:
            self.dir = tempdir("freshet-nats-")
            _cleanups.append(self.kill)
        if self.port is None:
            self.port, self.mport = free_port(), free_port()
        self.starts += 1
        self.log_path = os.path.join(self.dir, f"nats-{self.starts}.log")
        cmd = [NATS_SERVER_BIN, "-a", HOST, "-p", str(self.port), "-m", str(self.mport),
               "-js", "-sd", os.path.join(self.dir, "store"), "-n", self.name,
               "-l", self.log_path]
        if self.cluster:
            cmd += ["--cluster_name", self.cluster,
                    "--cluster", f"nats://{HOST}:{self.cluster_port}",
                    "--routes", ",".join(f"nats://{HOST}:{p}" for p in self.routes)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.dir,
                                     preexec_fn=_die_with_parent)
        _live_redis.append(self)
        if wait_js and not self.wait_ready(self.ready_timeout):
            exited = self.proc.poll() is not None
            log = self.log_tail(30)
            self.kill()
            fail(f"nats-server {'exited' if exited else 'did not become healthy'}: "
                 f"{' '.join(cmd)}\n    log:\n{_indent(log, '    | ')}")
        return self

    def monitor(self, path, timeout=2):
        import urllib.request
        with urllib.request.urlopen(f"http://{HOST}:{self.mport}{path}", timeout=timeout) as r:
            return json.loads(r.read().decode())

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.monitor("/healthz").get("status") == "ok":
                    return True
            except Exception:
                pass
            time.sleep(0.1)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._forget()
        return self.proc.returncode

    def describe(self):
        pid = self.proc.pid if self.proc else "-"
        return f"nats-server {self.name} pid {pid}, port {self.port}"

    def stream_info(self, stream="freshet"):
        """The stream's details from /jsz (config, state, cluster leader), or None."""
        j = self.monitor("/jsz?accounts=true&streams=true&config=true")
        for acc in j.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") == stream:
                    return st
        return None


class NatsCluster:
    """Three nats-server nodes routed into one JetStream cluster."""

    def __init__(self, size=3, name="fr"):
        cports = [free_port() for _ in range(size)]
        self.nodes = [NatsServer(name=f"{name}{i + 1}", cluster=name, cluster_port=cports[i],
                                 routes=[p for k, p in enumerate(cports) if k != i])
                      for i in range(size)]

    def start(self):
        for n in self.nodes:
            n.start(wait_js=False)
        deadline = time.monotonic() + 30
        for n in self.nodes:
            if not n.wait_ready(max(1, deadline - time.monotonic())):
                fail(f"{n.describe()} did not become healthy", n.log_tail(30))
        return self

    @property
    def url(self):
        return "nats://" + ",".join(n.hostport for n in self.nodes)

    def leader(self, stream="freshet"):
        """The node that leads the stream now (per the live nodes' /jsz), or None."""
        for n in self.nodes:
            if not n.alive():
                continue
            try:
                st = n.stream_info(stream)
            except Exception:
                continue
            if st and (st.get("cluster") or {}).get("leader"):
                name = st["cluster"]["leader"]
                for m in self.nodes:
                    if m.name == name:
                        return m
        return None


class NatsConn:
    """A bare NATS client over a socket (the protocol is text): enough for tests to publish as
    an external producer would, with headers, and read the answer."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self._line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1}\r\nPING\r\n')
        while self._line() != b"PONG":
            pass
        self.sid = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("NATS closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("NATS closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, data, headers=None):
        """Publishes with a reply inbox; returns (headers text, payload) of the first answer."""
        self.sid += 1
        inbox = f"_INBOX.frtest{os.getpid()}.{self.sid}"
        self.sock.sendall(f"SUB {inbox} {self.sid}\r\n".encode())
        data = data.encode() if isinstance(data, str) else data
        if headers:
            hdr = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            hb = hdr.encode()
            self.sock.sendall(f"HPUB {subject} {inbox} {len(hb)} {len(hb) + len(data)}\r\n"
                              .encode() + hb + data + b"\r\n")
        else:
            self.sock.sendall(f"PUB {subject} {inbox} {len(data)}\r\n".encode() + data + b"\r\n")
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            parts = line.split()
            if parts[0] == b"MSG":
                return "", self._take(int(parts[-1]))
            if parts[0] == b"HMSG":
                body = self._take(int(parts[-1]))
                hl = int(parts[-2])
                return body[:hl].decode(), body[hl:]
