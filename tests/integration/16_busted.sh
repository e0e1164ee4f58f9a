#!/usr/bin/env bash
# Runs the busted specs in tests/lua/ — the Lua library (freshet.jwt, freshet.request) and the
# route-test harness (freshet.test) — and each starter app's own specs from a copy of its
# directory, under both lua5.1 and luajit, outside the server. Then installs the rock into a
# throw-away tree and runs the chat app's specs against the installed modules, as an app's own
# test suite would.
#
# freshet.jwt needs the C module freshet.crypto, and freshet.test the C module freshet.native
# (the server's own event checks, shared dictionary and route patterns). The server has both
# built in; here the same sources, as the rockspec lists them, are built as freshet/crypto.so
# and freshet/native.so and put on the C module path. Nothing outside the temp dir is written:
# HOME points into it for LuaRocks.
set -euo pipefail

root="${FRESHET_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"

fail() { echo "16_busted: FAIL: $*" >&2; exit 1; }

for tool in busted lua5.1 luajit luarocks pkg-config cc; do
    command -v "$tool" >/dev/null || fail "'$tool' is not installed (scripts/setup.sh installs it)"
done
busted="$(command -v busted)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/freshet-busted.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/cpath/freshet" "$tmp/home"

# 1. freshet.crypto and freshet.native as stand-alone Lua C modules, from the sources the
#    rockspec lists. Lua symbols are left for the interpreter that loads them to provide
#    (lua5.1 and luajit both export them), so one build serves both.
for mod in crypto native; do
    mapfile -t args < <(luajit "$root/tests/integration/rock_cmodule.lua" "$root" "freshet.$mod") \
        || fail "the rockspec has no C module freshet.$mod"
    # shellcheck disable=SC2046
    cc -shared -fPIC -O1 -g -Wall -Wextra -Werror $(pkg-config --cflags luajit) "${args[@]}" \
        -o "$tmp/cpath/freshet/$mod.so" || fail "cannot build freshet.$mod as a Lua module"
done

lpath="lua/?.lua;lua/?/init.lua"
cpath="$tmp/cpath/?.so"

# 2. Every spec, under each interpreter. Specs name files relative to the repository root.
run_specs() {
    local interp="$1"
    shift
    local log="$tmp/$interp.log"
    if ! (cd "$root" && "$interp" "$busted" --output=plainTerminal "$@") >"$log" 2>&1; then
        cat "$log" >&2
        fail "busted under $interp failed (output above)"
    fi
    echo "16_busted: $interp: $(grep -E '^[0-9]+ success' "$log")"
}
for interp in lua5.1 luajit; do
    run_specs "$interp" --lpath="$lpath" --cpath="$cpath" tests/lua
done

# 2b. Each starter app tests itself: its directory, copied elsewhere, runs its own specs with a
#     plain `busted` (its .busted file), finding freshet.test through LUA_PATH alone.
run_app_specs() {
    local interp="$1" dir="$2"
    local log="$tmp/$interp-$(basename "$dir").log"
    if ! (cd "$dir" && "$interp" "$busted" --output=plainTerminal) >"$log" 2>&1; then
        cat "$log" >&2
        fail "busted under $interp in a copy of $(basename "$dir") failed (output above)"
    fi
    echo "16_busted: $interp: $(basename "$dir"): $(grep -E '^[0-9]+ success' "$log")"
}
mkdir -p "$tmp/apps"
napps=0
for app in "$root"/scripts/examples/*/; do
    [ -d "$app/spec" ] || fail "$(basename "$app") has no spec/ directory"
    [ -f "$app/.busted" ] || fail "$(basename "$app") has no .busted file"
    cp -R "$app" "$tmp/apps/"
    for interp in lua5.1 luajit; do
        LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$tmp/cpath/?.so;;" \
            run_app_specs "$interp" "$tmp/apps/$(basename "$app")"
    done
    napps=$((napps + 1))
done
[ "$napps" -ge 5 ] || fail "only $napps starter apps found"

# 3. The rock: install it, check that freshet.test and freshet.native resolve into the tree
#    (not lua/ or the build above), and run the example's specs and the harness's own against
#    the installed modules.
#    `luarocks make` builds in the directory it runs in, so it runs on a copy of the sources.
#    The rock's lua-cjson dependency is the system's (as in 15_rockspec.sh): no network.
tree="$tmp/tree"
mkdir -p "$tmp/checkout"
cp -R "$root/rockspec" "$root/lua" "$root/src" "$tmp/checkout/"
printf 'rocks_provided = { ["lua-cjson"] = "%s-1" }\n' \
    "$(luajit -e 'io.write((require "cjson")._VERSION)')" >"$tmp/luarocks.lua"
if ! (cd "$tmp/checkout" && HOME="$tmp/home" LUAROCKS_CONFIG="$tmp/luarocks.lua" \
        luarocks --lua-version=5.1 make --tree "$tree" rockspec/freshet-scm-1.rockspec) \
        >"$tmp/make.log" 2>&1; then
    cat "$tmp/make.log" >&2
    fail "luarocks make did not succeed (output above)"
fi
share="$tree/share/lua/5.1"
lib="$tree/lib/lua/5.1"
for mod in init app fakecore jwt request test; do
    [ -f "$share/freshet/$mod.lua" ] || fail "the rock did not install freshet/$mod.lua"
done
for mod in crypto native; do
    [ -f "$lib/freshet/$mod.so" ] || fail "the rock did not build and install freshet/$mod.so"
done
where="$(cd "$root" && LUA_PATH="$share/?.lua;$share/?/init.lua;;" LUA_CPATH="$lib/?.so;;" \
    luajit -e 'io.write(package.searchpath("freshet.test", package.path) or "", " ",
                        package.searchpath("freshet.native", package.cpath) or "")')"
[ "$where" = "$share/freshet/test.lua $lib/freshet/native.so" ] \
    || fail "freshet.test and freshet.native resolve to '$where', not into the rock tree"
export LUA_PATH="$share/?.lua;$share/?/init.lua;;"
export LUA_CPATH="$lib/?.so;;"
run_specs luajit tests/lua/harness_spec.lua
mkdir -p "$tmp/rockapp"
cp -R "$root/scripts/examples/chat" "$tmp/rockapp/"
run_app_specs luajit "$tmp/rockapp/chat"
echo "16_busted: PASS"
