#!/usr/bin/env bash
# Writes a new freshet app: an app file, a stream route, a publish route, an http route, a spec
# and a README, laid out like the starter apps (scripts/examples/*), ready to run and to test.
# Usage: scripts/new-app.sh NAME [DIR]      (writes DIR/NAME, ./NAME by default)
set -euo pipefail

usage() { echo "usage: scripts/new-app.sh NAME [DIR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
name="$1"
[[ "$name" =~ ^[A-Za-z][A-Za-z0-9_-]{0,63}$ ]] \
    || { echo "new-app: NAME must be a letter then letters, digits, '_' or '-' (64 at most)" >&2; exit 2; }
dest="${2:-.}/$name"
[ ! -e "$dest" ] || { echo "new-app: $dest already exists" >&2; exit 1; }
mkdir -p "$dest/routes" "$dest/spec"

cat > "$dest/app.lua" <<EOF
-- $name: a freshet app. Run it with: freshet app.lua   (from this directory)
local freshet = require "freshet"

local app = freshet.app {
  listen = os.getenv("LISTEN") or "127.0.0.1:3000",
  heartbeat = 15,                            -- seconds of silence before a ":" comment
  replay = { events = 1000, seconds = 300 }, -- what a reconnecting client can catch up on
  broker = os.getenv("FRESHET_BROKER") or "memory",
}

app:stream("/feeds/:feed/events", "routes/feed.lua")   -- SSE, long-poll or WebSocket
app:publish("/feeds/:feed/items", "routes/post.lua")   -- POST a JSON item to a feed
app:http("GET", "/feeds/:feed", "routes/state.lua")     -- where a feed stands, for a page

return app
EOF

cat > "$dest/routes/feed.lua" <<'EOF'
-- GET /feeds/:feed/events: the stream of one feed. A page opens it with the position that
-- GET /feeds/:feed answered as Last-Event-ID (?lastEventId=), and misses nothing in between.
local route = {}

function route.topics(req, who)
  return { "feed:" .. req.params.feed }
end

return route
EOF

cat > "$dest/routes/post.lua" <<'EOF'
-- POST /feeds/:feed/items with {"text": "..."}: publishes an `item` event on the feed and
-- answers 201 with its id.
local route = { body = "json" }

function route.publish(req, body, who)
  if type(body) ~= "table" or type(body.text) ~= "string" or body.text == "" then
    return nil, 400, "send {\"text\": \"...\"}"
  end
  return { topic = "feed:" .. req.params.feed, event = "item", data = { text = body.text } }
end

return route
EOF

cat > "$dest/routes/state.lua" <<'EOF'
-- GET /feeds/:feed: the feed's position, the id a page subscribes from (docs/ROUTES.md,
-- "The page-load gap"). A real app would answer its current state here too.
local freshet = require "freshet"

local route = {}

function route.handle(req, body, who)
  local position, err = freshet.position("feed:" .. req.params.feed)
  if not position then return 503, { error = err } end
  return 200, { feed = req.params.feed, position = position }
end

return route
EOF

cat > "$dest/spec/app_spec.lua" <<'EOF'
-- The app's routes on freshet.test, the fake server: run \`busted\` in the app's directory.
local t = require "freshet.test"
local cjson = require "cjson"

describe("the app", function()
  local srv

  before_each(function()
    srv = t.server { app = "app.lua", now = 1700000000000 }
  end)

  it("streams a feed's items, after the position the page got", function()
    local status, body = srv:http("GET", "/feeds/news")
    assert.equal(200, status)
    local position = cjson.decode(body).position
    local feed = srv:route("/feeds/:feed/items")
    local events = srv:route("/feeds/:feed/events")
    local stream = events:open(events:request { path = "/feeds/news/events" })
    assert.equal(200, stream.status)
    local res = feed:post(feed:request { path = "/feeds/news/items" }, '{"text":"hello"}')
    assert.equal(201, res.status)
    assert.equal("hello", stream.events[1].data.text)
    assert.is_true(res.id > position)
    local _, now = srv:http("GET", "/feeds/news")
    assert.equal(res.id, cjson.decode(now).position)
  end)

  it("refuses an item without text", function()
    local feed = srv:route("/feeds/:feed/items")
    assert.same({ status = 400, error = "send {\"text\": \"...\"}" },
      feed:post(feed:request { path = "/feeds/news/items" }, "{}"))
  end)
end)
EOF
sed -i 's/\\`busted\\`/`busted`/' "$dest/spec/app_spec.lua"

cat > "$dest/.busted" <<'EOF'
-- `busted` in this directory runs spec/*_spec.lua. freshet.test and its C module
-- freshet.native must be on Lua's paths: install the freshet rock
-- (`luarocks make rockspec/freshet-scm-1.rockspec` in the freshet sources) or set LUA_PATH and
-- LUA_CPATH (freshet's docs/LUA_API.md, "Outside the server").
return { default = { ROOT = { "spec" } } }
EOF

cat > "$dest/README.md" <<EOF
# $name

A freshet app: feeds that pages follow live.

- \`app.lua\` — the app: where it listens (\`LISTEN\`, default 127.0.0.1:3000), the broker
  (\`FRESHET_BROKER\`, default memory) and the routes.
- \`routes/feed.lua\` — the stream of a feed (SSE, long-poll with \`?transport=poll\`, or
  WebSocket) at \`/feeds/:feed/events\`.
- \`routes/post.lua\` — \`POST /feeds/:feed/items\` with \`{"text": "..."}\` publishes an
  \`item\` event; answers \`201 {"id": "..."}\`.
- \`routes/state.lua\` — \`GET /feeds/:feed\` answers the feed's position: a page renders its
  state with it and opens the stream from it, so nothing published in between is lost.
- \`spec/app_spec.lua\` — the routes tested on \`freshet.test\`.

## Run

\`\`\`sh
freshet app.lua
curl -N -H "Accept: text/event-stream" http://127.0.0.1:3000/feeds/news/events
curl -X POST -H "Content-Type: application/json" -d '{"text":"hello"}' http://127.0.0.1:3000/feeds/news/items
curl http://127.0.0.1:3000/feeds/news
\`\`\`

## Test

\`\`\`sh
freshet --check app.lua
busted
\`\`\`
EOF
echo "new-app: wrote $dest (run: cd $dest && freshet app.lua; test: busted)"
