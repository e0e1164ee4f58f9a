-- LuaRocks spec for the Lua half of freshet: the modules under lua/freshet/, and the two C
-- modules they need outside the server.
--
-- The server binary embeds these same files, so this rock is for running tooling outside
-- the server: checking an app file's settings, or testing route scripts with plain Lua 5.1 or
-- LuaJIT and busted through freshet.test, the route-test harness (it stands in for the server,
-- so freshet.publish, timers and freshet.shared work inside it). Without the harness,
-- `require "freshet.app"` and `freshet.app{...}` work; functions that need the server raise a
-- clear error.
--
-- The C modules are built from the server's own sources, which the server has built in:
-- freshet.crypto (src/lua/crypto.c, with libcrypto) for freshet.jwt, and freshet.native
-- (src/lua/native.c and the server code it calls: the event checks, the shared dictionary, the
-- route patterns) for freshet.test, so the harness refuses what the server refuses, in its
-- words. They build with LuaRocks' builtin backend: a C compiler, the Lua 5.1 headers and
-- OpenSSL's (Debian: liblua5.1-0-dev, libssl-dev; OPENSSL_DIR=/path points LuaRocks at another
-- OpenSSL). freshet.jwt, freshet.request and freshet.test need cjson: the lua-cjson rock, or
-- Debian's lua-cjson package declared to LuaRocks as provided (see the README).
--
-- From the repository root:
--   luarocks --lua-version=5.1 make --tree /tmp/fr-tree rockspec/freshet-scm-1.rockspec
--
-- Every file in lua/freshet/ must be listed in build.modules, and each C module's sources
-- must exist; tests/integration/15_rockspec.sh checks both. tests/integration/16_busted.sh
-- and 43_harness_parity.py build the C modules from the source lists below, so they are the
-- one place those lists live.
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
  license = "MIT",
  maintainer = "the freshet authors",
  detailed = [[
freshet serves Server-Sent Events from a C core and lets small Lua scripts decide who may
connect, which topics each connection follows and which events it sees. This rock holds the
Lua modules that app files and route scripts require (freshet, freshet.app, freshet.http,
freshet.jwt, freshet.request) and freshet.test, a harness that runs route scripts under busted (with
freshet.fakecore, its stand-in for the server's C half, and freshet.native, the server's own
checks built as a C module).
]],
  labels = { "sse", "server-sent-events", "streaming", "luajit" },
}

dependencies = {
  "lua >= 5.1",
  "lua-cjson >= 2.1.0",
}

external_dependencies = {
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}

build = {
  type = "builtin",
  modules = {
    ["freshet"] = "lua/freshet/init.lua",
    ["freshet.app"] = "lua/freshet/app.lua",
    ["freshet.fakecore"] = "lua/freshet/fakecore.lua",
    ["freshet.http"] = "lua/freshet/http.lua",
    ["freshet.redis"] = "lua/freshet/redis.lua",
    ["freshet.jwt"] = "lua/freshet/jwt.lua",
    ["freshet.request"] = "lua/freshet/request.lua",
    ["freshet.test"] = "lua/freshet/test.lua",
    ["freshet.crypto"] = {
      sources = { "src/lua/crypto.c" },
      incdirs = { "src", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)" },
      libraries = { "crypto" },
    },
    ["freshet.native"] = {
      sources = {
        "src/lua/native.c", "src/lua/shared.c", "src/lua/query.c",
        "src/core/event.c", "src/core/shared_dict.c",
        "src/codec/router.c", "src/codec/url.c", "src/codec/sse.c", "src/codec/id.c",
        "src/base/util.c", "src/base/log.c", "src/base/hash.c", "src/base/utf8.c",
        "src/base/json.c", "src/base/buf.c",
      },
      incdirs = { "src" },
      libraries = { "pthread" },
    },
  },
}
