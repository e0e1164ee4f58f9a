#!/usr/bin/env bash
# Runs nginx + nchan in the foreground as the benchmark peer (see nchan.conf.in).
# Usage: scripts/bench/peers/nchan.sh DIR PORT [WORKERS=1] [REDIS=host:port]
# DIR (created if missing; disposable) receives the configuration, pid file, logs and temp
# paths. The script becomes the nginx master (exec), so its PID is the master's; the master
# runs in the foreground and stops with its workers on SIGTERM. With REDIS, nchan keeps its
# messages in that Redis (nchan_redis_pass, storage mode "distributed"): several nginx on one
# Redis share their channels, the peer of freshet's Redis broker.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:?usage: nchan.sh DIR PORT [WORKERS]}" port="${2:?usage: nchan.sh DIR PORT [WORKERS]}"
workers="${3:-1}" redis="${4:-}"
# The module as Debian's libnginx-mod-nchan installs it.
module=$(dpkg -L libnginx-mod-nchan 2>/dev/null | grep '/ngx_nchan_module\.so$' | head -n 1 || true)
if [ -z "$module" ] || [ ! -f "$module" ]; then
    echo "nchan.sh: the nchan module is missing (apt-get install libnginx-mod-nchan)" >&2
    exit 2
fi
command -v nginx >/dev/null || { echo "nchan.sh: nginx is missing" >&2; exit 2; }

# nginx cannot raise its workers' descriptor limit past the hard one; connection slots are
# twice that (see nchan.conf.in).
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
connections=$((nofile * 2))

redis_upstream="" redis_pass=""
if [ -n "$redis" ]; then
    redis_upstream="upstream fr_redis { nchan_redis_server redis://$redis; }"
    redis_pass="nchan_redis_pass fr_redis;"
fi

mkdir -p "$dir"
sed -e "s|@MODULE@|$module|g" -e "s|@WORKERS@|$workers|g" -e "s|@NOFILE@|$nofile|g" \
    -e "s|@CONNECTIONS@|$connections|g" -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" \
    -e "s|@REDIS_UPSTREAM@|$redis_upstream|g" -e "s|@REDIS_PASS@|$redis_pass|g" \
    "$here/nchan.conf.in" >"$dir/nginx.conf"
exec nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
