-- LuaRocks spec for the Lua half of freshet: the modules under lua/freshet/.
--
-- The server binary embeds these same files, so this rock is for running tooling outside
-- the server: checking an app file's settings, or testing route scripts with plain Lua 5.1 or
-- LuaJIT and busted through freshet.test, the route-test harness (it stands in for the server,
-- so freshet.publish, timers and freshet.shared work inside it). Without the harness,
-- `require "freshet.app"` and `freshet.app{...}` work; functions that need the server raise a
-- clear error.
--
-- freshet.jwt needs the C module freshet.crypto, which is built into the server and is not
-- part of this rock: outside the server, build src/lua/crypto.c as freshet/crypto.so (see
-- docs/LUA_API.md, "Outside the server"). freshet.request and freshet.test need only cjson
-- (Debian: lua-cjson), which the server also has built in.
--
-- From the repository root:
--   luarocks --lua-version=5.1 make --tree /tmp/fr-tree rockspec/freshet-scm-1.rockspec
--
-- Every file in lua/freshet/ must be listed in build.modules;
-- tests/integration/15_rockspec.sh fails when one is missing.
rockspec_format = "3.0"
package = "freshet"
version = "scm-1"

source = {
  -- A local placeholder: the rock is built from a checkout with `luarocks make`.
  url = "git+file:///path/to/freshet",
  branch = "main",
}

description = {
  summary = "Lua side of freshet, a Server-Sent Events server scripted in Lua",
  detailed = [[
freshet serves Server-Sent Events from a C core and lets small Lua scripts decide who may
connect, which topics each connection follows and which events it sees. This rock holds the
Lua modules that app files and route scripts require (freshet, freshet.app, freshet.jwt,
freshet.request) and freshet.test, a harness that runs route scripts under busted (with
freshet.fakecore, its stand-in for the server's C half).
]],
  labels = { "sse", "server-sent-events", "streaming", "luajit" },
}

dependencies = {
  "lua >= 5.1",
}

build = {
  type = "builtin",
  modules = {
    ["freshet"] = "lua/freshet/init.lua",
    ["freshet.app"] = "lua/freshet/app.lua",
    ["freshet.fakecore"] = "lua/freshet/fakecore.lua",
    ["freshet.jwt"] = "lua/freshet/jwt.lua",
    ["freshet.request"] = "lua/freshet/request.lua",
    ["freshet.test"] = "lua/freshet/test.lua",
  },
}
