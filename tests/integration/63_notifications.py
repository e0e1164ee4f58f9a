"""The notifications starter against the real binary: the inbox is read with a `session`
cookie holding an HS256 JWT (made here with an HMAC of our own, with the secret the server was
given), never with a token in the URL; only the admin token may post; a notification reaches its
user only, as a critical event; a user who reconnects with the last id gets everything after it,
and one who comes back to a restarted server gets a `reset`. On Redis, a notification posted on
one node reaches the user on another, and the user may resume on either."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time

import frtest as ft

APP = os.path.join(ft.ROOT, "scripts", "examples", "notifications", "app.lua")
SECRET = "notifications-test-secret"
ADMIN = "admin-token-for-the-test"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims, secret=SECRET):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def session(user, ttl=3600, **extra):
    now = int(time.time())
    claims = {"sub": user, "aud": "notifications", "iat": now, "exp": now + ttl}
    claims.update(extra)
    return {"Cookie": f"session={sign(claims)}"}


def notify(srv, user, title, token=ADMIN, **fields):
    body = dict(fields, title=title)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return srv.post(f"/users/{user}/notifications", json.dumps(body), headers=headers)


def sent(srv, user, title, **fields):
    resp = notify(srv, user, title, **fields)
    ft.check_eq(resp.status, 201, f"POST a notification for {user} ({resp.summary()})")
    return resp.json()["id"]


def notifications(events):
    return [(e.id, json.loads(e.data)["title"]) for e in events if e.type == "notification"]


class Redis:
    """A redis-server of this test's own on a free port of 127.0.0.1, without persistence."""

    def __init__(self):
        binary = shutil.which("redis-server")
        ft.check(binary is not None, "redis-server is not installed (scripts/setup.sh installs it)")
        self.port = ft.free_port()
        self.dir = ft.tempdir("freshet-redis-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", ft.HOST, "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=ft._die_with_parent)
        deadline = time.monotonic() + 10
        while True:
            try:
                with ft.Conn(self.port, timeout=1) as c:
                    c.send(b"PING\r\n")
                    if c.read_until(b"\r\n").startswith(b"+PONG"):
                        return
            except (OSError, ft.Failure):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                ft.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run():
    ft.require_file(APP, "notifications example")
    env = dict(os.environ, NOTIFY_JWT_SECRET=SECRET, NOTIFY_ADMIN_TOKEN=ADMIN,
               FRESHET_BROKER="memory")
    last_id = None
    with ft.Server(APP, env=env) as srv:
        with ft.subtest("the inbox needs a session cookie; a token in the URL is not taken"):
            resp = srv.get("/inbox", headers={"Accept": "text/event-stream"})
            ft.check_eq(resp.check_error(401, "GET /inbox without a cookie"),
                        "no token: expected an Authorization: Bearer header or a 'session' cookie",
                        "401 message")
            token = session("ann")["Cookie"].split("=", 1)[1]
            resp = srv.get(f"/inbox?token={token}", headers={"Accept": "text/event-stream"})
            resp.check_error(401, "GET /inbox?token=")
            expired = session("ann", ttl=-60)
            resp = srv.get("/inbox", headers=dict(expired, Accept="text/event-stream"))
            ft.check_eq(resp.check_error(401, "an expired session"), "token expired", "401 message")

        with ft.subtest("only the admin token may post"):
            ft.check_eq(notify(srv, "ann", "x", token=None).check_error(401, "no admin token"),
                        "an admin token is required (Authorization: Bearer ...)", "401 message")
            ft.check_eq(notify(srv, "ann", "x", token="demo-admin-token").check_error(
                403, "the demo token when NOTIFY_ADMIN_TOKEN is set"), "wrong admin token", "message")
            ft.check_eq(notify(srv, "ann", "x", url="javascript:alert(1)").check_error(400, "a bad url"),
                        "url must be a path (/...) or an http(s) address", "400 message")

        with ft.subtest("a notification reaches its user only, as a critical event"):
            before = ft.metric(srv.metrics(), "freshet_events_published_total", priority="critical")
            with srv.stream("/inbox", headers=session("ann")) as ann, \
                    srv.stream("/inbox", headers=session("bob")) as bob:
                nid = sent(srv, "ann", "Export ready", body="42 rows", url="/exports/42")
                ev = ann.next_event()
                ft.check_eq((ev.id, ev.type), (nid, "notification"), "id and event name")
                data = json.loads(ev.data)
                ft.check_eq((data["title"], data["body"], data["url"]),
                            ("Export ready", "42 rows", "/exports/42"), "the notification")
                bob.expect_no_event(0.3)
                last_id = nid
            after = ft.metric(srv.metrics(), "freshet_events_published_total", priority="critical")
            ft.check_eq(after - before, 1, "critical events published")

        with ft.subtest("reconnecting with the last id delivers what came meanwhile, in order"):
            ids = [sent(srv, "ann", f"while away {i}") for i in range(3)]
            sent(srv, "bob", "not for ann")
            with srv.stream("/inbox", headers=session("ann"), last_event_id=last_id) as ann:
                got = notifications(ann.take(3))
                ft.check_eq(got, [(ids[i], f"while away {i}") for i in range(3)], "replayed")
                ann.expect_no_event(0.3)
            # The browser client's first request carries the id in the query instead.
            with srv.stream(f"/inbox?lastEventId={ids[0]}", headers=session("ann")) as ann:
                got = notifications(ann.take(2))
                ft.check_eq([i for i, _ in got], ids[1:], "replayed after ?lastEventId=")
            last_id = ids[-1]

        with ft.subtest("over WebSocket the cookie works the same"):
            with ft.ws_connect(srv.port, "/inbox", headers=session("ann"),
                               protocols="freshet.v1") as ws:
                nid = sent(srv, "ann", "over the socket")
                env_ = ws.events(1)[0]
                ft.check_eq((env_["topic"], env_["id"], env_["event"], env_["data"]["title"]),
                            ("user:ann", nid, "notification", "over the socket"), "the envelope")
            last_id = nid

        with ft.subtest("the demo sign-in's session opens the inbox"):
            with ft.ws_connect(srv.port, "/login", protocols="freshet.v1") as ws:
                ws.send_json({"type": "login", "id": "carol"})
                reply = ws.next_json()
            ft.check_eq((reply.get("type"), reply.get("id")), ("session", "carol"), f"reply {reply}")
            with srv.stream("/inbox", headers={"Cookie": f"other=1; session={reply['token']}"}) as s:
                nid = sent(srv, "carol", "welcome")
                ft.check_eq(notifications([s.next_event()]), [(nid, "welcome")], "carol's inbox")

        with ft.subtest("no Lua errors were logged"):
            ft.check("lua error" not in srv.log(), "the server logged a Lua error", srv.log_tail(30))

    with ft.subtest("after a restart (memory broker) the last id gets a reset, then new ones"):
        with ft.Server(APP, env=env) as srv:
            with srv.stream("/inbox", headers=session("ann"), last_event_id=last_id) as ann:
                ev = ann.next_event()
                ft.check_eq(ev.type, "reset", f"first event after a restart ({ev.data})")
                nid = sent(srv, "ann", "after the restart")
                ft.check_eq(notifications([ann.next_event()]), [(nid, "after the restart")],
                            "the next notification")

    with ft.subtest("on Redis: posted on one node, delivered on another, resumed on either"):
        redis = Redis()
        try:
            renv = dict(env, FRESHET_BROKER=f"redis://{ft.HOST}:{redis.port}")
            with ft.Server(APP, env=renv) as one, ft.Server(APP, env=renv) as two:
                ft.wait_health(one)  # /health answers before a node has reached Redis
                ft.wait_health(two)
                with two.stream("/inbox", headers=session("ann")) as ann:
                    time.sleep(0.3)  # the node subscribes to the topic in Redis
                    sent(one, "ann", "from node one")
                    ev = ann.next_event(timeout=5)
                    ft.check_eq(notifications([ev])[0][1], "from node one", "delivered on node two")
                    seen = ev.id
                ids = [sent(two, "ann", f"queued {i}") for i in range(2)]
                with one.stream("/inbox", headers=session("ann"), last_event_id=seen) as ann:
                    got = notifications(ann.take(2, timeout=5))
                    ft.check_eq(got, [(ids[0], "queued 0"), (ids[1], "queued 1")],
                                "resumed on node one from node two's id")
        finally:
            redis.stop()


ft.main(run, limit=90)
