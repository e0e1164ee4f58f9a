#!/usr/bin/env bash
# Installs the Debian packages freshet needs (only those missing), then configures and builds.
#
# Usage: scripts/setup.sh [--run] [--with PACKAGE]... [--list] [build-dir] [extra cmake args...]
#
#   (default)       everything: building, running, and every test (scripts/test.sh)
#   --run           only what building and running the server needs (scripts/run-example.sh)
#   --with PACKAGE  one more package (run-example.sh: redis-server for a Redis broker, python3
#                   for an example with a backend.py); may be repeated
#   --list          print the packages that the other options select, one a line, and stop
#
# On a systemd host some test packages start a service of their own when installed (nginx on
# port 80, redis-server on 6379, prometheus on 9090). The tests never use those services: they
# start their own servers on free ports. So a service this script has just installed for the
# tests is stopped and disabled again; one that was there before is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

mode=test
extra=()
list=0
while [ $# -gt 0 ]; do
    case "$1" in
        --run) mode=run; shift ;;
        --with) [ $# -ge 2 ] || { echo "setup: --with needs a package name" >&2; exit 2; }
                extra+=("$2"); shift 2 ;;
        --list) list=1; shift ;;
        *) break ;;
    esac
done
build="${1:-$root/build}"
shift || true

# Building and running: a C compiler and CMake, the libraries the binary links (libuv, LuaJIT,
# lua-cjson's static module, hiredis, the NATS C client, OpenSSL, nghttp2), llhttp's C sources, and
# the system's trusted CAs that freshet.http.request checks https:// backends against. (Debian's
# node-llhttp, the only package with those sources, depends on nodejs.)
run_packages=(build-essential cmake pkg-config libuv1-dev node-llhttp libluajit-5.1-dev
              lua-cjson lua-cjson-dev libhiredis-dev libnats-dev libssl-dev
              libnghttp2-dev ca-certificates)
# Testing: the servers and clients the tests drive (Redis, NATS with JetStream, nginx with nchan, Prometheus's
# promtool, Chromium and Node.js for the browser, curl, iproute2's tc, iptables for silent
# drops, the openssl command for test certificates, python3-h2 and nghttp2-client's h2load
# for HTTP/2), Lua tooling (luajit,
# LuaRocks, busted), clang for the fuzzers, Python for the integration tests, and what the
# packaging tests use (esbuild and TypeScript for the npm client, man, systemd-analyze).
test_packages=(luajit luarocks lua5.1 liblua5.1-0-dev lua-busted redis-server nats-server
               python3 curl
               util-linux iproute2 prometheus nginx libnginx-mod-nchan chromium clang
               libclang-rt-14-dev esbuild node-typescript man-db systemd openssl
               iptables python3-h2 nghttp2-client)
# The services that those packages start on a systemd host, by package.
declare -A services=([redis-server]=redis-server [nginx]=nginx [prometheus]=prometheus)

packages=("${run_packages[@]}")
if [ "$mode" = test ]; then
    packages+=("${test_packages[@]}")
    # Node.js runs the browser tests; a machine that has it from elsewhere keeps its own.
    command -v node >/dev/null 2>&1 || packages+=(nodejs)
    command -v npm >/dev/null 2>&1 || packages+=(npm)
fi
packages+=("${extra[@]}")
if [ "$list" = 1 ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

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
    if [ "$mode" = test ] && [ -d /run/systemd/system ]; then
        for p in "${missing[@]}"; do
            unit="${services[$p]:-}"
            # A package asked for with --with is wanted as a service (the Redis an example uses).
            if [ -n "$unit" ] && [[ " ${extra[*]} " != *" $p "* ]]; then
                echo "setup: stopping and disabling $unit.service (installed for the tests, which start their own)"
                $sudo systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
            fi
        done
    fi
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${FRESHET_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
