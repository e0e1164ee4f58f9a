#!/usr/bin/env bash
# Checks rockspec/freshet-scm-1.rockspec with `luarocks lint` and against lua/freshet/ and src/,
# installs the modules with LuaRocks into a throw-away tree (building the C modules
# freshet.crypto, against OpenSSL, and freshet.native), checks that every one landed there, and
# loads freshet.app, freshet.jwt and freshet.test from that tree with a plain luajit. The
# lua-cjson dependency is met by the system's lua-cjson (Debian's package), declared to LuaRocks
# as provided, so the test needs no network. Nothing outside the temp dirs is touched: LuaRocks builds in a copy of
# the sources, and HOME points into the temp dir, so it neither reads nor writes the user's
# config.
set -euo pipefail

root="${FRESHET_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
rockspec="rockspec/freshet-scm-1.rockspec"

fail() { echo "15_rockspec: FAIL: $*" >&2; exit 1; }

for tool in luarocks luajit; do
    command -v "$tool" >/dev/null || fail "'$tool' is not installed (scripts/setup.sh installs it)"
done
[ -f "$root/$rockspec" ] || fail "$root/$rockspec is missing"
compgen -G "$root/lua/freshet/*.lua" >/dev/null || fail "no modules in $root/lua/freshet/"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/freshet-rockspec.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tree="$tmp/tree"
mkdir -p "$tmp/home"

# 0. LuaRocks' own consistency checks (a license, well-formed fields).
lint="$(cd "$root" && HOME="$tmp/home" luarocks lint "$rockspec" 2>&1)" \
    || fail "luarocks lint $rockspec:
$lint"

# 1. The rockspec itself: its fields, a build.modules entry for every lua/freshet/*.lua
#    (LuaRocks' builtin backend also copies a top-level lua/ directory on its own, so a missing
#    entry would not show in the installed tree; it is checked here instead), and the C modules:
#    freshet.crypto and freshet.native, each a table whose sources exist under src/ and
#    include the file that defines its luaopen_ function.
out="$(cd "$root" && luajit - "$rockspec" lua/freshet/*.lua 2>&1 <<'LUA'
local path = ...
local files = { select(2, ...) }
local spec = {}
local chunk = assert(loadfile(path))
setfenv(chunk, spec)
chunk()
local problems = {}
local function expect(cond, msg) if not cond then problems[#problems + 1] = msg end end
expect(spec.rockspec_format == "3.0", "rockspec_format is not \"3.0\"")
expect(spec.package == "freshet", "package is not \"freshet\"")
expect(spec.version == "scm-1", "version is not \"scm-1\"")
expect(type(spec.dependencies) == "table" and spec.dependencies[1] == "lua >= 5.1",
       "dependencies[1] is not \"lua >= 5.1\"")
local cjson_dep = false
for _, dep in ipairs(spec.dependencies or {}) do
  cjson_dep = cjson_dep or dep:match("^lua%-cjson[%s>=~]") ~= nil
end
expect(cjson_dep, "lua-cjson is not among the dependencies")
expect((spec.description or {}).license == "MIT", "description.license is not \"MIT\" (see LICENSE)")
local ssl = (spec.external_dependencies or {}).OPENSSL
expect(type(ssl) == "table" and ssl.library == "crypto",
       "external_dependencies.OPENSSL is missing or does not name libcrypto")
local build = spec.build or {}
expect(build.type == "builtin", "build.type is not \"builtin\"")
local modules = build.modules or {}
local wanted = {}
for _, file in ipairs(files) do
  local name = file:match("^lua/freshet/(.+)%.lua$")
  local module = name == "init" and "freshet" or "freshet." .. name
  wanted[module] = true
  expect(modules[module] == file, ("build.modules[%q] should be %q, is %s"):format(
         module, file, tostring(modules[module])))
end
local c_modules = { ["freshet.crypto"] = true, ["freshet.native"] = true }
for module, entry in pairs(modules) do
  if c_modules[module] then
    local sources = type(entry) == "table" and entry.sources
    expect(type(sources) == "table" and #sources > 0,
           ("build.modules[%q] should be a C module: a table with a sources list"):format(module))
    local opener = "luaopen_" .. module:gsub("%.", "_")
    local opens = false
    for _, src in ipairs(type(sources) == "table" and sources or {}) do
      local f = io.open(src, "r")
      expect(f and src:match("^src/.+%.c$"), ("build.modules[%q]: source %q is not a file under src/"):format(
             module, tostring(src)))
      if f then
        opens = opens or f:read("*a"):find("int " .. opener .. "%(") ~= nil
        f:close()
      end
    end
    expect(opens, ("build.modules[%q]: no source defines %s"):format(module, opener))
    if module == "freshet.crypto" and type(entry) == "table" then
      local inc = table.concat(entry.incdirs or {}, " ")
      local libdirs = table.concat(entry.libdirs or {}, " ")
      expect(inc:find("$(OPENSSL_INCDIR)", 1, true) and libdirs:find("$(OPENSSL_LIBDIR)", 1, true),
             "freshet.crypto does not build against the OPENSSL external dependency")
    end
  else
    expect(wanted[module], ("build.modules[%q] = %q names no file in lua/freshet/"):format(
           module, tostring(entry)))
  end
end
for module in pairs(c_modules) do
  expect(modules[module] ~= nil, ("build.modules[%q] is missing"):format(module))
end
if #problems > 0 then print(table.concat(problems, "\n")) os.exit(1) end
print("ok")
LUA
)" || fail "$rockspec does not match lua/freshet/ and src/:
$out"

# 2. Install. `luarocks make` builds in the directory holding the sources and leaves its object
#    files there, so it runs on a copy of the files the rockspec names (lua/, src/), not in the
#    checkout itself.
#    lua-cjson comes from the system: its version, as the installed module reports it, is given
#    to LuaRocks as a provided rock, so the declared dependency is checked and met offline.
mkdir -p "$tmp/checkout"
cp -R "$root/rockspec" "$root/lua" "$tmp/checkout/"
[ -d "$root/src" ] && cp -R "$root/src" "$tmp/checkout/"
cjson_version="$(luajit -e 'io.write((require "cjson")._VERSION)' 2>/dev/null)" \
    || fail "lua-cjson is not installed for luajit (Debian: lua-cjson)"
printf 'rocks_provided = { ["lua-cjson"] = "%s-1" }\n' "$cjson_version" >"$tmp/config.lua"
if ! (cd "$tmp/checkout" && HOME="$tmp/home" LUAROCKS_CONFIG="$tmp/config.lua" \
        luarocks --lua-version=5.1 make --tree "$tree" "$rockspec") >"$tmp/make.log" 2>&1; then
    cat "$tmp/make.log" >&2
    fail "luarocks make $rockspec did not succeed (output above)"
fi

# Every module must have landed in the tree, byte for byte.
share="$tree/share/lua/5.1"
count=0
for src in "$root"/lua/freshet/*.lua; do
    name="$(basename "$src")"
    [ -f "$share/freshet/$name" ] || fail "lua/freshet/$name was not installed to $share/freshet/"
    cmp -s "$src" "$share/freshet/$name" || fail "installed freshet/$name differs from lua/freshet/$name"
    count=$((count + 1))
done
echo "15_rockspec: $count module(s) installed under $share/freshet/"
lib="$tree/lib/lua/5.1"
for mod in crypto native; do
    [ -f "$lib/freshet/$mod.so" ] || fail "the C module freshet.$mod was not installed to $lib/freshet/$mod.so"
done

# 3. Load the installed modules with a bare luajit (no freshet binary around them): freshet.app
#    builds an app and records routes; `require "freshet"` works too, and names the server when a
#    server-only function is called; freshet.test, with the tree's freshet.native, runs a route.
out="$(cd "$tmp" && LUA_PATH="$share/?.lua;$share/?/init.lua;;" LUA_CPATH="$lib/?.so;;" \
    luajit - "$share" "$lib" 2>&1 <<'LUA'
local share, lib = ...
local function expect(cond, msg) if not cond then error(msg, 2) end end

local where = package.searchpath("freshet.app", package.path)
expect(where == share .. "/freshet/app.lua", "freshet.app resolves to " .. tostring(where))

local app_mod = require "freshet.app"
local app = app_mod.new { listen = "127.0.0.1:1", heartbeat = 5, replay = { events = 10 } }
expect(type(app) == "table" and app.kind == "freshet.app", "freshet.app.new did not build an app")
expect(app:stream("/rooms/:room", "room.lua") == app, "app:stream does not return the app")
expect(#app.routes == 1 and app.routes[1].kind == "stream", "app:stream did not record the route")

local ok, err = pcall(app_mod.new, { heartbaet = 1 })
expect(not ok and tostring(err):find("unknown key 'heartbaet'", 1, true),
       "a misspelt key is not reported: " .. tostring(err))

local freshet = require "freshet"
expect(getmetatable(freshet.app { listen = "127.0.0.1:2" }) == app_mod.App,
       "freshet.app{} does not build the same kind of app")
ok, err = pcall(freshet.now)
expect(not ok and tostring(err):find("only available inside the freshet server", 1, true),
       "freshet.now outside the server: " .. tostring(err))

for _, name in ipairs({ "freshet.crypto", "freshet.native" }) do
  local so = package.searchpath(name, package.cpath)
  expect(so == lib .. "/" .. name:gsub("%.", "/") .. ".so", name .. " resolves to " .. tostring(so))
end
-- freshet.jwt with the tree's freshet.crypto (libcrypto) and the system's cjson: a token it
-- signs verifies, one signed with another secret does not.
local jwt = require "freshet.jwt"
expect(package.searchpath("freshet.jwt", package.path) == share .. "/freshet/jwt.lua",
       "freshet.jwt does not resolve into the tree")
local token = jwt.sign({ sub = "ann", exp = 4102444800 }, "s3cret")
expect(type(token) == "string" and select(2, token:gsub("%.", "")) == 2, "jwt.sign: " .. tostring(token))
local claims, why = jwt.verify(token, "s3cret")
expect(claims and claims.sub == "ann", "jwt.verify rejected its own token: " .. tostring(why))
claims, why = jwt.verify(token, "other")
expect(claims == nil and why, "jwt.verify accepted a token signed with another secret")

local t = require "freshet.test"
expect(package.searchpath("freshet.test", package.path) == share .. "/freshet/test.lua",
       "freshet.test does not resolve into the tree")
local srv = t.server()
expect(srv.freshet.publish("room", "hi") == "1700000000000-0", "the harness did not publish")
ok, err = pcall(srv.freshet.publish, "a\nb", "x")
expect(not ok and tostring(err):find("topic must be UTF-8 without CR, LF or NUL", 1, true),
       "the harness did not check the topic: " .. tostring(err))
expect(srv.shared:set("k", 1, 1) and srv.shared:get("k") == 1, "the harness's freshet.shared")
srv:advance(1000)
expect(srv.shared:get("k") == nil, "freshet.shared does not follow the fake clock")
print("ok")
LUA
)" || fail "using the installed modules with luajit failed:
$out"
[ "$out" = "ok" ] || fail "unexpected output from luajit: $out"
echo "15_rockspec: PASS"
