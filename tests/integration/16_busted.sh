#!/usr/bin/env bash
# Runs the busted specs in tests/lua/ — the Lua library (freshet.jwt, freshet.request), the
# route-test harness (freshet.test) and the chat example's routes — under both lua5.1 and
# luajit, outside the server. Then installs the rock into a throw-away tree and runs the
# example's specs against the installed modules, as an app's own test suite would.
#
# freshet.jwt needs the C module freshet.crypto. The server has it built in; here the same
# source, src/lua/crypto.c, is built as freshet/crypto.so and put on the C module path.
# Nothing outside the temp dir is written: HOME points into it for LuaRocks.
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

# 1. freshet.crypto as a stand-alone Lua C module. Lua symbols are left for the interpreter
#    that loads it to provide (lua5.1 and luajit both export them), so one build serves both.
# shellcheck disable=SC2046
cc -shared -fPIC -O1 -g -Wall -Wextra -Werror $(pkg-config --cflags luajit) -I"$root/src" \
    "$root/src/lua/crypto.c" -o "$tmp/cpath/freshet/crypto.so" $(pkg-config --libs libcrypto) \
    || fail "cannot build src/lua/crypto.c as a Lua module"

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

# 3. The rock: install it, check that freshet.test resolves into the tree (not lua/), and run
#    the example's specs and the harness's own against the installed modules.
#    `luarocks make` builds in the directory it runs in, so it runs on a copy of the sources.
tree="$tmp/tree"
mkdir -p "$tmp/checkout"
cp -R "$root/rockspec" "$root/lua" "$root/src" "$tmp/checkout/"
if ! (cd "$tmp/checkout" && HOME="$tmp/home" luarocks --lua-version=5.1 make --tree "$tree" \
        rockspec/freshet-scm-1.rockspec) >"$tmp/make.log" 2>&1; then
    cat "$tmp/make.log" >&2
    fail "luarocks make did not succeed (output above)"
fi
share="$tree/share/lua/5.1"
for mod in init app fakecore jwt request test; do
    [ -f "$share/freshet/$mod.lua" ] || fail "the rock did not install freshet/$mod.lua"
done
where="$(cd "$root" && LUA_PATH="$share/?.lua;$share/?/init.lua;;" \
    luajit -e 'io.write(package.searchpath("freshet.test", package.path) or "")')"
[ "$where" = "$share/freshet/test.lua" ] || fail "freshet.test resolves to '$where', not into the rock tree"
export LUA_PATH="$share/?.lua;$share/?/init.lua;;"
run_specs luajit tests/lua/chat_example_spec.lua tests/lua/harness_spec.lua
echo "16_busted: PASS"
