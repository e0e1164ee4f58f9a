#!/usr/bin/env bash
# Installs the Debian packages freshet needs (only those missing), then configures and builds.
# Usage: scripts/setup.sh [build-dir] [extra cmake args...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shift || true

packages=(build-essential cmake pkg-config libuv1-dev node-llhttp libluajit-5.1-dev luajit
          lua-cjson lua-cjson-dev libhiredis-dev libssl-dev libnghttp2-dev openssl redis-server luarocks lua5.1 liblua5.1-0-dev
          python3 curl util-linux prometheus lua-busted nginx libnginx-mod-nchan chromium clang libclang-rt-14-dev iproute2
          python3-h2 nghttp2-client)
# python3-h2 (the raw HTTP/2 client of 14_h2.py, for /usr/bin/python3) and nghttp2-client
# (h2load) are for the tests and benchmarks only.
# Node.js runs the browser tests; a machine that has it from elsewhere keeps its own.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${FRESHET_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
