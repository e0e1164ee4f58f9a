-- The minimal app that benchmarks and checks use, in the URL shape of nchan's usual set-up
-- (FRESHET_BROKER picks the broker, FRESHET_WORKERS the worker threads: a count or "auto";
-- FRESHET_TLS_CERT and FRESHET_TLS_KEY, PEM files, make it HTTPS):
--   GET  /sub/{topic}     streams one topic (/sub/a,b,c streams several)
--   POST /pub/{topic}     publishes the body as is; X-Event names it, X-Priority ranks it
local freshet = require "freshet"

local app = freshet.app {
  listen = "127.0.0.1:3000",
  heartbeat = 15,
  retry = 3000,
  replay = { events = 1000, seconds = 300 },
  broker = os.getenv("FRESHET_BROKER") or "memory",
  workers = os.getenv("FRESHET_WORKERS") or 1,
  -- streams_at: e.g. 0.99 for 19k streams. The load clients are one address with thousands of
  -- HTTP/2 streams (h2load -c 200 -m 50): no per-client bound on them.
  limits = { body = 1048576, streams_at = tonumber(os.getenv("FRESHET_STREAMS_AT")),
             h2_streams_per_client = 1000000 },
  tls = os.getenv("FRESHET_TLS_CERT")
        and { cert = os.getenv("FRESHET_TLS_CERT"), key = os.getenv("FRESHET_TLS_KEY") },
}
app:stream("/sub/:topics", "routes/sub.lua")
app:publish("/pub/:topic", "routes/pub.lua")
return app
