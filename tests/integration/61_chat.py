"""The chat starter against the real binary: the demo sign-in over WebSocket hands out HS256
tokens (checked here with an HMAC of our own, using the secret the server was given), a token
opens a room's stream and names the sender of a POST, bad and expired tokens are refused with
their reason, a message said over the room's WebSocket reaches an SSE listener, and the page and
the browser client are served. The token-less `user` query keeps working (60_example_curl)."""

import base64
import hashlib
import hmac
import json
import os
import time

import frtest as ft

SECRET = "chat-test-secret-0123456789"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims, secret=SECRET):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def verify(token, secret=SECRET):
    """The claims of a token whose HS256 signature under secret is right; fails otherwise."""
    parts = token.split(".")
    ft.check_eq(len(parts), 3, "a JWT has three parts")
    mac = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    ft.check(hmac.compare_digest(b64url(mac), parts[2]),
             "the token's signature is HMAC-SHA256 of its first two parts under the secret", token)
    ft.check_eq(json.loads(b64url_decode(parts[0])), {"alg": "HS256", "typ": "JWT"}, "JWT header")
    return json.loads(b64url_decode(parts[1]))


def login(srv, name, room=None):
    """Signs in as the page does (POST /login, an app:http route); returns (status, answer)."""
    body = {"name": name} if room is None else {"name": name, "room": room}
    r = srv.post("/login", json.dumps(body), headers={"Content-Type": "application/json"})
    return r.status, r.json()


def run():
    app = os.path.join(ft.ROOT, "scripts", "examples", "chat", "app.lua")
    ft.require_file(app, "chat example")
    env = dict(os.environ, CHAT_JWT_SECRET=SECRET, FRESHET_BROKER="memory")
    with ft.Server(app, env=env) as srv:
        token = None
        with ft.subtest("the demo sign-in hands out a 15-minute HS256 token for the name"):
            before = int(time.time())
            status, reply = login(srv, "ann")
            ft.check_eq(status, 200, f"POST /login ({reply})")
            ft.check_eq((reply.get("name"), reply.get("expires_in")), ("ann", 900), "name, expires_in")
            token = reply["token"]
            claims = verify(token)
            ft.check_eq((claims.get("sub"), claims.get("aud")), ("ann", "chat"), "sub and aud claims")
            ft.check(before - 2 <= claims.get("iat", 0) <= time.time() + 2, "iat is now", claims)
            ft.check_eq(claims.get("exp") - claims.get("iat"), 900, "exp - iat")

        with ft.subtest("sign-in refuses bad names, and GET"):
            ft.check_eq(login(srv, "a b"),
                        (400, {"error": "user name may only use letters, digits, '_', '-' and '.'"}),
                        "a login with a space in the name")
            srv.get("/login").check_error(405, "GET /login")

        with ft.subtest("sign-in with a room answers its position: the page loses nothing"):
            first = srv.post("/rooms/gap/messages", json.dumps({"user": "bob", "text": "old"}),
                             headers={"Content-Type": "application/json"}).json()["id"]
            status, reply = login(srv, "ann", "gap")
            ft.check_eq((status, reply.get("room"), reply.get("position")), (200, "gap", first),
                        "the room's position at sign-in")
            missed = srv.post("/rooms/gap/messages", json.dumps({"user": "bob", "text": "meanwhile"}),
                              headers={"Content-Type": "application/json"}).json()["id"]
            with ft.open_stream(srv.port, f"/rooms/gap/events?token={reply['token']}",
                                last_event_id=reply["position"]) as s:
                e = s.next_event()
                ft.check_eq((e.id, json.loads(e.data)["text"]), (missed, "meanwhile"),
                            "the message posted between sign-in and stream")

        with ft.subtest("a token opens the room and names the sender of a POST"):
            with srv.stream(f"/rooms/lobby/events?token={token}") as ann:
                resp = srv.post("/rooms/lobby/messages", json.dumps({"text": "signed in"}),
                                headers={"Content-Type": "application/json",
                                         "Authorization": f"Bearer {token}"})
                ft.check_eq(resp.status, 201, f"POST with a token ({resp.summary()})")
                ev = ann.next_event()
                ft.check_eq(ev.type, "message", "event name")
                data = json.loads(ev.data)
                ft.check_eq((data["user"], data["text"]), ("ann", "signed in"), "the message")
                ft.check_eq(ev.id, resp.json()["id"], "the event's id is the one the POST returned")

                resp = srv.post("/rooms/lobby/messages",
                                json.dumps({"user": "bob", "text": "pretending"}),
                                headers={"Authorization": f"Bearer {token}"})
                ft.check_eq(resp.check_error(403, "POST as someone else"),
                            "the token is for 'ann', not 'bob'", "403 message")
                ann.expect_no_event(0.3)

        with ft.subtest("bad, foreign and expired tokens are refused with the reason"):
            now = int(time.time())
            cases = [
                (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "bad signature"),
                (sign({"sub": "ann", "aud": "chat", "exp": now + 60}, "another secret"),
                 "bad signature"),
                (sign({"sub": "ann", "aud": "chat", "iat": now - 1000, "exp": now - 100}),
                 "token expired"),
                (sign({"sub": "ann", "aud": "billing", "exp": now + 60}), "wrong audience"),
                (sign({"aud": "chat", "exp": now + 60}), "missing claim 'sub'"),
            ]
            for bad, why in cases:
                resp = srv.get(f"/rooms/lobby/events?token={bad}",
                               headers={"Accept": "text/event-stream"})
                ft.check_eq(resp.check_error(401, f"stream with a token that should fail: {why}"),
                            why, "401 message")

        with ft.subtest("a message said over the room's WebSocket reaches an SSE listener"):
            with srv.stream("/rooms/kitchen/events?user=eve") as eve, \
                    ft.ws_connect(srv.port, f"/rooms/kitchen/events?token={token}",
                                  protocols="freshet.v1") as ws:
                ws.send_json({"type": "say", "text": "over the socket"})
                # The hook's reply goes out at once; the publish reaches every stream of the
                # room, the sender's own included, when the server fans out (the same turn of
                # its loop), so the two may come in either order.
                reply = ws.next_control("said")
                own = ws.skipped[0] if ws.skipped else ws.next_json()
                ft.check_eq(len(ws.skipped), 1 if ws.skipped else 0,
                            "one envelope, the sender's own message, around the reply")
                env_ = own
                ft.check_eq((env_["topic"], env_["event"], env_["data"]["user"], env_["data"]["text"]),
                            ("room:kitchen", "message", "ann", "over the socket"),
                            "the envelope of the sender's own message")
                ev = eve.next_event()
                data = json.loads(ev.data)
                ft.check_eq((ev.type, data["user"], data["text"]),
                            ("message", "ann", "over the socket"), "event seen over SSE")
                ft.check_eq(reply.get("id"), ev.id, "the reply carries the event's id")

                ws.send_json({"type": "say", "text": "   "})
                ft.check_eq(ws.next_json(), {"type": "error", "error": "text must be a non-empty string"},
                            "reply to an empty message")
                ws.send_json({"type": "shout", "text": "x"})
                reply = ws.next_json()
                ft.check("unknown message type" in reply.get("error", ""), "reply to an unknown type", reply)
                eve.expect_no_event(0.3)

        with ft.subtest("the page and the browser client are served"):
            page = srv.get("/")
            ft.check_eq(page.status, 200, "GET /")
            ft.check("/_freshet/freshet.js" in page.text and "chat.js" in page.text,
                     "the page loads the client and chat.js", page.text[:500])
            js = srv.get("/chat.js")
            ft.check_eq(js.status, 200, "GET /chat.js")
            ft.check("signIn" in js.text and "/login" in js.text, "chat.js signs in over /login")
            ft.check_eq(srv.get("/_freshet/freshet.js").status, 200, "GET /_freshet/freshet.js")

        with ft.subtest("no token: the user query and the body's user still work"):
            with srv.stream("/rooms/lobby/events?user=ann") as ann:
                ft.publish(srv.port, "/rooms/lobby/messages", json.dumps({"user": "bob", "text": "hi"}))
                data = json.loads(ann.next_event().data)
                ft.check_eq((data["user"], data["text"]), ("bob", "hi"), "message without tokens")

        with ft.subtest("no Lua errors were logged"):
            ft.check("lua error" not in srv.log(), "the server logged a Lua error", srv.log_tail(30))


ft.main(run, limit=60)
