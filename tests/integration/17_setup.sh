#!/usr/bin/env bash
# The set-up split: scripts/run-example.sh installs only what building and running need, and
# scripts/test.sh the rest. Checks the package lists scripts/setup.sh selects (--list), and asks
# apt what installing the run list would bring onto a machine with nothing installed (a
# simulation against an empty dpkg status: nothing is installed or downloaded): none of the
# test tooling, and no package that starts a service of its own. The README names the packages
# of both lists.
set -euo pipefail

root="${FRESHET_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
setup="$root/scripts/setup.sh"
fail() { echo "17_setup: FAIL: $*" >&2; exit 1; }

run_list="$("$setup" --run --list)" || fail "setup.sh --run --list failed"
all_list="$("$setup" --list)" || fail "setup.sh --list failed"
has() { grep -qx -- "$2" <<<"$1"; }

# Test tooling and services stay out of the run list; the build libraries are in it.
for p in chromium nodejs npm nginx libnginx-mod-nchan prometheus redis-server clang lua-busted \
         luarocks python3 esbuild; do
    has "$run_list" "$p" && fail "setup.sh --run selects the test package $p"
done
for p in build-essential cmake libuv1-dev node-llhttp libluajit-5.1-dev lua-cjson-dev \
         libhiredis-dev libssl-dev; do
    has "$run_list" "$p" || fail "setup.sh --run does not select $p, which the build needs"
done
# Everything the run list has, the full list has too, plus the test tooling.
while read -r p; do
    has "$all_list" "$p" || fail "setup.sh (tests) does not select $p, which --run does"
done <<<"$run_list"
for p in chromium nginx prometheus redis-server clang lua-busted python3; do
    has "$all_list" "$p" || fail "setup.sh (tests) does not select $p"
done
# An example that asks for Redis or a Python backend gets exactly that on top.
with="$("$setup" --run --with redis-server --with python3 --list)"
has "$with" redis-server && has "$with" python3 || fail "--with does not add its package"
[ "$(wc -l <<<"$with")" -eq $(($(wc -l <<<"$run_list") + 2)) ] \
    || fail "--with adds more than its package"

# What apt would install for the run list on an empty machine.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/freshet-setup.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/status"
# shellcheck disable=SC2086
if ! apt-get -s -o Dir::State::status="$tmp/status" install --no-install-recommends $run_list \
        >"$tmp/sim" 2>&1; then
    cat "$tmp/sim" >&2
    fail "apt-get cannot resolve the run packages (are the package lists there? apt-get update)"
fi
closure="$(awk '/^Inst /{print $2}' "$tmp/sim")"
n="$(wc -l <<<"$closure")"
[ "$n" -gt 20 ] || fail "the simulation installed only $n packages: it did not start from empty"
for p in chromium nginx nginx-common prometheus redis-server redis-tools npm clang \
         python3 libnginx-mod-nchan lua-busted; do
    has "$closure" "$p" && fail "installing the run packages pulls in $p"
done
echo "17_setup: the run packages bring $n packages onto an empty machine, no test tooling"

# The README names every package of both lists.
readme="$root/README.md"
while read -r p; do
    grep -q -- "\`$p\`" "$readme" || fail "README.md does not name the package \`$p\`"
done <<<"$all_list"
echo "17_setup: PASS"
