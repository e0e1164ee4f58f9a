"""SIGHUP reload: new scripts for new requests, open streams survive, a broken script keeps
the old ones serving."""

import signal

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app { heartbeat = 30 }
    app:stream("/sub/:topics", "routes/sub.lua")
    app:publish("/pub/:topic", "routes/pub.lua")
    return app
"""

PUB = """
    local route = {}
    function route.publish(req, body, who)
      return { topic = req.params.topic, data = "%s:" .. body }
    end
    return route
"""

SUB_V2 = """
    local route = {}
    function route.auth(req)
      if not req.query.token then return nil, 401, "token required (v2)" end
      return { id = req.query.token }
    end
    function route.topics(req, who) return { req.params.topics } end
    return route
"""

BROKEN_PUB = """
    local route = {}
    function route.publish(req, body, who) return { topic = = 1 } end
    return route
"""


def reload(srv, ok=True):
    mark = srv.log_size()
    srv.send_signal(signal.SIGHUP)
    if ok:
        srv.wait_log(r"reloaded \S*app\.lua", start=mark)
    else:
        return srv.wait_log(r"reload failed, keeping the old scripts: (\S+):(\d+): ", start=mark)


def run():
    app = ft.AppDir({"app.lua": APP, "routes/sub.lua": ft.SUB_ROUTE, "routes/pub.lua": PUB % "v1"})
    with ft.Server(app) as srv:
        port = srv.port
        old = ft.open_stream(port, "/sub/t")

        def publish_and_see(body, want, *streams):
            eid = srv.publish("/pub/t", body)
            for s in streams:
                e = s.next_event()
                ft.check_eq((e.id, e.data), (eid, want), f"event on {s.path} after POST {body!r}")

        with ft.subtest("before the reload: v1 scripts"):
            publish_and_see("a", "v1:a", old)

        with ft.subtest("SIGHUP with changed scripts: new requests use them, open stream stays"):
            app.write({"routes/pub.lua": PUB % "v2", "routes/sub.lua": SUB_V2})
            reload(srv)
            publish_and_see("b", "v2:b", old)
            s = ft.SSEStream(port, "/sub/t")
            s.close()
            ft.check_eq(s.response.check_error(401, "new stream after reload"), "token required (v2)",
                        "the v2 auth hook answers new streams")
            new = ft.open_stream(port, "/sub/t?token=x")
            publish_and_see("c", "v2:c", old, new)
            ft.check_eq(srv.health()["streams"], 2, "both streams open")

        with ft.subtest("SIGHUP with a broken script: 'reload failed' with file:line, old scripts serve"):
            app.write({"routes/pub.lua": BROKEN_PUB})
            m = reload(srv, ok=False)
            ft.check(m.group(1).endswith("routes/pub.lua") and m.group(2) == "2",
                     "the failure does not name routes/pub.lua:2", m.group(0))
            publish_and_see("d", "v2:d", old, new)
            s = ft.SSEStream(port, "/sub/t")
            s.close()
            ft.check_eq(s.status, 401, "the v2 auth hook still answers new streams")

        with ft.subtest("SIGHUP with a bad app file: named in the log, old scripts serve"):
            app.write({"app.lua": APP.replace("heartbeat = 30", "heartbaet = 30"),
                       "routes/pub.lua": PUB % "v3"})
            m = reload(srv, ok=False)
            ft.check(m.group(1).endswith("app.lua") and m.group(2) == "2",
                     "the failure does not name app.lua:2", m.group(0))
            ft.check("unknown key 'heartbaet'" in srv.log()[m.start():], "the error names the key",
                     srv.log_tail(5))
            publish_and_see("e", "v2:e", old, new)

        with ft.subtest("SIGHUP after fixing the files: reloads again"):
            app.write({"app.lua": APP})
            reload(srv)
            publish_and_see("f", "v3:f", old, new)
            ft.check_eq(srv.health()["streams"], 2, "both streams survived three reloads")

        old.close()
        new.close()


ft.main(run, limit=50)
