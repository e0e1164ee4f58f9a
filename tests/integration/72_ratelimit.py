"""Rate-limit tiers: token buckets per (kind, tier, client) that start full (burst) and refill
at `rate` per second. New streams and non-critical publishes take a token each; past the
bucket the answer is 429 with a JSON error and Retry-After in whole seconds until a token is
back (a stream request that looks like a browser's EventSource gets 200 with `retry:` and an
`event: freshet-refused` instead, which it survives). Critical publishes bypass the bucket; clients (auth who.id, else the address) have
buckets of their own."""

import math
import time

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app {
      heartbeat = 30,
      tiers = {
        free = { rate = 1, burst = 3 },
        slow = { rate = 0.25, burst = 2 },
        pro  = { rate = 50, burst = 20 },
      },
    }
    app:stream("/s/:topic", "routes/stream.lua")
    app:publish("/p/:topic", "routes/pub.lua")
    return app
"""

# The client is ?user= (or X-User) when given, else the peer address; the tier is ?tier= (or
# X-Tier), free by default.
COMMON = """
    local function who_of(req)
      local user = req.query.user or req.headers["x-user"]
      if user then return { id = user } end
      return {}
    end
    local function tier_of(req)
      return req.query.tier or req.headers["x-tier"] or "free"
    end
"""

STREAM = COMMON + """
    local route = {}
    function route.auth(req) return who_of(req) end
    function route.topics(req) return { req.params.topic } end
    function route.tier(req, who) return tier_of(req) end
    return route
"""

PUB = COMMON + """
    local route = {}
    function route.auth(req) return who_of(req) end
    function route.publish(req, body)
      return { topic = req.params.topic, data = body, priority = req.headers["x-priority"] }
    end
    function route.tier(req, who) return tier_of(req) end
    return route
"""


def open_status(srv, path):
    """Opens a stream and closes it at once; returns (status, response). The request says
    refusal=status, as clients that read statuses do (an EventSource gets the refusal in the
    stream instead: see the last subtests)."""
    s = ft.SSEStream(srv.port, path + ("&" if "?" in path else "?") + "refusal=status")
    try:
        return s.status, s.response
    finally:
        s.close()


def check_429(resp, expect_retry_after, what):
    err = resp.check_error(429, what)
    ra = resp.header("retry-after")
    ft.check(ra is not None and ra.isdigit(), f"{what}: 429 without a Retry-After in seconds",
             resp.summary())
    ft.check_eq(int(ra), expect_retry_after, f"{what}: Retry-After")
    return err


def streams_until_429(srv, path, limit=30):
    """Opens streams until one is refused; returns (successes, the refusing response)."""
    ok = 0
    for _ in range(limit):
        status, resp = open_status(srv, path)
        if status != 200:
            ft.check_eq(status, 429, f"GET {path}: status after {ok} streams ({resp.text[:200]})")
            return ok, resp
        ok += 1
    ft.fail(f"GET {path}: {limit} streams in a row were allowed")


def run():
    app = ft.AppDir({"app.lua": APP, "routes/stream.lua": STREAM, "routes/pub.lua": PUB})
    with ft.Server(app) as srv:
        with ft.subtest("tier free {rate=1, burst=3}: exactly 3 streams, then 429 Retry-After: 1"):
            ok, resp = streams_until_429(srv, "/s/a?user=alice")
            ft.check_eq(ok, 3, "streams allowed before the first 429")
            check_429(resp, 1, "4th stream")
            # A refused request takes no token: still refused right after.
            status, resp = open_status(srv, "/s/a?user=alice")
            ft.check_eq(status, 429, "5th stream, right after")
            # One token comes back per second: after 1.1 s exactly one more stream.
            time.sleep(1.1)
            ok, resp = streams_until_429(srv, "/s/a?user=alice")
            ft.check_eq(ok, 1, "streams allowed 1.1 s after the bucket ran dry")
            check_429(resp, 1, "the stream after the refill")

        with ft.subtest("tier slow {rate=0.25, burst=2}: 2 streams, then 429 Retry-After: 4"):
            ok, resp = streams_until_429(srv, "/s/a?user=alice&tier=slow")
            ft.check_eq(ok, 2, "streams allowed in tier slow")
            check_429(resp, 4, "3rd stream in tier slow")
            # Half a second later the bucket holds ~0.125 tokens: 3.5 s to go, rounded up.
            time.sleep(0.5)
            status, resp = open_status(srv, "/s/a?user=alice&tier=slow")
            check_429(resp, math.ceil((1 - 0.5 * 0.25) / 0.25), "tier slow, 0.5 s later")

        with ft.subtest("tier pro {rate=50, burst=20}: 20 streams at once"):
            ok, resp = streams_until_429(srv, "/s/a?user=alice&tier=pro", limit=40)
            ft.check(20 <= ok <= 23, f"tier pro allowed {ok} streams (burst 20, +50/s while "
                                     f"they open)")
            check_429(resp, 1, "tier pro past its burst")

        with ft.subtest("different client ids have separate buckets"):
            ok, resp = streams_until_429(srv, "/s/a?user=bob")
            ft.check_eq(ok, 3, "streams allowed to bob (alice's bucket is empty)")
            check_429(resp, 1, "bob's 4th stream")
            # The address is the client when auth gives no id: its own bucket too.
            ok, resp = streams_until_429(srv, "/s/a")
            ft.check_eq(ok, 3, "streams allowed to the anonymous client (by address)")
            check_429(resp, 1, "the anonymous client's 4th stream")

        with ft.subtest("publishes: 3 per bucket, then 429; critical passes an empty bucket"):
            hdr = {"X-User": "carol"}
            for n in range(3):
                ft.publish(srv.port, "/p/t", f"normal {n}", headers=hdr)
            resp = ft.publish_raw(srv.port, "/p/t", "normal 3", headers=hdr)
            check_429(resp, 1, "4th normal publish")
            resp = ft.publish_raw(srv.port, "/p/t", "telemetry", headers=dict(hdr, **{"X-Priority": "telemetry"}))
            check_429(resp, 1, "a telemetry publish (it takes a token too)")
            for n in range(5):
                ft.publish(srv.port, "/p/t", f"critical {n}",
                           headers=dict(hdr, **{"X-Priority": "critical"}))
            # The publish bucket is not the stream bucket: carol still has her 3 streams.
            ok, resp = streams_until_429(srv, "/s/a?user=carol")
            ft.check_eq(ok, 3, "carol's streams after her publishes ran dry")
            # Another client publishes freely.
            for n in range(3):
                ft.publish(srv.port, "/p/t", f"dave {n}", headers={"X-User": "dave"})
            # Tier slow for publishes: 2, then Retry-After 4.
            hdr = {"X-User": "erin", "X-Tier": "slow"}
            for n in range(2):
                ft.publish(srv.port, "/p/t", f"slow {n}", headers=hdr)
            check_429(ft.publish_raw(srv.port, "/p/t", "slow 2", headers=hdr), 4,
                      "3rd publish in tier slow")

        with ft.subtest("refused requests are counted per tier in /metrics"):
            m = srv.metrics()
            # free: alice 3 (two after the burst, one after the refill), bob 1, anonymous 1,
            # carol's 4th stream 1, carol's normal and telemetry publishes 2.
            ft.check_eq(ft.metric(m, "freshet_rate_limited_total", tier="free"), 8.0,
                        "429s counted for tier free")
            ft.check_eq(ft.metric(m, "freshet_rate_limited_total", tier="slow"), 3.0,
                        "429s counted for tier slow")
            ft.check_eq(ft.metric(m, "freshet_rate_limited_total", tier="pro"), 1.0,
                        "429s counted for tier pro")

        with ft.subtest("an EventSource past its bucket: 200, retry: with jitter, freshet-refused, "
                        "the end; curl and ?refusal=status get the 429"):
            for _ in range(3):
                ft.open_stream(srv.port, "/s/a?user=frank").close()
            # Accept: text/event-stream and no opt-out: what a browser's EventSource sends.
            s = ft.SSEStream(srv.port, "/s/a?user=frank")
            s.close()
            data = s.response.check_refused("rate_limit", 429, "frank's 4th stream",
                                            retry_ms=(1000, 1500))
            ft.check("too many new streams" in data["error"], "the refusal says why", data)
            # curl's default Accept (*/*) and the opt-out get the status.
            s = ft.SSEStream(srv.port, "/s/a?user=frank", accept="*/*")
            s.close()
            check_429(s.response, 1, "a stream asked with Accept: */*")
            status, resp = open_status(srv, "/s/a?user=frank")
            check_429(resp, 1, "a stream asked with ?refusal=status")
            # A crowd refused together does not come back together: the delays differ.
            delays = set()
            for _ in range(20):
                s = ft.SSEStream(srv.port, "/s/a?user=frank")
                s.close()
                delays.add(s.response.check_refused("rate_limit", 429, "a refusal in a row",
                                                    retry_ms=(1000, 1500))["retry_ms"])
            ft.check(len(delays) >= 8, f"20 refusals carried only {len(delays)} different "
                                       f"delays", sorted(delays))
            # Once a token is back, the same request is a stream.
            time.sleep(1.1)
            ft.open_stream(srv.port, "/s/a?user=frank").close()
            m = srv.metrics()
            ft.check_eq(ft.metric(m, "freshet_streams_refused_in_band_total"), 21.0,
                        "refusals answered in the stream")
            ft.check_eq(ft.metric(m, "freshet_rate_limited_total", tier="free"), 8.0 + 23.0,
                        "429s counted for tier free, in-stream ones included")
            srv.wait_log(r"warn refused \d+ new streams? \([^)]*rate_limit \d+", timeout=3)


ft.main(run, limit=60)
