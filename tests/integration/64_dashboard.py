"""The dashboard starter against the real binary: every second the server's own metrics
(freshet.metrics()) are published; a viewer without a token sees only connection counts, a pro
token (made here with an HMAC of our own) sees every counter, and the counts agree with what the
server reports elsewhere (GET /health, /proc); a bad token is refused; free viewers are
rate-limited by their tier; the page is served."""

import base64
import hashlib
import hmac
import json
import os
import time

import frtest as ft

APP = os.path.join(ft.ROOT, "scripts", "examples", "dashboard", "app.lua")
SECRET = "dashboard-test-secret"
PUBLIC_KEYS = {"node", "at", "connections", "streams"}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims, secret=SECRET):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def viewer_token(plan, name="ann", secret=SECRET):
    now = int(time.time())
    return sign({"sub": name, "plan": plan, "aud": "dashboard", "iat": now, "exp": now + 600},
                secret)


def snapshots(events, kind):
    return [json.loads(e.data) for e in events if e.type == kind]


def run():
    ft.require_file(APP, "dashboard example")
    env = dict(os.environ, DASHBOARD_JWT_SECRET=SECRET, FRESHET_BROKER="memory")
    with ft.Server(APP, env=env) as srv:
        pro_token = viewer_token("pro")
        with ft.subtest("a pro viewer gets every counter, once a second, and they are true"):
            with srv.stream(f"/dashboard/events?token={pro_token}") as pro:
                got = snapshots(pro.take(3, timeout=6), "full")
                ft.check_eq(len(got), 3, "three full snapshots (and nothing else)")
                ft.check(all(e.type == "full" for e in pro.events()), "only `full` events",
                         [e.type for e in pro.events()])
                gaps = [b["at"] - a["at"] for a, b in zip(got, got[1:])]
                ft.check(all(800 <= g <= 1500 * (2 if ft.SANITIZED else 1) for g in gaps),
                         "snapshots come about a second apart", gaps)
                last = got[-1]
                for key in ("connections", "streams", "topics", "requests", "published",
                            "delivered", "dropped", "conflated", "replayed", "resumes",
                            "lua_errors", "uptime", "rss", "rates", "broker"):
                    ft.check(key in last, f"the full snapshot has '{key}'", last)
                ft.check_eq(sorted(last["published"]), ["critical", "normal", "telemetry"],
                            "published by priority")
                ft.check_eq(last["broker"], "memory", "broker")
                # Two snapshots a second (public and full) are published by the app itself.
                ft.check(last["rates"].get("published", 0) >= 1.5,
                         "published / s counts the app's own snapshots", last["rates"])
                ft.check(last["published"]["telemetry"] > got[0]["published"]["telemetry"],
                         "the telemetry count grows", [g["published"] for g in got])
                # While nothing changes, the next snapshot's counts match /health.
                health = srv.health()
                nxt = snapshots([pro.next_event(timeout=3)], "full")[0]
                ft.check_eq((nxt["streams"], nxt["connections"]),
                            (health["streams"], health["connections"] - 1),
                            "streams and connections against GET /health (whose own connection "
                            "is gone by the next snapshot)")
                rss_kb = srv.rss_kb()
                ft.check(abs(nxt["rss"] / 1024 - rss_kb) < max(0.25 * rss_kb, 4096),
                         f"rss {nxt['rss']} bytes against VmRSS {rss_kb} kB")
                ft.check(0 < nxt["uptime"] < 60, "uptime in seconds", nxt["uptime"])

        with ft.subtest("a free viewer sees connection counts only"):
            with srv.stream("/dashboard/events") as free:
                free.drain(2.5)
                events = free.events()
                ft.check(events and all(e.type == "public" for e in events),
                         "free viewers get `public` events only", [e.type for e in events])
                for snap in snapshots(events, "public"):
                    ft.check_eq(set(snap), PUBLIC_KEYS, "keys of a public snapshot")
                    ft.check(snap["streams"] >= 1 and snap["connections"] >= 1,
                             "the viewer counts itself", snap)

        with ft.subtest("a pro viewer may ask for the free view"):
            with srv.stream(f"/dashboard/events?view=free&token={pro_token}") as s:
                ev = s.next_event(timeout=3)
                ft.check_eq(ev.type, "public", "event type with view=free")

        with ft.subtest("a bad token is refused, not treated as free"):
            for bad, why in ((viewer_token("pro", secret="guess"), "bad signature"),
                             (sign({"sub": "ann", "plan": "pro", "aud": "other",
                                    "exp": int(time.time()) + 60}), "wrong audience")):
                resp = srv.get(f"/dashboard/events?token={bad}", headers={"Accept": "text/event-stream"})
                ft.check_eq(resp.check_error(401, f"a token that should fail: {why}"), why, "message")

        with ft.subtest("the demo sign-in hands out a pro token"):
            with ft.ws_connect(srv.port, "/login", protocols="freshet.v1") as ws:
                ws.send_json({"type": "login", "name": "eve", "plan": "pro"})
                reply = ws.next_json()
            ft.check_eq((reply.get("type"), reply.get("plan")), ("token", "pro"), f"reply {reply}")
            with srv.stream(f"/dashboard/events?token={reply['token']}") as s:
                ft.check_eq(s.next_event(timeout=3).type, "full", "the demo token sees everything")

        with ft.subtest("the page is served with the browser client"):
            page = srv.get("/")
            ft.check_eq(page.status, 200, "GET /")
            ft.check("/_freshet/freshet.js" in page.text and "dashboard.js" in page.text,
                     "the page loads the client and dashboard.js", page.text[:400])
            ft.check_eq(srv.get("/dashboard.js").status, 200, "GET /dashboard.js")

        with ft.subtest("free viewers are rate-limited by their tier (3 at once, then 1 per 5 s)"):
            # Earlier free streams took tokens from the same bucket (the client's address):
            # a 429 comes within four new dashboards.
            # The page's client reads statuses (refusal=status): 429 with Retry-After.
            refused = None
            for _ in range(4):
                s = ft.SSEStream(srv.port, "/dashboard/events?refusal=status")
                s.close()
                if s.status == 429:
                    refused = s
                    break
                ft.check_eq(s.status, 200, "a free dashboard within the burst")
            ft.check(refused is not None, "no 429 after four free dashboards in a row")
            ft.check(int(refused.response.header("retry-after", "0")) >= 1,
                     "the 429 says when to retry", refused.response.summary())
            ft.check("too many new streams" in refused.response.text, "the 429 says why",
                     refused.response.summary())
            # A bare EventSource gets the refusal in the stream, and comes back by itself.
            s = ft.SSEStream(srv.port, "/dashboard/events")
            s.close()
            data = s.response.check_refused("rate_limit", 429, "a bare EventSource past the tier")
            ft.check(data["retry_ms"] >= 1000, "the refusal says when to retry", data)
            with srv.stream(f"/dashboard/events?token={viewer_token('pro', name='zed')}") as s:
                ft.check_eq(s.status, 200, "a pro viewer has a bucket of its own")

        with ft.subtest("no Lua errors were logged"):
            ft.check("lua error" not in srv.log(), "the server logged a Lua error", srv.log_tail(30))


ft.main(run, limit=60)
