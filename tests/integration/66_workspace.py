"""The workspace starter against the real binary and the backend it ships (backend.py, started
here on a free port): the backend decides who is signed in (the sid cookie) and who may read or
post in which project; freshet asks it over HTTP from auth. A member follows the project, an
editor's post reaches the followers, a viewer may not post, a stranger is refused; with the
backend stopped, a new stream gets 503 (an EventSource: 200 and freshet-refused) and the log
says why; a slow backend (--delay) holds
up only the requests that wait on it."""

import json
import os
import subprocess
import sys
import time

import frtest as ft

EXAMPLE = os.path.join(ft.ROOT, "scripts", "examples", "workspace")
APP = os.path.join(EXAMPLE, "app.lua")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class BackendProc:
    """backend.py on a free port of 127.0.0.1, stopped by its PID."""

    def __init__(self, delay=0.0):
        self.port = ft.free_port()
        self.delay = delay
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [PY, os.path.join(EXAMPLE, "backend.py"), "--port", str(self.port),
             "--delay", str(self.delay)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = self.proc.stdout.readline().decode()
        ft.check("workspace backend on" in line, "backend.py did not start", line)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


def cookie(sid):
    return {"Cookie": f"sid={sid}"}


def post(srv, project, sid, text):
    headers = {"Content-Type": "application/json", **cookie(sid)}
    return srv.post(f"/projects/{project}/posts", json.dumps({"text": text}), headers=headers)


def run():
    with BackendProc() as backend:
        env = dict(os.environ, WORKSPACE_BACKEND=backend.url, FRESHET_BROKER="memory")
        with ft.Server(APP, env=env) as srv:
            with ft.subtest("a member follows the project; an editor's post reaches them"):
                bob = srv.stream("/projects/apollo/activity", headers=cookie("demo-bob"))
                resp = post(srv, "apollo", "demo-ann", "Deploy is green")
                ft.check_eq(resp.status, 201, f"ann's post ({resp.text})")
                ev = bob.next_event()
                ft.check_eq(ev.type, "post", "event name")
                data = json.loads(ev.data)
                ft.check_eq((data["by"], data["name"], data["text"]), ("ann", "Ann", "Deploy is green"),
                            "the post as the backend's user")
                bob.close()

            with ft.subtest("the backend's refusals: no session 401, a stranger 403, a viewer's post 403"):
                srv.get("/projects/apollo/activity", headers={"Accept": "text/event-stream"}) \
                    .check_error(401, "no session")
                srv.get("/projects/apollo/activity",
                        headers={"Accept": "text/event-stream", **cookie("demo-cy")}) \
                    .check_error(403, "not a member")
                post(srv, "apollo", "demo-bob", "me too").check_error(403, "a viewer posts")

            with ft.subtest("the backend stopped: 503 for a new stream (in the stream for an "
                            "EventSource), and a log line"):
                backend.stop()
                mark = srv.log_size()
                srv.get("/projects/gemini/activity?refusal=status",
                        headers={"Accept": "text/event-stream", **cookie("demo-ann")}) \
                    .check_error(503, "backend down")
                srv.get("/projects/gemini/activity",
                        headers={"Accept": "text/event-stream", **cookie("demo-ann")}) \
                    .check_refused("route", 503, "backend down, asked as an EventSource")
                srv.wait_log(r"backend .*connection refused", start=mark)

    with BackendProc(delay=0.5) as slow:
        env = dict(os.environ, WORKSPACE_BACKEND=slow.url, FRESHET_BROKER="memory")
        with ft.Server(APP, env=env) as srv:
            with ft.subtest("a slow backend holds up only the requests that ask it"):
                import threading
                result = {}

                def open_one():
                    result["s"] = ft.SSEStream(srv.port, "/projects/apollo/activity",
                                               headers=cookie("demo-bob"), timeout=10)
                th = threading.Thread(target=open_one)
                started = time.monotonic()
                th.start()
                time.sleep(0.1)
                t = time.monotonic()
                ft.check_eq(srv.get("/").status, 200, "the page while auth waits")
                ft.check(time.monotonic() - t < 0.3, "the page waited for the backend")
                th.join(10)
                took = time.monotonic() - started
                ft.check_eq(result["s"].status, 200, "the stream after two slow answers")
                ft.check(took >= 1.0, f"opened after {took:.2f}s: the backend answers in 0.5 s, twice")
                result["s"].close()


if __name__ == "__main__":
    ft.main(run)
