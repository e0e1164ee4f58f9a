"""freshet.redis with broker = "redis-sentinel://…" and no `redis` setting: calls go to the
primary the broker follows (one primary, one replica, three Sentinels). After the primary is
killed, calls fail with nil, err for a while, never hang the hook, and then reach the new
primary; no freshet.redis connection ever goes to the old one."""

import time

import frtest as ft

APP = """
local freshet = require "freshet"
local app = freshet.app { broker = os.getenv("TEST_BROKER"), heartbeat = 1 }
app:stream("/hit", "routes/hit.lua")
return app
"""

ROUTES = {
    "routes/hit.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          local n, err = freshet.redis("INCR", "hits")
          if not n then return nil, 503, "redis: " .. err end
          return { id = "n" .. n }
        end
        function route.topics() return { "hits" } end
        return route
    """,
}


def hit(srv):
    """One stream open; returns (status, seconds, body of a refusal)."""
    started = time.monotonic()
    # ?refusal=status: a refusal as a status code, not an EventSource's in-stream retry
    s = ft.SSEStream(srv.port, "/hit?refusal=status", timeout=10)
    s.close()
    return s.status, time.monotonic() - started, s.response.summary()


def app_clients(server):
    # A fresh connection: Sentinels close client connections of a server they promote.
    try:
        with server.conn() as c:
            listing = c.command("CLIENT", "LIST")
    except (OSError, ConnectionError):
        return 0
    return sum(1 for line in listing.splitlines() if "name=freshet-app" in line)


def run():
    group = ft.SentinelGroup(replicas=1).start()
    old, replica = group.servers[0], group.servers[1]
    app = ft.AppDir({"app.lua": APP, **ROUTES})
    env = dict(ft.os.environ, TEST_BROKER=group.url())
    with ft.Server(app, env=env) as srv:
        ft.wait_health(srv)
        with ft.subtest("calls go to the primary the Sentinels name"):
            for _ in range(3):
                status, _, why = hit(srv)
                ft.check_eq(status, 200, f"a stream whose auth INCRs ({why})")
            ft.check_eq(old.command("GET", "hits"), "3", "the counter on the primary")
            ft.check_eq(app_clients(old), 1, "freshet.redis connections to the primary")
            ft.check_eq(app_clients(replica), 0, "freshet.redis connections to the replica")

        with ft.subtest("the primary is killed: calls fail fast, then reach the new primary"):
            old.kill()
            t_kill = time.monotonic()
            failures = 0
            while True:
                status, took, why = hit(srv)
                ft.check(took < 1.5, f"a call took {took:.2f}s during the failover ({why})")
                if status == 200:
                    break
                ft.check_eq(status, 503, f"an auth during the failover ({why})")
                failures += 1
                ft.check(time.monotonic() - t_kill < 20, "no call reached a primary within 20 s "
                         "of the kill", why)
                time.sleep(0.1)
            ft.check(failures > 0, "some calls failed while there was no primary")
            ft.check_eq(group.primary_port(), replica.port, "the Sentinels' new primary")
            with replica.conn() as c:
                ft.check(int(c.command("GET", "hits")) >= 4, "the counter on the new primary")
            ft.check_eq(app_clients(replica), 1, "freshet.redis connections to the new primary")
    group.stop()


if __name__ == "__main__":
    ft.main(run, limit=110)
