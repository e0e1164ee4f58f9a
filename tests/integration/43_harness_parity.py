"""The route-test harness and the server refuse the same bad input with the same words.

One app, run twice: by the real binary, and by freshet.test under a plain luajit with
freshet.native built from the rockspec's sources (as tests/integration/16_busted.sh builds it).
Every case in cases.lua (empty topic; CR, LF, NUL or bad UTF-8 in topic, event name or data;
bad priorities; several faults at once; a few good events as controls) goes through:

  route   a publish route that returns the event (POST /route/<n>)
  hook    freshet.publish from a publish hook (POST /hook/<n>)
  timer   freshet.publish from freshet.after(0, ...) (POST /timer/<n>, then /read/timer:<n>)
  filter  freshet.publish from a filter, during a delivery (POST /poke/<n> to a watched topic)
  stream  a stream whose topics hook names the case's topic (GET /stream/<n>)

plus request targets that do not percent-decode, and the answers of an app:http route's handle
(good and bad shapes: GET /answer/<n>, srv:http in the harness). Both sides' answers are produced at run time
and compared case by case: the test holds no expected message, so a check that drifts on
either side (in the C, or in lua/freshet/test.lua's order of checks) fails it.
"""

import json
import os
import re
import subprocess
import time

import frtest as ft

CASES = r"""
-- Each case is the fields of one event; topic "t" and data "x" unless given. good: a publish
-- route accepts it (the controls that keep the comparison from being all refusals).
local cases = {
  { name = "empty topic", topic = "" },
  { name = "CR in topic", topic = "a\rb" },
  { name = "LF in topic", topic = "a\nb" },
  { name = "NUL in topic", topic = "a\0b" },
  { name = "topic that is one NUL", topic = "\0" },
  { name = "topic not UTF-8", topic = "\255" },
  { name = "overlong topic", topic = "\192\175" },
  { name = "surrogate in topic", topic = "\237\160\128" },
  { name = "topic cut mid-character", topic = "ab\226\130" },
  { name = "CR in event name", event = "a\rb" },
  { name = "LF in event name", event = "a\nb" },
  { name = "NUL in event name", event = "a\0b" },
  { name = "event name not UTF-8", event = "\255" },
  { name = "data not UTF-8", data = "\255\254" },
  { name = "data cut mid-character", data = "cut \226\130" },
  { name = "surrogate in data", data = "\237\160\128" },
  { name = "overlong data", data = "\192\175" },
  { name = "table data holding bad UTF-8", data = { text = "\255" } },
  { name = "unknown priority", priority = "urgent" },
  { name = "upper-case priority", priority = "CRITICAL" },
  { name = "empty priority", priority = "" },
  { name = "number priority", priority = 1 },
  { name = "bad priority and bad data", priority = "urgent", data = "\255" },
  { name = "LF in topic and bad event name", topic = "a\nb", event = "\255" },
  { name = "CR in topic and NUL in event name", topic = "a\rb", event = "a\0b" },
  { name = "NUL in topic and a number event", topic = "a\0b", event = 5 },
  { name = "empty topic and bad data", topic = "", data = "\255" },
  { name = "a good event", good = true },
  { name = "empty event name", event = "", good = true },
  { name = "NUL in data", data = "a\0b", good = true },
  { name = "named critical event", event = "e", priority = "critical", good = true },
  { name = "priority with a NUL after its name", priority = "normal\0x", good = true },
}
for _, c in ipairs(cases) do
  if c.topic == nil then c.topic = "t" end
  if c.data == nil then c.data = "x" end
end

-- Error texts travel back in an HTTP answer: bytes outside printable ASCII are escaped, the
-- same way on both sides, so a NUL or a bad byte in a message survives the trip.
local function show(text)
  return (tostring(text):gsub("[^\32-\126]", function(ch) return ("\\x%02x"):format(ch:byte()) end))
end

local freshet = require "freshet"
local function try_publish(c)
  local ok, err = pcall(freshet.publish, c.topic, c.data, { event = c.event, priority = c.priority })
  return ok and "published" or show(err)
end

return { list = cases, show = show, try_publish = try_publish }
"""

FILES = {
    "app.lua": """
        local freshet = require "freshet"
        local app = freshet.app {}
        app:publish("/route/:n", "routes/route.lua")
        app:publish("/hook/:n", "routes/hook.lua")
        app:publish("/timer/:n", "routes/timer.lua")
        app:publish("/poke/:n", "routes/poke.lua")
        app:publish("/read/:key", "routes/read.lua")
        app:stream("/stream/:n", "routes/stream.lua")
        app:stream("/watch", "routes/watch.lua")
        app:http("GET", "/answer/:n", "routes/answer.lua")
        return app
    """,
    "cases.lua": CASES,
    "routes/route.lua": """
        local cases = require "cases"
        local route = {}
        function route.publish(req)
          local c = cases.list[tonumber(req.params.n)]
          return { topic = c.topic, event = c.event, data = c.data, priority = c.priority }
        end
        return route
    """,
    "routes/hook.lua": """
        local cases = require "cases"
        local route = {}
        function route.publish(req)
          return nil, 409, cases.try_publish(cases.list[tonumber(req.params.n)])
        end
        return route
    """,
    "routes/timer.lua": """
        local freshet = require "freshet"
        local cases = require "cases"
        local route = {}
        function route.publish(req)
          local n = req.params.n
          freshet.after(0, function()
            freshet.shared:set("timer:" .. n, cases.try_publish(cases.list[tonumber(n)]))
          end)
          return nil, 409, "scheduled"
        end
        return route
    """,
    "routes/poke.lua": """
        local route = {}
        function route.publish(req) return { topic = "watch", data = req.params.n } end
        return route
    """,
    "routes/read.lua": """
        local freshet = require "freshet"
        local route = {}
        function route.publish(req)
          return nil, 409, freshet.shared:get(req.params.key) or "(nothing yet)"
        end
        return route
    """,
    "routes/stream.lua": """
        local cases = require "cases"
        local route = {}
        function route.topics(req) return { cases.list[tonumber(req.params.n)].topic } end
        -- A topic that passes gets a 500 here, so no case leaves a stream open.
        function route.tier() error("stop here") end
        return route
    """,
    "routes/answer.lua": """
        local answers = {
          function() return 200, "plain" end,
          function() return 200, { a = 1 } end,
          function() return 201, "made", { ["X-One"] = "1", ["Content-Type"] = "text/x-made" } end,
          function() return 204 end,
          function() return 404, { error = "none here" } end,
          function() return "200", "x" end,
          function() return 99, "x" end,
          function() return 200.5, "x" end,
          function() return 200, function() end end,
          function() return 200, "x", "not a table" end,
          function() return 200, "x", { ["X-Bad"] = "a\\r\\nInjected: 1" } end,
          function() return 200, "x", { ["Content-Length"] = "9" } end,
          function() return 200, "x", { ["bad name"] = "v" } end,
          function() return 200, "x", { [1] = "v" } end,
          function() return nil end,
        }
        local route = {}
        function route.handle(req) return answers[tonumber(req.params.n)]() end
        return route
    """,
    "routes/watch.lua": """
        local freshet = require "freshet"
        local cases = require "cases"
        local route = {}
        function route.topics() return { "watch" } end
        function route.filter(event)
          local n = event.data
          freshet.shared:set("filter:" .. n, cases.try_publish(cases.list[tonumber(n)]))
          return false
        end
        return route
    """,
}

# Request targets whose path or query does not decode, on the publish route.
BAD_TARGETS = ["/route/%zz", "/route/%4", "/route/a%00", "/route/1?a=%zz", "/route/1?x=%2"]

DRIVER = r"""
-- Runs every case through freshet.test and prints the answers as JSON.
local app = ...
local t = require "freshet.test"
local cjson = require "cjson"
local cases = dofile((app:gsub("app%.lua$", "cases.lua")))

local srv = t.server { app = app }
local function answer(res) return { status = res.status, error = res.error } end
local function post(pattern, path)
  local route = srv:route(pattern)
  return answer(route:post(route:request { path = path }, ""))
end
local function read(key) return post("/read/:key", "/read/" .. key) end

local out = { cases = {}, route = {}, hook = {}, timer = {}, filter = {}, stream = {}, targets = {} }
local watch = srv:route("/watch")
local watching = watch:open(watch:request { path = "/watch" })
assert(watching.status == 200, "the harness did not open /watch")
local stream = srv:route("/stream/:n")
for n, c in ipairs(cases.list) do
  out.cases[n] = { name = c.name, good = c.good == true }
  out.route[n] = post("/route/:n", "/route/" .. n)
  out.hook[n] = post("/hook/:n", "/hook/" .. n)
  post("/timer/:n", "/timer/" .. n)
  srv:advance(0)
  out.timer[n] = read("timer:" .. n)
  post("/poke/:n", "/poke/" .. n)
  out.filter[n] = read("filter:" .. n)
  out.stream[n] = answer(stream:open(stream:request { path = "/stream/" .. n }))
end
-- The harness raises for a request no server would route; the server answers 400.
local route = srv:route("/route/:n")
for i, target in ipairs(cjson.decode(os.getenv("BAD_TARGETS"))) do
  local ok, err = pcall(route.request, route, { path = target })
  out.targets[i] = ok and { status = "accepted" }
    or { status = 400, error = (tostring(err):gsub("^freshet%.test%.request: ", "")) }
end
out.http = {}
for n = 1, tonumber(os.getenv("HTTP_CASES")) do
  local status, body, headers = srv:http("GET", "/answer/" .. n)
  local reason = srv.errors[#srv.errors]
  out.http[n] = { status = status, body = body, type = headers["content-type"] or "",
                  one = headers["x-one"] or "",
                  reason = status == 500 and reason and reason.message:match("headers%]: (.*)$") or "" }
end
io.write(cjson.encode(out))
"""

HTTP_CASES = 15


def build_native(tmp):
    """freshet/native.so from the rockspec's source list, as 16_busted.sh builds it."""
    ft.build_lua_modules(tmp, ["native"])


def run_harness(app, tmp):
    driver = os.path.join(tmp, "driver.lua")
    with open(driver, "w") as f:
        f.write(DRIVER)
    lua = os.path.join(ft.ROOT, "lua")
    env = dict(os.environ,
               LUA_PATH=f"{lua}/?.lua;{lua}/?/init.lua;;",
               LUA_CPATH=f"{tmp}/?.so;;",
               BAD_TARGETS=json.dumps(BAD_TARGETS), HTTP_CASES=str(HTTP_CASES))
    proc = subprocess.run(["luajit", driver, app.app], capture_output=True, env=env, timeout=60)
    ft.check(proc.returncode == 0, "the harness run failed", proc.stderr.decode(errors="replace"))
    return json.loads(proc.stdout)


def answer(resp):
    """(status, error) as the client sees it; a 201's body holds ids, not an error."""
    if resp.status == 201:
        return {"status": 201, "error": None}
    return {"status": resp.status, "error": resp.json().get("error")}


def read(srv, key):
    """What a hook stored under key, once it has run (timers and deliveries come later)."""
    deadline = time.monotonic() + 5
    while True:
        got = answer(srv.post(f"/read/{key}"))
        if got["error"] != "(nothing yet)" or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def run_server(app, ncases):
    out = {"route": [], "hook": [], "timer": [], "filter": [], "stream": [], "targets": []}
    with ft.Server(app) as srv:
        with ft.open_stream(srv.port, "/watch"):
            for n in range(1, ncases + 1):
                out["route"].append(answer(srv.post(f"/route/{n}")))
                out["hook"].append(answer(srv.post(f"/hook/{n}")))
                srv.post(f"/timer/{n}")
                out["timer"].append(read(srv, f"timer:{n}"))
                ft.check_eq(srv.post(f"/poke/{n}").status, 201, f"POST /poke/{n}")
                out["filter"].append(read(srv, f"filter:{n}"))
                out["stream"].append(answer(srv.get(f"/stream/{n}")))
        for target in BAD_TARGETS:
            out["targets"].append(answer(srv.post(target)))
        out["http"] = []
        for n in range(1, HTTP_CASES + 1):
            start = srv.log_size()
            r = srv.get(f"/answer/{n}")
            reason = ""
            if r.status == 500:
                m = srv.wait_log(r"handle must return status, body\[, headers\]: ([^\n]*)",
                                 start=start)
                reason = re.sub(r" \(got [a-z]+, [a-z]+\)$", "", m.group(1))
            out["http"].append({"status": r.status, "body": r.body.decode(),
                                "type": r.header("content-type") or "",
                                "one": r.header("x-one") or "", "reason": reason})
    return out


def run():
    app = ft.AppDir(FILES)
    tmp = ft.tempdir("freshet-parity-")
    with ft.subtest("freshet.native builds from the rockspec's sources"):
        build_native(tmp)
    harness = run_harness(app, tmp)
    cases = harness.pop("cases")
    harness_http = harness.pop("http")
    for answers in harness.values():  # JSON has no nil: an answer without error lacks the key
        for a in answers:
            a.setdefault("error", None)
    ft.check(len(cases) > 20, "the harness ran too few cases", cases)
    server = run_server(app, len(cases))

    for kind in ("route", "hook", "timer", "filter", "stream"):
        with ft.subtest(f"{kind}: the harness answers every case as the server does"):
            diffs = [f"{c['name']}: server {s}, harness {h}"
                     for c, s, h in zip(cases, server[kind], harness[kind]) if s != h]
            ft.check(not diffs, f"{len(diffs)} case(s) differ", "\n".join(diffs))

    with ft.subtest("app:http: the harness answers every handle result as the server does"):
        diffs = [f"case {n}: server {s}, harness {h}"
                 for n, (s, h) in enumerate(zip(server["http"], harness_http), 1) if s != h]
        ft.check(not diffs, f"{len(diffs)} case(s) differ", "\n".join(diffs))
        ft.check_eq([a["status"] for a in server["http"]],
                    [200, 200, 201, 204, 404] + [500] * 10, "statuses (not vacuous)")

    with ft.subtest("targets that do not percent-decode: the same words"):
        diffs = [f"{t}: server {s}, harness {h}"
                 for t, s, h in zip(BAD_TARGETS, server["targets"], harness["targets"]) if s != h]
        ft.check(not diffs, f"{len(diffs)} target(s) differ", "\n".join(diffs))
        ft.check(all(s["status"] == 400 for s in server["targets"]),
                 "the server took a target that does not decode", server["targets"])

    with ft.subtest("the comparison is not vacuous: bad events refused, good ones taken"):
        for c, s in zip(cases, server["route"]):
            if c["good"]:
                ft.check_eq(s["status"], 201, f"{c['name']}: POST /route")
            else:
                ft.check(s["status"] in (400, 500), f"{c['name']}: POST /route was not refused", s)
        taken = [c["name"] for c, s in zip(cases, server["hook"])
                 if not c["good"] and s["error"] == "published"]
        ft.check(not taken, "freshet.publish from a hook took bad events", taken)
        ft.check(any(s["status"] == 400 for s in server["stream"]),
                 "no stream case was refused with 400", server["stream"])
        messages = {s["error"] for s in server["filter"]}
        ft.check(len(messages) >= 2, "the filter cases all gave one answer", messages)


ft.main(run, limit=110)
