#!/usr/bin/env python3
"""The workspace example's stand-in for an app's existing backend: it knows the users, their
sessions and who is a member of which project. freshet's route scripts ask it over HTTP
(backend.lua); nothing here knows about freshet.

    python3 backend.py [--port 3001] [--delay SECONDS]

GET /api/session                        Cookie: sid=<session> → 200 {"id", "name"} or 401
GET /api/projects/<project>/members/<id>                      → 200 {"role"} or 404

The demo sessions are fixed: sid=demo-ann (editor of apollo, viewer of gemini), sid=demo-bob
(viewer of apollo), sid=demo-cy (member of nothing)."""

import argparse
import http.server
import json
import time
import urllib.parse

USERS = {"ann": "Ann", "bob": "Bob", "cy": "Cy"}
SESSIONS = {"demo-ann": "ann", "demo-bob": "bob", "demo-cy": "cy"}
MEMBERS = {"apollo": {"ann": "editor", "bob": "viewer"}, "gemini": {"ann": "viewer"}}


def cookie(header, name):
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: freshet pools its connections
    delay = 0.0

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.delay:
            time.sleep(self.delay)
        parts = [urllib.parse.unquote(p) for p in self.path.split("?")[0].split("/") if p]
        if parts == ["api", "session"]:
            user = SESSIONS.get(cookie(self.headers.get("Cookie"), "sid"))
            if not user:
                return self.answer(401, {"error": "no session"})
            return self.answer(200, {"id": user, "name": USERS[user]})
        if len(parts) == 5 and parts[:2] == ["api", "projects"] and parts[3] == "members":
            role = MEMBERS.get(parts[2], {}).get(parts[4])
            if not role:
                return self.answer(404, {"error": "not a member"})
            return self.answer(200, {"role": role})
        self.answer(404, {"error": "no such resource"})

    def log_message(self, fmt, *args):
        pass  # quiet: freshet's log says what happened


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3001)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = ap.parse_args()
    Handler.delay = args.delay
    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"workspace backend on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
