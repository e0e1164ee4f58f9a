"""Lua hooks: errors -> 500 with file:line in the log, runaway hooks stopped by the budget,
auth rejections, filter, the req table, freshet.every / log / publish / shared."""

import json
import re
import time

import frtest as ft

FILES = {
    "app.lua": """
        local freshet = require "freshet"
        local app = freshet.app { budget = 1000000 }
        local n = 0
        local doomed = freshet.every(50, function() freshet.publish("cancelled", "fired") end)
        doomed:cancel()
        freshet.every(100, function()
          n = n + 1
          freshet.publish("ticks", tostring(n), { event = "tick" })
        end)
        app:stream("/sub/:topics", "routes/sub.lua")
        app:publish("/pub/:topic", "routes/pub.lua")
        app:publish("/boom", "routes/boom.lua")
        app:stream("/spin", "routes/spin.lua")
        app:stream("/guarded", "routes/guarded.lua")
        app:stream("/dm", "routes/dm.lua")
        app:publish("/dm/send", "routes/dmsend.lua")
        app:publish("/shared/:op/:key", "routes/shared.lua")
        app:publish("/echo/:a/:b", "routes/echo.lua")
        app:publish("/later", "routes/later.lua")
        return app
    """,
    "routes/sub.lua": ft.SUB_ROUTE,
    "routes/pub.lua": ft.PUB_ROUTE,
    # line numbers matter: error() is on line 5, the nil index on line 9
    "routes/boom.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.publish(req, body, who)
          if body == "explode" then
            error("kaboom")
          end
          if body == "index" then
            local t = nil
            return t.field
          end
          if body == "badtopic" then
            freshet.publish("bad\\ntopic", "x")
          end
          return { topic = "boom", data = body }
        end
        return route
    """,
    "routes/spin.lua": """
        local route = {}
        local function step(i) return i + 1 end
        function route.auth(req)
          if req.query.spin == "plain" then
            while true do end
          elseif req.query.spin == "calls" then
            local i = 0
            while true do i = step(i) end
          end
          return { id = "ok" }
        end
        function route.topics(req, who)
          if req.query.fail == "topics" then error("no topics for you") end
          return { "spin" }
        end
        return route
    """,
    "routes/guarded.lua": """
        local route = {}
        function route.auth(req)
          local token = req.headers["authorization"]
          if token == nil then return nil, 401, "token required" end
          if token ~= "Bearer good" then return nil, 403, "bad token" end
          return { id = "holder" }
        end
        function route.topics(req, who) return { "guarded" } end
        return route
    """,
    "routes/dm.lua": """
        local route = {}
        function route.auth(req)
          if not req.query.user then return nil, 401, "user required" end
          return { id = req.query.user }
        end
        function route.topics(req, who) return { "dm" } end
        function route.filter(event, who)
          if who.id == "carol" then
            -- sees only events whose table has the documented fields
            return event.topic == "dm" and type(event.id) == "string"
              and event.id:match("^%d+%-%d+$") ~= nil and type(event.published_at) == "number"
              and (event.priority == "normal" or event.priority == "telemetry")
          end
          if who.id == "ann" and (event.event == "secret" or event.priority == "telemetry") then
            return false
          end
          if type(event.data) ~= "table" then return event.data ~= "hide-me" end
          return event.data.to == nil or event.data.to == who.id
        end
        return route
    """,
    "routes/dmsend.lua": """
        local route = { body = "json" }
        function route.publish(req, body, who) return { topic = "dm", data = body } end
        return route
    """,
    "routes/shared.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.publish(req, body, who)
          local op, key, shared = req.params.op, req.params.key, freshet.shared
          local result
          if op == "set" then
            shared:set(key, body, tonumber(req.query.ttl))
            result = "ok"
          elseif op == "setnum" then
            shared:set(key, tonumber(body))
            result = "ok"
          elseif op == "setbool" then
            shared:set(key, body == "true")
            result = "ok"
          elseif op == "get" then
            result = shared:get(key)
          elseif op == "incr" then
            result = shared:incr(key, tonumber(body) or 1, 0)
          elseif op == "delete" then
            shared:delete(key)
            result = "deleted"
          end
          return { topic = "shared",
                   data = op .. " " .. key .. " = " .. type(result) .. ":" .. tostring(result) }
        end
        return route
    """,
    "routes/echo.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.publish(req, body, who)
          freshet.log("warn", "echo hook", req.params.a, 42)
          freshet.log("info", "echo info", req.params.b)
          return { topic = "echo", data = {
            method = req.method, path = req.path, params = req.params, query = req.query,
            header = req.headers["x-test"], remote = req.remote, body = body,
            now_ok = math.abs(freshet.now() - os.time() * 1000) < 5000,
          } }
        end
        return route
    """,
    "routes/later.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.publish(req, body, who)
          freshet.after(150, function() freshet.publish("later", body) end)
          return { topic = "later-ack", data = "scheduled" }
        end
        return route
    """,
}


def run():
    app = ft.AppDir(FILES)
    with ft.Server(app) as srv:
        port = srv.port

        with ft.subtest("a hook raising an error -> 500 and 'lua error in <script>:<line>'"):
            mark = srv.log_size()
            r = srv.post("/boom", b"explode")
            r.check_error(500, "publish hook calling error()")
            ft.check_eq(r.json(), {"error": "internal error"}, "body of the 500")
            srv.wait_log(r"lua error in \S*routes/boom\.lua:5 \(publish\) route /boom: .*kaboom",
                         start=mark)
            ft.check_eq(srv.post("/boom", b"fine").status, 201, "the next request succeeds")

            mark = srv.log_size()
            srv.post("/boom", b"index").check_error(500, "hook indexing nil")
            srv.wait_log(r"lua error in \S*routes/boom\.lua:9 \(publish\) route /boom: ", start=mark)
            mark = srv.log_size()
            srv.post("/boom", b"badtopic").check_error(500, "freshet.publish with a CR/LF topic")
            srv.wait_log(r"lua error in \S*routes/boom\.lua:\d+ \(publish\) route /boom: ", start=mark)
            ft.check_eq(srv.post("/boom", b"fine again").status, 201, "the next request succeeds")

        with ft.subtest("a runaway auth hook is stopped by the budget -> 500, server still serves"):
            for kind in ("plain", "calls"):
                mark = srv.log_size()
                started = time.monotonic()
                s = ft.SSEStream(port, f"/spin?spin={kind}", timeout=12)
                took = time.monotonic() - started
                s.close()
                s.response.check_error(500, f"infinite loop ({kind}) in auth")
                ft.check(took < 10, f"the budget took {took:.1f}s to stop the hook")
                srv.wait_log(r"lua error in \S*routes/spin\.lua:\d+ \(auth\) route /spin", start=mark)
                ft.check_eq(srv.get("/health").status, 200, "health after the runaway hook")
                with ft.open_stream(port, "/spin") as ok:
                    ft.check(ok.status == 200, "the same route without the loop streams")

        with ft.subtest("an error in the topics hook -> 500 with (topics) in the log"):
            mark = srv.log_size()
            s = ft.SSEStream(port, "/spin?fail=topics")
            s.close()
            s.response.check_error(500, "topics hook raising")
            srv.wait_log(r"lua error in \S*routes/spin\.lua:\d+ \(topics\) route /spin: "
                         r".*no topics for you", start=mark)

        with ft.subtest("auth rejecting -> its status and message"):
            s = ft.SSEStream(port, "/guarded")
            s.close()
            ft.check_eq(s.response.check_error(401, "no token"), "token required", "message of the 401")
            s = ft.SSEStream(port, "/guarded", headers={"Authorization": "Bearer bad"})
            s.close()
            ft.check_eq(s.response.check_error(403, "bad token"), "bad token", "message of the 403")
            with ft.open_stream(port, "/guarded", headers={"Authorization": "Bearer good"}):
                pass

        with ft.subtest("filter hides events from one user"):
            ann = ft.open_stream(port, "/dm?user=ann")
            bob = ft.open_stream(port, "/dm?user=bob")
            carol = ft.open_stream(port, "/dm?user=carol")
            msgs = [{"to": "bob", "text": "psst"}, {"text": "all"}, {"to": "ann", "text": "hi ann"}]
            sent = [(srv.publish("/dm/send", json.dumps(m)), m) for m in msgs]
            for data, headers in (("hide-me", {}), ("secret stuff", {"X-Event": "secret"}),
                                  ("noise", {"X-Priority": "telemetry"}), ("plain", {})):
                sent.append((srv.publish("/pub/dm", data, headers=headers), data))

            def seen(stream):
                return [(e.id, json.loads(e.data) if e.data.startswith("{") else e.data)
                        for e in stream.take(len(want))]

            for stream, want in ((ann, [1, 2, 6]), (bob, [0, 1, 4, 5, 6]),
                                 (carol, [0, 1, 2, 3, 4, 5, 6])):
                what = (f"events seen by {stream.path} (carol's filter passes only events with "
                        "topic, id, published_at and priority as documented)")
                ft.check_eq(seen(stream), [sent[i] for i in want], what)
                stream.expect_no_event(0.2)
                stream.close()

        with ft.subtest("the req table: method, path, params, query, headers, remote"):
            mark = srv.log_size()
            with ft.open_stream(port, "/sub/echo") as s:
                eid = srv.publish("/echo/p1/p2?x=1&y=two", "the body", headers={"X-Test": "yes"})
                e = s.next_event()
                ft.check_eq(e.id, eid, "id")
                got = json.loads(e.data)
                want = {"method": "POST", "path": "/echo/p1/p2", "params": {"a": "p1", "b": "p2"},
                        "query": {"x": "1", "y": "two"}, "header": "yes", "remote": "127.0.0.1",
                        "body": "the body", "now_ok": True}
                ft.check_eq(got, want, "req as the hook saw it")
            line = srv.wait_log(r"(?m)^.*echo hook p1 42\s*$", start=mark).group(0)
            # The message starts with the script's file:line, so a log line leads to its source.
            ft.check(re.match(r"^\S+ (?i:warn)\S* \S*routes/echo\.lua:\d+: echo hook p1 42", line)
                     is not None, "freshet.log line is not '<time> warn <file>:<line>: <message>'",
                     line)

        with ft.subtest("freshet.every publishes from a timer"):
            with ft.open_stream(port, "/sub/ticks") as s:
                got = s.take(4, timeout=3)
                ft.check(all(e.type == "tick" and e.data.isdigit() for e in got),
                         "timer events are 'tick' with a counter", got)
                ids = [ft.parse_id(e.id) for e in got]
                ft.check(all(a < b for a, b in zip(ids, ids[1:])), "timer event ids increase", ids)

        with ft.subtest("freshet.shared set/get/incr/delete across requests"):
            with ft.open_stream(port, "/sub/shared") as s:
                steps = [
                    ("set/k", b"hello", "set k = string:ok"),
                    ("get/k", b"", "get k = string:hello"),
                    ("incr/c", b"", "incr c = number:1"),
                    ("incr/c", b"5", "incr c = number:6"),
                    ("get/c", b"", "get c = number:6"),
                    ("setnum/f", b"2.5", "setnum f = string:ok"),
                    ("get/f", b"", "get f = number:2.5"),
                    ("setbool/b", b"true", "setbool b = string:ok"),
                    ("get/b", b"", "get b = boolean:true"),
                    ("delete/k", b"", "delete k = string:deleted"),
                    ("get/k", b"", "get k = nil:nil"),
                    ("set/t?ttl=1", b"short", "set t = string:ok"),
                    ("get/t", b"", "get t = string:short"),
                ]
                for path, body, want in steps:
                    srv.publish(f"/shared/{path}", body)
                    ft.check_eq(s.next_event().data, want, f"result of POST /shared/{path}")
                time.sleep(1.3)
                srv.publish("/shared/get/t", b"")
                ft.check_eq(s.next_event().data, "get t = nil:nil", "value after its 1 s ttl")

        with ft.subtest("freshet.after from a hook fires once; a cancelled timer never fires"):
            with ft.open_stream(port, "/sub/later") as later, \
                    ft.open_stream(port, "/sub/cancelled") as cancelled:
                started = time.monotonic()
                srv.publish("/later", "delayed")
                e = later.next_event(timeout=3)
                took = e.t - started
                ft.check_eq(e.data, "delayed", "data published by the timer")
                ft.check(took >= 0.1, f"freshet.after(150) fired after {took:.3f}s")
                later.expect_no_event(0.4)
                ft.check(not cancelled.events(), "a cancelled freshet.every timer fired",
                         cancelled.events())

    with ft.Server(app, args=["--log-level", "warn"]) as srv:
        with ft.subtest("--log-level warn drops info lines, keeps warn lines"):
            srv.publish("/echo/p1/p2", "x")
            srv.wait_log(r"echo hook p1 42")
            time.sleep(0.1)
            log = srv.log()
            ft.check("echo info" not in log, "an info line was logged at --log-level warn", log)
            ft.check("listening on" not in log, "an info line was logged at --log-level warn", log)

ft.main(run, limit=55)
