"""freshet.redis from hooks, against a real redis-server started on a free port: GET/SET/INCR
from auth, topics, a publish hook and a timer; the reply mapping (status, integer, bulk, nil,
arrays, error replies); 500 streams whose auth each INCRs one counter, all on one pipelined
connection; argument and command checks; Redis down and Redis stopped (SIGSTOP) answer the
script with nil, err quickly while /health keeps answering; a client that leaves while its hook
waits costs nothing afterwards; a waiting call in filter is an error; SIGHUP while hooks wait
lets them finish on the old scripts; without `redis =` the broker's Redis (password and db
from its URL) is used; with neither, nil, "no redis configured"."""

import json
import os
import signal
import threading
import time

import frtest as ft

APP = """
local freshet = require "freshet"
local app = freshet.app {
  redis = os.getenv("TEST_REDIS"),
  heartbeat = 1,
  timeouts = { hook = 3, redis = 1 },
  limits = { calls_per_hook = 12 },
}
app:stream("/me", "routes/me.lua")
app:publish("/pub/:topic", "routes/pub.lua")
app:stream("/sub/:topic", "routes/sub.lua")
app:stream("/count", "routes/count.lua")
app:stream("/types", "routes/types.lua")
app:stream("/bad/:what", "routes/bad.lua")
app:stream("/hold", "routes/hold.lua")
app:stream("/filtered", "routes/filtered.lua")
app:stream("/reload", "routes/reload.lua")
freshet.every(100, function()
  freshet.redis("INCR", "ticks")
end)
return app
"""

ROUTES = {
    # A session looked up in Redis: the pattern of docs/ROUTES.md §14.
    "routes/me.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          local user, err = freshet.redis("GET", "session:" .. (req.query.sid or ""))
          if not user then return nil, 503, "sessions: " .. err end
          if user == freshet.null then return nil, 401, "no such session" end
          return { id = user }
        end
        function route.topics(req, who)
          local rooms = assert(freshet.redis("SMEMBERS", "rooms:" .. who.id))
          table.sort(rooms)
          return rooms
        end
        return route
    """,
    "routes/pub.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.publish(req, body)
          local n, err = freshet.redis("INCR", "count:" .. req.params.topic)
          if not n then return nil, 503, err end
          return { topic = req.params.topic, data = body .. " #" .. n }
        end
        return route
    """,
    "routes/sub.lua": """
        local route = {}
        function route.topics(req) return { req.params.topic } end
        return route
    """,
    "routes/count.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          local n, err = freshet.redis("INCR", "opened")
          if not n then return nil, 503, "redis: " .. err end
          return { id = "n" .. n }
        end
        function route.topics() return { "counted" } end
        return route
    """,
    "routes/types.lua": """
        local freshet = require "freshet"
        local cjson = require "cjson"
        local route = {}
        local function show(v)
          if v == freshet.null then return "null" end
          if type(v) == "table" then
            local out = {}
            for i, x in ipairs(v) do out[i] = show(x) end
            if v.err then out.err = v.err end
            return out
          end
          if type(v) == "number" then return { "number", string.format("%.17g", v) } end
          return { type(v), v }
        end
        function route.auth(req)
          local r = {}
          r.set = show(freshet.redis("SET", "tk", "v"))
          freshet.redis("DEL", "tn", "tl")
          r.incrby = show(freshet.redis("INCRBY", "tn", 41.0))
          r.big = show(freshet.redis("INCRBY", "tn", 1e15))
          r.get = show(freshet.redis("GET", "tk"))
          r.missing = show(freshet.redis("GET", "no-such-key"))
          freshet.redis("RPUSH", "tl", "a", "b", 3)
          r.list = show(freshet.redis("LRANGE", "tl", 0, -1))
          r.nested = show(freshet.redis("EVAL", "return {1, 'x', false, {2, 'y'}, redis.error_reply('boom')}", 0))
          local v, err = freshet.redis("INCR", "tk")
          r.error = { v == nil, err }
          r.empty = show(freshet.redis("LRANGE", "no-such-list", 0, -1))
          freshet.redis("SET", "types-result", cjson.encode(r))
          return nil, 418, "see types-result"
        end
        function route.topics() return { "never" } end
        return route
    """,
    "routes/bad.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          local what = req.params.what
          if what == "table" then freshet.redis("GET", {}) end
          if what == "subscribe" then freshet.redis("subscribe", "x") end
          if what == "block" then freshet.redis("XREAD", "BLOCK", 0, "STREAMS", "s", "$") end
          if what == "nocmd" then freshet.redis(42) end
          if what == "many" then
            local last
            for i = 1, 20 do
              local ok, err = freshet.redis("PING")
              if not ok then return nil, 429, "call " .. i .. ": " .. err end
            end
          end
          return {}
        end
        function route.topics() return { "bad" } end
        return route
    """,
    "routes/hold.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          freshet.redis("DEBUG", "SLEEP", req.query.s or "0")
          freshet.redis("INCR", "after-hold")
          return {}
        end
        function route.topics() return { "held" } end
        return route
    """,
    "routes/filtered.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.topics() return { "f" } end
        function route.filter(ev, who)
          freshet.redis("GET", "x")
          return true
        end
        return route
    """,
    "routes/reload.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.auth(req)
          if req.query.wait then freshet.redis("DEBUG", "SLEEP", req.query.wait) end
          return { id = "version-1" }
        end
        function route.topics(req, who) return { "rl-" .. who.id } end
        return route
    """,
}


def redis_error(resp):
    return resp.text.strip()


def count_app_clients(redis):
    listing = redis.command("CLIENT", "LIST")
    return sum(1 for line in listing.splitlines() if "name=freshet-app" in line)


def run():
    ft.raise_nofile()
    redis = ft.RedisServer(extra_args=["--enable-debug-command", "yes"])
    redis.start()
    app = ft.AppDir({"app.lua": APP, **ROUTES})
    env = dict(os.environ, TEST_REDIS=redis.url)
    with ft.Server(app, env=env) as srv:
        sessions(srv, redis)
        publish_and_timer(srv, redis)
        reply_mapping(srv, redis)
        pipeline(srv, redis)
        misuse(srv)
        client_leaves(srv, redis)
        reload_while_waiting(srv, app, redis)
        redis_stopped(srv, redis)
        redis_down(srv, redis)
    no_redis()
    broker_default()
    bad_settings()


def sessions(srv, redis):
    with ft.subtest("auth and topics ask Redis: GET a session, SMEMBERS its rooms"):
        redis.command("SET", "session:s1", "ann")
        redis.command("SADD", "rooms:ann", "lobby", "dev")
        s = srv.stream("/me?sid=s1")
        ft.check_eq(s.status, 200, "a stream whose session Redis knows")
        ft.publish(srv.port, "/pub/dev", "hello")
        ev = s.next_event()
        ft.check_eq(ev.data, "hello #1", "the event on a room the topics hook read from Redis")
        s.close()
    with ft.subtest("a missing key is freshet.null: the script refuses with 401"):
        srv.get("/me?sid=nope", headers={"Accept": "text/event-stream"}).check_error(
            401, "unknown session")


def publish_and_timer(srv, redis):
    with ft.subtest("a publish hook INCRs; the event carries the count"):
        s = srv.stream("/sub/news")
        for i in range(1, 4):
            resp = ft.publish_raw(srv.port, "/pub/news", "flash")
            ft.check_eq(resp.status, 201, f"publish {i} ({resp.text})")
        ft.check_eq([e.data for e in s.take(3)], ["flash #1", "flash #2", "flash #3"],
                    "counts from Redis in order")
        ft.check_eq(redis.command("GET", "count:news"), "3", "the counter in Redis")
        s.close()
    with ft.subtest("a timer calls Redis every 100 ms"):
        first = int(redis.command("GET", "ticks") or 0)
        time.sleep(0.6)
        later = int(redis.command("GET", "ticks") or 0)
        ft.check(later - first >= 3, f"ticks went from {first} to {later} in 0.6 s")


def reply_mapping(srv, redis):
    with ft.subtest("replies: status, integers, bulk, null, arrays, nested errors, error replies"):
        resp = srv.get("/types", headers={"Accept": "text/event-stream"})
        ft.check_eq(resp.status, 418, f"the script's answer ({resp.text})")
        got = json.loads(redis.command("GET", "types-result"))
        ft.check_eq(got["set"], ["string", "OK"], "status reply")
        ft.check_eq(got["incrby"], ["number", "41"], "integer reply (a number argument sent as 41)")
        ft.check_eq(got["big"], ["number", "1000000000000041"], "1e15 sent as 1000000000000000")
        ft.check_eq(got["get"], ["string", "v"], "bulk reply")
        ft.check_eq(got["missing"], "null", "nil bulk is freshet.null")
        ft.check_eq(got["list"], [["string", "a"], ["string", "b"], ["string", "3"]], "array reply")
        ft.check_eq(got["nested"][:4], [["number", "1"], ["string", "x"], "null",
                                        [["number", "2"], ["string", "y"]]], "nested array")
        ft.check_eq(list(got["nested"][4]), ["err"], "an error inside an array is { err = }")
        ft.check(got["nested"][4]["err"].endswith("boom"), "its text", got["nested"][4])
        ft.check_eq(got["error"][0], True, "an error reply: nil first")
        ft.check(got["error"][1].startswith("ERR value is not an integer"),
                 "an error reply: Redis' words second", got["error"])
        # cjson encodes an empty table as {}: an empty array reply is an empty table.
        ft.check_eq(got["empty"], {}, "empty array")


def pipeline(srv, redis):
    with ft.subtest("500 streams at once, each auth INCRs: all open, the counter is 500, "
                    "on one connection"):
        redis.command("DEL", "opened")
        conns = []
        for _ in range(500):
            c = ft.Conn(srv.port, timeout=10)
            conns.append(c)
        started = time.monotonic()
        for c in conns:
            c.send(ft.build_request("GET", "/count", {"Accept": "text/event-stream"}, None,
                                    srv.port))
        statuses = []
        for c in conns:
            head = c.read_until(b"\r\n")
            statuses.append(head.split(b" ")[1])
        took = time.monotonic() - started
        ft.check_eq(statuses.count(b"200"), 500, "streams opened")
        ft.check_eq(redis.command("GET", "opened"), "500", "the counter")
        ft.check_eq(count_app_clients(redis), 1, "freshet.redis connections (one per worker)")
        ft.check(took < 5, f"500 opens took {took:.2f}s")
        for c in conns:
            c.close()


def misuse(srv):
    cases = [
        ("table", r"bad\.lua:5 .*bad argument #2 to GET \(string or number expected, got table\)"),
        ("subscribe", r"bad\.lua:6 .*SUBSCRIBE would change the connection every hook shares"),
        ("block", r"bad\.lua:7 .*XREAD BLOCK blocks the connection"),
        ("nocmd", r"bad\.lua:8 .*bad argument #1 'command' \(a command name expected, got number\)"),
    ]
    for what, pattern in cases:
        with ft.subtest(f"misuse is a Lua error naming the script's line: {what}"):
            mark = srv.log_size()
            srv.get(f"/bad/{what}", headers={"Accept": "text/event-stream"}).check_error(
                500, what)
            srv.wait_log(pattern, start=mark)
    with ft.subtest("more calls than limits.calls_per_hook: nil, err"):
        resp = srv.get("/bad/many?refusal=status", headers={"Accept": "text/event-stream"})
        resp.check_error(429, "past calls_per_hook")
        ft.check("call 13: too many backend calls in one hook (limits.calls_per_hook = 12)"
                 in resp.text, "the 13th call's error", resp.text)
    with ft.subtest("a waiting call in filter is an error naming the place"):
        mark = srv.log_size()
        s = srv.stream("/filtered")
        ft.publish(srv.port, "/pub/f", "x")
        srv.wait_log(r"filtered\.lua:5 .*cannot wait here", start=mark)
        s.close()


def client_leaves(srv, redis):
    with ft.subtest("a client that leaves while its hook waits on Redis: the hook is dropped"):
        redis.command("DEL", "after-hold")
        before = srv.metrics()
        # The first call holds Redis for 0.5 s; the others wait behind it in the pipeline.
        conns = [ft.Conn(srv.port) for _ in range(20)]
        for i, c in enumerate(conns):
            path = "/hold?s=0.5" if i == 0 else "/hold"
            c.send(ft.build_request("GET", path, {"Accept": "text/event-stream"}, None,
                                    srv.port))
            if i == 0:
                time.sleep(0.05)
        time.sleep(0.15)
        for c in conns:
            c.close()
        time.sleep(1.5)
        after = srv.metrics()
        conns_of = lambda m: sum(v for (n, _), v in m.items() if n == "freshet_connections")
        ft.check_eq(conns_of(after), conns_of(before), "connections left after the clients went")
        ft.check_eq(ft.metric(after, "freshet_lua_errors_total"),
                    ft.metric(before, "freshet_lua_errors_total"), "no hook ran on to an error")
        ft.check_eq(redis.command("GET", "after-hold"), None,
                    "no dropped hook went on to its next call")
        # The connection is still good for the next hook.
        resp = srv.get("/me?sid=nope", headers={"Accept": "text/event-stream"})
        ft.check_eq(resp.status, 401, "a call after the dropped ones")


def reload_while_waiting(srv, app, redis):
    with ft.subtest("SIGHUP while hooks wait on Redis: they finish on the old scripts"):
        result = {}

        def old_stream():
            result["s"] = ft.SSEStream(srv.port, "/reload?wait=0.6", timeout=10)
        th = threading.Thread(target=old_stream)
        th.start()
        time.sleep(0.15)
        mark = srv.log_size()
        app.write({"routes/reload.lua": ROUTES["routes/reload.lua"].replace("version-1",
                                                                             "version-2")})
        srv.send_signal(signal.SIGHUP)
        srv.wait_log("reloaded", start=mark)
        th.join(10)
        old = result["s"]
        ft.check_eq(old.status, 200, "the stream whose auth waited across the reload")
        new = srv.stream("/reload")
        ft.publish(srv.port, "/pub/rl-version-1", "one")
        ft.publish(srv.port, "/pub/rl-version-2", "two")
        ft.check_eq(old.next_event().data, "one #1", "the waiting hook ran on the old script")
        ft.check_eq(new.next_event().data, "two #1", "a stream after the reload: the new one")
        old.close()
        new.close()


def timed_get(srv, path):
    started = time.monotonic()
    resp = srv.get(path, headers={"Accept": "text/event-stream"}, timeout=10)
    return resp, time.monotonic() - started


def health_while(srv, path, n):
    """Opens n requests to path in threads and times 20 /health answers meanwhile."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(timed_get(srv, path)))
               for _ in range(n)]
    for th in threads:
        th.start()
    time.sleep(0.05)
    started = time.monotonic()
    for _ in range(20):
        ft.check_eq(srv.get("/health").status, 200, "health")
    health = time.monotonic() - started
    for th in threads:
        th.join(10)
    return results, health


def redis_stopped(srv, redis):
    with ft.subtest("Redis stopped (SIGSTOP): calls answer nil, \"timeout\" after timeouts.redis (1 s)"):
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            results, health = health_while(srv, "/me?sid=s1&refusal=status", 20)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        for resp, took in results:
            resp.check_error(503, "auth while Redis is stopped")
            ft.check("sessions: timeout" in resp.text, "the script saw timeout", resp.text)
            ft.check(0.9 < took < 2.5, f"answered after {took:.2f}s with timeouts.redis = 1")
        ft.check(health < 0.5, f"20 /health took {health:.3f}s while hooks waited on Redis")
    with ft.subtest("Redis back: calls succeed again"):
        deadline = time.monotonic() + 5
        while True:
            s = ft.SSEStream(srv.port, "/me?sid=s1", timeout=10)
            s.close()
            if s.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        ft.check_eq(s.status, 200, f"auth after Redis came back ({s.response.summary()})")


def redis_down(srv, redis):
    with ft.subtest("Redis down: nil, \"connection refused\" at once; /health stays fast"):
        redis.stop()
        seen = set()
        # The first call hears the connection close; once the backoff (50 ms, doubling) is
        # over, a call tries again and hears the refusal, and calls until the next try hear it
        # at once.
        for _ in range(10):
            resp, took = timed_get(srv, "/me?sid=s1&refusal=status")
            resp.check_error(503, "auth with Redis down")
            seen.add(resp.text.strip())
            ft.check(took < 0.5, f"answered after {took:.2f}s with Redis down")
            time.sleep(0.1)
        ft.check(any("connection refused" in t for t in seen), "the script saw connection "
                 "refused", seen)
        results, health = health_while(srv, "/me?sid=s1&refusal=status", 20)
        ft.check(all(r.status == 503 for r, _ in results), "every auth answered 503")
        ft.check(health < 0.5, f"20 /health took {health:.3f}s with Redis down")


def no_redis():
    with ft.subtest("no redis = and a memory broker: nil, \"no redis configured\""):
        app = ft.AppDir({"app.lua": """
            local freshet = require "freshet"
            local app = freshet.app {}
            app:stream("/me", "routes/me.lua")
            return app
        """, "routes/me.lua": ROUTES["routes/me.lua"]})
        with ft.Server(app) as srv:
            resp = srv.get("/me?sid=x&refusal=status", headers={"Accept": "text/event-stream"})
            resp.check_error(503, "auth without Redis")
            ft.check("sessions: no redis configured" in resp.text, "the error", resp.text)


def broker_default():
    with ft.subtest("without redis =, the broker's Redis, with its password and db"):
        redis = ft.RedisServer(extra_args=["--requirepass", "s3cret"])
        redis.start()
        with redis.conn() as c:
            c.command("AUTH", "s3cret")
            c.command("SELECT", "2")
            c.command("SET", "session:b1", "bob")
            c.command("SADD", "rooms:bob", "lobby")
        app = ft.AppDir({"app.lua": """
            local freshet = require "freshet"
            local app = freshet.app { broker = os.getenv("TEST_BROKER") }
            app:stream("/me", "routes/me.lua")
            app:publish("/pub/:topic", "routes/pub.lua")
            return app
        """, "routes/me.lua": ROUTES["routes/me.lua"], "routes/pub.lua": ROUTES["routes/pub.lua"]})
        env = dict(os.environ, TEST_BROKER=f"redis://:s3cret@127.0.0.1:{redis.port}/2")
        with ft.Server(app, env=env) as srv:
            s = srv.stream("/me?sid=b1")
            ft.check_eq(s.status, 200, "a session found in db 2 of the broker's Redis")
            resp = ft.publish_raw(srv.port, "/pub/lobby", "hi")
            ft.check_eq(resp.status, 201, f"publish through the Redis broker ({resp.text})")
            ft.check_eq(s.next_event().data, "hi #1", "the event, counted in Redis")
            s.close()
        with redis.conn() as c:
            c.command("AUTH", "s3cret")
            c.command("SELECT", "2")
            ft.check_eq(c.command("GET", "count:lobby"), "1", "the counter in db 2")
        redis.stop()


def bad_settings():
    cases = [
        ('redis = "redis-sentinel://127.0.0.1:26379/mm"',
         'freshet.app: redis must be "redis://[user:password@]host:port[/db]" or "unix:///path", '
         'got "redis-sentinel://127.0.0.1:26379/mm"'),
        ('redis = "redis://127.0.0.1:99999"',
         "freshet.app: redis: bad port in \"redis://127.0.0.1:99999\""),
        ('redis = "redis://127.0.0.1:6379?replicas=1"',
         "freshet.app: redis: no ?parameters here (replicas and wait are the broker's)"),
        ("timeouts = { redis = 0 }", "freshet.app: timeouts.redis must be a number > 0, got 0"),
        ("limits = { redis_calls = 0 }",
         "freshet.app: limits.redis_calls must be an integer >= 1, got 0"),
    ]
    for setting, message in cases:
        with ft.subtest(f"--check names a bad setting at its line: {setting}"):
            app = ft.AppDir({"app.lua": f"""
                local freshet = require "freshet"
                local app = freshet.app {{
                  {setting},
                }}
                return app
            """})
            p = ft.run_cli(["--check", app.app])
            ft.check(p.returncode != 0, "--check passed a bad setting", p.stdout + p.stderr)
            out = (p.stdout + p.stderr).decode()
            ft.check("app.lua:2: " + message in out, "the message at the app file's line", out)


if __name__ == "__main__":
    ft.main(run, limit=110)
