#!/usr/bin/env bash
# Checks rockspec/freshet-scm-1.rockspec against lua/freshet/, installs the modules with LuaRocks
# into a throw-away tree, checks that every one landed there, and loads freshet.app from that
# tree with a plain luajit to build an app object. Nothing outside the temp dirs is touched:
# LuaRocks builds in a copy of the sources, and HOME points into the temp dir, so it neither
# reads nor writes the user's config.
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

# 1. The rockspec itself: its fields, and a build.modules entry for every lua/freshet/*.lua
#    (LuaRocks' builtin backend also copies a top-level lua/ directory on its own, so a missing
#    entry would not show in the installed tree; it is checked here instead).
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
       "dependencies is not { \"lua >= 5.1\" }")
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
for module, file in pairs(modules) do
  expect(wanted[module], ("build.modules[%q] = %q names no file in lua/freshet/"):format(
         module, tostring(file)))
end
if #problems > 0 then print(table.concat(problems, "\n")) os.exit(1) end
print("ok")
LUA
)" || fail "$rockspec does not match lua/freshet/:
$out"

# 2. Install. `luarocks make` builds in the directory holding the sources and leaves its object
#    files there, so it runs on a copy of the files the rockspec names (lua/, src/), not in the
#    checkout itself.
mkdir -p "$tmp/checkout"
cp -R "$root/rockspec" "$root/lua" "$tmp/checkout/"
[ -d "$root/src" ] && cp -R "$root/src" "$tmp/checkout/"
if ! (cd "$tmp/checkout" && HOME="$tmp/home" luarocks --lua-version=5.1 make --tree "$tree" "$rockspec") \
        >"$tmp/make.log" 2>&1; then
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

# 3. Load the installed modules with a bare luajit (no freshet binary around them): freshet.app
#    builds an app and records routes; `require "freshet"` works too, and names the server when a
#    server-only function is called.
out="$(cd "$tmp" && LUA_PATH="$share/?.lua;$share/?/init.lua;;" luajit - "$share" 2>&1 <<'LUA'
local share = ...
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
print("ok")
LUA
)" || fail "using the installed modules with luajit failed:
$out"
[ "$out" = "ok" ] || fail "unexpected output from luajit: $out"
echo "15_rockspec: PASS"
