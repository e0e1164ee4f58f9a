#!/usr/bin/env bash
# The JavaScript client (client/freshet.js, served at /_freshet/freshet.js) in real headless
# Chromium: the chat example page, kill-and-restart with the memory and the Redis broker, the
# fallback to long-polling, WebSocket mode, twelve EventSources over HTTPS + HTTP/2. The scripts are
# tests/browser/NN_*.test.js.
#
# Installs what is missing (Debian: chromium, nodejs, npm, redis-server; npm: playwright-core
# as pinned by tests/browser/package-lock.json, into tests/browser/node_modules) and never
# skips: a browser that cannot be installed or started is a failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="${FRESHET_ROOT:-$(cd "$here/../.." && pwd)}"
browser="$root/tests/browser"
export FRESHET_ROOT="$root"
export FRESHET_BIN="${FRESHET_BIN:-$root/build/freshet}"
chromium=/usr/bin/chromium

fail() {
    echo "65_browser: FAIL: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

apt_install() {
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "65_browser: installing $* (Debian packages)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x "$chromium" ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}" || fail "could not install ${missing[*]}"
fi
[ -x "$chromium" ] || fail "$chromium is missing (Debian package chromium)"
[ -x "$FRESHET_BIN" ] || fail "freshet binary not found at $FRESHET_BIN"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || fail "playwright-core needs Node.js 20 or later; this is $(node --version)"

# playwright-core at the version package-lock.json pins. It never downloads a browser: the tests
# launch Debian's Chromium by path.
want="$(node -p "require('$browser/package-lock.json').packages['node_modules/playwright-core'].version")"
have="$(node -p "try { require('$browser/node_modules/playwright-core/package.json').version } catch (e) { '' }")"
if [ "$want" != "$have" ]; then
    echo "65_browser: installing playwright-core $want (npm ci)"
    (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
        || fail "npm ci in tests/browser failed"
fi

# Chromium must start; run.js launches it once for every test and fails if it cannot.
"$chromium" --version 2>/dev/null || fail "$chromium does not run"
exec node "$browser/run.js"
